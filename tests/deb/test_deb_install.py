"""`make deb-test`: the .deb installed into a debootstrapped Debian root, configured with
`setup --non-interactive`, the daemon run as the service user (its ExecStart=, its User=; with
no systemd here, setup names the token file in the config) uploads a dropped file to the sandbox; an
upgrade to a rebuilt package keeps config, token and jobs; remove keeps them, purge deletes.

Slow (two package builds, a debootstrap on the first run): not part of `make test`. There is no
systemd as PID 1 here, so the unit is checked with `systemd-analyze verify` in the root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from debroot import REPO, Chroot, fresh_root
from support import ATHLETE, Sandbox, make_movie, wait_for

pytestmark = [pytest.mark.skipif(
    os.environ.get("UPLIFT_DEB_TEST") != "1" or os.geteuid() != 0
    or shutil.which("dpkg-deb") is None,
    reason="`make deb-test` runs this (as root, on Debian): UPLIFT_DEB_TEST=1"),
    # Two package builds and a first debootstrap take minutes more than the suite's limit.
    pytest.mark.timeout(1800)]

UNIT = "/usr/lib/systemd/system/uplift-capture.service"
CONFIG = "/etc/uplift-capture/config.toml"
CRED_DIR = "/run/credentials/uplift-capture.service"


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two builds of this checkout: revision 1 and the rebuilt revision 2 (an upgrade)."""
    debs = []
    for revision in ("1", "2"):
        out = tmp_path_factory.mktemp(f"deb{revision}")
        subprocess.run([str(REPO / "packaging/deb/build")], check=True, cwd=REPO,
                       env={**os.environ, "OUT": str(out), "DEB_REVISION": revision},
                       stdout=subprocess.DEVNULL)
        debs += list(out.glob("uplift-capture_*.deb"))
    assert len(debs) == 2
    return debs[0], debs[1]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Chroot]:
    with fresh_root(tmp_path / "chroot") as r:
        yield r


def install(root: Chroot, deb: Path) -> None:
    shutil.copy(deb, root / f"/tmp/{deb.name}")
    root.run("dpkg", "-i", f"/tmp/{deb.name}")


def unit_value(root: Chroot, key: str) -> str:
    lines = (root / UNIT).read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith(f"{key}="))


class Service:
    """The daemon started as the unit starts it, minus systemd: ExecStart= as User=, with the
    credential the unit would load in $CREDENTIALS_DIRECTORY."""

    def __init__(self, root: Chroot, log: Path):
        self.root, self.log = root, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        user = unit_value(self.root, "User")
        if "token_file" in (self.root / CONFIG).read_text():
            # setup found no systemd: the printed command, as the unit's user, with nothing
            # but the config (it names the token file).
            return self._spawn(user, {})
        creds = self.root / CRED_DIR
        creds.mkdir(parents=True, exist_ok=True)
        dropin = self.root / "/etc/systemd/system/uplift-capture.service.d/credential.conf"
        if dropin.exists():  # setup encrypted the token: systemd would decrypt it at start
            token = self.root.run("systemd-creds", "decrypt", "--name=uplift-api-token",
                                  "/etc/uplift-capture/token.cred", "-").stdout
        else:
            source = unit_value(self.root, "LoadCredential").split(":", 1)[1]
            token = (self.root / source).read_text()
        (creds / "uplift-api-token").write_text(token)
        self.root.run("chown", "-R", f"{user}:{user}", CRED_DIR)
        return self._spawn(user, {"CREDENTIALS_DIRECTORY": CRED_DIR})

    def _spawn(self, user: str, env: dict[str, str]) -> Service:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.root.argv(*unit_value(self.root, "ExecStart").split(), user=user,
                               env=env),
                stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        assert self.popen.wait(60) == 0, self.log.read_text()[-3000:]


def drop(root: Chroot, name: str) -> None:
    make_movie(root / f"/srv/captures/jane/{name}", frames=3)


def test_install_setup_upload_upgrade_purge(packages: tuple[Path, Path], root: Chroot,
                                            sandbox: Sandbox, tmp_path: Path) -> None:
    first, rebuilt = packages
    install(root, first)
    # The package made the user and its state folder, and did not configure or start anything.
    assert root.run("getent", "passwd", "uplift-capture").stdout.startswith("uplift-capture:")
    assert not (root / CONFIG).exists()
    assert (root / "/etc/uplift-capture/config.example.toml").exists()
    assert "ConditionPathExists=/etc/uplift-capture/config.toml" in (root / UNIT).read_text()
    assert root.run("/usr/bin/uplift-capture", "--version").stdout.startswith("uplift-capture")

    (root / "/srv/captures").mkdir(parents=True)
    (root / "/root/token").write_text(sandbox.token + "\n")
    args = ["uplift-capture", "setup", "--non-interactive", "--watch", "/srv/captures",
            "--athlete", f"jane={ATHLETE}", "--token-file", "/root/token",
            "--api-url", sandbox.base_url]
    done = root.run(*args)
    assert "ok   config /etc/uplift-capture/config.toml is valid" in done.stdout, done.stdout
    assert "systemd is not running here" in done.stdout
    # No systemd to load a credential (issue 30): the token in a file the service's group
    # reads, named by the config, so the printed `uplift-capture run` works as it says.
    assert "token stored in /etc/uplift-capture/token, readable by root and the group " \
           "uplift-capture ([api] token_file" in done.stdout, done.stdout
    assert 'token_file = "/etc/uplift-capture/token"' in (root / CONFIG).read_text()
    assert not (root / "/etc/uplift-capture/token.cred").exists()
    assert "console: http://127.0.0.1:8780/" in done.stdout
    again = root.run(*args, check=False)
    assert again.returncode == 2 and "--force" in again.stderr
    st = (root / CONFIG).stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, 0)
    assert root.run("stat", "-c", "%G", CONFIG).stdout.strip() == "uplift-capture"
    verify = root.run("systemd-analyze", "verify", "uplift-capture.service", check=False)
    assert verify.returncode == 0 and "uplift-capture" not in verify.stderr, verify.stderr

    service = Service(root, tmp_path / "daemon1.log").start()
    drop(root, "first.mov")
    wait_for(lambda: sandbox.uploads_for("first.mov"), 90, what="first.mov uploaded")
    service.stop()

    kept = {p: (root / p).read_bytes() for p in (CONFIG, *_token_files(root))}
    install(root, rebuilt)
    assert "-2" in root.run("dpkg-query", "-W", "-f=${Version}", "uplift-capture").stdout
    assert {p: (root / p).read_bytes() for p in kept} == kept
    assert (root / CONFIG).stat().st_mode & 0o777 == 0o640

    service = Service(root, tmp_path / "daemon2.log").start()
    drop(root, "second.mov")
    wait_for(lambda: sandbox.uploads_for("second.mov"), 90, what="second.mov uploaded")
    service.stop()
    status = root.run("uplift-capture", "status", "--json", "--config", CONFIG,
                      user="uplift-capture").stdout
    assert status.count('"state": "done"') >= 2, status
    assert len(sandbox.uploads_for("first.mov")) == 1  # the upgrade kept the job: not resent

    root.run("dpkg", "--remove", "uplift-capture")
    assert not (root / "/opt/uplift-capture").exists()
    assert not (root / "/usr/bin/uplift-capture").exists()
    assert (root / CONFIG).exists() and (root / "/var/lib/uplift-capture/jobs.db").exists()
    root.run("dpkg", "--purge", "uplift-capture")
    assert not (root / "/etc/uplift-capture").exists()
    assert not (root / "/var/lib/uplift-capture").exists()


def _token_files(root: Chroot) -> list[str]:
    found = [p for p in ("/etc/uplift-capture/token", "/etc/uplift-capture/token.cred",
                         "/etc/systemd/system/uplift-capture.service.d/credential.conf")
             if (root / p).exists()]
    assert found, "setup stored no token"
    return found
