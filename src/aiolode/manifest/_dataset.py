"""Dataset manifest models: one snapshot's :class:`Manifest` and the commit
record (:class:`CommitRecord`) that carries one or more consecutive snapshots.

Format (``docs/spec/manifest-v1.md``): the commit log of a dataset is a
sequence of create-only objects ``<root>_log/<seq:016d>.json``, each an
``aiolode.dataset.commit`` v1 document holding the manifests of the snapshots it
commits, in order. A standalone manifest (as returned to readers) is an
``aiolode.dataset.manifest`` v1 document with the same fields.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs

from ..errors import InvalidInputError
from ._converter import converter, register

__all__ = [
    "COMMIT_SCHEMA",
    "MANIFEST_SCHEMA",
    "ColumnStats",
    "CommitRecord",
    "FileRef",
    "Manifest",
    "check_metadata",
]

MANIFEST_SCHEMA = "aiolode.dataset.manifest"
COMMIT_SCHEMA = "aiolode.dataset.commit"


def check_metadata(metadata: object) -> dict[str, Any]:
    """Validate caller metadata: ``None`` -> ``{}``; a JSON-serialisable mapping.

    Returns a deep copy normalised through JSON (tuples become lists), so the
    snapshot holds exactly what a reader will load back.

    Raises
    ------
    InvalidInputError
        Not a mapping with string keys, not JSON-serialisable (NaN included),
        or holding strings not encodable as UTF-8 (lone surrogates).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        from collections.abc import Mapping

        if not isinstance(metadata, Mapping):
            raise InvalidInputError(
                f"metadata must be a mapping or None, not {type(metadata).__name__}"
            )
        metadata = dict(metadata)
    _check_keys(metadata, "metadata")
    try:
        text = json.dumps(metadata, allow_nan=False, ensure_ascii=False)
        # json.dumps accepts lone surrogates ("\ud800") that no UTF-8 document
        # can hold: the record encode would then fail at commit time, after
        # the data files were written. Refuse them here, before any I/O.
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"metadata is not encodable as UTF-8 (a lone surrogate?): {exc}"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata is not JSON-serialisable: {exc}") from exc
    return json.loads(text)  # type: ignore[no-any-return]


def _check_keys(value: object, path: str) -> None:
    # json.dumps would turn int/float/bool/None keys into strings silently; a
    # reader would then see other keys than the writer passed.
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(f"{path} has a non-str key {k!r}: JSON keys are strings")
            _check_keys(v, f"{path}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_keys(v, f"{path}[{i}]")


@attrs.frozen
class ColumnStats:
    """Per-file statistics of one column (JSON scalars; ``None`` when unknown)."""

    min: Any = None
    max: Any = None
    null_count: int | None = None


@attrs.frozen
class FileRef:
    """One data file of a snapshot.

    Attributes
    ----------
    key
        Store key of the file.
    size
        Size in bytes as stored (after compression).
    checksum
        ``"<algorithm>:<hex>"`` of the stored bytes, or ``None``.
    row_count
        Records in the file (``None`` for raw blobs).
    partition
        Partition values (strings, as in the path); ``{}`` when unpartitioned.
    stats
        Column statistics by column name (codecs that compute them).
    """

    key: str
    size: int
    checksum: str | None = None
    row_count: int | None = None
    partition: dict[str, str] = attrs.field(factory=dict)
    stats: dict[str, ColumnStats] = attrs.field(factory=dict)


@attrs.frozen
class Manifest:
    """Everything one snapshot commits.

    Attributes
    ----------
    dataset_id, snapshot_id, parent_id
        Identity and (linear) history; ``parent_id`` is ``None`` for the first.
    created_at
        Commit time (UTC); never earlier than the parent's.
    metadata
        The caller's JSON mapping (``{}`` when none was given).
    files
        Data files added by this snapshot.
    row_count
        Total records (``None`` for raw blobs).
    min_timestamp, max_timestamp
        Range of the ``timestamp_field`` values (``None`` if not configured).
    codec, codec_options, compressor, compressor_options
        What encoded the files; readers follow these, never the Dataset's args.
    layout
        Layout description (``name``, ``partition_keys``, options).
    commit_token
        Unique per commit attempt; identifies the writer's own commit after a
        lost acknowledgement.
    """

    dataset_id: str
    snapshot_id: str
    parent_id: str | None
    created_at: datetime
    metadata: dict[str, Any]
    files: list[FileRef]
    row_count: int | None
    codec: str | None
    compressor: str | None
    layout: dict[str, Any]
    commit_token: str
    codec_options: dict[str, Any] = attrs.field(factory=dict)
    compressor_options: dict[str, Any] = attrs.field(factory=dict)
    min_timestamp: Any = None
    max_timestamp: Any = None

    @property
    def partitions(self) -> list[dict[str, str]]:
        """Distinct partition values touched by this snapshot, in file order."""
        seen: list[dict[str, str]] = []
        for f in self.files:
            if f.partition not in seen:
                seen.append(f.partition)
        return seen


@attrs.frozen
class CommitRecord:
    """One object of the commit log: consecutive snapshots committed at once.

    Attributes
    ----------
    dataset_id
        Owner dataset.
    seq
        Position in the log (1-based); the key is ``<root>_log/<seq:016d>.json``.
    token
        Unique per commit attempt (lost-acknowledgement detection).
    created_at
        Commit time; every snapshot in the record shares it.
    snapshots
        The manifests, in commit order (ids ``<seq:016d>-<index:04d>``).
    """

    dataset_id: str
    seq: int
    token: str
    created_at: datetime
    snapshots: list[Manifest]


def _unstructure_any(value: Any) -> Any:
    return value


# JSON values in metadata/stats pass through unchanged.
converter.register_structure_hook(Any, lambda v, _: v)
converter.register_unstructure_hook(Any, _unstructure_any)

register(MANIFEST_SCHEMA, 1, Manifest)
register(COMMIT_SCHEMA, 1, CommitRecord)
