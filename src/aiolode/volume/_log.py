"""A volume's log: the shared :class:`~aiolode._history.SequenceLog` of roots.

Keys::

    volumes/<id>/_log/00000000000000000001.json   root 1 (create-only: the commit)
    volumes/<id>/_latest                          hint: a recent sequence number
    volumes/<id>/_log/_lwm.json                   low-water mark
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._history import LogSpec, SequenceLog
from ..errors import InvalidInputError, ManifestFormatError
from ..manifest._ids import VOLUME_SEQ_WIDTH, volume_snapshot_id
from ..manifest._volume import VolumeRoot

if TYPE_CHECKING:
    from .._retry import Retry
    from ..store import Store

__all__ = ("RootLog", "volume_log")

RootLog = SequenceLog[VolumeRoot]

#: What a root may commit.
OPERATIONS = frozenset({"commit", "expire", "fence", "drop"})


def _earlier(snapshot_id: str | None, seq: int) -> bool:
    """Whether ``snapshot_id`` is ``None`` or a well-formed id before record ``seq``."""
    if snapshot_id is None:
        return True
    if not isinstance(snapshot_id, str) or len(snapshot_id) != VOLUME_SEQ_WIDTH:
        return False
    return snapshot_id.isdigit() and snapshot_id.isascii() and 0 < int(snapshot_id) < seq


def _ids_problem(root: VolumeRoot, seq: int) -> str | None:
    """How a root's ids contradict its position (``None``: they do not)."""
    if root.operation not in OPERATIONS:
        return f"commits an unknown operation {root.operation!r}"
    if root.dropped != (root.operation == "drop"):
        return f"says dropped={root.dropped} for a {root.operation!r} root"
    if type(root.expired_below) is not int or not 1 <= root.expired_below <= seq:
        return f"expires below {root.expired_below!r}, not a record up to itself"
    if root.is_snapshot:
        if root.snapshot_id != volume_snapshot_id(seq) or not _earlier(root.parent_id, seq):
            return (
                f"says snapshot {root.snapshot_id!r} with parent {root.parent_id!r}; its key "
                f"implies {volume_snapshot_id(seq)!r} and an earlier parent"
            )
        if root.tip is not None:
            return "commits a snapshot and names a tip"
        return None
    if root.snapshot_id is not None or root.parent_id is not None:
        return f"commits {root.operation!r} but names snapshot {root.snapshot_id!r}"
    if not _earlier(root.tip, seq):
        return f"names tip {root.tip!r}, not an earlier snapshot"
    return None


def volume_log(
    store: Store, volume_id: str, total_length: int, checksum: str | None, retry: Retry
) -> RootLog:
    """The root log of ``volume_id`` on ``store`` (no I/O)."""
    prefix = f"volumes/{volume_id}/"

    def check(root: VolumeRoot, seq: int, key: str) -> None:
        if root.volume_id != volume_id or root.sequence != seq:
            raise ManifestFormatError(
                f"root {key!r} belongs to volume {root.volume_id!r} sequence {root.sequence}",
                key=key,
                volume_id=volume_id,
                field="sequence",
            )
        # The ids are implied by the key: a root whose ids disagree was damaged (in
        # storage or in transit) and must never be built upon, or the next commit
        # would carry the damage into its parent_id and break the chain for good.
        problem = _ids_problem(root, seq)
        if problem is not None:
            raise ManifestFormatError(
                f"root {key!r} {problem}", key=key, volume_id=volume_id, field="snapshot_id"
            )
        if root.block_count < 0 or root.committed_bytes < 0 or root.frozen_count < 0:
            raise ManifestFormatError(
                f"root {key!r} has negative totals", key=key, volume_id=volume_id
            )
        if root.committed_bytes > root.total_length:
            raise ManifestFormatError(
                f"root {key!r} commits {root.committed_bytes} bytes of a "
                f"{root.total_length}-byte volume",
                key=key,
                volume_id=volume_id,
            )
        for ref in root.segments:
            if not ref.key.startswith(f"{prefix}index/") or ref.count < 0 or ref.nbytes < 0:
                raise ManifestFormatError(
                    f"root {key!r} names segment {ref.key!r} outside {prefix}index/",
                    key=key,
                    volume_id=volume_id,
                    field="segments",
                )
        if root.frozen_key is not None and not root.frozen_key.startswith(f"{prefix}index/"):
            raise ManifestFormatError(
                f"root {key!r} names segment list {root.frozen_key!r} outside {prefix}index/",
                key=key,
                volume_id=volume_id,
                field="frozen_key",
            )
        # Not damage: an opener with another size or checksum setting.
        if root.total_length != total_length:
            raise InvalidInputError(
                f"volume {volume_id!r} has total_length {root.total_length}, "
                f"this Volume object was opened with {total_length}",
                volume_id=volume_id,
            )
        if root.checksum != checksum:
            # Mixing blocks with and without digests would silently drop verification.
            raise InvalidInputError(
                f"volume {volume_id!r} records checksum {root.checksum!r}, "
                f"this Volume object was opened with {checksum!r}",
                volume_id=volume_id,
            )

    spec = LogSpec(
        kind="volume",
        owner_id=volume_id,
        prefix=f"{prefix}_log/",
        width=VOLUME_SEQ_WIDTH,
        hint_key=f"{prefix}_latest",
        record_type=VolumeRoot,
        check=check,
        snapshot_ids=VolumeRoot.snapshot_ids,
        first_id=volume_snapshot_id,
    )
    return SequenceLog(store, spec, retry)
