"""`make bench`: what an upload costs, side by side with curl; idle, latency, burst, restart.

Every figure is measured for the daemon (a real `uplift-capture run` process) and for a reference
in the same run, since these machines are noisy. Uploads go to bench/receiver.py (fast enough
never to be the bottleneck); reservations come from the sandbox. Writes bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import fleet
from bench.analysis import bench_follow, bench_follow_idle
from bench.common import (
    ATHLETE,
    HERE,
    ROWS,
    TOKEN,
    UPLOAD_URL,
    WORK,
    Daemon,
    GiB,
    MiB,
    curl_upload,
    log,
    make_movie,
    reserve,
    row,
    wait_for,
)
from bench.flow import (
    bench_burst,
    bench_idle,
    bench_latency,
    bench_pickup,
    bench_restart,
    bench_smallfiles,
)
from bench.installed import bench_installed
from bench.net import make_pki, sendfile_upload, upload_variants
from bench.readside import bench_readside
from bench.soak import bench_soak


def bench_upload(base_url: str, watch: Path) -> None:
    log("making a 1 GiB, a 256 MiB and a 2 GiB movie")
    big = make_movie(WORK / "src" / "one-gib.mov", GiB)
    d = Daemon("upload", watch, base_url)
    d.start()
    time.sleep(1)
    runs = []
    for i in range(3):
        cpu0 = d.cpu()
        r = d.upload(big, f"big-{i}.mov")
        daemon_cpu = d.cpu() - cpu0
        curl_wall, curl_cpu, _ = curl_upload(base_url, big)
        res = reserve(base_url)
        sf_wall, sf_cpu = sendfile_upload(res["upload_url"], res["upload_fields"], big)
        runs.append((daemon_cpu, r["seconds"], curl_cpu, curl_wall, sf_cpu, sf_wall))
        log(f"  run {i + 1}: daemon {daemon_cpu:.2f} s CPU, {r['seconds']:.2f} s; "
            f"curl {curl_cpu:.2f} s CPU, {curl_wall:.2f} s; sendfile {sf_cpu:.2f} s CPU")
    upload_rows("plain HTTP", runs, big.stat().st_size / GiB)

    mid = make_movie(WORK / "src" / "mid.mov", 256 * MiB)
    d.upload(mid, "mid.mov")
    hwm_mid = d.hwm()
    _, _, curl_rss_mid = curl_upload(base_url, mid)
    huge = make_movie(WORK / "src" / "two-gib.mov", 2 * GiB)
    d.upload(huge, "huge.mov")
    hwm_huge = d.hwm()
    _, _, curl_rss_huge = curl_upload(base_url, huge)
    d.stop()
    # The same upload with the console off (`[web] listen = ""`: no web stack imported).
    off = Daemon("upload-no-console", watch, base_url, extra='[web]\nlisten = ""')
    off.start()
    off.upload(mid, "mid-off.mov")
    hwm_off = off.hwm()
    off.stop()
    row("peak RSS, 256 MiB upload, console on", f"{hwm_mid / MiB:.1f} MiB",
        f"curl {curl_rss_mid / MiB:.1f} MiB", "-", "<= 64 MiB")
    row("peak RSS, 256 MiB upload, console off", f"{hwm_off / MiB:.1f} MiB",
        f"curl {curl_rss_mid / MiB:.1f} MiB", "-", "-")
    row("peak RSS, 2 GiB upload, console on", f"{hwm_huge / MiB:.1f} MiB",
        f"curl {curl_rss_huge / MiB:.1f} MiB",
        f"{hwm_huge / hwm_mid:.2f}x the 256 MiB peak", "<= 64 MiB, flat in size")
    for p in (big, mid, huge):
        p.unlink()


def upload_rows(label: str, runs: list[tuple[float, ...]], gib: float) -> None:
    """Rows from runs of (daemon CPU, daemon wall, curl CPU, curl wall[, sendfile CPU, wall])."""
    med = [statistics.median(r[i] for r in runs) / gib for i in range(len(runs[0]))]
    dc, dw, cc, cw = med[:4]
    target = "<= 1.1x curl" if label.startswith("TLS") else "-"
    ratios = sorted(r[0] / r[2] for r in runs)  # run by run: the spread on a shared machine
    row(f"CPU s per GiB, {label}", f"{dc:.2f} s", f"curl -F -H 'Expect:' {cc:.2f} s",
        f"{dc / cc:.2f}x curl (runs {ratios[0]:.2f} to {ratios[-1]:.2f})", target)
    if len(med) > 4:
        row(f"CPU s per GiB, {label}, vs the physical limit", f"{dc:.2f} s",
            f"sendfile(2) {med[4]:.2f} s", f"{dc / med[4]:.2f}x sendfile", "<= 1.25x sendfile")
    row(f"wall s per GiB, {label}", f"{dw:.2f} s", f"curl {cw:.2f} s", f"{dw / cw:.2f}x curl",
        "<= 1.05x curl")


@contextlib.contextmanager
def tls_endpoint(rate: float = 0) -> Iterator[tuple[str, Path]]:
    """A sandbox whose uploads go to a local TLS receiver (private CA made here), reading at
    `rate` bytes/s (0: as fast as it can): (API base URL, CA file)."""
    ca, cert, key = make_pki(WORK / "pki")
    receiver = subprocess.Popen([sys.executable, str(HERE / "receiver.py"), str(cert), str(key),
                                 *(["--rate", str(rate)] if rate else [])],
                                stdout=subprocess.PIPE)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    data = WORK / f"sandbox-tls-{rate:.0f}"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data", str(data),
         "--token", TOKEN, "--upload-url", f"https://127.0.0.1:{port}/upload"],
        stdout=subprocess.DEVNULL)
    try:
        wait_for((data / "endpoint.json").exists, 20, "TLS sandbox")
        yield json.loads((data / "endpoint.json").read_text())["base_url"], ca
    finally:
        sandbox.terminate()
        receiver.terminate()


def tls_runs(name: str, watch: Path, size: int, rate: float = 0,
             runs: int = 3) -> list[tuple[float, ...]]:
    """Uploads of one movie of `size` bytes over TLS, the daemon's then curl's, `runs` times:
    [(daemon CPU from the file's arrival to done, daemon wall, curl CPU, curl wall)]. The
    daemon trusts the CA through SSL_CERT_FILE, added on top of the OS store."""
    out = []
    with tls_endpoint(rate) as (base, ca):
        movie = make_movie(WORK / "src" / f"{name}.mov", size)
        d = Daemon(name, watch, base, env={"SSL_CERT_FILE": str(ca)})
        d.start()
        for i in range(runs):
            cpu0 = d.cpu()
            r = d.upload(movie, f"{name}-{i}.mov")
            daemon_cpu = d.cpu() - cpu0
            curl_wall, curl_cpu, _ = curl_upload(base, movie, cacert=ca)
            out.append((daemon_cpu, r["seconds"], curl_cpu, curl_wall))
            log(f"  {name} run {i + 1}: daemon {daemon_cpu:.2f} s CPU, {r['seconds']:.2f} s; "
                f"curl {curl_cpu:.2f} s CPU, {curl_wall:.2f} s")
        d.stop()
        movie.unlink()
    return out


def bench_tls(base_url: str, watch: Path) -> None:
    """The same 1 GiB upload to a local TLS receiver as fast as it reads; curl --cacert."""
    upload_rows("TLS", tls_runs("tls", watch, GiB), 1.0)


SLOW_TLS_RATE = 64 * MiB  # bytes/s: a receiver slower than the sender, whose buffer fills


def bench_tls_slow(base_url: str, watch: Path) -> None:
    """A 256 MiB upload over TLS to a receiver that reads at 64 MiB/s (issue 33, item 7): the
    sender's socket buffer is full all along, so its writes wait on the peer, not the CPU."""
    size = 256 * MiB
    runs = tls_runs("tls-slow", watch, size, SLOW_TLS_RATE, runs=5)
    upload_rows(f"TLS, receiver at {SLOW_TLS_RATE // MiB} MiB/s", runs, size / GiB)


def bench_window(base_url: str, watch: Path) -> None:
    """The crash window (bytes the endpoint still receives once we send the closing boundary)
    and throughput, for the upload socket before and after; at 40 MB/s into the sandbox's own
    S3 endpoint (a slow link) and at full speed into the receiver."""
    data = WORK / "sandbox-slow"
    slow = subprocess.Popen([sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data",
                             str(data), "--token", TOKEN], stdout=subprocess.DEVNULL)
    src = WORK / "src" / "window.mov"
    src.write_bytes(os.urandom(MiB) * 128)
    body = {"athlete_id": ATHLETE, "session_group_id": ATHLETE, "file_name": "window.mov",
            "camera_configuration": {"camera_setup_selection": "single.front_on"},
            "movement_attributes": {"activity": "golf", "movement": "full_swing"}}
    try:
        wait_for((data / "endpoint.json").exists, 20, "slow sandbox")
        slow_base = json.loads((data / "endpoint.json").read_text())["base_url"]
        httpx.post(slow_base.rsplit("/v1", 1)[0] + "/_sandbox/faults",
                   json={"upload_rate": 40_000_000}).raise_for_status()
        for link, url, runs in (("40 MB/s", slow_base, 1), ("loopback", base_url, 3)):
            for name, rate, cpu, window in upload_variants(url, TOKEN, body, src, runs):
                row(f"upload socket, {link}: {name}", f"{rate:.0f} MiB/s, {cpu:.2f} s CPU/GiB",
                    "-", f"crash window {window / 1024:.0f} KiB",
                    "window ~0" if "drain" in name and "no drain" not in name else "-")
    finally:
        slow.terminate()
        src.unlink()


BENCHES: dict[str, Callable[[str, Path], None]] = {
    "upload": bench_upload, "tls": bench_tls, "tls-slow": bench_tls_slow, "window": bench_window,
    "smallfiles": bench_smallfiles, "latency": bench_latency, "pickup": bench_pickup,
    "burst": bench_burst,
    "idle": bench_idle, "follow": bench_follow, "follow_idle": bench_follow_idle,
    "restart": bench_restart, "readside": bench_readside,
    "soak": bench_soak, "installed": bench_installed,
    "fleet": lambda base_url, watch: fleet.bench_fleet(base_url, watch, row, TOKEN),
}


def main() -> int:
    if shutil.which("curl") is None:
        print("curl is needed for the reference runs", file=sys.stderr)
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "src").mkdir(parents=True)
    watch = WORK / "captures"
    (watch / "jane").mkdir(parents=True)
    receiver = subprocess.Popen([sys.executable, str(HERE / "receiver.py")],
                                stdout=subprocess.PIPE)
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    UPLOAD_URL.append(f"http://127.0.0.1:{port}/upload")
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "daemon", "sandbox", "--port", "0", "--data",
         str(WORK / "sandbox"), "--token", TOKEN,
         "--upload-url", f"http://127.0.0.1:{port}/upload"],
        stdout=subprocess.DEVNULL)
    endpoint = WORK / "sandbox" / "endpoint.json"
    wait_for(endpoint.exists, 20, "sandbox")
    base_url = json.loads(endpoint.read_text())["base_url"]
    started = time.monotonic()
    chosen = sys.argv[1:] or list(BENCHES)  # e.g. `python -m bench latency idle`
    try:
        for name in chosen:
            # Each bench starts with no writeback pending: the upload benches' gigabytes of
            # new movies would otherwise be flushed under the next one (its durable commits).
            os.sync()
            BENCHES[name](base_url, watch)
    finally:
        sandbox.terminate()
        receiver.terminate()
    took = time.monotonic() - started
    table = ["| figure | daemon | reference (same run) | ratio | target |",
             "| --- | --- | --- | --- | --- |",
             *[f"| {' | '.join(r)} |" for r in ROWS]]
    header = (f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, {platform.machine()}; "
              f"the whole run took {took / 60:.1f} min.")
    text = "# Benchmark results (`make bench`)\n\n" + header + "\n\n" + "\n".join(table) + "\n"
    if not sys.argv[1:]:
        (HERE / "RESULTS.md").write_text(text)
    print("\n" + "\n".join(table))
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
