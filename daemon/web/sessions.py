"""The login form's sessions: random tokens held in memory (a restart logs everyone out).

A session unused for `idle` seconds (12 h: a day's work, not a week's) is gone; at most `limit`
are held, the least recently used dropped first, so logging in again and again costs bounded
memory. A cookie is compared as bytes in constant time against each held token, whatever it
holds (a cookie is the client's text: non-ASCII, huge, empty)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

IDLE = 12 * 3600.0
LIMIT = 256
_MAX_COOKIE = 128  # our tokens are 43 characters; anything far longer is not one of them


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, idle: float = IDLE,
                 limit: int = LIMIT):
        if idle <= 0 or limit < 1:
            raise ValueError("idle > 0 and limit >= 1")
        self.clock, self.idle, self.limit = clock, idle, limit
        self._tokens: OrderedDict[bytes, float] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # the login (event loop) and logout (thread pool) both

    def new(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            self._expire(now)
            self._tokens[token.encode()] = now
            while len(self._tokens) > self.limit:
                self._tokens.popitem(last=False)
        return token

    def valid(self, cookie: str | None) -> bool:
        """Is `cookie` a live session? A hit counts as use (the idle time starts again)."""
        found = self._find(cookie)
        if found is None:
            return False
        with self._lock:
            if found in self._tokens:
                self._tokens[found] = self.clock()
                self._tokens.move_to_end(found)
                return True
        return False

    def end(self, cookie: str | None) -> None:
        found = self._find(cookie)
        if found is not None:
            with self._lock:
                self._tokens.pop(found, None)

    def __len__(self) -> int:
        return len(self._tokens)

    def _find(self, cookie: str | None) -> bytes | None:
        if not cookie:
            return None
        given = cookie.encode("utf-8", "surrogateescape")[:_MAX_COOKIE]
        with self._lock:
            self._expire(self.clock())
            held = list(self._tokens)
        match = None
        for token in held:  # every one compared: the time says nothing of which matched
            if hmac.compare_digest(given, token):
                match = token
        return match

    def _expire(self, now: float) -> None:
        while self._tokens:
            token, used = next(iter(self._tokens.items()))
            if now - used < self.idle:
                break
            del self._tokens[token]
