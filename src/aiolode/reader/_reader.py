"""DatasetReader: layout-aware discovery and reads for external consumers.

Manifests (the commit records of each dataset's log) are the only truth: data
files are found through them, never through listings, so uncommitted or
aborted files sitting under a dataset's prefix are never handed out as data.
Listing is used only to *discover dataset ids*, and each candidate is then
confirmed by its first commit record.
"""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING, Any, final

import anyio.to_thread

from .._concurrency import bounded_map
from ..checksum import parse_recorded
from ..dataset._log import CommitLog, format_snapshot_id, parse_snapshot_id
from ..dataset._partitions import load_partition
from ..dataset._partitions import with_files as _loaded
from ..dataset._snapshot import Snapshot
from ..errors import (
    ChecksumMismatchError,
    DatasetsNotModeledError,
    InvalidInputError,
    ManifestFormatError,
    NoSnapshotsError,
    SnapshotNotFoundError,
)
from ..layout import DefaultLayout, Layout, validate_dataset_id
from ..store import Store
from ._ranges import DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, DEFAULT_TAIL_PREFETCH, RangeReader
from ._refs import DataFile, PartitionFilter, SnapshotRef, compile_where

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ..manifest import FileRef, Manifest
    from ..manifest._dataset import CommitRecord, PartitionRef

__all__ = ["DatasetReader"]

_FETCH_CONCURRENCY = 16


@final
class DatasetReader:
    """Discover and read what Datasets committed in a store.

    Parameters
    ----------
    store
        The store holding the datasets.
    layout
        How datasets are laid out (default :class:`~aiolode.DefaultLayout`).
        Default and hive layouts share the same roots, so either finds both;
        partition values always come from the manifests.

    Raises
    ------
    InvalidInputError
        ``store`` is not a Store or ``layout`` not a Layout.

    Notes
    -----
    Store calls per method (``docs/reader.md``): ``get_manifest`` 1 ``get``
    (0 when cached: records are immutable); ``list_datasets`` one delimiter
    listing + 1 ``head`` per candidate (a **cold path**); ``list_partitions``,
    ``list_snapshots`` and ``files`` read the commit log: the ``latest`` hint
    + 1 ``get`` per commit record up to the target, fetched concurrently;
    ``read_range`` 1 ``get_range``; ``open_object`` 1 streamed read.
    """

    def __init__(self, store: Store, *, layout: Layout | None = None) -> None:
        if not isinstance(store, Store):
            raise InvalidInputError(f"store must be an aiolode Store, not {store!r}")
        layout = DefaultLayout() if layout is None else layout
        if not isinstance(layout, Layout):
            raise InvalidInputError(f"layout must be an aiolode Layout, not {layout!r}")
        self._store = store
        self._layout = layout
        self._logs: dict[str, CommitLog] = {}

    @property
    def store(self) -> Store:
        """The store."""
        return self._store

    @property
    def layout(self) -> Layout:
        """The layout."""
        return self._layout

    def __repr__(self) -> str:
        return f"DatasetReader({self._store!r}, layout={self._layout!r})"

    def _log(self, dataset: str) -> CommitLog:
        log = self._logs.get(dataset)
        if log is None:
            validate_dataset_id(dataset)
            log = CommitLog(self._store, self._layout.log_prefix(dataset), dataset)
            self._logs[dataset] = log
        return log

    # ------------------------------------------------------------------ discovery
    def list_datasets(self) -> AsyncGenerator[str, None]:
        """Iterate over the ids of the datasets that have at least one commit.

        A **cold path**: one delimiter listing of the layout's datasets prefix,
        then one ``head`` per candidate directory to confirm that its first
        commit record exists (a directory holding only uncommitted files is not
        a dataset). Ids come in key order. Memory: one listing page.

        Raises
        ------
        DatasetsNotModeledError
            The layout cannot enumerate datasets (e.g. :class:`~aiolode.FlatLayout`);
            raised at once.
        StorageError
            The store failed.
        """
        if not self._layout.models_datasets:
            raise DatasetsNotModeledError(
                f"layout {self._layout!r} does not model datasets: they cannot be listed; "
                "open them by id"
            )
        return self._list_datasets()

    async def _list_datasets(self) -> AsyncGenerator[str, None]:
        prefix = self._layout.datasets_prefix()
        async with aclosing(self._store.list_dirs(prefix)) as dirs:
            async for d in dirs:
                candidate = d[len(prefix) : -1]
                try:
                    log = self._log(candidate)
                except InvalidInputError:
                    continue  # not a dataset id (e.g. a foreign directory)
                if await self._store.exists(log.key(1)):
                    yield candidate

    async def _records(self, dataset: str, upto: int) -> list[CommitRecord]:
        """Commit records 1..upto, fetched concurrently (cached ones cost nothing)."""
        log = self._log(dataset)

        async def one(seq: int) -> CommitRecord:
            rec = await log.fetch(seq)
            if rec is None:
                # Records are never deleted and never have gaps below a head.
                raise ManifestFormatError(
                    f"commit record {log.key(seq)!r} is missing below record {upto}",
                    key=log.key(seq),
                    dataset_id=dataset,
                )
            return rec

        return await bounded_map(one, range(1, upto + 1), limit=_FETCH_CONCURRENCY)

    async def _head_seq(self, dataset: str) -> int:
        head = await self._log(dataset).refresh()
        return 0 if head is None else head.seq

    async def _all_manifests(self, dataset: str) -> AsyncGenerator[Manifest, None]:
        upto = await self._head_seq(dataset)
        # In windows, so memory stays bounded by the window on long histories.
        for lo in range(1, upto + 1, 256):
            hi = min(lo + 255, upto)
            log = self._log(dataset)
            recs = await bounded_map(log.fetch, range(lo, hi + 1), limit=_FETCH_CONCURRENCY)
            for rec in recs:
                if rec is None:
                    raise ManifestFormatError(
                        f"commit record missing below the head of dataset {dataset!r}",
                        dataset_id=dataset,
                    )
                for m in rec.snapshots:
                    yield m

    def list_partitions(self, dataset: str) -> AsyncGenerator[dict[str, str], None]:
        """Iterate over the distinct partition values of a dataset's committed files.

        In order of first commit. Values come from the manifests (never from
        listing the data prefix), so partitions of aborted writes do not appear.
        An unpartitioned dataset yields ``{}`` once (if it has files).

        Cost: a **cold path** reading the whole commit log: the ``latest`` hint
        + 1 ``get`` per commit record (16 concurrent). Memory: the distinct
        values + 256 records.

        Raises
        ------
        InvalidKeyError
            ``dataset`` is not a valid dataset id (raised at once).
        FormatError, StorageError
            A record is unreadable or the store failed.
        """
        self._log(dataset)
        return self._list_partitions(dataset)

    async def _list_partitions(self, dataset: str) -> AsyncGenerator[dict[str, str], None]:
        seen: set[tuple[tuple[str, str], ...]] = set()
        async with aclosing(self._all_manifests(dataset)) as manifests:
            async for m in manifests:
                # From the record (summaries or inline files): no partition
                # manifest is read.
                for p in m.partitions:
                    t = tuple(sorted(p.items()))
                    if t not in seen:
                        seen.add(t)
                        yield dict(p)

    def list_snapshots(
        self, dataset: str, partition: PartitionFilter = None
    ) -> AsyncGenerator[SnapshotRef, None]:
        """Iterate over a dataset's snapshots, oldest first.

        With ``partition`` (a ``where`` filter, see :meth:`files`), only
        the snapshots that added a file in a matching partition.

        Cost: a **cold path**: the ``latest`` hint + 1 ``get`` per commit
        record (16 concurrent). Memory: 256 records.

        Raises
        ------
        InvalidKeyError
            ``dataset`` is not a valid dataset id (raised at once).
        InvalidInputError
            ``partition`` is not a valid filter (raised at once).
        FormatError, StorageError
            A record is unreadable or the store failed.
        """
        log = self._log(dataset)
        match, _ = compile_where(partition)
        return self._list_snapshots(dataset, log, match)

    async def _list_snapshots(
        self, dataset: str, log: CommitLog, match: Any
    ) -> AsyncGenerator[SnapshotRef, None]:
        async with aclosing(self._all_manifests(dataset)) as manifests:
            async for m in manifests:
                if match is not None and not any(match(p) for p in m.partitions):
                    continue
                seq, _ = parse_snapshot_id(m.snapshot_id, dataset_id=dataset)
                yield SnapshotRef.from_manifest(m, log.key(seq))

    async def get_manifest(
        self, dataset: str, snapshot_id: str, *, with_files: bool = False
    ) -> Manifest:
        """The manifest of one snapshot, as its commit record holds it.

        For a partitioned snapshot written in format v2 the record holds one
        summary per partition (:attr:`~aiolode.Manifest.partition_manifests`:
        values, manifest key, file/row/byte counts) and ``files`` is empty
        (``files_loaded`` is ``False``); ``with_files=True`` also reads the
        partition manifests and returns the files. Unpartitioned snapshots and
        v1 records always carry their files inline.

        Cost: **one** ``get`` (its commit record; snapshot ids map to their
        record in O(1)), 0 when this reader has it cached; ``with_files=True``
        adds one ``get`` per partition manifest (concurrent).

        Raises
        ------
        InvalidKeyError
            ``dataset`` is not a valid dataset id.
        InvalidInputError
            ``snapshot_id`` is not a str.
        SnapshotNotFoundError
            No such snapshot.
        FormatError, StorageError
            The record is unreadable or the store failed.
        """
        log = self._log(dataset)
        seq, idx = parse_snapshot_id(snapshot_id, dataset_id=dataset)
        rec = await log.require(seq, snapshot_id)
        if idx >= len(rec.snapshots):
            raise SnapshotNotFoundError(
                f"dataset {dataset!r} has no snapshot {snapshot_id!r}",
                dataset_id=dataset,
                snapshot_id=snapshot_id,
            )
        m = rec.snapshots[idx]
        return await _loaded(self._store, m) if with_files else m

    # ---------------------------------------------------------------------- bytes
    def open_object(
        self, key: str | DataFile | FileRef, *, chunk_size: int = 1 << 20
    ) -> AsyncGenerator[bytes, None]:
        """Stream an object's stored bytes (not decompressed).

        Given a :class:`DataFile` or :class:`~aiolode.FileRef` (from
        :meth:`files` or a manifest), the recorded checksum is verified as the
        bytes stream: a mismatch raises :class:`~aiolode.ChecksumMismatchError`
        after the last chunk. A plain key is streamed as is (no manifest vouches
        for it). Wrap in :func:`contextlib.aclosing` if you may stop early.

        Cost: one streamed read. Memory: one chunk.

        Raises
        ------
        InvalidKeyError
            The key is malformed (raised at once).
        ObjectNotFoundError
            The object does not exist.
        ChecksumMismatchError
            The bytes do not match the manifest.
        StorageError
            The store failed.
        """
        if isinstance(key, str):
            return self._store.iter_bytes(key, chunk_size=chunk_size)
        ref = key.file if isinstance(key, DataFile) else key
        chunks = self._store.iter_bytes(ref.key, chunk_size=chunk_size)
        return _verified(chunks, ref)

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of an object's stored bytes (short at EOF).

        Cost: one ``get_range`` (a true range request). For many small reads of
        one object use :meth:`range_reader`.

        Raises
        ------
        InvalidKeyError, InvalidRangeError
            Bad key or range.
        ObjectNotFoundError
            The object does not exist.
        StorageError
            The store failed.
        """
        return await self._store.get_range(key, offset, length)

    def range_reader(
        self,
        key: str | DataFile | FileRef,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        tail_prefetch: int = DEFAULT_TAIL_PREFETCH,
    ) -> RangeReader:
        """A :class:`RangeReader` (page cache + request counters) over one object.

        A :class:`DataFile`/:class:`~aiolode.FileRef` gives the size, saving a
        ``head``. No I/O here.

        Raises
        ------
        InvalidKeyError, InvalidInputError
            Bad key or options.
        """
        if isinstance(key, str):
            return RangeReader(
                self._store,
                key,
                page_size=page_size,
                max_pages=max_pages,
                tail_prefetch=tail_prefetch,
            )
        ref = key.file if isinstance(key, DataFile) else key
        return RangeReader(
            self._store,
            ref.key,
            size=ref.size,
            page_size=page_size,
            max_pages=max_pages,
            tail_prefetch=tail_prefetch,
        )

    # ---------------------------------------------------------------------- files
    async def resolve(self, dataset: str, as_of: object = None) -> Manifest | None:
        """The manifest ``as_of`` designates (``None``: the dataset is empty and
        ``as_of`` is ``None``), as its commit record holds it (see
        :meth:`get_manifest` for partition summaries vs files).

        Cost: a snapshot id or ref: 1 ``get`` (0 cached); ``None``: the
        ``latest`` hint + a probe (2 ``get``); a datetime: that + O(log n) ``get``.

        Raises
        ------
        InvalidInputError
            ``as_of`` has an unsupported type or is a naive datetime.
        SnapshotNotFoundError
            No such snapshot, or none at or before the datetime.
        NoSnapshotsError
            A datetime on an empty dataset.
        """
        log = self._log(dataset)
        if as_of is None:
            head = await log.refresh()
            return None if head is None else head.snapshots[-1]
        if isinstance(as_of, Snapshot | SnapshotRef):
            if as_of.dataset_id != dataset:
                raise InvalidInputError(
                    f"snapshot {as_of.snapshot_id if isinstance(as_of, SnapshotRef) else as_of.id}"
                    f" belongs to dataset {as_of.dataset_id!r}, not {dataset!r}",
                    dataset_id=dataset,
                )
            as_of = as_of.snapshot_id if isinstance(as_of, SnapshotRef) else as_of.id
        if isinstance(as_of, str):
            return await self.get_manifest(dataset, as_of)
        if isinstance(as_of, datetime):
            if as_of.tzinfo is None:
                raise InvalidInputError("as_of needs a timezone-aware datetime")
            return await self._as_of_time(dataset, log, as_of)
        raise InvalidInputError(
            f"as_of must be a snapshot id, Snapshot, SnapshotRef, datetime or None, not {as_of!r}"
        )

    async def _as_of_time(self, dataset: str, log: CommitLog, when: datetime) -> Manifest:
        head = await log.refresh()
        if head is None:
            raise NoSnapshotsError(f"dataset {dataset!r} has no snapshots", dataset_id=dataset)
        if head.created_at <= when:
            return head.snapshots[-1]
        # created_at never decreases along the log: binary search by seq.
        lo, hi = 0, head.seq
        while hi - lo > 1:
            mid = (lo + hi) // 2
            rec = await log.require(mid, format_snapshot_id(mid, 0))
            if rec.created_at <= when:
                lo = mid
            else:
                hi = mid
        if lo == 0:
            raise SnapshotNotFoundError(
                f"dataset {dataset!r} has no snapshot as of {when.isoformat()}",
                dataset_id=dataset,
            )
        rec = await log.require(lo, format_snapshot_id(lo, 0))
        return rec.snapshots[-1]

    async def files(
        self, dataset: str, *, as_of: object = None, where: object = None
    ) -> list[DataFile]:
        """The data files of every snapshot up to and including ``as_of``.

        Oldest snapshot first, each snapshot's files in manifest order. Only
        files that committed manifests list are returned.

        Parameters
        ----------
        dataset
            The dataset id.
        as_of
            ``None`` (latest), a snapshot id, a :class:`~aiolode.Snapshot` or
            :class:`SnapshotRef`, or a timezone-aware datetime (the newest
            snapshot committed at or before it).
        where
            ``None``; a mapping of partition key to a value or a collection of
            values (``{"source": "a", "day": {"2024-01-01", "2024-01-02"}}``;
            values compare in their path form, so ints and dates work); or a
            predicate called with each file's partition values
            (``dict[str, str]``) returning a bool.

        Cost: resolving ``as_of`` (see :meth:`resolve`) + 1 ``get`` per commit
        record up to it (16 concurrent; cached records are free) + 1 ``get``
        per partition manifest **matching** ``where`` (format v2 partitioned
        snapshots, 16 concurrent): the records hold per-partition summaries,
        so partitions filtered out are never read (see ``docs/reader.md``).
        Memory: the records read (bounded by a 256-record cache) + the result.

        Raises
        ------
        InvalidInputError
            Bad ``as_of``/``where``, or ``where`` names a key that is not a
            partition key of the dataset.
        SnapshotNotFoundError, NoSnapshotsError
            ``as_of`` does not designate a snapshot.
        FormatError, StorageError
            A record is unreadable or the store failed.
        """
        match, keys = compile_where(where)
        target = await self.resolve(dataset, as_of)
        if target is None:
            return []
        seq, idx = parse_snapshot_id(target.snapshot_id, dataset_id=dataset)
        picked: list[tuple[Manifest, PartitionRef | None]] = []
        checked = not keys
        for rec in await self._records(dataset, seq):
            for m in rec.snapshots if rec.seq < seq else rec.snapshots[: idx + 1]:
                if not checked:
                    known = set(m.layout.get("partition_keys") or ())
                    unknown = keys - known
                    if unknown:
                        raise InvalidInputError(
                            f"where names {sorted(unknown)}, not partition keys of dataset "
                            f"{dataset!r} (its keys: {sorted(known)})",
                            dataset_id=dataset,
                        )
                    checked = True
                if not m.partition_manifests:
                    picked.append((m, None))
                    continue
                # Pruning: only the partition manifests the filter accepts.
                picked.extend(
                    (m, r) for r in m.partition_manifests if match is None or match(r.partition)
                )

        async def load(item: tuple[Manifest, PartitionRef | None]) -> list[FileRef]:
            m, ref = item
            if ref is None:
                return [f for f in m.files if match is None or match(f.partition)]
            return await load_partition(self._store, m, ref)

        loaded = await bounded_map(load, picked, limit=_FETCH_CONCURRENCY)
        return [
            DataFile(
                file=f,
                snapshot_id=m.snapshot_id,
                codec=m.codec,
                compressor=m.compressor,
                codec_options=m.codec_options,
                compressor_options=m.compressor_options,
            )
            for (m, _), fs in zip(picked, loaded, strict=True)
            for f in fs
        ]

    async def to_arrow_dataset(
        self,
        dataset: str,
        *,
        as_of: object = None,
        where: object = None,
        schema: Any = None,
        filesystem: str = "auto",
        verify: bool = False,
    ) -> Any:
        """A ``pyarrow.dataset.Dataset`` over :meth:`files` (see
        :func:`aiolode.reader.arrow_dataset` for the parameters and costs).

        Raises
        ------
        UnsupportedOperationError
            Raw (codec-less) files have no records.
        InvalidInputError, SnapshotNotFoundError, NoSnapshotsError
            As for :meth:`files`.
        ChecksumMismatchError
            A file aiolode reads itself (``verify=True``, the ``"memory"``
            route, JSONL decoded eagerly) does not match its manifest.
        """
        from ..arrow import arrow_dataset

        files = await self.files(dataset, as_of=as_of, where=where)
        return await arrow_dataset(
            self._store, files, schema=schema, filesystem=filesystem, verify=verify
        )


async def _verified(
    chunks: AsyncGenerator[bytes, None], ref: FileRef
) -> AsyncGenerator[bytes, None]:
    hasher = None
    if ref.checksum is not None:
        algo, _ = parse_recorded(ref.checksum)
        hasher = algo.hasher()
    async with aclosing(chunks) as it:
        async for chunk in it:
            if hasher is not None:
                # Hashing a 1 MiB chunk takes about a millisecond: off the loop.
                await anyio.to_thread.run_sync(hasher.update, chunk)
            yield chunk
    if hasher is not None and ref.checksum is not None:
        algo, _ = parse_recorded(ref.checksum)
        actual = algo.format(hasher.hexdigest())
        if actual != ref.checksum:
            raise ChecksumMismatchError(
                f"checksum mismatch for {ref.key!r}: expected {ref.checksum}, got {actual}",
                key=ref.key,
                algorithm=algo.name,
                expected=ref.checksum,
                actual=actual,
            )
