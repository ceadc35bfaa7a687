"""The reports of the lifecycle operations, shared by datasets and volumes."""

from __future__ import annotations

from datetime import datetime
from typing import final

import attrs

__all__ = ("DropReport", "ExpireReport", "GCReport")


@final
@attrs.frozen
class ExpireReport:
    """What :meth:`Dataset.expire` / :meth:`Volume.expire` expired (or would, with ``dry_run``).

    Attributes
    ----------
    dry_run
        Nothing was committed.
    expired
        Ids of the snapshots this call expired, oldest first.
    files
        Keys of the data files that left every view with them (always empty
        for a volume: a volume snapshot holds every block of its parent).
    bytes
        Their total size.
    record
        Sequence number of the expiry's commit record (``None``: dry run,
        nothing to expire, or a volume, whose expiry raises its low-water mark).
    """

    dry_run: bool
    expired: tuple[str, ...]
    files: tuple[str, ...]
    bytes: int
    record: int | None


@final
@attrs.frozen
class GCReport:
    """What :meth:`Dataset.gc` / :meth:`Volume.gc` deleted (or would delete, with ``dry_run``).

    Attributes
    ----------
    dry_run
        Nothing was committed or deleted.
    fence
        Objects older than this and referenced by no retained snapshot are
        collected; writes begun before it are refused at commit.
    deleted
        The keys deleted (or that a real run would delete now), sorted.
    bytes
        Their total size.
    kept_young
        Unreferenced objects left because they are younger than the fence (an
        in-flight write may still commit them).
    """

    dry_run: bool
    fence: datetime
    deleted: tuple[str, ...]
    bytes: int
    kept_young: int


@final
@attrs.frozen
class DropReport:
    """What :meth:`Dataset.drop` / :meth:`Volume.drop` removed.

    Attributes
    ----------
    dry_run
        Nothing was committed or deleted.
    deleted
        The keys deleted (or that would be), sorted.
    remaining
        What a later run removes (empty when complete): log records, kept
        until the drop is older than ``grace`` and than ten minutes (a writer
        holding a recent view of the log must find the tombstone), and objects
        the store stored no earlier than the tombstone (they may belong to a
        new dataset or volume of the same name).
    """

    dry_run: bool
    deleted: tuple[str, ...]
    remaining: tuple[str, ...]

    @property
    def done(self) -> bool:
        """Whether nothing of the dataset is left in the store."""
        return not self.remaining
