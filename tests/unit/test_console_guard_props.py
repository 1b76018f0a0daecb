"""The console's guards as pure decisions, searched with Hypothesis: the login throttle, the
session table, the Host parser and the job-id parser (issue 19, items 10 and 11)."""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from daemon.jobs.models import MAX_ID, parse_job_id
from daemon.web.security import Guard, parse_host
from daemon.web.sessions import Sessions
from daemon.web.throttle import Throttle, client_key


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **kw: float) -> Throttle:
    options = dict(free_tries=3, base_delay=2.0, max_delay=30.0, forget_after=120.0,
                   max_clients=8)
    options.update(kw)
    return Throttle(clock, **options)  # type: ignore[arg-type]


# ---- the throttle ---------------------------------------------------------------------------

@given(st.integers(0, 10_000))
def test_delay_never_decreases_and_is_capped(failures: int) -> None:
    t = throttle(Clock())
    assert 0.0 <= t.delay(failures) <= t.delay(failures + 1) <= t.max_delay
    assert (t.delay(failures) == 0.0) == (failures < t.free_tries)


clients = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
ops = st.lists(st.one_of(st.tuples(st.just("fail"), clients),
                         st.tuples(st.just("ok"), clients),
                         st.tuples(st.just("tick"), st.floats(0.0, 200.0))), max_size=60)


@given(ops)
def test_throttle_against_a_model(steps: list[tuple[str, object]]) -> None:
    """Failures in a row grow the wait (never shrink it) until a success or a quiet spell
    forgets them; the wait never exceeds the cap nor outlasts it."""
    clock = Clock()
    t = throttle(clock)
    model: dict[str, tuple[int, float]] = {}  # client -> (failures in a row, last failure)
    for op, arg in steps:
        if op == "tick":
            clock.now += float(arg)  # type: ignore[arg-type]
        elif op == "ok":
            t.succeeded(str(arg))
            model.pop(str(arg), None)
        else:
            before = t.delay(t.failures(str(arg)))
            n = t.failed(str(arg))
            failures, last = model.get(str(arg), (0, clock.now))
            if clock.now - last >= t.forget_after:
                failures = 0
            model[str(arg)] = (failures + 1, clock.now)
            assert n == failures + 1
            if failures:  # within the window: one more failure never shortens the wait
                assert t.delay(n) >= before
        for client, (failures, last) in model.items():
            quiet = clock.now - last
            expected = 0 if quiet >= t.forget_after else failures
            assert t.failures(client) == expected
            wait = t.wait(client)
            assert 0.0 <= wait <= t.max_delay
            assert wait == pytest.approx(max(0.0, t.delay(expected) - quiet) if expected else 0)


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=200))
def test_throttle_memory_is_bounded(addresses: list[int]) -> None:
    clock = Clock()
    t = throttle(clock, max_clients=8)
    for a in addresses:
        t.failed(str(ipaddress.IPv4Address(a)))
        clock.now += 0.01
        assert len(t) <= 8
    assert t.failures(str(ipaddress.IPv4Address(addresses[-1]))) >= 1  # the newest is kept


def test_lockout_then_the_right_password_after_the_wait() -> None:
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        assert t.wait("a") == 0.0
        t.failed("a")
    assert t.wait("a") == 2.0 and t.retry_after("a") == 2
    assert t.wait("b") == 0.0  # per client
    clock.now += 2.0
    assert t.wait("a") == 0.0
    t.failed("a")
    assert t.wait("a") == 4.0
    clock.now += 4.0
    t.succeeded("a")
    assert t.failures("a") == 0 and t.wait("a") == 0.0


def test_throttle_refuses_settings_that_make_no_sense() -> None:
    with pytest.raises(ValueError):
        Throttle(Clock(), base_delay=10.0, max_delay=5.0)
    with pytest.raises(ValueError):
        Throttle(Clock(), max_delay=60.0, forget_after=30.0)


@given(st.integers(0, 2**128 - 1))
def test_an_ipv6_client_is_one_address_in_one_spelling(addr: int) -> None:
    a = ipaddress.IPv6Address(addr)
    assume(a.ipv4_mapped is None)
    # All of loopback is one client (issue 30, item 2): ::1 and its neighbour ::0 differ.
    expected = "loopback" if a.is_loopback else a.compressed
    assert client_key(a.exploded) == client_key(f"[{a.compressed}]") == expected
    assert client_key(str(ipaddress.IPv6Address(addr ^ 1))) != client_key(str(a))
    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown"


# ---- sessions -------------------------------------------------------------------------------

@given(st.text(max_size=300))
def test_any_cookie_is_an_answer_not_an_error(cookie: str) -> None:
    s = Sessions(Clock())
    token = s.new()
    assert s.valid(cookie) == (cookie == token)
    s.end(cookie)  # ending a session that is not there is nothing
    assert s.valid(token) == (cookie != token)


@given(st.lists(st.sampled_from(["new", "use", "tick", "end"]), max_size=80),
       st.integers(1, 6))
def test_sessions_expire_when_idle_and_stay_bounded(steps: list[str], limit: int) -> None:
    clock = Clock()
    s = Sessions(clock, idle=100.0, limit=limit)
    live: dict[str, float] = {}  # token -> last use, newest last
    for step in steps:
        if step == "new":
            live[s.new()] = clock.now
        elif step == "tick":
            clock.now += 40.0
        elif live and step == "use":
            token = next(iter(live))
            assert s.valid(token) == (clock.now - live[token] < 100.0)
            live.pop(token)
            if s.valid(token):
                live[token] = clock.now
        elif live and step == "end":
            token = next(reversed(live))
            s.end(token)
            live.pop(token)
            assert not s.valid(token)
        live = {t: used for t, used in live.items() if clock.now - used < 100.0}
        while len(live) > limit:  # the least recently used go first
            live.pop(next(iter(live)))
        assert len(s) <= limit
    for token in live:
        assert s.valid(token)


def test_a_guard_compares_non_ascii_credentials_without_raising() -> None:
    g = Guard("127.0.0.1", "pässword")
    g.new_session()
    assert not g.authenticated(None, "é" * 43)
    assert not g.authenticated("Basic w6k=", "\udcff")
    import base64

    assert g.authenticated("Basic " + base64.b64encode("x:pässword".encode()).decode(), None)


# ---- Host -----------------------------------------------------------------------------------

label = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=20)
# A name whose last label is all digits is no DNS name (RFC 3696 2.) but a malformed address
# such as 0.0.0.00, which the guard refuses (see the examples below).
hostname = st.lists(label, min_size=1, max_size=4).filter(
    lambda labels: not labels[-1].isdigit()).map(".".join)
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: f"[{ipaddress.IPv6Address(n)}]")
port = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))


@given(st.one_of(hostname, ipv4, ipv6), port, st.booleans())
def test_host_round_trips(host: str, suffix: str, upper: bool) -> None:
    header = (host + suffix).upper() if upper else host + suffix
    assert parse_host(header) == host.strip("[]")


@given(st.text(max_size=60))
def test_any_host_header_is_a_plain_host_or_none(header: str) -> None:
    host = parse_host(header)
    if host is None:
        return
    assert not set(host) & set("@/?#\\ \t\r\n%") and host == host.lower()
    if ":" in host:
        ipaddress.IPv6Address(host)
    assert header.lower().startswith((host, f"[{host}]"))


@given(st.one_of(hostname, ipv4), st.text(min_size=1, max_size=20))
def test_user_info_paths_and_junk_are_refused(host: str, junk: str) -> None:
    assert parse_host(f"localhost:1@{host}") is None
    assert parse_host(f"user@{host}") is None
    assert parse_host(f"{host}/{junk}") is None
    # Only ASCII digits make a port: '²'.isdigit() is true, yet it is no number.
    assume(not (junk.isascii() and junk.isdigit()) or len(junk) > 5 or int(junk) > 65535)
    assert parse_host(f"{host}:{junk}") is None


@pytest.mark.parametrize("header", ["localhost:1@evil.example", "127.0.0.1:80@evil.example",
                                    "localhost:99999", "localhost:", "local host", "[::1",
                                    "[::1]x", "[fe80::1%eth0]:80", "-bad-.example", "",
                                    "999.1.1.1", "localhost:+80", "\uff4cocalhost"])
def test_host_examples_refused(header: str) -> None:
    assert parse_host(header) is None


# ---- job ids --------------------------------------------------------------------------------

@given(st.text(max_size=30))
def test_job_id_is_a_possible_row_or_none(text: str) -> None:
    n = parse_job_id(text)
    assert n is None or (1 <= n <= MAX_ID and str(n) == text.lstrip("0"))


@given(st.integers(-(2**70), 2**70))
def test_job_id_range(n: int) -> None:
    assert parse_job_id(str(n)) == (n if 1 <= n <= MAX_ID else None)
