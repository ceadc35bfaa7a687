"""A dataset's commit log: the shared :class:`~aiolode._history.SequenceLog` with the
dataset's record model and the checks every record read from it must pass.

Keys (under the layout's ``log_prefix``)::

    _log/0000000000000001.json   commit record 1 (create-only: the commit itself)
    _log/0000000000000002.json   ...
    _log/_latest.json            hint: a recent sequence number (overwritten)
    _log/_lwm.json               low-water mark: the oldest retained record
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._history import LogSpec, SequenceLog
from ..errors import ManifestFormatError
from ..manifest._dataset import CommitRecord
from ..manifest._ids import DATASET_SEQ_WIDTH, dataset_snapshot_id

if TYPE_CHECKING:
    from .._retry import Retry
    from ..layout import Layout
    from ..manifest._dataset import Manifest
    from ..store import Store

__all__ = ["CommitLog", "dataset_log"]

CommitLog = SequenceLog[CommitRecord]


def _bad(key: str, dataset_id: str, what: str, field: str) -> ManifestFormatError:
    return ManifestFormatError(
        f"commit record {key!r}: {what}", key=key, dataset_id=dataset_id, field=field
    )


def check_manifest(m: Manifest, *, key: str, dataset_id: str, root: str) -> None:
    """Invariants of one snapshot that no valid writer breaks (beyond the model's own).

    Raises
    ------
    ManifestFormatError
        A file or partition manifest outside the dataset's own prefix, or totals
        that contradict the files.
    """
    where = f"snapshot {m.snapshot_id}"
    for i, f in enumerate(m.files):
        if not f.key.startswith(root):
            raise _bad(
                key, dataset_id, f"{where} names file {f.key!r} outside {root!r}", f"files[{i}].key"
            )
    for i, p in enumerate(m.partition_manifests):
        if not p.key.startswith(root):
            raise _bad(
                key,
                dataset_id,
                f"{where} names partition manifest {p.key!r} outside {root!r}",
                f"partition_manifests[{i}].key",
            )
    if m.files and m.partition_manifests:
        raise _bad(
            key, dataset_id, f"{where} has both inline files and partition manifests", "files"
        )
    counts = (
        [f.row_count for f in m.files]
        if not m.partition_manifests
        else [p.row_count for p in m.partition_manifests]
    )
    if m.row_count is not None and counts and all(c is not None for c in counts):
        total = sum(c or 0 for c in counts)
        if total != m.row_count:
            raise _bad(
                key,
                dataset_id,
                f"{where} records {m.row_count} rows but its files hold {total}",
                "row_count",
            )


def dataset_log(store: Store, layout: Layout, dataset_id: str, retry: Retry) -> CommitLog:
    """The commit log of ``dataset_id`` under ``layout`` on ``store`` (no I/O)."""
    root = layout.root(dataset_id)

    def check(rec: CommitRecord, seq: int, key: str) -> None:
        if rec.seq != seq or rec.dataset_id != dataset_id:
            raise _bad(key, dataset_id, f"says dataset {rec.dataset_id!r} seq {rec.seq}", "seq")
        if not rec.snapshots and not rec.ops and not rec.compactions:
            raise _bad(key, dataset_id, "commits no snapshot and no operation", "snapshots")
        if rec.compactions and rec.snapshots:
            raise _bad(key, dataset_id, "commits snapshots and compactions at once", "compactions")
        for i, m in enumerate(rec.compactions):
            want = dataset_snapshot_id(seq, i)
            if m.operation != "compact" or m.snapshot_id != want or m.dataset_id != dataset_id:
                raise _bad(
                    key,
                    dataset_id,
                    f"compaction {i} is {m.operation!r} {m.dataset_id!r} {m.snapshot_id!r}, "
                    f"expected a compaction {want!r}",
                    f"compactions[{i}]",
                )
            for f in m.files:
                if not f.sources or sum(s.rows for s in f.sources) != f.row_count:
                    raise _bad(
                        key,
                        dataset_id,
                        f"compacted file {f.key!r} does not account for its rows by source",
                        f"compactions[{i}].files",
                    )
            check_manifest(m, key=key, dataset_id=dataset_id, root=root)
        for i, m in enumerate(rec.snapshots):
            want = dataset_snapshot_id(seq, i)
            if m.operation != "append" or m.replaces:
                raise _bad(
                    key,
                    dataset_id,
                    f"snapshot {i} is a {m.operation!r} that replaces {len(m.replaces)} files; "
                    "snapshots append",
                    f"snapshots[{i}].operation",
                )
            if m.snapshot_id != want or m.dataset_id != dataset_id:
                raise _bad(
                    key,
                    dataset_id,
                    f"snapshot {i} is {m.dataset_id!r} {m.snapshot_id!r}, expected {want!r}",
                    f"snapshots[{i}].snapshot_id",
                )
            # The first snapshot's parent is the newest snapshot of an earlier
            # record (not always the previous one: records may commit only
            # operations), or none at the start of a dataset's life.
            parent_ok = (
                m.parent_id == rec.snapshots[i - 1].snapshot_id
                if i
                else m.parent_id is None or m.parent_id < f"{seq:016d}-"
            )
            if not parent_ok:
                raise _bad(
                    key,
                    dataset_id,
                    f"snapshot {m.snapshot_id} has parent {m.parent_id!r}, which cannot precede it",
                    f"snapshots[{i}].parent_id",
                )
            check_manifest(m, key=key, dataset_id=dataset_id, root=root)

    spec = LogSpec(
        kind="dataset",
        owner_id=dataset_id,
        prefix=layout.log_prefix(dataset_id),
        width=DATASET_SEQ_WIDTH,
        hint_key=f"{layout.log_prefix(dataset_id)}_latest.json",
        record_type=CommitRecord,
        check=check,
        snapshot_ids=CommitRecord.snapshot_ids,
        first_id=lambda seq: dataset_snapshot_id(seq, 0),
    )
    return SequenceLog(store, spec, retry)
