"""Issue 32: following through faults, against the built-in sandbox. A key refused (401/403)
when asking about captures pauses following with one `analysis_credentials` notice and no loop
of reads while uploads go on, and following resumes once the key works; a fleet node killed
while it holds the follow leases leaves its captures to the other node."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from support import Proc, Sandbox, jobs_by_name, start_daemon, status, wait_for
from test_analysis import ATHLETE, FIRST_LOOK, analysis, drop, final, station

REFUSED = (401, 403)


def refused_reads(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.state()["reads"] if r["answer"] in REFUSED]


def done(config: Path, name: str) -> bool:
    return jobs_by_name(config).get(name, {}).get("state") == "done"


def test_refused_reads_pause_following_not_uploads(tmp_path: Path, sandbox: Sandbox,
                                                   procs: list[Proc]) -> None:
    """A key Uplift lets create captures but not read them (403 on GET /captures): one notice,
    a read per wake-up rather than a loop, uploads go on; the key fixed, the next upload's wake
    resumes following and clears the notice."""
    captures, config = station(tmp_path, sandbox)
    procs.append(daemon := start_daemon(tmp_path, config))
    drop(tmp_path, captures / ATHLETE, "first.mov")
    wait_for(lambda: analysis(config, "first.mov"), 60, what="the upload confirmed")
    refusal = [{"status": 403}] * 100
    sandbox.faults(capture_read=refusal, capture_list=refusal)
    wait_for(lambda: "analysis_credentials" in status(config)["notices"], FIRST_LOOK + 30,
             what="the analysis_credentials notice")
    assert len(refused_reads(sandbox)) == 1

    drop(tmp_path, captures / ATHLETE, "second.mov")  # uploads go on
    wait_for(lambda: done(config, "second.mov"), 60, what="an upload while paused")
    # The second capture falls due FIRST_LOOK after its upload: past that, a follower that
    # looped on the refusal would have sent dozens of reads (max_rate 2/s); a paused one sent
    # one, when the upload's done woke it.
    uploaded = time.monotonic()
    wait_for(lambda: time.monotonic() - uploaded > FIRST_LOOK + 5, FIRST_LOOK + 10,
             what="the second capture's first look to pass")
    assert len(refused_reads(sandbox)) <= 2
    assert [e for e in daemon.events() if e.get("event") == "analysis.paused"][1:] == []
    assert analysis(config, "first.mov")["status"] == "processing"
    assert analysis(config, "second.mov")["status"] == "processing"

    sandbox.faults(capture_read=[], capture_list=[])  # the key fixed at Uplift
    drop(tmp_path, captures / ATHLETE, "third.mov")
    for name in ("first.mov", "second.mov"):
        got = wait_for(lambda n=name: final(config, n), 60, what=f"{name} analysed")
        assert got["status"] == "completed"
    wait_for(lambda: "analysis_credentials" not in status(config)["notices"], 30,
             what="the notice to clear")
    assert len(refused_reads(sandbox)) <= 2


def test_rotated_key_pauses_following_until_the_new_key(tmp_path: Path, sandbox: Sandbox,
                                                         procs: list[Proc]) -> None:
    """The key rotated at Uplift (every request 401): following pauses with one notice and no
    loop of reads; the new key in the token file and a reload, following resumes."""
    from support import set_config_key

    captures, config = station(tmp_path, sandbox)
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.token + "\n")
    set_config_key(config, "api", "token_file", f'"{token_file}"')
    procs.append(daemon := start_daemon(tmp_path, config, token=""))
    drop(tmp_path, captures / ATHLETE, "swing.mov")
    wait_for(lambda: analysis(config, "swing.mov"), 60, what="the upload confirmed")
    sandbox.set_token("rotated-token-7e21")
    wait_for(lambda: "analysis_credentials" in status(config)["notices"], FIRST_LOOK + 30,
             what="the analysis_credentials notice")
    paused = time.monotonic()
    wait_for(lambda: time.monotonic() - paused > 10, 15, what="ten seconds paused")
    assert len(refused_reads(sandbox)) == 1  # no loop of reads
    token_file.write_text("rotated-token-7e21\n")
    daemon.signal(signal.SIGHUP)
    got = wait_for(lambda: final(config, "swing.mov"), 30, what="analysed with the new key")
    assert got["status"] == "completed"
    wait_for(lambda: "analysis_credentials" not in status(config)["notices"], 30,
             what="the notice to clear")
