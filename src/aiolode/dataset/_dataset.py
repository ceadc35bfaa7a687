"""Dataset: a named, append-only, linear history of snapshots."""

from __future__ import annotations

import types
import uuid
from contextlib import aclosing, asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, final

import anyio

from .._retry import Retry
from ..checksum import check_checksum_arg
from ..errors import (
    InvalidInputError,
    NoSnapshotsError,
    SnapshotNotFoundError,
    UnsupportedOperationError,
)
from ..layout import DefaultLayout, Layout, validate_dataset_id
from ..manifest._dataset import check_metadata
from ..store import Store
from ._commit import Committer, PendingSnapshot
from ._log import CommitLog, format_snapshot_id, parse_snapshot_id
from ._partitions import partition_manifest_keys, with_files, write_partition_manifests
from ._read import components, iter_file_records, read_file, read_records, read_table
from ._snapshot import Snapshot
from ._write import (
    BlobWriter,
    FileSpec,
    Prepared,
    check_records,
    delete_quietly,
    prepare_blob,
    prepare_records,
    run_blob_stream,
    stream_records,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping

    from ..codecs import Codec
    from ..compression import Compressor
    from ..manifest._dataset import Manifest
    from ..types import ProgressCallback
    from ..verify import VerifyReport

__all__ = ["Dataset"]


def _check_retry(retry: object) -> Retry:
    if retry is None:
        return Retry()
    if not isinstance(retry, Retry):
        raise InvalidInputError(f"retry must be an aiolode.Retry or None, not {retry!r}")
    return retry


@final
class Dataset:
    """A named, append-only history of immutable snapshots in a store.

    Parameters
    ----------
    id
        Dataset id: 1-200 of ``A-Z a-z 0-9 _ - .``, starting with a letter or digit.
    store
        Where everything lives.
    codec
        ``None`` for raw blobs (``write(bytes)``); :class:`aiolode.JSONL`,
        :class:`aiolode.Parquet` … for records.
    compressor
        ``None``, :class:`aiolode.Gzip` or :class:`aiolode.Zstd`; applied after
        the codec. Refused with codecs that compress internally (Parquet).
    checksum
        ``None`` or a :class:`aiolode.Checksum` (e.g. ``aiolode.SHA256()``):
        recorded per file and verified on every read.
    layout
        :class:`aiolode.DefaultLayout` (default), :class:`aiolode.HiveLayout`,
        :class:`aiolode.FlatLayout` or a custom :class:`aiolode.Layout`.
    retry
        Commit retry policy under contention (:class:`aiolode.Retry`).
    timestamp_field
        Record field whose min/max the manifest records (needs a codec).

    Raises
    ------
    InvalidKeyError
        The id is not a valid dataset id.
    InvalidInputError
        An argument has the wrong type, a compressor is paired with a codec
        that compresses internally, a partitioned layout is used without a
        codec, or ``timestamp_field`` is given without a codec.

    Notes
    -----
    Store calls per method (``docs/cost.md``): a warm ``write`` is the data
    puts + at most 2 (the hint put alongside the data, then the commit record:
    one round trip beyond data); ``latest()`` warm is 1 ``get``, cold 3-4 in 2-3
    round trips; ``snapshot(id)`` 1 (0 when cached); ``read`` 1 per file + the
    snapshot. Partitioned layouts (format v2) add one partition-manifest
    ``put`` per touched partition to a write (concurrent: one more round trip)
    and one ``get`` each to every call returning a snapshot (concurrent), so
    that ``files(where=...)`` reads only matching partitions. Nothing on a hot
    path lists.
    """

    def __init__(
        self,
        id: str,
        store: Store,
        *,
        codec: Codec | None = None,
        compressor: Compressor | None = None,
        checksum: Any = None,
        layout: Layout | None = None,
        retry: Retry | None = None,
        timestamp_field: str | None = None,
    ) -> None:
        from ..codecs import Codec
        from ..compression import Compressor

        self._id = validate_dataset_id(id)
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {store!r}")
        if codec is not None and not isinstance(codec, Codec):
            raise InvalidInputError(f"codec must be None or an aiolode codec, not {codec!r}")
        if compressor is not None and not isinstance(compressor, Compressor):
            raise InvalidInputError(
                f"compressor must be None or an aiolode compressor, not {compressor!r}"
            )
        if codec is not None and compressor is not None and not codec.accepts_outer_compression:
            raise InvalidInputError(
                f"codec {codec.name!r} compresses internally; do not add compressor "
                f"{compressor.name!r} (set the codec's own compression option instead)"
            )
        layout = DefaultLayout() if layout is None else layout
        if not isinstance(layout, Layout):
            raise InvalidInputError(f"layout must be an aiolode Layout, not {layout!r}")
        if layout.partition_keys and codec is None:
            raise InvalidInputError(
                "a partitioned layout splits records by field: it needs a codec (raw blobs have "
                "no fields)"
            )
        if timestamp_field is not None:
            if not isinstance(timestamp_field, str) or not timestamp_field:
                raise InvalidInputError(f"timestamp_field must be a str, not {timestamp_field!r}")
            if codec is None:
                raise InvalidInputError("timestamp_field needs a codec (raw blobs have no fields)")
        self._store = store
        self._codec = codec
        self._compressor = compressor
        self._checksum = check_checksum_arg(checksum)
        self._layout = layout
        self._retry = _check_retry(retry)
        self._timestamp_field = timestamp_field
        self._spec = FileSpec(
            store=store,
            dataset_id=self._id,
            layout=layout,
            codec=codec,
            compressor=compressor,
            checksum=self._checksum,
            timestamp_field=timestamp_field,
            retry=self._retry,
        )
        self._log = CommitLog(store, layout.log_prefix(self._id), self._id)
        self._committer = Committer(
            self._log,
            retry=self._retry,
            partitioned=bool(layout.partition_keys),
            static={
                "codec": codec.name if codec is not None else None,
                "codec_options": codec.options() if codec is not None else {},
                "compressor": compressor.name if compressor is not None else None,
                "compressor_options": compressor.options() if compressor is not None else {},
                "layout": layout.describe(),
            },
        )

    # ---------------------------------------------------------------- properties
    @property
    def id(self) -> str:
        """The dataset id."""
        return self._id

    @property
    def store(self) -> Store:
        """The store."""
        return self._store

    @property
    def layout(self) -> Layout:
        """The layout."""
        return self._layout

    @property
    def codec(self) -> Codec | None:
        """The codec new snapshots are written with (reads follow each manifest)."""
        return self._codec

    def __repr__(self) -> str:
        return (
            f"Dataset({self._id!r}, {self._store!r}, codec={self._codec!r}, "
            f"compressor={self._compressor!r}, layout={self._layout!r})"
        )

    # --------------------------------------------------------------------- write
    async def write(
        self,
        data: Any,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_parent: str | Snapshot | None = None,
    ) -> Snapshot:
        """Write one snapshot and return it.

        Raw datasets take one bytes-like object; with a codec, an iterable of
        mappings (or a ``pyarrow.Table``/``RecordBatch``). A partitioned layout
        writes one file per partition, all in one snapshot. Concurrent calls on
        one Dataset share commit records (group commit); a lost race with
        another process rebases automatically.

        Cost: the data puts (concurrent, one per file; the ``latest`` hint put
        runs alongside them when it lags) then the commit record ``put``: one
        sequential round trip beyond the data when warm. Partitioned layouts
        put one partition manifest per partition (concurrently) between the
        two: two round trips beyond the data. A cold Dataset object
        first reads the log's end: 3-4 ``get`` calls. Memory: the data plus one
        encoded copy (large Arrow tables: about one row group).

        Parameters
        ----------
        data
            The blob or the records.
        metadata
            JSON-serialisable mapping stored in the manifest (``None`` → ``{}``).
        expected_parent
            Commit only if no snapshot since this one touched the same
            partitions (any snapshot, when unpartitioned).

        Raises
        ------
        InvalidInputError
            Wrong data type for the dataset's mode; metadata not JSON.
        SchemaViolationError
            A record does not fit the codec or the layout.
        SnapshotConflictError
            ``expected_parent`` conflicts (``.conflicting`` lists the ids), or
            the retry budget ran out under contention.
        SnapshotNotFoundError
            ``expected_parent`` is not a snapshot of this dataset.
        StorageError
            The store failed.
        """
        meta = check_metadata(metadata)
        parent = self._check_parent(expected_parent)
        if self._codec is None:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise InvalidInputError(
                    "a raw dataset (codec=None) writes one bytes-like object, not "
                    f"{type(data).__name__}; pass codec=aiolode.JSONL() for records"
                )
            prepared = await self._alongside_hint(prepare_blob(self._spec, data))
        else:
            records = check_records(data)
            prepared = await self._alongside_hint(prepare_records(self._spec, records))
        return await self._commit(prepared, meta, parent)

    def _check_parent(self, expected_parent: object) -> str | None:
        if expected_parent is None:
            return None
        if isinstance(expected_parent, Snapshot):
            expected_parent = expected_parent.id
        parse_snapshot_id(expected_parent, dataset_id=self._id)
        return expected_parent  # type: ignore[return-value]

    async def _alongside_hint(self, data_work: Coroutine[Any, Any, Prepared]) -> Prepared:
        """Run the data puts while refreshing the ``latest`` hint, concurrently.

        The hint is moved to the newest record this object knows (committed
        by an earlier write) in parallel with the data puts, so a warm commit
        costs one sequential round trip beyond its data (the record put) and
        the hint lags the log by at most the last commit of this object.
        """
        due = self._log.hint_due()
        if due is None:
            return await data_work
        result: list[Prepared] = []
        error: list[BaseException] = []

        async def data() -> None:
            try:
                result.append(await data_work)
            except BaseException as exc:  # re-raised unchanged after the group
                error.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._log.write_hint, due)
                await data()
        except BaseException:
            # Cancelled while the group finished: the files are not committed.
            if result:
                await delete_quietly(self._store, [f.key for f in result[0].files])
            raise
        if error:
            raise error[0]
        return result[0]

    async def _commit(
        self, prepared: Prepared, metadata: dict[str, Any], expected_parent: str | None
    ) -> Snapshot:
        entry = PendingSnapshot(
            files=prepared.files,
            metadata=metadata,
            row_count=prepared.row_count,
            min_timestamp=prepared.min_timestamp,
            max_timestamp=prepared.max_timestamp,
            expected_parent=expected_parent,
        )
        garbage = [f.key for f in prepared.files]
        try:
            if self._layout.partition_keys and prepared.files:
                # Format v2: one partition manifest per touched partition, so
                # readers filtering by partition read only matching ones. They
                # are stored before the record (the only commit point) and
                # named by a per-write token; unreferenced ones are orphans.
                token = uuid.uuid4().hex
                garbage += partition_manifest_keys(self._layout, self._id, token, prepared.files)
                entry.partition_refs = await write_partition_manifests(
                    self._spec, token, prepared.files
                )
            manifest = await self._committer.submit(entry)
        except BaseException:
            if not entry.outcome_unknown and entry.result is None:
                # Not committed (conflict, cancellation before the commit
                # point, permanent error): the data files and partition
                # manifests are orphans.
                await delete_quietly(self._store, garbage)
            raise
        return Snapshot(manifest)

    async def _loaded(self, manifest: Manifest) -> Snapshot:
        """A Snapshot with its files: partition manifests read concurrently."""
        return Snapshot(await with_files(self._store, manifest))

    @asynccontextmanager
    async def stream_write(
        self,
        metadata: Mapping[str, Any] | None = None,
        *,
        progress: ProgressCallback | None = None,
        expected_parent: str | Snapshot | None = None,
    ) -> AsyncIterator[BlobWriter]:
        """Write one large raw blob in chunks, in bounded memory.

        ::

            async with ds.stream_write({"name": "video.mp4"}) as w:
                async for chunk in source:
                    await w.write(chunk)
            print(w.snapshot.id)

        A clean exit commits (``w.snapshot``); an exception or a cancellation
        in the block aborts: no snapshot, the partial upload is removed.

        Cost: one streamed put (S3: multipart) + the commit (2 calls warm).
        Memory: a few chunks.

        Parameters
        ----------
        metadata
            As for :meth:`write`.
        progress
            Called (sync or async) with the number of bytes written so far.
        expected_parent
            As for :meth:`write`.

        Raises
        ------
        UnsupportedOperationError
            The dataset has a codec (use :meth:`stream_write_records`).
        InvalidInputError, SnapshotConflictError, StorageError
            As for :meth:`write`.
        """
        if self._codec is not None:
            raise UnsupportedOperationError(
                "stream_write() writes one raw blob; this dataset has a codec: use "
                "stream_write_records()",
                dataset_id=self._id,
            )
        meta = check_metadata(metadata)
        parent = self._check_parent(expected_parent)
        holder = types.SimpleNamespace()
        async with run_blob_stream(self._spec, holder, progress) as writer:
            yield writer
        due = self._log.hint_due()
        if due is not None:
            await self._log.write_hint(due)
        writer._snapshot = await self._commit(holder.prepared, meta, parent)

    async def stream_write_records(
        self,
        records: Any,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_parent: str | Snapshot | None = None,
        max_open_partitions: int = 64,
        batch_size: int = 1024,
    ) -> Snapshot:
        """Write an (async or plain) iterable of records as one snapshot, in
        bounded memory.

        Records flow through the codec's streaming encoder (JSONL, Parquet by
        row groups) and a streamed put. Partitioned layouts keep one open file
        per partition; beyond ``max_open_partitions``, the least recently used
        partition's file is finished and a later record of it starts a new file
        (all files belong to the one snapshot).

        Cost: one streamed put per file + the commit. Memory: ``batch_size``
        records and one encoder buffer (about a Parquet row group) per open
        partition.

        Raises
        ------
        UnsupportedOperationError
            Raw dataset (use :meth:`stream_write`).
        CodecNotStreamableError
            The codec cannot encode incrementally.
        InvalidInputError
            Bad arguments; metadata not JSON.
        SchemaViolationError
            A record does not fit (nothing is committed).
        SnapshotConflictError, StorageError
            As for :meth:`write`.
        """
        if self._codec is None:
            raise UnsupportedOperationError(
                "stream_write_records() needs a codec; use stream_write() for raw blobs",
                dataset_id=self._id,
            )
        for name, v in (("max_open_partitions", max_open_partitions), ("batch_size", batch_size)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidInputError(f"{name} must be an int >= 1, not {v!r}")
        if not self._codec.streaming:
            from ..errors import CodecNotStreamableError

            raise CodecNotStreamableError(
                f"codec {self._codec.name!r} cannot encode incrementally", dataset_id=self._id
            )
        meta = check_metadata(metadata)
        parent = self._check_parent(expected_parent)
        prepared = await self._alongside_hint(
            stream_records(
                self._spec, records, max_open_partitions=max_open_partitions, batch_size=batch_size
            )
        )
        return await self._commit(prepared, meta, parent)

    # ---------------------------------------------------------------- snapshots
    async def latest(self) -> Snapshot:
        """The newest snapshot.

        Cost: warm (this object has seen the log) one ``get`` probing the next
        record; cold 3-4 ``get`` calls in 2-3 round trips (the ``latest`` hint,
        then the record it names and the next one concurrently), whatever the
        history length. Each record committed since adds one ``get``. A
        partitioned snapshot adds one ``get`` per partition it touched (its
        partition manifests, concurrently: one round trip).

        Raises
        ------
        NoSnapshotsError
            The dataset has no snapshot.
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        head = await self._log.refresh()
        if head is None:
            raise NoSnapshotsError(f"dataset {self._id!r} has no snapshots", dataset_id=self._id)
        return await self._loaded(head.snapshots[-1])

    async def snapshot(self, snapshot_id: str) -> Snapshot:
        """The snapshot with this id.

        Cost: one ``get`` of its commit record (0 if cached: records are
        immutable) + one ``get`` per partition manifest of a partitioned
        snapshot (concurrent).

        Raises
        ------
        SnapshotNotFoundError
            No such snapshot.
        InvalidInputError
            ``snapshot_id`` is not a str.
        """
        seq, idx = parse_snapshot_id(snapshot_id, dataset_id=self._id)
        rec = await self._log.require(seq, snapshot_id)
        if idx >= len(rec.snapshots):
            raise SnapshotNotFoundError(
                f"dataset {self._id!r} has no snapshot {snapshot_id!r}",
                dataset_id=self._id,
                snapshot_id=snapshot_id,
            )
        return await self._loaded(rec.snapshots[idx])

    async def snapshots(self, *, newest_first: bool = False) -> AsyncGenerator[Snapshot, None]:
        """Iterate over every snapshot, oldest first (newest first on request).

        Walks the commit log by sequence number; never lists. Cost: one ``get``
        per commit record (+ ``latest()`` when ``newest_first``). Memory: one
        record at a time (plus a small cache).

        Raises
        ------
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        if newest_first:
            head = await self._log.refresh()
            seq = 0 if head is None else head.seq
            while seq >= 1:
                rec = await self._log.require(seq, format_snapshot_id(seq, 0))
                for m in reversed(rec.snapshots):
                    yield await self._loaded(m)
                seq -= 1
            return
        seq = 1
        while True:
            found = await self._log.fetch(seq)
            if found is None:
                return
            for m in found.snapshots:
                yield await self._loaded(m)
            seq += 1

    async def snapshot_as_of(self, when: datetime) -> Snapshot:
        """The newest snapshot committed at or before ``when``.

        ``created_at`` never decreases along the log, so this is a binary
        search over sequence numbers: ``latest()`` + O(log n) ``get`` calls.

        Raises
        ------
        InvalidInputError
            ``when`` is not a timezone-aware datetime.
        NoSnapshotsError
            The dataset is empty.
        SnapshotNotFoundError
            Every snapshot is newer than ``when``.
        """
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise InvalidInputError("snapshot_as_of() needs a timezone-aware datetime")
        head = await self._log.refresh()
        if head is None:
            raise NoSnapshotsError(f"dataset {self._id!r} has no snapshots", dataset_id=self._id)
        if head.created_at <= when:
            return await self._loaded(head.snapshots[-1])
        lo, hi = 0, head.seq  # record lo is <= when (0: none), record hi is > when
        while hi - lo > 1:
            mid = (lo + hi) // 2
            rec = await self._log.require(mid, format_snapshot_id(mid, 0))
            if rec.created_at <= when:
                lo = mid
            else:
                hi = mid
        if lo == 0:
            raise SnapshotNotFoundError(
                f"dataset {self._id!r} has no snapshot as of {when.isoformat()}",
                dataset_id=self._id,
            )
        rec = await self._log.require(lo, format_snapshot_id(lo, 0))
        return await self._loaded(rec.snapshots[-1])

    # --------------------------------------------------------------------- read
    async def _resolve(self, snapshot: str | Snapshot) -> Snapshot:
        if isinstance(snapshot, Snapshot):
            if snapshot.dataset_id != self._id:
                raise InvalidInputError(
                    f"snapshot {snapshot.id} belongs to dataset {snapshot.dataset_id!r}",
                    dataset_id=self._id,
                )
            if not snapshot.manifest.files_loaded:
                # Built from a reader's get_manifest (summaries only).
                return await self._loaded(snapshot.manifest)
            return snapshot
        return await self.snapshot(snapshot)

    async def read(self, snapshot: str | Snapshot) -> Any:
        """The snapshot's content: ``bytes`` (raw) or ``list[dict]`` (codec).

        The codec and compressor come from the manifest; every file's checksum
        is verified. Cost: ``snapshot(id)`` + one ``get`` per file (concurrent).
        Memory: the whole content.

        Raises
        ------
        SnapshotNotFoundError
            No such snapshot.
        ChecksumMismatchError
            A file's bytes do not match its recorded digest.
        ObjectNotFoundError
            A data file is missing.
        CorruptDataError, FormatError
            Undecodable data or manifest.
        """
        snap = await self._resolve(snapshot)
        codec, compressor = components(snap.manifest)
        if codec is None:
            parts = [await read_file(self._store, f, compressor) for f in snap.files]
            return b"".join(parts)
        return await read_records(self._store, snap.manifest)

    async def read_table(self, snapshot: str | Snapshot) -> Any:
        """The snapshot's records as a ``pyarrow.Table`` (JSONL, Parquet...).

        Cost: as :meth:`read`. Memory: the table plus one file at a time.

        Raises
        ------
        UnsupportedOperationError
            A raw snapshot (no records).
        SnapshotNotFoundError, ChecksumMismatchError, ObjectNotFoundError
            As for :meth:`read`.
        """
        snap = await self._resolve(snapshot)
        if snap.manifest.codec is None:
            raise UnsupportedOperationError(
                f"snapshot {snap.id} is a raw blob; read() returns its bytes",
                dataset_id=self._id,
                snapshot_id=snap.id,
            )
        return await read_table(self._store, snap.manifest)

    async def iter_records(
        self, snapshot: str | Snapshot, *, batch_size: int = 1024
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Iterate over the snapshot's records in bounded memory.

        JSONL files are decoded as their bytes stream in; the checksum is
        verified at the end of each file (a mismatch raises after that file's
        earlier records). Parquet files are spooled (memory up to 8 MiB, then a
        temporary file) while hashed, verified, then decoded row group by row
        group. Wrap in :func:`contextlib.aclosing` if you may stop early.

        Cost: ``snapshot(id)`` + one streamed read per file. Memory: one chunk
        plus one batch (about one row group).

        Raises
        ------
        UnsupportedOperationError
            A raw snapshot.
        SnapshotNotFoundError, ChecksumMismatchError, ObjectNotFoundError
            As for :meth:`read`.
        """
        snap = await self._resolve(snapshot)
        codec, compressor = components(snap.manifest)
        if codec is None:
            raise UnsupportedOperationError(
                f"snapshot {snap.id} is a raw blob; it has no records",
                dataset_id=self._id,
                snapshot_id=snap.id,
            )
        for f in snap.files:
            async with aclosing(
                iter_file_records(self._store, f, codec, compressor, batch_size)
            ) as batches:
                async for batch in batches:
                    for rec in batch:
                        yield rec

    # ------------------------------------------------------------- reader views
    async def files(self, as_of: object = None, where: object = None) -> list[Any]:
        """The committed data files up to ``as_of``, pruned by partition ``where``.

        A thin delegate to :func:`aiolode.reader.files_of` (see
        :meth:`aiolode.DatasetReader.files` for ``as_of`` and ``where``).
        Returns :class:`aiolode.reader.DataFile` objects, oldest snapshot first.

        Cost: the ``latest`` hint read cold (2 ``get``) + 1 ``get`` per commit
        record up to ``as_of`` (16 concurrent) + 1 ``get`` per partition
        manifest **matching** ``where`` (partitioned datasets; the others are
        never read; see ``docs/cost.md``). Memory: the records and the result.

        Raises
        ------
        InvalidInputError
            Bad ``as_of`` or ``where`` (e.g. a key that is not a partition key).
        SnapshotNotFoundError, NoSnapshotsError
            ``as_of`` designates no snapshot.
        FormatError, StorageError
            A manifest is unreadable or the store failed.
        """
        from ..reader import files_of

        return await files_of(self, as_of=as_of, where=where)

    async def verify(self, snapshot_id: str | None = None) -> VerifyReport:
        """Check this dataset's integrity and report what is wrong; repair nothing.

        Every commit record is decoded and the history checked for one linear
        chain; every object referenced by the snapshots up to ``snapshot_id``
        (default: the latest) is checked for existence, recorded size and
        checksum; unreferenced keys under the dataset's prefix (orphans of
        aborted writes) are listed, never deleted. See
        :func:`aiolode.verify_dataset` for the checks and the cost (one listing,
        one get per record and partition manifest, one get or head per file;
        bounded concurrency).

        Returns
        -------
        VerifyReport
            ``.ok`` is true when no problem was found.

        Raises
        ------
        SnapshotNotFoundError
            ``snapshot_id`` does not exist.
        StorageError
            The store failed while listing.
        """
        from ..verify import verify_dataset

        return await verify_dataset(self, snapshot_id)

    async def to_arrow_dataset(
        self, as_of: object = None, where: object = None, **kwargs: Any
    ) -> Any:
        """A ``pyarrow.dataset.Dataset`` over :meth:`files` ``(as_of, where)``.

        A thin delegate to :func:`aiolode.reader.to_arrow_dataset`; keyword
        arguments (``schema``, ``filesystem``, ``verify``) are passed through.

        Cost: :meth:`files`, then building the Arrow dataset (see
        :func:`aiolode.reader.arrow_dataset`: schema inspection reads each
        file's footer or first block unless ``schema`` is given).

        Raises
        ------
        ImportError
            pyarrow is not installed.
        UnsupportedOperationError
            A raw dataset (no records).
        InvalidInputError, SnapshotNotFoundError, NoSnapshotsError
            As for :meth:`files`; unknown keyword arguments.
        ChecksumMismatchError
            ``verify=True`` and a file does not match its manifest.
        """
        from ..reader import to_arrow_dataset

        unknown = set(kwargs) - {"schema", "filesystem", "verify"}
        if unknown:
            raise InvalidInputError(
                f"to_arrow_dataset() got unexpected keyword arguments {sorted(unknown)}",
                dataset_id=self._id,
            )
        return await to_arrow_dataset(self, as_of=as_of, where=where, **kwargs)
