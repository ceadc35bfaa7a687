"""VolumeSnapshot (public) and the loaded state behind it."""

from __future__ import annotations

from datetime import datetime
from typing import final

import attrs

from ..manifest import _fields as F
from ..manifest._metadata import Metadata, as_metadata
from ..manifest._volume import SegmentRef, VolumeRoot
from ._blocks import BlockRef, Run, coalesce, complement, seal_block

__all__ = ["State", "VolumeSnapshot"]

Range = tuple[int, int]


@final
@attrs.frozen(eq=False)
class VolumeSnapshot:
    """One immutable commit of a volume: exactly which ranges exist at that point.

    Deeply immutable: ``metadata`` refuses mutation, and the block index is
    shared only with the library's own read paths.

    Attributes
    ----------
    id
        Snapshot id (the zero-padded commit sequence number, sortable).
    parent_id
        The previous snapshot's id, ``None`` for the first.
    created_at
        Commit time (UTC); never earlier than the parent's.
    metadata
        The caller's metadata (``{}`` if none was given), read-only.
    volume_id, total_length
        The volume's identity and size ``N``.
    committed_bytes
        Bytes covered by committed blocks.
    block_count
        Number of committed blocks.
    """

    id: str = attrs.field(validator=F.str_)
    parent_id: str | None = attrs.field(validator=F.opt_str)
    created_at: datetime = attrs.field(validator=F.aware)
    metadata: Metadata = attrs.field(converter=as_metadata)
    volume_id: str = attrs.field(validator=F.str_)
    total_length: int = attrs.field(validator=F.count)
    committed_bytes: int = attrs.field(validator=F.count)
    block_count: int = attrs.field(validator=F.count)
    _runs: tuple[Run, ...] = attrs.field(
        repr=False, alias="runs", converter=F.to_tuple, validator=F.tuple_of(Run)
    )

    @property
    def is_complete(self) -> bool:
        """Whether every byte of ``[0, N)`` is committed."""
        return self.committed_bytes == self.total_length

    def committed_ranges(self) -> list[Range]:
        """Committed ``(offset, length)`` ranges, sorted, adjacent blocks merged.

        Cost: no I/O; O(B log k) CPU over the snapshot's B blocks in k segments.
        """
        return coalesce(self._runs)

    def missing_ranges(self) -> list[Range]:
        """Ranges of ``[0, N)`` not committed, sorted: what a resume still has to stage.

        Cost: no I/O; O(B log k) CPU.
        """
        return complement(coalesce(self._runs), self.total_length)

    def blocks(self) -> list[BlockRef]:
        """Every committed block, sorted by offset. Cost: no I/O; O(B log k)."""
        if not self._runs:
            return []
        merged = Run.merge(self._runs, self._runs[0].key_prefix)
        out = []
        for i in range(merged.count):
            b = merged.block(i)
            seal = seal_block(self.volume_id, b.offset, b.length, b.key, b.checksum)
            out.append(attrs.evolve(b, seal=seal))
        return out


@attrs.frozen(eq=False)
class State:
    """A loaded snapshot: its root, segment refs and decoded runs."""

    root: VolumeRoot
    frozen_refs: tuple[SegmentRef, ...]
    frozen_runs: tuple[Run, ...]
    hot_runs: tuple[Run, ...]
    snapshot: VolumeSnapshot

    @property
    def seq(self) -> int:
        """The root's sequence number."""
        return self.root.sequence

    @property
    def runs(self) -> tuple[Run, ...]:
        """Every segment's run, frozen ones first."""
        return self.frozen_runs + self.hot_runs
