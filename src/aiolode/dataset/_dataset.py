"""Dataset: a named, append-only, linear history of snapshots."""

from __future__ import annotations

import contextlib
import hashlib
import time
import types
import uuid
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, final

import anyio
import attrs

from .._concurrency import reraise
from .._history import CLEANUP_TIMEOUT, delete_quietly, follow, put_unique, retrying
from .._history._log import WRITER_MAX_WARM_AGE
from .._history._owner import HistoryOwner
from .._keys import validate_range
from .._retry import Retry
from .._validate import check_int, check_number, safe_repr
from ..arrow import arrow_dataset
from ..checksum import default_checksum
from ..errors import (
    AiolodeError,
    CodecNotStreamableError,
    ConfigMismatchError,
    DatasetNotFoundError,
    FormatError,
    InvalidInputError,
    NoSnapshotsError,
    NotFoundError,
    ObjectExistsError,
    ObjectNotFoundError,
    SchemaViolationError,
    SnapshotExpiredError,
    SnapshotNotFoundError,
    UnsupportedOperationError,
)
from ..layout import DefaultLayout, FlatLayout, Layout, validate_dataset_id
from ..manifest._converter import decode, encode
from ..manifest._dataset import DatasetDescriptor, KeyMarker
from ..manifest._ids import dataset_snapshot_id, parse_dataset_snapshot_id
from ..manifest._metadata import DEFAULT_MAX_METADATA_BYTES, check_metadata
from ..store import Store
from ..store._base import DEFAULT_CHUNK_SIZE
from . import _lifecycle as lifecycle
from . import _serve as serve
from ._checkpoint import CHECKPOINT_INTERVAL, checkpoint_due, maybe_checkpoint, newest_checkpoint
from ._commit import Committer, Incarnation, ManifestStatics, PendingSnapshot
from ._compact import CompactReport, compact
from ._config import UNSET, DatasetConfig, Options, descriptor_key
from ._files import (
    collect_files,
    compile_where,
    manifest_at,
    resolve_as_of,
    snapshot_position,
)
from ._log import CommitLog, dataset_log
from ._partitions import partition_manifest_keys, with_files, write_partition_manifests
from ._read import components, iter_file_records, read_file, read_records, read_table
from ._snapshot import Snapshot
from ._state import HeadState, dropped_error, expiry_of, schema_of
from ._write import (
    BlobWriter,
    FileSpec,
    Prepared,
    check_records,
    prepare_blob,
    prepare_records,
    run_blob_stream,
    stream_records,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterable, Mapping

    from .._history._reports import DropReport, ExpireReport, GCReport
    from ..checksum import Checksum
    from ..codecs import Codec
    from ..compression import Compressor
    from ..manifest._dataset import Checkpoint, CommitRecord, DataFile, Manifest
    from ..manifest._metadata import Metadata
    from ..schema import Schema, SchemaMode
    from ..types import ProgressCallback
    from ..verify import VerifyReport
    from ._serve import Blob, MetadataArg

__all__ = ["Dataset"]


def _check_retry(retry: object) -> Retry:
    if retry is None:
        return Retry()
    if not isinstance(retry, Retry):
        raise InvalidInputError(f"retry must be an aiolode.Retry or None, not {safe_repr(retry)}")
    return retry


#: How often (seconds) a watch of a dataset that does not exist yet looks for it
#: under the flat layout (the default layout's log is followed meanwhile).
FLAT_RECHECK = 60.0


@final
class Dataset(HistoryOwner):
    """A named, append-only history of immutable snapshots in a store.

    A dataset describes itself: its first write records the configuration
    (codec, compressor, checksum, layout and partition keys, timestamp field) in
    a create-only descriptor, so ``Dataset("events", store)`` with no options
    opens an existing dataset of any built-in layout, for reading and writing,
    and options that contradict what it recorded are refused with
    :class:`~aiolode.ConfigMismatchError` before anything is written. Options
    left out of a *new* dataset take their defaults.

    Parameters
    ----------
    id
        Dataset id: 1-200 of ``A-Z a-z 0-9 _ - .``, starting with a letter or digit.
    store
        Where everything lives.
    codec
        ``None`` for raw blobs (``write(bytes)``); :class:`aiolode.JSONL`,
        :class:`aiolode.Parquet` … for records. Default: as recorded (new: ``None``).
    compressor
        ``None``, :class:`aiolode.Gzip` or :class:`aiolode.Zstd`; applied after
        the codec. Refused with codecs that compress internally (Parquet).
        Default: as recorded (new: ``None``).
    checksum
        ``None`` (sizes and row counts are still checked on every read) or a
        :class:`aiolode.Checksum`: recorded per file and verified on every
        read. Default: as recorded; a new dataset gets :class:`aiolode.XXH3`
        (its cost is within noise on writes: ``docs/checksum-decision.md``).
    layout
        :class:`aiolode.DefaultLayout`, :class:`aiolode.HiveLayout`,
        :class:`aiolode.FlatLayout` or a custom :class:`aiolode.Layout` (which
        must be passed to open the dataset). Default (or ``None``): as recorded
        (new: :class:`~aiolode.DefaultLayout`).
    retry
        Commit retry policy under contention (:class:`aiolode.Retry`).
    timestamp_field
        Record field whose min/max the manifest records (needs a codec).
    max_metadata_bytes
        Largest metadata a snapshot may carry, encoded (default 64 KiB): it is
        copied into the commit record that every reader of the snapshot reads.
    schema_mode
        How a record write may differ from the recorded schema: ``"strict"``
        (the default: the same columns and types; values converted only where
        no information is lost) or ``"add_columns"`` (new nullable columns and
        safe widenings such as int32 -> int64, recorded in the history so
        snapshots before them still read as they were written).

    Raises
    ------
    InvalidKeyError
        The id is not a valid dataset id.
    InvalidInputError
        An argument has the wrong type, a compressor is paired with a codec
        that compresses internally, or ``timestamp_field`` is given with
        ``codec=None``.
    PartitioningNotSupportedError
        A partitioned layout with ``codec=None`` (raw blobs have no fields).

    Notes
    -----
    Store calls per method (``docs/cost.md``): a warm ``write`` is the data
    puts + at most 2 (the hint put alongside the data, then the commit record:
    one round trip beyond data); the first write of a Dataset object reads the
    descriptor once (+1 ``get``; a new dataset +1 ``put``). ``latest()`` warm
    is 1 ``get``, cold 3-4 in 2-3 round trips; ``snapshot(id)`` 1 (0 when
    cached); ``read`` 1 per file + the snapshot. Partitioned layouts (format
    v2+) add one partition-manifest ``put`` per touched partition to a write
    (concurrent: one more round trip) and one ``get`` each to every call
    returning a snapshot (concurrent), so that ``files(where=...)`` reads only
    matching partitions. Nothing on a hot path lists.

    A Dataset object is bound to the event loop that first uses it (its
    commit lock and caches); use one object per loop.
    """

    def __init__(
        self,
        id: str,
        store: Store,
        *,
        codec: Codec | None = UNSET,
        compressor: Compressor | None = UNSET,
        checksum: Checksum | None = UNSET,
        layout: Layout | None = UNSET,
        retry: Retry | None = None,
        timestamp_field: str | None = UNSET,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        schema_mode: SchemaMode = "strict",
    ) -> None:
        self._id = validate_dataset_id(id)
        if layout is None:
            layout = UNSET  # None: as recorded (the default layout for a new dataset)
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {safe_repr(store)}")
        self._given = Options(
            codec=codec,
            compressor=compressor,
            checksum=checksum,
            layout=layout,
            timestamp_field=timestamp_field,
        )
        self._given.check_types()
        self._max_metadata = check_int("max_metadata_bytes", max_metadata_bytes, minimum=2)
        if schema_mode not in ("strict", "add_columns"):
            raise InvalidInputError(
                f"schema_mode must be 'strict' or 'add_columns', not {safe_repr(schema_mode)}"
            )
        self._schema_mode: SchemaMode = schema_mode
        self._schema_from: tuple[str, Schema] | None = None
        # (spec, recorded schema, the spec records are written with): reused while both hold.
        self._last_record_spec: tuple[FileSpec, Schema | None, FileSpec] | None = None
        self._store = store
        self._retry = _check_retry(retry)
        self._layout_given = layout is not UNSET
        self._layout: Layout = layout if self._layout_given else DefaultLayout()
        self._log: CommitLog = dataset_log(store, self._layout, self._id, self._retry)
        # Resolved at the first write (or whatever needs the configuration).
        self._config: DatasetConfig | None = None
        self._spec: FileSpec | None = None
        # The checkpoint whose key index idempotent writes consult (cached).
        self._key_checkpoint: Checkpoint | None = None
        self._committer: Committer | None = None
        self._config_lock: anyio.Lock | None = None
        # The descriptor still to be recorded (a new dataset, or one written
        # before descriptors), put just before the first commit.
        self._new_descriptor: DatasetDescriptor | None = None
        # Whether the dataset's root is known (the layout may be found by name).
        self._located = self._layout_given

    # ---------------------------------------------------------------- properties
    @property
    def layout(self) -> Layout:
        """The layout (given, recorded, or the default until the dataset is found)."""
        return self._config.layout if self._config is not None else self._layout

    @property
    def codec(self) -> Codec | None:
        """The codec new snapshots are written with (reads follow each manifest);
        ``None`` for raw blobs, or before the configuration is known (no write yet
        and no codec given)."""
        if self._config is not None:
            return self._config.codec
        return None if self._given.codec is UNSET else self._given.codec

    def __repr__(self) -> str:
        return f"Dataset({self._id!r}, {self._store!r}, layout={self.layout!r})"

    # ----------------------------------------------------------- configuration
    async def _relocate(self, *, checked: bool = False) -> bool:
        """Called when the assumed root looks empty and no layout was given: look
        for the dataset under the flat layout's root. True if it moved there.

        Cost: at most 2 ``head`` calls, once per object.
        """
        if self._located:
            return False
        self._located = True
        if not checked and await self._store.exists(descriptor_key(self._layout, self._id)):
            return False
        flat = FlatLayout()
        if not await self._store.exists(descriptor_key(flat, self._id)):
            return False
        self._layout = flat
        self._log = dataset_log(self._store, flat, self._id, self._retry)
        return True

    async def _read_descriptor(self) -> DatasetDescriptor | None:
        key = descriptor_key(self._layout, self._id)
        try:
            data = await retrying(self._retry, lambda: self._store.get(key))
        except ObjectNotFoundError:
            return None
        return decode(data, DatasetDescriptor, key=key)

    async def _descriptor_and_head(self) -> tuple[DatasetDescriptor | None, CommitRecord | None]:
        """The descriptor and, concurrently, the end of the log (a cold writer needs
        it before committing anyway): one round trip, one more call."""
        if self._log.warm:
            return await self._read_descriptor(), self._log.head
        found: list[DatasetDescriptor | None] = []
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._log.refresh)
                found.append(await self._read_descriptor())
        except BaseExceptionGroup as eg:
            reraise(eg)
        return found[0], self._log.head

    async def _configure(self) -> DatasetConfig:
        """The configuration to write with: the descriptor's (checked against the
        options given), or — for a new dataset — the options given plus defaults,
        recorded by a create-only descriptor put.

        Raises
        ------
        ConfigMismatchError
            Options contradict what the dataset recorded.
        PartitioningNotSupportedError, InvalidInputError
            The options cannot write.
        FormatError, StorageError
            The descriptor or the log is unreadable, or the store failed.
        """
        if self._config is not None:
            return self._config
        if self._config_lock is None:
            self._config_lock = anyio.Lock()
        async with self._config_lock:
            done = self._resolved()
            if done is not None:
                return done  # another task configured it while we waited
            desc, head = await self._descriptor_and_head()
            if desc is None and await self._relocate(checked=True):
                desc, head = await self._descriptor_and_head()
            self._located = True
            layout = self._layout if self._layout_given else None
            key = descriptor_key(self._layout, self._id)
            if desc is not None:
                cfg = DatasetConfig.from_descriptor(desc, layout, key=key).reconcile(
                    self._given, dataset_id=self._id
                )
                life = Incarnation(desc.incarnation, desc.first_seq)
            else:
                if head is not None and not head.dropped:
                    # Written before descriptors: the newest manifest says what it is.
                    tip = head.last_snapshot_id
                    newest = (
                        await manifest_at(
                            self._log, *parse_dataset_snapshot_id(tip, dataset_id=self._id)
                        )
                        if tip is not None
                        else None
                    )
                    if newest is None:
                        cfg = DatasetConfig.from_options(
                            self._given, default_checksum=default_checksum()
                        )
                    else:
                        cfg = DatasetConfig.from_manifest(newest, layout).reconcile(
                            self._given, dataset_id=self._id, legacy=True
                        )
                else:
                    cfg = DatasetConfig.from_options(
                        self._given, default_checksum=default_checksum()
                    )
                # A new life starts after a dropped one's tombstone.
                first = head.seq + 1 if head is not None and head.dropped else 1
                self._new_descriptor = cfg.descriptor(self._id, first_seq=first)
                life = Incarnation(self._new_descriptor.incarnation, first)
            cfg.check()
            self._install(cfg, life)
            return cfg

    async def _record_descriptor(self) -> None:
        """Create the descriptor of a new (or pre-descriptor) dataset: create-only,
        so of two first writers with different options exactly one wins and the
        other gets :class:`ConfigMismatchError` before committing anything.

        Cost: one ``put`` (and one ``get`` when another writer won), once.

        Raises
        ------
        ConfigMismatchError
            Another writer created the dataset first with other options.
        StorageError
            The store failed.
        """
        if self._new_descriptor is None:
            return
        assert self._config_lock is not None
        async with self._config_lock:
            if self._new_descriptor is not None:
                await self._put_descriptor(self._new_descriptor)

    async def _put_descriptor(self, desc: DatasetDescriptor) -> None:
        cfg = self._config
        assert cfg is not None
        assert self._committer is not None
        key = descriptor_key(cfg.layout, self._id)
        try:
            await put_unique(self._store, key, encode(desc), self._retry)
        except ObjectExistsError:
            found = await self._read_descriptor()
            if found is None:  # created and dropped meanwhile: try again next time
                return
            layout = cfg.layout if self._layout_given else None
            recorded = DatasetConfig.from_descriptor(found, layout, key=key).reconcile(
                self._given, dataset_id=self._id
            )
            # Another writer started this life first: join it.
            self._committer.life = Incarnation(found.incarnation, found.first_seq)
            if recorded.fingerprint() != cfg.fingerprint():
                # Compatible with what we were given, but not what we prepared
                # (e.g. a default we filled in): the data must be written again.
                self._install(recorded, self._committer.life)
                self._new_descriptor = None
                raise ConfigMismatchError(
                    f"dataset {self._id!r} was created concurrently by another writer with "
                    f"{recorded.fingerprint()!r}; this write used {cfg.fingerprint()!r} and "
                    "was not committed: write it again",
                    dataset_id=self._id,
                ) from None
        self._new_descriptor = None

    async def _check_life(self) -> None:
        """A writer that has not read the log for a while re-reads the descriptor
        before committing: if the dataset was dropped (and perhaps created again)
        meanwhile, its write must fail, not resurrect the dropped dataset.

        Cost: nothing for a writer that read the log within the last 5 minutes
        (it builds on a head the drop's tombstone would have superseded);
        otherwise one ``get``.

        Raises
        ------
        DatasetNotFoundError
            The dataset this writer worked for was dropped.
        """
        assert self._committer is not None
        at = self._log.refreshed_at
        if self._new_descriptor is not None or (
            at is not None and time.monotonic() - at < WRITER_MAX_WARM_AGE / 2
        ):
            return
        desc = await self._read_descriptor()
        if desc is None or desc.incarnation != self._committer.life.id:
            raise dropped_error(self._id)

    def _resolved(self) -> DatasetConfig | None:
        return self._config

    def _install(self, cfg: DatasetConfig, life: Incarnation) -> None:
        if self._layout_given is False and cfg.layout.root(self._id) != self._layout.root(self._id):
            self._log = dataset_log(self._store, cfg.layout, self._id, self._retry)
        self._layout = cfg.layout
        self._spec = FileSpec(
            store=self._store,
            dataset_id=self._id,
            layout=cfg.layout,
            codec=cfg.codec,
            compressor=cfg.compressor,
            checksum=cfg.checksum,
            timestamp_field=cfg.timestamp_field,
            retry=self._retry,
        )
        self._committer = Committer(
            self._log,
            partitioned=bool(cfg.layout.partition_keys),
            statics=ManifestStatics(
                codec=cfg.codec.name if cfg.codec is not None else None,
                codec_options=cfg.codec.options() if cfg.codec is not None else {},
                compressor=cfg.compressor.name if cfg.compressor is not None else None,
                compressor_options=cfg.compressor.options() if cfg.compressor is not None else {},
                layout=cfg.layout.describe(),
            ),
            life=life,
        )
        self._config = cfg

    async def exists(self) -> bool:
        """Whether a dataset of this name exists (a descriptor, or a commit log).

        Cost: 1 ``head`` (a dataset with a descriptor); otherwise ``latest()``'s.

        Raises
        ------
        FormatError, StorageError
            The log is unreadable or the store failed.
        """
        if await self._store.exists(descriptor_key(self._layout, self._id)):
            return True
        head = await self._log.refresh()
        if head is not None:
            return not head.dropped
        return await self._relocate()

    async def _state(self, *, fresh: bool = True) -> HeadState:
        """The head (refreshed, or as known when ``fresh`` is false and this object
        is warm) and the expiry state it leads to; finds the dataset's root."""
        head = await self._log.refresh() if fresh or not self._log.warm else self._log.head
        if head is None and await self._relocate():
            head = await self._log.refresh()
        return HeadState(head, await expiry_of(self._log, head))

    async def _present(self, st: HeadState) -> bool:
        """Raise if dropped; False (after checking the name exists) if empty."""
        if st.dropped:
            raise dropped_error(self._id)
        if st.tip is not None:
            return True
        if not await self.exists():
            raise DatasetNotFoundError(
                f"there is no dataset {self._id!r} in {self._store!r}", dataset_id=self._id
            )
        return False

    async def _not_found(self, exc: NotFoundError) -> NotFoundError:
        """``exc``, or :class:`DatasetNotFoundError` when the name does not exist."""
        if isinstance(exc, DatasetNotFoundError) or await self.exists():
            return exc
        return DatasetNotFoundError(
            f"there is no dataset {self._id!r} in {self._store!r}", dataset_id=self._id
        )

    async def write(
        self,
        data: Any,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_parent: str | Snapshot | None = None,
        idempotency_key: str | None = None,
        content_type: str | None = None,
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
        idempotency_key
            A key naming this write (e.g. ``"crawl-2026-11-30/page-42"``): a
            retry with the same key — from this process or another, after a
            crash — returns the snapshot committed the first time instead of
            committing again (concurrent retries commit once). Costs one
            ``get`` and two ``put`` more (a small marker, before and after the
            commit), whatever the history length; a key expires with the
            snapshot that carries it.
        content_type
            A raw blob's media type (``"image/png"``), recorded in its metadata
            under ``"content_type"`` (see :meth:`open_blob`); raw datasets only.

        Raises
        ------
        InvalidInputError
            Wrong data type for the dataset's mode; metadata not JSON; an
            invalid ``content_type`` (or one given to a dataset with a codec).
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
        # Before any data is stored: a gc fence after this refuses the commit.
        started = datetime.now(UTC)
        meta = check_metadata(metadata, max_bytes=self._max_metadata)
        if content_type is not None:
            serve.check_content_type(content_type)
        parent = self._check_parent(expected_parent)
        key = self._check_key(idempotency_key)
        spec = await self._writer()
        if spec.codec is not None and content_type is not None:
            raise InvalidInputError(
                "content_type is for raw blobs; this dataset has a codec", dataset_id=self._id
            )
        if key is not None:
            hit = await self._key_hit(key)
            if hit is not None:
                return hit
        if spec.codec is None:
            meta = serve.blob_metadata(meta, content_type, max_bytes=self._max_metadata)
            if not isinstance(data, bytes | bytearray | memoryview):
                raise InvalidInputError(
                    "a raw dataset (codec=None) writes one bytes-like object, not "
                    f"{type(data).__name__}; pass codec=aiolode.JSONL() for records",
                    dataset_id=self._id,
                )
            prepared = await self._alongside_hint(prepare_blob(spec, data))
            return await self._commit(prepared, meta, parent, key=key, started_at=started)
        else:
            records = check_records(data)
            spec = await self._record_spec(spec)
            prepared = await self._with_schema_context(
                self._alongside_hint(prepare_records(spec, records))
            )
        return await self._commit(prepared, meta, parent, spec.schema, key=key, started_at=started)

    async def _record_spec(self, spec: FileSpec) -> FileSpec:
        """``spec`` with the schema records must fit (the one recorded now)."""
        schema = await self._recorded_schema()
        last = self._last_record_spec
        if last is not None and last[0] is spec and last[1] is schema:
            return last[2]  # the usual warm write: nothing changed since the last
        evolved = attrs.evolve(spec, schema=schema, schema_mode=self._schema_mode)
        self._last_record_spec = (spec, schema, evolved)
        return evolved

    async def _recorded_schema(self) -> Schema | None:
        head = self._log.head if self._log.warm else await self._log.refresh()
        if head is not None and head.dropped:
            return None  # a new life after a drop starts without a schema
        found = await schema_of(self._log, head)
        self._schema_from = found
        return None if found is None else found[1]

    async def _with_schema_context(self, work: Coroutine[Any, Any, Prepared]) -> Prepared:
        """Name the snapshot that recorded the schema in a schema violation."""
        try:
            return await work
        except SchemaViolationError as exc:
            found = self._schema_from
            if found is not None and exc.snapshot_id is None:
                exc.snapshot_id = found[0]
                exc.message = f"{exc.message} (the schema was recorded by snapshot {found[0]})"
                exc.args = (exc.message,)
            exc.dataset_id = exc.dataset_id or self._id
            raise

    async def schema(self) -> Schema | None:
        """The dataset's current record schema (``None``: raw blobs, or no record yet).

        Recorded at the first record write and carried in the history: every
        later write must fit it (``schema_mode="add_columns"`` lets a write add
        nullable columns and widen types safely, recorded with that write).

        Cost: ``latest()``'s head read + at most one more (cached) record ``get``.

        Raises
        ------
        DatasetNotFoundError
            The dataset was dropped.
        FormatError, StorageError
            A record or the recorded schema is unreadable, or the store failed.
        """
        st = await self._state()
        if st.dropped:
            raise dropped_error(self._id)
        found = await schema_of(self._log, st.head)
        return None if found is None else found[1]

    async def _writer(self) -> FileSpec:
        if self._spec is None:
            await self._configure()
        else:
            await self._check_life()
        assert self._spec is not None
        return self._spec

    def _check_parent(self, expected_parent: object) -> str | None:
        if expected_parent is None:
            return None
        seq, idx = snapshot_position(expected_parent, self._id)
        return dataset_snapshot_id(seq, idx)

    async def _alongside_hint(self, data_work: Coroutine[Any, Any, Prepared]) -> Prepared:
        """Run the data puts while the log's upkeep runs alongside them.

        The hint is moved to the newest record this object knows (committed
        by an earlier write) in parallel with the data puts, so a warm commit
        costs one sequential round trip beyond its data (the record put) and
        the hint lags the log by at most the last commit of this object. When
        the log crossed a checkpoint boundary, the checkpoint is folded and
        written alongside too (once per 64 records; best effort).
        """
        due = self._log.hint_due()
        fold_due = checkpoint_due(self._log)
        if due is None and not fold_due:
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
                if due is not None:
                    tg.start_soon(self._log.write_hint, due)
                if fold_due:
                    tg.start_soon(maybe_checkpoint, self._store, self._log, self._log.head)
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
        self,
        prepared: Prepared,
        metadata: Metadata,
        expected_parent: str | None,
        schema_base: Schema | None = None,
        *,
        key: str | None = None,
        started_at: datetime,
    ) -> Snapshot:
        try:
            after = await self._mark_key(key) if key is not None else 0
        except BaseException:
            await delete_quietly(self._store, [f.key for f in prepared.files])
            raise
        entry = PendingSnapshot(
            started_at=started_at,
            idempotency_key=key,
            after=after,
            files=list(prepared.files),
            metadata=metadata,
            row_count=prepared.row_count,
            min_timestamp=prepared.min_timestamp,
            max_timestamp=prepared.max_timestamp,
            expected_parent=expected_parent,
            schema=prepared.schema,
            schema_base=schema_base,
            schema_mode=self._schema_mode,
        )
        garbage = [f.key for f in prepared.files]
        try:
            spec = await self._writer()
            await self._record_descriptor()
            assert self._committer is not None
            if spec.layout.partition_keys and prepared.files:
                # Format v2: one partition manifest per touched partition, so
                # readers filtering by partition read only matching ones. They
                # are stored before the record (the only commit point) and
                # named by a per-write token; unreferenced ones are orphans.
                token = uuid.uuid4().hex
                garbage += partition_manifest_keys(spec.layout, self._id, token, prepared.files)
                entry.partition_refs = await write_partition_manifests(spec, token, prepared.files)
            manifest = await self._committer.submit(entry)
        except BaseException:
            if not entry.outcome_unknown and entry.result is None:
                # Not committed (conflict, cancellation before the commit
                # point, permanent error): the data files and partition
                # manifests are orphans.
                await delete_quietly(self._store, garbage)
            raise
        if entry.duplicate:
            # The key was committed already (by a retry racing this one, or
            # before a crash): that snapshot is the answer; this data is not.
            await delete_quietly(self._store, garbage)
            return await self._loaded(manifest)
        if key is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
                await self._put_marker(key, after, manifest.snapshot_id)
        return Snapshot(manifest)

    # ------------------------------------------------------------ idempotency
    @staticmethod
    def _check_key(key: object) -> str | None:
        if key is None:
            return None
        if not isinstance(key, str) or not key or len(key) > 1024:
            raise InvalidInputError(
                f"idempotency_key must be a non-empty str of at most 1024 characters, not {safe_repr(key)}"
            )
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError("idempotency_key is not encodable as UTF-8") from None
        return key

    def _marker_key(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
        return f"{self._log.spec.prefix}_keys/{digest}.json"

    async def _put_marker(self, key: str, after: int, snapshot_id: str | None) -> None:
        """Point a key's marker at its snapshot (best effort: a retry that finds
        the pending marker walks the records since ``after`` instead)."""
        doc = KeyMarker(dataset_id=self._id, key=key, after=after, snapshot_id=snapshot_id)
        with contextlib.suppress(AiolodeError):
            await self._store.put(self._marker_key(key), encode(doc), mode="overwrite")

    async def _mark_key(self, key: str) -> int:
        """Record, before committing, where a snapshot with ``key`` can appear.

        Not best effort: without this marker a retry from another object would
        not know to look for the commit, and would commit the key again.

        Raises
        ------
        StorageError
            The marker could not be stored (after retries): nothing is committed.
        """
        after = self._log.head_seq
        doc = KeyMarker(dataset_id=self._id, key=key, after=after, snapshot_id=None)
        data = encode(doc)
        mkey = self._marker_key(key)
        await retrying(self._retry, lambda: self._store.put(mkey, data, mode="overwrite"))
        return after

    async def _key_hit(self, key: str) -> Snapshot | None:
        """The retained snapshot a previous write with ``key`` committed, if any.

        Cost: the marker ``get`` (+ the snapshot's record, usually cached).
        Without a usable marker (a new key, or one deleted or damaged), the
        history's own index: the newest checkpoint (one ``get``, cached per
        checkpoint) and the records after it (≤ 64, cached for a warm writer),
        up to the head this object knows — the commit itself checks the
        records committed since. After a crash between a commit and its marker
        update, the records committed since the crashed write began.
        """
        mkey = self._marker_key(key)
        try:
            marker = decode(await self._store.get(mkey), KeyMarker, key=mkey)
        except ObjectNotFoundError:
            return await self._key_in_history(key)
        except FormatError:
            return await self._key_in_history(key)  # a damaged marker: the index
        if marker.key != key or marker.dataset_id != self._id:
            return await self._key_in_history(key)
        st = await self._state()
        if marker.snapshot_id is not None:
            try:
                snap = await self.snapshot(marker.snapshot_id)
            except SnapshotExpiredError:
                return None  # expired, the key with it
            except (SnapshotNotFoundError, InvalidInputError):
                # The marker names no snapshot of this history: it is damaged.
                return await self._key_in_history(key)
            if snap.manifest.idempotency_key == key:
                return snap
            return await self._key_in_history(key)
        if st.head is None:
            return None
        first = max(marker.after + 1, st.expiry.below)
        found = await self._key_in_records(key, first, st)
        if found is not None:
            await self._put_marker(key, marker.after, found.snapshot_id)
            return await self._loaded(found)
        return None

    async def _key_in_history(self, key: str) -> Snapshot | None:
        """The retained snapshot with ``key`` found without its marker: the
        newest checkpoint's key index, then the records after it, up to the
        head this object knows (never a walk of the whole history)."""
        st = await self._state(fresh=False)
        if st.head is None:
            return None
        cp = self._key_checkpoint
        boundary = (st.head.seq // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
        if cp is None or cp.seq != boundary:
            cp = await newest_checkpoint(self._store, self._log, st.head.seq)
            self._key_checkpoint = cp
        first = st.expiry.below
        if cp is not None and cp.seq >= first:
            for c in cp.snapshots:
                if c.idempotency_key == key and not st.expired(c.snapshot_id):
                    seq, idx = parse_dataset_snapshot_id(c.snapshot_id, dataset_id=self._id)
                    rec = await self._log.fetch(seq)
                    if rec is not None and idx < len(rec.snapshots):
                        return await self._loaded(rec.snapshots[idx])
            first = cp.seq + 1
        found = await self._key_in_records(key, first, st)
        return None if found is None else await self._loaded(found)

    async def _key_in_records(self, key: str, first: int, st: HeadState) -> Manifest | None:
        """The retained snapshot with ``key`` in records ``first`` to the head."""
        if st.head is None:
            return None
        async with aclosing(self._log.walk(first, st.head.seq)) as records:
            async for rec in records:
                for m in rec.snapshots:
                    if m.idempotency_key == key and not st.expiry.covers(rec.seq, m.snapshot_id):
                        return m
        return None

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
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[BlobWriter]:
        """Write one large raw blob in chunks, in bounded memory.

        ::

            async with ds.stream_write({"name": "video.mp4"}) as w:
                async for chunk in source:
                    await w.write(chunk)
                    digest.update(chunk)
                w.metadata["sha256"] = digest.hexdigest()  # decided at commit
            print(w.snapshot.id)

        A clean exit commits (``w.snapshot``); an exception or a cancellation
        in the block aborts: no snapshot, the partial upload is removed. The
        metadata committed is what ``w.metadata`` holds when the block exits
        (see :class:`~aiolode.BlobWriter`): a digest, a size, a sniffed
        ``w.content_type`` can be added after the data has streamed.

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
        content_type
            As for :meth:`write` (``w.content_type`` can change it later).
        idempotency_key
            As for :meth:`write`. When a write with this key was committed
            before, ``w.committed_before`` is true at once, nothing is uploaded
            (``w.write`` discards), and ``w.snapshot`` is that snapshot.

        Raises
        ------
        UnsupportedOperationError
            The dataset has a codec (use :meth:`stream_write_records`).
        InvalidInputError
            As for :meth:`write`; raised when the block exits if ``w.metadata``
            is then invalid or too large (nothing is committed, the upload is
            removed).
        SnapshotConflictError, StorageError
            As for :meth:`write`.
        """
        spec = await self._writer()
        if spec.codec is not None:
            raise UnsupportedOperationError(
                "stream_write() writes one raw blob; this dataset has a codec: use "
                "stream_write_records()",
                dataset_id=self._id,
            )
        meta = serve.blob_metadata(metadata, content_type, max_bytes=self._max_metadata)
        parent = self._check_parent(expected_parent)
        key = self._check_key(idempotency_key)
        if key is not None:
            hit = await self._key_hit(key)
            if hit is not None:
                replay = BlobWriter(None, progress, meta, self._max_metadata, replay=hit)
                yield replay
                replay._closed = True
                replay._snapshot = hit
                return
        started = datetime.now(UTC)  # before the upload (see write)
        holder = types.SimpleNamespace()
        async with run_blob_stream(
            spec, holder, progress, metadata=meta, max_metadata_bytes=self._max_metadata
        ) as writer:
            yield writer
        try:
            meta = writer._committed_metadata()  # as the block left it
        except BaseException:
            await delete_quietly(self._store, [f.key for f in holder.prepared.files])
            raise
        # (No hint put here: between the upload and the commit nothing may run
        # that a cancellation could interrupt without cleaning the upload up.)
        writer._snapshot = await self._commit(
            holder.prepared, meta, parent, key=key, started_at=started
        )

    async def stream_write_records(
        self,
        records: Any,
        metadata: MetadataArg = None,
        *,
        expected_parent: str | Snapshot | None = None,
        max_open_partitions: int = 64,
        batch_size: int = 1024,
        idempotency_key: str | None = None,
    ) -> Snapshot:
        """Write an (async or plain) iterable of records as one snapshot, in
        bounded memory.

        Records flow through the codec's streaming encoder (JSONL, Parquet by
        row groups) and a streamed put. Partitioned layouts keep one open file
        per partition; beyond ``max_open_partitions``, the least recently used
        partition's file is finished and a later record of it starts a new file
        (all files belong to the one snapshot).

        ``metadata`` is a mapping, or a callable (sync or async, no arguments)
        called once the records have streamed and before the commit, whose
        result (a mapping or ``None``) is the snapshot's metadata: decide it at
        commit (counts, the last cursor seen, a digest) from what your record
        source saw. Whatever the callable raises aborts the write (no
        snapshot) and propagates unchanged.

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
            Bad arguments; metadata (or what the callable returned) not JSON
            or too large (nothing is committed).
        SchemaViolationError
            A record does not fit (nothing is committed).
        SnapshotConflictError, StorageError
            As for :meth:`write`.
        """
        started = datetime.now(UTC)  # before the first file (see write)
        check_int("max_open_partitions", max_open_partitions)
        check_int("batch_size", batch_size)
        spec = await self._writer()
        if spec.codec is None:
            raise UnsupportedOperationError(
                "stream_write_records() needs a codec; use stream_write() for raw blobs",
                dataset_id=self._id,
            )
        if not spec.codec.streaming:
            raise CodecNotStreamableError(
                f"codec {spec.codec.name!r} cannot encode incrementally", dataset_id=self._id
            )
        serve.deferred_metadata(metadata, max_bytes=self._max_metadata)  # a mapping: now
        parent = self._check_parent(expected_parent)
        key = self._check_key(idempotency_key)
        if key is not None:
            hit = await self._key_hit(key)
            if hit is not None:
                return hit  # committed before: the records are not read again
        spec = await self._record_spec(spec)
        prepared = await self._with_schema_context(
            self._alongside_hint(
                stream_records(
                    spec, records, max_open_partitions=max_open_partitions, batch_size=batch_size
                )
            )
        )
        try:
            meta = await serve.resolve_metadata(metadata, max_bytes=self._max_metadata)
        except BaseException:
            await delete_quietly(self._store, [f.key for f in prepared.files])
            raise
        return await self._commit(prepared, meta, parent, spec.schema, key=key, started_at=started)

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
        DatasetNotFoundError
            No dataset of this name exists (a subclass of NoSnapshotsError).
        NoSnapshotsError
            The dataset has no snapshot.
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        st = await self._state()
        if st.dropped:
            raise dropped_error(self._id)
        tip = st.tip
        if tip is None:
            raise await self._not_found(
                NoSnapshotsError(f"dataset {self._id!r} has no snapshots", dataset_id=self._id)
            )
        seq, idx = parse_dataset_snapshot_id(tip, dataset_id=self._id)
        return await self._loaded(await manifest_at(self._log, seq, idx))

    async def snapshot(self, snapshot: str | Snapshot) -> Snapshot:
        """The snapshot with this id (or the one a :class:`Snapshot` names, re-read).

        Cost: one ``get`` of its commit record (0 if cached: records are
        immutable) + one ``get`` per partition manifest of a partitioned
        snapshot (concurrent); a cold object also reads the head (as
        :meth:`latest`, concurrently with the record), to know what was expired.

        Raises
        ------
        InvalidInputError
            ``snapshot`` is not a str or Snapshot, or a Snapshot of another dataset.
        SnapshotNotFoundError
            No such snapshot (:class:`SnapshotExpiredError` when it was expired).
        DatasetNotFoundError
            No dataset of this name exists.
        FormatError, StorageError
            The record is unreadable or the store failed.
        """
        seq, idx = snapshot_position(snapshot, self._id)
        sid = dataset_snapshot_id(seq, idx)
        while True:
            if self._log.warm:
                st = await self._state(fresh=False)
            else:
                # Cold: read the head (to know what was expired) while the
                # snapshot's own record is fetched: one round trip for both.
                got: list[HeadState] = []
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._prefetch, seq)
                        got.append(await self._state())
                except BaseExceptionGroup as eg:
                    reraise(eg)
                st = got[0]
            st.check_visible(sid, self._id)
            try:
                m = await manifest_at(self._log, seq, idx)
            except SnapshotExpiredError:
                raise
            except SnapshotNotFoundError as exc:
                if await self._relocate():
                    continue
                raise await self._not_found(exc) from None
            return await self._loaded(m)

    async def _prefetch(self, seq: int) -> None:
        # Warms the record cache; a failure here is reported by the real read.
        with contextlib.suppress(AiolodeError):
            await self._log.fetch(seq)

    async def snapshots(
        self, *, newest_first: bool = False, where: object = None
    ) -> AsyncGenerator[Snapshot, None]:
        """Iterate over every snapshot, oldest first (newest first on request).

        With ``where`` (a partition filter, as for :meth:`files`), only the
        snapshots that touched a matching partition; the others are skipped
        from their record's summaries, without reading their partition manifests.

        Walks the commit log by sequence number up to the head known when the
        walk starts; never lists, and never stops silently: a record missing
        below the head raises :class:`~aiolode.HistoryGapError`. Wrap in
        :func:`contextlib.aclosing` if you may stop early.

        Cost: ``latest()``'s cost + one ``get`` per commit record (16
        concurrent) + partition manifests of partitioned snapshots. Memory: 16
        records at a time (plus a small cache).

        Raises
        ------
        DatasetNotFoundError
            No dataset of this name exists (an existing empty one yields nothing).
        HistoryGapError
            A record is missing below the head.
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        match, _ = compile_where(where)
        st = await self._state()
        if not await self._present(st):
            return
        assert st.head is not None
        first = max(1, st.expiry.below)  # whole records below it are expired
        async with aclosing(
            self._log.walk(first, st.head.seq, newest_first=newest_first)
        ) as records:
            async for rec in records:
                for m in reversed(rec.snapshots) if newest_first else rec.snapshots:
                    if st.expiry.covers(rec.seq, m.snapshot_id):
                        continue
                    if match is not None and not any(match(p) for p in m.partitions):
                        continue
                    yield await self._loaded(m)

    async def partitions(self) -> AsyncGenerator[Mapping[str, str], None]:
        """Iterate over the distinct partition values of the committed files.

        In order of first commit. Values come from the commit records' summaries
        (never from listing the data prefix, never from partition manifests), so
        partitions of aborted writes do not appear. An unpartitioned dataset
        yields ``{}`` once (if it has files).

        Cost: ``latest()`` + one ``get`` per commit record (16 concurrent).
        Memory: the distinct values + 16 records.

        Raises
        ------
        DatasetNotFoundError
            No dataset of this name exists.
        HistoryGapError, FormatError, StorageError
            A record is missing or unreadable, or the store failed.
        """
        st = await self._state()
        if not await self._present(st):
            return
        assert st.head is not None
        seen: set[tuple[tuple[str, str], ...]] = set()
        async with aclosing(self._log.walk(max(1, st.expiry.below), st.head.seq)) as records:
            async for rec in records:
                for m in rec.snapshots:
                    if st.expiry.covers(rec.seq, m.snapshot_id):
                        continue
                    for part in m.partitions:
                        t = tuple(sorted(part.items()))
                        if t not in seen:
                            seen.add(t)
                            yield part

    async def watch(
        self, after: str | Snapshot | None = None, *, poll_interval: float = 1.0
    ) -> AsyncGenerator[Snapshot, None]:
        """Follow the dataset: yield every snapshot once, in commit order, forever.

        ``after=None`` starts at the first snapshot (backfill, then follow);
        ``after=<id or Snapshot>`` resumes right after it. The snapshot id is the
        durable cursor: a consumer that stores the id of the last snapshot it
        processed resumes there after a restart, and sees every snapshot exactly
        once whatever the number of writers and processes. Wrap in
        :func:`contextlib.aclosing`; cancel to stop (clean at any point).

        Cost: while idle, at most one store request per ``poll_interval`` (a
        ``get`` of the next commit record; every 16th poll reads the ``latest``
        hint instead, to notice a damaged history rather than wait on it). A
        commit through the same store object in this process wakes the watcher
        at once. Each new record: its ``get`` + the partition manifests of its
        snapshots. Transient store errors are retried with the retry policy's
        backoff; persistent ones are raised.

        Raises
        ------
        InvalidInputError
            Bad ``after`` or ``poll_interval`` (at the first iteration).
        SnapshotNotFoundError
            ``after`` does not exist.
        DatasetNotFoundError
            The dataset was dropped (also while following it).
        HistoryGapError, FormatError
            The history is damaged.
        StorageError
            The store kept failing.
        """
        poll = check_number("poll_interval", poll_interval, minimum=0.001)
        st = await self._state()
        if st.head is None and after is None and not self._layout_given:
            await self._await_existence(poll)
            st = await self._state()
        if st.dropped:
            raise dropped_error(self._id)
        expiry = st.expiry
        start, skip = max(1, expiry.below), 0
        if after is not None:
            seq, idx = snapshot_position(after, self._id)
            sid = dataset_snapshot_id(seq, idx)
            if not expiry.covers(seq, sid):
                await self.snapshot(sid)  # it must exist (an expired cursor is fine)
            start, skip = max(seq, expiry.below), (idx + 1 if seq >= expiry.below else 0)
        async with aclosing(follow(self._log, start=start, poll_interval=poll)) as records:
            async for rec in records:
                if rec.dropped:
                    raise dropped_error(self._id)
                if rec.expiry is not None:
                    expiry = rec.expiry  # an expiry committed while we follow
                first = skip if rec.seq == start else 0
                for m in rec.snapshots[first:]:
                    if not expiry.covers(rec.seq, m.snapshot_id):
                        yield await self._loaded(m)

    async def _await_existence(self, poll: float) -> None:
        """Wait until the dataset has a first record: under the default layout
        (followed, so a commit through this store wakes it at once) or, found by
        a check every ``max(FLAT_RECHECK, 4 * poll)`` seconds, under the flat layout."""
        moved = anyio.Event()

        async def flat() -> None:
            while True:
                await anyio.sleep(max(FLAT_RECHECK, 4 * poll))
                self._located = False
                if await self._relocate():
                    moved.set()
                    return

        async with anyio.create_task_group() as tg:

            async def default() -> None:
                async with aclosing(follow(self._log, start=1, poll_interval=poll)) as it:
                    async for _ in it:
                        break
                tg.cancel_scope.cancel()

            async def relocated() -> None:
                await moved.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(default)
            tg.start_soon(flat)
            tg.start_soon(relocated)

    async def snapshot_as_of(self, when: datetime) -> Snapshot:
        """The newest snapshot committed at or before ``when``.

        ``created_at`` never decreases along the log, so this is a binary
        search over sequence numbers: ``latest()`` + O(log n) ``get`` calls.

        Raises
        ------
        InvalidInputError
            ``when`` is a naive datetime or not a datetime at all.
        NoSnapshotsError
            The dataset holds no snapshot (:class:`~aiolode.DatasetNotFoundError`:
            no dataset of this name).
        SnapshotNotFoundError
            The dataset's first snapshot is newer than ``when``.
        """
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise InvalidInputError(
                "snapshot_as_of() needs a timezone-aware datetime", dataset_id=self._id
            )
        st = await self._state()
        try:
            m = await resolve_as_of(self._log, when, st)
        except SnapshotExpiredError:
            raise
        except NotFoundError as exc:
            raise await self._not_found(exc) from None
        assert m is not None
        return await self._loaded(m)

    # --------------------------------------------------------------------- read
    async def _resolve(self, snapshot: str | Snapshot) -> Snapshot:
        if isinstance(snapshot, Snapshot):
            snapshot_position(snapshot, self._id)  # it must be one of ours
            (await self._state(fresh=False)).check_visible(snapshot.id, self._id)
            if not snapshot.manifest.files_loaded:
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

    # ------------------------------------------------------------------ serving
    @asynccontextmanager
    async def open_blob(
        self, snapshot: str | Snapshot, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> AsyncIterator[Blob]:
        """Open a raw-blob snapshot for serving: size, checksum and content type
        up front, the content streamed (verified) or read by byte range.

        ::

            async with ds.open_blob(snap_id) as blob:
                headers = {"Content-Length": str(blob.size)}
                async for chunk in blob:  # verified as it ends
                    await send(chunk)

        The content streams in chunks of at most ``chunk_size`` bytes, checked
        against the recorded size and checksum; the last chunk is held back
        until that check passes, so a damaged blob raises
        (:class:`~aiolode.CorruptDataError`, :class:`~aiolode.ChecksumMismatchError`)
        instead of ending quietly. A compressed blob is decompressed as it
        streams (its :attr:`~aiolode.Blob.size` is ``None``); ``blob.read_range``
        is as :meth:`read_range`. See ``docs/serving.md``.

        Cost: resolving the snapshot (as :meth:`snapshot`: one ``get``, none
        when cached; nothing more for a :class:`Snapshot` this object has seen).
        Opening reads no data: iterating is one streamed read per file (one for
        blobs written by :meth:`write`/:meth:`stream_write`). Memory: about
        two chunks.

        Parameters
        ----------
        snapshot
            A snapshot id or a :class:`Snapshot` of this dataset.
        chunk_size
            Largest chunk handed out, in bytes.

        Raises
        ------
        InvalidInputError
            A bad ``chunk_size`` or ``snapshot`` argument.
        UnsupportedOperationError
            The snapshot holds records, not a raw blob.
        SnapshotNotFoundError
            No such snapshot; :class:`~aiolode.SnapshotExpiredError` (a
            subclass) when it was expired.
        DatasetNotFoundError
            No dataset of this name exists (or it was dropped).
        ObjectNotFoundError, CorruptDataError, ChecksumMismatchError, StorageError
            While iterating: a data file is missing, damaged, or the store failed.
        """
        size = serve.check_chunk_size(chunk_size)
        snap = await self._resolve(snapshot)
        async with serve.open_blob(self._store, snap, chunk_size=size) as blob:
            yield blob

    async def read_range(self, snapshot: str | Snapshot, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of a raw-blob snapshot, by a true range read.

        As the store contract: short when the range runs past the end, ``b""``
        when ``offset`` is at or past the end (or ``length`` is 0). The bytes
        read are checked against the recorded size (a short object raises); no
        checksum can be verified on part of an object. Compressed blobs are
        refused (a range of a compressed stream needs everything before it
        decompressed): store what you serve by range with ``compressor=None``.

        Cost: resolving the snapshot (as :meth:`open_blob`) + one ``get_range``
        per file the range touches (one for blobs written by :meth:`write` or
        :meth:`stream_write`); no data request for an empty result. Memory:
        the bytes returned.

        Raises
        ------
        InvalidRangeError
            ``offset`` or ``length`` is negative or not an int.
        UnsupportedOperationError
            A record snapshot, or a compressed blob.
        InvalidInputError
            ``snapshot`` is neither an id nor a :class:`Snapshot` of this dataset.
        SnapshotNotFoundError, SnapshotExpiredError, DatasetNotFoundError
            As for :meth:`open_blob`.
        ObjectNotFoundError
            The data file is missing.
        CorruptDataError
            The data file is shorter than recorded.
        StorageError
            The store failed.
        """
        validate_range(offset, length)
        snap = await self._resolve(snapshot)
        return await serve.read_range(self._store, snap, offset, length)

    # ------------------------------------------------------------- reader views
    async def files(
        self, *, as_of: object = None, where: object = None, since: object = None
    ) -> list[DataFile]:
        """The data files committed after ``since`` up to ``as_of``, pruned by ``where``.

        Oldest snapshot first, each snapshot's files in manifest order. Only files
        that committed manifests list are returned (never a listing).

        Parameters
        ----------
        as_of
            ``None`` (the latest), a snapshot id, a :class:`Snapshot`, or a
            timezone-aware datetime (the newest snapshot committed at or before it).
        where
            ``None``; a mapping of partition key to a value or a collection of
            values (``{"source": "a", "day": {"2024-01-01", "2024-01-02"}}``;
            values compare in their path form, so ints and dates work); or a
            predicate called with each file's partition values (a read-only
            mapping of str to str) returning a bool.
        since
            ``None`` (from the first snapshot), or a snapshot id / :class:`Snapshot`:
            only what was committed **after** it (exclusive) — an incremental read
            for a consumer that remembers where it stopped.

        Cost: resolving ``as_of`` (``latest()``, or O(log n) ``get`` for a time)
        + 1 ``get`` per commit record from ``since`` to ``as_of`` (16 concurrent;
        cached records are free) + 1 ``get`` per partition manifest **matching**
        ``where`` (16 concurrent): partitions filtered out are never read.
        Memory: the result plus 16 records.

        Raises
        ------
        InvalidInputError
            Bad ``as_of``/``since``/``where``, ``since`` after ``as_of``, or
            ``where`` names a key that is not a partition key of the dataset.
        SnapshotNotFoundError, NoSnapshotsError
            ``as_of`` or ``since`` designates no snapshot.
        DatasetNotFoundError
            No dataset of this name exists (an existing empty one gives ``[]``).
        HistoryGapError, FormatError, StorageError
            A record is missing or unreadable, or the store failed.
        """
        # A latest view must see the newest records; a view as of a snapshot id
        # only needs what this object knows about expiry.
        st = await self._state(fresh=as_of is None or isinstance(as_of, datetime))
        try:
            found = await collect_files(
                self._store, self._log, st, as_of=as_of, since=since, where=where
            )
        except (SnapshotNotFoundError, NoSnapshotsError) as exc:
            if isinstance(exc, SnapshotExpiredError | DatasetNotFoundError):
                raise
            raise await self._not_found(exc) from None
        if not found and st.head is None and not await self.exists():
            raise DatasetNotFoundError(
                f"there is no dataset {self._id!r} in {self._store!r}", dataset_id=self._id
            )
        return found

    # ----------------------------------------------------------------- lifecycle
    async def expire(
        self,
        *,
        older_than: timedelta | None = None,
        keep_last: int | None = None,
        snapshots: Iterable[str | Snapshot] | None = None,
        dry_run: bool = False,
    ) -> ExpireReport:
        """Expire snapshots: their data leaves every later view (a data TTL, or
        "delete this upload").

        A snapshot here is a batch, so expiring it removes its rows or blob from
        :meth:`files`, :meth:`to_arrow_dataset`, :meth:`snapshots` and
        :meth:`watch`; :meth:`snapshot`, :meth:`read` and time travel to it raise
        :class:`~aiolode.SnapshotExpiredError`. The latest snapshot is never
        expired. Expiry is a commit: concurrent appends are rebased (never lost)
        and concurrent expiries merge. Objects stay until :meth:`gc` (readers
        that already hold the file list keep reading until then).

        Parameters
        ----------
        older_than
            Expire the snapshots committed more than this long ago.
        keep_last
            Expire all but the newest ``keep_last`` snapshots.
        snapshots
            Expire these snapshots (ids or :class:`Snapshot` objects).
        dry_run
            Report what would be expired; commit nothing.

        Returns
        -------
        ExpireReport
            The snapshots expired and the files that left every view.

        Cost: ``latest()`` + the newest checkpoint + the records after it (and
        their partition manifests) + one record put. Criteria combine (union).

        Raises
        ------
        InvalidInputError
            No criterion, or one of the wrong type or value.
        SnapshotNotFoundError
            ``snapshots`` names a snapshot that does not exist.
        DatasetNotFoundError
            No dataset of this name exists (or it was dropped).
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        await self._require()
        assert self._committer is not None
        return await lifecycle.expire(
            self._store,
            self._log,
            self._committer,
            older_than=older_than,
            keep_last=keep_last,
            snapshots=snapshots,
            dry_run=dry_run,
        )

    async def gc(self, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False) -> GCReport:
        """Delete what no retained snapshot references, once older than ``grace``.

        Collects the data files and partition manifests of expired snapshots,
        of aborted and lost writes, log records below the expired prefix, and
        superseded checkpoints — each only when older than ``grace`` (log
        records also only when older than ten minutes: a writer appending at
        the slot after the head it knows must never find that slot freed). It first
        commits a *fence* (``now - grace``): a write that began before it is
        refused at its commit with :class:`~aiolode.StaleWriteError` (its
        unreferenced files may be gone), so no snapshot can ever point at
        deleted data. Never deletes an object a retained snapshot references.
        See ``docs/lifecycle.md`` for the argument and its clock assumptions.

        Parameters
        ----------
        grace
            Minimum age of what is deleted; writes taking longer than this are
            refused. Default one hour.
        dry_run
            Return exactly what a real run would delete now; change nothing.

        Returns
        -------
        GCReport
            The keys deleted (or to delete), their bytes, the fence.

        Cost: the fence record put, the newest checkpoint + the records after it
        (and their partition manifests), **one listing** of the dataset's prefix,
        and the deletes (16 concurrent). Never one read per historic commit.

        Raises
        ------
        InvalidInputError
            ``grace`` is not a timedelta >= 0.
        DatasetNotFoundError
            No dataset of this name exists (or it was dropped).
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        await self._require()
        assert self._committer is not None
        return await lifecycle.gc(
            self._store,
            self._log,
            self._committer,
            self.layout.root(self._id),
            descriptor_key(self.layout, self._id),
            grace=grace,
            dry_run=dry_run,
        )

    async def compact(
        self,
        *,
        where: object = None,
        target_file_size: int = 128 * 2**20,
        min_files: int = 4,
        dry_run: bool = False,
    ) -> CompactReport:
        """Rewrite the small files of the live view into fewer, larger ones.

        Per partition (``where`` limits which), the live files smaller than
        three quarters of ``target_file_size`` are grouped in commit order into
        groups of at most ``target_file_size`` stored bytes, each rewritten as
        one file (checked on read; statistics and checksum computed afresh; the
        dataset's recorded schema kept); a partition with fewer than
        ``min_files`` small files is left alone. One commit that changes no row:
        :meth:`files` and :meth:`to_arrow_dataset` return the same rows, in the
        same order, from fewer files. It is not a snapshot (``snapshots()``,
        ``watch()`` and ``files(since=...)`` never show it).

        Snapshots before it keep reading their own files (which :meth:`gc`
        keeps while they are retained). Appends committed meanwhile are kept
        (the compaction rebases over them); a concurrent compaction or expiry
        that took one of its input files out of the view makes it a
        :class:`~aiolode.ConflictError` (run it again). If a source snapshot
        of a compacted file expires later, that file stops serving and the
        retained rows' own files serve again until the next compaction.

        Parameters
        ----------
        where
            Which partitions to compact (as for :meth:`files`); ``None``: all.
        target_file_size
            Stored bytes each output file aims at (default 128 MiB).
        min_files
            Fewest small files a partition needs to be compacted (>= 2).
        dry_run
            Report what would be rewritten; write and commit nothing.

        Returns
        -------
        CompactReport
            What was replaced and written, rows and bytes.

        Cost: ``files()``'s reads, one ``get`` per input file, one ``put`` per
        output file, one record put. Memory: one group's rows at a time.

        Raises
        ------
        InvalidInputError
            A bad argument.
        UnsupportedOperationError
            The dataset stores raw blobs.
        ConflictError
            A concurrent compaction or expiry took an input file out of the view.
        StaleWriteError
            The compaction began before a garbage collection's fence.
        DatasetNotFoundError
            No dataset of this name exists (or it was dropped).
        CorruptDataError, ChecksumMismatchError
            An input file is damaged (nothing is committed).
        StorageError, FormatError
            The store failed or a record is unreadable.
        """
        await self._require()
        spec = await self._writer()
        assert self._committer is not None
        return await compact(
            self._store,
            self._log,
            self._committer,
            spec,
            where=where,
            target_file_size=target_file_size,
            min_files=min_files,
            dry_run=dry_run,
        )

    async def drop(
        self, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False
    ) -> DropReport:
        """Delete the dataset: its name, history and data.

        Commits a tombstone (a concurrent writer then gets
        :class:`~aiolode.DatasetNotFoundError`, never resurrects half a dataset),
        removes the descriptor (the name is not found from then on), then every
        object under the dataset's prefix; the log records last, and only once
        older than ``grace`` (a writer holding a recent view of the log must not
        be able to fill a freed slot): run ``drop()`` again later to finish
        (``report.done``). Resumable: an interrupted drop is finished by the next.
        The name can be written again at once (a new dataset).

        Cost: a record put, one delete, one listing, the deletes.

        Raises
        ------
        InvalidInputError
            ``grace`` is not a timedelta >= 0.
        StorageError, FormatError
            The store failed, or a commit record or partition manifest that
            names the dataset's files is unreadable.
        """
        await self._configure()
        report = await lifecycle.drop(
            self._store,
            self._log,
            self._committer,
            self.layout.root(self._id),
            descriptor_key(self.layout, self._id),
            grace=grace,
            dry_run=dry_run,
        )
        if not dry_run and self._config_lock is not None:
            async with self._config_lock:
                # This object's next write starts a new life of the name (other
                # writers of the dropped one stay refused).
                self._config = None
                self._spec = None
                self._new_descriptor = None
        return report

    async def checkpoint(self) -> bool:
        """Fold the history into the checkpoint due at the last 64-record boundary,
        if none is there (writers do this alongside their writes; this is for
        maintenance jobs and read-mostly datasets). Best effort.

        Returns
        -------
        bool
            Whether a checkpoint was written.

        Raises
        ------
        StorageError, FormatError
            The head could not be read.
        """
        return await maybe_checkpoint(self._store, self._log, await self._log.refresh())

    async def _require(self) -> None:
        """Configure for writing; raise if the dataset does not exist or was dropped."""
        if not await self.exists():
            raise DatasetNotFoundError(
                f"there is no dataset {self._id!r} in {self._store!r}", dataset_id=self._id
            )
        await self._configure()

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
            ``.ok`` is true when no problem was found in the records,
            partition manifests or files.

        Raises
        ------
        SnapshotNotFoundError
            ``snapshot_id`` names no snapshot of this dataset.
        StorageError
            The store failed while listing the dataset's prefix.
        """
        from ..verify import verify_dataset

        # Plain values: verify reads the stored format, not this object. A layout
        # not given is looked up as recorded, as this object does.
        layout = self._layout if self._layout_given or self._located else None
        return await verify_dataset(self._store, self._id, layout=layout, snapshot_id=snapshot_id)

    async def to_arrow_dataset(
        self,
        *,
        as_of: object = None,
        where: object = None,
        since: object = None,
        schema: Any = None,
        filesystem: str = "auto",
        verify: bool = False,
    ) -> Any:
        """A ``pyarrow.dataset.Dataset`` over :meth:`files` ``(as_of, where, since)``.

        The one way to hand a dataset to pyarrow, DuckDB or Polars. See
        :func:`aiolode.arrow.arrow_dataset` for ``schema``, ``filesystem`` and
        ``verify`` and their costs.

        Cost: :meth:`files`, then building the Arrow dataset (schema inspection
        reads each file's footer or first block unless ``schema`` is given).

        Raises
        ------
        MissingDependencyError
            pyarrow is not installed.
        UnsupportedOperationError
            A raw dataset (no records).
        InvalidInputError, SnapshotNotFoundError, NoSnapshotsError
            As for :meth:`files`; a bad ``filesystem``.
        ChecksumMismatchError, CorruptDataError
            A file read by aiolode does not match its manifest.
        """
        files = await self.files(as_of=as_of, where=where, since=since)
        return await arrow_dataset(
            self._store, files, schema=schema, filesystem=filesystem, verify=verify
        )
