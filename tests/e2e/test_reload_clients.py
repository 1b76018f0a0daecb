"""Issue 19 item 8: a reload that replaces the network clients (new `[api] ca_file` or proxy)
must leave uploads already running on the old storage client abortable: `pause --now` (and a
shutdown) ends them at once instead of waiting for the stall timeout."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from support import (
    Sandbox,
    captures_config,
    cli,
    job_state,
    jobs_by_name,
    make_huge_movie,
    set_config_key,
    start_daemon,
    wait_for,
)
from tls_proxy import PrivateCA

# Far more than the loopback's socket buffers hold, so the send blocks while the endpoint
# reads nothing (a sparse file: no disk, and fast to read).
SIZE = 48 * 1024 * 1024


def test_an_upload_on_the_replaced_client_is_aborted_by_pause_now(
        tmp_path: Path, sandbox: Sandbox, pki: PrivateCA) -> None:
    captures, config = captures_config(tmp_path, sandbox.base_url, settle=0.3,
                                       upload="concurrency = 1\nstall_seconds = 60.0")
    # The endpoint reads nothing for a minute: the upload's send blocks on a full socket,
    # where only shutting its connection down ends it (the abort flag is not looked at).
    sandbox.faults(upload_delay=[60.0])
    daemon = start_daemon(tmp_path, config)
    try:
        movie = make_huge_movie(tmp_path / "big.mov", SIZE)
        os.rename(movie, captures / "jane" / "big.mov")
        wait_for(lambda: job_state(config, "big.mov") == "uploading", 30, what="uploading")
        # A reload with new trust settings: fresh clients, the upload still on the old one.
        set_config_key(config, "api", "ca_file", f'"{pki.ca_pem}"')
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.has_event("net.clients_replaced"), 15, what="clients replaced")
        assert job_state(config, "big.mov") == "uploading"

        out = cli("pause", "--now", "--config", str(config))
        assert out.returncode == 0, out.stdout + out.stderr
        asked = time.monotonic()
        wait_for(lambda: job_state(config, "big.mov") != "uploading", 5,
                 what="the upload on the old client to be aborted")
        assert time.monotonic() - asked < 5
        assert daemon.has_event("upload.interrupted")
        assert sandbox.uploads_for("big.mov") == []

        # The new client carries the next attempt (the endpoint's delay is used up).
        assert cli("resume", "--config", str(config)).returncode == 0
        wait_for(lambda: job_state(config, "big.mov") == "done", 60, what="done after resume")
        (upload,) = sandbox.uploads_for("big.mov")
        assert upload["size"] == SIZE
        assert jobs_by_name(config)["big.mov"]["state"] == "done"
    finally:
        assert daemon.stop(20) == 0
