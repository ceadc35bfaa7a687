"""Linux-only system calls FileStore uses through ctypes, and its mtime stamp.

Nothing here is required for correctness on other POSIX systems, except
:func:`exchange` (an object becoming the prefix of other keys needs an atomic
swap; elsewhere that one case fails with ``ENOSYS``). Every function blocks
(or may): call them from worker threads.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Final, cast

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["exchange", "stamp", "start_writeback"]

_RENAME_EXCHANGE: Final = 2  # linux/fs.h
_SYNC_FILE_RANGE_WRITE: Final = 2  # linux/fs.h


def _libc_function(name: str) -> Any:
    """``name`` from the C library this process runs on, or ``None`` if absent."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except (AttributeError, OSError):
        return None


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    fn = _libc_function("sync_file_range")
    if fn is None:
        return None  # not Linux: the final fsync does all the work
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast("Callable[[int, int, int, int], int]", fn)


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    fn = _libc_function("renameat2")  # glibc >= 2.28, musl >= 1.2.3
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast("Callable[[int, bytes, int, bytes, int], int]", fn)


# Looked up once: a dlsym per call would cost more than the calls themselves.
_sync_file_range: Final = _load_sync_file_range()
_renameat2: Final = _load_renameat2()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out, without waiting (a hint only).

    Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; a no-op elsewhere.
    Durability still comes from the ``fsync`` at commit, so failures are ignored.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def exchange(dfd: int, a: str, b: str) -> None:
    """Swap the names ``a`` and ``b`` in directory ``dfd`` atomically.

    Linux ``renameat2(RENAME_EXCHANGE)``: at every instant both names exist.

    Raises
    ------
    OSError
        ``ENOSYS`` when the C library has no ``renameat2``; otherwise the
        call's own error (``EINVAL`` on a filesystem without exchange support).
    """
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if _renameat2(dfd, os.fsencode(a), dfd, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


_stamp_lock = threading.Lock()
_last_stamp = 0


def stamp() -> int:
    """A strictly increasing wall-clock time in ns (within this process).

    Stamped as the mtime of every new version so that etags, built from
    ``(inode, mtime_ns, size)``, change on every write even when the inode
    number is reused and the content and size are the same.
    """
    global _last_stamp
    with _stamp_lock:
        now = max(time.time_ns(), _last_stamp + 1)
        _last_stamp = now
        return now
