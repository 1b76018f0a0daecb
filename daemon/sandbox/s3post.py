"""S3 browser-POST semantics for the sandbox: signed policies and a streaming multipart reader."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlencode, urlsplit
from xml.sax.saxutils import escape

MAX_FIELD = 64 * 1024
READ = 1024 * 1024
MAX_OBJECT = 5 * 1024**3  # S3's single POST limit


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def xml(self, **extra: str) -> bytes:
        """S3's error document: <Error><Code/><Message/>(extra elements)<RequestId/><HostId/>
        </Error>; a 307 TemporaryRedirect, say, names its Endpoint and Bucket."""
        more = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(self.code)}</Code>'
                f"<Message>{escape(self.message)}</Message>{more}"
                f"<RequestId>{secrets.token_hex(8).upper()}</RequestId>"
                f"<HostId>sandbox</HostId></Error>").encode()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_fields(secret: bytes, bucket: str, key: str, expires_at: float,
                now: float, redirect: str | None = None) -> dict[str, str]:
    """Upload fields like AWS's generate_presigned_post: key, Content-Type, SigV4 fields,
    policy, signature; with `redirect`, a signed success_action_redirect to that URL."""
    stamp = datetime.fromtimestamp(now, UTC)
    fields = {
        "key": key,
        "Content-Type": "video/quicktime",
        **({"success_action_redirect": redirect} if redirect else {}),
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"SANDBOXKEY/{stamp:%Y%m%d}/us-east-1/s3/aws4_request",
        "x-amz-date": f"{stamp:%Y%m%dT%H%M%SZ}",
    }
    conditions: list[Any] = [{"bucket": bucket}]
    conditions += [{k: v} for k, v in fields.items()]
    conditions.append(["content-length-range", 1, MAX_OBJECT])
    policy = base64.b64encode(json.dumps(
        {"expiration": iso(expires_at), "conditions": conditions}).encode()).decode()
    fields["policy"] = policy
    fields["x-amz-signature"] = hmac.new(secret, policy.encode(), hashlib.sha256).hexdigest()
    return fields


def check_policy(secret: bytes, bucket: str, fields: dict[str, str], now: float
                 ) -> dict[str, Any]:
    """Raise S3Error as S3 would for a form whose policy does not allow it."""
    policy = fields.get("policy")
    if not policy:
        raise S3Error(400, "InvalidArgument", "Bucket POST must contain a field named 'policy'.")
    signature = fields.get("x-amz-signature", "")
    expected = hmac.new(secret, policy.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does "
                      "not match the signature you provided.")
    try:
        doc = json.loads(base64.b64decode(policy))
        expiration = datetime.fromisoformat(doc["expiration"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        raise S3Error(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if expiration.timestamp() <= now:
        raise S3Error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    allowed = {"policy", "x-amz-signature", "file"}
    for cond in doc["conditions"]:
        if isinstance(cond, dict):
            ((name, value),) = cond.items()
            allowed.add(name)
            actual = bucket if name == "bucket" else fields.get(name)
            if actual != value:
                raise S3Error(403, "AccessDenied", "Invalid according to Policy: Policy "
                              f'Condition failed: ["eq", "${name}", "{value}"]')
    extra = sorted(set(fields) - allowed)
    if extra:
        raise S3Error(403, "AccessDenied",
                      f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")
    return dict(doc)


def redirect_location(url: str, bucket: str, key: str, etag: str) -> str:
    """Where S3 sends a stored success_action_redirect upload: the URL asked for, with bucket,
    key and etag (quoted, as in the ETag header) appended to its query."""
    joiner = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
    return url + joiner + urlencode({"bucket": bucket, "key": key, "etag": etag})


@dataclass
class FilePart:
    name: str
    file_name: str
    size: int = 0
    md5: str = ""
    sha256: str = ""


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    file: FilePart | None = None


class _Reader:
    """Buffered reads of exactly Content-Length bytes from the socket."""

    def __init__(self, rfile: BinaryIO, length: int, throttle: Callable[[int], None],
                 read_size: int):
        self.rfile, self.left, self.buf, self.throttle = rfile, length, b"", throttle
        self.read_size = read_size

    def fill(self) -> bool:
        if self.left <= 0:
            return False
        chunk = self.rfile.read(min(self.read_size, self.left))
        if not chunk:
            raise S3Error(400, "IncompleteBody",
                          "You did not provide the number of bytes specified by the "
                          "Content-Length HTTP header")
        self.left -= len(chunk)
        self.throttle(len(chunk))
        self.buf += chunk
        return True

    def drain(self) -> None:
        while self.left > 0:
            self.buf = b""
            self.fill()


def read_form(rfile: BinaryIO, length: int, boundary: bytes,
              on_fields: Callable[[dict[str, str]], None], sink: BinaryIO,
              throttle: Callable[[int], None] = lambda n: None, read_size: int = READ) -> Form:
    """Parse a multipart/form-data body as it streams in. `on_fields` sees every field before
    the file's bytes (where S3 checks the policy); the file goes to `sink` with its hashes."""
    r = _Reader(rfile, length, throttle, read_size)
    form = Form()
    delim = b"\r\n--" + boundary
    r.buf = b"\r\n"  # so the first boundary matches the same delimiter as the rest
    try:
        while True:
            while (i := r.buf.find(delim)) < 0 or len(r.buf) < i + len(delim) + 2:
                if not r.fill():
                    raise S3Error(400, "MalformedPOSTRequest", "The body of your POST request "
                                  "is not well-formed multipart/form-data.")
            after = r.buf[i + len(delim):i + len(delim) + 2]
            r.buf = r.buf[i + len(delim) + 2:]
            if after == b"--":
                break
            if after != b"\r\n":
                raise S3Error(400, "MalformedPOSTRequest", "bad multipart boundary line")
            while (h := r.buf.find(b"\r\n\r\n")) < 0:
                if len(r.buf) > MAX_FIELD or not r.fill():
                    raise S3Error(400, "MalformedPOSTRequest", "bad multipart part headers")
            headers = _headers(r.buf[:h])
            r.buf = r.buf[h + 4:]
            name, file_name = _disposition(headers.get("content-disposition", ""))
            if form.file is not None:
                raise S3Error(400, "InvalidArgument",
                              f"field '{name}' comes after the file; the file must be last")
            if file_name is None:
                form.fields[name] = _read_value(r, delim).decode("utf-8", "replace")
                continue
            on_fields(form.fields)
            form.file = _read_file(r, delim, name, file_name, sink)
        r.drain()
    except S3Error:
        r.drain()  # read the rest so the client sees our answer, not a reset
        raise
    if form.file is None:
        raise S3Error(400, "InvalidArgument", "POST requires exactly one file upload per request.")
    return form


def _headers(block: bytes) -> dict[str, str]:
    out = {}
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def _disposition(value: str) -> tuple[str, str | None]:
    name, file_name = "", None
    for piece in value.split(";")[1:]:
        if "=" in piece:
            k, v = piece.split("=", 1)
            v = v.strip().strip('"')
            if k.strip() == "name":
                name = v
            elif k.strip() == "filename":
                file_name = v
    return name, file_name


def _read_value(r: _Reader, delim: bytes) -> bytes:
    while (i := r.buf.find(delim)) < 0:
        if len(r.buf) > MAX_FIELD or not r.fill():
            raise S3Error(400, "MalformedPOSTRequest", "a form field is too long or cut off")
    value, r.buf = r.buf[:i], r.buf[i:]
    return value


def _read_file(r: _Reader, delim: bytes, name: str, file_name: str, sink: BinaryIO) -> FilePart:
    part = FilePart(name, file_name)
    md5, sha = hashlib.md5(), hashlib.sha256()
    keep = len(delim) - 1
    while True:
        i = r.buf.find(delim)
        if i >= 0:
            data, r.buf = r.buf[:i], r.buf[i:]
        elif len(r.buf) > keep:
            data, r.buf = r.buf[:-keep], r.buf[-keep:]
        else:
            data = b""
        if data:
            sink.write(data)
            md5.update(data)
            sha.update(data)
            part.size += len(data)
        if i >= 0:
            break
        if not r.fill():
            raise S3Error(400, "MalformedPOSTRequest", "the file part is cut off")
    part.md5, part.sha256 = md5.hexdigest(), sha.hexdigest()
    return part
