"""The files engine: which data files a dataset's history holds as of a snapshot.

One implementation for every entry point (``Dataset.files``, the Arrow bridge,
``DatasetReader``): resolving ``as_of`` (a snapshot id, a Snapshot or a time),
walking the log from ``since`` (exclusive) to it, and pruning partitions with
``where`` so that partition manifests that do not match are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import aclosing
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeAlias

from .._concurrency import bounded_map
from .._validate import safe_repr
from ..errors import (
    InvalidInputError,
    ManifestFormatError,
    NoSnapshotsError,
    SnapshotNotFoundError,
)
from ..layout import stringify_partition_value
from ..manifest._dataset import CheckpointSnapshot, DataFile, FileRef
from ..manifest._ids import dataset_snapshot_id, parse_dataset_snapshot_id
from ._checkpoint import Folded, fold, settle, summary
from ._partitions import load_files
from ._snapshot import Snapshot
from ._state import dropped_error

if TYPE_CHECKING:
    from ..manifest._dataset import Manifest
    from ..store import Store
    from ._log import CommitLog
    from ._state import HeadState

#: Partition manifests read concurrently by one call.
_FETCH_CONCURRENCY = 16

__all__ = [
    "PartitionFilter",
    "collect_files",
    "compile_where",
    "manifest_at",
    "resolve_as_of",
    "snapshot_position",
]

PartitionFilter: TypeAlias = "Mapping[str, object] | Callable[[Mapping[str, str]], bool] | None"
"""A ``where=`` argument: see :func:`compile_where`."""


_SCALARS = (str, int, float, bool, date, datetime)


def _one(key: str, value: object) -> str:
    if not isinstance(value, _SCALARS):
        raise InvalidInputError(
            f"where[{key!r}] must be a str, int, float, bool, date, datetime or a collection "
            f"of them, not {type(value).__name__}"
        )
    return stringify_partition_value(key, value)


def compile_where(where: object) -> tuple[Callable[[Mapping[str, str]], bool] | None, set[str]]:
    """Turn a ``where=`` argument into a predicate over partition values.

    ``where`` is ``None`` (everything), a mapping ``{key: value}`` or
    ``{key: {v1, v2}}`` (a file matches when, for every key, its value is one of
    those given; values are compared in their path form, so ``{"day": 7}``
    matches the partition ``day=7``), or a callable taking the file's partition
    values (a ``dict[str, str]``) and returning a bool.

    Returns the predicate (``None`` for everything) and the keys a mapping names
    (checked against the dataset's partition keys by the caller).

    Raises
    ------
    InvalidInputError
        Any other type, a non-str key, a value of an unsupported type, or an
        empty collection (it would match nothing, which is surely a mistake).
    """
    if where is None:
        return None, set()
    if isinstance(where, Mapping):
        wanted: dict[str, frozenset[str]] = {}
        for k, v in where.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"where keys are partition names (str), not {safe_repr(k)}")
            if isinstance(v, Collection) and not isinstance(v, str | bytes):
                values = frozenset(_one(k, x) for x in v)
                if not values:
                    raise InvalidInputError(f"where[{k!r}] is an empty collection")
            else:
                values = frozenset((_one(k, v),))
            wanted[k] = values

        def match(partition: Mapping[str, str]) -> bool:
            return all(partition.get(k) in vs for k, vs in wanted.items())

        return match, set(wanted)
    if callable(where):
        pred = where

        def call(partition: Mapping[str, str]) -> bool:
            # A copy: the predicate must not be able to alter the manifest.
            return bool(pred(dict(partition)))

        return call, set()
    raise InvalidInputError(
        f"where must be None, a mapping of partition values or a callable, not {safe_repr(where)}"
    )


# ------------------------------------------------------------------ resolving
def snapshot_position(snapshot: object, dataset_id: str) -> tuple[int, int]:
    """``(seq, index)`` of a snapshot given by id or :class:`~aiolode.Snapshot`.

    Raises
    ------
    InvalidInputError
        Not a str or Snapshot, or a Snapshot of another dataset.
    SnapshotNotFoundError
        A string that is not a snapshot id of a dataset.
    """
    if isinstance(snapshot, Snapshot):
        if snapshot.dataset_id != dataset_id:
            raise InvalidInputError(
                f"snapshot {snapshot.id} belongs to dataset {snapshot.dataset_id!r}, "
                f"not {safe_repr(dataset_id)}",
                dataset_id=dataset_id,
                snapshot_id=snapshot.id,
            )
        snapshot = snapshot.id
    return parse_dataset_snapshot_id(snapshot, dataset_id=dataset_id)


async def manifest_at(log: CommitLog, seq: int, index: int) -> Manifest:
    """The manifest of snapshot ``(seq, index)`` as its record holds it.

    Raises
    ------
    SnapshotNotFoundError, SnapshotExpiredError
        No such snapshot.
    FormatError, StorageError
        The record is unreadable or the store failed.
    """
    sid = dataset_snapshot_id(seq, index)
    rec = await log.require(seq, sid)
    if index >= len(rec.snapshots):
        raise SnapshotNotFoundError(
            f"dataset {log.spec.owner_id!r} has no snapshot {sid!r}",
            dataset_id=log.spec.owner_id,
            snapshot_id=sid,
        )
    return rec.snapshots[index]


async def resolve_as_of(log: CommitLog, as_of: object, state: HeadState) -> Manifest | None:
    """The manifest ``as_of`` designates; ``None`` for an empty dataset and ``as_of=None``.

    ``as_of`` is ``None`` (the latest), a snapshot id, a :class:`~aiolode.Snapshot`
    or a timezone-aware datetime (the newest snapshot committed at or before it).
    ``state`` is the head's (refreshed by the caller).

    Raises
    ------
    InvalidInputError
        Unsupported type, a naive datetime, or a snapshot of another dataset.
    SnapshotExpiredError
        The snapshot designated was expired.
    SnapshotNotFoundError
        No such snapshot, or none at or before the datetime.
    NoSnapshotsError
        A datetime on an empty dataset.
    DatasetNotFoundError
        The dataset was dropped.
    """
    dataset_id = log.spec.owner_id
    if state.dropped:
        raise dropped_error(dataset_id)
    if as_of is None:
        tip = state.tip
        if tip is None:
            return None
        state.check_visible(tip, dataset_id)
        return await manifest_at(log, *parse_dataset_snapshot_id(tip, dataset_id=dataset_id))
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise InvalidInputError("as_of needs a timezone-aware datetime", dataset_id=dataset_id)
        rec = await log.as_of(as_of, head=state.head) if state.head is not None else None
        sid = None if rec is None else rec.last_snapshot_id
        if sid is None:
            if state.tip is None:
                raise NoSnapshotsError(
                    f"dataset {dataset_id!r} has no snapshots", dataset_id=dataset_id
                )
            raise SnapshotNotFoundError(
                f"dataset {dataset_id!r} has no snapshot as of {as_of.isoformat()}",
                dataset_id=dataset_id,
            )
        state.check_visible(sid, dataset_id)
        return await manifest_at(log, *parse_dataset_snapshot_id(sid, dataset_id=dataset_id))
    if isinstance(as_of, str | Snapshot):
        seq, idx = snapshot_position(as_of, dataset_id)
        m = await manifest_at(log, seq, idx)
        state.check_visible(m.snapshot_id, dataset_id)
        return m
    raise InvalidInputError(
        f"as_of must be a snapshot id, a Snapshot, a datetime or None, not {type(as_of).__name__}",
        dataset_id=dataset_id,
    )


def _data_file(dataset_id: str, snap: CheckpointSnapshot, f: FileRef) -> DataFile:
    return DataFile(
        file=f,
        snapshot_id=snap.snapshot_id,
        codec=snap.codec,
        compressor=snap.compressor,
        codec_options=snap.codec_options,
        compressor_options=snap.compressor_options,
        dataset_id=dataset_id,
    )


async def collect_files(
    store: Store,
    log: CommitLog,
    state: HeadState,
    *,
    as_of: object = None,
    since: object = None,
    where: object = None,
) -> list[DataFile]:
    """The data files committed after ``since`` (exclusive) up to ``as_of`` (inclusive).

    Without ``since``: the live view at ``as_of`` — every file of a retained
    snapshot not replaced by a later compaction (up to ``as_of``), oldest first,
    from the newest checkpoint at or before ``as_of`` plus the records after it.
    With ``since``: what the snapshots after it added (an incremental read),
    leaving out compactions (they add no rows). Expired snapshots never appear.
    See :meth:`aiolode.Dataset.files` for the arguments.

    Raises
    ------
    InvalidInputError
        Bad ``as_of``/``since``/``where``; ``where`` names a key that is not a
        partition key; ``since`` is after ``as_of``.
    SnapshotNotFoundError, SnapshotExpiredError, NoSnapshotsError
        ``as_of`` or ``since`` designates no visible snapshot.
    FormatError, StorageError
        A record is unreadable, missing below the head, or the store failed.
    """
    dataset_id = log.spec.owner_id
    match, keys = compile_where(where)
    target = await resolve_as_of(log, as_of, state)
    if target is None:
        return []
    if keys:
        known = set(target.layout.get("partition_keys") or ())
        unknown = keys - known
        if unknown:
            raise InvalidInputError(
                f"where names {sorted(unknown)}, not partition keys of dataset "
                f"{dataset_id!r} (its keys: {sorted(known)})",
                dataset_id=dataset_id,
            )
    seq, idx = parse_dataset_snapshot_id(target.snapshot_id, dataset_id=dataset_id)
    if since is not None:
        return await _since(store, log, state, since, target, match)
    head = state.head
    if head is not None and target.snapshot_id == state.tip:
        # The latest snapshot: everything up to the head, compactions after it
        # too. (Time travel to an earlier one reads the files as they were at
        # its commit: the same rows, without later compactions.)
        view = await fold(store, log, head.seq, match=match, expiry=state.expiry)
    else:
        view = (
            await fold(store, log, seq - 1, match=match, expiry=state.expiry)
            if seq > 1
            else Folded.start(None)
        )
        rec = await log.require(seq, target.snapshot_id)
        for m in rec.snapshots[: idx + 1]:
            if not state.expiry.covers(seq, m.snapshot_id):
                view.add(m, await load_files(store, m, match))
    await settle(view, state.expiry)
    out: list[DataFile] = []
    for f in view.files.values():
        if not f.live or (match is not None and not match(f.file.partition)):
            continue
        snap = view.snapshots.get(f.snapshot_id)
        if snap is None:
            # Only a checkpoint can say this (records add a snapshot with its
            # files): one that names a file of a snapshot it does not list.
            raise ManifestFormatError(
                f"dataset {dataset_id!r}: the history's fold lists file {f.file.key!r} of "
                f"snapshot {f.snapshot_id}, which it does not hold (a damaged checkpoint)",
                key=f.file.key,
                dataset_id=dataset_id,
                snapshot_id=f.snapshot_id,
            )
        out.append(_data_file(dataset_id, snap, f.file))
    return out


async def _since(
    store: Store,
    log: CommitLog,
    state: HeadState,
    since: object,
    target: Manifest,
    match: Callable[[Mapping[str, str]], bool] | None,
) -> list[DataFile]:
    dataset_id = log.spec.owner_id
    if not isinstance(since, str | Snapshot):
        raise InvalidInputError(
            f"since must be a snapshot id or a Snapshot, not {type(since).__name__}",
            dataset_id=dataset_id,
        )
    s_seq, s_idx = snapshot_position(since, dataset_id)
    seq, idx = parse_dataset_snapshot_id(target.snapshot_id, dataset_id=dataset_id)
    if (s_seq, s_idx) > (seq, idx):
        raise InvalidInputError(
            f"since={since if isinstance(since, str) else since.id} is after as_of "
            f"{target.snapshot_id}",
            dataset_id=dataset_id,
        )
    if s_seq >= state.expiry.below:
        await manifest_at(log, s_seq, s_idx)  # it must exist (an expired cursor is fine)
    picked: list[Manifest] = []
    async with aclosing(log.walk(max(s_seq, state.expiry.below), seq)) as records:
        async for rec in records:
            lo = s_idx + 1 if rec.seq == s_seq else 0
            hi = idx + 1 if rec.seq == seq else len(rec.snapshots)
            for m in rec.snapshots[lo:hi]:
                if m.operation == "append" and not state.expiry.covers(rec.seq, m.snapshot_id):
                    picked.append(m)
    loaded = await bounded_map(
        lambda m: load_files(store, m, match), picked, limit=_FETCH_CONCURRENCY
    )
    out: list[DataFile] = []
    for m, files in zip(picked, loaded, strict=True):
        snap = summary(m)
        out.extend(_data_file(dataset_id, snap, f) for f in files)
    return out
