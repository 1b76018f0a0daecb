"""The operator's pause, stored in the job table (a notice named "paused") so it survives
restarts and the CLI, the console and the daemon share it."""

from __future__ import annotations

from typing import Any

from daemon.timeutil import local_clock

NOTICE = "paused"
NOW_NOTICE = "_pause_now"  # internal (status shows no "_" notices): in-flight uploads go back


def pause(store: Any, now: float, until: float | None = None, now_flag: bool = False) -> str:
    """Stop new reservations (until `until`, or until resumed). With `now_flag`, uploads in
    flight go back to the queue too (the daemon is told through SIGUSR1)."""
    when = f" until {local_clock(until, now)}" if until else " until resumed"
    message = f"uploads paused by an operator{when}" + \
        ("; running uploads were put back in the queue" if now_flag else
         "; running uploads finish")
    store.set_notice(NOTICE, message, until, now)
    if now_flag:
        store.set_notice(NOW_NOTICE, "", until, now)
    else:
        store.clear_notice(NOW_NOTICE)
    return message


def resume(store: Any, now: float) -> None:
    store.clear_notice(NOTICE)
    store.clear_notice(NOW_NOTICE)


def paused(store: Any, now: float) -> tuple[bool, float | None]:
    """(paused?, until). A pause whose time has passed is over."""
    return paused_in(store.notices(), now)


def paused_in(notices: dict[str, Any], now: float) -> tuple[bool, float | None]:
    """`paused`, from the notices as read."""
    notice = notices.get(NOTICE)
    if notice is None:
        return False, None
    until = notice.get("until")
    if until is not None and until <= now:
        return False, None
    return True, until


def stops_running_uploads(store: Any, now: float) -> bool:
    return paused(store, now)[0] and NOW_NOTICE in store.notices()
