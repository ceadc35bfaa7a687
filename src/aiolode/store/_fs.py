"""FileStore: a durable local-filesystem store with cross-process conditional writes.

Layout under the root: one file per key (``a/b/c`` is the file ``<root>/a/b/c``),
directories created on demand. Names starting with ``.aiolode`` are reserved:

- ``<root>/.aiolode/locks/NN`` — lock stripes taken with :func:`fcntl.flock` by
  overwrites, compare-and-swap puts and deletes of keys hashing to stripe ``NN``;
- ``<dir>/.aiolode-tmp-<random>`` — a named temp file of an in-flight write
  (only when ``O_TMPFILE`` is unavailable, or for overwrite / CAS puts);
- ``<root>/a/b/.aiolode-self`` — the object of key ``a/b`` when ``a/b`` is also
  the prefix of other keys (``a/b/c``): a name cannot be a file and a directory
  at once. Writing ``a/b/c`` while ``a/b`` is a file moves the object there
  atomically (``renameat2(RENAME_EXCHANGE)`` of a prepared directory holding a
  hard link of it, so readers never miss it and its etag is unchanged).

Every path is resolved from the root one segment at a time with ``O_NOFOLLOW``
and ``dir_fd`` (``openat``), so no key can reach outside the root — not through
``..`` (refused by key validation), and not through a symlink planted inside the
root (refused with :class:`~aiolode.InvalidKeyError`): the store never follows a
symlink below its root.

All blocking calls run in worker threads (``anyio.to_thread.run_sync``) under one
:class:`anyio.CapacityLimiter` per store; most operations are one thread hop.
"""

from __future__ import annotations

import ctypes
import errno
import os
import random
import secrets
import stat
import threading
import time
import zlib
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast, final

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._keys import _FORBIDDEN
from ..errors import (
    AiolodeError,
    InvalidInputError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)
from ..types import IfMatch, ObjectInfo, PutMode
from ._base import Store

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Callable,
        Generator,
        Iterator,
        Sequence,
    )

__all__ = ["FileStore"]

T = TypeVar("T")

RESERVED_PREFIX: Final = ".aiolode"
"""Key segments starting with this are reserved for the store's own files."""

_TMP_PREFIX: Final = ".aiolode-tmp-"
# A key that is also the prefix of other keys ("a/b" next to "a/b/c") cannot be a
# file and a directory at once: its object is stored as "a/b/.aiolode-self".
_SELF: Final = ".aiolode-self"
_LOCK_DIRS: Final = (".aiolode", "locks")
_LOCK_STRIPES: Final = 64
_NAME_MAX: Final = 255
# How often an operation restarts when a directory it was using is pruned under it
# by a concurrent delete (each restart means another writer made progress).
_DIR_RETRIES: Final = 1000


def _dir_backoff(attempt: int) -> None:
    """Sleep a little (in the worker thread) before restarting after a prune.

    Each restart means another writer made progress, but under heavy put/delete
    churn on one directory an unlucky writer can lose many times in a row;
    a short jittered pause breaks the lockstep (a CI run lost 16 in a row).
    """
    if attempt >= 2:
        time.sleep(random.uniform(0, min(0.02, 0.0002 * 2**attempt)))


# Streamed puts gather small chunks up to this size before one threaded write.
_SPOOL_BYTES: Final = 1 << 20
# Linux returns at most this much from one read() (MAX_RW_COUNT).
_MAX_READ: Final = 0x7FFFF000

_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_TMPFILE: Final = getattr(os, "O_TMPFILE", 0)
_DIR_FLAGS: Final = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under the root must not hang a thread; it
# has no effect on regular files.
_READ_FLAGS: Final = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | os.O_NONBLOCK
_TMP_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC

# Errors meaning "this filesystem has no O_TMPFILE": fall back to named temps.
_NO_TMPFILE_ERRNOS: Final = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})

_stamp_lock = threading.Lock()
_last_stamp = 0


def _stamp() -> int:
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


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=_etag(st),
        last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
    )


def _map_oserror(exc: OSError, key: str | None, what: str) -> AiolodeError:
    """Translate an OSError into the aiolode tree (most specific first)."""
    code = exc.errno
    detail = f"{what}: {exc.strerror or exc}"
    if code == errno.ENOENT:
        return ObjectNotFoundError(f"object {key!r} not found ({detail})", key=key)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDeniedError(f"permission denied for {key!r} ({detail})", key=key)
    if code == errno.EEXIST:
        return ObjectExistsError(f"object {key!r} already exists ({detail})", key=key)
    if code in (errno.ENAMETOOLONG, errno.ELOOP):
        return InvalidKeyError(f"key {key!r} cannot be stored here ({detail})", key=key)
    return StorageError(f"filesystem error on {key!r} ({detail})", key=key)


class _DirGone(Exception):
    """A directory was pruned (emptied and removed) while we were using it; retry."""


def _dir_gone(dfd: int) -> bool:
    try:
        return os.fstat(dfd).st_nlink == 0
    except OSError:
        return False


def _close(fd: int) -> None:
    with suppress(OSError):
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


_RENAME_EXCHANGE: Final = 2  # linux/fs.h
_SYNC_FILE_RANGE_WRITE: Final = 2  # linux/fs.h
# Large writes start write-back of their dirty pages every this many bytes.
_WRITEBACK_BYTES: Final = 8 << 20


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None  # not Linux: the final fsync does all the work
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast("Callable[[int, int, int, int], int]", fn)


_sync_file_range = _load_sync_file_range()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range out, without waiting (a hint only).

    Durability still comes from the ``fsync`` at commit; failures are ignored.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _exchange(dfd: int, a: str, b: str) -> None:
    """Swap two names atomically (Linux ``renameat2(RENAME_EXCHANGE)``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(dfd, os.fsencode(a), dfd, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _is_valid_name(name: str) -> bool:
    """Whether a directory entry can be (part of) a key: listings skip the rest."""
    if name.startswith(RESERVED_PREFIX) or _FORBIDDEN.search(name):
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, surrogate-escaped
        return False
    return True


def _take(it: Iterator[T], n: int) -> list[T]:
    return list(islice(it, n))


class _Pending:
    """An in-flight write: the directory, the temp file and its name (if named).

    ``written`` counts the bytes appended, ``flushed`` up to where write-back
    has been started (see :meth:`append`).
    """

    __slots__ = ("dfd", "fd", "flushed", "tmpname", "written")

    def __init__(self, dfd: int, fd: int, tmpname: str | None) -> None:
        self.dfd = dfd
        self.fd = fd
        self.tmpname = tmpname
        self.written = 0
        self.flushed = 0

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at the end; start write-back of every full ~8 MiB.

        The final ``fsync`` of a large object then waits for the last few MiB
        rather than for the whole file: the disk works while later bytes are
        still being produced (what RocksDB calls ``bytes_per_sync``).
        """
        _write_all(self.fd, data)
        self.written += len(data)
        if self.written - self.flushed >= _WRITEBACK_BYTES:
            _start_writeback(self.fd, self.flushed, self.written - self.flushed)
            self.flushed = self.written


@final
class FileStore(Store):
    """A store in a local directory, durable and safe across processes.

    Writes are atomic and durable: the data goes to a temp file in the target's
    directory (an unnamed ``O_TMPFILE`` inode on Linux, else a named
    ``.aiolode-tmp-*`` file), is ``fsync``-ed with a fresh mtime stamp, then
    published with ``link()`` for ``mode="create"`` (never an overwrite, never a
    partial object) or ``rename()`` for ``"overwrite"`` and
    :class:`~aiolode.IfMatch`, and the directory is ``fsync``-ed. Overwrites,
    compare-and-swap puts and deletes of one key serialise on a ``flock`` lock
    stripe under ``<root>/.aiolode/locks/``, so ``IfMatch`` is atomic across
    processes sharing the root. Etags are ``(inode, mtime ns, size)``.

    Keys map to paths below ``root``; segments are limited to 255 bytes; segments
    starting with ``.aiolode`` are reserved. As on S3, a key may be an object and
    the prefix of other keys at once (``a/b`` and ``a/b/c``; the object then lives
    at ``a/b/.aiolode-self``). Symlinks below the root are never followed (a key
    through one raises :class:`~aiolode.InvalidKeyError`) and never listed. Empty
    directories are removed after deletes (best effort).

    Cost: every operation is one worker-thread hop (a streamed put: one per
    ~1 MiB written, plus two); a durable write is two ``fsync`` calls (file and
    directory). Large writes start the kernel's write-back every 8 MiB as they
    go (Linux ``sync_file_range``), so the final ``fsync`` waits for the last
    few MiB rather than the whole object. Listing stats one page of objects per
    hop; memory holds the page and the sorted entry names of the directories on
    the current path.

    Parameters
    ----------
    root
        An existing directory. It is resolved once (``realpath``) when the store
        is opened; it is never created for you.
    page_size
        How many objects one listing step (one thread hop) stats.
    max_threads
        Most worker threads this store runs at once (its capacity limiter).

    Raises
    ------
    InvalidInputError
        ``page_size`` or ``max_threads`` is not a positive int, or ``root`` is
        not a path. A missing root is reported when the store is opened (or first
        used), as :class:`~aiolode.InvalidInputError`.
    """

    name = "file"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        page_size: int = 1000,
        max_threads: int = 16,
    ) -> None:
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size <= 0:
            raise InvalidInputError(f"page_size must be a positive int, not {page_size!r}")
        if not isinstance(max_threads, int) or isinstance(max_threads, bool) or max_threads <= 0:
            raise InvalidInputError(f"max_threads must be a positive int, not {max_threads!r}")
        try:
            path = os.fspath(root)
        except TypeError as exc:
            raise InvalidInputError(f"root must be a path, not {type(root).__name__}") from exc
        if not isinstance(path, str) or not path:
            raise InvalidInputError(f"root must be a non-empty str path, not {root!r}")
        self._given_root = path
        self._root: str | None = None
        self._page_size = page_size
        self._max_threads = max_threads
        self._limiter: anyio.CapacityLimiter | None = None
        # Flipped once if the filesystem refuses O_TMPFILE; named temps are used then.
        self._use_tmpfile = bool(_O_TMPFILE)

    def __repr__(self) -> str:
        return f"FileStore({self._root or self._given_root!r})"

    @property
    def root(self) -> str:
        """The root directory (resolved once the store has been opened)."""
        return self._root or self._given_root

    # ----------------------------------------------------------------- lifecycle
    async def aopen(self) -> None:
        """Resolve and check the root; create the thread limiter. Idempotent.

        Raises
        ------
        InvalidInputError
            The root does not exist or is not a directory.
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_threads)
        await self._ready()

    async def aclose(self) -> None:
        """Release the thread limiter (the store holds no open files between calls).

        Idempotent; the store can be opened again, even under another event loop.
        """
        # A limiter is bound to the event loop that first used it.
        self._limiter = None
        await anyio.lowlevel.checkpoint()

    async def _ready(self) -> str:
        if self._root is None:
            self._root = await self._run(self._resolve_root, self._given_root)
        return self._root

    @staticmethod
    def _resolve_root(given: str) -> str:
        root = os.path.realpath(given)
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise InvalidInputError(
                f"FileStore root {given!r} does not exist; create the directory first"
            ) from None
        except OSError as exc:
            raise _map_oserror(exc, None, f"stat root {given!r}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"FileStore root {given!r} is not a directory")
        return root

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_threads)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _io(self, key: str, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread, mapping OSError to the aiolode tree."""
        try:
            return await self._run(fn, *args)
        except OSError as exc:
            raise _map_oserror(exc, key, what) from exc

    # ---------------------------------------------------------------- key -> path
    @staticmethod
    def _split(key: str) -> tuple[tuple[str, ...], str]:
        """Split a (base-validated) key into directories and name; FS-specific checks."""
        parts = key.split("/")
        for seg in parts:
            if seg.startswith(RESERVED_PREFIX):
                raise InvalidKeyError(
                    f"key {key!r}: segments starting with {RESERVED_PREFIX!r} are "
                    "reserved by FileStore",
                    key=key,
                )
            if len(seg.encode("utf-8")) > _NAME_MAX:
                raise InvalidKeyError(
                    f"key {key!r}: a path segment is longer than {_NAME_MAX} bytes", key=key
                )
        return tuple(parts[:-1]), parts[-1]

    def _open_root(self) -> int:
        assert self._root is not None
        return os.open(self._root, _DIR_FLAGS)

    def _open_dirs(
        self, key: str, dirs: Sequence[str], *, create: bool, keep: bool = False
    ) -> list[int]:
        """Open ``root/dirs...`` one segment at a time without following symlinks.

        Returns the open directory fds (all of them with ``keep``, else only the
        last). Missing directories are created (and their parent fsync-ed) with
        ``create``; else a missing one raises FileNotFoundError. A segment that is
        a symlink raises InvalidKeyError; one that is an object is migrated (see
        :meth:`_migrate`) when creating and raises ObjectNotFoundError when reading.
        """
        for attempt in range(_DIR_RETRIES):
            try:
                return self._open_dirs_once(key, dirs, create=create, keep=keep)
            except _DirGone:
                _dir_backoff(attempt)  # a concurrent delete pruned a directory we stood in
        raise StorageError(f"directory for {key!r} keeps disappearing", key=key)

    def _open_dirs_once(
        self, key: str, dirs: Sequence[str], *, create: bool, keep: bool
    ) -> list[int]:
        fds = [self._open_root()]
        try:
            for i, seg in enumerate(dirs):
                parent = fds[-1]
                for _ in range(_DIR_RETRIES):
                    try:
                        fd = os.open(seg, _DIR_FLAGS, dir_fd=parent)
                        break
                    except FileNotFoundError:
                        if not create:
                            raise
                        try:
                            os.mkdir(seg, 0o777, dir_fd=parent)
                        except FileExistsError:
                            continue
                        except FileNotFoundError as exc:
                            raise _DirGone from exc  # the parent itself was pruned
                        # The new entry must survive a crash like the object will.
                        os.fsync(parent)
                    except NotADirectoryError:
                        where = "/".join(dirs[: i + 1])
                        st = os.stat(seg, dir_fd=parent, follow_symlinks=False)
                        if stat.S_ISLNK(st.st_mode):
                            raise InvalidKeyError(
                                f"key {key!r} goes through the symlink {where!r}; "
                                "FileStore never follows symlinks below its root",
                                key=key,
                            ) from None
                        if create and stat.S_ISREG(st.st_mode):
                            # An object "a/b" while writing "a/b/c": turn it into a
                            # directory holding the object, then descend.
                            self._migrate(parent, seg, where)
                            continue
                        if create:
                            raise InvalidKeyError(
                                f"cannot write {key!r}: {where!r} is not a directory",
                                key=key,
                            ) from None
                        raise ObjectNotFoundError(
                            f"object {key!r} not found ({where!r} is an object)", key=key
                        ) from None
                else:
                    raise _DirGone
                if keep:
                    fds.append(fd)
                else:
                    os.close(parent)
                    fds[-1] = fd
            return fds
        except BaseException:
            for fd in fds:
                _close(fd)
            raise

    def _migrate(self, parent: int, seg: str, key: str) -> None:
        """Atomically turn the object file ``seg`` into ``seg/.aiolode-self``.

        Built beside it as a temp directory holding a hard link of the object (same
        inode, so the etag is unchanged), then swapped in with
        ``renameat2(RENAME_EXCHANGE)``: at every instant ``seg`` resolves to the
        object. Under the object's lock stripe, so no CAS, overwrite or delete of
        ``key`` interleaves.
        """
        with self._locked(key):
            try:
                st = os.stat(seg, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return  # deleted meanwhile: the caller's mkdir takes over
            if not stat.S_ISREG(st.st_mode):
                return  # migrated by someone else meanwhile
            tmp = _TMP_PREFIX + secrets.token_hex(8)
            os.mkdir(tmp, 0o777, dir_fd=parent)
            swapped = False
            try:
                tfd = os.open(tmp, _DIR_FLAGS, dir_fd=parent)
                try:
                    os.link(seg, _SELF, src_dir_fd=parent, dst_dir_fd=tfd, follow_symlinks=False)
                    os.fsync(tfd)
                finally:
                    os.close(tfd)
                _exchange(parent, tmp, seg)
                swapped = True
                os.unlink(tmp, dir_fd=parent)  # now the old name of the object file
                os.fsync(parent)
            except BaseException:
                if not swapped:
                    with suppress(OSError):
                        os.unlink(f"{tmp}/{_SELF}", dir_fd=parent)
                    with suppress(OSError):
                        os.rmdir(tmp, dir_fd=parent)
                raise

    # --------------------------------------------------------------------- writes
    def _begin(self, key: str, dirs: Sequence[str], mode: PutMode) -> _Pending:
        """Open the target directory (creating it) and a temp file in it."""
        for attempt in range(_DIR_RETRIES):
            dfd = self._open_dirs(key, dirs, create=True)[0]
            try:
                if mode == "create" and self._use_tmpfile:
                    try:
                        fd = os.open(".", os.O_WRONLY | _O_TMPFILE | _O_CLOEXEC, 0o666, dir_fd=dfd)
                        return _Pending(dfd, fd, None)
                    except OSError as exc:
                        if _dir_gone(dfd):
                            raise _DirGone from exc
                        if exc.errno not in _NO_TMPFILE_ERRNOS:
                            raise
                        self._use_tmpfile = False
                tmpname = _TMP_PREFIX + secrets.token_hex(8)
                try:
                    fd = os.open(tmpname, _TMP_FLAGS, 0o666, dir_fd=dfd)
                except FileNotFoundError as exc:
                    raise _DirGone from exc
                return _Pending(dfd, fd, tmpname)
            except _DirGone:
                _close(dfd)
                _dir_backoff(attempt)
            except BaseException:
                _close(dfd)
                raise
        raise StorageError(f"directory for {key!r} keeps disappearing", key=key)

    def _commit(
        self, p: _Pending, key: str, dirs: Sequence[str], name: str, mode: PutMode
    ) -> ObjectInfo:
        """Stamp, fsync and publish the temp file; fsync the directories touched."""
        now = _stamp()
        os.utime(p.fd, ns=(now, now))
        os.fsync(p.fd)
        st = os.fstat(p.fd)
        if mode == "create":
            self._publish_link(p, key, dirs, name)
        else:
            self._publish_rename(p, key, name, mode)
        return _info(key, st)

    def _publish_link(self, p: _Pending, key: str, dirs: Sequence[str], name: str) -> None:
        """Create-only publish: ``link()`` fails with EEXIST rather than replace."""
        for _ in range(_DIR_RETRIES):
            if p.tmpname is None:
                # dst_dir_fd makes CPython call linkat(..., AT_SYMLINK_FOLLOW): the
                # /proc magic link resolves to the unnamed O_TMPFILE inode itself.
                src, src_dir, follow = f"/proc/self/fd/{p.fd}", None, True
            else:
                src, src_dir, follow = p.tmpname, p.dfd, False
            try:
                os.link(src, name, src_dir_fd=src_dir, dst_dir_fd=p.dfd, follow_symlinks=follow)
                tdir = p.dfd
                break
            except FileNotFoundError:
                if p.tmpname is not None or not _dir_gone(p.dfd):
                    raise
                # Pruned by a concurrent delete: recreate the directory, link there.
                new = self._open_dirs(key, dirs, create=True)[0]
                os.close(p.dfd)
                p.dfd = new
                continue
            except FileExistsError:
                pass
            # The name exists. An object: refuse. A directory (of other keys): the
            # object lives inside it under the reserved name.
            try:
                st = os.stat(name, dir_fd=p.dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted meanwhile: retry
            if not stat.S_ISDIR(st.st_mode):
                raise ObjectExistsError(f"object {key!r} already exists", key=key)
            sub = os.open(name, _DIR_FLAGS, dir_fd=p.dfd)
            try:
                os.link(src, _SELF, src_dir_fd=src_dir, dst_dir_fd=sub, follow_symlinks=follow)
            except FileExistsError:
                _close(sub)
                raise ObjectExistsError(f"object {key!r} already exists", key=key) from None
            except BaseException:
                _close(sub)
                raise
            os.fsync(sub)
            os.close(sub)
            tdir = -1
            break
        else:
            raise StorageError(f"directory for {key!r} keeps disappearing", key=key)
        if p.tmpname is not None:
            os.unlink(p.tmpname, dir_fd=p.dfd)
            p.tmpname = None
            os.fsync(p.dfd)
        elif tdir == p.dfd:
            os.fsync(p.dfd)

    def _publish_rename(self, p: _Pending, key: str, name: str, mode: PutMode) -> None:
        """Overwrite / CAS publish: ``rename()`` under the key's lock stripe."""
        assert p.tmpname is not None
        with self._locked(key):
            tdir, tname, owned = self._target(p.dfd, name)
            try:
                if isinstance(mode, IfMatch):
                    self._check_etag(tdir, key, tname, mode)
                os.rename(p.tmpname, tname, src_dir_fd=p.dfd, dst_dir_fd=tdir)
                p.tmpname = None
            except BaseException:
                if owned >= 0:
                    os.close(owned)
                raise
        # Durability needs no lock: fsync after releasing it.
        if owned >= 0:
            os.fsync(owned)
            os.close(owned)
        os.fsync(p.dfd)

    @staticmethod
    def _target(dfd: int, name: str) -> tuple[int, str, int]:
        """Where the object ``name`` lives: ``(dir fd, name, fd to close or -1)``.

        Normally ``name`` itself; when ``name`` is a directory (it holds other
        keys too), the reserved entry inside it.
        """
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return dfd, name, -1
        if not stat.S_ISDIR(st.st_mode):
            return dfd, name, -1
        sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        return sub, _SELF, sub

    @staticmethod
    def _check_etag(dfd: int, key: str, name: str, mode: IfMatch) -> None:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        current = _etag(st) if st is not None and stat.S_ISREG(st.st_mode) else None
        if current != mode.etag:
            found = "missing" if current is None else f"etag {current}"
            raise PreconditionFailedError(
                f"object {key!r} is {found}, expected etag {mode.etag}",
                key=key,
                expected_etag=mode.etag,
            )

    @staticmethod
    def _abort(p: _Pending) -> None:
        """Release an in-flight write; remove its temp file unless published. Idempotent."""
        if p.fd >= 0:
            _close(p.fd)
            p.fd = -1
        if p.tmpname is not None:
            with suppress(OSError):
                os.unlink(p.tmpname, dir_fd=p.dfd)
            p.tmpname = None
        if p.dfd >= 0:
            _close(p.dfd)
            p.dfd = -1

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the key's flock stripe: serialises check-and-rename across processes.

        Each acquisition opens the stripe afresh: flock locks belong to an open
        file description, so threads of this process exclude each other too.
        """
        import fcntl  # POSIX only: imported here so that `import aiolode` works anywhere

        stripe = zlib.crc32(key.encode("utf-8")) % _LOCK_STRIPES
        dfd = self._open_dirs(key, _LOCK_DIRS, create=True)[0]
        try:
            fd = os.open(
                f"{stripe:02d}",
                os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC,
                0o666,
                dir_fd=dfd,
            )
        finally:
            os.close(dfd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _put_bytes_sync(
        self, key: str, dirs: Sequence[str], name: str, data: bytes | bytearray | memoryview,
        mode: PutMode,
    ) -> ObjectInfo:  # fmt: skip
        p = self._begin(key, dirs, mode)
        try:
            view = memoryview(data)
            for start in range(0, len(view), _WRITEBACK_BYTES):
                p.append(view[start : start + _WRITEBACK_BYTES])
            return self._commit(p, key, dirs, name, mode)
        finally:
            self._abort(p)

    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        dirs, name = self._split(key)
        await self._ready()
        return await self._io(key, "put", self._put_bytes_sync, key, dirs, name, data, mode)

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        dirs, name = self._split(key)
        await self._ready()
        p = await self._io(key, "streamed put", self._begin, key, dirs, mode)
        try:
            # Errors of the caller's iterator propagate untouched; only our own I/O
            # is mapped.
            buf = bytearray()
            async for chunk in chunks:
                if not buf and len(chunk) >= _SPOOL_BYTES:
                    await self._io(key, "streamed put", p.append, chunk)
                    continue
                buf += chunk
                if len(buf) >= _SPOOL_BYTES:
                    await self._io(key, "streamed put", p.append, buf)
                    buf = bytearray()
            if buf:
                await self._io(key, "streamed put", p.append, buf)
            return await self._io(key, "streamed put", self._commit, p, key, dirs, name, mode)
        finally:
            # Runs on failure and cancellation too: nothing may stay behind.
            with anyio.CancelScope(shield=True):
                await self._run(self._abort, p)

    # ---------------------------------------------------------------------- reads
    def _open_read(self, key: str, dirs: Sequence[str], name: str) -> tuple[int, int]:
        """Open the object for reading; return ``(fd, size)``."""
        dfd = self._open_dirs(key, dirs, create=False)[0]
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        finally:
            os.close(dfd)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):  # a key that is also a prefix: see _SELF
                sub = fd
                fd = -1
                try:
                    fd = os.open(_SELF, _READ_FLAGS, dir_fd=sub)
                finally:
                    os.close(sub)
                st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ObjectNotFoundError(f"object {key!r} not found (not a file)", key=key)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        return fd, st.st_size

    def _get_sync(self, key: str, dirs: Sequence[str], name: str) -> bytes:
        fd, size = self._open_read(key, dirs, name)
        try:
            # Ask for one byte more than the size: on a regular file read() is short
            # only at EOF (or at Linux's per-call cap), so one call usually does.
            parts: list[bytes] = []
            total = 0
            while True:
                want = max(size + 1 - total, 1 << 16)
                chunk = os.read(fd, want)
                if chunk:
                    parts.append(chunk)
                    total += len(chunk)
                if len(chunk) < min(want, _MAX_READ):
                    break
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    def _get_range_sync(
        self, key: str, dirs: Sequence[str], name: str, offset: int, length: int
    ) -> bytes:
        fd, size = self._open_read(key, dirs, name)
        try:
            # Clamp to the size: a huge length must not allocate a huge buffer.
            want = max(0, min(length, size - offset))
            parts: list[bytes] = []
            while want > 0:
                chunk = os.pread(fd, want, offset)
                if not chunk:
                    break
                parts.append(chunk)
                offset += len(chunk)
                want -= len(chunk)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    def _head_sync(self, key: str, dirs: Sequence[str], name: str) -> ObjectInfo:
        dfd = self._open_dirs(key, dirs, create=False)[0]
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):  # a key that is also a prefix: see _SELF
                tdir, tname, owned = self._target(dfd, name)
                try:
                    st = os.stat(tname, dir_fd=tdir, follow_symlinks=False)
                finally:
                    if owned >= 0:
                        os.close(owned)
        finally:
            os.close(dfd)
        if stat.S_ISLNK(st.st_mode):
            raise InvalidKeyError(
                f"key {key!r} is a symlink; FileStore never follows symlinks below its root",
                key=key,
            )
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFoundError(f"object {key!r} not found (not a file)", key=key)
        return _info(key, st)

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        dirs, name = self._split(key)
        await self._ready()
        return await self._io(key, "get", self._get_sync, key, dirs, name)

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        dirs, name = self._split(key)
        await self._ready()
        return await self._io(
            key, "get_range", self._get_range_sync, key, dirs, name, offset, length
        )

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        dirs, name = self._split(key)
        await self._ready()
        return await self._io(key, "head", self._head_sync, key, dirs, name)

    def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        # Not an async generator itself, so that FS-specific key errors raise at once.
        dirs, name = self._split(key)
        return self._iter_chunks(key, dirs, name, chunk_size)

    async def _iter_chunks(
        self, key: str, dirs: Sequence[str], name: str, chunk_size: int
    ) -> AsyncGenerator[bytes, None]:
        await self._ready()
        fd, _ = await self._io(key, "open", self._open_read, key, dirs, name)
        try:
            while True:
                chunk = await self._io(key, "read", os.read, fd, chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            # Also when the consumer stops early or is cancelled: never leak the fd.
            with anyio.CancelScope(shield=True):
                await self._run(_close, fd)

    # --------------------------------------------------------------------- delete
    def _delete_sync(self, key: str, dirs: Sequence[str], name: str) -> None:
        try:
            fds = self._open_dirs(key, dirs, create=False, keep=True)
        except (ObjectNotFoundError, FileNotFoundError):
            return  # idempotent: no directory, no object
        try:
            dfd = fds[-1]
            # Same stripe as overwrite / CAS: a delete between a CAS's etag check and
            # its rename would otherwise be silently undone.
            with self._locked(key):
                tdir, tname, owned = self._target(dfd, name)
                try:
                    os.unlink(tname, dir_fd=tdir)
                except (FileNotFoundError, IsADirectoryError):
                    return  # missing, or only a directory of other keys: no such object
                else:
                    os.fsync(tdir)
                finally:
                    if owned >= 0:
                        os.close(owned)
            # Best effort: drop directories the delete left empty (never the root).
            chain = [*dirs, name] if owned >= 0 else list(dirs)
            for i in range(len(chain) - 1, -1, -1):
                try:
                    os.rmdir(chain[i], dir_fd=fds[i])
                except OSError:
                    break
                os.fsync(fds[i])
        finally:
            for fd in fds:
                _close(fd)

    async def _delete(self, key: str) -> None:
        # docstring inherited
        dirs, name = self._split(key)
        await self._ready()
        await self._io(key, "delete", self._delete_sync, key, dirs, name)

    # -------------------------------------------------------------------- listing
    @staticmethod
    def _scan(dfd: int, tail: str) -> list[tuple[bytes, str, bool, str]]:
        """Entries of one directory starting with ``tail``, in S3 key order.

        Returns ``(sort key, name, is a directory, path of the object file)``.
        S3 orders keys by UTF-8 bytes, and a directory ``a`` holds keys ``a/...``,
        so it sorts as ``a/`` (after ``a-b``, before ``a0``); the object of a key
        that is also a prefix (``a/.aiolode-self``) sorts as ``a``.
        """
        out: list[tuple[bytes, str, bool, str]] = []
        with os.scandir(dfd) as it:
            for e in it:
                name = e.name
                if not name.startswith(tail) or not _is_valid_name(name):
                    continue
                if e.is_dir(follow_symlinks=False):
                    out.append(((name + "/").encode("utf-8"), name, True, name))
                    self_path = f"{name}/{_SELF}"
                    with suppress(OSError):
                        if stat.S_ISREG(
                            os.stat(self_path, dir_fd=dfd, follow_symlinks=False).st_mode
                        ):
                            out.append((name.encode("utf-8"), name, False, self_path))
                elif e.is_file(follow_symlinks=False):
                    out.append((name.encode("utf-8"), name, False, name))
        out.sort()
        return out

    def _walk_dir(self, dfd: int, base: str, tail: str) -> Generator[ObjectInfo, None, None]:
        for _, name, is_dir, path in self._scan(dfd, tail):
            if is_dir:
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    continue  # removed or replaced since the scan
                try:
                    yield from self._walk_dir(sub, f"{base}{name}/", "")
                finally:
                    os.close(sub)
            else:
                try:
                    st = os.stat(path, dir_fd=dfd, follow_symlinks=False)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # deleted since the scan
                if stat.S_ISREG(st.st_mode):
                    yield _info(base + name, st)

    def _open_prefix_dir(self, prefix: str) -> tuple[int, str, str] | None:
        """Open the deepest directory fully named by ``prefix``: ``(fd, base, tail)``."""
        base, _, tail = prefix.rpartition("/")
        dirs = base.split("/") if base else []
        if any(d.startswith(RESERVED_PREFIX) for d in dirs):
            return None
        try:
            dfd = self._open_dirs(prefix, dirs, create=False)[0]
        except (InvalidKeyError, ObjectNotFoundError, FileNotFoundError, NotADirectoryError):
            return None  # symlinks are invisible to listings; a missing dir is empty
        return dfd, f"{base}/" if base else "", tail

    def _walk(self, prefix: str) -> Generator[ObjectInfo, None, None]:
        opened = self._open_prefix_dir(prefix)
        if opened is None:
            return
        dfd, base, tail = opened
        try:
            yield from self._walk_dir(dfd, base, tail)
        finally:
            os.close(dfd)

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        await self._ready()
        # A lazy walk advanced one page per thread hop: memory holds one page plus
        # the entries of the directories on the current path, never the whole tree.
        walk = self._walk(prefix)
        try:
            while True:
                page = await self._io(prefix, "list", _take, walk, self._page_size)
                for info in page:
                    yield info
                if len(page) < self._page_size:
                    return
        finally:
            with anyio.CancelScope(shield=True):
                await self._run(walk.close)

    def _has_object(self, dfd: int) -> bool:
        """Whether a directory holds an object at any depth (stops at the first)."""
        for _, name, is_dir, _ in self._scan(dfd, ""):
            if not is_dir:
                return True
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            except OSError:
                continue
            try:
                if self._has_object(sub):
                    return True
            finally:
                os.close(sub)
        return False

    def _list_dirs_sync(self, prefix: str) -> list[str]:
        opened = self._open_prefix_dir(prefix)
        if opened is None:
            return []
        dfd, base, tail = opened
        out: list[str] = []
        try:
            for _, name, is_dir, _ in self._scan(dfd, tail):
                if not is_dir:
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    # Like S3 common prefixes: only directories that hold objects.
                    if self._has_object(sub):
                        out.append(f"{base}{name}/")
                finally:
                    os.close(sub)
        finally:
            os.close(dfd)
        return out

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited
        # One directory scan (a delimiter listing), not a walk of everything below.
        await self._ready()
        dirs = await self._io(prefix, "list_dirs", self._list_dirs_sync, prefix)
        for d in dirs:
            yield d
