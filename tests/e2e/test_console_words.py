"""The console speaks to a coach (issue 34): in real Chromium over the real daemon, with a folder
no athlete is linked to and a recording that was cut off, the page says what each means and what
to do, offers no Retry where it cannot help, and shows no config path, TOML section or command
(those are the admin's, in `status`)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from console_support import CHROMIUM, CHROMIUM_ARGS, console_answers
from support import Sandbox, free_port, make_movie, start_daemon, status, wait_for, write_config

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} missing (apt-get install chromium)")
# What only an admin should read: a section such as [athletes], a command, a config file.
ADMIN = re.compile(r"\[[a-z_.]+\]|uplift-capture (run|status|retry|check|athletes|pause|resume|"
                   r"roots|setup|db)\b|--config|\.toml|systemctl")



def test_a_coach_reads_no_admin_words(tmp_path: Path, sandbox: Sandbox) -> None:
    from playwright.sync_api import expect, sync_playwright

    captures = tmp_path / "captures"
    (captures / "Tom").mkdir(parents=True)
    (captures / "jane").mkdir()
    port = free_port()
    config = write_config(tmp_path / "config.toml", watch=captures, db=tmp_path / "jobs.db",
                          base_url=sandbox.base_url, settle=0.3,
                          extra=f'[web]\nlisten = "127.0.0.1:{port}"')
    proc = start_daemon(tmp_path, config)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: console_answers(url), 20, what="the console to listen")
        shutil.copy(make_movie(tmp_path / "src.mov", frames=2), captures / "Tom" / "t.mov")
        whole = make_movie(tmp_path / "cut.mov", frames=4).read_bytes()
        (captures / "jane" / "cut.mov").write_bytes(whole[: len(whole) // 2])  # no moov
        wait_for(lambda: {j["state"] for j in status(config)["jobs"]} >= {"pending", "failed"},
                 30, what="Tom's file to wait and the cut-off one to fail")
        admin = status(config)["jobs"]
        assert any(str(config) in (j.get("reason") or "") for j in admin)  # status keeps them
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(20_000)
                page.goto(url + "/")
                failed = page.locator('[data-group="failed"] .row')
                expect(failed).to_contain_text("cut.mov")
                expect(failed).to_contain_text("The recording was cut off")
                expect(failed.get_by_role("button", name="Retry")).to_have_count(0)
                waiting = page.locator('[data-group="waiting"] .row')
                expect(waiting).to_contain_text("Waiting for an athlete: link this folder above")
                expect(page.locator('.unknown-row[data-folder="Tom"]')).to_be_visible()
                expect(page.locator("#athlete-list")).to_contain_text("jane")
                text = page.locator("body").inner_text()
                html = page.content()
            finally:
                browser.close()
        assert str(config) not in html and str(tmp_path / "jobs.db") not in html
        assert not ADMIN.search(text), ADMIN.search(text)
        assert not ADMIN.search(html), ADMIN.search(html)
    finally:
        proc.stop()
