"""Device cookies and the throttle's client key (issue 30, item 2), searched with Hypothesis."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.web.devices import MAX_AGE, Devices
from daemon.web.throttle import LOOPBACK, client_key

NOW = 1_800_000_000.0


class Wall:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


DEVICES = Devices("correct horse battery staple", Wall())
ISSUED = [DEVICES.issue() for _ in range(3)]


@given(st.sampled_from(ISSUED), st.integers(0, 80), st.characters(codec="utf-8"))
@settings(max_examples=200)
def test_a_changed_cookie_names_no_device(cookie: str, at: int, char: str) -> None:
    assert DEVICES.device_of(cookie) == cookie.split(".")[0]
    if at < len(cookie) and cookie[at] != char:
        assert DEVICES.device_of(cookie[:at] + char + cookie[at + 1:]) is None


@given(st.text(max_size=200))
def test_junk_names_no_device(text: str) -> None:
    assert DEVICES.device_of(text) is None


def test_a_cookie_lasts_thirty_days_and_only_for_its_password() -> None:
    wall = Wall()
    devices = Devices("pw-one", wall)
    cookie = devices.issue()
    assert Devices("pw-two", wall).device_of(cookie) is None
    wall.now += MAX_AGE - 1
    assert devices.device_of(cookie) is not None
    wall.now += 2
    assert devices.device_of(cookie) is None


@given(st.integers(0, 2**24 - 1))
def test_all_of_loopback_is_one_client(n: int) -> None:
    v4 = str(ipaddress.IPv4Address((127 << 24) + n))
    assert client_key(v4) == client_key("::1") == client_key(f"::ffff:{v4}") == LOOPBACK


@given(st.ip_addresses())
def test_other_addresses_keep_their_own_key(addr: ipaddress.IPv4Address | ipaddress.IPv6Address
                                            ) -> None:
    key = client_key(str(addr))
    mapped = getattr(addr, "ipv4_mapped", None)
    assert (key == LOOPBACK) == (addr.is_loopback or bool(mapped and mapped.is_loopback))
