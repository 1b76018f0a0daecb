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
from dataclasses import dataclass
from pathlib import Path

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


def store_token(host: Host, token: str) -> str:
    """The token as the credential the unit loads; returns a line saying how it is kept."""
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
    return f"token stored in {host.token_file}, readable by root only{fallback}"


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
