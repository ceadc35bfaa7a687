"""Preparing data files: encode, compress, hash (off the event loop), put create-only.

Everything here runs *before* the commit point: a failure or cancellation
leaves no snapshot, and the files written so far are deleted best-effort.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import attrs

from .._concurrency import bounded_map, collapse_group
from .._retry import Retry
from ..checksum import Checksum
from ..codecs import Codec
from ..compression import Compressor
from ..errors import (
    AiolodeError,
    InvalidInputError,
    ObjectExistsError,
    SchemaViolationError,
    TransientStorageError,
)
from ..layout import Layout
from ..manifest._dataset import ColumnStats, FileRef
from ..store import Store

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from ..checksum import Hasher
    from ..codecs import EncodedFile, EncodedTail, StreamEncoder
    from ..compression import CompressStream
    from ..types import ProgressCallback
    from ._snapshot import Snapshot

__all__ = [
    "FileSpec",
    "Prepared",
    "delete_quietly",
    "prepare_blob",
    "prepare_records",
    "stream_records",
]

#: Chunks at least this large are transformed (compress + hash) in a worker thread.
_OFFLOAD = 64 * 1024
#: Concurrent data-file puts of one write.
_PUT_CONCURRENCY = 16


@attrs.frozen
class FileSpec:
    """What the Dataset passes down: where and how to write files."""

    store: Store
    dataset_id: str
    layout: Layout
    codec: Codec | None
    compressor: Compressor | None
    checksum: Checksum | None
    timestamp_field: str | None
    retry: Retry

    def new_key(self, partition: Mapping[str, str]) -> str:
        """A fresh unique data-file key for ``partition``."""
        ext = (self.codec.extension if self.codec else ".bin") + (
            self.compressor.extension if self.compressor else ""
        )
        return self.layout.data_key(self.dataset_id, partition, f"{uuid.uuid4().hex}{ext}")


@attrs.frozen
class Prepared:
    """Files stored and their totals, ready to commit."""

    files: list[FileRef]
    row_count: int | None
    min_timestamp: str | None = None
    max_timestamp: str | None = None


async def put_data(spec: FileSpec, key: str, body: bytes) -> None:
    """Create-only put of a data file, retrying transient errors.

    Data-file keys are unique (uuid4), so after a transient error an
    ``ObjectExistsError`` on retry means our own earlier put landed.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            await spec.store.put(key, body, mode="create")
            return
        except ObjectExistsError:
            if attempt == 1:
                raise
            return
        except TransientStorageError:
            if attempt >= spec.retry.attempts:
                raise
            await anyio.sleep(spec.retry.delay(attempt))


async def delete_quietly(store: Store, keys: Iterable[str]) -> None:
    """Delete ``keys`` best-effort, shielded from cancellation (cleanup must run)."""
    keys = list(keys)
    if not keys:
        return
    with anyio.CancelScope(shield=True):
        for key in keys:
            with suppress(AiolodeError):
                await store.delete(key)


def _stats(ef: EncodedFile | EncodedTail) -> dict[str, ColumnStats]:
    if not ef.stats:
        return {}
    return {
        name: ColumnStats(min=s.min, max=s.max, null_count=s.null_count)
        for name, s in ef.stats.items()
    }


def _min(a: str | None, b: str | None) -> str | None:
    # Codecs report timestamps as same-format UTC ISO strings: text order is time order.
    if a is None:
        return b
    return a if b is None or a <= b else b


def _max(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _finish_bytes(spec: FileSpec, data: bytes | bytearray | memoryview) -> tuple[bytes, str | None]:
    """Compress and hash (sync: called in a worker thread for large data)."""
    out = spec.compressor.compress(data) if spec.compressor is not None else bytes(data)
    digest = spec.checksum.digest(out) if spec.checksum is not None else None
    return out, digest


async def prepare_blob(spec: FileSpec, data: bytes | bytearray | memoryview) -> Prepared:
    """Store one raw blob as one data file.

    Cost: one ``put``. Memory: the blob (plus its compressed copy).
    """
    if len(data) >= _OFFLOAD:
        body, digest = await anyio.to_thread.run_sync(_finish_bytes, spec, data)
    else:
        body, digest = _finish_bytes(spec, data)
    key = spec.new_key({})
    await put_data(spec, key, body)
    return Prepared(files=[FileRef(key=key, size=len(body), checksum=digest)], row_count=None)


def _is_arrow(records: object) -> bool:
    mod = type(records).__module__
    return mod.startswith("pyarrow") and type(records).__name__ in ("Table", "RecordBatch")


def _split_arrow(layout: Layout, table: Any) -> list[tuple[dict[str, str], Any]]:
    keys = layout.partition_keys
    names = table.schema.names
    for k in keys:
        if k not in names:
            raise SchemaViolationError(f"Arrow data has no partition column {k!r}", field=k)
    cols = [table.column(k).to_pylist() for k in keys]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, vals in enumerate(zip(*cols, strict=True)):
        rec = dict(zip(keys, vals, strict=True))
        pv = layout.partition_values(rec)
        groups.setdefault(tuple(pv[k] for k in keys), []).append(i)
    return [(dict(zip(keys, g, strict=True)), table.take(idx)) for g, idx in groups.items()]


def _split(layout: Layout, records: Any) -> list[tuple[dict[str, str], Any]]:
    if not layout.partition_keys:
        return [({}, records)]
    if _is_arrow(records):
        return _split_arrow(layout, records)
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for rec in records:
        if not isinstance(rec, Mapping):
            raise SchemaViolationError(f"records must be mappings, not {type(rec).__name__}")
        pv = layout.partition_values(rec)
        groups.setdefault(tuple(pv.values()), []).append(rec)
    keys = layout.partition_keys
    return [(dict(zip(keys, g, strict=True)), recs) for g, recs in groups.items()]


def _encode_group(spec: FileSpec, records: Any) -> tuple[EncodedFile, bytes, str | None]:
    assert spec.codec is not None
    ef = spec.codec.encode(records, timestamp_field=spec.timestamp_field)
    body, digest = _finish_bytes(spec, ef.data)
    return ef, body, digest


def check_records(records: object) -> Any:
    """Materialise and validate a ``write()`` records argument.

    Raises
    ------
    InvalidInputError
        Bytes/str, or not an iterable of records / Arrow data.
    """
    if _is_arrow(records):
        return records
    if isinstance(records, str | bytes | bytearray | memoryview):
        raise InvalidInputError(
            "this dataset has a codec: write() takes records (an iterable of mappings), not "
            f"{type(records).__name__}"
        )
    if isinstance(records, Mapping):
        raise InvalidInputError("write() takes an iterable of records; wrap one record in a list")
    if not isinstance(records, Iterable):
        raise InvalidInputError(
            f"write() takes an iterable of mappings, not {type(records).__name__}"
        )
    return list(records)


def _row_count(records: Any) -> int:
    return int(records.num_rows) if _is_arrow(records) else len(records)


async def prepare_records(spec: FileSpec, records: Any) -> Prepared:
    """Split by partition, encode, compress, hash and store one file per partition.

    Encoding runs in worker threads; puts run concurrently (bounded). Zero
    records make zero files. Cost: one ``put`` per partition.

    Raises
    ------
    SchemaViolationError
        A record does not fit the codec or the layout.
    """
    assert spec.codec is not None
    if _row_count(records) == 0:
        return Prepared(files=[], row_count=0)
    groups = await anyio.to_thread.run_sync(_split, spec.layout, records)
    written: list[str] = []
    streaming = spec.codec.streaming

    async def one(group: tuple[dict[str, str], Any]) -> Any:
        partition, recs = group
        if _is_arrow(recs) and recs.nbytes >= _PIPELINE_BYTES and streaming:
            return await _pipelined_arrow(spec, partition, recs, written)
        ef, body, digest = await anyio.to_thread.run_sync(_encode_group, spec, recs)
        key = spec.new_key(partition)
        written.append(key)
        await put_data(spec, key, body)
        ref = FileRef(
            key=key,
            size=len(body),
            checksum=digest,
            row_count=ef.row_count,
            partition=partition,
            stats=_stats(ef),
        )
        return ref, ef

    try:
        results: list[Any] = await bounded_map(one, groups, limit=_PUT_CONCURRENCY)
    except BaseException:
        await delete_quietly(spec.store, written)
        raise
    files = [r[0] for r in results]
    lo: str | None = None
    hi: str | None = None
    for _, ef in results:
        lo, hi = _min(lo, ef.min_timestamp), _max(hi, ef.max_timestamp)
    return Prepared(
        files=files,
        row_count=sum(f.row_count or 0 for f in files),
        min_timestamp=lo,
        max_timestamp=hi,
    )


#: Arrow data at least this large is encoded and uploaded as a pipeline.
_PIPELINE_BYTES = 32 << 20
#: Rows handed to the streaming encoder per worker-thread call.
_PIPELINE_ROWS = 1 << 20


async def _pipelined_arrow(
    spec: FileSpec, partition: dict[str, str], table: Any, written: list[str]
) -> tuple[FileRef, EncodedTail]:
    """Encode a large Arrow table slice by slice while its bytes stream to the store.

    Encoding (a worker thread) and the streamed put overlap, so a large Parquet
    write costs about max(encode, upload) instead of their sum, in memory of
    about one row group plus a few chunks instead of the whole encoded file.
    """
    pf = _PartitionFile(spec, partition)
    written.append(pf.upload.key)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pf.upload.run)
            for start in range(0, table.num_rows, _PIPELINE_ROWS):
                outs = await anyio.to_thread.run_sync(
                    pf.encode_parts, table.slice(start, _PIPELINE_ROWS)
                )
                for out in outs:
                    await pf.upload.send.send(out)
            out = await anyio.to_thread.run_sync(pf.finish)
            if out:
                await pf.upload.send.send(out)
            await pf.upload.send.aclose()
    except BaseExceptionGroup as eg:
        with suppress(Exception):
            pf.encoder.abort()
        raise collapse_group(eg) from eg
    tail = pf.tail
    assert tail is not None
    ref = FileRef(
        key=pf.upload.key,
        size=pf.upload.transform.size,
        checksum=pf.upload.transform.digest(),
        row_count=tail.row_count,
        partition=partition,
        stats=_stats(tail),
    )
    return ref, tail


# --------------------------------------------------------------------- streaming
class _Transform:
    """Compress + hash a byte stream incrementally (sync; may run in a thread)."""

    def __init__(self, spec: FileSpec) -> None:
        self._comp: CompressStream | None = (
            spec.compressor.compressobj() if spec.compressor is not None else None
        )
        self._hasher: Hasher | None = spec.checksum.hasher() if spec.checksum else None
        self._checksum = spec.checksum
        self.size = 0

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        # bytes(b) of a bytes object is b itself: immutable data is passed on
        # without a copy; mutable buffers (a caller may reuse them) are copied.
        out = self._comp.compress(data) if self._comp is not None else bytes(data)
        return self._out(out)

    def flush(self) -> bytes:
        return self._out(self._comp.flush() if self._comp is not None else b"")

    def _out(self, out: bytes) -> bytes:
        if out:
            self.size += len(out)
            if self._hasher is not None:
                self._hasher.update(out)
        return out

    def digest(self) -> str | None:
        if self._hasher is None or self._checksum is None:
            return None
        return self._checksum.format(self._hasher.hexdigest())


class _Upload:
    """One streamed data file: a memory stream feeding a create-only streaming put."""

    def __init__(self, spec: FileSpec, partition: dict[str, str]) -> None:
        self.spec = spec
        self.partition = partition
        self.key = spec.new_key(partition)
        self.transform = _Transform(spec)
        self.send, self._recv = anyio.create_memory_object_stream[bytes](4)
        self.done = False

    async def run(self) -> None:
        async def chunks() -> AsyncGenerator[bytes, None]:
            async with self._recv:
                async for c in self._recv:
                    yield c

        async with aclosing(chunks()) as it:
            await self.spec.store.put(self.key, it, mode="create")
        self.done = True

    async def push(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= _OFFLOAD:
            out = await anyio.to_thread.run_sync(self.transform.feed, data)
        else:
            out = self.transform.feed(data)
        if out:
            await self.send.send(out)

    async def close(self) -> None:
        tail = self.transform.flush()
        if tail:
            await self.send.send(tail)
        await self.send.aclose()


class BlobWriter:
    """Writes one large raw blob in chunks; handed out by ``Dataset.stream_write``.

    ``await w.write(chunk)`` compresses and hashes the chunk (off the loop when
    large) and streams it to the store; memory stays bounded by a few chunks.
    After the ``async with`` block exits cleanly, :attr:`snapshot` is the
    committed snapshot.
    """

    def __init__(self, upload: _Upload, progress: ProgressCallback | None) -> None:
        self._upload = upload
        self._progress = progress
        self._written = 0
        self._closed = False
        self._snapshot: Snapshot | None = None

    @property
    def bytes_written(self) -> int:
        """Bytes accepted so far (before compression)."""
        return self._written

    @property
    def snapshot(self) -> Snapshot:
        """The committed :class:`~aiolode.Snapshot` (after a clean exit).

        Raises
        ------
        InvalidInputError
            The block has not exited cleanly (nothing committed yet).
        """
        if self._snapshot is None:
            raise InvalidInputError("the stream has not been committed (exit the block first)")
        return self._snapshot

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        """Append a chunk.

        Raises
        ------
        InvalidInputError
            ``chunk`` is not bytes-like, or the writer is closed.
        StorageError
            The upload failed (the block then aborts).
        """
        if self._closed:
            raise InvalidInputError("this stream writer is closed")
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInputError(f"write() takes bytes, not {type(chunk).__name__}")
        if not chunk:
            return
        await self._upload.push(chunk)
        self._written += len(chunk)
        if self._progress is not None:
            import inspect

            res = self._progress(self._written)
            if inspect.isawaitable(res):
                await res


@asynccontextmanager
async def run_blob_stream(
    spec: FileSpec, body: Any, progress: ProgressCallback | None
) -> AsyncIterator[BlobWriter]:
    """Context-manager body shared by ``Dataset.stream_write`` (see there).

    Yields the writer; on clean exit the upload is finished and the generator
    then yields nothing more (the caller commits). ``body`` receives the
    prepared files via ``body.prepared``.
    """
    upload = _Upload(spec, {})
    writer = BlobWriter(upload, progress)
    body_exc: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(upload.run)
            try:
                yield writer
            except BaseException as exc:
                body_exc = exc
                tg.cancel_scope.cancel()
            else:
                writer._closed = True
                await upload.close()
    except BaseExceptionGroup as eg:
        await delete_quietly(spec.store, [upload.key])
        raise collapse_group(eg) from eg
    except BaseException:
        await delete_quietly(spec.store, [upload.key])
        raise
    if body_exc is not None:
        await delete_quietly(spec.store, [upload.key])
        raise body_exc
    body.prepared = Prepared(
        files=[
            FileRef(key=upload.key, size=upload.transform.size, checksum=upload.transform.digest())
        ],
        row_count=None,
    )
    body.writer = writer


# --------------------------------------------------------- streamed records
#: Encoder output is regrouped into chunks of about this size: small enough that
#: joining one holds the GIL for only a few ms, large enough that the store
#: writes few, big chunks.
_COALESCE_BYTES = 4 << 20


def _coalesce(parts: list[bytes]) -> list[bytes]:
    """Join consecutive small parts into chunks of at most ~_COALESCE_BYTES."""
    out: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for p in parts:
        if not p:
            continue
        if group and size + len(p) > _COALESCE_BYTES:
            out.append(group[0] if len(group) == 1 else b"".join(group))
            group, size = [], 0
        group.append(p)
        size += len(p)
    if group:
        out.append(group[0] if len(group) == 1 else b"".join(group))
    return out


class _PartitionFile:
    def __init__(self, spec: FileSpec, partition: dict[str, str]) -> None:
        assert spec.codec is not None
        self.upload = _Upload(spec, partition)
        self.encoder: StreamEncoder = spec.codec.open_encoder(timestamp_field=spec.timestamp_field)
        self.buffer: list[Mapping[str, Any]] = []
        self.tail: EncodedTail | None = None

    def encode_batch(self, batch: Any) -> bytes:
        data = self.encoder.write(batch)
        return self.upload.transform.feed(data) if data else b""

    def encode_parts(self, batch: Any) -> list[bytes]:
        """Encode a batch without joining its output (large-table pipeline)."""
        write_parts = getattr(self.encoder, "write_parts", None)
        if write_parts is None:
            out = self.encode_batch(batch)
            return [out] if out else []
        feed = self.upload.transform.feed
        return [o for o in (feed(g) for g in _coalesce(write_parts(batch))) if o]

    def finish(self) -> bytes:
        self.tail = self.encoder.finish()
        out = self.upload.transform.feed(self.tail.data) if self.tail.data else b""
        return out + self.upload.transform.flush()


async def _iterate(records: Any) -> AsyncGenerator[Any, None]:
    if isinstance(records, AsyncIterable):
        async for r in records:
            yield r
    else:
        for i, r in enumerate(records):
            yield r
            if i % 1024 == 1023:
                await anyio.lowlevel.checkpoint()


async def stream_records(
    spec: FileSpec,
    records: Any,
    *,
    max_open_partitions: int,
    batch_size: int,
) -> Prepared:
    """Encode an (async) iterable of records in bounded memory, one streamed file
    per open partition; the least recently used partition's file is finished
    when more than ``max_open_partitions`` are open (a later record of that
    partition starts a new file).

    Memory: about ``batch_size`` records plus one encoder buffer per open
    partition. Cost: one streamed ``put`` per file.

    Raises
    ------
    SchemaViolationError
        A record does not fit.
    CodecNotStreamableError
        The codec cannot encode incrementally.
    """
    import anyio.lowlevel

    assert spec.codec is not None
    if isinstance(records, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        records, AsyncIterable | Iterable
    ):
        raise InvalidInputError(
            "stream_write_records() takes an (async) iterable of mappings, not "
            f"{type(records).__name__}"
        )
    open_files: OrderedDict[tuple[str, ...], _PartitionFile] = OrderedDict()
    finished: list[_PartitionFile] = []
    started: list[_PartitionFile] = []
    keys = spec.layout.partition_keys

    async def flush(pf: _PartitionFile) -> None:
        batch, pf.buffer = pf.buffer, []
        out = await anyio.to_thread.run_sync(pf.encode_batch, batch)
        if out:
            await pf.upload.send.send(out)

    async def close(pf: _PartitionFile) -> None:
        if pf.buffer:
            await flush(pf)
        out = await anyio.to_thread.run_sync(pf.finish)
        if out:
            await pf.upload.send.send(out)
        await pf.upload.send.aclose()
        finished.append(pf)

    try:
        async with anyio.create_task_group() as tg:
            async with aclosing(_iterate(records)) as it:
                async for rec in it:
                    if not isinstance(rec, Mapping):
                        raise SchemaViolationError(
                            f"records must be mappings, not {type(rec).__name__}"
                        )
                    pv = spec.layout.partition_values(rec) if keys else {}
                    gk = tuple(pv.values())
                    pf = open_files.get(gk)
                    if pf is None:
                        pf = _PartitionFile(spec, pv)
                        started.append(pf)
                        tg.start_soon(pf.upload.run)
                        open_files[gk] = pf
                        if len(open_files) > max_open_partitions:
                            _, lru = open_files.popitem(last=False)
                            await close(lru)
                    else:
                        open_files.move_to_end(gk)
                    pf.buffer.append(rec)
                    if len(pf.buffer) >= batch_size:
                        await flush(pf)
            for pf in list(open_files.values()):
                await close(pf)
            open_files.clear()
    except BaseExceptionGroup as eg:
        await _abort(spec, started)
        raise collapse_group(eg) from eg
    except BaseException:
        await _abort(spec, started)
        raise
    files: list[FileRef] = []
    lo: str | None = None
    hi: str | None = None
    for pf in finished:
        tail = pf.tail
        assert tail is not None
        if tail.row_count == 0:
            # An empty stream still produced a (valid, empty) file; drop it.
            await delete_quietly(spec.store, [pf.upload.key])
            continue
        files.append(
            FileRef(
                key=pf.upload.key,
                size=pf.upload.transform.size,
                checksum=pf.upload.transform.digest(),
                row_count=tail.row_count,
                partition=pf.upload.partition,
                stats=_stats(tail),
            )
        )
        lo, hi = _min(lo, tail.min_timestamp), _max(hi, tail.max_timestamp)
    return Prepared(
        files=files,
        row_count=sum(f.row_count or 0 for f in files),
        min_timestamp=lo,
        max_timestamp=hi,
    )


async def _abort(spec: FileSpec, started: list[_PartitionFile]) -> None:
    for pf in started:
        with suppress(Exception):  # best-effort release of encoder buffers
            pf.encoder.abort()
    await delete_quietly(spec.store, [pf.upload.key for pf in started])
