"""The console is an admin interface (it retries and pauses): who may reach it and how.

- Host header: the listen host, `localhost` or a loopback IP (DNS rebinding gets 403).
- State-changing requests carry the page's CSRF token (random per process) in X-CSRF-Token.
- Optional password: HTTP basic auth (scripts, Prometheus) or the login form's session cookie;
  compared in constant time and never logged.
- Every answer forbids framing and inline script.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SESSION_COOKIE = "uplift_console"


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    """"127.0.0.1:8780" / "[::1]:8780" -> (host, port). ValueError with the reason."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'must be HOST:PORT such as "127.0.0.1:8780" (or "" for off), got '
                         f"{listen!r}")
    return host.strip("[]"), int(port)


def check_listen(listen: str, password_file: Path | None) -> str | None:
    """One line saying why this [web] listen may not start, or None. "" (off) is fine."""
    if not listen.strip():
        return None
    try:
        host, _port = split_listen(listen)
    except ValueError as exc:
        return f"[web] listen {exc}"
    if not is_loopback(host) and password_file is None:
        return (f"[web] listen = {listen!r} is reachable from other machines: set [web] "
                f"password_file to expose the console (it can retry and pause uploads), or "
                f"listen on 127.0.0.1")
    return None


def read_password(path: Path) -> str:
    """The file's first line (editors add a newline; that is not part of the password)."""
    text = path.read_text(encoding="utf-8").splitlines()
    password = text[0].strip() if text else ""
    if not password:
        raise ValueError(f"{path}: the console password file is empty")
    return password


class Guard:
    def __init__(self, listen_host: str, password: str | None,
                 extra_hosts: Iterable[str] = ()):
        self.listen_host = listen_host.strip("[]").lower()
        self.password = password
        self.csrf_token = secrets.token_urlsafe(32)
        self._sessions: set[str] = set()
        self._hosts = {self.listen_host, "localhost", *(h.lower() for h in extra_hosts)}
        self._any_ip = False
        with contextlib.suppress(ValueError):
            # Listening on every interface (password required): the LAN reaches it by this
            # machine's name or any of its addresses; rebinding needs a foreign name, still 403.
            self._any_ip = ipaddress.ip_address(self.listen_host).is_unspecified
        if self._any_ip:  # (not getfqdn(): a reverse DNS lookup could stall the start)
            name = socket.gethostname().lower()
            self._hosts |= {name, name.split(".")[0], f"{name.split('.')[0]}.local"}

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):  # [v6]:port
            host = host[1:host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        if host in self._hosts or is_loopback(host):
            return True
        if self._any_ip:
            try:
                ipaddress.ip_address(host)
                return True
            except ValueError:
                return False
        return False

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf_token.encode())

    # ---- password ------------------------------------------------------------------------

    def password_ok(self, candidate: str) -> bool:
        assert self.password is not None
        return hmac.compare_digest(candidate.encode(), self.password.encode())

    def authenticated(self, authorization: str | None, cookie: str | None) -> bool:
        if self.password is None:
            return True
        if cookie and any(hmac.compare_digest(cookie, s) for s in self._sessions):
            return True
        if authorization and authorization[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            _user, _, given = raw.partition(":")  # any user name: one shared password
            return self.password_ok(given)
        return False

    def new_session(self) -> str:
        token = secrets.token_urlsafe(32)
        self._sessions.add(token)
        return token

    def end_session(self, token: str | None) -> None:
        if token:
            self._sessions.discard(token)
