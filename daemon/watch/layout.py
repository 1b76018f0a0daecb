"""The folder convention: which files count, and what a file's place says about it.

    <watch root>/<athlete>/<file>.mov
    <watch root>/<athlete>/<session folder>/<file>.mov

Pure functions; nothing here touches the disk.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import PurePath

from daemon.config.hints import command

# Fixed forever: session group UUIDs derived from it must be the same on every machine.
NAMESPACE = uuid.UUID("5f1d0a52-3c3e-4f63-9d2e-6b1f7f0c2a11")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~", ".swp")
MAX_FILE_NAME = 255


def is_candidate(rel: PurePath) -> bool:
    """A .mov (any case) that is not hidden and not a temp name, anywhere in the path."""
    if not rel.parts or any(p.startswith(".") for p in rel.parts):
        return False
    name = rel.name
    if name.startswith("~$") or name.lower().endswith(TEMP_SUFFIXES):
        return False
    return name.lower().endswith(".mov")


def is_ignored_dir(rel: PurePath) -> bool:
    return any(p.startswith(".") for p in rel.parts)


NIL_UUID = str(uuid.UUID(int=0))


def as_uuid(text: str) -> str | None:
    try:
        value = uuid.UUID(text)
    except ValueError:
        return None
    # Only the canonical 8-4-4-4-12 spelling counts as a UUID folder name; the all-zero one
    # (an example's placeholder) names nobody.
    return str(value) if str(value) == text.lower() and value.int else None


@dataclass(frozen=True)
class Placement:
    athlete_id: str | None
    session_group_id: str | None
    problem: str | None  # why the file must wait; None when it can go


def place(rel: PurePath, athletes: Mapping[str, str], local_day: date,
          config_source: str = "the config") -> Placement:
    """Resolve athlete and session group from a path relative to its watch root."""
    parts = rel.parts
    if len(parts) < 2:
        return Placement(None, None,
                         f"'{shown(rel.name)}' is directly in the watch folder; move it into a "
                         f"folder named for the athlete (their UUID or an alias from [athletes])")
    folder = parts[0]
    athlete = athlete_of(folder, athletes)
    if athlete is None:
        return Placement(None, None,
                         f"folder '{shown(folder)}' is not an athlete UUID or an alias in "
                         f"[athletes] of {config_source}; link it to the athlete in the console "
                         f"or with: "
                         + command(f"athletes add {_quoted(shown(folder))} ATHLETE_UUID",
                                   config_source))
    if len(parts) == 2:
        group = _uuid5(f"{athlete}/day/{local_day.isoformat()}")
    else:
        # Deeper folders belong to the session folder right under the athlete.
        session = parts[1]
        group = as_uuid(session) or _uuid5(f"{athlete}/session/{session}")
    return Placement(athlete, group, None)


def athlete_of(folder: str, athletes: Mapping[str, str]) -> str | None:
    """The athlete a folder right under the watch root stands for: its own UUID, or the one
    it is linked to; None when it is neither."""
    # macOS writes names decomposed (NFD), people type them composed (NFC): compare in NFC.
    return as_uuid(folder) or athletes.get(folder) or _nfc_get(athletes, folder)


def _uuid5(name: str) -> str:
    """uuid.uuid5 of the name's bytes as on disk: the same UUID as uuid5 for any name that
    decodes, and no UnicodeEncodeError for one that does not (a Latin-1 session folder from an
    SMB share arrives with surrogate escapes)."""
    digest = hashlib.sha1(NAMESPACE.bytes + name.encode("utf-8", "surrogateescape")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def shown(name: str) -> str:
    """A name for a reason people read and the job table stores: undecodable bytes as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _quoted(folder: str) -> str:
    """The folder as a shell word a person can paste."""
    import shlex

    return shlex.quote(folder)


def _nfc_get(athletes: Mapping[str, str], folder: str) -> str | None:
    want = unicodedata.normalize("NFC", folder)
    for alias, athlete in athletes.items():
        if unicodedata.normalize("NFC", alias) == want:
            return athlete
    return None


def safe_file_name(name: str) -> str:
    """A name the API accepts (no / or \\, valid UTF-8, .mov, at most 255 chars, not blank),
    changing as little as possible of the original."""
    stem, ext = name[:-4], name[-4:]
    stem = stem.replace("\\", "_").replace("/", "_")
    # Undecodable bytes arrive as surrogate escapes (os.fsdecode); replace each one.
    stem = stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\ufffd", "_")
    stem = stem.strip() or "capture"
    if ext.lower() != ".mov":
        ext = ".mov"
    return stem[: MAX_FILE_NAME - len(ext)] + ext
