"""Store calls every history makes the same way: retried reads, unique puts, cleanup."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import anyio

from ..errors import AiolodeError, ObjectExistsError, TransientStorageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from .._retry import Retry
    from ..store import Store

__all__ = ["CLEANUP_TIMEOUT", "delete_quietly", "put_unique", "retrying"]

T = TypeVar("T")

#: Longest a best-effort cleanup may hold up its caller (a dead store must not
#: hang a cancellation): an orphan is wasted space, never visible data.
CLEANUP_TIMEOUT = 10.0


async def retrying(retry: Retry, fn: Callable[[], Awaitable[T]]) -> T:
    """``fn()``, retried on :class:`~aiolode.TransientStorageError` per ``retry``.

    Raises
    ------
    TransientStorageError
        Still failing after ``retry.attempts`` attempts.
    AiolodeError
        Any other failure, at once.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except TransientStorageError:
            if attempt >= retry.attempts:
                raise
            await anyio.sleep(retry.delay(attempt))


async def put_unique(
    store: Store, key: str, data: bytes | bytearray | memoryview, retry: Retry
) -> None:
    """Create-only put of a key only this caller knows (a fresh uuid), retrying transients.

    An :class:`~aiolode.ObjectExistsError` on a *retry* means an earlier attempt
    was applied and only its acknowledgement was lost: the object is ours.

    Raises
    ------
    ObjectExistsError
        On the first attempt (the key was not unique: a bug in the caller).
    StorageError
        The store kept failing.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            await store.put(key, data, mode="create")
            return
        except ObjectExistsError:
            if attempt > 1:
                return
            raise
        except TransientStorageError:
            if attempt >= retry.attempts:
                raise
            await anyio.sleep(retry.delay(attempt))


async def delete_quietly(store: Store, keys: Iterable[str]) -> None:
    """Best-effort deletion of objects nothing references (aborted writes).

    Shielded, so a cancelled writer still cleans up; bounded by
    :data:`CLEANUP_TIMEOUT`, so a dead store cannot hang that cancellation.
    Failures are ignored: what is left is an orphan (``gc()`` removes it).
    """
    todo = list(keys)
    if not todo:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT):
        for key in todo:
            try:
                await store.delete(key)
            except AiolodeError:
                continue
