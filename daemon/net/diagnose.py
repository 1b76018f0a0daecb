"""`check`'s network walk: DNS, proxy, TLS and an authenticated request to the API, and a TLS
handshake with the storage host; each line says what failed, in plain words.

The authenticated request is a deliberately incomplete reservation (an empty JSON body): 400/422
means the token was accepted and no capture was created; 401/403 means it was not.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from daemon.errors import TransferError
from daemon.net import tls
from daemon.net.api import ApiClient
from daemon.net.transport import TrustFileError, proxy_for, redact_url, ssl_context

Finding = tuple[bool, str]


def _dns(host: str, what: str) -> Finding:
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        return False, f"DNS: cannot resolve {what} host {host} ({exc.strerror or exc})"
    return True, f"DNS: {what} host {host} resolves"


def _proxy(proxy: str, timeout: float, ctx: ssl.SSLContext) -> Finding:
    p = urlsplit(proxy)
    host, port = p.hostname or "", p.port or (443 if p.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if p.scheme == "https":
                ctx.wrap_socket(sock, server_hostname=host).close()
    except ssl.SSLCertVerificationError as exc:
        return False, (f"proxy {redact_url(proxy)}: its TLS certificate is not trusted "
                       f"({exc.verify_message}); set [api] ca_file")
    except OSError as exc:
        return False, f"proxy {redact_url(proxy)} cannot be reached ({exc.strerror or exc})"
    return True, f"proxy {redact_url(proxy)} is reachable"


def _tls(url: str, what: str, proxy: str | None, ctx: ssl.SSLContext,
         timeout: float) -> Finding:
    target = httpx.URL(url)
    host, port = target.host, target.port or 443
    if target.scheme != "https":
        return True, f"TLS: {what} {host} is plain HTTP (no TLS)"
    via = proxy_for(target, proxy)
    try:
        tls.handshake(host, port, via, ctx, timeout).close()
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or exc.reason or "verification failed"
        return False, f"TLS: {what}: " + tls.untrusted_message(host, port, via, str(why),
                                                               timeout)
    except tls.ProxyError as exc:
        return False, f"TLS: {what} {host}: {exc}"
    except (OSError, ssl.SSLError) as exc:
        text = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        return False, f"TLS: cannot complete a handshake with {what} {host}:{port} ({text})"
    return True, f"TLS: {what} {host} presents a trusted certificate"


def _token(base_url: str, token: str, proxy: str | None, ca_file: Path | str | None,
           timeout: float) -> Finding:
    api = ApiClient(base_url, token, httpx.Timeout(timeout), proxy=proxy, ca_file=ca_file,
                    total_seconds=max(timeout * 2, 5.0))
    try:
        r = api.post("/captures", {})
    except TransferError as exc:
        return False, f"cannot reach the API at {base_url}: {exc.message}"
    finally:
        api.close()
    if r.status_code in (401, 403):
        return False, f"the API rejected the token (HTTP {r.status_code})"
    if r.status_code in (400, 422):
        return True, "the API accepts the token"
    if r.status_code == 407:
        return False, "the proxy wants credentials: put user:password@ in [api] proxy"
    return False, f"unexpected answer from the API: HTTP {r.status_code}"


def walk(base_url: str, token: str, proxy: str | None, ca_file: Path | str | None,
         storage_url: str | None, timeout: float = 10.0) -> list[Finding]:
    """One finding per step; a step that cannot work after an earlier failure is left out."""
    out: list[Finding] = []
    try:
        ctx = ssl_context(ca_file)
    except TrustFileError as exc:
        return [(False, str(exc))]
    api_host = httpx.URL(base_url).host
    via = proxy_for(base_url, proxy)
    if via:
        phost = urlsplit(via).hostname or ""
        out.append(_dns(phost, "proxy"))
        if out[-1][0]:
            out.append(_proxy(via, timeout, ctx))
        # Behind a proxy the API's name is resolved by the proxy, not here.
    else:
        out.append(_dns(api_host, "API"))
    if all(ok for ok, _ in out):
        out.append(_tls(base_url, "API", proxy, ctx, timeout))
        if out[-1][0]:
            out.append(_token(base_url, token, proxy, ca_file, timeout))
    if storage_url:
        s_via = proxy_for(storage_url, proxy)
        s_host = httpx.URL(storage_url).host
        found = _dns(s_host, "storage") if not s_via else (True, "")
        if not found[0]:
            out.append(found)
        else:
            out.append(_tls(storage_url, "storage", proxy, ctx, timeout))
    return out
