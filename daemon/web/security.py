"""The console is an admin interface (it retries and pauses): who may reach it and how.

- Host header: the listen host, `localhost` or a loopback IP (DNS rebinding gets 403).
- State-changing requests carry the page's CSRF token (random per process) in X-CSRF-Token.
- Host header: parsed strictly (host[:port], a hostname or IP literal, nothing else).
- Optional password: HTTP basic auth (scripts, Prometheus) or the login form's session cookie;
  compared in constant time and never logged; wrong tries throttled per client (throttle.py),
  sessions expire when idle and are bounded (sessions.py).
- Every answer forbids framing and inline script.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import re
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path

from daemon.web.devices import Devices
from daemon.web.sessions import Sessions
from daemon.web.throttle import Throttle

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SESSION_COOKIE = "uplift_console"
# A DNS label; "_" too: Windows machine names carry it and the LAN may reach us by one.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def parse_host(header: str | None) -> str | None:
    """A Host header -> its host, lower case, IPv6 without brackets; None unless it is exactly
    host[:port]: a hostname or an IP literal, a port of digits, no user info, path or spaces."""
    if not header or not header.isascii():
        return None
    text = header.lower()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or "%" in host:  # no zone ids: they name an interface, not this machine
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port = text.partition(":")
        rest = sep + port
        if _IPV4.fullmatch(host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return None
        elif len(host) > 253 or not all(_LABEL.fullmatch(x) for x in host.split(".")):
            return None
    if rest:
        port = rest[1:]
        if rest[0] != ":" or not (port.isdigit() and len(port) <= 5 and int(port) <= 65535):
            return None
    return host


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
                 extra_hosts: Iterable[str] = (), *, sessions: Sessions | None = None,
                 throttle: Throttle | None = None):
        self.listen_host = listen_host.strip("[]").lower()
        self.password = password
        self.csrf_token = secrets.token_urlsafe(32)
        self.sessions = Sessions() if sessions is None else sessions  # (empty is falsy)
        self.throttle = Throttle() if throttle is None else throttle
        self.devices = Devices(password) if password is not None else None
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
        host = parse_host(host_header)
        if host is None:
            return False
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
        return token is not None and token != "" and hmac.compare_digest(
            token.encode(), self.csrf_token.encode())

    # ---- password ------------------------------------------------------------------------

    def password_ok(self, candidate: str) -> bool:
        assert self.password is not None
        return hmac.compare_digest(candidate.encode(), self.password.encode())

    def authenticated(self, authorization: str | None, cookie: str | None) -> bool:
        if self.password is None:
            return True
        if self.sessions.valid(cookie):
            return True
        return authorization is not None and authorization != "" and \
            self.basic_ok(authorization)

    def basic_ok(self, authorization: str) -> bool:
        """Does this Authorization header carry the password (basic auth, any user name)?"""
        if authorization[:6].lower() != "basic ":
            return False
        try:
            raw = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _user, _, given = raw.partition(b":")  # any user name: one shared password
        assert self.password is not None
        return hmac.compare_digest(given, self.password.encode())

    def new_session(self) -> str:
        return self.sessions.new()

    def end_session(self, token: str | None) -> None:
        self.sessions.end(token)
