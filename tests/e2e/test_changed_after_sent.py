"""Issue 28, item 4: a file changed after its whole body was sent (the endpoint stored it, then
answered) is recorded `done`, the change noted where `status` shows it; the changed file is a
new version: a job of its own, which uploads the changed bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

from support import (
    Sandbox,
    captures_config,
    make_movie,
    sha256,
    start_daemon,
    status,
    wait_for,
    wait_settled,
)


def test_a_file_changed_after_the_endpoint_stored_it_is_done_and_its_change_goes_too(
        tmp_path: Path, sandbox: Sandbox) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3)
    clip = captures / "jane" / "clip.mov"
    first, second = make_movie(tmp_path / "a.mov", frames=3), make_movie(tmp_path / "b.mov",
                                                                          frames=6)
    sandbox.faults(answer_delay=[3.0])  # stored, then 3 s before the daemon hears so
    daemon = start_daemon(tmp_path, config)
    try:
        shutil.copy(first, clip)
        wait_for(lambda: sandbox.uploads_for("clip.mov"), 20, what="the endpoint to store it")
        shutil.copyfile(second, clip)  # rewritten in place, before the answer
        wait_for(lambda: len(sandbox.uploads_for("clip.mov")) == 2, 45,
                 what="the changed file uploaded")
        # Settled with both jobs there: the first may be `done` before the change is a job.
        wait_for(lambda: len([j for j in wait_settled(config, 45) if
                              Path(j["path"]).name == "clip.mov"]) == 2, 45,
                 what="both versions to settle")
        jobs = wait_settled(config, 45, what="both versions to settle")
    finally:
        daemon.stop()
    stored = [u["sha256"] for u in sandbox.uploads_for("clip.mov")]
    assert stored == [sha256(first), sha256(second)]
    here = sorted((j for j in jobs if Path(j["path"]).name == "clip.mov"),
                  key=lambda j: j["id"])
    assert [j["state"] for j in here] == ["done", "done"], jobs
    assert "changed" in (here[0]["last_error"] or ""), here[0]
    assert not here[1]["last_error"], here[1]
    # `status` (its default listing) names the stored capture, and the new one follows it.
    listed = {j["id"]: j for j in status(config)["jobs"]}
    stored_job, new_job = listed[here[0]["id"]], listed[here[1]["id"]]
    assert stored_job["state"] == "done" and stored_job["session_id"], listed
    assert new_job["earlier_upload"] == {"job_id": stored_job["id"],
                                         "session_id": stored_job["session_id"]}, new_job
