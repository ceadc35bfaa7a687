"""The aiolode exception tree.

Errors are grouped by *what a handler does* with them, not by where they come
from::

    AiolodeError
    ├── NotFoundError (LookupError)         the thing is not there
    │   ├── ObjectNotFoundError             a store key is missing
    │   ├── SnapshotNotFoundError           no snapshot with that id
    │   │   └── SnapshotExpiredError        it existed, but was expired
    │   ├── NoSnapshotsError                the dataset/volume has no commits yet
    │   │   ├── DatasetNotFoundError        no dataset with that id (never written, dropped)
    │   │   └── VolumeNotFoundError         the volume was dropped
    │   └── RangeMissingError               volume bytes never committed (.missing)
    ├── ConflictError                       someone else won: re-read and retry
    │   ├── ObjectExistsError               create-only put on an existing key
    │   ├── PreconditionFailedError         if-match put with a stale etag
    │   ├── SnapshotConflictError           a commit touched what you touched
    │   └── StaleWriteError                 a write outlived the GC grace period: redo it
    ├── InvalidInputError (ValueError)      the caller passed something wrong
    │   ├── InvalidKeyError                 malformed or escaping store key
    │   ├── InvalidRangeError               negative/out-of-bounds range
    │   ├── SchemaViolationError            records do not fit the codec/schema
    │   ├── ConfigMismatchError             options contradict what the dataset recorded
    │   └── OverlappingBlocksError          volume blocks overlap (.ranges)
    ├── UnsupportedError                    the operation cannot be done here
    │   ├── UnsupportedOperationError
    │   ├── CodecNotStreamableError
    │   ├── PartitioningNotSupportedError   partitions asked of what has none
    │   ├── DatasetsNotModeledError         layout cannot enumerate datasets
    │   └── MissingDependencyError (ImportError)  an optional extra is not installed
    ├── StorageError                        the backend failed
    │   ├── TransientStorageError           throttling, 5xx, timeouts: retryable
    │   └── PermissionDeniedError           credentials/ACL: not retryable
    └── FormatError                         bytes on storage are not what we expect
        ├── ManifestFormatError             invalid manifest document (.field)
        │   └── HistoryGapError             a record below the head is missing
        ├── UnsupportedFormatVersionError   manifest written by a newer aiolode
        ├── ChecksumMismatchError           stored bytes do not match their digest
        └── CorruptDataError                data file undecodable (codec/compressor)

Every error carries structured attributes (``key``, ``dataset_id``,
``snapshot_id`` … whatever applies; ``None`` otherwise) and pickles with them,
so errors cross process boundaries intact. The list attributes (``missing``,
``ranges``, ``conflicting``) are checked when an error is built: anything but
an iterable of the right items is :class:`InvalidInputError` naming it. Backend errors are chained with
``raise ... from exc``; the chain is not pickled (Python never pickles it).

``NotFoundError`` subclasses :class:`LookupError` rather than :class:`KeyError`
because ``str(KeyError(msg))`` quotes the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._text import safe_repr

__all__ = (
    "AiolodeError",
    "ChecksumMismatchError",
    "CodecNotStreamableError",
    "ConfigMismatchError",
    "ConflictError",
    "CorruptDataError",
    "DatasetNotFoundError",
    "DatasetsNotModeledError",
    "FormatError",
    "HistoryGapError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidRangeError",
    "ManifestFormatError",
    "MissingDependencyError",
    "NoSnapshotsError",
    "NotFoundError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "OverlappingBlocksError",
    "PartitioningNotSupportedError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RangeMissingError",
    "SchemaViolationError",
    "SnapshotConflictError",
    "SnapshotExpiredError",
    "SnapshotNotFoundError",
    "StaleWriteError",
    "StorageError",
    "TransientStorageError",
    "UnsupportedError",
    "UnsupportedFormatVersionError",
    "UnsupportedOperationError",
    "VolumeNotFoundError",
)

Range = tuple[int, int]
"""An ``(offset, length)`` byte range."""


def _items(owner: str, name: str, value: object, what: str) -> list[Any]:
    """The items of a structured attribute given as an iterable (``None``: none)."""
    if value is None:
        return []
    if isinstance(value, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        value, Iterable
    ):
        raise InvalidInputError(
            f"{owner}.{name} must be a list of {what}, not {safe_repr(value)}", field=name
        )
    # Through iter(): list() of the object itself trusts its __len__.
    return list(iter(value))


def _ranges(owner: str, name: str, value: object) -> list[Range]:
    out = []
    for item in _items(owner, name, value, "(offset, length) pairs"):
        if (
            not isinstance(item, tuple | list)
            or len(item) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        ):
            raise InvalidInputError(
                f"{owner}.{name} must be a list of (offset, length) pairs of ints, "
                f"not {safe_repr(value)} (holds {safe_repr(item)})",
                field=name,
            )
        out.append((int(item[0]), int(item[1])))
    return out


def _strs(owner: str, name: str, value: object) -> list[str]:
    out = _items(owner, name, value, "str")
    for item in out:
        if not isinstance(item, str):
            raise InvalidInputError(
                f"{owner}.{name} must be a list of str, not {safe_repr(value)} (holds {safe_repr(item)})",
                field=name,
            )
    return out


def _rebuild(cls: type[AiolodeError], message: str, state: dict[str, Any]) -> AiolodeError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class AiolodeError(Exception):
    """Root of every error aiolode raises on purpose.

    Parameters
    ----------
    message
        Human-readable description; ``str(err)`` returns it unchanged.
    key
        The store key involved, if any.
    dataset_id, snapshot_id, volume_id
        The dataset / snapshot / volume involved, if any.
    """

    message: str
    key: str | None
    dataset_id: str | None
    snapshot_id: str | None
    volume_id: str | None

    def __init__(
        self,
        message: str = "",
        *,
        key: str | None = None,
        dataset_id: str | None = None,
        snapshot_id: str | None = None,
        volume_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.dataset_id = dataset_id
        self.snapshot_id = snapshot_id
        self.volume_id = volume_id

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


# --------------------------------------------------------------------- not found
class NotFoundError(AiolodeError, LookupError):
    """Something looked up does not exist."""


class ObjectNotFoundError(NotFoundError):
    """A store key does not exist (``.key``)."""


class SnapshotNotFoundError(NotFoundError):
    """No snapshot with this id (``.snapshot_id``) in the dataset or volume."""


class SnapshotExpiredError(SnapshotNotFoundError):
    """The snapshot (``.snapshot_id``) existed but was expired: its data is gone
    from every view (and from storage once garbage collection has run)."""


class NoSnapshotsError(NotFoundError):
    """The dataset or volume has no committed snapshot yet."""


class DatasetNotFoundError(NoSnapshotsError):
    """No dataset with this id (``.dataset_id``): never written, or dropped.

    A subclass of :class:`NoSnapshotsError`, so handlers written for an empty
    dataset keep working; catch this one to tell "no such name" apart.
    """


class VolumeNotFoundError(NoSnapshotsError):
    """The volume (``.volume_id``) was dropped: nothing of it can be read, and
    no commit can resurrect it while its tombstone is in the log.

    A subclass of :class:`NoSnapshotsError`, like :class:`DatasetNotFoundError`.
    """


class RangeMissingError(NotFoundError):
    """Part of a requested volume range was never committed.

    ``.missing`` lists the missing ``(offset, length)`` ranges in order.
    """

    missing: list[Range]

    def __init__(self, message: str = "", *, missing: list[Range] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.missing = _ranges(type(self).__name__, "missing", missing)


# ---------------------------------------------------------------------- conflict
class ConflictError(AiolodeError):
    """A concurrent writer won; re-read the current state and retry."""


class ObjectExistsError(ConflictError):
    """A create-only put found the key already present (``.key``)."""


class StaleWriteError(ConflictError):
    """A write started before the fence a garbage collection set (its files may
    have been collected): nothing was committed; write the data again."""


class PreconditionFailedError(ConflictError):
    """A compare-and-swap put found another etag, or no object (``.key``).

    ``.expected_etag`` is the etag the caller expected.
    """

    expected_etag: str | None

    def __init__(self, message: str = "", *, expected_etag: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.expected_etag = expected_etag


class SnapshotConflictError(ConflictError):
    """A commit since the expected parent touched the same data.

    ``.conflicting`` holds the ids of the snapshots that conflict, oldest first.
    """

    conflicting: list[str]

    def __init__(
        self, message: str = "", *, conflicting: list[str] | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.conflicting = _strs(type(self).__name__, "conflicting", conflicting)


# ------------------------------------------------------------------ invalid input
class InvalidInputError(AiolodeError, ValueError):
    """The caller passed an argument that can never succeed (``.field`` names the
    argument or model field, when one is to blame)."""

    field: str | None

    def __init__(self, message: str = "", *, field: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


class InvalidKeyError(InvalidInputError):
    """A store key or prefix is malformed or would escape the store (``.key``)."""


class InvalidRangeError(InvalidInputError):
    """A byte range is negative or outside the addressable space."""


class SchemaViolationError(InvalidInputError):
    """Records do not fit the codec or schema (``.field`` names the culprit)."""


class ConfigMismatchError(InvalidInputError):
    """Options given to open a dataset contradict the configuration it recorded
    at its first write (``.field`` names the option)."""


class OverlappingBlocksError(InvalidInputError):
    """Volume blocks overlap each other or committed data (``.ranges``)."""

    ranges: list[Range]

    def __init__(self, message: str = "", *, ranges: list[Range] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.ranges = _ranges(type(self).__name__, "ranges", ranges)


# -------------------------------------------------------------------- unsupported
class UnsupportedError(AiolodeError):
    """The operation is not supported by this store, codec or layout."""


class UnsupportedOperationError(UnsupportedError):
    """The store or component does not implement this operation."""


class CodecNotStreamableError(UnsupportedError):
    """The codec cannot encode or decode incrementally."""


class PartitioningNotSupportedError(UnsupportedError):
    """The layout cannot partition, or this operation cannot use partitions."""


class DatasetsNotModeledError(UnsupportedError):
    """The layout does not model datasets, so they cannot be enumerated."""


class MissingDependencyError(UnsupportedError, ImportError):
    """An optional dependency is not installed (``.package``; ``.extra`` is the
    ``pip install aiolode[extra]`` that brings it)."""

    package: str | None
    extra: str | None

    def __init__(
        self, message: str = "", *, package: str | None = None, extra: str | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.package = package
        self.extra = extra


# ------------------------------------------------------------------------ storage
class StorageError(AiolodeError):
    """The storage backend failed. Not retried unless transient."""


class TransientStorageError(StorageError):
    """Throttling, server errors, timeouts: the same call may succeed later."""


class PermissionDeniedError(StorageError):
    """The backend refused access; retrying will not help."""


# ------------------------------------------------------------------------- format
class FormatError(AiolodeError):
    """Stored bytes are not what the format says they must be."""


class ManifestFormatError(FormatError):
    """A manifest document is invalid; ``.field`` names the bad field if known."""

    field: str | None

    def __init__(self, message: str = "", *, field: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


class HistoryGapError(ManifestFormatError):
    """A commit record (or volume root) between the oldest retained one and the
    head is missing: the history was damaged by hand or by another tool.
    ``.sequence`` is the missing position."""

    sequence: int | None

    def __init__(self, message: str = "", *, sequence: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.sequence = sequence


class UnsupportedFormatVersionError(FormatError):
    """A manifest has a schema name or format version this aiolode cannot read."""

    schema_name: str | None
    format_version: int | None

    def __init__(
        self,
        message: str = "",
        *,
        schema_name: str | None = None,
        format_version: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.schema_name = schema_name
        self.format_version = format_version


class ChecksumMismatchError(FormatError):
    """Bytes read back do not match the recorded digest.

    ``.algorithm``, ``.expected`` and ``.actual`` hold the digests (hex).
    """

    algorithm: str | None
    expected: str | None
    actual: str | None

    def __init__(
        self,
        message: str = "",
        *,
        algorithm: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class CorruptDataError(FormatError):
    """A data file cannot be decoded or decompressed (corrupt, truncated, wrong format).

    ``.format`` names the codec or compressor that rejected the bytes.
    """

    format: str | None

    def __init__(self, message: str = "", *, format: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.format = format
