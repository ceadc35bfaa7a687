"""The sync POSIX core of FileStore: one directory tree, walked and written safely.

Layout under the root: one file per key (``a/b/c`` is the file ``<root>/a/b/c``),
directories created on demand. Names starting with ``.aiolode`` are reserved:

- ``<root>/.aiolode/locks/NN`` — lock stripes taken with :func:`fcntl.flock` by
  overwrites, compare-and-swap puts and deletes of keys hashing to stripe ``NN``;
- ``<dir>/.aiolode-tmp-<random>`` — a named temp file of an in-flight write
  (only when ``O_TMPFILE`` is unavailable, or for overwrite / CAS puts), or the
  temp directory of a migration (below). A process killed mid-write leaves it
  behind: :meth:`PosixTree.temps` finds such leftovers and
  :meth:`PosixTree.remove_temp` removes one;
- ``<root>/a/b/.aiolode-self`` — the object of key ``a/b`` when ``a/b`` is also
  the prefix of other keys (``a/b/c``): a name cannot be a file and a directory
  at once. Writing ``a/b/c`` while ``a/b`` is a file moves the object there
  atomically (``renameat2(RENAME_EXCHANGE)`` of a prepared directory holding a
  hard link of it, so readers never miss it and its etag is unchanged).

Every path is resolved from the root one segment at a time with ``O_NOFOLLOW``
and ``dir_fd`` (``openat``), so no key can reach outside the root — not through
``..`` (refused by key validation), and not through a symlink planted inside the
root (refused with :class:`~aiolode.InvalidKeyError`): the tree never follows a
symlink below its root.

Everything here blocks and knows nothing of event loops: :class:`FileStore
<aiolode.FileStore>` calls it from worker threads, tests call it directly.
Methods raise :class:`OSError` for the system's failures (the caller maps them
to the aiolode tree) and aiolode errors for what they decide themselves (an
existing object, a stale etag, a symlink).
"""

from __future__ import annotations

import errno
import os
import random
import re
import secrets
import stat
import time
import zlib
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from .._keys import is_valid_segment, validate_key
from ..errors import (
    InvalidInputError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StaleWriteError,
    StorageError,
)
from ..types import IfMatch, ObjectInfo, PutMode
from . import _linux

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Sequence

__all__ = [
    "HAS_O_TMPFILE",
    "RESERVED_PREFIX",
    "WRITEBACK_BYTES",
    "Pending",
    "PosixTree",
    "close_quietly",
    "is_temp_name",
    "scan",
    "split_key",
]

RESERVED_PREFIX: Final = ".aiolode"
"""Key segments starting with this are reserved for the tree's own files."""

WRITEBACK_BYTES: Final = 8 << 20
"""Large writes start write-back of their dirty pages every this many bytes."""

_TMP_PREFIX: Final = ".aiolode-tmp-"
_TMP_NAME: Final = re.compile(r"\.aiolode-tmp-[0-9a-f]{16}\Z")
# A key that is also the prefix of other keys ("a/b" next to "a/b/c") cannot be a
# file and a directory at once: its object is stored as "a/b/.aiolode-self".
_SELF: Final = ".aiolode-self"
_LOCK_DIRS: Final = (".aiolode", "locks")
_LOCK_STRIPES: Final = 64
_NAME_MAX: Final = 255
# How often an operation restarts when a directory it was using is pruned under it
# by a concurrent delete (each restart means another writer made progress).
_DIR_RETRIES: Final = 1000
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

HAS_O_TMPFILE: Final = bool(_O_TMPFILE)
"""Whether this platform defines ``O_TMPFILE`` (a filesystem may still refuse it)."""

# Errors meaning "this filesystem has no O_TMPFILE": fall back to named temps.
_NO_TMPFILE_ERRNOS: Final = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


def split_key(key: str) -> tuple[tuple[str, ...], str]:
    """Split a valid store key into its directories and its name.

    Applies the checks only a filesystem needs (no I/O): reserved names and
    the 255-byte limit on one path segment.

    Raises
    ------
    InvalidKeyError
        A segment starts with ``.aiolode`` or is longer than 255 bytes in UTF-8.
    """
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


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of the tree's temp names (``.aiolode-tmp-`` + 16 hex)."""
    return _TMP_NAME.match(name) is not None


def _reaped(p: Pending) -> bool:
    """Whether ``p``'s named temp file was unlinked under it (by :meth:`PosixTree.remove_temp`)."""
    try:
        return os.fstat(p.fd).st_nlink == 0
    except OSError:
        return False


def _stale(p: Pending) -> StaleWriteError:
    return StaleWriteError(
        f"the temp file of the write to {p.key!r} was removed while being written "
        "(a cleanup of abandoned uploads with too short a grace): nothing was "
        "published; write it again",
        key=p.key,
    )


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=_etag(st),
        last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
    )


def _is_listed(name: str) -> bool:
    """Whether a directory entry can be (part of) a key: listings skip the rest."""
    return not name.startswith(RESERVED_PREFIX) and is_valid_segment(name)


def close_quietly(fd: int) -> None:
    """Close ``fd``, ignoring errors (cleanup paths)."""
    with suppress(OSError):
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _DirGone(Exception):
    """A directory was pruned (emptied and removed) while we were using it; retry."""


def _dir_gone(dfd: int) -> bool:
    try:
        return os.fstat(dfd).st_nlink == 0
    except OSError:
        return False


def _dir_backoff(attempt: int) -> None:
    """Sleep a little (in the worker thread) before restarting after a prune.

    Each restart means another writer made progress, but under heavy put/delete
    churn on one directory an unlucky writer can lose many times in a row;
    a short jittered pause breaks the lockstep (a CI run lost 16 in a row).
    """
    if attempt >= 2:
        time.sleep(random.uniform(0, min(0.02, 0.0002 * 2**attempt)))


def scan(dfd: int, tail: str) -> list[tuple[bytes, str, bool, str]]:
    """Entries of one directory starting with ``tail``, in S3 key order.

    Returns ``(sort key, name, is a directory, path of the object file)``.
    S3 orders keys by UTF-8 bytes, and a directory ``a`` holds keys ``a/...``,
    so it sorts as ``a/`` (after ``a-b``, before ``a0``); the object of a key
    that is also a prefix (``a/.aiolode-self``) sorts as ``a``. Reserved and
    unrepresentable names, symlinks and special files are left out.

    Raises
    ------
    OSError
        The directory cannot be read.
    """
    out: list[tuple[bytes, str, bool, str]] = []
    with os.scandir(dfd) as it:
        for e in it:
            name = e.name
            if not name.startswith(tail) or not _is_listed(name):
                continue
            if e.is_dir(follow_symlinks=False):
                out.append(((name + "/").encode("utf-8"), name, True, name))
                self_path = f"{name}/{_SELF}"
                with suppress(OSError):
                    if stat.S_ISREG(os.stat(self_path, dir_fd=dfd, follow_symlinks=False).st_mode):
                        out.append((name.encode("utf-8"), name, False, self_path))
            elif e.is_file(follow_symlinks=False):
                out.append((name.encode("utf-8"), name, False, name))
    out.sort()
    return out


class Pending:
    """An in-flight write: where it goes, its directory, temp file and temp name.

    ``tmpname`` is ``None`` for an unnamed ``O_TMPFILE`` inode (or once
    published). ``written`` counts the bytes appended, ``flushed`` up to where
    write-back has been started (see :meth:`append`).
    """

    __slots__ = ("dfd", "dirs", "fd", "flushed", "key", "mode", "name", "tmpname", "written")

    def __init__(
        self,
        key: str,
        dirs: tuple[str, ...],
        name: str,
        mode: PutMode,
        dfd: int,
        fd: int,
        tmpname: str | None,
    ) -> None:
        self.key = key
        self.dirs = dirs
        self.name = name
        self.mode = mode
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

        Raises
        ------
        OSError
            The write failed (disk full, I/O error).
        """
        _write_all(self.fd, data)
        self.written += len(data)
        if self.written - self.flushed >= WRITEBACK_BYTES:
            _linux.start_writeback(self.fd, self.flushed, self.written - self.flushed)
            self.flushed = self.written


class PosixTree:
    """A key space stored as a directory tree below ``root`` (see the module docstring).

    Every method blocks; it is safe to call them from many threads (and
    processes) at once. Methods taking a ``key`` expect one that passed
    :func:`aiolode._keys.validate_key`, and apply :func:`split_key` themselves.

    Parameters
    ----------
    root
        The absolute, symlink-free path of an existing directory (what
        :meth:`open` returns a tree for); not checked here.
    use_tmpfile
        Write through unnamed ``O_TMPFILE`` inodes for create-only puts when
        the platform has them; turned off for good the first time the
        filesystem refuses one (named temp files are used then).
    """

    __slots__ = ("root", "use_tmpfile")

    def __init__(self, root: str, *, use_tmpfile: bool = HAS_O_TMPFILE) -> None:
        self.root = root
        self.use_tmpfile = use_tmpfile and HAS_O_TMPFILE

    def __repr__(self) -> str:
        return f"PosixTree({self.root!r})"

    @classmethod
    def open(cls, given: str) -> PosixTree:
        """The tree at ``given``, resolved once (``realpath``) and checked.

        Raises
        ------
        InvalidInputError
            ``given`` does not exist or is not a directory (never created for you).
        OSError
            The root cannot be examined.
        """
        root = os.path.realpath(given)
        try:
            st = os.stat(root)
        except FileNotFoundError:
            raise InvalidInputError(
                f"FileStore root {given!r} does not exist; create the directory first"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInputError(f"FileStore root {given!r} is not a directory")
        return cls(root)

    def path(self, key: str) -> str:
        """The absolute path of ``key``'s file, for readers outside this module.

        No I/O. A key that is also the prefix of other keys lives at
        ``<path>/.aiolode-self`` instead, which this cannot know without a stat.

        Raises
        ------
        InvalidKeyError
            ``key`` is not a valid key of this tree.
        """
        validate_key(key)
        split_key(key)
        return f"{self.root}/{key}"

    # ------------------------------------------------------------ walking paths
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
        fds = [os.open(self.root, _DIR_FLAGS)]
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
                close_quietly(fd)
            raise

    def _migrate(self, parent: int, seg: str, key: str) -> None:
        """Atomically turn the object file ``seg`` into ``seg/.aiolode-self``.

        Built beside it as a temp directory holding a hard link of the object (same
        inode, so the etag is unchanged), then swapped in with
        ``renameat2(RENAME_EXCHANGE)``: at every instant ``seg`` resolves to the
        object. Under the object's lock stripe, so no CAS, overwrite or delete of
        ``key`` interleaves.
        """
        with self.locked(key):
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
                _linux.exchange(parent, tmp, seg)
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

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold ``key``'s flock stripe: serialises check-and-rename across processes.

        Each acquisition opens the stripe afresh: flock locks belong to an open
        file description, so threads of this process exclude each other too.

        Raises
        ------
        OSError
            The lock directory or stripe cannot be created or opened.
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

    # -------------------------------------------------------------------- writes
    def begin(self, key: str, mode: PutMode) -> Pending:
        """Open the target directory (creating it) and a temp file in it.

        The caller appends to the result, then :meth:`commit` s it, and calls
        :meth:`abort` in every case (a no-op after a successful commit).

        Raises
        ------
        InvalidKeyError
            See :func:`split_key`; or a directory on the way is a symlink.
        OSError
            The system refused (permissions, disk full …).
        """
        dirs, name = split_key(key)
        for attempt in range(_DIR_RETRIES):
            dfd = self._open_dirs(key, dirs, create=True)[0]
            try:
                if mode == "create" and self.use_tmpfile:
                    try:
                        fd = os.open(".", os.O_WRONLY | _O_TMPFILE | _O_CLOEXEC, 0o666, dir_fd=dfd)
                        return Pending(key, dirs, name, mode, dfd, fd, None)
                    except OSError as exc:
                        if _dir_gone(dfd):
                            raise _DirGone from exc
                        if exc.errno not in _NO_TMPFILE_ERRNOS:
                            raise
                        self.use_tmpfile = False
                tmpname = _TMP_PREFIX + secrets.token_hex(8)
                try:
                    fd = os.open(tmpname, _TMP_FLAGS, 0o666, dir_fd=dfd)
                except FileNotFoundError as exc:
                    raise _DirGone from exc
                return Pending(key, dirs, name, mode, dfd, fd, tmpname)
            except _DirGone:
                close_quietly(dfd)
                _dir_backoff(attempt)
            except BaseException:
                close_quietly(dfd)
                raise
        raise StorageError(f"directory for {key!r} keeps disappearing", key=key)

    def commit(self, p: Pending) -> ObjectInfo:
        """Stamp, fsync and publish the temp file; fsync the directories touched.

        Raises
        ------
        ObjectExistsError
            ``mode="create"`` and the key exists.
        PreconditionFailedError
            ``mode=IfMatch(etag)`` and the object is missing or has another etag.
        OSError
            The system refused (disk full …); nothing was published.
        """
        now = _linux.stamp()
        os.utime(p.fd, ns=(now, now))
        os.fsync(p.fd)
        st = os.fstat(p.fd)
        if p.tmpname is not None and st.st_nlink == 0:
            raise _stale(p)
        if p.mode == "create":
            self._publish_link(p)
        else:
            self._publish_rename(p)
        return _info(p.key, st)

    def _publish_link(self, p: Pending) -> None:
        """Create-only publish: ``link()`` fails with EEXIST rather than replace."""
        key, name = p.key, p.name
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
                if p.tmpname is not None and _reaped(p):
                    raise _stale(p) from None
                if p.tmpname is not None or not _dir_gone(p.dfd):
                    raise
                # Pruned by a concurrent delete: recreate the directory, link there.
                new = self._open_dirs(key, p.dirs, create=True)[0]
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
                close_quietly(sub)
                raise ObjectExistsError(f"object {key!r} already exists", key=key) from None
            except BaseException:
                close_quietly(sub)
                raise
            os.fsync(sub)
            os.close(sub)
            tdir = -1
            break
        else:
            raise StorageError(f"directory for {key!r} keeps disappearing", key=key)
        if p.tmpname is not None:
            # Published: a cleanup that removed the temp name meanwhile did our job.
            with suppress(FileNotFoundError):
                os.unlink(p.tmpname, dir_fd=p.dfd)
            p.tmpname = None
            os.fsync(p.dfd)
        elif tdir == p.dfd:
            os.fsync(p.dfd)

    def _publish_rename(self, p: Pending) -> None:
        """Overwrite / CAS publish: ``rename()`` under the key's lock stripe."""
        assert p.tmpname is not None
        with self.locked(p.key):
            tdir, tname, owned = self._target(p.dfd, p.name)
            try:
                if isinstance(p.mode, IfMatch):
                    _check_etag(tdir, p.key, tname, p.mode)
                try:
                    os.rename(p.tmpname, tname, src_dir_fd=p.dfd, dst_dir_fd=tdir)
                except FileNotFoundError:
                    if _reaped(p):
                        raise _stale(p) from None
                    raise
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
    def abort(p: Pending) -> None:
        """Release an in-flight write; remove its temp file unless published. Idempotent."""
        if p.fd >= 0:
            close_quietly(p.fd)
            p.fd = -1
        if p.tmpname is not None:
            with suppress(OSError):
                os.unlink(p.tmpname, dir_fd=p.dfd)
            p.tmpname = None
        if p.dfd >= 0:
            close_quietly(p.dfd)
            p.dfd = -1

    def put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        """Write ``data`` durably as ``key``, honouring ``mode`` atomically.

        Raises
        ------
        InvalidKeyError
            See :func:`split_key`; or the key goes through a symlink or an object.
        ObjectExistsError
            ``mode="create"`` and the key exists.
        PreconditionFailedError
            ``mode=IfMatch(etag)`` and the object is missing or has another etag.
        OSError
            The system refused; nothing was published.
        """
        p = self.begin(key, mode)
        try:
            view = memoryview(data)
            for start in range(0, len(view), WRITEBACK_BYTES):
                p.append(view[start : start + WRITEBACK_BYTES])
            return self.commit(p)
        finally:
            self.abort(p)

    # --------------------------------------------------------------------- reads
    def open_read(self, key: str) -> tuple[int, int]:
        """Open the object for reading; return ``(fd, size)``. The caller closes ``fd``.

        Raises
        ------
        InvalidKeyError
            See :func:`split_key`; or the key goes through a symlink.
        ObjectNotFoundError
            No such object (a directory, a FIFO … is no object).
        OSError
            ``ENOENT`` when missing; ``ELOOP`` when the object is a symlink.
        """
        dirs, name = split_key(key)
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

    def get(self, key: str) -> bytes:
        """The whole object.

        Raises
        ------
        InvalidKeyError, ObjectNotFoundError, OSError
            As :meth:`open_read`.
        """
        fd, size = self.open_read(key)
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

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``, short at the end of the object.

        Raises
        ------
        InvalidKeyError, ObjectNotFoundError, OSError
            As :meth:`open_read`.
        """
        fd, size = self.open_read(key)
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

    def head(self, key: str) -> ObjectInfo:
        """The object's size, etag and mtime.

        Raises
        ------
        InvalidKeyError
            See :func:`split_key`; or the key is (or goes through) a symlink.
        ObjectNotFoundError
            No such object.
        OSError
            ``ENOENT`` when missing.
        """
        dirs, name = split_key(key)
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

    # -------------------------------------------------------------------- delete
    def delete(self, key: str) -> None:
        """Remove the object (missing is fine); prune directories left empty.

        Raises
        ------
        InvalidKeyError
            See :func:`split_key`; or the key goes through a symlink.
        OSError
            The system refused.
        """
        dirs, name = split_key(key)
        try:
            fds = self._open_dirs(key, dirs, create=False, keep=True)
        except (ObjectNotFoundError, FileNotFoundError):
            return  # idempotent: no directory, no object
        try:
            dfd = fds[-1]
            # Same stripe as overwrite / CAS: a delete between a CAS's etag check and
            # its rename would otherwise be silently undone.
            with self.locked(key):
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
                close_quietly(fd)

    # ------------------------------------------------------------------- listing
    def _walk_dir(self, dfd: int, base: str, tail: str) -> Generator[ObjectInfo, None, None]:
        for _, name, is_dir, path in scan(dfd, tail):
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

    def walk(self, prefix: str) -> Generator[ObjectInfo, None, None]:
        """The objects whose key starts with ``prefix``, in S3 key order, lazily.

        Memory: the sorted entries of the directories on the current path. Close
        the generator when stopping early (it holds directory fds).

        Raises
        ------
        OSError
            A directory cannot be read.
        """
        opened = self._open_prefix_dir(prefix)
        if opened is None:
            return
        dfd, base, tail = opened
        try:
            yield from self._walk_dir(dfd, base, tail)
        finally:
            os.close(dfd)

    def _has_object(self, dfd: int) -> bool:
        """Whether a directory holds an object at any depth (stops at the first)."""
        for _, name, is_dir, _ in scan(dfd, ""):
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

    def list_dirs(self, prefix: str) -> list[str]:
        """The ``prefix``-relative "directories" holding objects, in key order.

        Like S3 common prefixes with delimiter ``/``: full prefixes ending in
        ``/``, only for directories that hold an object at some depth.

        Raises
        ------
        OSError
            A directory cannot be read.
        """
        opened = self._open_prefix_dir(prefix)
        if opened is None:
            return []
        dfd, base, tail = opened
        out: list[str] = []
        try:
            for _, name, is_dir, _ in scan(dfd, tail):
                if not is_dir:
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    if self._has_object(sub):
                        out.append(f"{base}{name}/")
                finally:
                    os.close(sub)
        finally:
            os.close(dfd)
        return out

    # ------------------------------------------------------------ leftover temps
    def _temps_in(
        self, dfd: int, base: str, tail: str
    ) -> Generator[tuple[str, os.stat_result], None, None]:
        with os.scandir(dfd) as it:
            entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        for name, is_dir in entries:
            if not name.startswith(tail):
                continue
            if is_temp_name(name):
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # published or removed since the scan
                if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                    yield base + name, st
            elif is_dir and _is_listed(name):
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    continue  # removed or replaced since the scan
                try:
                    yield from self._temps_in(sub, f"{base}{name}/", "")
                finally:
                    os.close(sub)

    def temps(self, prefix: str) -> Generator[tuple[str, os.stat_result], None, None]:
        """The temp files and directories whose own path starts with ``prefix``, lazily.

        Yields ``(path relative to the root, lstat)``: named temp files of
        writes (live or abandoned: only their age tells) and temp directories of
        migrations. Unnamed ``O_TMPFILE`` inodes have no name to find (they
        vanish with their process). Symlinks are never followed. Close the
        generator when stopping early (it holds directory fds).

        Raises
        ------
        OSError
            A directory cannot be read.
        """
        opened = self._open_prefix_dir(prefix)
        if opened is None:
            return
        dfd, base, tail = opened
        try:
            yield from self._temps_in(dfd, base, tail)
        finally:
            os.close(dfd)

    def remove_temp(self, path: str) -> None:
        """Remove the temp file (or migration directory) at ``path``; prune empty dirs.

        Missing is fine (idempotent). A temp directory holds at most a hard link
        of an object that also lives under its real name, so removing it never
        loses an object. No durability ``fsync``: a removal lost in a crash is
        found again by the next :meth:`temps`.

        Raises
        ------
        InvalidInputError
            ``path`` does not end in a temp name, or its directories are not a
            valid key prefix of this tree (``InvalidKeyError``; also when it goes
            through a symlink).
        OSError
            The system refused.
        """
        base, _, name = path.rpartition("/")
        if not is_temp_name(name):
            raise InvalidInputError(f"{path!r} is not the path of a FileStore temp file")
        dirs: list[str] = []
        if base:
            validate_key(base)
            split_key(base)
            dirs = base.split("/")
        try:
            fds = self._open_dirs(path, dirs, create=False, keep=True)
        except (ObjectNotFoundError, FileNotFoundError):
            return  # its directory is gone, and the temp with it
        try:
            dfd = fds[-1]
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    with suppress(FileNotFoundError):
                        os.unlink(_SELF, dir_fd=sub)
                finally:
                    os.close(sub)
                with suppress(FileNotFoundError):
                    os.rmdir(name, dir_fd=dfd)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dfd)
            # Best effort, as after a delete: a killed write may have created the
            # directories it was writing into (never the root).
            for i in range(len(dirs) - 1, -1, -1):
                try:
                    os.rmdir(dirs[i], dir_fd=fds[i])
                except OSError:
                    break
        finally:
            for fd in fds:
                close_quietly(fd)


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
