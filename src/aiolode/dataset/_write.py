"""Preparing data files: encode, compress, hash (off the event loop), put create-only.

Everything here runs *before* the commit point: a failure or cancellation
leaves no snapshot, and the files written so far are deleted best-effort.
"""

from __future__ import annotations

import itertools
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
from ..codecs import ACCEPTED, Codec, arrow_batches, arrow_table, describe, is_arrow
from ..codecs import is_arrow_batch as _is_table
from ..compression import Compressor
from ..errors import (
    AiolodeError,
    InvalidInputError,
    SchemaViolationError,
    TransientStorageError,
)
from ..layout import Layout
from ..manifest._dataset import ColumnStats, FileRef
from ..manifest._metadata import DEFAULT_MAX_METADATA_BYTES
from ..schema._core import Schema, SchemaMode, merge, unify_schemas
from ..store import Store
from ._serve import CONTENT_TYPE_KEY, blob_metadata, check_content_type

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from anyio.streams.memory import MemoryObjectSendStream

    from ..checksum import Hasher
    from ..codecs import EncodedFile, EncodedTail, StreamEncoder
    from ..compression import CompressStream
    from ..manifest._metadata import Metadata
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
    """What the Dataset passes down: where and how to write files.

    Attributes
    ----------
    schema
        The dataset's recorded schema the records must fit (``None``: the
        first record write, whose records' own types become the schema).
    schema_mode
        How a write may differ from ``schema`` (see :func:`aiolode.schema.merge`):
        ``"strict"`` or ``"add_columns"``.
    """

    store: Store
    dataset_id: str
    layout: Layout
    codec: Codec | None
    compressor: Compressor | None
    checksum: Checksum | None
    timestamp_field: str | None
    retry: Retry
    schema: Schema | None = None
    schema_mode: SchemaMode = "strict"

    def new_key(self, partition: Mapping[str, str]) -> str:
        """A fresh unique data-file key for ``partition``."""
        ext = (self.codec.extension if self.codec else ".bin") + (
            self.compressor.extension if self.compressor else ""
        )
        return self.layout.data_key(self.dataset_id, partition, f"{uuid.uuid4().hex}{ext}")


@attrs.frozen
class Prepared:
    """Files stored and their totals, ready to commit.

    Attributes
    ----------
    schema
        The dataset's schema once this write is committed: ``FileSpec.schema``
        merged with what the files hold (equal to it unless ``add_columns``
        added or widened a column); the records' own schema on a first write;
        ``FileSpec.schema`` unchanged for zero records; ``None`` for raw blobs.
    """

    files: list[FileRef]
    row_count: int | None
    min_timestamp: str | None = None
    max_timestamp: str | None = None
    schema: Schema | None = None


async def put_data(spec: FileSpec, key: str, body: bytes, *, tried: int = 0) -> None:
    """Put of a data file, retrying transient errors (``tried``: attempts that
    failed already, transiently).

    A plain (overwrite) put: data-file keys are fresh uuid4s, so no other
    object can live there, and a retry after a transient error rewrites the
    same bytes. The commit record is the create-only commit point; a
    conditional put here would only make the store look the key up first
    (3-5 % of a 1,000-row JSON Lines commit on SeaweedFS).
    """
    attempt = tried
    while True:
        if attempt:
            await anyio.sleep(spec.retry.delay(attempt))
        attempt += 1
        try:
            await spec.store.put(key, body, mode="overwrite")
            return
        except TransientStorageError:
            if attempt >= spec.retry.attempts:
                raise


async def encode_and_put(
    spec: FileSpec, key: str, partition: dict[str, str], records: Any, written: list[str]
) -> tuple[FileRef, EncodedFile]:
    """Encode ``records`` into one file, put it as ``key`` (see :func:`put_data`)
    and describe it.

    The encoding, the file's reference and the first attempt of the put run in
    one worker thread on stores that can (``Store._put_produced``): one
    hand-off between the loop and a thread instead of two, and CPU work done
    where it is warm (docs/commit-path.md). ``key`` joins ``written`` once its
    put may have landed; a refused batch writes nothing.

    Raises
    ------
    SchemaViolationError
        A record does not fit the codec (nothing was written).
    StorageError
        The put failed (after retrying transient errors).
    """
    made: list[tuple[FileRef, EncodedFile, bytes]] = []

    def produce() -> bytes:
        ef, body, digest = _encode_group(spec, records)
        ref = _file_ref(key, partition, ef, body, digest)
        made.append((ref, ef, body))
        return body

    try:
        await spec.store._put_produced(key, produce, "overwrite")
    except TransientStorageError:
        if not made:
            raise
        written.append(key)
        if spec.retry.attempts <= 1:
            raise
        await put_data(spec, key, made[0][2], tried=1)
    except BaseException:
        if made:
            written.append(key)
        raise
    else:
        written.append(key)
    return made[0][0], made[0][1]


def _file_ref(
    key: str, partition: dict[str, str], ef: EncodedFile, body: bytes, digest: str | None
) -> FileRef:
    return FileRef(
        key=key,
        size=len(body),
        checksum=digest,
        row_count=ef.row_count,
        partition=partition,
        stats=_stats(ef),
    )


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
    if not body:
        # An empty blob is a snapshot without files (reads give b""): no empty
        # object is stored (SeaweedFS, after one, refuses every create-only
        # put for a minute; docs/s3.md).
        return Prepared(files=[], row_count=None)
    key = spec.new_key({})
    await put_data(spec, key, body)
    return Prepared(files=[FileRef(key=key, size=len(body), checksum=digest)], row_count=None)


def _split_arrow(layout: Layout, table: Any) -> list[tuple[dict[str, str], Any]]:
    """Split a table by partition without a Python loop over its rows.

    One partition (the common case) costs a min/max per key and no copy; more
    are found by a stable sort on the keys and the runs in it, so each
    partition's rows keep their order.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = layout.partition_keys
    names = table.schema.names
    for k in keys:
        if k not in names:
            raise SchemaViolationError(f"Arrow data has no partition column {k!r}", field=k)
    if table.num_rows == 0:
        return []
    errors = (pa.ArrowException, TypeError, ValueError)
    for k in keys:
        if table.column(k).null_count:
            raise SchemaViolationError(
                f"partition column {k!r} has {table.column(k).null_count} null value(s); "
                "a partition value must be deterministic text",
                field=k,
            )

    def values_at(t: Any, i: int) -> dict[str, str]:
        rec = {k: t.column(k)[i].as_py() for k in keys}
        return layout.partition_values(rec)

    try:
        # Kernels do not all take view or dictionary types: compare plain ones.
        key_cols = [_plain(table.column(k)) for k in keys]
        single = all(pc.count_distinct(c, mode="all").as_py() == 1 for c in key_cols)
        if single:
            return [(values_at(table, 0), table)]
        key_table: Any = pa.Table.from_arrays(key_cols, names=list(keys))
        order = pc.sort_indices(key_table, sort_keys=[(k, "ascending") for k in keys])
        ordered = _without_views(table).take(order)
        change = None
        for c in key_cols:
            c = c.take(order).combine_chunks()
            diff = pc.not_equal(c.slice(1), c.slice(0, len(c) - 1))
            change = diff if change is None else pc.or_(change, diff)
        assert change is not None
        bounds = [0, *(i + 1 for i in pc.indices_nonzero(change).to_pylist()), ordered.num_rows]
    except errors as exc:
        raise SchemaViolationError(f"partition columns cannot be compared: {exc}") from exc
    groups: dict[tuple[str, ...], list[Any]] = {}
    values: dict[tuple[str, ...], dict[str, str]] = {}
    for a, b in itertools.pairwise(bounds):
        part = ordered.slice(a, b - a)
        pv = values_at(part, 0)
        gk = tuple(pv[k] for k in keys)
        values[gk] = pv
        groups.setdefault(gk, []).append(part)
    return [
        (values[gk], parts[0] if len(parts) == 1 else pa.concat_tables(parts))
        for gk, parts in groups.items()
    ]


def _plain(col: Any) -> Any:
    """A column with view and dictionary types replaced by their plain forms."""
    import pyarrow as pa

    t = col.type
    if pa.types.is_dictionary(t):
        return _plain(col.cast(t.value_type))
    if pa.types.is_string_view(t):
        return col.cast(pa.string())
    if pa.types.is_binary_view(t):
        return col.cast(pa.binary())
    return col


def _without_views(table: Any) -> Any:
    """``table`` with view-typed columns (Polars' strings) cast to plain types,
    which every kernel takes (``take`` does not take views in pyarrow 26)."""
    import pyarrow as pa

    cols = []
    changed = False
    for f, col in zip(table.schema, table.columns, strict=True):
        if "view" in str(f.type):
            plain = Schema.from_arrow(pa.schema([f])).to_arrow().field(0).type
            col = col.cast(plain)
            changed = True
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.schema.names) if changed else table


def _split(layout: Layout, records: Any) -> list[tuple[dict[str, str], Any]]:
    """Group records by partition (blocking: runs in a worker thread).

    Arrow input is materialised here as one table (a stream runs its producer
    now) and split with Arrow kernels; mappings are grouped in one pass.
    """
    if is_arrow(records):
        table = arrow_table(records)
        if not layout.partition_keys:
            return [({}, table)] if table.num_rows else []
        return _split_arrow(layout, table)
    if not layout.partition_keys:
        return [({}, records)] if records else []
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise SchemaViolationError(
                f"record {i} is a {describe(rec)}, not a mapping; write() takes {ACCEPTED}"
            )
        pv = layout.partition_values(rec)
        groups.setdefault(tuple(pv.values()), []).append(rec)
    keys = layout.partition_keys
    return [(dict(zip(keys, g, strict=True)), recs) for g, recs in groups.items()]


def _encode_group(spec: FileSpec, records: Any) -> tuple[EncodedFile, bytes, str | None]:
    assert spec.codec is not None
    ef = spec.codec.encode(
        records,
        timestamp_field=spec.timestamp_field,
        schema=spec.schema,
        schema_mode=spec.schema_mode,
    )
    body, digest = _finish_bytes(spec, ef.data)
    return ef, body, digest


def check_records(records: object) -> Any:
    """Validate a ``write()`` records argument; materialise an iterable of mappings.

    Arrow input (see :mod:`aiolode.codecs._arrowdata`) is returned as it is:
    a stream is read later, in a worker thread, by :func:`prepare_records`.

    Raises
    ------
    InvalidInputError
        Bytes/str, a single mapping, or anything that is neither records nor
        Arrow data; the message names what was given and what is accepted.
    """
    if is_arrow(records):
        return records
    if isinstance(records, str | bytes | bytearray | memoryview):
        raise InvalidInputError(
            f"this dataset has a codec: write() takes {ACCEPTED}, not {describe(records)}"
        )
    if isinstance(records, Mapping):
        raise InvalidInputError(
            "write() takes an iterable of records; wrap one record in a list "
            f"(accepted: {ACCEPTED})"
        )
    if not isinstance(records, Iterable):
        raise InvalidInputError(f"write() takes {ACCEPTED}, not {describe(records)}")
    if type(records) is list or type(records) is tuple:
        return list(records)  # exactly a list or tuple: no __len__ or __iter__ of a caller's
    return [r for r in records]  # noqa: C416 - list() would trust a lying __len__


def combine_schemas(spec: FileSpec, acc: Schema | None, new: Schema | None) -> Schema | None:
    """The schema of a write whose files so far have ``acc``, plus a file of ``new``.

    Raises
    ------
    SchemaViolationError
        Two files of one write hold a column in types that do not join.
    """
    if new is None:
        return acc
    if acc is None:
        return new
    if spec.schema is None:
        # A first write: one type per column across all its files, as within one.
        return unify_schemas(acc, new)
    return merge(acc, new, mode="add_columns")


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
    if spec.layout.partition_keys or is_arrow(records):
        groups = await anyio.to_thread.run_sync(_split, spec.layout, records)
    else:
        # Nothing to split or read: one worker-thread hop (the encoding) is enough.
        groups = [({}, records)] if records else []
    if not groups:
        return Prepared(files=[], row_count=0, schema=spec.schema)
    written: list[str] = []
    streaming = spec.codec.streaming
    schema: list[Schema | None] = [None]

    async def one(group: tuple[dict[str, str], Any]) -> Any:
        partition, recs = group
        if _is_table(recs) and recs.nbytes >= _PIPELINE_BYTES and streaming:
            ref, tail = await _pipelined_arrow(spec, partition, recs, written, schema)
            return ref, tail
        key = spec.new_key(partition)
        if len(groups) == 1:
            # One file (the unpartitioned hot path): its schema is the write's.
            ref, ef = await encode_and_put(spec, key, partition, recs, written)
            schema[0] = ef.schema
            return ref, ef
        ef, body, digest = await anyio.to_thread.run_sync(_encode_group, spec, recs)
        # Checked on the loop, between awaits: before this file is put, it
        # joins the write's other files or the whole write fails.
        schema[0] = combine_schemas(spec, schema[0], ef.schema)
        written.append(key)
        await put_data(spec, key, body)
        return _file_ref(key, partition, ef, body, digest), ef

    try:
        if len(groups) == 1:  # no task group for one file
            results: list[Any] = [await one(groups[0])]
        else:
            results = await bounded_map(one, groups, limit=_PUT_CONCURRENCY)
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
        schema=schema[0] if schema[0] is not None else spec.schema,
    )


#: Arrow data at least this large is encoded and uploaded as a pipeline.
_PIPELINE_BYTES = 32 << 20
#: Rows handed to the streaming encoder per worker-thread call.
_PIPELINE_ROWS = 1 << 20


async def _pipelined_arrow(
    spec: FileSpec,
    partition: dict[str, str],
    table: Any,
    written: list[str],
    schema: list[Schema | None],
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
    schema[0] = combine_schemas(spec, schema[0], tail.schema)
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
        self.size: int = 0

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
        self.spec: FileSpec = spec
        self.partition: dict[str, str] = partition
        self.key: str = spec.new_key(partition)
        self.transform: _Transform = _Transform(spec)
        send, self._recv = anyio.create_memory_object_stream[bytes](4)
        self.send: MemoryObjectSendStream[bytes] = send
        self.done: bool = False

    async def run(self) -> None:
        # The put starts with the first bytes: an empty stream stores nothing
        # (see prepare_blob).
        try:
            first = await self._recv.receive()
        except anyio.EndOfStream:
            self._recv.close()
            self.done = True
            return

        async def chunks() -> AsyncGenerator[bytes, None]:
            yield first
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
    The snapshot's metadata is decided at the commit: :attr:`metadata` (a
    mutable dict), :meth:`set_metadata` and :attr:`content_type` may change it
    until the block exits (e.g. a digest and a sniffed type of what streamed).
    After the ``async with`` block exits cleanly, :attr:`snapshot` is the
    committed snapshot.

    Raises
    ------
    InvalidInputError
        Constructed directly: only ``Dataset.stream_write`` makes one.
    """

    def __init__(
        self,
        upload: _Upload | None,
        progress: ProgressCallback | None,
        metadata: Mapping[str, Any] | None = None,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        *,
        replay: Snapshot | None = None,
    ) -> None:
        if not isinstance(upload, _Upload) and (upload is not None or replay is None):
            raise InvalidInputError(
                "a BlobWriter is handed out by Dataset.stream_write(); it cannot be made directly"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInputError(f"metadata must be a mapping, not {type(metadata).__name__}")
        self._upload = upload
        self._replay = replay
        self._progress = progress
        self._written = 0
        self._closed = False
        self._snapshot: Snapshot | None = None
        self._max_metadata = max_metadata_bytes
        self._metadata: dict[str, Any] = dict(metadata) if metadata is not None else {}

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata the snapshot will be committed with: a mutable ``dict``.

        Add to it or change it at any point before the block exits (a digest,
        the final size…); what it holds when the block exits is validated (as
        ``metadata=`` is) and committed. An invalid value then aborts the write:
        :class:`~aiolode.InvalidInputError`, no snapshot, the upload removed.
        After the commit it is the committed snapshot's metadata (read-only).
        """
        if self._snapshot is not None:
            return self._snapshot.metadata
        return self._metadata

    def set_metadata(self, metadata: Mapping[str, Any] | None) -> None:
        """Replace the metadata to be committed (checked now, and again at commit).

        Raises
        ------
        InvalidInputError
            Not valid metadata (see ``Dataset.write``), too large, an invalid
            ``content_type``, or the stream is already committed.
        """
        if self._closed:
            raise InvalidInputError("this stream writer is closed: its metadata is committed")
        self._metadata = dict(blob_metadata(metadata, None, max_bytes=self._max_metadata))

    @property
    def content_type(self) -> str | None:
        """The content type to record (metadata ``"content_type"``), or ``None``.

        Settable until the block exits, e.g. once the first bytes have been
        sniffed; ``None`` removes it.

        Raises
        ------
        InvalidInputError
            (On assignment) not a media type such as ``"image/png"``.
        """
        value = self.metadata.get(CONTENT_TYPE_KEY)
        return value if isinstance(value, str) else None

    @content_type.setter
    def content_type(self, value: str | None) -> None:
        if self._closed:
            raise InvalidInputError("this stream writer is closed: its metadata is committed")
        if value is None:
            self._metadata.pop(CONTENT_TYPE_KEY, None)
        else:
            self._metadata[CONTENT_TYPE_KEY] = check_content_type(value)

    def _committed_metadata(self) -> Metadata:
        """The metadata to commit, checked (called by ``Dataset.stream_write``).

        Raises
        ------
        InvalidInputError
            It is not valid metadata or is too large.
        """
        return blob_metadata(self._metadata, None, max_bytes=self._max_metadata)

    @property
    def committed_before(self) -> bool:
        """Whether a write with this ``idempotency_key`` was committed before.

        Then nothing is uploaded: :meth:`write` accepts and discards chunks
        (check this first to skip fetching the source), and the block's exit
        makes :attr:`snapshot` the snapshot committed the first time.
        """
        return self._replay is not None

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
        if not chunk or self._upload is None:
            return  # nothing, or a replay of a committed write: nothing to upload
        await self._upload.push(chunk)
        self._written += len(chunk)
        if self._progress is not None:
            import inspect

            res = self._progress(self._written)
            if inspect.isawaitable(res):
                await res


@asynccontextmanager
async def run_blob_stream(
    spec: FileSpec,
    body: Any,
    progress: ProgressCallback | None,
    *,
    metadata: Mapping[str, Any] | None = None,
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
) -> AsyncIterator[BlobWriter]:
    """Context-manager body shared by ``Dataset.stream_write`` (see there).

    Yields the writer; on clean exit the upload is finished and the generator
    then yields nothing more (the caller commits). ``body`` receives the
    prepared files via ``body.prepared``.
    """
    upload = _Upload(spec, {})
    writer = BlobWriter(upload, progress, metadata, max_metadata_bytes)
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
    size = upload.transform.size
    body.prepared = Prepared(
        files=[FileRef(key=upload.key, size=size, checksum=upload.transform.digest())]
        if size
        else [],
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
        self.encoder: StreamEncoder = spec.codec.open_encoder(
            timestamp_field=spec.timestamp_field,
            schema=spec.schema,
            schema_mode=spec.schema_mode,
        )
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
    """The items of any accepted source: mappings, or Arrow tables (one per batch).

    An Arrow stream is read batch by batch in a worker thread (its producer
    may block: a DuckDB query, a file reader), never whole.
    """
    if is_arrow(records):
        batches = arrow_batches(records)
        try:
            while True:
                table = await anyio.to_thread.run_sync(next, batches, None)
                if table is None:
                    return
                yield table
        finally:
            batches.close()
    elif isinstance(records, AsyncIterable):
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
    """Encode a stream of records in bounded memory, one streamed file per open
    partition; the least recently used partition's file is finished when more
    than ``max_open_partitions`` are open (a later record of that partition
    starts a new file).

    ``records`` is an (async) iterable whose items are mappings or Arrow data
    (``pyarrow.Table``/``RecordBatch``), or Arrow input as a whole: a
    ``RecordBatchReader`` or anything with ``__arrow_c_stream__`` (read batch
    by batch), a Table or a list of RecordBatches. Arrow batches are split by
    partition with Arrow kernels and encoded as they are, never as Python rows
    (except by JSONL, which writes rows).

    Memory: about ``batch_size`` records (or one Arrow batch) plus one encoder
    buffer per open partition. Cost: one streamed ``put`` per file.

    Raises
    ------
    InvalidInputError
        ``records`` is not an accepted source.
    SchemaViolationError
        An item is neither a mapping nor Arrow data, or a record does not fit
        (see :class:`FileSpec` ``schema``).
    CodecNotStreamableError
        The codec cannot encode incrementally.
    """
    import anyio.lowlevel

    assert spec.codec is not None
    if not is_arrow(records) and (
        isinstance(records, str | bytes | bytearray | memoryview | Mapping)
        or not isinstance(records, AsyncIterable | Iterable)
    ):
        raise InvalidInputError(
            "stream_write_records() takes an (async) iterable of mappings or Arrow batches, "
            f"or Arrow data ({ACCEPTED}); not {describe(records)}"
        )
    open_files: OrderedDict[tuple[str, ...], _PartitionFile] = OrderedDict()
    finished: list[_PartitionFile] = []
    started: list[_PartitionFile] = []
    keys = spec.layout.partition_keys
    schema: Schema | None = None

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

    async def file_for(tg: anyio.abc.TaskGroup, pv: dict[str, str]) -> _PartitionFile:
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
        return pf

    async def arrow_item(tg: anyio.abc.TaskGroup, item: Any) -> None:
        table = item if _is_table(item) else await anyio.to_thread.run_sync(arrow_table, item)
        if keys:
            parts = await anyio.to_thread.run_sync(_split_arrow, spec.layout, table)
        else:
            parts = [({}, table)] if table.num_rows else []
        for pv, part in parts:
            pf = await file_for(tg, pv)
            if pf.buffer:  # records before this batch stay before it
                await flush(pf)
            for out in await anyio.to_thread.run_sync(pf.encode_parts, part):
                await pf.upload.send.send(out)

    try:
        async with anyio.create_task_group() as tg:
            async with aclosing(_iterate(records)) as it:
                async for rec in it:
                    if not isinstance(rec, Mapping):
                        if is_arrow(rec):
                            await arrow_item(tg, rec)
                            continue
                        raise SchemaViolationError(
                            f"stream_write_records() got a {describe(rec)} item; items are "
                            "mappings (records) or pyarrow Tables/RecordBatches"
                        )
                    pf = await file_for(tg, spec.layout.partition_values(rec) if keys else {})
                    pf.buffer.append(rec)
                    if len(pf.buffer) >= batch_size:
                        await flush(pf)
            for pf in list(open_files.values()):
                await close(pf)
            open_files.clear()
        for pf in finished:
            assert pf.tail is not None
            if pf.tail.row_count:
                schema = combine_schemas(spec, schema, pf.tail.schema)
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
        schema=schema if schema is not None else spec.schema,
    )


async def _abort(spec: FileSpec, started: list[_PartitionFile]) -> None:
    for pf in started:
        with suppress(Exception):  # best-effort release of encoder buffers
            pf.encoder.abort()
    await delete_quietly(spec.store, [pf.upload.key for pf in started])
