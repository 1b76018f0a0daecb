"""The watcher's compact set of known file versions (daemon/watch/known.py) answers exactly as a
plain dict of path -> (size, mtime_ns) would, through any mix of sets, forgets and merges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.watch.known import Known

paths = st.sampled_from([f"/captures/jane/take-{i}.mov" for i in range(12)] + ["/c/ü/é.mov"])
versions = st.tuples(st.integers(0, 3), st.integers(0, 3))
ops = st.lists(st.tuples(st.sampled_from(["set", "forget"]), paths, versions), max_size=60)


def apply(known: Known, model: dict[str, tuple[int, int]], op: str, path: str,
          version: tuple[int, int]) -> None:
    """One change, to the Known and to the plain dict it must answer as."""
    if op == "set":
        known.set(path, *version)
        model[path] = version
    else:
        known.forget(path)
        model.pop(path, None)


@given(st.lists(st.tuples(paths, versions), max_size=20), ops, st.integers(1, 5))
def test_answers_as_a_dict_would(start: list, changes: list, merge_at: int) -> None:
    model = {}
    for path, version in start:  # rows in id order: a later row of a path wins
        model[path] = version
    known = Known([(p, *v) for p, v in start], merge_at=merge_at)
    for op, path, version in changes:
        apply(known, model, op, path, version)
        for p in {path, *model}:
            for v in [version, model.get(p, (9, 9))]:
                assert known.matches(p, *v) == (model.get(p) == v)
            assert (p in known) == (p in model)
    assert len(known) == len(model)


def test_a_path_it_never_saw_is_not_known() -> None:
    known = Known([("/a/b.mov", 10, 20)])
    assert known.matches("/a/b.mov", 10, 20)
    assert not known.matches("/a/b.mov", 10, 21) and not known.matches("/a/c.mov", 10, 20)


@given(st.lists(st.tuples(paths, versions), max_size=20), ops, ops, st.integers(1, 5))
def test_changes_made_before_the_load_are_replayed_on_it(start: list, early: list, late: list,
                                                         merge_at: int) -> None:
    """The watcher observes before it loads the known versions (start-up): what it learnt
    meanwhile is kept in a journal and wins over the rows loaded later."""
    model: dict[str, tuple[int, int]] = {}
    for path, version in start:
        model[path] = version
    journal = Known.journal()
    for op, path, version in early:
        apply(journal, model, op, path, version)
    known = Known([(p, *v) for p, v in start], merge_at=merge_at)
    known.replay(journal)
    for op, path, version in late:
        apply(known, model, op, path, version)
    for p in {path for path, _ in start} | {path for _, path, _ in early + late}:
        assert (p in known) == (p in model)
        if p in model:
            assert known.matches(p, *model[p])
    assert len(known) == len(model)
