"""Request bodies the console will take: small ones. The console's only body is the login form
(a password and a token); its buttons post nothing. Anything larger is refused with 413 before it
is read: at once when Content-Length says so, and for a chunked body as soon as the count passes
the cap. The connection is then closed, so the rest is never read (uvicorn stops reading a body
nobody consumes beyond its small high-water mark)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from daemon import logs
from daemon.web.security import HEADERS

MAX_BODY = 16 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """Content-Length as a number; None when absent (chunked, or no body)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            # h11 has refused a malformed or repeated one already; be safe anyway.
            return int(value) if value.strip().isdigit() else MAX_BODY + 1
    return None


class BodyLimit:
    """Pure ASGI middleware (outermost: it runs before the Host and password checks, so no one
    can make the console hold a large body, whoever they are)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit
        self.log = logs.get("uplift.web")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope["headers"])
        if length is not None:
            if length > self.limit:
                await self._refuse(scope, send, length)
                return
            await self.app(scope, receive, send)  # h11 holds the body to its declared length
            return
        if not any(n.lower() == b"transfer-encoding" for n, _ in scope["headers"]):
            await self.app(scope, receive, send)  # no body at all
            return
        # Chunked: read it here, counting, up to the cap; then hand it on whole.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._refuse(scope, send, None)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _refuse(self, scope: Scope, send: Send, length: int | None) -> None:
        client = (scope.get("client") or ("", 0))[0]
        self.log.warning("web.refused", why="body too large", path=scope.get("path", ""),
                         client=client, length=length, limit=self.limit)
        text = f"413: the console takes request bodies of at most {self.limit} bytes\n".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", str(len(text)).encode()),
                   (b"connection", b"close"),  # the rest of the body is never read
                   *((k.lower().encode(), v.encode()) for k, v in HEADERS.items())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": text, "more_body": False})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later: the disconnect, when it comes

    return replay
