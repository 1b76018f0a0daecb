"""The console's words for a coach: every reason, notice and hold that `status` words for the
station's admin (config paths, `[sections]`, commands), said as what it means at the station and
what a coach can do, and whether the Retry button can help. Pure: the admin's words stay in the
job table and in `status`; the console's backend maps them on the way out.

Nothing from the admin's text is copied into the coach's but a time of day (taken by a strict
pattern), so no path, section or command can come through."""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemon.station import recording

ASK = "ask whoever looks after this station"
# `while_recording = "pause"`: a normal hold that ends by itself. Its admin text ends in the
# recording's path, whose folder names ("disk2", "paused") must not pick other words.
RECORDING = recording.reason("")
RECORDING_WORDS = "A recording is being written at the station; uploads wait until it is done"


@dataclass(frozen=True)
class Said:
    text: str
    retry: bool  # whether pressing Retry (with nothing else changed) can help


_TIME = re.compile(r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) )?\d{1,2}:\d{2}(?::\d{2})?\b")
_STATION = re.compile(r"waits for station .*, which is not running")


def _at(text: str, lead: str = " at ") -> str:
    """The first time of day in the admin's text, as ' at 14:05' (or '' when there is none)."""
    found = _TIME.search(text)
    return f"{lead}{found.group(0)}" if found else ""


# (pattern in the admin's words, coach words, Retry helps). The first match wins, so the
# narrower patterns come first. "{at}": the time the admin's text names, if any.
_REASONS: tuple[tuple[re.Pattern[str], str, bool], ...] = tuple(
    (re.compile(p, re.IGNORECASE), words, retry) for p, words, retry in (
        # Waiting: nothing for the coach to do but what the words say.
        (r"^settling|stop changing", "Still being recorded or copied: it goes once the file "
         "stops changing.", False),
        (r"is not an athlete UUID", "Waiting for an athlete: link this folder above (Folders "
         "waiting for an athlete).", False),
        (r"directly in the watch folder", "Not in an athlete's folder: move it into the folder "
         "of the athlete it shows.", False),
        (r"folder settings are invalid|capture\.toml", "This folder's settings file has a "
         f"mistake, so its files wait; {ASK}.", False),
        (r"is not there|not mounted|unmounted|cannot be watched", "The storage this file is on "
         "is not connected; it goes by itself once it is back.", False),
        (r"not answering|has not finished in over", "The storage this file is on is not "
         "answering; it goes by itself once it answers.", False),
        (r"is being uploaded as job", "A copy of a video that is uploading now: it waits for "
         "that upload to finish.", False),
        (r"waits to measure the upload rate", "Waits to measure the connection's speed again; "
         "it goes by itself.", False),
        (r"^waits until", "Waits{at}, when the connection is fast enough for a file this "
         "size.", False),
        (r"waits for upload hours", "Uploads happen during the upload hours; it goes{at}.",
         False),
        (r"the API rejected our credentials|certificate is not trusted", "Uplift cannot be "
         f"reached from this station as it is set up; it goes once that is fixed ({ASK}).",
         False),
        (r"paused", "Uploads are paused; it goes once they are resumed.", False),
        (r"^backing off|retrying at|cannot connect|did not answer|HTTP 5\d\d|HTTP 429|"
         r"HTTP 408|RequestTimeout|SlowDown|redirected the upload to .*a proxy",
         "The network or Uplift is having trouble; it tries again by itself{at}.", False),
        (r"free upload slot", "In line: it goes after the files ahead of it.", False),
        # Failed or skipped: what happened, and whether Retry helps.
        (r"recording is incomplete", "The recording was cut off (it has no end): record it "
         "again, or copy the whole file again from the camera.", False),
        (r"file is empty", "The file is empty: record it again, or copy it again from the "
         "camera.", False),
        (r"not a regular file", "This is not a video file; nothing was read from it.", False),
        (r"not a QuickTime movie", "This is not a video the camera recorded, or it is damaged: "
         "record it again, or copy it again from the camera.", False),
        (r"larger than 5 GiB|EntityTooLarge|EntityTooSmall", "Uplift cannot take a file this "
         "size: trim or split the recording.", False),
        (r"cannot be uploaded inside its upload window", "The connection is too slow for a "
         f"file this size; {ASK}.", False),
        (r"upload window ran out", "The connection was too slow to finish it; press Retry once "
         f"the connection is better (if it fails again, {ASK}).", True),
        (r"refused \d+ times in a row|could not use", "Uplift's storage would not take it; "
         f"press Retry, and if it fails again, {ASK}.", True),
        (r"server refused it", f"Uplift refused it; {ASK} (they see Uplift's answer), then "
         "press Retry.", True),
        (r"moved or deleted before", "The file was moved or deleted before it was uploaded; "
         "put it back if it should go.", False),
        (r"changed after its upload", "It changed after it was uploaded; the new version is "
         "uploaded as a new recording.", False),
        (r"same video as job", "A copy of a video that was already uploaded (or is waiting): "
         "not uploaded twice.", False),
        (r"could not (move|delete) the file", "Uploaded; the file could not be tidied away "
         f"afterwards ({ASK}).", False),
    ))


def reason(admin: str | None, state: str) -> Said:
    """The coach's words for a job's reason in `state` (the admin's words: `status`'s)."""
    text = admin or ""
    if text.startswith(RECORDING):
        return Said(f"{RECORDING_WORDS}, then it goes by itself.", False)
    if _STATION.search(text):  # its name is the admin's word: not copied
        return Said("Waits for the workstation whose folder it is in, which is not running: "
                    "start that workstation, and the file goes.", False)
    for pattern, words, retry in _REASONS:
        if pattern.search(text):
            return Said(words.format(at=_at(text)), retry)
    if state == "failed":
        return Said(f"It could not be uploaded; press Retry, and if it fails again, {ASK}.",
                    True)
    if state == "skipped":
        return Said("Not uploaded; nothing to do here.", False)
    return Said("Waiting; it goes by itself.", False)


def hold(admin: str | None) -> str | None:
    """Why no upload starts now (an operator's pause, upload hours), for the summary line."""
    if not admin:
        return None
    if admin.startswith(RECORDING):
        return RECORDING_WORDS
    if "paused" in admin:
        return f"Uploads are paused{_at(admin, ' until ')}"
    if "upload hours" in admin:
        return f"Uploads start{_at(admin)}, in the upload hours"
    return "Uploads wait for now"


def freed(admin: str | None) -> str | None:
    """What retention freed, for the summary line ("Disk space freed 14.2 GiB: 31 files")."""
    return None if not admin else f"Disk space {admin} (uploaded and analysed)"


def notice(name: str, admin: str) -> str:
    """An ATTENTION banner's words (`name`: the notice, `admin`: `status`'s message)."""
    if name == recording.NOTICE:
        return f"{RECORDING_WORDS}; they go by themselves."
    if name == "paused":
        return (f"Uploads were paused{_at(admin, ' until ')} from this page or the station; "
                "files keep being taken in and go once uploads resume.")
    if name in ("hours", "schedule"):
        return f"Uploads wait for the upload hours{_at(admin, ', from ')}."
    if name == "credentials" or "credentials" in admin:
        return f"Uplift does not accept this station's API key, so nothing uploads; {ASK}."
    if name == "certificate" or "certificate" in admin:
        return f"The network here blocks the connection to Uplift, so nothing uploads; {ASK}."
    # By the notice's name: the messages name folders ("/mnt/disk2", "/srv/database").
    if name == "low_disk" or (name == "database" and "disk full" in admin):
        return f"This station's disk is (nearly) full; {ASK}."
    if name == "database":
        return f"The upload service cannot save its records; {ASK}."
    if name in ("watch_folder", "settle") or re.search(
            r"not there|not mounted|unmounted|not answering|cannot be watched|folder", admin):
        return ("A capture folder's storage is not connected or not answering; its files wait "
                "and go once it is back.")
    return f"The upload service needs attention; {ASK}."
