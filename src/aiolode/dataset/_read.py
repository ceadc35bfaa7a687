"""Reading snapshots back, checked against their manifests on every path.

The codec and compressor come from the manifest (never from the Dataset's
arguments). Every data file read is checked against what its manifest records,
with or without a checksum:

- its **size**: the stored object has exactly the recorded number of bytes
  (whole reads compare the length; streamed reads count, and an object that
  grows past its recorded size fails as soon as it does);
- its **row count**: decoding yields exactly the recorded number of records;
- its **checksum**, when one is recorded.

A streamed read (:func:`iter_file_records`) checks all three at the end of the
file, *before* the last batch is handed over: a damaged file never ends in a
batch the caller could take for a complete file. Every error carries the
file's ``key`` and the ``dataset_id``/``snapshot_id`` the caller passes.

What only a checksum detects: bytes changed in place without changing the
file's length or its number of records (a flipped bit inside a value).
"""

from __future__ import annotations

import tempfile
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread

from .._concurrency import bounded_map
from ..checksum import StreamVerifier, verify_object
from ..codecs import codec_from_name
from ..compression import compressor_from_name
from ..errors import AiolodeError, CorruptDataError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator

    from ..codecs import Codec
    from ..compression import Compressor, DecompressStream
    from ..manifest._dataset import FileRef, Manifest
    from ..store import Store

__all__ = [
    "components",
    "iter_file_records",
    "read_blob",
    "read_file",
    "read_records",
    "read_table",
]

_READ_CONCURRENCY = 16
_SPOOL_MAX = 8 << 20


def components(manifest: Manifest) -> tuple[Codec | None, Compressor | None]:
    """The codec and compressor a manifest records.

    Raises
    ------
    ManifestFormatError
        An unknown codec/compressor name or invalid options.
    """
    with _context(None, manifest.dataset_id, manifest.snapshot_id):
        return (
            codec_from_name(manifest.codec, manifest.codec_options),
            compressor_from_name(manifest.compressor, manifest.compressor_options),
        )


@contextmanager
def _context(key: str | None, dataset_id: str | None, snapshot_id: str | None) -> Iterator[None]:
    """Fill in the context an error raised inside does not know yet."""
    try:
        yield
    except AiolodeError as exc:
        if exc.key is None:
            exc.key = key
        if exc.dataset_id is None:
            exc.dataset_id = dataset_id
        if exc.snapshot_id is None:
            exc.snapshot_id = snapshot_id
        raise


def _undecodable(f: FileRef, codec: Codec, exc: BaseException) -> CorruptDataError:
    # A codec maps what it expects of bad bytes to CorruptDataError; anything
    # else escaping a decoder on stored bytes is corrupt data all the same.
    return CorruptDataError(
        f"data file {f.key!r} cannot be decoded as {codec.name}: {type(exc).__name__}: {exc}",
        key=f.key,
        format=codec.name,
    )


def _wrong_rows(f: FileRef, got: int, *, at_least: bool = False) -> CorruptDataError:
    more = "at least " if at_least else ""
    return CorruptDataError(
        f"data file {f.key!r} holds {more}{got} records; its manifest records {f.row_count}",
        key=f.key,
    )


def check_row_count(f: FileRef, got: int) -> None:
    """Raise unless ``got`` records is what the manifest records for ``f``.

    Raises
    ------
    CorruptDataError
        The counts differ (a manifest without a row count checks nothing).
    """
    if f.row_count is not None and got != f.row_count:
        raise _wrong_rows(f, got)


async def read_file(
    store: Store,
    f: FileRef,
    compressor: Compressor | None,
    *,
    dataset_id: str | None = None,
    snapshot_id: str | None = None,
) -> bytes:
    """Get one data file, check its size and checksum, decompress it (off the loop).

    Cost: one ``get``; memory: the file plus its decompressed copy.

    Raises
    ------
    ObjectNotFoundError
        The data file is missing.
    CorruptDataError
        Its size differs from the manifest's, or decompression failed.
    ChecksumMismatchError
        Its bytes do not match the recorded digest.
    ManifestFormatError
        The recorded digest is malformed.
    StorageError
        The store failed.
    """
    with _context(f.key, dataset_id, snapshot_id):
        data = await store.get(f.key)
        await verify_object(
            data,
            key=f.key,
            size=f.size,
            checksum=f.checksum,
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
        )
        if compressor is None:
            return data
        return await anyio.to_thread.run_sync(compressor.decompress, data)


async def read_blob(store: Store, manifest: Manifest) -> bytes:
    """The content of a raw (codec-less) snapshot: its files, checked, in order.

    Cost: one ``get`` per file (concurrent). Memory: the content (plus one
    compressed copy of each file while it is decompressed).

    Raises
    ------
    ObjectNotFoundError, CorruptDataError, ChecksumMismatchError, StorageError
        As for :func:`read_file`.
    ManifestFormatError
        Unknown compressor.
    """
    _, compressor = components(manifest)

    async def one(f: FileRef) -> bytes:
        return await read_file(
            store,
            f,
            compressor,
            dataset_id=manifest.dataset_id,
            snapshot_id=manifest.snapshot_id,
        )

    parts = await bounded_map(one, manifest.files, limit=_READ_CONCURRENCY)
    if len(parts) == 1:
        return parts[0]
    return await anyio.to_thread.run_sync(b"".join, parts)


async def _decode(
    f: FileRef, codec: Codec, data: bytes, fn: Callable[[bytes], Any], count: Callable[[Any], int]
) -> Any:
    def run() -> Any:
        try:
            out = fn(data)
        except AiolodeError:
            raise
        except Exception as exc:
            raise _undecodable(f, codec, exc) from exc
        check_row_count(f, count(out))
        return out

    return await anyio.to_thread.run_sync(run)


async def read_records(store: Store, manifest: Manifest) -> list[dict[str, Any]]:
    """All records of a snapshot, in file order (files fetched concurrently).

    Every file is checked (size, row count, checksum when recorded) before its
    records are returned. Cost: one ``get`` per file. Memory: the records plus
    one encoded copy per file being decoded.

    Raises
    ------
    UnsupportedOperationError
        A raw snapshot (no codec).
    ObjectNotFoundError, CorruptDataError, ChecksumMismatchError, StorageError
        As for :func:`read_file`; ``CorruptDataError`` also when a file decodes
        to another number of records than recorded.
    ManifestFormatError
        Unknown codec/compressor.
    """
    codec, compressor = _record_components(manifest)
    ds, snap = manifest.dataset_id, manifest.snapshot_id

    async def one(f: FileRef) -> list[dict[str, Any]]:
        with _context(f.key, ds, snap):
            data = await read_file(store, f, compressor, dataset_id=ds, snapshot_id=snap)
            rows: list[dict[str, Any]] = await _decode(f, codec, data, codec.decode, len)
            return rows

    out: list[dict[str, Any]] = []
    for part in await bounded_map(one, manifest.files, limit=_READ_CONCURRENCY):
        out.extend(part)
    return out


def _record_components(manifest: Manifest) -> tuple[Codec, Compressor | None]:
    codec, compressor = components(manifest)
    if codec is None:
        from ..errors import UnsupportedOperationError

        raise UnsupportedOperationError(
            f"snapshot {manifest.snapshot_id} is a raw blob; it has no records",
            dataset_id=manifest.dataset_id,
            snapshot_id=manifest.snapshot_id,
        )
    return codec, compressor


async def read_table(store: Store, manifest: Manifest) -> Any:
    """A ``pyarrow.Table`` of the snapshot's records (files checked as in
    :func:`read_records`; their schemas unified).

    Raises
    ------
    UnsupportedOperationError
        A raw snapshot.
    MissingDependencyError
        pyarrow is not installed.
    ObjectNotFoundError, CorruptDataError, ChecksumMismatchError, StorageError
        As for :func:`read_records`; ``CorruptDataError`` also when the files'
        schemas cannot be unified.
    SchemaViolationError
        (JSONL) a file's records do not form a table.
    """
    from ..codecs._deps import require_pyarrow

    codec, compressor = _record_components(manifest)
    require_pyarrow("read_table()")
    import pyarrow as pa

    ds, snap = manifest.dataset_id, manifest.snapshot_id

    async def one(f: FileRef) -> Any:
        with _context(f.key, ds, snap):
            data = await read_file(store, f, compressor, dataset_id=ds, snapshot_id=snap)
            return await _decode(f, codec, data, codec.to_arrow, lambda t: int(t.num_rows))

    tables = await bounded_map(one, manifest.files, limit=_READ_CONCURRENCY)
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]

    def concat() -> Any:
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise CorruptDataError(
                f"the files of snapshot {snap} do not form one table: {exc}",
                dataset_id=ds,
                snapshot_id=snap,
            ) from exc

    return await anyio.to_thread.run_sync(concat)


async def _anext(it: AsyncIterator[bytes]) -> bytes:
    return await it.__anext__()


class _ThreadChunks:
    """A sync iterator, used from a worker thread, that pulls chunks from the
    event loop (``anyio.from_thread.run``), checks and decompresses them there."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        verifier: StreamVerifier,
        decomp: DecompressStream | None,
    ) -> None:
        self._chunks = chunks
        self._verifier = verifier
        self._decomp = decomp
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        while not self._done:
            try:
                raw: bytes = anyio.from_thread.run(_anext, self._chunks)
            except StopAsyncIteration:
                self._done = True
                # Check before the codec sees the end of the stream, so a
                # damaged file never ends in a "complete" decode.
                self._verifier.check()
                if self._decomp is not None:
                    tail = self._decomp.flush()
                    if tail:
                        return tail
                break
            self._verifier.update(raw)
            out = self._decomp.decompress(raw) if self._decomp is not None else raw
            if out:
                return out
        raise StopIteration


def _close(it: object) -> None:
    # Codec iterators are generators; closing releases their buffers now.
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _spool() -> Any:
    return tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)


def _next_batch(f: FileRef, codec: Codec, it: Iterator[list[dict[str, Any]]]) -> Any:
    try:
        return next(it, None)
    except AiolodeError:
        raise
    except Exception as exc:
        raise _undecodable(f, codec, exc) from exc


async def _raw_batches(
    store: Store,
    f: FileRef,
    codec: Codec,
    compressor: Compressor | None,
    batch_size: int,
    verifier: StreamVerifier,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The file's batches, unchecked for row count (the caller holds one back)."""
    if codec.supports_forward_stream:
        decomp = compressor.decompressobj() if compressor is not None else None
        async with aclosing(store.iter_bytes(f.key)) as chunks:
            src = _ThreadChunks(chunks, verifier, decomp)
            gen = codec.iter_decode(src)
            try:
                while True:
                    batch = await anyio.to_thread.run_sync(_next_batch, f, codec, gen)
                    if batch is None:
                        return
                    yield batch
            finally:
                _close(gen)
    spool = await anyio.to_thread.run_sync(_spool)
    try:
        decomp = compressor.decompressobj() if compressor is not None else None

        def put(raw: bytes) -> None:
            verifier.update(raw)
            spool.write(decomp.decompress(raw) if decomp is not None else raw)

        async with aclosing(store.iter_bytes(f.key)) as chunks:
            async for raw in chunks:
                await anyio.to_thread.run_sync(put, raw)
        verifier.check()
        if decomp is not None:
            await anyio.to_thread.run_sync(lambda: spool.write(decomp.flush()))
        await anyio.to_thread.run_sync(spool.seek, 0)
        if codec.supports_random_access:
            it = codec.iter_batches(spool, batch_size)
            try:
                while True:
                    batch = await anyio.to_thread.run_sync(_next_batch, f, codec, it)
                    if batch is None:
                        return
                    yield batch
            finally:
                _close(it)
        else:
            data = await anyio.to_thread.run_sync(spool.read)
            yield await _decode(f, codec, data, codec.decode, lambda _rows: f.row_count or 0)
    finally:
        await anyio.to_thread.run_sync(spool.close)


async def iter_file_records(
    store: Store,
    f: FileRef,
    codec: Codec,
    compressor: Compressor | None,
    batch_size: int,
    *,
    dataset_id: str | None = None,
    snapshot_id: str | None = None,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Decode one data file batch by batch in bounded memory, checked.

    Forward-streamable codecs (JSONL, Arrow IPC) decode the byte stream as it
    arrives; other codecs (Parquet) spool the file to a temporary file (memory
    up to 8 MiB, then disk) while counting and hashing it, check size and
    checksum *before* yielding anything, then decode row group by row group.
    Either way one batch is held back until the next one is decoded, so the
    size, the checksum and the row count are all checked before the **last**
    batch is yielded: a damaged file raises instead of ending early. A file
    longer than recorded, or with more records, raises as soon as it is seen.

    Memory: one chunk plus two batches (about two row groups for Parquet).

    Raises
    ------
    ObjectNotFoundError
        The data file is missing.
    CorruptDataError
        Its size or row count differs from the manifest's, or it cannot be
        decoded or decompressed.
    ChecksumMismatchError
        Its bytes do not match the recorded digest.
    ManifestFormatError
        The recorded digest is malformed.
    StorageError
        The store failed.
    """
    with _context(f.key, dataset_id, snapshot_id):
        verifier = StreamVerifier.of(f, dataset_id=dataset_id, snapshot_id=snapshot_id)
    held: list[dict[str, Any]] | None = None
    seen = 0
    async with aclosing(_raw_batches(store, f, codec, compressor, batch_size, verifier)) as it:
        while True:
            with _context(f.key, dataset_id, snapshot_id):
                try:
                    batch = await it.__anext__()
                except StopAsyncIteration:
                    check_row_count(f, seen)
                    break
                seen += len(batch)
                if f.row_count is not None and seen > f.row_count:
                    raise _wrong_rows(f, seen, at_least=True)
            if held:
                yield held
            held = batch
    if held:
        yield held
