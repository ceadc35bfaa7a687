"""The Store ABC: one async key space, many backends.

Public methods on :class:`Store` validate their arguments (before any I/O) and
then call one abstract ``_method`` that each adapter implements. Adapters may
assume keys, prefixes, ranges and modes are already valid.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, final

import anyio.lowlevel
import anyio.to_thread
import attrs

from .._keys import validate_key, validate_prefix, validate_range
from .._validate import safe_repr
from ..errors import InvalidInputError, ObjectNotFoundError
from ..types import IfMatch, ObjectInfo, PendingUpload, ProgressCallback, PutMode

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ArrowFilesystem",
    "ProduceJob",
    "Store",
    "check_cutoff",
    "check_mode",
    "is_bytes_like",
]


@final
@attrs.frozen
class ArrowFilesystem:
    """pyarrow's own filesystem over a store's objects (see :meth:`Store.arrow_filesystem`).

    Attributes
    ----------
    filesystem
        A ``pyarrow.fs.FileSystem`` (``LocalFileSystem``, ``S3FileSystem`` …).
    path
        Maps a store key to the path of that object on ``filesystem``.
    """

    filesystem: Any
    path: Callable[[str], str]


DEFAULT_CHUNK_SIZE = 1 << 20
"""Default chunk size for streamed reads (1 MiB)."""


def is_bytes_like(data: object) -> bool:
    """True for ``bytes``, ``bytearray`` and ``memoryview``."""
    return isinstance(data, bytes | bytearray | memoryview)


def check_mode(mode: object) -> PutMode:
    """Validate a put mode.

    Raises
    ------
    InvalidInputError
        ``mode`` is not ``"create"``, ``"overwrite"`` or an :class:`IfMatch`.
    """
    if mode == "create" or mode == "overwrite":
        return mode
    if isinstance(mode, IfMatch):
        if not isinstance(mode.etag, str) or not mode.etag:
            raise InvalidInputError(
                f"IfMatch needs a non-empty etag string, got {safe_repr(mode.etag)}"
            )
        return mode
    raise InvalidInputError(
        f"mode must be 'create', 'overwrite' or aiolode.IfMatch(etag), not {safe_repr(mode)}"
    )


def check_cutoff(older_than: object) -> datetime:
    """Validate the cutoff of :meth:`Store.abandoned_uploads`; return it in UTC.

    Raises
    ------
    InvalidInputError
        ``older_than`` is not a timezone-aware :class:`~datetime.datetime`, or
        not a moment of years 1 to 9999 in UTC.
    """
    what = "older_than must be a timezone-aware datetime"
    if not isinstance(older_than, datetime):
        raise InvalidInputError(f"{what}, not {safe_repr(older_than)}")
    try:
        offset = older_than.utcoffset()
        utc = None if offset is None else older_than.astimezone(UTC)
    except (OverflowError, TypeError, ValueError):
        # Out of range once in UTC (year 1 east of UTC), or a tzinfo whose
        # utcoffset() is not a timedelta of less than a day.
        raise InvalidInputError(
            f"{what} between years 1 and 9999 in UTC, not {safe_repr(older_than)}"
        ) from None
    if utc is None:
        raise InvalidInputError(f"{what}, not {safe_repr(older_than)}")
    return utc


async def _with_progress(
    chunks: AsyncIterable[bytes], progress: ProgressCallback | None
) -> AsyncGenerator[bytes, None]:
    total = 0
    async with aclosing(_as_aiter(chunks)) as it:
        async for chunk in it:
            if not is_bytes_like(chunk):
                raise InvalidInputError(
                    f"streamed data must yield bytes-like chunks, got {type(chunk).__name__}"
                )
            if len(chunk) == 0:
                continue
            total += len(chunk)
            yield chunk
            if progress is not None:
                res = progress(total)
                if inspect.isawaitable(res):
                    await res


async def _as_aiter(chunks: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    async for c in chunks:
        yield c


_T = TypeVar("_T")


class ProduceJob(Generic[_T]):
    """A worker-thread job: ``send(produce())``, for :meth:`Store._put_produced`.

    ``produce`` waits in a box the job empties (an idle worker thread keeps its
    last job, which must not pin the caller's records and bytes). What
    ``produce`` raises is kept apart and re-raised, unchanged, by
    :meth:`outcome` on the loop, outside whatever error mapping the store puts
    around the thread call; nothing is sent then.
    """

    __slots__ = ("_box", "_error", "_send")

    def __init__(self, produce: Callable[[], bytes], send: Callable[[bytes], _T]) -> None:
        self._box = [produce]
        self._send = send
        self._error: BaseException | None = None

    def __call__(self) -> _T | None:
        try:
            body = self._box.pop()()
        except BaseException as exc:
            self._error = exc
            return None
        return self._send(body)

    def outcome(self, out: _T | None) -> _T:
        """What ``send`` returned, given the job's return value.

        Raises
        ------
        BaseException
            Whatever ``produce`` raised.
        """
        error, self._error = self._error, None  # the thread may keep the job
        if error is not None:
            raise error
        assert out is not None
        return out


class Store(abc.ABC):
    """An async key space of immutable-by-default objects.

    Every store is an async context manager; ``async with store:`` acquires its
    resources (clients, thread limiters) and releases them on exit. Keys are
    ``/``-separated relative paths (see :func:`aiolode._keys.validate_key`).

    Notes for implementers
    ----------------------
    Implement the underscore methods. They receive validated arguments. Map every
    backend error to the :mod:`aiolode.errors` tree, chained ``from`` the original.
    ``_put_bytes``/``_put_stream`` must honour ``mode`` atomically: the existence
    or etag check and the write are one step as seen by every other writer, in
    this process or any other.
    """

    #: Short name used in errors, reprs and benchmarks.
    name: str = "store"

    async def __aenter__(self) -> Self:
        await self.aopen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aopen(self) -> None:
        """Acquire the store's resources. Called by ``async with``; idempotent."""
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Release the store's resources. Called by ``async with``; idempotent."""
        await anyio.lowlevel.checkpoint()

    # ---------------------------------------------------------------- capabilities
    # Optional capabilities are methods with a conservative default, so every
    # store (and every wrapper) answers them without isinstance checks on
    # concrete classes or reads of private attributes.

    async def arrow_filesystem(self) -> ArrowFilesystem | None:
        """pyarrow's native filesystem reading this store's objects, if it has one.

        ``None`` (the default) when pyarrow cannot read the objects directly;
        readers then go through the store. Wrappers return ``None`` unless they
        change nothing about the bytes (a direct read would bypass them).

        Cost: no store calls (credentials may be resolved in a worker thread).

        Raises
        ------
        MissingDependencyError
            pyarrow is not installed.
        """
        await anyio.lowlevel.checkpoint()
        return None

    @property
    def objects_in_memory(self) -> bool:
        """Whether whole-object ``get`` calls are memory copies (no I/O at all).

        Readers use it to prefer eager whole-object reads over lazy range reads.
        Default ``False``; :class:`~aiolode.MemoryStore` says ``True`` and
        wrappers forward their inner store's answer.
        """
        return False

    @property
    def stamp_resolution(self) -> timedelta:
        """How coarse :attr:`ObjectInfo.last_modified` is: an object stamped ``t``
        was stored before ``t + stamp_resolution``.

        Garbage collection deletes an unreferenced object only when its stamp
        plus this is older than its fence. Default one second (S3 listings
        report whole seconds); :class:`~aiolode.MemoryStore` and
        :class:`~aiolode.FileStore` say 0, GCS one millisecond; wrappers forward
        their inner store's answer.
        """
        return timedelta(seconds=1)

    # ------------------------------------------------------------- pending uploads
    def abandoned_uploads(
        self, prefix: str = "", *, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        """Iterate over the unfinished uploads under ``prefix`` started before ``older_than``.

        What a write killed mid-flight leaves behind, invisible to :meth:`list`
        and :meth:`get` but still stored (and, on S3, billed): S3 multipart
        uploads never completed nor aborted; FileStore's named temp files. A put
        that fails or is cancelled cleans up after itself, so in a healthy
        system this finds nothing. Remove what it finds with :meth:`abort_upload`.

        **The caller chooses what is safe.** An upload still being written looks
        exactly like an abandoned one; only its age tells them apart. Pass an
        ``older_than`` earlier than the start of every write that may still be
        running (``now - grace``, with a grace longer than any write takes):
        aborting a live upload makes its put fail
        (:class:`~aiolode.StaleWriteError`), never publishes a partial object.

        ``prefix`` is a key prefix, as for :meth:`list`: an S3 upload is under it
        when its key is; a FileStore temp file when its own path is (so
        ``"datasets/d1/"`` finds the temp files of writes to keys under
        ``datasets/d1/``). Order is the backend's (S3: by key; SeaweedFS: by
        upload id). Stores with nothing of the kind yield nothing:
        :class:`~aiolode.MemoryStore` (a put is one step) and
        :class:`~aiolode.GCSStore` (resumable upload sessions cannot be listed;
        GCS discards them a week after they start).

        Cost: S3: one ListMultipartUploads per ``page_size`` uploads under the
        prefix (1,000 by default), whatever the number of objects; FileStore:
        a walk of every directory under the prefix in worker threads (one hop
        per ``page_size`` temp files found). Nothing otherwise. See
        ``docs/store.md``.

        Parameters
        ----------
        prefix
            Key prefix to look under (``""``: the whole store).
        older_than
            Only uploads started strictly before this (timezone-aware) moment.

        Raises
        ------
        InvalidKeyError
            The prefix is malformed (raised at once).
        InvalidInputError
            ``older_than`` is not a timezone-aware datetime (raised at once).
        UnsupportedOperationError
            The backend cannot list pending uploads (an S3-compatible server
            without ListMultipartUploads); raised on first iteration.
        StorageError
            The backend failed.
        """
        validate_prefix(prefix)
        cutoff = check_cutoff(older_than)
        return self._abandoned_uploads(prefix, cutoff)

    async def abort_upload(self, upload: PendingUpload) -> None:
        """Discard a pending upload found by :meth:`abandoned_uploads`, and its bytes.

        Idempotent: an upload that is no longer pending (aborted, completed, or
        removed by a bucket lifecycle rule) is not an error. Never touches an
        object: S3 AbortMultipartUpload; FileStore unlinks the temp file (then
        prunes directories left empty).

        Cost: one backend call.

        Raises
        ------
        InvalidInputError
            ``upload`` is not a :class:`~aiolode.PendingUpload`, its ``key`` is
            not a valid key (:class:`~aiolode.InvalidKeyError`) or its
            ``upload_id`` not a non-empty str, or it is not one this kind of
            store produces (FileStore checks the temp file's name).
        StorageError
            The backend failed.
        """
        if not isinstance(upload, PendingUpload):
            raise InvalidInputError(
                f"upload must be an aiolode.PendingUpload, not {type(upload).__name__}"
            )
        # A PendingUpload is a plain value anyone can build: what reaches the
        # backend (a path to unlink, an S3 key) is checked like any other key.
        validate_key(upload.key)
        if not isinstance(upload.upload_id, str) or not upload.upload_id:
            raise InvalidInputError(
                f"upload.upload_id must be a non-empty str, not {safe_repr(upload.upload_id)}",
                key=upload.key,
            )
        await self._abort_upload(upload)

    # ------------------------------------------------------------------ public API
    async def put(
        self,
        key: str,
        data: bytes | bytearray | memoryview | AsyncIterable[bytes],
        *,
        mode: PutMode = "create",
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Write an object and return its new :class:`ObjectInfo`.

        ``data`` is bytes-like (written in one request) or an async iterable of
        bytes chunks (streamed in bounded memory). A streamed put that fails or
        is cancelled leaves no visible object.

        Cost: one backend write for bytes-like data; for streams, one write per
        part on S3 (multipart) or one spooled temp file on the filesystem.

        Parameters
        ----------
        key
            Destination key.
        data
            The content.
        mode
            ``"create"`` (default), ``"overwrite"`` or :class:`~aiolode.IfMatch`.
        progress
            For streamed data: called (sync or async) with the number of bytes
            consumed so far, after each chunk.

        Raises
        ------
        InvalidKeyError
            The key is malformed.
        InvalidInputError
            ``data`` or ``mode`` has the wrong type.
        ObjectExistsError
            ``mode="create"`` and the key exists.
        PreconditionFailedError
            ``mode=IfMatch(etag)`` and the object is missing or has another etag.
        StorageError
            The backend failed (``TransientStorageError`` if retrying may help).
        """
        validate_key(key)
        mode = check_mode(mode)
        if is_bytes_like(data):
            return await self._put_bytes(key, data, mode)  # type: ignore[arg-type]
        if isinstance(data, str):
            raise InvalidInputError("data must be bytes, not str: encode it first", key=key)
        if not isinstance(data, AsyncIterable):
            raise InvalidInputError(
                f"data must be bytes-like or an async iterable of bytes, not {type(data).__name__}",
                key=key,
            )
        async with aclosing(_with_progress(data, progress)) as chunks:
            return await self._put_stream(key, chunks, mode)

    async def get(self, key: str) -> bytes:
        """Return the whole object.

        Cost: one backend read; memory: the object's size.

        Raises
        ------
        InvalidKeyError
            The key is malformed.
        ObjectNotFoundError
            The key does not exist.
        StorageError
            The backend failed.
        """
        validate_key(key)
        return await self._get(key)

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes starting at ``offset`` with a true range request.

        The result is short when the range runs past the end of the object, and
        ``b""`` when ``offset`` is at or past the end. A zero ``length`` still
        checks that the object exists (one ``head``).

        Raises
        ------
        InvalidKeyError
            The key is malformed.
        InvalidRangeError
            ``offset`` or ``length`` is negative or not an int.
        ObjectNotFoundError
            The key does not exist.
        StorageError
            The backend failed.
        """
        validate_key(key)
        validate_range(offset, length)
        if length == 0:
            await self._head(key)
            return b""
        return await self._get_range(key, offset, length)

    def iter_bytes(
        self, key: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncGenerator[bytes, None]:
        """Stream an object as chunks of at most ``chunk_size`` bytes.

        The object is opened on the first iteration; wrap the iterator in
        :func:`contextlib.aclosing` when you may stop early. Memory: one chunk.

        Raises
        ------
        InvalidKeyError
            The key is malformed (raised at once).
        InvalidInputError
            ``chunk_size`` is not a positive int (raised at once).
        ObjectNotFoundError
            The key does not exist (raised on first iteration).
        StorageError
            The backend failed.
        """
        validate_key(key)
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
            raise InvalidInputError(
                f"chunk_size must be a positive int, not {safe_repr(chunk_size)}"
            )
        return self._iter_bytes(key, chunk_size)

    async def head(self, key: str) -> ObjectInfo:
        """Return the object's size, etag and last-modified time without its data.

        Raises
        ------
        InvalidKeyError
            The key is malformed.
        ObjectNotFoundError
            The key does not exist.
        StorageError
            The backend failed.
        """
        validate_key(key)
        return await self._head(key)

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` exists (one ``head``).

        Raises
        ------
        InvalidKeyError
            The key is malformed.
        StorageError
            The backend failed.
        """
        validate_key(key)
        try:
            await self._head(key)
        except ObjectNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key succeeds (idempotent).

        Raises
        ------
        InvalidKeyError
            The key is malformed.
        StorageError
            The backend failed.
        """
        validate_key(key)
        await self._delete(key)

    def list(self, prefix: str = "") -> AsyncGenerator[ObjectInfo, None]:
        """Iterate over the objects whose key starts with ``prefix``, in key order.

        Pages through the backend: memory stays bounded by one page whatever the
        number of keys. Listing is a cold path; aiolode never lists on a hot one.
        Objects written while the listing runs may or may not appear.

        Raises
        ------
        InvalidKeyError
            The prefix is malformed (raised at once).
        StorageError
            The backend failed.
        """
        validate_prefix(prefix)
        return self._list(prefix)

    def list_dirs(self, prefix: str = "") -> AsyncGenerator[str, None]:
        """Iterate over the distinct "directories" directly under ``prefix``.

        Yields full prefixes ending in ``/`` (S3 ``CommonPrefixes`` with
        delimiter ``/``), in key order, each once. ``prefix`` should be ``""`` or
        end with ``/``. Used by discovery (datasets, partitions): a cold path.

        Raises
        ------
        InvalidKeyError
            The prefix is malformed (raised at once).
        StorageError
            The backend failed.
        """
        validate_prefix(prefix)
        return self._list_dirs(prefix)

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        """Default: derive directories from a full listing.

        Note for implementers: this reads every key under ``prefix``; override
        it with a delimiter listing where the backend has one.
        """
        last: str | None = None
        async with aclosing(self._list(prefix)) as it:
            async for info in it:
                rest = info.key[len(prefix) :]
                seg, sep, _ = rest.partition("/")
                if not sep:
                    continue
                d = f"{prefix}{seg}/"
                if d != last:
                    last = d
                    yield d

    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        """Default: nothing (a store whose writes leave nothing behind).

        Note for implementers: override it if a write killed mid-flight can
        leave bytes behind, and override :meth:`_abort_upload` with it.
        ``older_than`` arrives in UTC.
        """
        await anyio.lowlevel.checkpoint()
        nothing: tuple[PendingUpload, ...] = ()
        for upload in nothing:
            yield upload

    async def _abort_upload(self, upload: PendingUpload) -> None:
        """Default: nothing is pending here, so nothing is left to abort."""
        await anyio.lowlevel.checkpoint()

    # ------------------------------------------------------------ adapter interface
    def _puts_in_threads(self) -> bool:
        """Whether this store's writes run in worker threads, so that
        :meth:`_put_produced` makes and sends the bytes in one of them: then even
        small CPU work before a put (encoding a commit record) is better done
        there than on the loop (one hand-off, a warm thread)."""
        return False

    async def _put_produced(
        self, key: str, produce: Callable[[], bytes], mode: PutMode
    ) -> ObjectInfo:
        """``put(key, produce(), mode=mode)`` with ``produce`` run off the event loop.

        For writers whose bytes come out of CPU work (encoding, compressing,
        hashing). This default runs ``produce`` in a worker thread, then
        :meth:`put` (so wrappers see an ordinary put). A store whose writes run
        in worker threads anyway overrides it to do both in one thread: one
        hand-off between the loop and a thread instead of two.

        The key and mode are checked first, as by :meth:`put`. Exceptions of
        ``produce`` propagate unchanged and nothing is written; the caller keeps
        the bytes ``produce`` made if it needs them again (a retried put).
        """
        validate_key(key)
        mode = check_mode(mode)
        body = await anyio.to_thread.run_sync(produce)
        return await self.put(key, body, mode=mode)

    @abc.abstractmethod
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        """Write ``data`` in one request, honouring ``mode`` atomically."""

    @abc.abstractmethod
    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        """Write a stream in bounded memory; publish only on success."""

    @abc.abstractmethod
    async def _get(self, key: str) -> bytes:
        """Read the whole object."""

    @abc.abstractmethod
    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read ``[offset, offset+length)``, short at EOF; ``length > 0``."""

    @abc.abstractmethod
    def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        """Stream the object (an async generator)."""

    @abc.abstractmethod
    async def _head(self, key: str) -> ObjectInfo:
        """Stat the object."""

    @abc.abstractmethod
    async def _delete(self, key: str) -> None:
        """Delete the object; missing is not an error."""

    @abc.abstractmethod
    def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        """Iterate over objects under ``prefix`` in key order, page by page."""
