"""Pending uploads in garbage collection and drop, shared by datasets and volumes.

A write killed mid-stream leaves a pending upload (an S3 multipart upload, a
FileStore temp file) under the prefix it wrote to: no listing shows it, and on
S3 it is billed until aborted. Garbage collection aborts those its fence makes
safe, by the rule it applies to unreferenced objects: the store started the
upload before the fence (allowing for how coarse its stamps are), so the write
began before the fence and its commit is refused anyway. Aborting an upload
never touches an object; a live put whose upload is aborted fails with
:class:`~aiolode.StaleWriteError` and publishes nothing.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._concurrency import bounded_map
from ..errors import UnsupportedOperationError
from ._calls import retrying
from ._collect import DELETE_CONCURRENCY, older_than_fence, stored_at
from ._log import WRITER_MAX_WARM_AGE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ..store import Store
    from ..types import PendingUpload
    from ._log import LogRecord, SequenceLog

__all__ = ("ANY_AGE", "abort_uploads", "dropped_uploads", "pending_before", "upload_order")

#: A cutoff no upload's start reaches: "whatever its age".
ANY_AGE = datetime.max.replace(tzinfo=UTC)

_log = logging.getLogger("aiolode.gc")


def upload_order(upload: PendingUpload) -> tuple[str, str]:
    """Reports list uploads by key, then upload id (backends order them differently)."""
    return (upload.key, upload.upload_id)


async def pending_before(
    store: Store, prefix: str, fence: datetime, *, exact: bool = False
) -> list[PendingUpload]:
    """The pending uploads under ``prefix`` the store surely started before
    ``fence``, sorted by :func:`upload_order`.

    ``exact``: compare stamps as they are (store clock against store clock, as
    a drop does against its tombstone) rather than allowing for their
    resolution (client clock against store clock, as a fence is).

    A backend that cannot list pending uploads (an S3-compatible server
    without ListMultipartUploads) has none to give: collection of objects goes
    on, and its uploads are left to the bucket's own lifecycle rules.

    Raises
    ------
    StorageError
        The store failed.
    """
    found: list[PendingUpload] = []
    try:
        async with aclosing(store.abandoned_uploads(prefix, older_than=fence)) as uploads:
            async for upload in uploads:
                if exact or older_than_fence(store, upload.initiated, fence):
                    found.append(upload)
    except UnsupportedOperationError as exc:
        _log.warning("pending uploads under %r are not collected: %s", prefix, exc)
        return []
    return sorted(found, key=upload_order)


async def dropped_uploads(
    store: Store,
    log: SequenceLog[Any],
    root: str,
    tombstone: LogRecord | None,
    *,
    grace: timedelta,
    new_life: Callable[[], Awaitable[bool]],
) -> list[PendingUpload]:
    """The pending uploads under ``root`` a drop aborts, whatever their age:
    those of the dropped history.

    Before the tombstone (a dry run, or a history never written): all of them.
    After it, a new life of the name may begin as soon as the tombstone is
    visible, so only those the store started before the tombstone (store clock
    against store clock, as :func:`~aiolode._history._collect.sweep_dropped`
    does for objects); and, once the tombstone is older than ``grace`` and the
    writers' window with no new life begun, those older than that too (a
    writer of the dropped history that was killed after the tombstone).

    Raises
    ------
    StorageError
        The store failed.
    """
    everything = await pending_before(store, root, ANY_AGE, exact=True)
    if tombstone is None or not bool(getattr(tombstone, "dropped", False)) or not everything:
        return everything
    cutoff = await stored_at(store, log, tombstone.seq)
    window = max(grace, timedelta(seconds=2 * WRITER_MAX_WARM_AGE))
    late: datetime | None = None
    if datetime.now(UTC) - tombstone.created_at >= window and not await new_life():
        late = datetime.now(UTC) - window
    return [
        u
        for u in everything
        if (cutoff is not None and u.initiated < cutoff)
        or (late is not None and older_than_fence(store, u.initiated, late))
    ]


async def abort_uploads(
    store: Store, log: SequenceLog[Any], uploads: Iterable[PendingUpload]
) -> None:
    """Abort ``uploads`` (already gone is fine), a bounded number at a time.

    Raises
    ------
    StorageError
        An abort kept failing.
    """

    async def one(upload: PendingUpload) -> None:
        await retrying(log.retry, lambda: store.abort_upload(upload))

    await bounded_map(one, list(uploads), limit=DELETE_CONCURRENCY)
