"""Store adapters: memory, local filesystem, S3-compatible object storage, GCS."""

from __future__ import annotations

from ._base import ArrowFilesystem as ArrowFilesystem
from ._base import Store as Store
from ._fs import FileStore as FileStore
from ._gcs import GCSStore as GCSStore
from ._memory import MemoryStore as MemoryStore
from ._open import open_store as open_store
from ._s3 import S3Store as S3Store
from ._wrapper import WrapperStore as WrapperStore

__all__ = (
    "ArrowFilesystem",
    "FileStore",
    "GCSStore",
    "MemoryStore",
    "S3Store",
    "Store",
    "WrapperStore",
    "open_store",
)
