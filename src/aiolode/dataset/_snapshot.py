"""Snapshot: the public view of one committed manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import attrs

from ..manifest import _fields as F
from ..manifest._dataset import Manifest

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from ..manifest._dataset import FileRef
    from ..manifest._metadata import Metadata

__all__ = ["Snapshot"]


@final
@attrs.frozen
class Snapshot:
    """One immutable commit of a dataset.

    Deeply immutable: its metadata, file list, partition values and statistics
    cannot be changed by the code holding it (mappings refuse mutation, lists are
    tuples), so nothing a caller does to a snapshot changes what the library
    returns afterwards.

    Attributes
    ----------
    manifest
        The full manifest (files, codec, layout, statistics...).
    """

    manifest: Manifest = attrs.field(validator=F.is_a(Manifest))

    @property
    def id(self) -> str:
        """Snapshot id; ids sort in commit order (``"<seq:016d>-<index:04d>"``)."""
        return self.manifest.snapshot_id

    @property
    def dataset_id(self) -> str:
        """The dataset this snapshot belongs to."""
        return self.manifest.dataset_id

    @property
    def parent_id(self) -> str | None:
        """The previous snapshot's id (``None`` for the first)."""
        return self.manifest.parent_id

    @property
    def created_at(self) -> datetime:
        """Commit time (UTC)."""
        return self.manifest.created_at

    @property
    def metadata(self) -> Metadata:
        """The caller's metadata (``{}`` when none was given), read-only."""
        return self.manifest.metadata

    @property
    def row_count(self) -> int | None:
        """Records in this snapshot (``None`` for raw blobs)."""
        return self.manifest.row_count

    @property
    def files(self) -> tuple[FileRef, ...]:
        """The data files this snapshot added."""
        return self.manifest.files

    @property
    def partitions(self) -> tuple[Mapping[str, str], ...]:
        """Distinct partition values this snapshot touched (``({},)`` unpartitioned)."""
        return self.manifest.partitions

    def __repr__(self) -> str:
        return (
            f"Snapshot(id={self.id!r}, parent_id={self.parent_id!r}, "
            f"created_at={self.created_at.isoformat()!r}, files={len(self.files)}, "
            f"row_count={self.row_count!r})"
        )
