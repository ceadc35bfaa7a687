"""Store adapters: memory, local filesystem, S3-compatible object storage."""

from __future__ import annotations

from ._base import Store as Store
from ._memory import MemoryStore as MemoryStore
from ._wrapper import WrapperStore as WrapperStore

__all__ = ["MemoryStore", "Store", "WrapperStore"]
