"""The Debian package, the unit and `setup` name the same paths and user (the slow install
test is `make deb-test`; this keeps them consistent on every run)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.setup.host import SERVICE_USER, Host

REPO = Path(__file__).resolve().parents[2]
UNIT = (REPO / "systemd/uplift-capture.service").read_text()
BUILD = (REPO / "packaging/deb/build").read_text()


def unit(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT, re.M)


def test_the_unit_runs_what_the_package_installs_as_its_user() -> None:
    prefix = re.search(r"^prefix=(\S+)$", BUILD, re.M)
    assert prefix is not None
    assert unit("ExecStart")[0].split()[0] == f"{prefix[1]}/venv/bin/uplift-capture"
    assert unit("User") == unit("Group") == [SERVICE_USER]
    sysusers = (REPO / "systemd/uplift-capture.sysusers").read_text()
    assert re.search(rf"^u {SERVICE_USER} ", sysusers, re.M)


def test_an_unconfigured_service_never_starts_and_setup_writes_what_it_needs() -> None:
    config = Path("/etc/uplift-capture/config.toml")
    assert unit("ConditionPathExists") == [str(config)]
    assert f"--config {config}" in unit("ExecStart")[0]
    host = Host.default(config)
    assert unit("LoadCredential") == [f"uplift-api-token:{host.token_file}"]


@pytest.mark.parametrize("script", ["postinst", "prerm", "postrm"])
def test_maintainer_scripts_are_valid_sh(script: str) -> None:
    path = REPO / "packaging/deb" / script
    assert path.stat().st_mode & 0o111
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh is not None
    subprocess.run([sh, "-n", str(path)], check=True)


def test_purge_deletes_state_and_config_remove_keeps_them() -> None:
    postrm = (REPO / "packaging/deb/postrm").read_text()
    remove, purge = (re.search(rf"^  {arm}\)\n(.*?);;", postrm, re.M | re.S)
                     for arm in ("remove", "purge"))
    assert remove is not None and purge is not None
    assert "/var/lib/uplift-capture" not in remove[1] and "/etc/uplift-capture" not in remove[1]
    assert "/var/lib/uplift-capture" in purge[1] and "/etc/uplift-capture" in purge[1]


def test_the_unit_gives_the_daemon_descriptors_to_spare() -> None:
    # systemd's default soft limit (1,024) is what a console flood used up (issue 30, item 1).
    assert "\nLimitNOFILE=8192\n" in UNIT


def test_the_unit_lets_the_daemon_lower_its_own_priority_and_sets_only_weights() -> None:
    # Issue 33, item 1: the daemon sets nice 10 and IO best-effort 7 itself; the unit must
    # allow exactly those calls back after denying @resources, and not pin a priority the
    # process (with no capabilities) could never undo for [station] priority = "normal".
    filters = unit("SystemCallFilter")
    denied = next(i for i, f in enumerate(filters) if f.startswith("~"))
    assert "@resources" in filters[denied].split()
    allowed = [f for f in filters[denied + 1:] if not f.startswith("~")]
    assert sorted(" ".join(allowed).split()) == ["ioprio_set", "setpriority"]
    assert unit("CPUWeight") == ["20"] and unit("IOWeight") == ["20"]
    assert not unit("Nice") and not unit("IOSchedulingClass") and \
        not unit("IOSchedulingPriority")


def test_every_package_of_the_code_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages by name: one added without being listed (daemon.station)
    was left out of the wheel and the .deb, whose every command then failed on import."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "daemon").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert found - listed == set()
