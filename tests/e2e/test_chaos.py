"""Fault injection end to end: a slowed sandbox injecting every kind of failure, and the daemon
SIGKILLed at random moments and restarted several times. Every file must end `done`, and what
the sandbox stored must be byte-identical to the source."""

from __future__ import annotations

import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

from support import (
    ATHLETE,
    Sandbox,
    make_movie,
    sha256,
    start_daemon,
    status,
    wait_for,
    write_config,
)

FILES = 14
KILLS = 5


def test_kills_and_faults_lose_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"chaos seed {seed} (set CHAOS_SEED to replay)")
    box = Sandbox(tmp_path / "sandbox").start()
    captures = tmp_path / "captures"
    session = captures / ATHLETE / "practice"
    session.mkdir(parents=True)
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=box.base_url, settle=0.5,
                          upload="concurrency = 2\nstall_seconds = 5")
    # A few MB each (640x360 noise frames, about 150 KB a frame).
    sources = {}
    for i in range(FILES):
        name = f"clip-{i:02d}.mov"
        sources[name] = make_movie(tmp_path / "src" / name, frames=rng.randint(12, 24),
                                   width=640, height=360)
    box.faults(
        upload_rate=6_000_000,
        reserve=[{"status": 503}, {"status": 429, "retry_after": 1}, {"status": 502, "html": True},
                 {"status": 500}],
        upload=[{"cut": True, "after": 200_000}, {"status": 503}, {"status": 500},
                {"cut": True, "after": 1_000_000}],
    )
    try:
        daemon = start_daemon(tmp_path, config)
        for name, src in sources.items():
            shutil.copy(src, session / name)
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.5))
            daemon.kill()
            print(f"kill {kill + 1}: {status(config)['counts']}")
            daemon = start_daemon(tmp_path, config, name=f"daemon-{kill + 1}.log")
        wait_for(lambda: status(config)["counts"]["done"] == FILES, 150, 0.5,
                 what=f"all {FILES} files to be done")
        assert daemon.stop() == 0

        counts = status(config)["counts"]
        assert counts["failed"] == counts["skipped"] == counts["pending"] == 0
        uploads = box.state()["uploads"]
        per_file = Counter(u["key"].rsplit("/", 1)[1] for u in uploads)
        assert set(per_file) == set(sources)
        for upload in uploads:
            name = upload["key"].rsplit("/", 1)[1]
            assert upload["sha256"] == sha256(sources[name]), f"{name} arrived damaged"
        for job in status(config)["jobs"]:
            stored = next(u for u in uploads if u["session_id"] == job["session_id"])
            assert sha256(Path(stored["path"])) == sha256(sources[Path(job["path"]).name])
        duplicated = sum(n - 1 for n in per_file.values())
        print(f"uploads duplicated by kills (between upload and commit): {duplicated} "
              f"of {len(uploads)} uploads, {KILLS} kills")
        # At most the uploads whose last byte was sent at each kill can be repeated: two per
        # slot (one waiting for its answer while the next sends).
        assert duplicated <= KILLS * 2 * 2
    finally:
        box.stop()
