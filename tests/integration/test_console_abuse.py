"""The console as a hostile LAN neighbour meets it, over real HTTP on loopback (issue 19, items
9-11): huge bodies, password guessing, odd cookies, forged Host headers, ids out of range."""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from console_support import add_job, console, csrf_token

from daemon.jobs.models import JobState

SECRET = "correct horse battery staple"
MIB = 1 << 20


class Clock:
    """The throttle's and the sessions' clock, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def client(server: object, local: str | None = None, **kw: object) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=local) if local else None
    return httpx.Client(base_url=server.url, timeout=10,  # type: ignore[attr-defined]
                        transport=transport, **kw)


def password_file(tmp: Path) -> Path:
    pw = tmp / "web-password"
    pw.write_text(SECRET + "\n")
    return pw


# ---- item 9: bodies -------------------------------------------------------------------------

def vm_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@contextmanager
def rss_peak() -> Iterator[list[float]]:
    """The process's largest VmRSS while the block runs (the console is in this process)."""
    peak = [vm_rss_mib()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], vm_rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def post_body(port: int, path: str, total: int, chunked: bool,
              limit_s: float = 60.0) -> tuple[int, bytes, int]:
    """POST `total` bytes as fast as the server takes them, reading its answer all along:
    (status, raw answer, body bytes the server let us send before answering)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n".encode())
    sock.setblocking(False)
    piece = b"a" * MIB
    frame = f"{MIB:x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    pending, sent, answer = memoryview(b""), 0, b""
    writing, deadline = True, time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            if writing and not pending:
                if sent >= total:
                    pending = memoryview(b"0\r\n\r\n" if chunked else b"")
                    writing = bool(pending)
                else:
                    pending, sent = memoryview(frame), sent + MIB
            readable, writable, _ = select.select([sock], [sock] if writing else [], [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                answer += data
                if _complete(answer):
                    break
            if writable and pending:
                try:
                    pending = pending[sock.send(pending):]
                except (BrokenPipeError, ConnectionResetError):
                    writing = False  # the server closed: read what it said
    finally:
        sock.close()
    found = re.match(rb"HTTP/1.1 (\d{3})", answer)
    assert found, f"no answer after sending {sent} bytes: {answer[:200]!r}"
    return int(found.group(1)), answer, sent


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    return bool(sep and length and len(body) >= int(length.group(1)))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_huge_body_is_refused_before_it_is_read(tmp_path: Path, chunked: bool) -> None:
    total = 150 * MIB
    with console(tmp_path, password_file=password_file(tmp_path)) as (server, _s, _b):
        for path in ("/login", "/api/pause"):  # open and guarded routes alike
            started = time.monotonic()
            with rss_peak() as peak:
                base = peak[0]
                status, answer, sent = post_body(server.port, path, total, chunked)
            elapsed = time.monotonic() - started
            assert status == 413, answer[:300]
            assert b"connection: close" in answer.lower()
            assert sent < 40 * MIB, f"the server read {sent / MIB:.0f} MiB before refusing"
            assert peak[0] - base < 40, f"RSS grew {peak[0] - base:.0f} MiB for {path}"
            assert elapsed < 10
        # A form of ordinary size still works, chunked or not; the cap is 16 KiB.
        with client(server) as c:
            for size, code in ((16 * 1024, 401), (16 * 1024 + 1, 413)):
                body = b"password=" + b"x" * (size - 9)
                sized = c.post("/login", content=body)
                chunks = c.post("/login", content=iter([body[:100], body[100:]]))
                assert (sized.status_code, chunks.status_code) == (code, code), size
            token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
            form = f"password={SECRET.replace(' ', '+')}&csrf={token}".encode()
            r = c.post("/login", content=iter([form]),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 303, r.text
            assert c.get("/api/status").status_code == 200


# ---- item 10: password guessing -------------------------------------------------------------

def test_wrong_basic_auth_is_throttled_then_the_right_password_works(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from daemon.web import Throttle

    clock = Clock()
    throttle = Throttle(clock, free_tries=3, base_delay=5.0, max_delay=20.0, forget_after=60.0)
    with console(tmp_path, password_file=password_file(tmp_path), throttle=throttle) as (
            server, _store, _backend), client(server) as c:
        answers = [c.get("/api/status", auth=("x", f"guess-{i}")) for i in range(20)]
        codes = [a.status_code for a in answers]
        assert codes[:3] == [401] * 3 and codes[3:] == [429] * 17, codes
        assert answers[3].headers["retry-after"] == "5"
        # Inside the wait the right password is not looked at either.
        assert c.get("/api/status", auth=("x", SECRET)).status_code == 429
        with client(server, local="127.0.0.2") as other:  # all of loopback is one client
            assert other.get("/api/status", auth=("x", SECRET)).status_code == 429
        clock.now += 5.0
        assert c.get("/api/status", auth=("x", "guess-again")).status_code == 401
        locked = c.get("/api/status", auth=("x", SECRET))
        assert locked.status_code == 429 and locked.headers["retry-after"] == "10"
        clock.now += 10.0
        assert c.get("/api/status", auth=("x", SECRET)).status_code == 200  # and forgotten
        assert c.get("/api/status", auth=("x", "typo")).status_code == 401
    out, err = capfd.readouterr()
    logged = out + err
    assert logged.count("web.login_refused") >= 20
    assert "loopback" in logged and "throttled" in logged and "wrong password" in logged
    assert SECRET not in logged and "guess-" not in logged and "typo" not in logged


def test_many_wrong_passwords_are_not_all_answered(tmp_path: Path) -> None:
    """The service's own settings: a run of wrong passwords soon meets 429s."""
    with console(tmp_path, password_file=password_file(tmp_path)) as (server, _s, _b), \
            client(server) as c:
        answers = [c.get("/metrics", auth=("prometheus", f"guess-{i}")) for i in range(30)]
        codes = [a.status_code for a in answers]
        assert set(codes) == {401, 429} and codes.count(401) <= 10, codes
        assert codes[:5] == [401] * 5  # a few typos cost nothing
        assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)


def test_wrong_form_logins_are_throttled(tmp_path: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    from daemon.web import Throttle

    clock = Clock()
    throttle = Throttle(clock, free_tries=2, base_delay=30.0, max_delay=60.0, forget_after=60.0)
    with console(tmp_path, password_file=password_file(tmp_path), throttle=throttle) as (
            server, _store, _backend), client(server) as c:
        token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        codes = [c.post("/login", data={"password": f"guess-{i}", "csrf": token}).status_code
                 for i in range(10)]
        assert codes == [401, 401] + [429] * 8
        r = c.post("/login", data={"password": SECRET, "csrf": token})
        assert r.status_code == 429 and r.headers["retry-after"] == "30"
        assert "try again in 30 s" in r.text
        clock.now += 30.0
        r = c.post("/login", data={"password": SECRET, "csrf": token})
        assert r.status_code == 303 and c.get("/api/status").status_code == 200
    logged = "".join(capfd.readouterr())
    assert logged.count("web.login_refused") == 11
    assert SECRET not in logged and "guess-" not in logged


# ---- item 11: sessions, Host, ids -----------------------------------------------------------

def log_in(c: httpx.Client) -> str:
    token = c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
    r = c.post("/login", data={"password": SECRET, "csrf": token})
    assert r.status_code == 303, r.text
    return r.cookies["uplift_console"]


@pytest.mark.parametrize("cookie", ["uplift_console=\u00e9t\u00e9", "uplift_console=\u2603" * 3,
                                    "uplift_console=" + "x" * 4000, "uplift_console="])
def test_odd_session_cookies_are_401_not_500(tmp_path: Path, cookie: str) -> None:
    with console(tmp_path, password_file=password_file(tmp_path)) as (server, _s, _b), \
            client(server) as c:
        log_in(httpx.Client(base_url=server.url))  # one real session to compare against
        r = c.get("/api/status", headers={"Cookie": cookie.encode()})
        assert r.status_code == 401, r.text


def test_sessions_expire_when_idle_and_are_bounded(tmp_path: Path) -> None:
    from daemon.web import Sessions

    clock = Clock()
    sessions = Sessions(clock, limit=3)  # the default idle time: 12 h
    with console(tmp_path, password_file=password_file(tmp_path), sessions=sessions) as (
            server, _s, _b):
        with client(server) as c:
            log_in(c)
            clock.now += 11 * 3600
            assert c.get("/api/status").status_code == 200  # used: idle again from here
            clock.now += 11 * 3600
            assert c.get("/api/status").status_code == 200
            clock.now += 12 * 3600
            assert c.get("/api/status").status_code == 401
        browsers = [client(server) for _ in range(4)]
        try:
            for b in browsers:
                log_in(b)
                clock.now += 1
            assert browsers[0].get("/api/status").status_code == 401  # the oldest dropped
            assert all(b.get("/api/status").status_code == 200 for b in browsers[1:])
            assert len(sessions) == 3
        finally:
            for b in browsers:
                b.close()


@pytest.mark.parametrize("host", ["localhost:1@evil.example", "127.0.0.1:80@evil.example",
                                  "user@localhost", "localhost:80/evil", "localhost:99999",
                                  "[::1]@evil.example", "localhost:http"])
def test_host_with_userinfo_or_junk_is_refused(tmp_path: Path, host: str) -> None:
    with console(tmp_path) as (server, _s, _b), client(server) as c:
        assert c.get("/healthz", headers={"Host": host}).status_code == 403
        assert c.get("/healthz", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_ids_and_pages_out_of_range_are_answers_not_faults(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _b), client(server) as c:
        job = add_job(store, JobState.FAILED, "a.mov")
        h = {"X-CSRF-Token": csrf_token(c)}
        for bad in ("99999999999999999999", "9223372036854775808", "0", "-1", "%EF%BC%91",
                    "1_0"):
            r = c.post(f"/api/jobs/{bad}/retry", headers=h)
            assert r.status_code == 404, (bad, r.status_code, r.text)
        assert c.post("/api/jobs/9223372036854775807/retry", headers=h).status_code == 409
        far = c.get("/api/status", params={"page": "99999999999999999999"})
        assert far.status_code == 200 and far.json()["jobs"] == []
        assert c.post(f"/api/jobs/{job}/retry", headers=h).status_code == 200


def test_forwarded_headers_count_only_from_trusted_proxies(tmp_path: Path) -> None:
    """Issue 30, item 2: X-Forwarded-For names the client only when the peer is one of [web]
    trusted_proxies; from anyone else (a local process) a new header per try resets nothing."""
    from daemon.web import Throttle

    def via(c: httpx.Client, forwarded: str, password: str) -> int:
        return c.get("/api/status", auth=("x", password),
                     headers={"X-Forwarded-For": forwarded}).status_code

    throttle = Throttle(Clock(), free_tries=1, base_delay=30.0, max_delay=30.0)
    with console(tmp_path, password_file=password_file(tmp_path), throttle=throttle) as (
            server, _s, _b), client(server) as local, \
            client(server, local="127.0.0.3") as other:
        assert via(local, "192.0.2.1", "wrong") == 401
        assert via(local, "192.0.2.2", SECRET) == 429  # not trusted: the header changes nothing
        assert via(other, "192.0.2.3", SECRET) == 429  # another loopback address: same client
        assert throttle.failures("loopback") == 1 and throttle.failures("192.0.2.1") == 0

    throttle = Throttle(Clock(), free_tries=1, base_delay=30.0, max_delay=30.0)
    with console(tmp_path, password_file=password_file(tmp_path), throttle=throttle,
                 trusted_proxies=("127.0.0.1",)) as (server, _s, _b), \
            client(server) as proxy, client(server, local="127.0.0.2") as stranger:
        assert via(proxy, "192.0.2.1", "wrong") == 401
        assert via(proxy, "192.0.2.1", SECRET) == 429
        assert via(proxy, "192.0.2.2", SECRET) == 200  # another client behind the proxy
        assert via(stranger, "192.0.2.3", "wrong") == 401  # not our proxy: loopback itself
        assert via(stranger, "192.0.2.4", SECRET) == 429
        assert throttle.failures("192.0.2.1") == 1 and throttle.failures("loopback") == 1


def test_a_browser_that_logged_in_before_is_never_locked_out_by_others(
        tmp_path: Path) -> None:
    """Issue 30, item 2: another local process guessing passwords locks out loopback, but not
    the coach's browser, which carries the device cookie of its last login (30 days), even
    after its session is gone (a restart)."""
    from daemon.web import Throttle

    def login(c: httpx.Client, password: str) -> httpx.Response:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
        assert token
        return c.post("/login", content=f"password={password}&csrf={token.group(1)}",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})

    clock = Clock()
    throttle = Throttle(clock, free_tries=3, base_delay=60.0, max_delay=60.0)
    pw = password_file(tmp_path)
    with console(tmp_path, password_file=pw, throttle=throttle) as (server, _s, _b), \
            client(server) as browser, client(server, local="127.0.0.2") as guesser:
        assert login(browser, SECRET).status_code == 303
        device = browser.cookies.get("uplift_device")
        assert device and browser.cookies.get("uplift_console")
        set_cookie = [h for h in login(browser, SECRET).headers.get_list("set-cookie")] or [""]
        assert all("uplift_device" not in h for h in set_cookie)  # kept, not re-issued
        for i in range(10):
            guesser.get("/api/status", auth=("x", f"guess-{i}"))
        assert guesser.get("/api/status", auth=("x", SECRET)).status_code == 429
        assert login(guesser, SECRET).status_code == 429  # loopback is locked out
        browser.cookies.delete("uplift_console")  # as after a restart
        assert login(browser, SECRET).status_code == 303  # the browser is not
        # A forged or expired device cookie is just loopback.
        forged = device.rsplit(".", 1)[0] + ".0" * 20
        with client(server, cookies={"uplift_device": forged}) as forger:
            assert login(forger, SECRET).status_code == 429
        clock.now += 61  # the throttle's clock; the cookie's is the wall clock
    # A restarted console (the same password) still knows the device.
    throttle = Throttle(Clock(), free_tries=0, base_delay=60.0, max_delay=60.0)
    with console(tmp_path, password_file=pw, throttle=throttle) as (server, _s, _b), \
            client(server, local="127.0.0.2") as guesser, \
            client(server, cookies={"uplift_device": device}) as browser:
        assert guesser.get("/api/status", auth=("x", "wrong")).status_code == 401
        assert guesser.get("/api/status", auth=("x", SECRET)).status_code == 429
        assert login(browser, SECRET).status_code == 303
    # A new password voids every device cookie.
    from daemon.web.devices import Devices
    assert Devices(SECRET).device_of(device) is not None
    assert Devices("another password entirely").device_of(device) is None
