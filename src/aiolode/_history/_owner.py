"""What a dataset and a volume share as owners of one history."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store

__all__ = ("HistoryOwner",)


class HistoryOwner:
    """An id naming one history in one store (the base of Dataset and Volume)."""

    _id: str
    _store: Store

    @property
    def id(self) -> str:
        """The id the history is stored under (the dataset or volume id)."""
        return self._id

    @property
    def store(self) -> Store:
        """The store holding the history."""
        return self._store
