"""Issue 32: the follower's reads of one round (Follower._look). One page of `status=processing`
answers every followed capture still processing; only those absent from the pages (final by
now, or never listed) are asked by id; pages are followed to the list's end and no further than
needed. The API is a small fake of Uplift's list and read; the table records what was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from daemon.analysis import follower as follower_mod
from daemon.analysis.follower import Follower
from daemon.config.settings import AnalysisSettings
from daemon.errors import Kind, TransferError, Where
from daemon.jobs.analysis import Followed
from daemon.net.api import Capture

NOW = 1_800_000_000.0


@dataclass
class FakeUplift:
    """Captures by session id and status; every request, as (kind, argument)."""
    statuses: dict[str, str]
    requests: list[tuple[str, Any]] = field(default_factory=list)
    refuse_list: int | None = None  # an HTTP status every list request is answered with

    def list_captures(self, status: str, limit: int = 500, offset: int = 0
                      ) -> tuple[list[Capture], int]:
        self.requests.append(("list", offset))
        if self.refuse_list is not None:
            raise TransferError(Where.API, Kind.HTTP, "refused", status=self.refuse_list)
        rows = [Capture(s, st_, None) for s, st_ in self.statuses.items() if st_ == status]
        return rows[offset:offset + limit], len(rows)

    def get_capture(self, session_id: str) -> Capture:
        self.requests.append(("get", session_id))
        if session_id not in self.statuses:
            raise TransferError(Where.API, Kind.HTTP, "not found", status=404)
        status = self.statuses[session_id]
        return Capture(session_id, status, None, 25.0 if status == "completed" else None)

    @property
    def pages(self) -> list[int]:
        return [a for k, a in self.requests if k == "list"]

    @property
    def gets(self) -> list[str]:
        return [a for k, a in self.requests if k == "get"]


@dataclass
class FakeTable:
    written: dict[str, str] = field(default_factory=dict)  # session id -> status written

    def again(self, f: Followed, now: float, next_at: float) -> None:
        self.written[f.session_id] = "processing"

    def final(self, f: Followed, now: float, status: str, error: str | None,
              fps: float | None) -> None:
        self.written[f.session_id] = status

    def release(self, items: list[Followed], next_at: float) -> None:
        for f in items:
            self.written[f.session_id] = "released"


def followed(ids: list[str]) -> list[Followed]:
    return [Followed(i, s, f"/c/{s}.mov", None, 1, NOW + 86400, "node", NOW + 300)
            for i, s in enumerate(ids)]


def look(api: FakeUplift, ids: list[str]) -> FakeTable:
    table = FakeTable()
    f = Follower(table, api, AnalysisSettings(), lambda: NOW,  # type: ignore[arg-type]
                 on_result=lambda r: None, on_notice=lambda n, m: None)
    f._look(followed(ids))
    return table


def test_one_page_answers_every_capture_still_processing() -> None:
    ids = [f"p{i}" for i in range(300)]
    api = FakeUplift({s: "processing" for s in ids} | {"other": "processing"})
    table = look(api, ids)
    assert api.requests == [("list", 0)]  # 300 captures, one request
    assert table.written == {s: "processing" for s in ids}


def test_those_absent_from_the_page_are_read_by_id() -> None:
    api = FakeUplift({"a": "processing", "b": "completed", "c": "processing", "d": "error"})
    table = look(api, ["a", "b", "c", "d", "e"])
    assert api.pages == [0]
    assert sorted(api.gets) == ["b", "d", "e"]  # final by now, or deleted: asked one by one
    assert table.written == {"a": "processing", "b": "completed", "c": "processing",
                             "d": "error", "e": "gone"}


def test_pages_are_followed_until_every_wanted_one_is_found() -> None:
    others = {f"x{i}": "processing" for i in range(1200)}
    api = FakeUplift(others | {"late": "processing", "gone-by-now": "completed"})
    look(api, ["late", "gone-by-now"])  # "late" is the 1,201st processing capture
    assert api.pages == [0, 500, 1000]
    assert api.gets == ["gone-by-now"]


def test_no_page_after_every_wanted_one_is_found() -> None:
    api = FakeUplift({f"x{i}": "processing" for i in range(1200)})
    look(api, ["x3", "x499"])
    assert api.requests == [("list", 0)]


def test_pages_stop_at_the_lists_end() -> None:
    api = FakeUplift({f"x{i}": "processing" for i in range(600)} | {"done": "completed"})
    look(api, ["done", "nowhere"])
    assert api.pages == [0, 500]  # to the end of 600, not beyond
    assert sorted(api.gets) == ["done", "nowhere"]


def test_at_most_max_pages_then_by_id() -> None:
    many = {f"x{i:05d}": "processing" for i in range(follower_mod.PAGE *
                                                         (follower_mod.MAX_PAGES + 2))}
    last = sorted(many)[-1]
    api = FakeUplift(many)
    look(api, [last, "x00000"])
    assert len(api.pages) == follower_mod.MAX_PAGES
    assert api.gets == [last]


def test_one_capture_is_read_by_id_without_a_page() -> None:
    api = FakeUplift({"a": "processing"})
    look(api, ["a"])
    assert api.requests == [("get", "a")]


def test_a_refused_page_is_every_unfound_captures_answer() -> None:
    api = FakeUplift({"a": "processing", "b": "processing"}, refuse_list=503)
    table = look(api, ["a", "b"])
    assert api.requests == [("list", 0)]  # no read by id after the list failed
    assert table.written == {"a": "processing", "b": "processing"}  # looked again later


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=4),
                       st.sampled_from(["processing", "completed", "error"]), max_size=60),
       st.sets(st.text("abcdef", min_size=1, max_size=4), min_size=2, max_size=40),
       st.integers(1, 7))
def test_every_capture_answered_with_pages_plus_the_absent(
        world: dict[str, str], wanted: set[str], page: int) -> None:
    """Whatever the list holds and whatever page size: each followed capture gets its own
    status written, and the requests are the pages read plus one per capture not on them."""
    old = follower_mod.PAGE
    follower_mod.PAGE = page
    try:
        api = FakeUplift(dict(world))
        table = look(api, sorted(wanted))
    finally:
        follower_mod.PAGE = old
    assert table.written == {s: world.get(s, "gone") for s in wanted}
    listed = [s for s, status in world.items() if status == "processing"]  # the list's order
    on_list = [i for i, s in enumerate(listed) if s in wanted]
    needed = -(-(on_list[-1] + 1 if len(on_list) == len(wanted) else len(listed)) // page)
    assert len(api.pages) == min(follower_mod.MAX_PAGES, max(1, needed))
    read = set(listed[:len(api.pages) * page])
    assert sorted(api.gets) == sorted(wanted - read)  # by id: only those no page held


@dataclass
class SlowUplift(FakeUplift):
    """Uplift answering slowly (or a pace holding reads after a 429): each page takes
    `page_seconds` of the fake wall clock, each read by id the next of `read_seconds`; the
    wall time every request began at is in `began`."""
    clock: list[float] = field(default_factory=lambda: [NOW])
    page_seconds: float = 0.0
    read_seconds: list[float] = field(default_factory=list)
    began: list[float] = field(default_factory=list)

    def list_captures(self, status: str, limit: int = 500, offset: int = 0
                      ) -> tuple[list[Capture], int]:
        self.began.append(self.clock[0])
        self.clock[0] += self.page_seconds
        return super().list_captures(status, limit, offset)

    def get_capture(self, session_id: str) -> Capture:
        self.began.append(self.clock[0])
        self.clock[0] += self.read_seconds[len(self.gets) % len(self.read_seconds)]
        return super().get_capture(session_id)


def slow_look(api: SlowUplift, ids: list[str]) -> FakeTable:
    table = FakeTable()
    f = Follower(table, api, AnalysisSettings(), lambda: api.clock[0],  # type: ignore[arg-type]
                 on_result=lambda r: None, on_notice=lambda n, m: None)
    f._look(followed(ids))
    return table


@given(st.lists(st.floats(0.0, 200.0), min_size=1, max_size=20), st.integers(1, 300),
       st.sampled_from(["completed", "processing"]))
def test_no_read_begins_once_half_the_lease_is_gone(
        seconds: list[float], n: int, status: str) -> None:
    """Reads that take seconds each (a slow API, a Retry-After holding the pace): the claim's
    lease (NOW + 300 s, as `followed` claims) is the guard, not the count. No request begins
    after half of it, so every one ends within the lease (a fleet's other node takes captures
    over at its end and reads them again); the captures not read are released, due again at
    once, and a round always settles at least one."""
    ids = [f"c{i}" for i in range(n)]
    api = SlowUplift({s: status for s in ids} if status == "completed" else {},
                     read_seconds=seconds)
    table = slow_look(api, ids)
    half = NOW + 300 - 300 / 2
    assert all(t < half for t in api.began[1:]), api.began  # the first read always goes
    assert set(table.written) == set(ids)  # each settled or released, none forgotten
    read = set(api.gets)
    assert {s for s, w in table.written.items() if w != "released"} == read
    assert read  # progress, however slow the API


def test_a_slow_api_cuts_the_round_at_half_the_lease() -> None:
    """300 captures claimed at 2/s, but Uplift answers each read in 10 s: 15 are read within
    the first 150 s of the 300 s lease, the other 285 released for the next round's claim."""
    ids = [f"c{i}" for i in range(300)]
    api = SlowUplift({s: "completed" for s in ids}, read_seconds=[10.0])
    table = slow_look(api, ids)
    assert len(api.gets) == 15
    assert list(table.written.values()).count("released") == 285


def test_slow_pages_stop_at_half_the_lease_and_those_they_answered_are_settled() -> None:
    """Pages of 2,000 captures still processing, 100 s each: two are read (the second begins
    at 100 s), none after 150 s; the capture the pages found is settled without a read and
    the rest released (the round settled one, so it asks no one by id)."""
    world = {f"x{i:04d}": "processing" for i in range(2000)}
    api = SlowUplift(world, page_seconds=100.0, read_seconds=[1.0])
    table = slow_look(api, ["x0003", "x1999", "x1500"])
    assert api.pages == [0, 500]
    assert api.gets == []
    assert table.written == {"x0003": "processing", "x1999": "released",
                             "x1500": "released"}
