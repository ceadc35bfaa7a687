"""The serving path: a raw-blob snapshot streamed (verified) or read by byte range,
and the metadata an upload decides at its commit.

``Dataset.open_blob`` and ``Dataset.read_range`` resolve the snapshot and hand
over to this module; ``Dataset.write``/``stream_write``/``stream_write_records``
use its metadata helpers. Nothing here knows about HTTP: the web-facing parts
(``ETag``, ``Range:`` parsing) live in ``examples/upload_server.py``.

Decisions (``docs/serving.md``):

- A blob's **content type** is metadata under :data:`CONTENT_TYPE_KEY`
  (``"content_type"``), not a manifest field: no format change, readers of
  older versions see it, and it is validated (an RFC 9110 media type, at most
  255 characters: it is meant to be sent back as a header) wherever a raw
  snapshot's metadata is checked.
- **Compressed blobs** stream (decompressed) but refuse range reads with
  :class:`~aiolode.UnsupportedOperationError`: a byte offset into a gzip or
  zstd stream is only reachable by decompressing everything before it, which
  would turn a range request into a whole read. Serve ranges from datasets
  with ``compressor=None``.
- A streamed blob **holds back its last chunk** until the recorded size and
  checksum have been verified: a damaged object raises instead of ending,
  and the bytes a consumer received never look like a complete blob.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, final

import anyio
import anyio.to_thread

from .._concurrency import bounded_map
from .._keys import validate_range
from .._validate import safe_repr
from ..checksum import StreamVerifier
from ..errors import CorruptDataError, InvalidInputError, UnsupportedOperationError
from ..manifest._metadata import check_metadata
from ._read import _context, components

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from ..compression import Compressor, DecompressStream
    from ..manifest._dataset import FileRef
    from ..manifest._metadata import Metadata
    from ..store import Store
    from ._snapshot import Snapshot

__all__ = (
    "CONTENT_TYPE_KEY",
    "Blob",
    "blob_metadata",
    "check_chunk_size",
    "check_content_type",
    "deferred_metadata",
    "open_blob",
    "read_range",
    "resolve_metadata",
)

#: The metadata key under which a raw snapshot records its content type.
CONTENT_TYPE_KEY = "content_type"
#: Longest content type accepted (it is sent back verbatim as a header).
MAX_CONTENT_TYPE = 255

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_MEDIA_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*", re.ASCII
)
#: Chunks at least this large are decompressed in a worker thread.
_OFFLOAD = 64 * 1024
#: Concurrent range requests of one read spanning several files.
_RANGE_CONCURRENCY = 8


# ------------------------------------------------------------------ metadata
def check_content_type(value: object) -> str:
    """Validate a content type (``"type/subtype"`` with optional parameters).

    Raises
    ------
    InvalidInputError
        Not a str, longer than 255 characters, or not an RFC 9110 media type
        (which also rules out control characters: it is safe as a header).
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"content_type must be a str, not {type(value).__name__}")
    if len(value) > MAX_CONTENT_TYPE or _MEDIA_TYPE.fullmatch(value) is None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidInputError(
            f"content_type {shown!r} is not a media type such as 'image/png' or "
            f"'text/plain; charset=utf-8' (at most {MAX_CONTENT_TYPE} characters)"
        )
    return value


def blob_metadata(
    metadata: Mapping[str, Any] | None, content_type: str | None, *, max_bytes: int
) -> Metadata:
    """The metadata of a raw snapshot: ``metadata`` plus ``content_type``, checked.

    Cost: CPU only (one encode/decode of the metadata).

    Raises
    ------
    InvalidInputError
        The metadata is invalid or too large (:func:`check_metadata`); the
        content type is invalid; or ``content_type`` contradicts the one the
        metadata already holds.
    """
    meta = check_metadata(metadata, max_bytes=max_bytes)
    if content_type is not None:
        check_content_type(content_type)
        had = meta.get(CONTENT_TYPE_KEY)
        if had is not None and had != content_type:
            raise InvalidInputError(
                f"content_type={content_type!r} contradicts metadata[{CONTENT_TYPE_KEY!r}]="
                f"{had!r}: give one of them"
            )
        meta = check_metadata({**meta, CONTENT_TYPE_KEY: content_type}, max_bytes=max_bytes)
    if CONTENT_TYPE_KEY in meta:
        check_content_type(meta[CONTENT_TYPE_KEY])
    return meta


#: What ``stream_write_records(metadata=...)`` takes: a mapping, or a callable
#: (sync or async, no arguments) evaluated once the records have streamed.
MetadataArg = Mapping[str, Any] | Callable[[], Any] | None


def deferred_metadata(metadata: object, *, max_bytes: int) -> Metadata | None:
    """Check a ``metadata=`` argument now, unless it is a callable (``None`` then:
    it is evaluated at the commit by :func:`resolve_metadata`).

    Raises
    ------
    InvalidInputError
        A mapping that is not valid metadata, or neither a mapping, ``None``
        nor a callable.
    """
    if callable(metadata) and not isinstance(metadata, Mapping):
        return None
    return check_metadata(metadata, max_bytes=max_bytes)


async def resolve_metadata(metadata: object, *, max_bytes: int) -> Metadata:
    """The metadata to commit: a mapping checked, or a callable's result checked.

    A callable is called with no arguments; its result (or, for an async
    callable, what it returns when awaited) must be a mapping or ``None``.
    Whatever the callable raises propagates unchanged (it is the caller's).

    Raises
    ------
    InvalidInputError
        The metadata (or what the callable returned) is not valid metadata.
    """
    if callable(metadata) and not isinstance(metadata, Mapping):
        value = metadata()
        if inspect.isawaitable(value):
            value = await value
        if value is not None and not isinstance(value, Mapping):
            raise InvalidInputError(
                f"the metadata callable must return a mapping or None, not {type(value).__name__}"
            )
        return check_metadata(value, max_bytes=max_bytes)
    return check_metadata(metadata, max_bytes=max_bytes)


# ------------------------------------------------------------------- reading
def check_chunk_size(chunk_size: object) -> int:
    """Validate a ``chunk_size``.

    Raises
    ------
    InvalidInputError
        Not an int >= 1.
    """
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be an int >= 1, not {safe_repr(chunk_size)}")
    return chunk_size


def _raw_only(snap: Snapshot, what: str) -> None:
    if snap.manifest.codec is not None:
        raise UnsupportedOperationError(
            f"snapshot {snap.id} holds {snap.manifest.codec} records, not a raw blob: "
            f"{what} serves raw blobs (read records with iter_records() or read_table())",
            dataset_id=snap.dataset_id,
            snapshot_id=snap.id,
        )


@final
class Blob:
    """A raw-blob snapshot opened for serving; handed out by ``Dataset.open_blob``.

    Everything but the content is known without reading it (from the
    snapshot): :attr:`size`, :attr:`checksum`, :attr:`content_type`. Iterate
    (once) for the content in chunks, or take byte ranges with
    :meth:`read_range` (any number of times) while the block is open::

        async with ds.open_blob(snapshot_id) as blob:
            print(blob.size, blob.content_type)
            async for chunk in blob:
                await send(chunk)

    Iteration checks every file against its recorded size and checksum as it
    streams, and holds its last chunk back until that check has passed: a
    damaged object raises (:class:`~aiolode.CorruptDataError` for a size,
    :class:`~aiolode.ChecksumMismatchError` for a digest) instead of ending.
    A compressed blob is decompressed as it streams.

    Cost: iteration is one streamed read per file (one for blobs written by
    ``write``/``stream_write``), started at the first iteration, not when the
    blob is opened (a ``HEAD`` or a ``304`` costs no data request). Memory:
    about two chunks (plus, for a compressed blob, one chunk's decompressed
    output).

    Raises
    ------
    InvalidInputError
        Constructed directly with something other than a store, a
        :class:`~aiolode.Snapshot` and an int ``chunk_size`` >= 1.
    UnsupportedOperationError
        The snapshot holds records, not a raw blob.
    """

    def __init__(self, store: Store, snapshot: Snapshot, chunk_size: int) -> None:
        # Constructed by open_blob; a direct caller gets the same checks, typed.
        from ..store import Store as _Store
        from ._snapshot import Snapshot as _Snapshot

        if not isinstance(store, _Store):
            raise InvalidInputError(f"store must be a Store, not {safe_repr(store)}")
        if not isinstance(snapshot, _Snapshot):
            raise InvalidInputError(f"snapshot must be a Snapshot, not {safe_repr(snapshot)}")
        _raw_only(snapshot, "Blob()")
        self._store = store
        self._snapshot = snapshot
        self._chunk_size = check_chunk_size(chunk_size)
        self._compressor: Compressor | None = components(snapshot.manifest)[1]
        self._files: tuple[FileRef, ...] = tuple(snapshot.files)
        self._iterated = False
        self._closed = False
        self._gen: AsyncGenerator[bytes, None] | None = None

    def __repr__(self) -> str:
        return (
            f"Blob(snapshot={self._snapshot.id!r}, size={self.size!r}, "
            f"content_type={self.content_type!r})"
        )

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot being served (its metadata, commit time, files)."""
        return self._snapshot

    @property
    def size(self) -> int | None:
        """The content's length in bytes; ``None`` for a compressed blob (whose
        manifest records only the stored size: :attr:`stored_size`)."""
        return self.stored_size if self._compressor is None else None

    @property
    def stored_size(self) -> int:
        """Bytes stored (the compressed size of a compressed blob)."""
        return sum(f.size for f in self._files)

    @property
    def checksum(self) -> str | None:
        """The recorded ``"<algorithm>:<hex>"`` digest of the stored bytes; ``None``
        when none was recorded (or the blob spans several files)."""
        return self._files[0].checksum if len(self._files) == 1 else None

    @property
    def compressor(self) -> str | None:
        """The compressor's name (``"gzip"``, ``"zstd"``) or ``None``."""
        return self._snapshot.manifest.compressor

    @property
    def content_type(self) -> str | None:
        """The content type recorded at commit (metadata ``"content_type"``), or ``None``."""
        value = self._snapshot.metadata.get(CONTENT_TYPE_KEY)
        return value if isinstance(value, str) else None

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The content, in chunks of at most ``chunk_size`` bytes (once per open).

        Raises
        ------
        InvalidInputError
            The blob was already iterated, or its block has exited.
        """
        if self._closed:
            raise InvalidInputError("this blob is closed (its open_blob() block has exited)")
        if self._iterated:
            raise InvalidInputError("a blob is iterated once; open it again to re-read it")
        self._iterated = True
        self._gen = self._chunks()
        return self._gen

    async def read_range(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of the content, by true range requests.

        Short when the range runs past the end; ``b""`` when ``offset`` is at
        or past the end, or ``length`` is 0 (the store contract). Each part
        read is checked against the recorded sizes (a short object raises); no
        checksum can be verified on part of an object.

        Cost: one ``get_range`` per file the range touches (one for a blob
        written by ``write``/``stream_write``); none when the result is empty.
        Memory: the bytes returned.

        Raises
        ------
        InvalidRangeError
            ``offset`` or ``length`` is negative or not an int.
        UnsupportedOperationError
            The blob is compressed (ranges of a compressed stream cannot be
            read without decompressing everything before them).
        InvalidInputError
            The blob's block has exited.
        ObjectNotFoundError
            A data file is missing.
        CorruptDataError
            A data file is shorter than recorded.
        StorageError
            The store failed.
        """
        if self._closed:
            raise InvalidInputError("this blob is closed (its open_blob() block has exited)")
        return await _read_range(self._store, self._snapshot, offset, length)

    async def _aclose(self) -> None:
        self._closed = True
        if self._gen is not None:
            await self._gen.aclose()

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        snap = self._snapshot
        for f in self._files:
            with _context(f.key, snap.dataset_id, snap.id):
                verifier = StreamVerifier.of(f, dataset_id=snap.dataset_id, snapshot_id=snap.id)
                decomp = self._compressor.decompressobj() if self._compressor else None
            held: bytes | None = None
            async with aclosing(
                self._store.iter_bytes(f.key, chunk_size=self._chunk_size)
            ) as raw_chunks:
                while True:
                    with _context(f.key, snap.dataset_id, snap.id):
                        try:
                            raw = await raw_chunks.__anext__()
                        except StopAsyncIteration:
                            break
                        await verifier.aupdate(raw)
                        out = await _decompress(decomp, raw)
                    for piece in self._pieces(out):
                        if held is not None:
                            yield held
                        held = piece
            with _context(f.key, snap.dataset_id, snap.id):
                # Before the last chunk is handed over: a damaged file never
                # ends in what looks like its complete content.
                verifier.check()
                tail = decomp.flush() if decomp is not None else b""
            for piece in self._pieces(tail):
                if held is not None:
                    yield held
                held = piece
            if held is not None:
                yield held

    def _pieces(self, data: bytes) -> list[bytes]:
        n = self._chunk_size
        if len(data) <= n:
            return [data] if data else []
        view = memoryview(data)
        return [bytes(view[i : i + n]) for i in range(0, len(data), n)]


async def _decompress(decomp: DecompressStream | None, raw: bytes) -> bytes:
    if decomp is None:
        return raw
    if len(raw) >= _OFFLOAD:
        out: bytes = await anyio.to_thread.run_sync(decomp.decompress, raw)
        return out
    return decomp.decompress(raw)


@asynccontextmanager
async def open_blob(store: Store, snapshot: Snapshot, *, chunk_size: int) -> AsyncIterator[Blob]:
    """A :class:`Blob` over a resolved snapshot (see ``Dataset.open_blob``).

    Raises
    ------
    UnsupportedOperationError
        The snapshot holds records, not a raw blob.
    ManifestFormatError
        The manifest names an unknown compressor.
    """
    _raw_only(snapshot, "open_blob()")
    blob = Blob(store, snapshot, chunk_size)
    try:
        yield blob
    finally:
        with anyio.CancelScope(shield=True):
            await blob._aclose()


async def read_range(store: Store, snapshot: Snapshot, offset: int, length: int) -> bytes:
    """Bytes of a resolved raw snapshot (see :meth:`Blob.read_range`).

    Raises
    ------
    UnsupportedOperationError
        A record snapshot, or a compressed blob.
    InvalidRangeError, ObjectNotFoundError, CorruptDataError, StorageError
        As for :meth:`Blob.read_range`.
    """
    _raw_only(snapshot, "read_range()")
    return await _read_range(store, snapshot, offset, length)


async def _read_range(store: Store, snapshot: Snapshot, offset: int, length: int) -> bytes:
    validate_range(offset, length)
    m = snapshot.manifest
    if m.compressor is not None:
        raise UnsupportedOperationError(
            f"snapshot {snapshot.id} is compressed ({m.compressor}): a byte range of a "
            "compressed blob cannot be read without decompressing all that precedes it; "
            "stream it with open_blob(), or store blobs to be served by range with "
            "compressor=None",
            dataset_id=snapshot.dataset_id,
            snapshot_id=snapshot.id,
        )
    end = offset + length
    parts: list[tuple[FileRef, int, int]] = []  # (file, offset in file, bytes wanted)
    start = 0
    for f in snapshot.files:
        lo, hi = max(offset, start), min(end, start + f.size)
        if lo < hi:
            parts.append((f, lo - start, hi - lo))
        start += f.size
    if not parts:
        return b""

    async def one(part: tuple[FileRef, int, int]) -> bytes:
        f, at, want = part
        with _context(f.key, snapshot.dataset_id, snapshot.id):
            data = await store.get_range(f.key, at, want)
        if len(data) < want:
            raise CorruptDataError(
                f"data file {f.key!r} is shorter than its recorded {f.size} bytes",
                key=f.key,
                dataset_id=snapshot.dataset_id,
                snapshot_id=snapshot.id,
            )
        return data if len(data) == want else data[:want]

    if len(parts) == 1:
        return await one(parts[0])
    chunks = await bounded_map(one, parts, limit=_RANGE_CONCURRENCY)
    return b"".join(chunks)
