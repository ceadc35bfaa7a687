"""Collecting and dropping a history: the sequences datasets and volumes share.

Garbage collection ends the same way for both (:func:`finish_gc`): raise the
low-water mark above the records about to go, delete, point the hint at the
head, abort killed writes' uploads.

A drop commits a tombstone record (nothing is accepted after it), raises the
low-water mark to it, and sweeps the prefix (:func:`sweep_dropped`), then
aborts the uploads the dropped history left pending. Only three questions
differ between a dataset and a volume and stay with the caller: what the old
life names (what may go at once), how the tombstone is committed, and which
pending uploads belong to the dropped life.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from ._collect import check_grace, delete_keys, sweep_dropped
from ._log import LogRecord
from ._reports import DropReport, GCReport
from ._uploads import abort_uploads

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from ..store import Store
    from ..types import PendingUpload
    from ._log import SequenceLog

__all__ = ("DropHooks", "drop_history", "finish_gc")

R = TypeVar("R", bound=LogRecord)
R_contra = TypeVar("R_contra", bound=LogRecord, contravariant=True)


class DropHooks(Protocol[R_contra]):
    """The answers a drop needs from its owner (a dataset or a volume)."""

    async def old_life(self, head: R_contra | None) -> Callable[[str], bool]:
        """Asked before the tombstone: which keys the dropped life owns (they
        go at once, whatever their stamp)."""

    async def tombstone(self) -> None:
        """Commit the drop record on a live head."""

    async def forget(self) -> None:
        """After the tombstone (not on a dry run): remove what opens the name."""

    async def new_life(self) -> bool:
        """Whether the name was written again since the drop."""

    async def uploads(self, head: R_contra | None, grace: timedelta) -> list[PendingUpload]:
        """The pending uploads of the dropped life."""


async def drop_history(
    store: Store,
    log: SequenceLog[R],
    root: str,
    hooks: DropHooks[R],
    *,
    grace: object,
    dry_run: bool,
) -> DropReport:
    """Drop the history of ``log`` whose objects live under ``root``, asking
    ``hooks`` what differs between owners. Raises as :meth:`aiolode.Dataset.drop`
    (a bad ``grace``, a failing store, an unreadable record).
    """
    grace_td = check_grace(grace)
    head = await log.refresh()
    owned = await hooks.old_life(head)
    if not dry_run and head is not None and not head.dropped:
        await hooks.tombstone()
        head = log.head
    if not dry_run:
        await hooks.forget()
        if head is not None:
            await log.raise_lwm(head.seq)
    deleted, remaining = await sweep_dropped(
        store,
        log,
        root,
        head,
        grace=grace_td,
        dry_run=dry_run,
        new_life=hooks.new_life,
        old_life=owned,
    )
    pending = await hooks.uploads(head, grace_td)
    if not dry_run:
        await abort_uploads(store, log, pending)
    return DropReport(dry_run, tuple(sorted(deleted)), tuple(sorted(remaining)), tuple(pending))


async def finish_gc(
    store: Store,
    log: SequenceLog[R],
    head: R | None,
    doomed: dict[str, int],
    *,
    below: int,
    fence: datetime,
    young: int,
    uploads: list[PendingUpload],
    dry_run: bool,
) -> GCReport:
    """Delete ``doomed`` (key: size), the records below ``below`` among them,
    abort ``uploads``, and report.

    Raises
    ------
    StorageError
        The store failed.
    """
    if not dry_run and doomed:
        if below > 1:
            # Searches must start above the records about to go.
            await log.raise_lwm(below)
        await delete_keys(store, log, doomed)
        if head is not None:
            await log.write_hint(head.seq)  # not a collected record: cold opens stay cheap
    if not dry_run:
        await abort_uploads(store, log, uploads)
    return GCReport(
        dry_run, fence, tuple(sorted(doomed)), sum(doomed.values()), young, tuple(uploads)
    )
