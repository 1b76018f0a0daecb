"""`python -m bench installed`: the footprint as a user sees it (issue 33, item 6). The daemon as
`pip install <checkout>` installs it into a fresh venv (unpinned: whatever pip picks today, not
constraints.txt), the default config with the console on, SQLite, one 256 MiB upload. The peak
is VmHWM read at upload.done after `echo 5 > /proc/PID/clear_refs` at watch.started, as anyone
can read it from outside. Beside it, the same from the dev venv as the `upload` bench runs it.

The venv is kept in bench/installed-venv/ (git-ignored) and the checkout installed into it again
when its files changed; the first run takes a few minutes.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from bench.common import HERE, WORK, Daemon, MiB, log, make_movie, row, wait_for

VENV = HERE / "installed-venv"
REPO = HERE.parent


def _checkout_hash() -> str:
    """What the install is made of: pyproject.toml, daemon/ and migrations/."""
    h = hashlib.sha256()
    files = [REPO / "pyproject.toml", *sorted((REPO / "daemon").rglob("*")),
             *sorted((REPO / "migrations").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def installed_venv() -> Path:
    """The venv's `uplift-capture`, the checkout installed as a user would (`pip install .`)."""
    marker, want = VENV / "checkout.sha256", _checkout_hash()
    if not (VENV / "bin" / "python").exists():
        log("making a fresh venv for the installed daemon (once)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not marker.exists() or marker.read_text() != want:
        log("pip install <checkout> into it (unpinned)")
        pip = [str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        # --force-reinstall --no-deps: the daemon's own files afresh; then any new dependency.
        subprocess.run([*pip, "--force-reinstall", "--no-deps", str(REPO)], check=True)
        subprocess.run([*pip, str(REPO)], check=True)
        marker.write_text(want)
    return VENV / "bin" / "uplift-capture"


def _versions(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze",
                          "--disable-pip-version-check"], capture_output=True, text=True,
                         check=True).stdout
    return {n.lower().replace("_", "-"): v for n, _, v in
            (line.partition("==") for line in out.splitlines() if "==" in line)}


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower().replace("_", "-")] = version
    return pins


def differences(installed: dict[str, str], pinned: dict[str, str]) -> list[str]:
    """Packages the unpinned install has at another version than constraints.txt, or not at
    all in it."""
    return [f"{n} {v} (constraints: {pinned.get(n, 'none')})"
            for n, v in sorted(installed.items()) if pinned.get(n) != v and n not in
            ("pip", "setuptools", "uplift-capture-daemon")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak(d: Daemon, src: Path, page: str | None = None) -> int:
    """VmHWM at upload.done, reset to the RSS at watch.started (clear_refs 5); `page`: the
    console's page fetched first, as a person watching the upload would."""
    d.start()
    assert d.proc is not None
    Path(f"/proc/{d.proc.pid}/clear_refs").write_text("5")
    if page is not None:
        wait_for(lambda: d.event("web.listening"), 30, "the console")
        httpx.get(page, timeout=30).raise_for_status()
    d.upload(src, f"{d.dir.name}.mov")
    peak = d.hwm()
    d.stop()
    return peak


def bench_installed(base_url: str, watch: Path) -> None:
    uplift = installed_venv()
    for line in differences(_versions(VENV / "bin" / "python"), _pinned()):
        log(f"  unpinned install: {line}")
    src = make_movie(WORK / "src" / "installed.mov", 256 * MiB)
    port = _free_port()
    console = f'[web]\nlisten = "127.0.0.1:{port}"'  # the default, on a free port
    installed = _peak(Daemon("installed", watch, base_url, extra=console, cli=[str(uplift)]), src)
    dev = _peak(Daemon("installed-dev", watch, base_url, extra=console), src)
    row("peak RSS, 256 MiB upload, console on, as `pip install .` installs it (unpinned), "
        "VmHWM from outside", f"{installed / MiB:.1f} MiB", f"dev venv {dev / MiB:.1f} MiB",
        f"{(installed - dev) / MiB:+.1f} MiB", "<= 64 MiB")
    viewed = _peak(Daemon("installed-page", watch, base_url, extra=console, cli=[str(uplift)]),
                   src, page=f"http://127.0.0.1:{port}/")
    row("the same, the console's page open (its templates loaded)", f"{viewed / MiB:.1f} MiB",
        f"page not asked {installed / MiB:.1f} MiB", f"{(viewed - installed) / MiB:+.1f} MiB",
        "-")
    src.unlink()
