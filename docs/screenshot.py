"""Make daemon/web/static/screenshot.png from a live console (`make screenshot`), so the picture
in the README and docs/console.md shows the page as it is now, never a stale one.

It starts a real sandbox (slow uploads, so one is caught in progress) and a real daemon in a
throw-away folder, drops a few movies that end in interesting states (uploaded, uploading, a
cut-off recording that failed, a folder waiting for an athlete, athletes linked by the config
and at the station), waits for them, and photographs the page in Debian's Chromium (Playwright).
Needs the dev extra (PyAV makes the movies) and /usr/bin/chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers: real movies, processes, waits

from console_support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from support import (  # noqa: E402
    Proc,
    free_port,
    make_huge_movie,
    make_movie,
    status,
    wait_for,
    write_config,
)

OUT = ROOT / "daemon" / "web" / "static" / "screenshot.png"
JANE = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SAM = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
TOKEN = "screenshot-token"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        captures = tmp / "captures"
        for folder in ("jane-doe", "sam-lee", "Tom"):
            (captures / folder).mkdir(parents=True)
        api_port, web_port = free_port(), free_port()
        box = Proc(["sandbox", "--port", str(api_port), "--data", str(tmp / "box"), "--token",
                    TOKEN, "--upload-rate", "400000"], tmp / "sandbox.log").start()
        config = write_config(tmp / "config.toml", watch=captures, db=tmp / "jobs.db",
                              base_url=f"http://127.0.0.1:{api_port}/v1", settle=0.3,
                              athletes={"jane-doe": JANE},
                              extra=f'[web]\nlisten = "127.0.0.1:{web_port}"')
        daemon = Proc(["run", "--config", str(config)], tmp / "daemon.log",
                      env={"UPLIFT_API_TOKEN": TOKEN})
        try:
            wait_for(lambda: (tmp / "box" / "endpoint.json").exists(), 20, what="the sandbox")
            daemon.start()
            wait_for(lambda: daemon.has_event("daemon.ready"), 30, what="daemon.ready")
            subprocess.run([sys.executable, "-m", "daemon", "athletes", "add", "sam-lee", SAM,
                            "--name", "Sam Lee", "--config", str(config)], check=True,
                           capture_output=True)
            for i, folder in enumerate(("jane-doe", "sam-lee", "jane-doe"), start=1):
                shutil.copy(make_movie(tmp / f"s{i}.mov", frames=3),
                            captures / folder / f"swing-00{i}.mov")
            wait_for(lambda: sum(j["state"] == "done" for j in status(config)["jobs"]) == 3,
                     60, what="three uploads")
            make_huge_movie(captures / "jane-doe" / "swing-004.mov", 400_000_000)
            whole = make_movie(tmp / "cut.mov", frames=4).read_bytes()
            (captures / "sam-lee" / "putt-002.mov").write_bytes(whole[: len(whole) // 2])
            shutil.copy(make_movie(tmp / "t.mov", frames=2), captures / "Tom" / "drive-01.mov")
            wait_for(lambda: {j["state"] for j in status(config)["jobs"]}
                     >= {"uploading", "failed", "pending"}, 60, what="the states to show")
            shoot(f"http://127.0.0.1:{web_port}/")
        finally:
            daemon.kill()
            box.kill()
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def shoot(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(url)
            expect(page.locator('[data-group="moving"] [role="progressbar"]')).to_be_visible()
            expect(page.locator('[data-group="failed"] .row')).to_be_visible()
            expect(page.locator('.unknown-row[data-folder="Tom"]')).to_be_visible()
            expect(page.locator('#athlete-list .row[data-folder="sam-lee"]')).to_be_visible()
            expect(page.locator("#chart svg")).to_be_attached()
            page.wait_for_timeout(2500)  # one more poll: the rate and time left are known
            page.screenshot(path=str(OUT), full_page=True)
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
