"""The athlete directory's rules, as pure functions: what a folder name and an athlete UUID
must be, how the config's [athletes] and the table's links make one view (the config wins),
and the CSV a lab keeps its athletes in (`folder,athlete_id,name`, checked whole).

The table itself is read and written in jobs/athletes.py; the command in commands/athletes.py.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath

from daemon.config.read import NIL_PROBLEM
from daemon.jobs import paths
from daemon.watch import layout
from daemon.watch.layout import NIL_UUID, as_uuid

CSV_HEADER = ("folder", "athlete_id", "name")
MAX_FOLDER = 255  # a file name's limit on every file system we watch
MAX_NAME = 200
MAX_ROWS = 100_000


class Invalid(ValueError):
    """A value a person gave that cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class Link:
    folder: str  # NFC
    athlete_id: str  # canonical lower-case UUID
    name: str | None = None
    source: str = "table"  # "config" | "table"
    set_by: str | None = None
    set_where: str | None = None
    set_at: float | None = None

    def public(self) -> dict[str, object]:
        """As `status --json`, `athletes list --json` and the console show it."""
        out: dict[str, object] = {"folder": self.folder, "athlete_id": self.athlete_id,
                                  "name": self.name, "source": self.source}
        if self.source == "table":
            out.update(set_by=self.set_by, set_where=self.set_where, set_at=self.set_at)
        return out


def nfc(text: str) -> str:
    """macOS writes names decomposed (NFD), people type them composed (NFC): compare in NFC."""
    return unicodedata.normalize("NFC", text)


def folder_name(text: str) -> str:
    """A folder name as the directory keys it, or Invalid."""
    folder = nfc(text.strip())
    if not folder:
        raise Invalid("the folder name is empty")
    if "/" in folder or "\\" in folder or folder in (".", ".."):
        raise Invalid(f"{folder!r} is not a folder name: give the name of the athlete's folder "
                      f"right under the watch folder, not a path")
    if folder.startswith("."):
        raise Invalid(f"{folder!r} is a hidden folder, which is never watched")
    if not folder.isprintable():
        raise Invalid(f"{folder!r} has control characters")
    if len(folder.encode("utf-8", "surrogatepass")) > MAX_FOLDER:
        raise Invalid("the folder name is longer than a file system allows")
    if as_uuid(folder) is not None:
        raise Invalid(f"the folder {folder!r} is already named by an athlete UUID; it needs "
                      f"no link")
    return folder


def athlete_uuid(text: str) -> str:
    """The canonical UUID, or Invalid in one plain line."""
    value = text.strip().lower()
    if value == NIL_UUID:
        raise Invalid(NIL_PROBLEM)
    found = as_uuid(value)
    if found is None:
        shown = text.strip()[:60]
        raise Invalid(f"{shown!r} is not an athlete UUID (it looks like "
                      f"123e4567-e89b-12d3-a456-426614174000; copy it from Uplift)")
    return found


def display_name(text: str | None) -> str | None:
    if text is None:
        return None
    name = " ".join(text.split())
    if not name:
        return None
    if not name.isprintable():
        raise Invalid("the name has control characters")
    if len(name) > MAX_NAME:
        raise Invalid(f"the name is longer than {MAX_NAME} characters")
    return name


def link(folder: str, athlete_id: str, name: str | None = None) -> Link:
    """A link a person asked for, checked; Invalid says what is wrong."""
    return Link(folder_name(folder), athlete_uuid(athlete_id), display_name(name))


def config_links(athletes: Mapping[str, str]) -> list[Link]:
    return [Link(nfc(alias), uuid.lower(), None, "config") for alias, uuid in athletes.items()]


def merged(config: Mapping[str, str], table: Iterable[Link]) -> list[Link]:
    """One view, sorted by folder: every config entry, and the table's links for folders the
    config does not name (compared in NFC)."""
    out = {link.folder: link for link in table}
    for link_ in config_links(config):
        out[link_.folder] = link_
    return sorted(out.values(), key=lambda x: x.folder)


def mapping(config: Mapping[str, str], table: Mapping[str, str]) -> dict[str, str]:
    """folder -> athlete UUID as layout.place reads it: the table's (NFC) links, then the
    config's entries over them (the config wins)."""
    out = dict(table)
    for alias, uuid in config.items():
        out.pop(nfc(alias), None)
        out[alias] = uuid
    return out


def from_config(folder: str, config: Mapping[str, str]) -> bool:
    want = nfc(folder)
    return any(nfc(alias) == want for alias in config)


def parse_csv(text: str) -> list[tuple[int, Link]]:
    """A whole `folder,athlete_id,name` file, checked before anything is written: Invalid
    names the line of the first problem. The name column may be left out or empty."""
    if text.startswith("\ufeff"):  # a spreadsheet's byte order mark
        text = text[1:]
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows, None)
    except csv.Error as exc:
        raise Invalid(f"line 1: {exc}") from None
    if header is None:
        raise Invalid("the file is empty; its first line must be: folder,athlete_id,name")
    cols = [h.strip().lower() for h in header]
    if cols[:2] != ["folder", "athlete_id"] or cols[2:] not in ([], ["name"]):
        raise Invalid("line 1: the first line must be: folder,athlete_id,name")
    out: dict[str, tuple[int, Link]] = {}
    try:
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            if row[0] != row[0].strip():  # a folder on disk rarely has them: a typo, said
                raise Invalid(f"line {line}: the folder name {row[0]!r} starts or ends with "
                              f"a space; remove it (folder names are matched exactly)")
            if len(row) > len(cols) or len(row) < 2:
                raise Invalid(f"line {line}: expected {len(cols)} values "
                              f"({','.join(cols)}), found {len(row)}")
            try:
                got = link(row[0], row[1], row[2] if len(row) > 2 else None)
            except Invalid as exc:
                raise Invalid(f"line {line}: {exc}") from None
            if got.folder in out and out[got.folder][1] != got:
                raise Invalid(f"line {line}: the folder {got.folder!r} is already on line "
                              f"{out[got.folder][0]} with another athlete")
            out.setdefault(got.folder, (line, got))
            if len(out) > MAX_ROWS:
                raise Invalid(f"line {line}: more than {MAX_ROWS} athletes in one file")
    except csv.Error as exc:
        raise Invalid(f"line {rows.line_num}: {exc}") from None
    return list(out.values())


def to_csv(links: Iterable[Link]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for x in links:
        w.writerow((x.folder, x.athlete_id, x.name or ""))
    return buf.getvalue()


@dataclass(frozen=True)
class Athlete:
    """Whom a new capture is for, and the session group that follows from it."""

    athlete_id: str
    session_group_id: str


@dataclass(frozen=True)
class Waiting:
    """No athlete for the job's folder: the job waits for one (pending) with layout.place's
    reason, the one `unknown_folders` counts."""

    reason: str


def job_folder(rel_path: str) -> str | None:
    """The athlete folder of a job (`rel_path` as the job table keeps it); None for a file
    right in the watch folder."""
    parts = PurePath(paths.from_db(rel_path)).parts
    return parts[0] if len(parts) > 1 else None


def folder_link(rel_path: str, athletes: Mapping[str, str]) -> str | None:
    """The athlete a job's folder stands for now, or None: what a job that holds no
    reservation shows."""
    folder = job_folder(rel_path)
    return None if folder is None else layout.athlete_of(folder, athletes)


def at_reservation(rel_path: str, athletes: Mapping[str, str], local_day: date,
                   config_source: str, queued: Athlete | None) -> Athlete | Waiting:
    """Whom a new capture of this job is for: its folder's link as the reservation is made
    (`athletes` read then), whatever was read when it was queued (`queued`), since a link may
    have changed in between. The session group follows the athlete: the queued one is kept
    while the athlete is the same. A capture that already exists keeps its athlete: it is
    never asked here."""
    where = layout.place(PurePath(paths.from_db(rel_path)), athletes, local_day, config_source)
    if where.problem is not None:
        return Waiting(where.problem)
    assert where.athlete_id is not None and where.session_group_id is not None
    if queued is not None and queued.athlete_id == where.athlete_id:
        return queued
    return Athlete(where.athlete_id, where.session_group_id)


def hold_folder(reason: str | None) -> str | None:
    """The folder named by layout.place's "not an athlete" hold reason, else None."""
    head, mark = "folder '", "' is not an athlete UUID or an alias"
    if not reason or not reason.startswith(head) or mark not in reason:
        return None
    return reason[len(head):reason.index(mark, len(head))]
