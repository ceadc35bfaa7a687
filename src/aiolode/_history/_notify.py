"""In-process wake-ups: a commit through a store object wakes that log's watchers at once.

Watchers in other processes find new records by polling; watchers sharing the
committer's store object need not wait for their next poll.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["forget", "notify", "waiter"]

_WAITERS: weakref.WeakKeyDictionary[Store, dict[str, set[anyio.Event]]] = (
    weakref.WeakKeyDictionary()
)


def waiter(store: Store, log_prefix: str) -> anyio.Event:
    """A fresh event set by the next :func:`notify` for this store and log.

    The caller must :func:`forget` it when done waiting.
    """
    event = anyio.Event()
    _WAITERS.setdefault(store, {}).setdefault(log_prefix, set()).add(event)
    return event


def forget(store: Store, log_prefix: str, event: anyio.Event) -> None:
    """Stop tracking ``event``."""
    logs = _WAITERS.get(store)
    if logs is None:
        return
    events = logs.get(log_prefix)
    if events is not None:
        events.discard(event)
        if not events:
            del logs[log_prefix]


def notify(store: Store, log_prefix: str) -> None:
    """Wake every watcher of this log waiting on this store object (no I/O)."""
    logs = _WAITERS.get(store)
    if not logs:
        return
    for event in logs.pop(log_prefix, ()):
        event.set()
