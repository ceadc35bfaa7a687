"""Value types shared by every layer: object metadata, put modes, progress callbacks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, TypeAlias

import attrs

__all__ = ["IfMatch", "ObjectInfo", "ProgressCallback", "PutMode"]


@attrs.frozen
class IfMatch:
    """Compare-and-swap put mode: write only if the object's etag is ``etag``.

    A missing object never matches. The comparison and the write are one atomic
    step on every store (S3 ``If-Match``; a cross-process lock on files).
    """

    etag: str


PutMode: TypeAlias = Literal["create", "overwrite"] | IfMatch
"""How :meth:`aiolode.Store.put` treats an existing key.

``"create"`` (the default) fails with :class:`~aiolode.ObjectExistsError` if the
key exists, decided atomically; ``"overwrite"`` replaces unconditionally;
:class:`IfMatch` replaces only the version the caller last saw.
"""

ProgressCallback: TypeAlias = Callable[[int], "Awaitable[object] | object"]
"""Called with the number of bytes consumed so far; may be sync or async."""


@attrs.frozen
class ObjectInfo:
    """What a store knows about one object.

    Attributes
    ----------
    key
        The key, relative to the store (never including an S3 prefix or root).
    size
        Size in bytes.
    etag
        Opaque version token; changes on every write. Pass it to :class:`IfMatch`.
    last_modified
        Time of the last write (timezone-aware, UTC), ``None`` if unknown.
    """

    key: str
    size: int
    etag: str
    last_modified: datetime | None = None
