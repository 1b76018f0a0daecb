"""A 3xx answer to the S3 POST upload: stored, or not.

Only S3's success_action_redirect means the object was stored, and only when the signed upload
fields asked for it. S3's `307 TemporaryRedirect` (the bucket answers at another endpoint for
now) and a proxy's or captive portal's `302` stored nothing: a storage error, never `done`.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

import httpx

from daemon.errors import Kind, TransferError, Where
from daemon.net.api import MAX_QUOTED, retry_after, s3_error

# What S3 appends to a success_action_redirect URL once the object is stored.
ADDED_BY_S3 = frozenset({"bucket", "key", "etag"})


def _redirect_field(fields: Mapping[str, str]) -> str | None:
    for name, value in fields.items():  # S3's form field names are case-insensitive
        if name.lower() == "success_action_redirect":
            return str(value)
    return None


def _place(url: str) -> tuple[str, str, int | None, str] | None:
    """Scheme, host, port and path, as a browser would compare them; None if unreadable."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port, parts.path or "/"


def redirect_stored(location: str | None, fields: Mapping[str, str]) -> bool:
    """Whether a 3xx answer to the upload says the object was stored. Only S3's
    success_action_redirect does: the URL the signed fields asked for, its own query kept, with
    the bucket, key and etag S3 appends. Anything else (S3's 307 TemporaryRedirect, a proxy's
    or captive portal's 302) stored nothing."""
    expected = _redirect_field(fields)
    if not expected or not location:
        return False
    want, got = _place(expected), _place(location)
    if want is None or want != got:
        return False
    left = parse_qsl(urlsplit(location.strip()).query, keep_blank_values=True)
    for pair in parse_qsl(urlsplit(expected.strip()).query, keep_blank_values=True):
        if pair not in left:
            return False
        left.remove(pair)
    return all(name in ADDED_BY_S3 for name, _ in left)


def redirect_error(response: httpx.Response, fields: Mapping[str, str]) -> TransferError:
    """A 3xx that is not the asked-for success_action_redirect: nothing was stored. The reason
    names the status, S3's Code and Message if any, and where it pointed (scheme and host
    only: a portal's query may carry anything)."""
    code, message = s3_error(response.content[:MAX_QUOTED].decode("utf-8", "replace"))
    status = response.status_code
    place = _place(response.headers.get("Location") or "")
    to = f"to {place[0]}://{place[1]}" if place else "without a usable Location"
    if code is None:
        hint = " (a proxy or captive portal?)"
    elif code == "TemporaryRedirect":
        hint = " (the bucket answers at another endpoint for now)"
    else:
        hint = ""
    asked = " rather than to the success_action_redirect it asked for" \
        if _redirect_field(fields) else ""
    text = (f"HTTP {status}{' ' + code if code else ''}: the upload endpoint redirected the "
            f"upload {to}{asked}{hint}; nothing was stored")
    if message:
        text += f" ({message})"
    return TransferError(Where.STORAGE, Kind.HTTP, text, status=status, code=code,
                         retry_after=retry_after(response))
