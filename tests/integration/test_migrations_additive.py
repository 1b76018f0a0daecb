"""Migrations are numbered in order and, from 0004 on, additive (migrations/env.py): on
PostgreSQL one station's upgrade changes the table under the daemons of the others, which keep
running the previous version until they are restarted (issue 19, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.operations import ops
from migration_rules import record, revisions, violations

from daemon.jobs import schema
from daemon.jobs.engine import SCHEMA_HEAD, make_engine, migrations_dir

# 0003 made watch/rel_path NOT NULL and swapped the unique constraint: the very break the issue
# describes (the old daemon's inserts failed). History now; no later migration may do so.
GRANDFATHERED = {"0003": [
    "jobs.watch made NOT NULL",
    "jobs.rel_path made NOT NULL",
    "DropConstraintOp on jobs",
    "new constraint uq_jobs_file_identity on the existing table jobs",
]}


def test_revisions_are_numbered_in_the_order_they_apply() -> None:
    # jobs/schema.py compares revisions as numbers, without importing Alembic.
    revs = revisions()
    assert revs == [f"{n:04d}" for n in range(1, len(revs) + 1)]
    assert revs[-1] == SCHEMA_HEAD
    files = sorted(p.name for p in (migrations_dir() / "versions").glob("0*.py"))
    assert [name[:4] for name in files] == revs
    assert all(schema.is_known(r) for r in revs)
    assert not schema.is_known(f"{len(revs) + 1:04d}") and not schema.is_known("ae1027a6acf")


def test_every_migration_is_additive(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    recorded = record(eng)
    eng.dispose()
    assert list(recorded) == revisions()
    for rev, operations in recorded.items():
        found = violations(operations)
        expected = GRANDFATHERED.get(rev, [])
        assert len(found) == len(expected), (rev, found)
        for reason, words in zip(found, expected, strict=True):
            assert reason.startswith(words), (rev, found)


def col(name: str, nullable: bool = True, default: str | None = None) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable, server_default=default)


CONTRACTIONS = {
    "drop a table": ops.DropTableOp("nodes"),
    "drop a column": ops.DropColumnOp("jobs", "etag"),
    "NOT NULL, no default": ops.AddColumnOp("jobs", col("site", nullable=False)),
    "made NOT NULL": ops.AlterColumnOp("jobs", "etag", modify_nullable=False),
    "type change": ops.AlterColumnOp("jobs", "etag", modify_type=sa.Integer()),
    "rename": ops.AlterColumnOp("jobs", "etag", modify_name="e_tag"),
    "unique on jobs": ops.CreateUniqueConstraintOp("uq", "jobs", ["etag"]),
    "unique index on jobs": ops.CreateIndexOp("ix", "jobs", ["etag"], unique=True),
    "drop an index": ops.DropIndexOp("ix_jobs_path", table_name="jobs"),
    "raw DDL": ops.ExecuteSQLOp("ALTER TABLE jobs DROP COLUMN etag"),
}
EXPANSIONS = {
    "a new table with its constraints": [
        ops.CreateTableOp("roots", [col("name", nullable=False), col("dev")]),
        ops.CreateUniqueConstraintOp("uq_roots", "roots", ["name"]),
        ops.CreateIndexOp("ix_roots", "roots", ["dev"], unique=True)],
    "a nullable column": [ops.AddColumnOp("jobs", col("site"))],
    "NOT NULL with a server default": [ops.AddColumnOp("jobs", col("site", False, "x"))],
    "an index": [ops.CreateIndexOp("ix_jobs_site", "jobs", ["site"])],
    "a backfill": [ops.ExecuteSQLOp("UPDATE jobs SET site = 'x'")],
}


@pytest.mark.parametrize("operation", CONTRACTIONS.values(), ids=CONTRACTIONS.keys())
def test_a_contraction_is_refused(operation: ops.MigrateOperation) -> None:
    assert len(violations([operation])) == 1


@pytest.mark.parametrize("operations", EXPANSIONS.values(), ids=EXPANSIONS.keys())
def test_an_expansion_passes(operations: list[ops.MigrateOperation]) -> None:
    assert violations(operations) == []
