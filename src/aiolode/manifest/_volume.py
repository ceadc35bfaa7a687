"""Persisted documents of a Volume: roots (one per snapshot), segment lists, segments.

See ``docs/volume.md`` for the format. Three schemas, all format version 1:

``aiolode.volume.root``
    One small document per snapshot, created (create-only) at a sequence-numbered
    key. Its presence *is* the commit. It lists the "hot" index segments inline
    and points at one immutable :class:`VolumeSegmentList` holding the "frozen"
    (large, never rewritten) segments, so its size is O(log B) whatever the
    history length.
``aiolode.volume.segment_list``
    Immutable list of frozen segment references, shared by every snapshot until
    another segment freezes.
``aiolode.volume.segment``
    Immutable, sorted, disjoint block entries stored column-wise (offsets,
    lengths, block names, checksums): compact JSON and fast to decode.

Segments can hold hundreds of thousands of entries, so they get a hand-written
(still strict) structure hook instead of cattrs' per-element dispatch, which
would cost seconds per million entries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from ._converter import converter, register, register_migration
from ._metadata import Metadata, as_metadata, escape_legacy_metadata

__all__ = ("SegmentRef", "VolumeRoot", "VolumeSegment", "VolumeSegmentList")

ROOT_SCHEMA = "aiolode.volume.root"
SEGMENT_SCHEMA = "aiolode.volume.segment"
SEGMENT_LIST_SCHEMA = "aiolode.volume.segment_list"


@attrs.frozen
class SegmentRef:
    """A pointer from a root (or segment list) to one immutable index segment.

    ``count`` is its number of blocks and ``nbytes`` the bytes they cover, so a
    root knows its totals and the merge policy can plan without reading segments.
    ``digest`` (``"sha256:<hex>"`` of the segment's bytes) is verified on load, so
    a segment corrupted in transit is never merged forward into a new commit;
    ``None`` only in documents written before digests were recorded.
    """

    key: str
    count: int
    nbytes: int
    digest: str | None = None


@attrs.frozen
class VolumeSegmentList:
    """The frozen segments of a volume at some point of its history (immutable)."""

    volume_id: str
    segments: tuple[SegmentRef, ...]


@attrs.frozen
class VolumeRoot:
    """One record of a volume's log: a snapshot, or a maintenance operation.

    A *commit* root (``operation == "commit"``) is one snapshot: its blocks
    are exactly the union of the entries of the segments listed in ``frozen``
    (via the segment list at ``frozen_key``) and ``segments``; segments are
    pairwise disjoint. A *maintenance* root (``"expire"``: old snapshots were
    expired; ``"fence"``: a garbage collection's fence; ``"drop"``: the
    volume was dropped) commits no
    snapshot (``snapshot_id`` and ``parent_id`` are ``None``): it repeats the
    index of the newest snapshot (``tip``), so any root alone still says which
    ranges exist, and orders the operation with the commits around it.

    Attributes
    ----------
    operation
        ``"commit"``, ``"expire"``, ``"fence"`` or ``"drop"``.
    tip
        For a maintenance root: the newest snapshot before it (``None``: none).
    gc_fence
        The newest fence of every garbage collection so far (cumulative):
        blocks staged before it may have been collected and are refused.
    dropped
        The volume was dropped by this root.
    expired_below
        Every snapshot of a root below this sequence number is expired
        (cumulative; ``1``: none).
    """

    volume_id: str
    snapshot_id: str | None
    sequence: int
    parent_id: str | None
    created_at: datetime
    total_length: int
    metadata: Metadata = attrs.field(converter=as_metadata)
    commit_token: str
    checksum: str | None
    block_count: int
    committed_bytes: int
    frozen_key: str | None
    frozen_count: int
    segments: tuple[SegmentRef, ...]
    #: ``"sha256:<hex>"`` of the segment list at ``frozen_key`` (verified on load).
    frozen_digest: str | None = None
    operation: str = "commit"
    tip: str | None = None
    gc_fence: datetime | None = None
    dropped: bool = False
    expired_below: int = 1

    @property
    def seq(self) -> int:
        """Position in the volume's log (the history layer's name for ``sequence``)."""
        return self.sequence

    @property
    def token(self) -> str:
        """The commit token (the history layer's name for ``commit_token``)."""
        return self.commit_token

    @property
    def is_snapshot(self) -> bool:
        """Whether this root commits a snapshot (not a maintenance operation)."""
        return self.operation == "commit"

    @property
    def last_snapshot_id(self) -> str | None:
        """The newest snapshot at or before this root (``None``: none yet)."""
        return self.snapshot_id if self.operation == "commit" else self.tip

    def snapshot_ids(self) -> list[str]:
        """The snapshot this root commits (none for a maintenance root)."""
        return [self.snapshot_id] if self.snapshot_id is not None else []


@attrs.frozen
class VolumeSegment:
    """Block entries sorted by offset, stored column-wise.

    ``names`` are block object names relative to the volume's ``blocks/`` prefix;
    ``checksums`` is ``None`` when the volume records none.
    """

    volume_id: str
    offsets: list[int]
    lengths: list[int]
    names: list[str]
    checksums: list[str] | None


def _all_ints(values: object, field: str) -> list[int]:
    if not isinstance(values, list):
        raise TypeError(f"{field}: expected a list, got {type(values).__name__}")
    # type() is exact: bools (an int subclass) are refused like the strict int hook does.
    if not all(type(v) is int for v in values):
        raise TypeError(f"{field}: expected a list of integers")
    return values


def _all_strs(values: object, field: str) -> list[str]:
    if not isinstance(values, list):
        raise TypeError(f"{field}: expected a list, got {type(values).__name__}")
    if not all(type(v) is str for v in values):
        raise TypeError(f"{field}: expected a list of strings")
    return values


def _structure_segment(value: Any, _: type) -> VolumeSegment:
    if not isinstance(value, dict):
        raise TypeError("segment: expected an object")
    vid = value.get("volume_id")
    if not isinstance(vid, str):
        raise TypeError("volume_id: expected a string")
    offsets = _all_ints(value.get("offsets"), "offsets")
    lengths = _all_ints(value.get("lengths"), "lengths")
    names = _all_strs(value.get("names"), "names")
    raw_ck = value.get("checksums")
    checksums = None if raw_ck is None else _all_strs(raw_ck, "checksums")
    n = len(offsets)
    if len(lengths) != n or len(names) != n or (checksums is not None and len(checksums) != n):
        raise ValueError("offsets, lengths, names and checksums must have equal lengths")
    return VolumeSegment(vid, offsets, lengths, names, checksums)


def _unstructure_segment(seg: VolumeSegment) -> dict[str, Any]:
    # The lists are already JSON-ready; copying them element-wise would dominate.
    return {
        "volume_id": seg.volume_id,
        "offsets": seg.offsets,
        "lengths": seg.lengths,
        "names": seg.names,
        "checksums": seg.checksums,
    }


converter.register_structure_hook(VolumeSegment, _structure_segment)
converter.register_unstructure_hook(VolumeSegment, _unstructure_segment)


def _migrate_root_v1(doc: dict[str, Any]) -> dict[str, Any]:
    if "metadata" in doc:
        doc = {**doc, "metadata": escape_legacy_metadata(doc["metadata"])}
    return doc


# Root v2 = v1 + tagged metadata (manifest/_metadata.py); v1 roots still read.
register(ROOT_SCHEMA, 1, VolumeRoot)
register(ROOT_SCHEMA, 2, VolumeRoot)
register_migration(ROOT_SCHEMA, 1, _migrate_root_v1)
register(SEGMENT_LIST_SCHEMA, 1, VolumeSegmentList)
register(SEGMENT_SCHEMA, 1, VolumeSegment)
