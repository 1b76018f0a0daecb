"""Device cookies: a browser that logged in carries one for 30 days, and its wrong passwords
are counted by it, not by its address. Another client's failures (a script on this machine, a
neighbour behind the same NAT) then never lock out the coach's own browser.

The cookie is `<id>.<expiry>.<signature>`, signed with a key derived from the console
password: it survives a restart (sessions do not), needs nothing stored, and is void once the
password changes. The key is derived with PBKDF2 (slow on purpose: a stolen cookie is no quick
way to guess the password), once, at the first cookie it is asked for."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

COOKIE = "uplift_device"
MAX_AGE = 30 * 24 * 3600
_SALT = b"uplift-capture console device cookie"
_ROUNDS = 200_000
_MAX_COOKIE = 128


class Devices:
    def __init__(self, password: str, wall: Callable[[], float] = time.time):
        self._password, self.wall = password, wall
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def issue(self) -> str:
        device = secrets.token_urlsafe(12)
        expiry = int(self.wall()) + MAX_AGE
        return f"{device}.{expiry}.{self._sign(device, expiry)}"

    def device_of(self, cookie: str | None) -> str | None:
        """The device a well-signed, unexpired cookie names; None for anything else."""
        if not cookie or len(cookie) > _MAX_COOKIE or not cookie.isascii():
            return None
        device, _, rest = cookie.partition(".")
        expiry_text, _, signature = rest.partition(".")
        if not device or not expiry_text.isdigit() or len(expiry_text) > 12:
            return None
        expiry = int(expiry_text)
        if not hmac.compare_digest(signature.encode(), self._sign(device, expiry).encode()):
            return None
        if not 0 < expiry - self.wall() <= MAX_AGE + 3600:
            return None
        return device

    def _sign(self, device: str, expiry: int) -> str:
        message = f"{device}.{expiry}".encode()
        return hmac.new(self._derived(), message, hashlib.sha256).hexdigest()[:40]

    def _derived(self) -> bytes:
        with self._lock:
            if self._key is None:
                self._key = hashlib.pbkdf2_hmac("sha256", self._password.encode(), _SALT,
                                                _ROUNDS)
            return self._key
