"""Store adapters: memory, local filesystem, S3-compatible object storage."""

from __future__ import annotations

from ._base import Store as Store
from ._memory import MemoryStore as MemoryStore
from ._s3 import S3Store as S3Store
from ._wrapper import WrapperStore as WrapperStore

__all__ = ["MemoryStore", "S3Store", "Store", "WrapperStore"]
