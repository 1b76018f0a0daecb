"""The job table's transitions, searched (issue 19): a Hypothesis state machine drives the real
Store (watcher's, worker's and operator's writes, fleet takeover, recovery at start) on a real
SQLite file and a real PostgreSQL, several nodes at once, and checks after every step:

- every job is in exactly one state of JobState, and the counts add up;
- the table is what a simple model of the transitions says (state, holder, claim number);
- at most one live claim per job (a node's claim is live when the row is in flight under it);
  a node may hold a stale and a live claim of one job at once (taken over, then claimed again
  by the same node), and each write carries its own;
- `done` is final (only an operator's retry moves failed/skipped jobs, never done ones);
- no write from a stale claim (after a takeover, or a requeue and another node's claim) changes
  the row: it raises TransitionError/TakenOver, or finds it already as it would leave it;
- a `done` whose commit landed while its answer was lost succeeds when retried (item 6).

On SQLite "nodes" are the daemon's successive processes and claims on one file (one daemon per
file); takeover is a fleet (PostgreSQL) thing. `make fuzz` runs many more, longer sequences.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dbfaults import CommitDrop, drop_after_commit, is_done_write
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError

from daemon.jobs import engine as engine_mod
from daemon.jobs.fleet import Fleet
from daemon.jobs.models import IN_FLIGHT, Claim, Job, JobState, Node, Reservation
from daemon.jobs.store import Ready, Store, TransitionError

T0 = 1_800_000_000.0
LEASE = 30.0
NODES = ("n0", "n1", "n2")
STATES = {s.value for s in JobState}


def ready() -> Ready:
    return Ready(size=10, mtime_ns=1, athlete_id="a" * 8, session_group_id="g" * 8,
                 file_name="x.mov", capture_time="2026-01-01T00:00:00.000Z",
                 camera_configuration="{}", movement_attributes="{}")


@dataclass
class Row:
    """The model of one job."""

    state: str
    node: str | None
    claim_no: int
    due: float


@dataclass
class Backend:
    url: str
    stores: dict[str, Store]
    drops: dict[str, CommitDrop]

    @property
    def fleet(self) -> bool:
        return next(iter(self.stores.values())).fleet


def machine_for(backend: Backend) -> type[RuleBasedStateMachine]:
    fleet = backend.fleet

    class JobTable(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            any_store = backend.stores[NODES[0]]
            with engine_mod.write_tx(any_store.engine) as conn:
                for table in (Reservation, Job, Node):
                    conn.execute(delete(table))
            for drop in backend.drops.values():
                drop.left = 0
            self.now = T0
            self.files = 0
            self.rows: dict[int, Row] = {}
            self.ever_done: set[int] = set()
            # The claims each node's uploads were given and have not ended (live or stale).
            self.claims: dict[str, set[Claim]] = {n: set() for n in NODES}

        # ---- helpers ----------------------------------------------------------------------

        def tick(self) -> float:
            self.now += 1.0
            return self.now

        def store(self, node: str) -> Store:
            return backend.stores[node]

        def live(self, claim: Claim) -> bool:
            """The claim is the row's current one, in flight."""
            row = self.rows[claim.job_id]
            return row.state in IN_FLIGHT and (row.node, row.claim_no) == (claim.node, claim.no)

        def worker_write(self, node: str, claim: Claim, froms: tuple[str, ...], to: str,
                         call: Any) -> bool:
            """Run a worker's write: it must succeed exactly when the node's claim is live and
            the job is in a from-state; otherwise raise, or change nothing (the row was already
            where it was going under this claim: a retried write, item 6)."""
            job_id = claim.job_id
            live = self.live(claim)
            expect = live and self.rows[job_id].state in froms
            before = self.db_row(job_id)
            try:
                call()
            except TransitionError:
                assert not expect, f"{node}'s live write of job {job_id} -> {to} refused"
                event("wrong state" if live else "stale claim refused")
                assert self.db_row(job_id) == before
                return False
            if not expect:  # allowed only as a no-op: the row already where it was going
                event("already there" if live else "stale claim, no change")
                assert self.db_row(job_id) == before and before[0] == to, \
                    f"stale write by {node} moved job {job_id}: {before} -> {self.db_row(job_id)}"
                return False
            row = self.rows[job_id]
            row.state = to
            if to not in IN_FLIGHT:
                self.claims[node].discard(claim)  # the upload ended with the write
            return True

        def db_row(self, job_id: int) -> tuple[Any, ...]:
            with engine_mod.read_tx(backend.stores[NODES[0]].engine) as conn:
                r = conn.execute(select(
                    Job.state, Job.node, Job.claim_no, Job.next_attempt_at, Job.session_id,
                    Job.refusals, Job.last_error, Job.bytes_sent, Job.etag)
                    .where(Job.id == job_id)).one()
            return tuple(r)

        def held_claims(self, node: str) -> list[Claim]:
            return sorted(self.claims[node])

        # ---- the watcher ------------------------------------------------------------------

        @rule(node=st.sampled_from(NODES), settled=st.booleans())
        def observe(self, node: str, settled: bool) -> None:
            self.files += 1
            now = self.tick()
            seen = self.store(node).observe(f"/w/jane/{self.files}.mov", "/w", 10, 1, now,
                                            shared_name="nas")
            assert seen.new and seen.state is JobState.PENDING and seen.job_id not in self.rows
            self.rows[seen.job_id] = Row(JobState.PENDING, None, 0, 0.0)
            if settled:  # most files settle at once: keep sequences busy with real work
                self.store(node).mark_ready(seen.job_id, ready(), now)
                self.rows[seen.job_id].state, self.rows[seen.job_id].due = JobState.QUEUED, now

        @precondition(lambda self: self.rows)
        @rule(data=st.data())
        def mark_ready(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.rows)))
            now = self.tick()
            expect = self.rows[job_id].state == JobState.PENDING
            try:
                self.store(NODES[0]).mark_ready(job_id, ready(), now)
            except TransitionError:
                assert not expect
                return
            assert expect
            self.rows[job_id].state, self.rows[job_id].due = JobState.QUEUED, now

        # ---- the worker -------------------------------------------------------------------

        @rule(node=st.sampled_from(NODES))
        def claim(self, node: str) -> None:
            now = self.tick()
            due = sorted((r.due, i) for i, r in self.rows.items()
                         if r.state == JobState.QUEUED and r.due <= now)
            job = self.store(node).claim(now)
            if not due:
                assert job is None
                return
            assert job is not None and job.id == due[0][1], (job, due)
            row = self.rows[job.id]
            row.state, row.node, row.claim_no = JobState.RESERVED, node, row.claim_no + 1
            assert job.claim == (job.id, node, row.claim_no)
            if any(c.job_id == job.id for c in self.claims[node]):
                event("claimed again by a node holding a stale claim of it")
            self.claims[node].add(job.claim)

        def holding(self) -> list[str]:
            return [n for n in NODES if self.claims[n]]

        @rule(node=st.sampled_from(NODES))
        def claim_reserve_upload(self, node: str) -> None:
            """The usual path in one step, so short sequences reach `done` often."""
            before = set(self.claims[node])
            self.claim(node)
            store = self.store(node)
            for claim in set(self.claims[node]) - before:
                now = self.tick()
                self.worker_write(node, claim, (JobState.RESERVED,), JobState.RESERVED,
                                  lambda c=claim, t=now: store.record_reservation(
                                      c, f"s{t}", "g", "http://u", t + 60, t))
                self.worker_write(node, claim, (JobState.RESERVED,), JobState.UPLOADING,
                                  lambda c=claim, t=now: store.start_upload(c, t))

        def pick(self, data: st.DataObject) -> tuple[str, Claim] | None:
            """A node and a claim one of its uploads was given (live or stale)."""
            holding = self.holding()
            if not holding:
                return None
            node = data.draw(st.sampled_from(holding))
            return node, data.draw(st.sampled_from(self.held_claims(node)))

        @precondition(lambda self: self.holding())
        @rule(data=st.data())
        def reserve(self, data: st.DataObject) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            now = self.tick()
            self.worker_write(node, claim, (JobState.RESERVED,), JobState.RESERVED,
                              lambda: self.store(node).record_reservation(
                                  claim, f"s{now}", "g", "http://u", now + 60, now))

        @precondition(lambda self: self.holding())
        @rule(data=st.data())
        def upload(self, data: st.DataObject) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            now = self.tick()
            self.worker_write(node, claim, (JobState.RESERVED,), JobState.UPLOADING,
                              lambda: self.store(node).start_upload(claim, now))

        @precondition(lambda self: self.holding())
        @rule(data=st.data())
        def lapse(self, data: st.DataObject) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            now = self.tick()
            self.worker_write(node, claim, (JobState.UPLOADING,), JobState.RESERVED,
                              lambda: self.store(node).reserve_again(claim, now))

        @precondition(lambda self: self.holding())
        @rule(data=st.data())
        def refuse(self, data: st.DataObject) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            job_id = claim.job_id
            now = self.tick()
            state = self.rows[job_id].state
            self.worker_write(node, claim, tuple(IN_FLIGHT), state,
                              lambda: self.store(node).count_refusal(claim, now))

        @precondition(lambda self: self.holding())
        @rule(data=st.data(), lost_answer=st.booleans())
        def done(self, data: st.DataObject, lost_answer: bool) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            job_id = claim.job_id
            now = self.tick()
            store = self.store(node)

            def finish() -> None:
                if not lost_answer:
                    store.finish(claim, "etag", now)
                    return
                backend.drops[node].left = 1  # the commit lands, its answer is lost
                try:
                    store.finish(claim, "etag", now)
                except OperationalError:
                    pass  # the recorder's retry (work/finish.py) writes it again
                finally:
                    backend.drops[node].left = 0
                store.finish(claim, "etag", now)

            if self.worker_write(node, claim, (JobState.UPLOADING,), JobState.DONE, finish):
                self.ever_done.add(job_id)

        @precondition(lambda self: self.holding())
        @rule(data=st.data(), later=st.sampled_from([0.0, 5.0]))
        def requeue(self, data: st.DataObject, later: float) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            job_id = claim.job_id
            now = self.tick()
            if self.worker_write(node, claim, tuple(IN_FLIGHT), JobState.QUEUED,
                                 lambda: self.store(node).requeue(
                                     claim, IN_FLIGHT, now, due=now + later, reason="again")):
                self.rows[job_id].due = now + later

        @precondition(lambda self: self.holding())
        @rule(data=st.data(), skip=st.booleans())
        def fail(self, data: st.DataObject, skip: bool) -> None:
            if (got := self.pick(data)) is None:
                return
            node, claim = got
            now = self.tick()
            store = self.store(node)
            end = store.skip if skip else store.fail
            self.worker_write(node, claim, tuple(IN_FLIGHT),
                              JobState.SKIPPED if skip else JobState.FAILED,
                              lambda: end(claim, IN_FLIGHT, now, "no"))

        # ---- the operator, the fleet, restarts ----------------------------------------------

        @precondition(lambda self: self.rows)
        @rule(data=st.data())
        def retry(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.rows)))
            now = self.tick()
            got = self.store(NODES[0]).retry([job_id], now)
            expect = self.rows[job_id].state in (JobState.FAILED, JobState.SKIPPED)
            assert got == ([job_id] if expect else [])
            if expect:
                self.rows[job_id].state, self.rows[job_id].due = JobState.QUEUED, now

        @precondition(lambda self: fleet)
        @rule(dead=st.sampled_from(NODES), by=st.sampled_from(NODES))
        def take_over(self, dead: str, by: str) -> None:
            if dead == by:
                return
            now = self.tick()
            with engine_mod.write_tx(self.store(by).engine) as conn:
                conn.execute(delete(Node))
                for n in NODES:  # everyone beats now but the dead node, silent for 2 leases
                    conn.execute(engine_mod.insert_for(conn)(Node).values(
                        name=n, heartbeat_at=now - 2 * LEASE if n == dead else now,
                        started_at=T0))
            fleet_by = Fleet(self.store(by), by, LEASE, clock=lambda: now)
            try:
                taken = fleet_by.takeover()
            finally:
                fleet_by.close()  # its connection of its own
            expect = sorted(i for i, r in self.rows.items()
                            if r.state in IN_FLIGHT and r.node == dead)
            assert sorted(taken) == expect
            for i in expect:
                row = self.rows[i]
                row.state, row.node, row.claim_no, row.due = \
                    JobState.QUEUED, None, row.claim_no + 1, now
            # The dead node's process lives on (it was only cut off): its claims are stale.

        @rule(node=st.sampled_from(NODES))
        def recover_at_start(self, node: str) -> None:
            """The node's daemon restarts: a new process (no claims held) recovers what its
            predecessor left in flight; on SQLite every in-flight job (one daemon per file)."""
            now = self.tick()
            if not fleet:  # SQLite: the one daemon restarts, every other "process" is gone
                for n in NODES:
                    self.claims[n].clear()
            self.claims[node].clear()
            store = self.store(node)
            count = store.recover(now)
            mine = [i for i, r in self.rows.items()
                    if r.state in IN_FLIGHT and (not fleet or r.node == node)]
            assert count == len(mine)
            for i in mine:
                self.rows[i].state, self.rows[i].due = JobState.QUEUED, now

        # ---- invariants -------------------------------------------------------------------

        @invariant()
        def table_matches_the_model(self) -> None:
            with engine_mod.read_tx(backend.stores[NODES[0]].engine) as conn:
                rows = {r.id: r for r in conn.execute(
                    select(Job.id, Job.state, Job.node, Job.claim_no))}
            assert set(rows) == set(self.rows)
            for job_id, r in rows.items():
                assert r.state in STATES
                m = self.rows[job_id]
                assert r.state == m.state and r.claim_no == m.claim_no, (job_id, r, m)
                if r.state in IN_FLIGHT:
                    assert r.node == m.node and r.node is not None
            counts = backend.stores[NODES[0]].counts()
            assert set(counts) == STATES and sum(counts.values()) == len(self.rows)
            for s in STATES:
                assert counts[s] == sum(1 for m in self.rows.values() if m.state == s)

        @invariant()
        def at_most_one_live_claim_per_job(self) -> None:
            for job_id in self.rows:
                assert sum(self.live(c) for n in NODES for c in self.claims[n]
                           if c.job_id == job_id) <= 1

        @invariant()
        def done_is_final(self) -> None:
            for job_id in self.ever_done:
                assert self.rows[job_id].state == JobState.DONE

    return JobTable


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else \
        str(request.getfixturevalue("pg_db"))
    stores: dict[str, Store] = {}
    drops: dict[str, CommitDrop] = {}
    for n in NODES:
        stores[n] = Store.open(url)
        stores[n].set_node(n, shared=["nas"])
        drops[n] = drop_after_commit(stores[n].engine, is_done_write, times=0)
    try:
        yield Backend(url, stores, drops)
    finally:
        for s in stores.values():
            s.close()


def test_job_table_transitions_keep_their_invariants(backend: Backend) -> None:
    # `ci` bounds the examples; a sequence stays short there, longer under `make fuzz`.
    current = settings()
    steps = 25 if current.max_examples <= 100 else 60
    run_state_machine_as_test(machine_for(backend), settings=settings(
        current, max_examples=current.max_examples, stateful_step_count=steps))

