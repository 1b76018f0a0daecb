"""The schema-revision decisions (daemon/jobs/schema.py) over any revision string: never an
exception, unknown revisions are never "behind" (they are refused as too new), and known ones
order as their numbers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.jobs import schema
from daemon.jobs.engine import SCHEMA_HEAD

HEAD = int(SCHEMA_HEAD)
numbered = st.integers(0, 9999).map(lambda n: f"{n:04d}")
anything = st.one_of(st.none(), numbered, st.text(max_size=12))


@given(anything)
def test_a_revision_is_known_or_refused_never_an_exception(revision: str | None) -> None:
    n = schema.number(revision)
    known = schema.is_known(revision)
    assert known == (n is not None and n <= HEAD)
    if not known:
        assert not schema.is_behind(revision)  # too new or foreign: refused, not "restart it"
        message = str(schema.too_new(revision))
        assert SCHEMA_HEAD in message and "\n" not in message


@given(numbered, numbered)
def test_behind_orders_revisions_as_numbers(revision: str, need: str) -> None:
    assert schema.is_behind(revision, need) == (int(revision) < int(need))
    if schema.is_behind(revision, need):
        message = str(schema.behind(revision, need))
        assert revision in message and need in message and "restart it" in message


def test_no_schema_at_all_is_behind_every_revision() -> None:
    assert schema.number(None) == 0 and schema.is_known(None)
    assert schema.is_behind(None, "0001")
