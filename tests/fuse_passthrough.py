"""A FUSE file system serving a folder as it is (read and write), run as its own process by
tests that freeze it with SIGSTOP: every call on the mount then hangs, as on a hard-mounted NFS
share whose server stopped answering. Usage: python fuse_passthrough.py SOURCE MOUNTPOINT.
Runs in the foreground until unmounted."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from fuse import FUSE, FuseOSError, Operations  # fusepy, over Debian's libfuse2


class Passthrough(Operations):  # type: ignore[misc]
    def __init__(self, source: str):
        self.source = source

    def _full(self, path: str) -> str:
        return os.path.join(self.source, path.lstrip("/"))

    def __call__(self, op: str, path: str, *args: Any) -> Any:
        try:
            return super().__call__(op, path, *args)
        except OSError as exc:
            raise FuseOSError(exc.errno or errno.EIO) from exc

    def access(self, path: str, amode: int) -> None:
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._full(path))
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode",
                                            "st_mtime", "st_nlink", "st_size", "st_uid")}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._full(path))]

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(self._full(path), mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(self._full(path))

    def unlink(self, path: str) -> None:
        os.unlink(self._full(path))

    def rename(self, old: str, new: str) -> None:
        os.rename(self._full(old), self._full(new))

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._full(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._full(path), uid, gid)

    def utimens(self, path: str, times: tuple[float, float] | None = None) -> None:
        os.utime(self._full(path), times)

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._full(path))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize",
                                            "f_favail", "f_ffree", "f_files", "f_flag",
                                            "f_frsize", "f_namemax")}

    def open(self, path: str, flags: int) -> int:
        return os.open(self._full(path), flags)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        os.truncate(self._full(path), length)

    def flush(self, path: str, fh: int) -> None:
        pass

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        os.fsync(fh)


if __name__ == "__main__":
    source, mountpoint = sys.argv[1], sys.argv[2]
    # No attribute or entry caching: every stat reaches this process, so a frozen server
    # hangs the next look at once.
    FUSE(Passthrough(source), mountpoint, foreground=True, nothreads=True, attr_timeout=0.0,
         entry_timeout=0.0, negative_timeout=0.0)
