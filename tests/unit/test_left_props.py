"""Issue 28, item 1: which ended jobs the watcher is done with at their path (jobs/left.py). A
skip that says the file left its path (moved, vanished, removed) never makes its version known;
skips for the file's content (duplicates, not a movie file) and failures stay known."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemon.jobs.left import VANISHED_REASONS, known, left_its_path, moved_reason
from daemon.jobs.models import JobState
from daemon.watch.classify import Skip, Twin, resolve_twins

states = st.sampled_from(list(JobState))
reasons = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(VANISHED_REASONS))
new_paths = st.text(min_size=1, max_size=60)


@given(new_paths)
def test_a_job_skipped_as_moved_is_never_known(new_path: str) -> None:
    reason = moved_reason(new_path)
    assert left_its_path(JobState.SKIPPED, reason) and not known(JobState.SKIPPED, reason)


def test_a_job_skipped_as_vanished_or_removed_is_never_known() -> None:
    for reason in VANISHED_REASONS:
        assert not known(JobState.SKIPPED, reason)


@given(states, reasons)
def test_only_a_skip_leaves_its_path_and_pending_is_never_known(state: JobState,
                                                                 reason: str | None) -> None:
    if state != JobState.SKIPPED:
        assert not left_its_path(state, reason)
        assert known(state, reason) == (state != JobState.PENDING)


@given(st.sampled_from([JobState.QUEUED, JobState.DONE]), st.integers(1, 10**6), new_paths)
def test_a_skip_for_its_content_stays_known(state: JobState, job_id: int, path: str) -> None:
    """A duplicate's reason names the earlier job's path, which may read like anything."""
    verdict = resolve_twins([Twin(job_id, path, state, True)])
    assert isinstance(verdict, Skip)
    assert known(JobState.SKIPPED, verdict.reason)


@given(states, new_paths)
def test_the_moved_words_only_count_as_a_skip_s_reason(state: JobState, path: str) -> None:
    """A failed or done job whose note happens to use the words is still known."""
    if state not in (JobState.SKIPPED, JobState.PENDING):
        assert known(state, moved_reason(path))
