"""Value types shared by every layer: object metadata, put modes, progress callbacks,
pending uploads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, TypeAlias, final

import attrs

__all__ = ("IfMatch", "ObjectInfo", "PendingUpload", "ProgressCallback", "PutMode", "ReadStats")


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


@final
@attrs.frozen
class PendingUpload:
    """A write a store began and never finished: what
    :meth:`Store.abandoned_uploads <aiolode.Store.abandoned_uploads>` yields and
    :meth:`Store.abort_upload <aiolode.Store.abort_upload>` removes.

    A put that fails or is cancelled cleans up after itself; what is left
    behind comes from a process that died mid-write (killed, out of memory,
    power loss), or from a cleanup that itself failed.

    Attributes
    ----------
    key
        Where the upload is, relative to the store (never including an S3 prefix
        or a FileStore root). S3: the key the upload was writing. FileStore: the
        temp file's own path (``"a/b/.aiolode-tmp-1f2e3d4c5b6a7988"``): the key
        it was to become is not recorded anywhere, only its directory.
    upload_id
        The backend's handle: the S3 ``UploadId``; FileStore: the temp file's name.
    initiated
        When the upload was started (S3 ``Initiated``; FileStore: the temp
        file's last change, never earlier than the write's start), aware, UTC.
    size
        Bytes it holds, when the listing says (FileStore); ``None`` on S3, whose
        listing of uploads does not tell (each would need a ListParts).
    """

    key: str
    upload_id: str
    initiated: datetime
    size: int | None = None


@final
@attrs.frozen
class ReadStats:
    """Counters of a reader (``statistics()`` of a RangeReader, a VolumeReader, the
    Arrow store filesystem), or the sum over several: what reads cost.

    Attributes
    ----------
    requests
        Range requests sent to the store (``get_range`` calls).
    bytes_fetched
        Bytes those requests returned.
    head_requests
        ``head`` calls made to learn the object's size (0 when the size was given).
    cache_hits, cache_misses
        Pages found in / missing from the cache (reads larger than the cache
        bypass it and count neither).
    """

    requests: int = 0
    bytes_fetched: int = 0
    head_requests: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    def __add__(self, other: ReadStats) -> ReadStats:
        if not isinstance(other, ReadStats):
            return NotImplemented
        return ReadStats(
            *(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True))
        )
