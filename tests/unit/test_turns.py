"""Send turns: no more uploads send at once than there are turns; a turn given back (the closing
boundary written) lets the next one send; a waiting upload gives up when the daemon stops."""

from __future__ import annotations

import threading

import pytest

from daemon.net.upload import Aborted
from daemon.work.turns import Turns


def test_a_turn_is_given_back_once_and_can_be_taken_again() -> None:
    turns, abort = Turns(1), threading.Event()
    first = turns.turn(abort)
    first.take()
    second = turns.turn(abort)
    got = threading.Event()

    def wait_for_turn() -> None:
        second.take()
        got.set()

    waiter = threading.Thread(target=wait_for_turn)
    waiter.start()
    assert not got.wait(0.3)  # one turn, held
    first.give()
    first.give()  # a second give is nothing: never two turns from one
    assert got.wait(5)
    waiter.join()
    abort.set()
    with pytest.raises(Aborted):
        first.take()  # the one turn is the second upload's now
    second.give()
    abort.clear()
    with first:  # free again
        pass


def test_waiting_for_a_turn_ends_when_the_daemon_stops() -> None:
    told: list[int] = []
    turns, abort = Turns(1, on_waiting=lambda: told.append(1)), threading.Event()
    turns.turn(abort).take()
    failed: list[BaseException] = []

    def wait_for_turn() -> None:
        try:
            turns.turn(abort).take()
        except Aborted as exc:
            failed.append(exc)

    waiter = threading.Thread(target=wait_for_turn)
    waiter.start()
    abort.set()
    waiter.join(5)
    assert not waiter.is_alive() and len(failed) == 1
    assert turns.waiting() == 0 and told  # reserve-ahead was told a held job is gone


def test_a_closed_gate_sends_a_waiting_job_back() -> None:
    open_ = [True]
    turns = Turns(1, may_start=lambda: open_[0])
    abort = threading.Event()
    turns.turn(abort).take()
    open_[0] = False  # paused, or upload hours ended
    with pytest.raises(Aborted):
        turns.turn(abort).take()


def test_a_fenced_node_does_not_reach_the_closing_boundary() -> None:
    class Fence:  # fleet mode's (jobs/fleet.py): the epoch moves on when this node is fenced
        epoch = 3

        def live(self, epoch: int) -> bool:
            return epoch == self.epoch

    fence = Fence()
    turns, abort = Turns(1, fence=fence), threading.Event()
    with turns.turn(abort) as turn:
        turn.check()  # the epoch it began in is still live
        fence.epoch = 4
        with pytest.raises(Aborted):
            turn.check()


def test_a_stuck_threads_turn_is_forfeited_once() -> None:
    """A slot let go while stuck (work/stuck.py): its thread's turn is given back for it, and
    the thread's own give, when it returns, gives nothing more."""
    turns, abort = Turns(1), threading.Event()
    stuck = turns.turn(abort)
    holder = threading.Thread(target=stuck.take)
    holder.start()
    holder.join()
    assert holder.ident is not None
    turns.forfeit(holder.ident)
    turns.forfeit(holder.ident)  # nothing held any more
    stuck.give()  # the stale thread returns
    nxt = turns.turn(abort)
    nxt.take()
    other = turns.turn(abort)
    abort_soon = threading.Timer(0.3, abort.set)
    abort_soon.start()
    with pytest.raises(Aborted):  # still one turn in all, held by `nxt`
        other.take()
    abort_soon.join()
