"""FileStore: a durable local-filesystem store with cross-process conditional writes.

This module is the async adapter only: lifecycle, worker-thread hops under one
:class:`anyio.CapacityLimiter` per store, and the translation of ``OSError`` into
the aiolode tree, done once, where a call comes back from its thread
(:meth:`FileStore._io`). What happens on disk (the layout, ``openat`` walking,
publishing, locks, listing order) is the sync core in :mod:`._posix`; the Linux
system calls it uses are in :mod:`._linux`.
"""

from __future__ import annotations

import errno
import os
import stat
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._keys import validate_key
from .._validate import check_int, safe_repr
from ..errors import (
    AiolodeError,
    InvalidInputError,
    InvalidKeyError,
    MissingDependencyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
)
from ..types import PendingUpload
from ._base import ArrowFilesystem, ProduceJob, Store, check_mode
from ._posix import PosixTree, close_quietly, is_temp_name, split_key

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

    from ..types import ObjectInfo, PutMode

__all__ = ["FileStore"]

T = TypeVar("T")

# Streamed puts gather small chunks up to this size before one threaded write.
_SPOOL_BYTES: Final = 1 << 20


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


def _take(it: Iterator[T], n: int) -> list[T]:
    return list(islice(it, n))


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = datetime.resolution


def _ns(when: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (exact, no float)."""
    return (when - _EPOCH) // _ONE_US * 1000


def _local_filesystem() -> Any:
    """pyarrow's ``LocalFileSystem`` (importing pyarrow blocks: run in a thread)."""
    try:
        import pyarrow.fs as pafs
    except ImportError as exc:
        raise MissingDependencyError(
            "reading a FileStore with pyarrow needs the 'pyarrow' package: "
            "pip install 'aiolode[parquet]'",
            package="pyarrow",
            extra="parquet",
        ) from exc
    return pafs.LocalFileSystem()


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

    pyarrow can read the files directly: :meth:`arrow_filesystem` gives its
    ``LocalFileSystem`` and the path of each key.

    A process killed mid-write can leave a named temp file behind (unnamed
    ``O_TMPFILE`` inodes vanish with it): :meth:`abandoned_uploads` finds those
    older than a cutoff, :meth:`abort_upload` removes them.

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
        check_int("page_size", page_size)
        check_int("max_threads", max_threads)
        try:
            path = os.fspath(root)
        except TypeError as exc:
            raise InvalidInputError(f"root must be a path, not {type(root).__name__}") from exc
        if not isinstance(path, str) or not path:
            raise InvalidInputError(f"root must be a non-empty str path, not {safe_repr(root)}")
        self._given_root = path
        self._tree: PosixTree | None = None
        self._page_size = page_size
        self._max_threads = max_threads
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"FileStore({self.root!r})"

    @property
    def root(self) -> str:
        """The root directory (resolved once the store has been opened)."""
        return self._given_root if self._tree is None else self._tree.root

    # ----------------------------------------------------------------- lifecycle
    async def aopen(self) -> None:
        """Resolve and check the root; create the thread limiter. Idempotent.

        Raises
        ------
        InvalidInputError
            The root does not exist or is not a directory.
        StorageError
            The root cannot be examined (``PermissionDeniedError``: not allowed).
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

    async def _ready(self) -> PosixTree:
        """The tree, resolving the root (``realpath``, off the loop) on first use."""
        if self._tree is None:
            given = self._given_root
            self._tree = await self._io(None, f"open root {given!r}", PosixTree.open, given)
        return self._tree

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._max_threads)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def _io(self, key: str | None, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread, mapping OSError to the aiolode tree.

        The one place where system errors become aiolode errors; errors the
        core raises itself (aiolode errors) pass through unchanged.
        """
        try:
            return await self._run(fn, *args)
        except OSError as exc:
            raise _map_oserror(exc, key, what) from exc

    # -------------------------------------------------------------- capabilities
    @property
    def stamp_resolution(self) -> timedelta:
        """Exact: ``mtime`` in nanoseconds, stamped fresh on every write."""
        return timedelta(0)

    async def arrow_filesystem(self) -> ArrowFilesystem:
        """pyarrow's ``LocalFileSystem`` and the absolute path of each key.

        The path function validates the key (:class:`~aiolode.InvalidKeyError`
        for a bad one, so no path leaves the root) and does no I/O. pyarrow
        reads the files itself: it follows symlinks, which this store never
        does, and it cannot see the object of a key that is also the prefix of
        other keys (stored as ``<key>/.aiolode-self``).

        Cost: no store calls; the root is resolved and pyarrow imported in a
        worker thread.

        Raises
        ------
        MissingDependencyError
            pyarrow is not installed.
        InvalidInputError
            The root does not exist or is not a directory.
        """
        tree = await self._ready()
        filesystem = await self._run(_local_filesystem)
        return ArrowFilesystem(filesystem, tree.path)

    # --------------------------------------------------------------------- writes
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        split_key(key)  # FileStore's own key rules, before any I/O
        tree = await self._ready()
        return await self._io(key, "put", tree.put_bytes, key, data, mode)

    def _puts_in_threads(self) -> bool:
        # docstring inherited
        return True

    async def _put_produced(
        self, key: str, produce: Callable[[], bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        validate_key(key)
        mode = check_mode(mode)
        split_key(key)
        tree = await self._ready()
        job = ProduceJob(produce, lambda body: tree.put_bytes(key, body, mode))
        del produce
        return job.outcome(await self._io(key, "put", job))

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        split_key(key)
        tree = await self._ready()
        p = await self._io(key, "streamed put", tree.begin, key, mode)
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
            return await self._io(key, "streamed put", tree.commit, p)
        finally:
            # Runs on failure and cancellation too: nothing may stay behind.
            with anyio.CancelScope(shield=True):
                await self._run(tree.abort, p)

    # ---------------------------------------------------------------------- reads
    async def _get(self, key: str) -> bytes:
        # docstring inherited
        split_key(key)
        tree = await self._ready()
        return await self._io(key, "get", tree.get, key)

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        split_key(key)
        tree = await self._ready()
        return await self._io(key, "get_range", tree.get_range, key, offset, length)

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        split_key(key)
        tree = await self._ready()
        return await self._io(key, "head", tree.head, key)

    def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        # Not an async generator itself, so that FS-specific key errors raise at once.
        split_key(key)
        return self._iter_chunks(key, chunk_size)

    async def _iter_chunks(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        tree = await self._ready()
        fd, _ = await self._io(key, "open", tree.open_read, key)
        try:
            while True:
                chunk = await self._io(key, "read", os.read, fd, chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            # Also when the consumer stops early or is cancelled: never leak the fd.
            with anyio.CancelScope(shield=True):
                await self._run(close_quietly, fd)

    # --------------------------------------------------------------------- delete
    async def _delete(self, key: str) -> None:
        # docstring inherited
        split_key(key)
        tree = await self._ready()
        await self._io(key, "delete", tree.delete, key)

    # -------------------------------------------------------------------- listing
    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        tree = await self._ready()
        # A lazy walk advanced one page per thread hop: memory holds one page plus
        # the entries of the directories on the current path, never the whole tree.
        walk = tree.walk(prefix)
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

    # ------------------------------------------------------------ leftover temps
    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        """Named temp files (and migration temp directories) under the prefix
        whose last change is before ``older_than``.

        A temp file's age is its ctime (its last data or metadata change, never
        earlier than its write's start; a file's ctime cannot be set back), so a
        write still streaming bytes keeps its temp file young. A write that has
        sat idle longer than the cutoff looks abandoned: pass a cutoff older than
        any write still running. Walks every directory under the prefix in
        worker threads, one hop per ``page_size`` temp files found.
        """
        tree = await self._ready()
        cutoff = _ns(older_than)
        walk = tree.temps(prefix)
        try:
            while True:
                page = await self._io(prefix, "abandoned_uploads", _take, walk, self._page_size)
                for path, st in page:
                    changed = max(st.st_ctime_ns, st.st_mtime_ns)
                    if changed >= cutoff:
                        continue
                    yield PendingUpload(
                        key=path,
                        upload_id=path.rpartition("/")[2],
                        # Floored to the microsecond: a cutoff equal to it excludes it.
                        initiated=_EPOCH + timedelta(microseconds=changed // 1000),
                        size=st.st_size if stat.S_ISREG(st.st_mode) else None,
                    )
                if len(page) < self._page_size:
                    return
        finally:
            with anyio.CancelScope(shield=True):
                await self._run(walk.close)

    async def _abort_upload(self, upload: PendingUpload) -> None:
        # docstring inherited: unlink the temp file, prune directories left empty.
        name = upload.key.rpartition("/")[2]
        if upload.upload_id != name or not is_temp_name(name):
            raise InvalidInputError(
                f"{upload.key!r} (upload id {upload.upload_id!r}) is not a FileStore temp file",
                key=upload.key,
            )
        tree = await self._ready()
        await self._io(upload.key, "abort_upload", tree.remove_temp, upload.key)

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited
        # One directory scan (a delimiter listing), not a walk of everything below.
        tree = await self._ready()
        dirs = await self._io(prefix, "list_dirs", tree.list_dirs, prefix)
        for d in dirs:
            yield d
