"""The side effects of `setup`: the config file, the token as a systemd credential, the unit.

Everything lands where the Debian package's unit expects it (`Host.default()`); tests pass a
Host under a temporary folder."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config import TOKEN_CREDENTIAL

SERVICE = "uplift-capture.service"
SERVICE_USER = "uplift-capture"

# Switches the unit's plain LoadCredential= (a root-only file) to the encrypted credential.
ENCRYPTED_DROPIN = f"""\
# Written by `uplift-capture setup`: the API token is encrypted with systemd-creds.
[Service]
LoadCredential=
LoadCredentialEncrypted={TOKEN_CREDENTIAL}:{{path}}
"""


@dataclass(frozen=True)
class Host:
    config: Path  # the config file setup writes
    group: str  # the service's group: may read the config, not the token
    dropin_dir: Path  # the unit's drop-in folder
    systemd_creds: str | None  # the systemd-creds program, or None: keep a root-only file
    systemd_running: bool  # PID 1 is systemd (sd_booted): enable and start the unit
    state_dir: Path = Path("/var/lib/uplift-capture")  # the unit's StateDirectory=

    @staticmethod
    def default(config: Path) -> Host:
        return Host(config=config, group=SERVICE_USER,
                    dropin_dir=Path(f"/etc/systemd/system/{SERVICE}.d"),
                    systemd_creds=shutil.which("systemd-creds"),
                    systemd_running=os.path.isdir("/run/systemd/system"))

    @property
    def token_file(self) -> Path:
        return self.config.with_name("token")  # the unit's LoadCredential= path

    @property
    def console_password_file(self) -> Path:
        return self.config.with_name("console-password")  # [web] password_file

    @property
    def encrypted_token_file(self) -> Path:
        return self.config.with_name("token.cred")

    @property
    def dropin(self) -> Path:
        return self.dropin_dir / "credential.conf"

    def gid(self) -> int:
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise SetupError(f"the group {self.group!r} does not exist: install the package "
                             f"first (it creates the service user {SERVICE_USER})") from None


class SetupError(Exception):
    """Setup cannot go on, nothing was configured; the message says why in plain words."""


class UsageError(SetupError):
    """The command line does not hold (a flag missing or wrong): exit 2, as argparse's own."""


def keep_old(path: Path, stamp: str) -> Path:
    """Move `path` aside as `<name>.old.<stamp>`, never over an earlier one (-2, -3 …)."""
    base = path.with_name(f"{path.name}.old.{stamp}")
    kept, n = base, 1
    while True:
        try:
            os.link(path, kept)  # fails if `kept` exists: nothing is ever overwritten
            break
        except FileExistsError:
            n += 1
            kept = base.with_name(f"{base.name}-{n}")
    os.unlink(path)
    return kept


def write_file(path: Path, text: str | bytes, mode: int, gid: int | None = None) -> None:
    """Atomically: a temporary file beside `path` with its final mode and group, then renamed,
    so no reader ever sees a half-written file or a moment of looser permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if gid is not None and os.geteuid() == 0:
            os.fchown(fd, 0, gid)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def readers(path: Path) -> str:
    """Who can read `path`, as its owner, group and mode say (not as setup meant them)."""
    st = path.stat()

    def name(get: Callable[[int], Any], num: int) -> str:
        try:
            return str(get(num)[0])
        except KeyError:
            return str(num)

    owner, group = name(pwd.getpwuid, st.st_uid), name(grp.getgrgid, st.st_gid)
    if st.st_mode & 0o004:
        return "readable by every user"
    if st.st_mode & 0o040 and group != owner:
        return f"readable by {owner} and the group {group}"
    return f"readable by {owner} only"


def store_token(host: Host, token: str, standalone: bool = False, gid: int | None = None) -> str:
    """The token as the credential the unit loads; returns a line saying how it is kept.
    `standalone` (no systemd to load a credential): a file the service's group reads, which
    the config names as [api] token_file."""
    if standalone:
        write_file(host.token_file, token + "\n", 0o640, gid)
        _remove(host.encrypted_token_file)
        _remove(host.dropin)
        return (f"token stored in {host.token_file}, {readers(host.token_file)} ([api] "
                f"token_file: without systemd no credential is loaded for the daemon)")
    if host.systemd_creds:
        try:
            sealed = subprocess.run(
                [host.systemd_creds, "encrypt", f"--name={TOKEN_CREDENTIAL}", "-", "-"],
                input=token.encode(), capture_output=True, check=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            why = getattr(exc, "stderr", b"") or str(exc).encode()
            note = why.decode(errors="replace").strip().splitlines()[-1:] or [""]
            fallback = f" ({note[0]})" if note[0] else ""
        else:
            write_file(host.encrypted_token_file, sealed, 0o600)
            write_file(host.dropin, ENCRYPTED_DROPIN.format(path=host.encrypted_token_file),
                       0o644)
            _remove(host.token_file)
            return (f"token encrypted with systemd-creds in {host.encrypted_token_file} "
                    f"(drop-in {host.dropin})")
    else:
        fallback = " (systemd-creds is not installed)"
    write_file(host.token_file, token + "\n", 0o600)
    _remove(host.encrypted_token_file)
    _remove(host.dropin)
    return f"token stored in {host.token_file}, {readers(host.token_file)}{fallback}"


def make_state_dir(host: Host) -> str | None:
    """Without systemd nothing makes the unit's StateDirectory=: the job table's folder, made
    here (0700, the service user's). None when it is there already."""
    if host.state_dir.is_dir():
        return None
    host.state_dir.mkdir(mode=0o700, parents=True)
    owner = ""
    with contextlib.suppress(KeyError):
        user = pwd.getpwnam(host.group)  # the service user has the service group's name
        if os.geteuid() == 0:
            os.chown(host.state_dir, user.pw_uid, user.pw_gid)
            owner = f", owned by {user.pw_name}"
    return f"made the state folder {host.state_dir} (mode 0700{owner})"


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def run_check(config: Path, token: str, user: str | None) -> int:
    """`uplift-capture check` on the new config, as the service user when there is one (what
    it can read is what matters), with the token it will get from the credential."""
    import sys

    env = {**os.environ, "UPLIFT_API_TOKEN": token}
    env.pop("UPLIFT_CAPTURE_CONFIG", None)
    who = user if user and os.geteuid() == 0 else None
    try:
        gid = pwd.getpwnam(who).pw_gid if who else None  # the user's own group, as the unit's
        done = subprocess.run([sys.executable, "-m", "daemon", "check", "--config",
                               str(config)], env=env, cwd="/", check=False, user=who, group=gid)
    except KeyError:
        print(f"FAIL `check` could not run as {who}: there is no such user", flush=True)
        return 1
    except OSError as exc:  # the service user cannot run this interpreter (a venv under /root)
        print(f"FAIL `check` could not run as {who or 'this user'}: {sys.executable}: "
              f"{exc.strerror or exc}; the service needs an interpreter its user can run",
              flush=True)
        return 1
    return done.returncode


def start_service(host: Host) -> list[str]:
    """Enable and (re)start the unit; returns what went wrong, one line each."""
    problems = []
    for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", SERVICE],
                ["systemctl", "restart", SERVICE]):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            problems.append(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
            break
    return problems
