"""What a migration does, as Alembic operations, and whether it is additive (migrations/env.py):
run each revision's upgrade for real, on a real database, with Alembic's `invoke` (the
one call every `op.*` goes through, batch mode too) wrapped to record the operation first."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.operations import ops as alembic_ops
from alembic.operations.base import AbstractOperations
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from daemon.jobs.engine import migrations_dir, write_tx


def config(script_location: Path | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location or migrations_dir()))
    return cfg


def revisions(script_location: Path | None = None) -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(config(script_location))
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def upgrade(engine: Engine, revision: str, script_location: Path | None = None) -> None:
    """As jobs/schema.upgrade does it (the daemon's own connection), from any script folder."""
    cfg = config(script_location)
    with write_tx(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def record(engine: Engine, script_location: Path | None = None,
           upto: str | None = None) -> dict[str, list[Any]]:
    """Upgrade one revision at a time, from where `engine` is to `upto` (default: the head);
    the operations each revision ran, by revision."""
    recorded: dict[str, list[Any]] = {}
    current: list[str] = []
    real = AbstractOperations.invoke

    def spy(self: AbstractOperations, operation: Any) -> Any:
        recorded.setdefault(current[-1], []).append(operation)
        return real(self, operation)

    AbstractOperations.invoke = spy  # type: ignore[method-assign]
    try:
        for rev in revisions(script_location):
            current.append(rev)
            upgrade(engine, rev, script_location)
            recorded.setdefault(rev, [])
            if rev == upto:
                break
    finally:
        AbstractOperations.invoke = real  # type: ignore[method-assign]
    return recorded


def violations(operations: list[Any]) -> list[str]:
    """Why these operations (one migration's) are not additive; [] when they are. A daemon of
    the previous version must keep reading and writing the table after them."""
    new_tables = {op.table_name for op in operations if isinstance(op, alembic_ops.CreateTableOp)}
    found: list[str] = []
    for op in operations:
        table = getattr(op, "table_name", None)
        existing = table not in new_tables
        if isinstance(op, alembic_ops.DropTableOp | alembic_ops.DropColumnOp |
                      alembic_ops.DropConstraintOp | alembic_ops.DropIndexOp |
                      alembic_ops.RenameTableOp):
            found.append(f"{type(op).__name__} on {table}: contract in a later version")
        elif isinstance(op, alembic_ops.AddColumnOp):
            col = op.column
            if not col.nullable and col.server_default is None:
                found.append(f"new column {table}.{col.name} is NOT NULL without a "
                             f"server_default: the previous version's inserts fail")
        elif isinstance(op, alembic_ops.AlterColumnOp):
            if op.modify_nullable is False:
                found.append(f"{table}.{op.column_name} made NOT NULL: the previous "
                             f"version's inserts fail")
            if op.modify_type is not None or op.modify_name is not None:
                found.append(f"{table}.{op.column_name} changes type or name")
        elif isinstance(op, alembic_ops.AddConstraintOp) and existing:
            found.append(f"new constraint {op.constraint_name} on the existing table {table}: "
                         f"the previous version's writes may break it")
        elif isinstance(op, alembic_ops.CreateIndexOp) and op.unique and existing:
            found.append(f"new unique index {op.index_name} on the existing table {table}")
        elif isinstance(op, alembic_ops.ExecuteSQLOp):
            sql = str(op.sqltext).lstrip().upper()
            if not sql.startswith(("UPDATE", "INSERT")):
                found.append(f"raw SQL that is not a data change: {sql[:60]!r}")
    return found


def copy_with(tmp: Path, name: str, source: str) -> Path:
    """A copy of the migrations folder with one more revision file: a test-only migration."""
    folder = tmp / "migrations"
    shutil.copytree(migrations_dir(), folder,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "versions" / name).write_text(source)
    return folder
