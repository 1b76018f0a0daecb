"""After upload: keep, move or delete a file whose upload was confirmed (`done` jobs only)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class ArchiveError(Exception):
    """The file was uploaded but could not be moved or deleted; it stays where it is."""


def _free_name(dest: Path) -> Path:
    """dest, or 'name (2).mov', 'name (3).mov', ...: never overwrite an archived file."""
    if not dest.exists():
        return dest
    n = 2
    while True:
        candidate = dest.with_name(f"{dest.stem} ({n}){dest.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _place_without_overwrite(src: Path, dest: Path) -> Path:
    """Make `dest` a complete copy of `src` atomically, never replacing an existing file."""
    while True:
        dest = _free_name(dest)
        try:
            os.link(src, dest)  # atomic, and fails if dest exists
            return dest
        except FileExistsError:
            continue  # lost a race for that name: pick the next
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
        # Another filesystem (or no hard links): copy to a temp name, flush, then link/rename.
        tmp = dest.with_name(f".{dest.name}.uplift-tmp")
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
            fout.flush()
            os.fsync(fout.fileno())
        try:
            os.link(tmp, dest)
            os.unlink(tmp)
            return dest
        except FileExistsError:
            os.unlink(tmp)
            continue
        except OSError:
            # No hard links at all here: a rename that may replace is the best we can do, so
            # check the name is still free right before it.
            if dest.exists():
                os.unlink(tmp)
                continue
            os.rename(tmp, dest)
            return dest


CHANGED = "uploaded; the file was changed or replaced afterwards, so it was left where it is"


def _facts(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def after_upload(action: str, path: str, root: str, archive_dir: Path | None,
                 expect: tuple[int, int] | None = None) -> str | None:
    """Apply `action` to the uploaded file; returns where it went (move) or None. With
    `expect` (size, mtime_ns of the uploaded version), a file that no longer matches is a newer
    capture that took its place: left alone (ArchiveError), checked again right before the
    original name is removed."""
    if action == "keep":
        return None
    src = Path(path)
    try:
        if expect is not None and _facts(src) != expect:
            raise ArchiveError(CHANGED)
        if action == "delete":
            src.unlink()
            return None
        assert archive_dir is not None
        dest = archive_dir / src.relative_to(root)  # keeps <athlete>/<session>/
        dest.parent.mkdir(parents=True, exist_ok=True)
        placed = _place_without_overwrite(src, dest)
        # A copy has its own mtime: its size must match, the original must still be ours.
        if expect is not None and (_facts(src) != expect or _facts(placed)[0] != expect[0]):
            placed.unlink()  # a copy of something else, or of a mix: ours to remove
            raise ArchiveError(CHANGED)
        src.unlink()
        return str(placed)
    except FileNotFoundError:
        raise ArchiveError("uploaded, but the file was already gone when it was to be "
                           f"{'deleted' if action == 'delete' else 'moved'}") from None
    except OSError as exc:
        raise ArchiveError(f"uploaded, but could not {action} the file: "
                           f"{exc.strerror or exc}") from None
