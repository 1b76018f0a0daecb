"""Issue 29 item 5: which upload slots the supervisor lets go (work/stuck.py): a pure function
of each slot's facts (its job's folder, since when its thread is in a call on the file), the
folders not answering, the stale threads still alive and the clock."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from daemon.work.stuck import MOST_STALE_PER_WATCH, SlotFacts, lost

WATCHES = ["/a", "/b", "/c"]
NOW = 1000.0
STALL = 5.0


@st.composite
def slots(draw: st.DrawFn) -> list[SlotFacts]:
    n = draw(st.integers(0, 6))
    return [SlotFacts(i, draw(st.one_of(st.none(), st.sampled_from(WATCHES))),
                      draw(st.one_of(st.none(), st.floats(NOW - 30, NOW))))
            for i in range(n)]


hung = st.frozensets(st.sampled_from(WATCHES))
stale = st.dictionaries(st.sampled_from(WATCHES), st.integers(0, 2))


@given(slots(), hung, stale)
def test_only_slots_stuck_on_a_file_of_a_folder_not_answering_are_let_go(
        facts: list[SlotFacts], not_answering: frozenset[str], alive: dict[str, int]) -> None:
    chosen = lost(facts, NOW, STALL, not_answering, alive)
    assert len(set(chosen)) == len(chosen)
    for slot in chosen:
        f = facts[slot]
        assert f.watch in not_answering and f.file_since is not None
        assert NOW - f.file_since >= STALL


@given(slots(), hung, stale)
def test_stale_threads_per_folder_stay_bounded(
        facts: list[SlotFacts], not_answering: frozenset[str], alive: dict[str, int]) -> None:
    chosen = Counter(facts[s].watch for s in lost(facts, NOW, STALL, not_answering, alive))
    for watch, count in chosen.items():
        assert watch is not None
        assert alive.get(watch, 0) + count <= max(MOST_STALE_PER_WATCH, alive.get(watch, 0))
        assert alive.get(watch, 0) < MOST_STALE_PER_WATCH


@given(slots(), hung)
def test_with_none_stale_each_folder_stuck_long_enough_frees_a_slot(
        facts: list[SlotFacts], not_answering: frozenset[str]) -> None:
    chosen = {facts[s].watch for s in lost(facts, NOW, STALL, not_answering, {})}
    stuck = {f.watch for f in facts if f.watch in not_answering and f.file_since is not None
             and NOW - f.file_since >= STALL}
    assert chosen == stuck


@given(slots(), hung, stale, st.floats(0, 100))
def test_waiting_longer_never_frees_fewer(
        facts: list[SlotFacts], not_answering: frozenset[str], alive: dict[str, int],
        later: float) -> None:
    now = lost(facts, NOW, STALL, not_answering, alive)
    assert len(lost(facts, NOW + later, STALL, not_answering, alive)) >= len(now)


def test_a_slot_in_a_call_just_under_the_stall_or_not_in_one_is_kept() -> None:
    facts = [SlotFacts(0, "/a", NOW - STALL + 0.01), SlotFacts(1, "/a", None),
             SlotFacts(2, None, NOW - 60)]
    assert lost(facts, NOW, STALL, frozenset({"/a"}), {}) == []
    # long enough, but its folder still answers (a slow disk): kept too
    assert lost([SlotFacts(0, "/a", NOW - 60)], NOW, STALL, frozenset(), {}) == []
