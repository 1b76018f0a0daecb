"""The Uplift capture API client: POST /captures (reserve an upload), GET /captures/{id} (what
Uplift has of a capture), and reading answers.

Every API request has a total deadline (httpx's read timeout is per read: a body trickling a byte
every few seconds would never time out) and a size cap (a runaway answer must not take the
daemon's memory). A 2xx reservation is checked before anyone uses it: a bad one is an API error
(Kind.MALFORMED), counted and bounded by the caller like other refusals.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from daemon import __version__
from daemon.errors import Kind, TransferError, Where
from daemon.net import tls
from daemon.net.pace import Pace
from daemon.net.transport import Swappable, deadline, make_client, redact_url

MAX_ANSWER = 1 << 20  # bytes: a reservation is a few KiB
MAX_QUOTED = 4000  # bytes of an error answer we look at
TOTAL_SECONDS = 60.0  # default total deadline for one API request


# A capture's `status` as GET /captures/{id} reports it (uplift-api/captures.md).
CAPTURE_STATUSES = ("awaiting_upload", "processing", "completed", "error")


@dataclass(frozen=True)
class Capture:
    """What Uplift has of a capture (GET /captures/{id}); further fields are not needed yet."""
    session_id: str
    status: str  # one of CAPTURE_STATUSES
    error: str | None
    fps_detected: float | None = None


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
            return max(0.0, parsedate_to_datetime(value).timestamp() -
                       (_date(response, 0.0) or 0.0))
        except (TypeError, ValueError):
            return None


def _date(response: httpx.Response, default: float | None) -> float | None:
    try:
        return parsedate_to_datetime(response.headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return default


def transport_error(exc: httpx.HTTPError, where: Where, proxy: str | None = None) -> TransferError:
    name = "the Uplift API" if where is Where.API else "the upload endpoint"
    try:
        url: httpx.URL | None = exc.request.url
    except (RuntimeError, AttributeError):
        url = None
    if url is not None and isinstance(exc, httpx.ConnectError):
        cert = tls.certificate_error(exc, url, where, proxy)
        if cert is not None:
            return cert
    if isinstance(exc, httpx.TimeoutException):
        kind, text = Kind.TIMEOUT, f"{name} did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        kind, text = Kind.CONNECT, f"cannot connect to {name}"
    else:
        kind, text = Kind.PROTOCOL, f"the connection to {name} broke"
    detail = str(exc).strip()
    if proxy:
        detail = detail.replace(proxy, redact_url(proxy))
    return TransferError(where, kind, f"{text} ({detail})" if detail else text)


def s3_error(body: str) -> tuple[str | None, str | None]:
    """S3's <Error><Code>…</Code><Message>…</Message></Error>, from a bounded body."""
    text = body[:MAX_QUOTED].strip()
    if not text.startswith("<"):
        return None, None
    from xml.etree import ElementTree  # only for an error answer: 0.4 MiB not kept for it

    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None, None

    def find(tag: str) -> str | None:
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == tag and el.text and el.text.strip():
                return " ".join(el.text.split())[:300]
        return None

    return find("Code"), find("Message")


def server_message(response: httpx.Response) -> str:
    """The server's own words, short. HTML error pages (from proxies) are not quoted."""
    ctype = response.headers.get("Content-Type", "")
    body = response.content[:MAX_QUOTED].decode("utf-8", "replace")
    if "html" in ctype or (body.lstrip()[:1] == "<" and "<html" in body[:500].lower()):
        return f"the server answered with an HTML error page (HTTP {response.status_code})"
    if "xml" in ctype or body.lstrip().startswith("<"):
        parts = [p for p in s3_error(body) if p]
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
                return value[:300]
            if value:
                return json.dumps(value)[:300]
    return json.dumps(data)[:300]


def http_error(response: httpx.Response, where: Where) -> TransferError:
    code = s3_error(response.content[:MAX_QUOTED].decode("utf-8", "replace"))[0]
    return TransferError(where, Kind.HTTP, f"HTTP {response.status_code}: "
                                           f"{server_message(response)}",
                         status=response.status_code, code=code,
                         retry_after=retry_after(response), server_time=_date(response, None))


def read_capped(response: httpx.Response, limit: int, where: Where,
                refuse: bool) -> httpx.Response:
    """The streamed `response`, read to at most `limit` bytes. Beyond it: Kind.TOO_LARGE when
    `refuse`, else the first `limit` bytes (an error answer only needs its start)."""
    declared = response.headers.get("Content-Length", "")
    if refuse and declared.isdigit() and int(declared) > limit:
        raise TransferError(where, Kind.TOO_LARGE, f"the answer is {int(declared)} bytes; "
                                                   f"at most {limit} are accepted",
                            status=response.status_code)
    body = bytearray()
    for chunk in response.iter_raw():
        body += chunk
        if len(body) > limit:
            if refuse:
                raise TransferError(where, Kind.TOO_LARGE,
                                    f"the answer is larger than {limit} bytes",
                                    status=response.status_code)
            del body[limit:]
            break
    # The header bytes as they came: decoded and encoded again, a raw non-ASCII byte (a
    # proxy's, a portal's) would raise here, after the status line already said what happened.
    headers = [(k, v) for k, v in response.headers.raw
               if k.lower() not in (b"content-encoding", b"transfer-encoding", b"content-length")]
    return httpx.Response(response.status_code, headers=headers, content=bytes(body),
                          request=response.request)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _expiry(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError("upload_expires_at is missing or not a string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("upload_expires_at is not an ISO 8601 time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def parse_reservation(data: Any, body: dict[str, Any], now: float, skew: float,
                      server_time: float | None) -> Reserved:
    """ValueError with a plain reason (never quoting the signed fields) for a bad answer."""
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    fields = data.get("upload_fields")
    if not isinstance(fields, dict) or not fields:
        raise ValueError("upload_fields is missing or not an object")
    if any(not isinstance(v, str | int | float) or isinstance(v, bool)
           for v in fields.values()):
        raise ValueError("upload_fields holds a value that is not a string")
    session_id = data.get("session_id")
    if not isinstance(session_id, str | int) or not str(session_id).strip():
        raise ValueError("session_id is missing")
    url = data.get("upload_url")
    if not isinstance(url, str):
        raise ValueError("upload_url is missing")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError("upload_url is not a URL") from None
    if parsed.scheme != "https" and not (parsed.scheme == "http" and _is_loopback(parsed.host)):
        raise ValueError(f"upload_url must use https (it uses {parsed.scheme or 'no scheme'}"
                         f"{' to ' + parsed.host if parsed.host else ''})")
    expires = _expiry(data.get("upload_expires_at"))
    if expires <= now + skew:
        raise ValueError(f"upload_expires_at {data['upload_expires_at']} is already past "
                         f"(by our clock corrected by the API's)")
    return Reserved(
        session_id=str(session_id),
        session_group_id=str(data.get("session_group_id") or body.get("session_group_id")),
        upload_url=url, upload_fields={str(k): str(v) for k, v in fields.items()},
        expires_at=expires, server_time=server_time)


class ApiClient:
    """`timeout` bounds each connect/read/write; `total_seconds` bounds a whole request;
    `proxy` and `ca_file` as in `transport.make_client` (ignored when `client` is given)."""

    def __init__(self, base_url: str, token: str, timeout: httpx.Timeout,
                 client: httpx.Client | None = None, *, proxy: str | None = None,
                 ca_file: Path | str | None = None, total_seconds: float = TOTAL_SECONDS,
                 max_answer: int = MAX_ANSWER, trust: ssl.SSLContext | None = None):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.total_seconds, self.max_answer = total_seconds, max_answer
        self._clients = Swappable(
            client or make_client("api", timeout, proxy, ca_file, trust=trust), proxy)
        self._headers = {"User-Agent": f"uplift-capture-daemon/{__version__}"}
        self.pace: Pace | None = None  # the station's reads of captures, at most max_rate

    def close(self) -> None:
        self._clients.close()

    def adopt(self, other: ApiClient) -> None:
        """New connection settings (a reload): requests from now on use `other`'s client,
        which this one then owns (`other` is spent); those in flight finish on the old one."""
        self._clients.replace(other._clients)
        self.base_url, self.total_seconds = other.base_url, other.total_seconds

    def set_token(self, token: str) -> None:
        """A replaced token (rotation): the next request uses it."""
        self._token = token

    def post(self, path: str, body: Any) -> httpx.Response:
        """POST JSON under the total deadline; the answer read (capped) before returning.
        A 2xx answer over the cap is refused; an error answer is cut at the cap."""
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        started = time.monotonic()
        proxy = self._clients.proxy
        try:
            with self._clients.lease() as (client, proxy), deadline(self.total_seconds), \
                    client.stream(method, f"{self.base_url}{path}", json=body, headers={
                        **self._headers, "Authorization": f"Bearer {self._token}"}) as r:
                return read_capped(r, self.max_answer, Where.API, refuse=r.is_success)
        except httpx.HTTPError as exc:
            if time.monotonic() - started >= self.total_seconds - 0.05:
                raise TransferError(Where.API, Kind.TIMEOUT,
                                    f"the Uplift API did not complete its answer within "
                                    f"{self.total_seconds:g} s") from None
            raise transport_error(exc, Where.API, proxy) from None

    def create_capture(self, body: dict[str, Any], now: float | None = None,
                       skew: float = 0.0) -> Reserved:
        """Reserve an upload. `now` (our wall clock) and `skew` (the API's clock minus ours)
        decide whether the answer's expiry is already past."""
        response = self.post("/captures", body)
        if not response.is_success:
            raise http_error(response, Where.API)
        try:
            data = json.loads(response.content)
            return parse_reservation(data, body, time.time() if now is None else now, skew,
                                     _date(response, None))
        except ValueError as exc:
            reason = str(exc) if not isinstance(exc, json.JSONDecodeError) else \
                "the answer is not JSON"
            raise TransferError(Where.API, Kind.MALFORMED,
                                f"the Uplift API sent a reservation we cannot use: {reason}",
                                status=response.status_code,
                                server_time=_date(response, None)) from None

    def _read(self, path: str) -> Any:
        """A paced GET of Uplift's captures: the JSON of a 2xx, else TransferError (a 429's
        Retry-After holds every read of this station)."""
        if self.pace is not None:
            self.pace.wait()
        response = self._request("GET", path)
        if not response.is_success:
            err = http_error(response, Where.API)
            if self.pace is not None and err.retry_after is not None:
                self.pace.hold(err.retry_after)
            raise err
        try:
            return json.loads(response.content)
        except ValueError:
            return None

    def get_capture(self, session_id: str) -> Capture:
        """GET /captures/{id}: what Uplift has of a capture. An error answer (404 when it does
        not exist or was deleted) raises TransferError with its status; so does a 2xx whose
        `status` we cannot read (Kind.MALFORMED)."""
        return parse_capture(self._read(f"/captures/{quote(session_id, safe='')}"), session_id)

    def list_captures(self, status: str, limit: int = 500, offset: int = 0
                      ) -> tuple[list[Capture], int]:
        """GET /captures?source=api&status=...: one page of this organization's API captures
        in that status, and how many there are in all."""
        data = self._read(f"/captures?source=api&status={quote(status)}&limit={limit}"
                          f"&offset={offset}")
        rows = data.get("captures") if isinstance(data, dict) else None
        total = data.get("total_count") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not isinstance(total, int):
            raise TransferError(Where.API, Kind.MALFORMED,
                                "the Uplift API sent a list of captures we cannot read")
        return [parse_capture(r, "") for r in rows], total


def parse_capture(data: Any, session_id: str) -> Capture:
    status = data.get("status") if isinstance(data, dict) else None
    if status not in CAPTURE_STATUSES:
        raise TransferError(Where.API, Kind.MALFORMED,
                            f"the Uplift API sent a capture we cannot read (status "
                            f"{str(status)[:40]!r})")
    assert isinstance(data, dict)
    error, fps = data.get("error"), data.get("fps_detected")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not 0 < fps < 1e6:
        fps = None
    return Capture(str(data.get("session_id") or session_id)[:255], str(status),
                   error[:300] if isinstance(error, str) else None,
                   None if fps is None else float(fps))
