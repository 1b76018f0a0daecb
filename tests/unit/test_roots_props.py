"""`watch.roots.judge`, the decision whether a watch root is there, over every combination of
facts (Hypothesis): a file under a root that is not there is never taken for gone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.errors import Kind, Outcome, TransferError, Where, decide
from daemon.watch.roots import NOT_THERE, Verdict, judge

ident = st.none() | st.tuples(st.integers(0, 3), st.integers(0, 3))


@given(current=ident, recorded=ident, shared=st.booleans(), waiting=st.booleans(),
       found=st.booleans())
def test_judge(current: tuple[int, int] | None, recorded: tuple[int, int] | None, shared: bool,
               waiting: bool, found: bool) -> None:
    asked: list[bool] = []

    def found_again() -> bool:
        asked.append(True)
        return found

    v = judge(current, recorded, shared, waiting, found_again)
    if current is None:
        assert v is Verdict.MISSING  # no folder: never there
    elif current == recorded or not waiting:
        assert v is Verdict.THERE  # the recorded folder, or nothing to mistake for gone
        assert not asked  # no file looked for
    elif found:
        assert v is Verdict.RECORD  # its waiting files are in it: accepted
    elif recorded is None and not shared:
        assert v is Verdict.THERE  # jobs from before identities were recorded
    else:
        assert v is Verdict.REPLACED
    # Another folder than the recorded one, with files waiting and none of them in it, is never
    # taken as the root.
    if current is not None and recorded is not None and current != recorded and waiting \
            and not found:
        assert v in NOT_THERE


@given(message=st.text(max_size=40), attempt=st.integers(1, 20))
def test_a_root_not_there_waits(message: str, attempt: int) -> None:
    d = decide(TransferError(Where.FILE, Kind.ROOT_ABSENT, message), attempt)
    assert d.outcome is Outcome.WAIT_ROOT and d.reason == message
