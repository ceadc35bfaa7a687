"""Compaction: the small files of a record dataset rewritten into fewer, larger ones.

A compaction is a commit that changes no row. Its record carries one manifest
of ``operation="compact"`` (in ``CommitRecord.compactions``, not among the
snapshots: it has no id a reader lists and adds no row) whose files each say,
in ``sources``, which snapshot wrote each run of their rows and to which file.
It ``replaces`` those files in the live view, so ``files()`` and
``to_arrow_dataset()`` return the same rows in fewer files.

- Snapshots before it keep their own files: ``read(snapshot)`` and time travel
  read the bytes they were written with, and :meth:`~aiolode.Dataset.gc` keeps
  those files while their snapshot is retained (the space comes back when
  they expire — a compaction trades storage for read cost until then).
- Expiring a source snapshot makes the compacted file unusable (it holds the
  expired rows): it leaves the view and the retained sources' own files serve
  again (:func:`~aiolode.manifest._dataset.settle_compactions`), until the
  next compaction. No row is ever read twice or resurrected.
- Concurrent appends rebase (they touch none of the files compacted); a
  concurrent compaction or expiry that took one of the input files out of the
  view makes this one a :class:`~aiolode.ConflictError` (its files are left for
  :meth:`~aiolode.Dataset.gc`). A compaction whose files were written before a
  garbage collection's fence is a :class:`~aiolode.StaleWriteError`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, final

import anyio
import attrs

from .._concurrency import bounded_map
from .._history import Draft
from .._validate import safe_repr
from ..errors import (
    ConflictError,
    InvalidInputError,
    StaleWriteError,
    UnsupportedOperationError,
)
from ..manifest._dataset import CommitRecord, FileRef, Manifest, RowSource
from ..manifest._ids import dataset_snapshot_id
from ._checkpoint import fold, settle
from ._commit import record_base
from ._files import collect_files
from ._read import _decode, read_file
from ._state import dropped_error, expiry_of, head_state, schema_of
from ._write import delete_quietly, prepare_records

if TYPE_CHECKING:
    from ..manifest._dataset import DataFile
    from ..store import Store
    from ._commit import Committer
    from ._log import CommitLog
    from ._write import FileSpec

__all__ = ("CompactReport", "compact")

#: Files smaller than this fraction of the target are candidates.
_SMALL = 0.75
#: Input files read concurrently.
_READS = 8


@final
@attrs.frozen
class CompactReport:
    """What :meth:`Dataset.compact` rewrote (or would, with ``dry_run``).

    Attributes
    ----------
    dry_run
        Nothing was written or committed.
    record
        Sequence number of the compaction's commit record (``None``: dry run,
        or nothing to compact).
    replaced
        Keys of the files taken out of the live view, in commit order.
    written
        Keys of the files that now hold their rows (empty on a dry run).
    groups
        How many output files (one per group of small files of a partition).
    rows
        Rows rewritten.
    bytes_in, bytes_out
        Stored size of the files replaced and of those written.
    """

    dry_run: bool
    record: int | None
    replaced: tuple[str, ...]
    written: tuple[str, ...]
    groups: int
    rows: int
    bytes_in: int
    bytes_out: int


def _check_int(name: str, value: object, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InvalidInputError(f"{name} must be an int >= {low}, not {safe_repr(value)}")
    return value


def _plan(
    files: list[DataFile], statics: tuple[Any, ...], target: int, min_files: int
) -> list[list[DataFile]]:
    """Groups of small files, per partition in commit order, each near ``target``."""
    by_partition: dict[tuple[tuple[str, str], ...], list[DataFile]] = {}
    for df in files:
        same = (df.codec, df.codec_options, df.compressor, df.compressor_options) == statics
        if not same or df.file.row_count is None or df.file.size >= target * _SMALL:
            continue
        by_partition.setdefault(tuple(sorted(df.file.partition.items())), []).append(df)
    groups: list[list[DataFile]] = []
    for small in by_partition.values():
        if len(small) < min_files:
            continue
        current: list[DataFile] = []
        size = 0
        for df in small:
            if current and size + df.file.size > target:
                groups.append(current)
                current, size = [], 0
            current.append(df)
            size += df.file.size
        groups.append(current)
    return [g for g in groups if len(g) >= 2]


def _sources(group: list[DataFile]) -> tuple[RowSource, ...]:
    out: list[RowSource] = []
    for df in group:
        if df.file.sources:
            out.extend(df.file.sources)
        else:
            assert df.file.row_count is not None
            out.append(RowSource(df.snapshot_id, df.file.row_count, df.file.key))
    return tuple(out)


async def _rewrite(spec: FileSpec, group: list[DataFile]) -> FileRef:
    """Read a group's files (checked), concatenate, store one file; its reference."""
    import pyarrow as pa

    assert spec.codec is not None
    codec = spec.codec

    async def one(df: DataFile) -> Any:
        data = await read_file(
            spec.store,
            df.file,
            spec.compressor,
            dataset_id=spec.dataset_id,
            snapshot_id=df.snapshot_id,
        )
        return await _decode(df.file, codec, data, codec.to_arrow, lambda t: t.num_rows)

    # A few reads in flight: on an object store a group costs its round trips
    # divided by this, not their sum (the order of the rows is kept).
    tables = await bounded_map(one, group, limit=_READS)

    def concat() -> Any:
        return pa.concat_tables(tables, promote_options="permissive")

    table = await anyio.to_thread.run_sync(concat)
    prepared = await prepare_records(spec, table)
    (ref,) = prepared.files
    sources = _sources(group)
    return attrs.evolve(ref, sources=sources)


async def compact(
    store: Store,
    log: CommitLog,
    committer: Committer,
    spec: FileSpec,
    *,
    where: object,
    target_file_size: object,
    min_files: object,
    dry_run: bool,
) -> CompactReport:
    """Compact the dataset's small files (see :meth:`aiolode.Dataset.compact`).

    Raises
    ------
    InvalidInputError
        A bad argument.
    UnsupportedOperationError
        The dataset stores raw blobs (no records to compact).
    ConflictError
        A concurrent compaction or expiry took an input file out of the view.
    StaleWriteError
        The rewritten files predate a garbage collection's fence.
    DatasetNotFoundError
        The dataset was dropped.
    CorruptDataError, ChecksumMismatchError, StorageError, FormatError
        An input file is damaged, the store failed, or a record is unreadable.
    """
    target = _check_int("target_file_size", target_file_size, 1)
    least = _check_int("min_files", min_files, 2)
    dataset_id = log.spec.owner_id
    if spec.codec is None:
        raise UnsupportedOperationError(
            f"dataset {dataset_id!r} stores raw blobs; only record datasets are compacted",
            dataset_id=dataset_id,
        )
    started = datetime.now(UTC)
    state = await head_state(log)
    if state.dropped:
        raise dropped_error(dataset_id)
    files = await collect_files(store, log, state, where=where)
    st = committer.statics
    statics = (st.codec, st.codec_options, st.compressor, st.compressor_options)
    groups = _plan(files, statics, target, least)
    replaced = tuple(df.file.key for g in groups for df in g)
    rows = sum(df.file.row_count or 0 for g in groups for df in g)
    bytes_in = sum(df.file.size for g in groups for df in g)
    if dry_run or not groups:
        return CompactReport(dry_run, None, replaced, (), len(groups), rows, bytes_in, 0)
    recorded = await schema_of(log, state.head)
    wspec = attrs.evolve(
        spec, schema=None if recorded is None else recorded[1], schema_mode="strict"
    )
    written: list[FileRef] = []
    try:
        for g in groups:
            # One group at a time: memory is one group's decoded rows.
            written.append(await _rewrite(wspec, g))
        for ref, g in zip(written, groups, strict=True):
            if ref.row_count != sum(df.file.row_count or 0 for df in g):
                raise AssertionError("a compacted file lost rows")  # pragma: no cover
    except BaseException:
        await delete_quietly(store, [f.key for f in written])
        raise

    async def prepare(
        head: CommitRecord | None, seq: int, token: str
    ) -> Draft[CommitRecord] | None:
        if head is None:
            raise ConflictError(f"dataset {dataset_id!r} has no history", dataset_id=dataset_id)
        if head.dropped:
            raise dropped_error(dataset_id)
        if head.gc_fence is not None and started <= head.gc_fence:
            raise StaleWriteError(
                f"this compaction began at {started.isoformat()}, before the fence "
                f"{head.gc_fence.isoformat()} of a garbage collection of dataset "
                f"{dataset_id!r}: its files may have been collected; run it again",
                dataset_id=dataset_id,
            )
        if state.head is None or head.seq != state.head.seq:
            # Appends rebase; anything that took an input out of the view conflicts.
            expiry = await expiry_of(log, head)
            view = await fold(store, log, head.seq, expiry=expiry)
            await settle(view, expiry)
            lost = [k for k in replaced if k not in view.files or not view.files[k].live]
            if lost:
                raise ConflictError(
                    f"{len(lost)} of the files this compaction rewrote left the view of "
                    f"dataset {dataset_id!r} meanwhile (first: {lost[0]!r}); run it again",
                    dataset_id=dataset_id,
                )
        base = record_base(log, head, seq, token, committer.life)
        parent = base.pop("tip", None)
        manifest = Manifest(
            dataset_id=dataset_id,
            snapshot_id=dataset_snapshot_id(seq, 0),
            parent_id=parent,
            created_at=base["created_at"],
            metadata={},
            files=tuple(written),
            row_count=rows,
            commit_token=token,
            codec=st.codec,
            codec_options=st.codec_options,
            compressor=st.compressor,
            compressor_options=st.compressor_options,
            layout=st.layout,
            operation="compact",
            replaces=replaced,
        )
        return Draft(CommitRecord(snapshots=(), compactions=(manifest,), tip=parent, **base))

    outcome = await committer.commit_ops(prepare)
    if outcome.error is not None:
        if not outcome.maybe_committed:
            await delete_quietly(store, [f.key for f in written])
        raise outcome.error
    assert outcome.record is not None
    return CompactReport(
        False,
        outcome.record.seq,
        replaced,
        tuple(f.key for f in written),
        len(groups),
        rows,
        bytes_in,
        sum(f.size for f in written),
    )
