"""An upload window that lapses before the upload is through is replaced, and the upload
completes: here the storage endpoint answers 403 "Policy expired" (the sandbox holds the first
upload back longer than the 1-second window)."""

from __future__ import annotations

from pathlib import Path

from support import TOKEN, Proc, Sandbox, jobs_by_name, make_movie, sha256, wait_for, write_config

from daemon.jobs.store import Store


def test_lapsed_window_is_re_reserved_and_the_upload_completes(tmp_path: Path) -> None:
    box = Sandbox(tmp_path / "sandbox", upload_window=1.0).start()
    captures = tmp_path / "captures"
    (captures / "jane").mkdir(parents=True)
    # margin 0: the daemon uses each fresh 1-second window as it is.
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=box.base_url, upload="reserve_margin_seconds = 0")
    box.faults(upload_delay=[2.5])
    daemon = Proc(["run", "--config", str(config)], tmp_path / "daemon.log",
                  env={"UPLIFT_API_TOKEN": TOKEN}).start()
    try:
        movie = make_movie(tmp_path / "src" / "lapse.mov", frames=10)
        (captures / "jane" / "lapse.mov").write_bytes(movie.read_bytes())
        wait_for(lambda: jobs_by_name(config).get("lapse.mov", {}).get("state") == "done", 60,
                 what="the upload to complete")
        reservations = box.reservations_for("lapse.mov")
        uploads = box.uploads_for("lapse.mov")
        assert len(reservations) == 2, reservations
        assert len(uploads) == 1 and uploads[0]["sha256"] == sha256(movie)
        assert uploads[0]["session_id"] == reservations[1]["session_id"]
        assert daemon.has_event("job.window_lapsed", session_id=reservations[0]["session_id"])
        job = jobs_by_name(config)["lapse.mov"]
        assert job["session_id"] == reservations[1]["session_id"]
        assert job["attempts"] == 1  # a lapse is not a failure
        # The job table keeps both reservations for audit: the lapsed one and the used one.
        store = Store.open(f"sqlite:///{tmp_path / 'jobs.db'}", migrate=False)
        try:
            kept = [(r.session_id, r.outcome) for r in store.reservations(job["id"])]
        finally:
            store.close()
        assert kept == [(reservations[0]["session_id"], "lapsed"),
                        (reservations[1]["session_id"], "used")]
    finally:
        assert daemon.stop() == 0
        box.stop()
