"""Issue 28, item 1: the known versions a rescan loads (a query, jobs/left.known_clause) are
exactly the jobs `left.known` says the watcher is done with, on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, insert, select

from daemon.jobs.left import VANISHED_REASONS, known, known_clause, moved_reason
from daemon.jobs.models import Base, Job, JobState

reasons = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(VANISHED_REASONS),
                    st.text(max_size=30).map(moved_reason),
                    st.text(max_size=30).map(lambda t: "the file was moved to" + t),
                    st.text(max_size=10).map(lambda t: t + moved_reason("%_")))
rows = st.lists(st.tuples(st.sampled_from(list(JobState)), reasons), max_size=12)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One SQLite file for every example (each empties the table first)."""
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('left') / 'jobs.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@settings(deadline=None)
@given(found=rows)
def test_the_query_knows_what_the_decision_knows(engine: Engine,
                                                 found: list[tuple[JobState, str | None]]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Job))
        for i, (state, reason) in enumerate(found):
            conn.execute(insert(Job).values(
                path=f"/w/{i}.mov", root="/w", watch="/w", rel_path=f"{i}.mov", owner="",
                size=i, mtime_ns=i, state=str(state), last_error=reason, attempts=0,
                next_attempt_at=0.0, bytes_sent=0, created_at=0.0, updated_at=0.0))
        got = set(conn.execute(select(Job.size).where(known_clause())).scalars())
    assert got == {i for i, (state, reason) in enumerate(found) if known(state, reason)}
