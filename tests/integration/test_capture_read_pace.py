"""The station's pace of capture reads against the sandbox answering 429 with a Retry-After no
read should wait out in one sleep (a day; a number too large for a sleep at all): the pace holds
every read for a bounded while only. The follower's schedule and the lost-answer check honour
the full Retry-After on their own (schedule.next_look, landed.decide_unknown); a pace that slept
it would hang the upload worker asking about a lost answer, with its claim, for as long."""

from __future__ import annotations

import httpx
import pytest
from support import TOKEN, Sandbox

from daemon.errors import TransferError
from daemon.net.api import ApiClient
from daemon.net.pace import MAX_HOLD, Pace


@pytest.mark.parametrize("retry_after", ["86400", "1e400"])
def test_a_huge_retry_after_holds_the_next_read_a_bounded_while(
        sandbox: Sandbox, retry_after: str) -> None:
    slept: list[float] = []
    api = ApiClient(sandbox.base_url, TOKEN, httpx.Timeout(5.0))
    api.pace = Pace(5.0, sleep=slept.append)
    sandbox.faults(capture_list=[{"status": 429, "retry_after": retry_after}])
    with pytest.raises(TransferError) as err:
        api.list_captures("processing")
    assert err.value.status == 429
    with pytest.raises(TransferError) as gone:  # the next read goes, after a bounded hold
        api.get_capture("no-such-capture")
    assert gone.value.status == 404
    assert slept and max(slept) <= MAX_HOLD + 1.0, slept
