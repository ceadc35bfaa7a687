"""What a run committed: progress for resuming, its records, one batch by key.

These read the snapshots' ``metadata["ingest"]`` (written by every ingestor
commit), so they need no listing and no extra objects. On a layout
partitioned by ``run_id`` (:func:`~aiolode.quarry_layout`) other runs'
snapshots are skipped from the commit records' partition summaries, without
reading their partition manifests.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, final

import attrs

from .._validate import safe_repr
from ..errors import DatasetNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from datetime import datetime

    from ..dataset import Dataset, Snapshot
    from ..layout import Layout

__all__ = (
    "RunProgress",
    "configured_layout",
    "find_batch",
    "ingest_metadata",
    "run_progress",
    "run_records",
)


async def configured_layout(ds: Dataset) -> Layout:
    """The dataset's layout as recorded (or as it will be recorded by its first
    write). Cost: one ``get`` of the descriptor (and the log's end), once per
    Dataset object.

    Raises
    ------
    ConfigMismatchError, FormatError, StorageError
        As for the first ``write``.
    """
    # Dataset has no public "open" step: its configuration is resolved lazily by
    # the first write. The ingestor needs the layout's partition keys before its
    # first emit (to derive ``day``, to filter by ``run_id``), so it resolves the
    # configuration the way the first write would; no object is written.
    await ds._configure()
    return ds.layout


def ingest_metadata(snap: Snapshot) -> Mapping[str, Any] | None:
    """The ``metadata["ingest"]`` an ingestor recorded on ``snap`` (``None`` if none)."""
    meta = snap.metadata.get("ingest")
    return meta if isinstance(meta, Mapping) else None


def _run_of(meta: Mapping[str, Any] | None) -> str | None:
    if meta is None:
        return None
    run = meta.get("run")
    if not isinstance(run, Mapping):
        return None
    rid = run.get("run_id")
    return rid if isinstance(rid, str) else None


def _seq_of(rec: Mapping[str, Any]) -> int:
    seq = rec.get("seq")
    return seq if isinstance(seq, int) else 0


def _where(layout: Layout, run_id: str) -> dict[str, str] | None:
    return {"run_id": run_id} if "run_id" in layout.partition_keys else None


async def find_batch(
    ds: Dataset, key: str, *, run_id: str, layout: Layout, since: datetime
) -> Snapshot | None:
    """The snapshot that committed batch ``key``, if it was committed at or after ``since``.

    Walks the history newest first and stops at the first snapshot older than
    ``since`` (commit times never decrease along the log). Cost: ``latest()``
    + one ``get`` per commit record since ``since`` (+ partition manifests of
    the run's snapshots).

    Raises
    ------
    StorageError, FormatError
        The store failed or a record is unreadable.
    """
    async with aclosing(ds.snapshots(newest_first=True, where=_where(layout, run_id))) as snaps:
        async for snap in snaps:
            if snap.created_at < since:
                return None
            meta = ingest_metadata(snap)
            if meta is not None and meta.get("batch") == key:
                return snap
    return None


@final
@attrs.frozen
class RunProgress:
    """What one run has committed to a dataset (all attempts).

    Attributes
    ----------
    run_id
        The run.
    snapshots
        Snapshots committed by the run's ingestors (drop tallies included).
    rows
        Records committed.
    last_seq
        The highest ``seq`` committed (0 if none): a resumed ingestor numbers
        on from ``last_seq + 1``.
    attempts
        The attempts that committed something, ascending.
    last_snapshot_id
        The run's newest snapshot, if any.
    """

    run_id: str
    snapshots: int = 0
    rows: int = 0
    last_seq: int = 0
    attempts: tuple[int, ...] = ()
    last_snapshot_id: str | None = None


async def run_progress(ds: Dataset, run_id: str) -> RunProgress:
    """What run ``run_id`` committed to ``ds`` so far: resume from here.

    Cost: the descriptor (once per Dataset object), ``latest()``, one ``get`` per
    commit record of the history (16 concurrent), and — on a layout partitioned
    by ``run_id`` — only the run's own partition manifests. Memory: 16 records.

    Raises
    ------
    InvalidInputError
        ``run_id`` is not a non-empty str.
    StorageError, FormatError
        The store failed or a record is unreadable.
    """
    if not isinstance(run_id, str) or not run_id:
        raise InvalidInputError(f"run_id must be a non-empty str, not {safe_repr(run_id)}")
    layout = await configured_layout(ds)
    snapshots = rows = last_seq = 0
    attempts: set[int] = set()
    last: str | None = None
    try:
        async with aclosing(ds.snapshots(where=_where(layout, run_id))) as snaps:
            async for snap in snaps:
                meta = ingest_metadata(snap)
                if _run_of(meta) != run_id:
                    continue
                assert meta is not None
                snapshots += 1
                last = snap.id
                n = meta.get("rows")
                rows += n if isinstance(n, int) else 0
                seq_last = meta.get("seq_last")
                if isinstance(seq_last, int):
                    last_seq = max(last_seq, seq_last)
                attempt = meta["run"].get("attempt")
                if isinstance(attempt, int) and isinstance(seq_last, int):
                    attempts.add(attempt)
    except DatasetNotFoundError:
        pass  # nothing written yet: a first run
    return RunProgress(
        run_id=run_id,
        snapshots=snapshots,
        rows=rows,
        last_seq=last_seq,
        attempts=tuple(sorted(attempts)),
        last_snapshot_id=last,
    )


async def run_records(ds: Dataset, run_id: str) -> AsyncGenerator[dict[str, Any], None]:
    """Iterate over the records run ``run_id`` committed, in commit order:
    snapshot by snapshot, each snapshot's records by ``seq`` (so an attempt's
    records come in ``seq`` order, whatever the partitions). Wrap in
    :func:`contextlib.aclosing` if you may stop early.

    Cost: as :func:`run_progress`, plus one streamed read per data file of the
    run. Memory: one snapshot's records (one ingestor batch) at a time.

    Raises
    ------
    InvalidInputError
        ``run_id`` is not a non-empty str.
    ChecksumMismatchError, CorruptDataError, StorageError, FormatError
        As for :meth:`~aiolode.Dataset.iter_records`.
    """
    if not isinstance(run_id, str) or not run_id:
        raise InvalidInputError(f"run_id must be a non-empty str, not {safe_repr(run_id)}")
    layout = await configured_layout(ds)
    try:
        async with aclosing(ds.snapshots(where=_where(layout, run_id))) as snaps:
            async for snap in snaps:
                if _run_of(ingest_metadata(snap)) != run_id or not snap.files:
                    continue
                # One file per partition: the snapshot's records come back
                # grouped by partition; ``seq`` restores the run's order.
                batch: list[dict[str, Any]] = []
                async with aclosing(ds.iter_records(snap)) as recs:
                    async for rec in recs:
                        if rec.get("run_id") == run_id:
                            batch.append(rec)
                batch.sort(key=_seq_of)
                for rec in batch:
                    yield rec
    except DatasetNotFoundError:
        return
