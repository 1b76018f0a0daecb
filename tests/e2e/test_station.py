"""Issue 33: a good citizen on the capture workstation. The daemon as a real process: its
threads' priorities read back from /proc and `ionice`, the page cache an upload leaves behind
measured with `fincore`, and the low-disk warning on a real tmpfs."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
from support import (
    Proc,
    Sandbox,
    cached_bytes,
    captures_config,
    cli,
    fill_disk,
    free_port,
    job_state,
    make_movie,
    small_tmpfs,
    start_daemon,
    status,
    wait_for,
    write_config,
)
from webhooks import Receiver


def threads_nice(pid: int) -> dict[int, int]:
    """Every thread's nice value (field 19 of /proc/PID/task/TID/stat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            out[int(tid)] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


def io_class(tid: int) -> str:
    out = subprocess.run(["ionice", "-p", str(tid)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@contextlib.contextmanager
def started_at_nice(value: int) -> Iterator[None]:
    """Processes this thread starts meanwhile begin at nice `value` (root puts it back)."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, value)
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def upload_one(tmp_path: Path, captures: Path, config: Path, name: str = "a.mov") -> None:
    make_movie(captures / "jane" / name, frames=3)
    wait_for(lambda: job_state(config, name) == "done", 60, what=f"{name} done")


def test_every_thread_runs_at_nice_10_and_best_effort_7_by_default(
        tmp_path: Path, sandbox: Sandbox, procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url)
    proc = start_daemon(tmp_path, config)
    procs.append(proc)
    upload_one(tmp_path, captures, config)  # upload threads, the settle queue, the lookouts
    assert proc.popen is not None
    nices = threads_nice(proc.popen.pid)
    assert len(nices) > 3
    assert set(nices.values()) == {10}, nices
    assert {tid: io_class(tid) for tid in nices} == dict.fromkeys(nices, "best-effort: prio 7")


def test_a_lower_priority_given_is_kept(tmp_path: Path, sandbox: Sandbox,
                                        procs: list[Proc]) -> None:
    _, config = captures_config(tmp_path, sandbox.base_url)
    with started_at_nice(15):
        proc = start_daemon(tmp_path, config)
    procs.append(proc)
    assert proc.popen is not None
    assert set(threads_nice(proc.popen.pid).values()) == {15}


def test_priority_normal_leaves_both_as_started(tmp_path: Path, sandbox: Sandbox,
                                                procs: list[Proc]) -> None:
    _, config = captures_config(tmp_path, sandbox.base_url,
                                extra='[station]\npriority = "normal"')
    proc = start_daemon(tmp_path, config)
    procs.append(proc)
    assert proc.popen is not None
    nices = threads_nice(proc.popen.pid)
    assert set(nices.values()) == {os.getpriority(os.PRIO_PROCESS, 0)}
    assert {io_class(tid) for tid in nices} == {io_class(os.getpid())}


# ---- item 2: the page cache -----------------------------------------------------------------

def test_an_uploaded_file_leaves_the_page_cache(tmp_path: Path, sandbox: Sandbox,
                                                procs: list[Proc]) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url)
    procs.append(start_daemon(tmp_path, config))
    # A real movie, then 48 MiB of real bytes in a `free` atom (a sparse hole is not cached).
    hidden = captures / "jane" / ".big.part"
    make_movie(hidden, frames=2)
    pad = 48 << 20
    with open(hidden, "ab") as f:
        f.write(struct.pack(">I4s", pad, b"free"))
        block = os.urandom(1 << 20)
        for _ in range(pad >> 20):
            f.write(block)
        f.truncate(f.tell() - 8)  # the atom's header counts in its size
        f.flush()
        os.fsync(f.fileno())  # dirty pages cannot be dropped: the test measures clean ones
    size = hidden.stat().st_size
    assert cached_bytes(hidden) > 0.9 * size  # what a recording just written leaves cached
    big = hidden.rename(captures / "jane" / "big.mov")
    wait_for(lambda: job_state(config, "big.mov") == "done", 120, what="big.mov done")
    wait_for(lambda: cached_bytes(big) <= 0.1 * size, 2.0, interval=0.1,
             what="at most 10 % of the file left in the page cache 2 s after done")


# ---- item 5: the low-disk warning ------------------------------------------------------------

def test_a_filling_watch_folder_warns_and_clears_without_a_503(
        tmp_path: Path, sandbox: Sandbox, receiver: Receiver, procs: list[Proc]) -> None:
    with small_tmpfs(tmp_path / "disk", "32m") as disk:
        captures = disk / "captures"
        (captures / "jane").mkdir(parents=True)
        port = free_port()
        config = write_config(
            tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
            base_url=sandbox.base_url,
            extra=f'[web]\nlisten = "127.0.0.1:{port}"\n[notify]\nurls = ["{receiver.url()}"]\n'
                  f'batch_seconds = 0.5\n[station]\nlow_disk = "24MiB"')
        procs.append(start_daemon(tmp_path, config))
        assert "low_disk" not in status(config).get("notices", {})
        filler = fill_disk(disk)
        notice = wait_for(lambda: status(config).get("notices", {}).get("low_disk"), 20,
                          what="the low_disk notice")
        assert str(disk / "captures") in notice["message"] and "24.0 MiB" in notice["message"]
        text = cli("status", "--config", str(config)).stdout
        assert f"ATTENTION: {notice['message']}" in text
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        wait_for(lambda: receiver.titled("low disk space"), 20, what="a notification")
        filler.unlink()
        wait_for(lambda: "low_disk" not in status(config).get("notices", {}), 20,
                 what="the notice cleared")


def test_a_small_job_table_disk_warns_naming_its_folder(tmp_path: Path, sandbox: Sandbox,
                                                        procs: list[Proc]) -> None:
    with small_tmpfs(tmp_path / "dbdisk", "16m") as disk:
        _, config = captures_config(tmp_path, sandbox.base_url, db=disk / "jobs.db",
                                    extra='[station]\nlow_disk = "24MiB"')
        procs.append(start_daemon(tmp_path, config))
        notice = wait_for(lambda: status(config).get("notices", {}).get("low_disk"), 20,
                          what="the low_disk notice")
        assert str(disk) in notice["message"]
        assert str(tmp_path / "captures") not in notice["message"]
