"""A throwaway Debian root for the package tests: debootstrap once (cached under .deb-test/,
git-ignored), then an overlayfs copy per test, with /proc and /dev, entered with chroot."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".deb-test"
# What a capture station has before the package: the package's Depends (python3, procps for
# the unit's /bin/kill, systemd for systemd-sysusers) and systemd-analyze to verify the unit.
INCLUDE = ("python3", "procps", "systemd", "ca-certificates")


def _os_release() -> dict[str, str]:
    out = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        out[key] = value.strip('"')
    return out


def _mirror() -> str:
    """The first Debian mirror apt is configured with here (deb822 or one-line format)."""
    for path in sorted(Path("/etc/apt").glob("sources.list*")) + sorted(
            Path("/etc/apt/sources.list.d").glob("*")):
        if not path.is_file() or path.suffix not in ("", ".list", ".sources"):
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def cached_root() -> Path:
    """The debootstrapped root for this machine's Debian release, made once."""
    codename = _os_release().get("VERSION_CODENAME", "bookworm")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    key = hashlib.sha256(" ".join(INCLUDE).encode()).hexdigest()[:8]
    root = CACHE / f"root-{codename}-{arch}-{key}"
    if root.is_dir():
        return root
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / "debootstrap.log", "wb") as log:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                        codename, str(tmp), _mirror()], stdout=log, stderr=subprocess.STDOUT,
                       check=True)
    tmp.rename(root)  # only a complete root is ever cached
    return root


class Chroot:
    def __init__(self, path: Path):
        self.path = path

    def __truediv__(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")

    def run(self, *cmd: str, user: str | None = None, check: bool = True,
            env: dict[str, str] | None = None, input: bytes | None = None,
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*cmd, user=user, env=env), capture_output=True,
                              check=False, input=input.decode() if input else None, text=True,
                              timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def argv(self, *cmd: str, user: str | None = None,
             env: dict[str, str] | None = None) -> list[str]:
        spec = [f"--userspec={user}:{user}"] if user else []
        base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8", "HOME": "/root" if user is None else "/"}
        envs = [f"{k}={v}" for k, v in {**base, **(env or {})}.items()]
        return ["chroot", *spec, str(self.path), "/usr/bin/env", "-i", *envs, *cmd]


@contextlib.contextmanager
def fresh_root(work: Path) -> Iterator[Chroot]:
    """A writable copy of the cached root (overlayfs: the cache is never written)."""
    lower = cached_root()
    upper, scratch, merged = work / "upper", work / "ovl-work", work / "root"
    for d in (upper, scratch, merged):
        d.mkdir(parents=True)
    mounts: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={scratch}", str(merged)],
                       check=True)
        mounts.append(merged)
        subprocess.run(["mount", "-t", "proc", "proc", str(merged / "proc")], check=True)
        mounts.append(merged / "proc")
        subprocess.run(["mount", "--bind", "/dev", str(merged / "dev")], check=True)
        mounts.append(merged / "dev")
        yield Chroot(merged)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "--lazy", str(m)], check=False)
