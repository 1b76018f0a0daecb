"""The after-upload action on real files: a file that no longer matches the uploaded version (a
newer capture took its place while the action waited) is never moved or deleted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.work import archive


def _take(root: Path, data: bytes) -> tuple[Path, tuple[int, int]]:
    path = root / "jane" / "swing.mov"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return path, (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("action", ["move", "delete"])
def test_the_uploaded_version_is_moved_or_deleted(tmp_path: Path, action: str) -> None:
    root, arch = tmp_path / "captures", tmp_path / "archive"
    path, facts = _take(root, b"uploaded take")
    moved = archive.after_upload(action, str(path), str(root), arch, expect=facts)
    assert not path.exists()
    if action == "move":
        assert moved is not None and Path(moved).read_bytes() == b"uploaded take"


@pytest.mark.parametrize("action", ["move", "delete"])
def test_a_newer_file_in_its_place_is_left_alone(tmp_path: Path, action: str) -> None:
    root, arch = tmp_path / "captures", tmp_path / "archive"
    path, facts = _take(root, b"uploaded take")
    path.unlink()
    path.write_bytes(b"the next take, longer")  # a new recording under the same name
    with pytest.raises(archive.ArchiveError, match="changed or replaced"):
        archive.after_upload(action, str(path), str(root), arch, expect=facts)
    assert path.read_bytes() == b"the next take, longer"
    assert not arch.exists() or not any(p.is_file() for p in arch.rglob("*"))


def test_a_file_replaced_during_the_move_stays_and_the_copy_goes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    root, arch = tmp_path / "captures", tmp_path / "archive"
    path, facts = _take(root, b"uploaded take")
    real_place = archive._place_without_overwrite

    def place_then_replaced(src: Path, dest: Path) -> Path:
        placed = real_place(src, dest)
        os.replace(tmp_path / "newer", src)  # the capture software writes the next take
        return placed

    (tmp_path / "newer").write_bytes(b"the next take, longer")
    monkeypatch.setattr(archive, "_place_without_overwrite", place_then_replaced)
    with pytest.raises(archive.ArchiveError, match="changed or replaced"):
        archive.after_upload("move", str(path), str(root), arch, expect=facts)
    assert path.read_bytes() == b"the next take, longer"
    assert not any(p.is_file() for p in arch.rglob("*"))
