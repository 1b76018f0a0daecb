"""How often one client may try a wrong console password.

The first few wrong tries are answered at once (typos). After that each further try must wait
twice as long as the one before (capped at `max_delay`); a try inside the wait is refused with
429 and Retry-After before its password is looked at, so a right guess inside the wait tells the
guesser nothing. A client that stays quiet for `forget_after` seconds starts afresh; a right
password forgets it at once. The wait is per client address: whole addresses, even IPv6 ones (on
a LAN every neighbour shares one /64, so counting by /64 would let one of them lock everyone
out). At most `max_clients` addresses are remembered (the oldest goes first), so a flood of
addresses costs bounded memory. All of loopback is one client; a browser that logged in
before is counted by its device cookie instead (devices.py).

No clock of its own: `clock` is time.monotonic in the service, a fake one in tests."""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_TRIES = 5
BASE_DELAY = 1.0  # seconds after the last free try; doubles with each further failure
MAX_DELAY = 60.0  # the longest a right password is kept out, after a run of wrong ones
FORGET_AFTER = 15 * 60.0
MAX_CLIENTS = 4096


LOOPBACK = "loopback"


def client_key(host: str | None) -> str:
    """The address a client is throttled by, in one spelling (an IPv4-mapped IPv6 address as
    its IPv4); all of loopback (127.0.0.0/8, ::1) as one client, since any local process can
    pick any of its addresses; anything else (a Unix socket, no peer) as it is."""
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return LOOPBACK if addr.is_loopback else str(addr)


@dataclass
class _Record:
    failures: int
    last: float  # the clock at the last wrong try


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 free_tries: int = FREE_TRIES, base_delay: float = BASE_DELAY,
                 max_delay: float = MAX_DELAY, forget_after: float = FORGET_AFTER,
                 max_clients: int = MAX_CLIENTS):
        if free_tries < 0 or base_delay <= 0 or max_delay < base_delay or max_clients < 1:
            raise ValueError("free_tries >= 0, 0 < base_delay <= max_delay, max_clients >= 1")
        if forget_after < max_delay:  # a wait must not outlive the memory of why
            raise ValueError("forget_after must be at least max_delay")
        self.clock = clock
        self.free_tries, self.base_delay, self.max_delay = free_tries, base_delay, max_delay
        self.forget_after, self.max_clients = forget_after, max_clients
        self._clients: OrderedDict[str, _Record] = OrderedDict()  # oldest failure first
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """The wait imposed after `failures` wrong tries in a row (pure)."""
        if failures < self.free_tries or failures <= 0:
            return 0.0
        step = failures - self.free_tries
        if step >= 64:  # 2**64 s is past any cap; avoid a float overflow
            return self.max_delay
        return min(self.base_delay * 2.0 ** step, self.max_delay)

    def wait(self, client: str) -> float:
        """Seconds `client` must still wait before its next password is looked at (0: now)."""
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            record = self._clients.get(client)
            if record is None:
                return 0.0
            return max(0.0, record.last + self.delay(record.failures) - now)

    def retry_after(self, client: str) -> int:
        """wait() as a Retry-After header wants it: whole seconds, at least 1."""
        return max(1, math.ceil(self.wait(client)))

    def failed(self, client: str) -> int:
        """Count a wrong password from `client`; returns its failures in a row."""
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            record = self._clients.pop(client, None) or _Record(0, now)
            record.failures += 1
            record.last = now
            self._clients[client] = record  # to the end: the newest failure
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            return record.failures

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def failures(self, client: str) -> int:
        with self._lock:
            self._forget_old(self.clock())
            record = self._clients.get(client)
            return record.failures if record else 0

    def __len__(self) -> int:
        return len(self._clients)

    def _forget_old(self, now: float) -> None:
        # Ordered by last failure: the expired ones are at the front.
        while self._clients:
            key, record = next(iter(self._clients.items()))
            if now - record.last < self.forget_after:
                break
            del self._clients[key]
