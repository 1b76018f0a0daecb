"""The console inside the real daemon: the API refuses a capture once, the job fails, a person
clicks Retry in Chromium, and the file is uploaded."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from support import (
    Sandbox,
    free_port,
    job_state,
    make_movie,
    start_daemon,
    wait_for,
    write_config,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} missing (apt-get install chromium)"),
]


def test_retry_in_the_browser_gets_a_refused_file_uploaded(tmp_path: Path,
                                                           sandbox: Sandbox) -> None:
    from playwright.sync_api import expect, sync_playwright

    captures = tmp_path / "captures"
    (captures / "jane").mkdir(parents=True)
    port = free_port()
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url, upload="poll_seconds = 30",
                          extra=f'[web]\nlisten = "127.0.0.1:{port}"')
    sandbox.faults(reserve=[{"status": 422}])
    proc = start_daemon(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 20, what="the console to listen")
        shutil.copy(make_movie(tmp_path / "src.mov", frames=2), captures / "jane" / "r.mov")
        wait_for(lambda: job_state(config, "r.mov") == "failed", 30, what="the 422 to fail it")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(20_000)
                page.goto(url + "/")
                failed = page.locator('[data-group="failed"]')
                expect(failed).to_contain_text("r.mov")
                failed.get_by_role("button", name=re.compile(r"Retry r\.mov")).click()
                expect(page.locator('[data-group="done"]')).to_contain_text("r.mov")
                expect(page.locator('[data-group="failed"]')).to_have_count(0)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "console-daemon-retried.png"),
                                full_page=True)
            finally:
                browser.close()
        assert job_state(config, "r.mov") == "done"
        assert len(sandbox.uploads_for("r.mov")) == 1
        metrics = httpx.get(url + "/metrics", timeout=5).text
        assert 'uplift_capture_jobs{state="done"} 1.0' in metrics
    finally:
        proc.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False
