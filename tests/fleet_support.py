"""Helpers of the fleet tests: stations on one PostgreSQL, sharing a folder `nas`; the check
run after each end-to-end fleet test (`assert_stored_once`)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgserver import PgServer
from support import cli, set_config_key, undone_after, write_config

LEASE = 3.0  # seconds: short, so a takeover comes within the tests' waits


def node_config(tmp: Path, name: str, nas: Path | None, db_url: str, base_url: str, *,
                upload: str, local: Path | None = None, extra: str = "") -> Path:
    """Station `name`'s config, tmp/<name>.toml: its jobs in the fleet database `db_url`, its
    own folder `local` (by default a new tmp/local-<name>) and, unless `nas` is None, the shared
    folder `nas` (named "nas", polled). `upload` and `extra` go to write_config."""
    if local is None:
        local = tmp / f"local-{name}"
        local.mkdir(parents=True, exist_ok=True)
    share = (f'[[watch]]\npath = "{nas}"\nshared = true\nname = "nas"\npoll = true\n'
             if nas is not None else "")
    cfg = write_config(
        tmp / f"{name}.toml", watch=local, db=tmp / "unused.db", base_url=base_url,
        settle=0.3, upload=upload,
        extra=f'[node]\nname = "{name}"\nlease_seconds = {LEASE}\n{share}{extra}')
    return set_config_key(cfg, "database", "url", json.dumps(db_url))


def fleet_status(config: Path) -> dict[str, Any]:
    """`status --json --all`: every station's jobs, and the stations."""
    out = cli("status", "--json", "--all", "--config", str(config))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@contextlib.contextmanager
def bind_mounts(source: Path, targets: list[Path]) -> Iterator[list[Path]]:
    """`source` bind-mounted at each of `targets` (made if missing), unmounted at the end; the
    test is skipped where it cannot mount."""
    with contextlib.ExitStack() as mounted:
        for t in targets:
            t.mkdir(parents=True, exist_ok=True)
            mounted.enter_context(undone_after(["mount", "--bind", str(source), str(t)],
                                               ["umount", "-l", str(t)],
                                               "cannot bind-mount here"))
        yield targets


def assert_stored_once(pg: PgServer, received: Path) -> None:
    """After a fleet test, with its daemons stopped (issue 29): in every fleet database on
    `pg` ("fleet*"), no job was stored twice and every claimed job ended in one state. The
    objects are the sandbox's received files, `received/<session_id>/<file>`, each traced
    through its reservation to its job: at most one per job, exactly one for a done job (in
    the session the job recorded), none that no job reserved; no claimed job is left in
    flight."""
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'fleet%'")]
    stored = [(p.parent.name, p.name) for p in received.glob("*/*") if p.is_file()]
    for name in names:
        with psycopg.connect(pg.url(name), autocommit=True) as conn:
            jobs = {r[0]: r[1:] for r in conn.execute(
                "SELECT id, state, claim_no, session_id, path FROM jobs")}
            owner = dict(conn.execute("SELECT session_id, job_id FROM reservations"))
        unknown = [s for s in stored if s[0] not in owner]
        assert not unknown, f"{name}: stored objects no job reserved: {unknown}"
        per_job = Counter(owner[session] for session, _ in stored)
        twice = {j: n for j, n in per_job.items() if n > 1}
        assert not twice, f"{name}: jobs stored twice: {twice}"
        for job_id, (state, claim_no, session, path) in jobs.items():
            if claim_no == 0:
                continue  # never claimed
            assert state in ("queued", "done", "failed", "skipped", "pending"), \
                f"{name}: job {job_id} ({path}) left {state}"
            if state == "done":
                ours = [s for s, _ in stored if owner[s] == job_id]
                assert ours == [session], \
                    f"{name}: done job {job_id} ({path}) stored as {ours}, recorded {session}"
