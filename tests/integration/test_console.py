"""The web console over a real SQLite Store, served by the real WebServer on loopback: security
(Host, CSRF, password), the JSON API, /metrics, /healthz, and 10,000 jobs paged."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import httpx
import pytest
from console_support import ALIASES, SECRET, add_job, bulk_jobs, console, csrf_token, dump

from daemon import status
from daemon.jobs.models import JobState
from daemon.service import control
from daemon.web import Metrics, check_listen


def client(server: object, **kw: object) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10, **kw)  # type: ignore[attr-defined]


def test_post_needs_the_pages_csrf_token(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        job = add_job(store, JobState.FAILED, "a.mov")
        assert c.post(f"/api/jobs/{job}/retry").status_code == 403
        assert c.post(f"/api/jobs/{job}/retry",
                      headers={"X-CSRF-Token": "guess"}).status_code == 403
        assert c.post("/api/pause").status_code == 403
        assert store.get(job).state == JobState.FAILED  # nothing happened
        assert control.paused(store, time.time()) == (False, None)

        token = csrf_token(c)
        r = c.post(f"/api/jobs/{job}/retry", headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text
        assert store.get(job).state in (JobState.QUEUED, JobState.PENDING)
        again = c.post(f"/api/jobs/{job}/retry", headers={"X-CSRF-Token": token})
        assert again.status_code == 409  # not failed any more: said, not silently ignored


def test_retry_all_pause_and_resume(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        ids = [add_job(store, JobState.FAILED, f"f{i}.mov") for i in range(3)]
        h = {"X-CSRF-Token": csrf_token(c)}
        assert c.post("/api/retry-failed", headers=h).json() == {"retried": 3}
        assert all(store.get(i).state != JobState.FAILED for i in ids)

        assert c.post("/api/pause", headers=h).status_code == 200
        assert control.paused(store, time.time())[0]
        doc = c.get("/api/status").json()
        assert "paused" in doc["notices"]
        assert "uplift_capture_paused 1.0" in c.get("/metrics").text
        assert c.post("/api/resume", headers=h).status_code == 200
        assert control.paused(store, time.time()) == (False, None)
        assert "paused" not in c.get("/api/status").json()["notices"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8780", "192.0.2.7",
                                  "localhost.evil.example"])
def test_foreign_host_header_is_refused(tmp_path: Path, host: str) -> None:
    with console(tmp_path) as (server, _store, _), client(server) as c:
        for path in ("/", "/api/status", "/metrics", "/healthz"):
            assert c.get(path, headers={"Host": host}).status_code == 403, path
        for ok in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]:80",
                   "127.0.0.2"):
            assert c.get("/healthz", headers={"Host": ok}).status_code == 200, ok


def test_non_loopback_listen_needs_a_password_file(tmp_path: Path) -> None:
    reason = check_listen("0.0.0.0:8780", None)
    assert reason and "password_file" in reason and "\n" not in reason
    assert check_listen("192.168.1.20:8780", None)
    assert check_listen("", None) is None
    assert check_listen("127.0.0.1:8780", None) is None
    assert check_listen("[::1]:8780", None) is None
    assert check_listen("localhost:8780", None) is None
    assert check_listen("0.0.0.0:8780", tmp_path / "pw") is None
    assert "HOST:PORT" in (check_listen("8780", None) or "")
    from daemon.web import start_console

    with pytest.raises(ValueError, match="password_file"):
        start_console("0.0.0.0:0", None, object(), Metrics())  # type: ignore[arg-type]


def test_a_console_without_a_password_says_what_that_means(tmp_path: Path) -> None:
    """Issue 30, item 3: without a password any local account can re-link athletes; the page
    says so (in a coach's words: no config path, no command)."""
    with console(tmp_path) as (server, _store, _), client(server) as c:
        page = c.get("/").text
        assert "No console password" in page and "account on this computer" in page
        assert "password_file" not in page and "[web]" not in page


def test_password_basic_auth_and_login_form(tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    secret = "correct horse battery staple"
    pw = tmp_path / "web-password"
    pw.write_text(secret + "\n")
    with console(tmp_path, password_file=pw) as (server, store, _):
        add_job(store, JobState.FAILED, "a.mov")
        with client(server) as c:
            assert c.get("/api/status").status_code == 401
            assert "Basic" in c.get("/metrics").headers["www-authenticate"]
            assert c.get("/", headers={"Accept": "text/html"}).headers["location"] == "/login"
            assert c.get("/api/status", auth=("x", "wrong")).status_code == 401
            assert c.get("/api/status", auth=("anyone", secret)).status_code == 200
            bad = base64.b64encode(b"no-colon-garbage\xff").decode()
            assert c.get("/api/status",
                         headers={"Authorization": f"Basic {bad}"}).status_code == 401
        with client(server) as c:  # the login form, then the session cookie
            login = c.get("/login")
            assert login.status_code == 200 and 'type="password"' in login.text
            token = login.text.split('name="csrf" value="')[1].split('"')[0]
            wrong = c.post("/login", data={"password": "nope", "csrf": token})
            assert wrong.status_code == 401
            r = c.post("/login", data={"password": secret, "csrf": token})
            assert r.status_code == 303 and "uplift_console" in r.cookies
            assert c.get("/api/status").status_code == 200
            assert c.post("/api/pause",
                          headers={"X-CSRF-Token": csrf_token(c)}).status_code == 200
            assert "No console password" not in c.get("/").text
    out, err = capfd.readouterr()
    assert "web.login_refused" in out + err and secret not in out + err and "nope" not in out + err


def test_api_status_is_the_status_document(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        add_job(store, JobState.FAILED, "bad.mov")
        add_job(store, JobState.DONE, "good.mov")
        add_job(store, JobState.UPLOADING, "moving.mov")
        add_job(store, JobState.PENDING, "new.mov", folder="unknown-folder")
        store.set_notice("credentials", "the API token was rejected", None, time.time())
        served = c.get("/api/status")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("application/json")
        doc = served.json()
        expected = status.collect(store, athletes=ALIASES)  # the console shows the config's
        # Progress figures are computed from the clock: compare all but those.
        for d in (doc, expected):
            for j in d["jobs"]:
                j.pop("eta_seconds", None)
        assert dump(doc) == dump(expected)
        assert doc["notices"]["credentials"]["message"] == "the API token was rejected"
        assert SECRET not in served.text and SECRET not in c.get("/metrics").text
        assert SECRET not in c.get("/api/status?page=1").text
        assert SECRET not in c.get("/").text


def test_filter_by_athlete_folder_and_state(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        add_job(store, JobState.FAILED, "jane1.mov", folder="jane")
        add_job(store, JobState.FAILED, "bob1.mov", folder="bob_x")
        add_job(store, JobState.DONE, "jane2.mov", folder="jane")
        add_job(store, JobState.PENDING, "bob2.mov", folder="bob_x")
        add_job(store, JobState.PENDING, "bobby.mov", folder="bobxx")  # not bob_x: _ is literal
        doc = c.get("/api/status", params={"athlete": "bob_x"}).json()
        assert sorted(j["file"] for j in doc["jobs"]) == ["bob1.mov", "bob2.mov"]
        assert doc["filtered_counts"]["failed"] == 1 and doc["counts"]["failed"] == 2
        jane = c.get("/api/status", params={"athlete": "jane", "state": "done"}).json()
        assert [(j["file"], j["athlete"]) for j in jane["jobs"]] == [("jane2.mov", "jane")]
        assert jane["jobs"][0]["session_id"]
        waiting = c.get("/api/status", params={"state": "waiting"}).json()
        assert {j["state"] for j in waiting["jobs"]} == {"pending"}
        assert {a["folder"] for a in doc["athletes"]} >= {"jane"}


def test_ten_thousand_jobs_page_fast(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        bulk_jobs(store, 9_000, "failed")
        bulk_jobs(store, 1_000, "done", folder="other")
        moving = add_job(store, JobState.UPLOADING, "now.mov")
        c.get("/api/status?page=1")  # warm the connection and the page cache
        started = time.monotonic()
        first = c.get("/api/status", params={"page": 1, "per_page": 50}).json()
        last = c.get("/api/status", params={"page": 201, "per_page": 50}).json()
        elapsed = time.monotonic() - started
        assert first["total"] == 10_001 and first["pages"] == 201
        assert len(first["jobs"]) == 50 and len(last["jobs"]) == 1
        assert first["jobs"][0]["id"] == moving  # what moves comes first
        assert first["counts"]["failed"] == 9_000
        # Generous on a shared 2-core box; a full load of 10k rows per request is far slower.
        assert elapsed < 2.0, f"two pages of 10k jobs took {elapsed:.2f}s"
        assert len(c.get("/").text) < 20_000  # the page itself holds no jobs


def test_metrics_names_and_worker_reports(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        add_job(store, JobState.FAILED, "x.mov")
        m = server.metrics  # type: ignore[attr-defined]
        m.reserved()
        m.upload_finished("done", 5_000_000, 12.5, 1_700_000_000.0)
        m.upload_finished("retry", 0, 3.0, 1_700_000_100.0)
        with pytest.raises(ValueError):
            m.upload_finished("exploded", 0, 1.0, 0.0)
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        for line in ('uplift_capture_jobs{state="failed"} 1.0',
                     'uplift_capture_jobs{state="done"} 0.0',
                     "uplift_capture_paused 0.0",
                     "uplift_capture_uploaded_bytes_total 5e+06",
                     'uplift_capture_uploads_total{outcome="done"} 1.0',
                     'uplift_capture_uploads_total{outcome="retry"} 1.0',
                     'uplift_capture_uploads_total{outcome="failed"} 0.0',
                     "uplift_capture_reservations_total 1.0",
                     "uplift_capture_upload_duration_seconds_count 2.0",
                     'uplift_capture_upload_duration_seconds_bucket{le="30.0"} 2.0',
                     "uplift_capture_last_upload_timestamp_seconds 1.7e+09",
                     'uplift_capture_build_info{version="'):
            assert line in text, line
        names = {ln.split("{")[0].split(" ")[0] for ln in text.splitlines()
                 if ln and not ln.startswith("#")}
        assert all(n.startswith("uplift_capture_") for n in names), names
        assert "x.mov" not in text  # no per-file labels
        # Its own registry: nothing leaks into (or from) the process-global one.
        from prometheus_client import REGISTRY, generate_latest
        assert b"uplift_capture_" not in generate_latest(REGISTRY)


def test_healthz_and_headers(tmp_path: Path) -> None:
    with console(tmp_path) as (server, _store, backend), client(server) as c:
        r = c.get("/healthz")
        assert (r.status_code, r.text.strip()) == (200, "ok")
        backend._health = lambda: (False, "watch folder /captures is gone")
        r = c.get("/healthz")
        assert r.status_code == 503 and "watch folder /captures is gone" in r.text
        page = c.get("/")
        assert page.headers["x-frame-options"] == "DENY"
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "<script>" not in page.text and "http://" not in page.text.replace(
            'xmlns="http://', "")  # no inline script, no CDN
        for asset in ("/static/console.js", "/static/console.css", "/static/favicon.svg"):
            assert c.get(asset).status_code == 200, asset
        assert "date" not in page.headers and "server" not in page.headers


def test_history_counts_uploads_per_minute(tmp_path: Path) -> None:
    with console(tmp_path) as (server, store, _), client(server) as c:
        add_job(store, JobState.DONE, "a.mov", size=6_000_000)
        add_job(store, JobState.DONE, "b.mov", size=6_000_000)
        h = c.get("/api/history").json()
        assert len(h["files"]) == 60 and h["step"] == 60
        assert sum(h["files"]) == 2
        # Each upload ran 20 s (add_job) and sent 6 MB: 12 MB over the hour's buckets.
        assert abs(sum(h["bytes_per_s"]) * 60 - 12_000_000) < 1_000


def test_stop_is_prompt_and_frees_the_port(tmp_path: Path) -> None:
    with console(tmp_path) as (server, _store, _), client(server) as c:
        assert c.get("/healthz").status_code == 200
        port = server.port
    started = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert time.monotonic() - started < 2


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_idle_server_thread_does_not_wake(tmp_path: Path) -> None:
    """No client, no work: the web thread's context switches stay flat while idle."""
    import threading

    with console(tmp_path) as (server, _store, _):
        httpx.get(f"{server.url}/healthz", timeout=5)
        web = next(t for t in threading.enumerate() if t.name == "web")
        path = Path(f"/proc/self/task/{web.native_id}/status")

        def switches() -> int:
            fields = dict(ln.split(":", 1) for ln in path.read_text().splitlines())
            return int(fields["voluntary_ctxt_switches"]) + \
                int(fields["nonvoluntary_ctxt_switches"])

        time.sleep(0.3)  # let the keep-alive connection's close settle
        before = switches()
        time.sleep(1.5)  # uvicorn's own main loop would wake 15 times here
        assert switches() - before <= 2


def test_a_busy_port_is_an_error_at_start(tmp_path: Path) -> None:
    from daemon.web import WebServer

    with console(tmp_path) as (server, _store, _):
        other = WebServer(server.app, "127.0.0.1", server.port)
        with pytest.raises(OSError):
            other.start()


def test_localhost_listens_on_both_loopbacks(tmp_path: Path) -> None:
    """Issue 30: `listen = "localhost:PORT"` means ::1 as well as 127.0.0.1 (a browser tries
    ::1 first), on one port."""
    import socket

    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 on this host")
    with console(tmp_path, listen="localhost:0") as (server, _store, _):
        for host in ("127.0.0.1", "[::1]"):
            got = httpx.get(f"http://{host}:{server.port}/healthz", timeout=5,
                            headers={"Host": f"localhost:{server.port}"})
            assert got.status_code == 200, (host, got.text)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://[::1]:{server.port}/healthz", timeout=2)
