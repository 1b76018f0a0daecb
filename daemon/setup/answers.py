"""What `setup` asks, as pure functions: parse one answer, render the config from all of them.

Every parser returns the value or raises ValueError with a reason a lab admin can act on; the
rendered TOML is loaded back by `config.parse` before anything is written."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import ORIENTATIONS
from daemon.config.read import NIL_PROBLEM

DEFAULT_API_URL = "https://api.uplift.ai/v1"


@dataclass(frozen=True)
class Answers:
    watches: tuple[Path, ...]
    athletes: tuple[tuple[str, str], ...] = ()  # (folder, athlete UUID), in the order given
    camera_setup_selection: str = "single.front_on"
    camera_orientation: str = "auto"
    movement: tuple[tuple[str, str], ...] = field(
        default=(("activity", "golf"), ("movement", "full_swing")))
    api_url: str = DEFAULT_API_URL
    console_password_file: Path | None = None  # [web] password_file
    token_file: Path | None = None  # [api] token_file: where no systemd loads the credential
    database_url: str | None = None  # [database] url


def parse_athlete(text: str) -> tuple[str, str]:
    """FOLDER=UUID -> (folder in NFC, the UUID in its canonical lower-case form). A UUID holds
    no "=", so the last one separates (a folder name may contain "=")."""
    folder, sep, value = text.rpartition("=")
    if not sep:
        raise ValueError(f"{text!r}: write it as FOLDER=UUID, e.g. "
                         f"jane-doe=123e4567-e89b-12d3-a456-426614174000")
    folder = unicodedata.normalize("NFC", folder.strip())
    problem = folder_problem(folder)
    if problem:
        raise ValueError(f"{text!r}: {problem}")
    try:
        athlete = uuid.UUID(value.strip())
    except ValueError:
        raise ValueError(f"{text!r}: {value.strip()!r} is not an athlete UUID") from None
    if not athlete.int:
        raise ValueError(f"{text!r}: {NIL_PROBLEM}")
    return folder, str(athlete)


def folder_problem(folder: str) -> str | None:
    """Why `folder` cannot name an athlete folder (one path component), or None."""
    if not folder:
        return "the folder name is empty"
    if folder in (".", "..") or "/" in folder or "\0" in folder:
        return f"{folder!r} is not a single folder name (no '/', not '.' or '..')"
    if folder.startswith("."):
        return f"{folder!r} starts with '.': hidden folders are not watched"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in folder):
        return f"{folder!r} contains control characters"
    return None


def parse_watch(text: str, cwd: Path) -> Path:
    """A watch folder, absolute (a relative answer is taken from `cwd`, not from the config's
    folder, which is what the person typing it means)."""
    raw = text.strip()
    if not raw:
        raise ValueError("the watch folder is empty")
    if "\0" in raw or any(unicodedata.category(c) == "Cs" for c in raw):
        raise ValueError(f"{raw!r} is not a usable path")
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else cwd / path
    return Path(*_normal_parts(path))


def _normal_parts(path: Path) -> list[str]:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if len(parts) > 1:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return parts


def parse_orientation(text: str) -> str:
    value = text.strip().lower()
    if value not in ORIENTATIONS:
        raise ValueError(f"{text!r}: the camera orientation is one of {', '.join(ORIENTATIONS)}")
    return value


def parse_word(text: str, what: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError(f"{what} must not be blank")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError(f"{what} {value!r} contains control characters")
    return value


def parse_token(text: str) -> str:
    """The API token as read from a file or typed: one word, surrounding blanks dropped."""
    token = text.strip()
    if not token:
        raise ValueError("the API token is empty")
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in token):
        raise ValueError("the API token must be one line without spaces")
    return token


def parse_console_password(text: str) -> str:
    """The console password: its first line, surrounding blanks dropped (as the daemon reads
    the file)."""
    lines = text.splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        raise ValueError("the console password is empty")
    if len(password) < 8:
        raise ValueError("the console password is shorter than 8 characters")
    return password


def toml_string(text: str) -> str:
    """A TOML basic string for any text without surrogates (control characters escaped)."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def render(answers: Answers, written_on: str) -> str:
    """The config file `setup` writes: only what was asked; every other key keeps its default
    (config.example.toml beside it lists them all)."""
    s = toml_string
    where = ("in the file [api] token_file names" if answers.token_file is not None else
             "the systemd credential uplift-api-token")
    lines = [
        f"# Written by `uplift-capture setup` on {written_on}. Every other setting, with its",
        "# default: config.example.toml in this folder. The API token is not in here: it is",
        f"# {where} (run `uplift-capture setup --force` to change",
        "# it, or see the README).",
        "",
        "[api]",
        f"base_url = {s(answers.api_url)}",
        *([f"token_file = {s(str(answers.token_file))}"] if answers.token_file else []),
        "",
        *(["[database]", f"url = {s(answers.database_url)}", ""] if answers.database_url
          else []),
        "[capture]",
        f"camera_setup_selection = {s(answers.camera_setup_selection)}",
        f"camera_orientation = {s(answers.camera_orientation)}",
        "",
        "[capture.movement]",
        *(f"{s(k)} = {s(v)}" for k, v in answers.movement),
    ]
    for path in answers.watches:
        lines += ["", "[[watch]]", f"path = {s(str(path))}"]
    if answers.console_password_file is not None:
        lines += ["", "[web]", f"password_file = {s(str(answers.console_password_file))}"]
    lines += ["", "[athletes]  # folder = athlete UUID; the console can link more folders"]
    lines += [f"{s(folder)} = {s(athlete)}" for folder, athlete in answers.athletes]
    return "\n".join(lines) + "\n"
