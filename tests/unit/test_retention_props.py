"""Issue 33 item 4: retention's pure decision (which uploaded originals to delete) and its
settings. `choose` never picks a capture Uplift has not reported completed, never more than the
space needed (keep_days aside), and always the oldest first; `[retention]` without following is
refused, naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import write_config

from daemon import config as config_mod
from daemon.config import ConfigError
from daemon.jobs.retention import Kept
from daemon.station.retention import choose, same_version, why_kept

STATUSES = ("completed", "processing", "error", "gone", "unknown", None)


def kept_files() -> st.SearchStrategy[list[Kept]]:
    one = st.builds(lambda i, size, done, status: Kept(i, f"/w/a/{i}.mov", size, 1, done,
                                                      status, False),
                    st.integers(1, 10**6), st.integers(0, 10**9), st.floats(0, 10**6),
                    st.sampled_from(STATUSES))
    return st.lists(one, max_size=30, unique_by=lambda k: k.job_id)


def order(k: Kept) -> tuple[float, int]:
    return k.finished_at, k.job_id


@given(kept_files(), st.integers(-10**9, 10**10), st.none() | st.floats(0, 10**6))
def test_only_completed_the_oldest_first_and_never_more_than_needed(
        kept: list[Kept], need: int, old_before: float | None) -> None:
    chosen = choose(kept, need, old_before)
    assert all(k.analysis == "completed" for k in chosen)
    ready = sorted((k for k in kept if k.analysis == "completed"), key=order)
    assert chosen == ready[:len(chosen)]  # the oldest first: a prefix of the completed ones
    aged = [k for k in ready if old_before is not None and k.finished_at < old_before]
    assert all(k in chosen for k in aged)  # keep_days: every one done before the cut
    freed = sum(k.size for k in chosen)
    if len(chosen) < len(ready):
        assert freed >= need  # stopped only once enough was freed
    if chosen and chosen[-1] not in aged:
        # without its last pick it would not have freed enough: not one file more
        assert freed - chosen[-1].size < need


@given(kept_files())
def test_nothing_needed_and_nothing_aged_deletes_nothing(kept: list[Kept]) -> None:
    assert choose(kept, 0) == [] and choose(kept, -5, None) == []


def test_a_changed_file_is_not_the_uploaded_version() -> None:
    k = Kept(1, "/w/a.mov", 100, 5_000_000_000, 0.0, "completed", False)
    assert same_version(k, 100, 5_000_000_000)
    assert not same_version(k, 101, 5_000_000_000) and not same_version(k, 100, 5_000_000_001)
    shared = Kept(1, "/w/a.mov", 100, 5_000_000_000, 0.0, "completed", True)
    assert same_version(shared, 100, 4_000_000_000)  # another node's 2 s rounding
    assert not same_version(shared, 100, 9_000_000_000)


def test_why_nothing_may_be_deleted_counts_each_reason() -> None:
    kept = [Kept(i, "/p", 1, 1, 0.0, s, False) for i, s in
            enumerate(("processing", "processing", "error", None))]
    assert why_kept(kept, 3) == ("2 still being analysed by Uplift; 1 failed Uplift's checks "
                                 "(kept for the coach); 1 uploaded before captures were "
                                 "followed; 3 not uploaded yet")


@pytest.mark.parametrize("section", ['min_free = "24MiB"', "keep_days = 7"])
def test_retention_without_following_is_refused_naming_key_and_file(
        tmp_path: Path, section: str) -> None:
    (tmp_path / "w").mkdir()
    path = write_config(tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "jobs.db",
                        extra=f"[analysis]\nfollow = false\n[retention]\n{section}")
    key = section.split(" ")[0]
    with pytest.raises(ConfigError, match=rf"{path}: \[retention\] {key}: needs \[analysis\] "
                                          r"follow = true"):
        config_mod.load(str(path))


def test_retention_settings_are_validated_by_name(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()

    def load(body: str) -> config_mod.Config:
        return config_mod.load(str(write_config(
            tmp_path / "c.toml", watch=tmp_path / "w", db=tmp_path / "jobs.db",
            extra=f"[retention]\n{body}")))

    for body, key in (('min_free = "lots"', "min_free"), ('min_free = "off"', "min_free"),
                      ("keep_days = -1", "keep_days"), ('keep_days = "7"', "keep_days"),
                      ("keep = 7", "keep")):
        with pytest.raises(ConfigError, match=rf"\[retention\] {key}"):
            load(body)
    assert not load("").retention.on  # off unless configured
    cfg = load('min_free = "10%"\nkeep_days = 2.5')
    assert cfg.retention.on and cfg.retention.min_free == "10%" and cfg.retention.keep_days == 2.5
