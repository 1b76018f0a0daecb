"""Import only what the config uses (issue 23): `run` with the console off, no [notify] urls
and SQLite loads no web stack, apprise, psycopg, Alembic (the schema is current) or sandbox;
with the console on, the web stack is there (so the guard sees what it guards), and its
template engine comes with the first page served."""

from __future__ import annotations

from pathlib import Path

from support import Sandbox, cli, free_port, start_daemon, wait_for, write_config


def _optional(tmp_path: Path, sandbox: Sandbox, extra: str, name: str) -> list[str]:
    captures = tmp_path / "captures"
    captures.mkdir(exist_ok=True)
    config = write_config(tmp_path / f"{name}.toml", watch=captures,
                          db=tmp_path / "jobs.db", base_url=sandbox.base_url,
                          extra='[logging]\nlevel = "debug"\n' + extra)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    daemon = start_daemon(tmp_path, config, name=f"{name}.log")
    try:
        event = wait_for(lambda: next((e for e in daemon.events()
                                       if e.get("event") == "daemon.imports"), None), 10,
                         what="daemon.imports")
    finally:
        assert daemon.stop() == 0
    return event["optional"]


def test_only_what_the_config_uses_is_imported(tmp_path: Path, sandbox: Sandbox) -> None:
    assert _optional(tmp_path, sandbox, "", "off") == []
    on = _optional(tmp_path, sandbox, f'[web]\nlisten = "127.0.0.1:{free_port()}"', "on")
    assert {"starlette", "uvicorn", "prometheus_client"} <= set(on)
    assert "jinja2" not in on  # with the first page (the console tests render them)
    assert not {"apprise", "psycopg", "psycopg2", "alembic"} & set(on)
