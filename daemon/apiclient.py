"""The Uplift capture API client: POST /captures (reserve an upload)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from daemon import __version__
from daemon.errors import Kind, TransferError, Where
from daemon.timeutil import parse_iso


@dataclass(frozen=True)
class Reserved:
    session_id: str
    session_group_id: str
    upload_url: str
    upload_fields: dict[str, str]  # secret (signed policy): memory only, never stored or logged
    expires_at: float
    server_time: float | None  # from the Date header, for clock-skew estimates

    def __repr__(self) -> str:  # keep the policy out of any accidental repr in logs
        return f"Reserved(session_id={self.session_id!r}, expires_at={self.expires_at})"


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - _date(response, 0.0))
        except (TypeError, ValueError):
            return None


def _date(response: httpx.Response, default: float | None) -> float | None:
    try:
        return parsedate_to_datetime(response.headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return default


def transport_error(exc: httpx.HTTPError, where: Where) -> TransferError:
    name = "the Uplift API" if where is Where.API else "the upload endpoint"
    if isinstance(exc, httpx.TimeoutException):
        kind, text = Kind.TIMEOUT, f"{name} did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        kind, text = Kind.CONNECT, f"cannot connect to {name}"
    else:
        kind, text = Kind.PROTOCOL, f"the connection to {name} broke"
    detail = str(exc).strip()
    return TransferError(where, kind, f"{text} ({detail})" if detail else text)


def server_message(response: httpx.Response) -> str:
    """The server's own words, short. HTML error pages (from proxies) are not quoted."""
    ctype = response.headers.get("Content-Type", "")
    body = response.text[:4000]
    if "html" in ctype or (body.lstrip()[:1] == "<" and "<html" in body[:500].lower()):
        return f"the server answered with an HTML error page (HTTP {response.status_code})"
    if "xml" in ctype or body.lstrip().startswith("<"):
        code = re.search(r"<Code>(.*?)</Code>", body, re.S)
        message = re.search(r"<Message>(.*?)</Message>", body, re.S)
        parts = [m.group(1).strip() for m in (code, message) if m]
        if parts:
            return ": ".join(parts)
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300] or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        for key in ("detail", "message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if value:
                return json.dumps(value)[:300]
    return json.dumps(data)[:300]


def http_error(response: httpx.Response, where: Where) -> TransferError:
    message = server_message(response)
    code = None
    found = re.search(r"<Code>(.*?)</Code>", response.text[:4000])
    if found:
        code = found.group(1).strip()
    return TransferError(where, Kind.HTTP, f"HTTP {response.status_code}: {message}",
                         status=response.status_code, code=code,
                         retry_after=retry_after(response), server_time=_date(response, None))


class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: httpx.Timeout,
                 client: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = client or httpx.Client(timeout=timeout, trust_env=False)
        self._headers = {"User-Agent": f"uplift-capture-daemon/{__version__}"}

    def close(self) -> None:
        self._client.close()

    def create_capture(self, body: dict[str, Any]) -> Reserved:
        try:
            response = self._client.post(
                f"{self.base_url}/captures", json=body,
                headers={**self._headers, "Authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            raise transport_error(exc, Where.API) from None
        if not response.is_success:
            raise http_error(response, Where.API)
        try:
            data = response.json()
            fields = data["upload_fields"]
            if not isinstance(fields, dict):
                raise TypeError("upload_fields is not an object")
            return Reserved(
                session_id=str(data["session_id"]),
                session_group_id=str(data.get("session_group_id") or body["session_group_id"]),
                upload_url=str(data["upload_url"]),
                upload_fields={str(k): str(v) for k, v in fields.items()},
                expires_at=parse_iso(str(data["upload_expires_at"])),
                server_time=_date(response, None),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TransferError(Where.API, Kind.MALFORMED,
                                f"the Uplift API sent a reservation we could not read ({exc})",
                                status=response.status_code) from None
