"""What the head of a dataset's log says about the whole dataset.

Every record carries, cumulatively, what lifecycle operations decided: the
record that holds the current expiry state (``expiry_seq``), the newest garbage
collection fence, whether the dataset was dropped, and the newest snapshot
(``tip``, for records that commit only operations). So whatever the history's
length, the head plus at most one more record (cached) answer "which
snapshots are visible".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ..errors import DatasetNotFoundError, SnapshotExpiredError
from ..manifest._dataset import CommitRecord, ExpiryState
from ..manifest._ids import parse_dataset_snapshot_id
from ..schema import Schema

if TYPE_CHECKING:
    from datetime import datetime

    from ._log import CommitLog

__all__ = ["HeadState", "dropped_error", "expiry_of", "head_state", "schema_of"]


@attrs.frozen
class HeadState:
    """The head record and the expiry state it leads to."""

    head: CommitRecord | None
    expiry: ExpiryState

    @property
    def dropped(self) -> bool:
        """Whether the dataset was dropped."""
        return self.head is not None and self.head.dropped

    @property
    def gc_fence(self) -> datetime | None:
        """The newest garbage collection fence."""
        return None if self.head is None else self.head.gc_fence

    @property
    def tip(self) -> str | None:
        """The newest snapshot id (``None``: no snapshot yet)."""
        return None if self.head is None else self.head.last_snapshot_id

    def expired(self, snapshot_id: str) -> bool:
        """Whether ``snapshot_id`` (a well-formed id of this dataset) is expired."""
        seq, _ = parse_dataset_snapshot_id(snapshot_id, dataset_id="")
        return self.expiry.covers(seq, snapshot_id)

    def check_visible(self, snapshot_id: str, dataset_id: str) -> None:
        """Raise if ``snapshot_id`` is expired or the dataset was dropped.

        Raises
        ------
        DatasetNotFoundError
            The dataset was dropped.
        SnapshotExpiredError
            The snapshot was expired.
        """
        if self.dropped:
            raise dropped_error(dataset_id)
        if self.expired(snapshot_id):
            raise SnapshotExpiredError(
                f"snapshot {snapshot_id!r} of dataset {dataset_id!r} was expired",
                dataset_id=dataset_id,
                snapshot_id=snapshot_id,
            )


def dropped_error(dataset_id: str) -> DatasetNotFoundError:
    """The error for a dataset whose log ends with a drop."""
    return DatasetNotFoundError(f"dataset {dataset_id!r} was dropped", dataset_id=dataset_id)


async def expiry_of(log: CommitLog, record: CommitRecord | None) -> ExpiryState:
    """The expiry state as of ``record`` (one cached ``get`` at most).

    Raises
    ------
    FormatError, StorageError
        The record holding the state is unreadable or the store failed.
    """
    if record is None:
        return ExpiryState()
    if record.expiry is not None:
        return record.expiry
    if not record.expiry_seq:
        return ExpiryState()
    holder = await log.fetch(record.expiry_seq)
    if holder is None or holder.expiry is None:
        # Collected below the low-water mark: everything before it is expired.
        return ExpiryState(below=max(log.lwm, 1))
    return holder.expiry


async def head_state(log: CommitLog, *, refresh: bool = True) -> HeadState:
    """The head (refreshed unless ``refresh`` is false) and its expiry state.

    Raises
    ------
    FormatError, StorageError
        A record is unreadable or the store failed.
    """
    head = await log.refresh() if refresh else log.head
    return HeadState(head, await expiry_of(log, head))


async def schema_of(log: CommitLog, record: CommitRecord | None) -> tuple[str, Schema] | None:
    """The record schema as of ``record`` and the snapshot that recorded it
    (``None``: none recorded). One cached ``get`` at most.

    Raises
    ------
    ManifestFormatError
        The recorded schema is unreadable.
    FormatError, StorageError
        The record holding it is unreadable or the store failed.
    """
    if record is None:
        return None
    holder: CommitRecord | None = record
    if record.schema is None:
        if not record.schema_seq:
            return None
        holder = await log.fetch(record.schema_seq)
        if holder is None or holder.schema is None:
            return None
    assert holder is not None
    assert holder.schema is not None
    sid = holder.last_snapshot_id or f"record {holder.seq}"
    return sid, Schema.from_json(_plain(holder.schema))


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
