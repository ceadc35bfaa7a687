"""Snapshot ids and log keys: the single written copy of what docs/spec defines.

A history is a sequence of create-only records numbered from 1. The two kinds
differ only in how a snapshot id maps to its record:

- a dataset record may carry several consecutive snapshots (group commit), so a
  dataset snapshot id is ``<seq:016d>-<index:04d>`` and its record key
  ``<root>_log/<seq:016d>.json``;
- a volume record (a *root*) is one snapshot, so a volume snapshot id is
  ``<seq:020d>``, and its key ``volumes/<id>/_log/<seq:020d>.json``.

Ids sort in commit order as strings. Rules shared by both kinds (and checked by
the history conformance suite): an id that is not a ``str`` is
:class:`~aiolode.InvalidInputError`; a string that is not an id of this kind can
never name a snapshot, so it is :class:`~aiolode.SnapshotNotFoundError`.
"""

from __future__ import annotations

import re

from .._validate import safe_repr
from ..errors import InvalidInputError, InvalidKeyError, SnapshotNotFoundError

__all__ = [
    "DATASET_SEQ_WIDTH",
    "VOLUME_SEQ_WIDTH",
    "dataset_snapshot_id",
    "parse_dataset_snapshot_id",
    "parse_volume_snapshot_id",
    "record_key",
    "validate_history_id",
    "volume_snapshot_id",
]

DATASET_SEQ_WIDTH = 16
VOLUME_SEQ_WIDTH = 20
#: Most snapshots one dataset record can carry (the index has four digits).
MAX_SNAPSHOTS_PER_RECORD = 10_000

#: A dataset or volume id is one safe path segment: letters, digits, ``_ - .``,
#: not starting with ``.`` or ``_`` (reserved for aiolode's own objects such as
#: ``_log``), at most 200 characters.
HISTORY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")

# ASCII digits only: \d and int() also take other scripts' digits ("٠", "１"),
# which would make two spellings name one snapshot.
_DATASET_ID_RE = re.compile(r"([0-9]{16})-([0-9]{4})")
_VOLUME_ID_RE = re.compile(r"[0-9]{20}")


def validate_history_id(value: object, kind: str) -> str:
    """``value`` if it is a valid dataset or volume id (``kind`` names which), else raise.

    Raises
    ------
    InvalidKeyError
        Not a single safe path segment (see :data:`HISTORY_ID_RE`).
    """
    if not isinstance(value, str) or HISTORY_ID_RE.fullmatch(value) is None:
        ctx = {f"{kind}_id": value if isinstance(value, str) else None}
        raise InvalidKeyError(
            f"{kind} id {safe_repr(value)} is invalid: use 1-200 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit",
            **ctx,
        )
    return value


def record_key(prefix: str, seq: int, width: int) -> str:
    """Key of record ``seq`` under a log ``prefix`` (ending in ``/``)."""
    return f"{prefix}{seq:0{width}d}.json"


def dataset_snapshot_id(seq: int, index: int) -> str:
    """``"<seq:016d>-<index:04d>"``: sorts in commit order, maps to its record in O(1)."""
    return f"{seq:016d}-{index:04d}"


def volume_snapshot_id(seq: int) -> str:
    """``"<seq:020d>"``."""
    return f"{seq:020d}"


def _check_type(snapshot_id: object) -> str:
    if not isinstance(snapshot_id, str):
        raise InvalidInputError(f"a snapshot id is a str, not {type(snapshot_id).__name__}")
    return snapshot_id


def parse_dataset_snapshot_id(snapshot_id: object, *, dataset_id: str) -> tuple[int, int]:
    """Split a dataset snapshot id into ``(seq, index)``.

    Raises
    ------
    InvalidInputError
        Not a str.
    SnapshotNotFoundError
        A string that is not a dataset snapshot id (no such snapshot can exist).
    """
    sid = _check_type(snapshot_id)
    m = _DATASET_ID_RE.fullmatch(sid)
    if m is None or int(m.group(1)) == 0:
        raise SnapshotNotFoundError(
            f"dataset {dataset_id!r} has no snapshot {sid!r} "
            "(dataset snapshot ids look like '0000000000000001-0000')",
            dataset_id=dataset_id,
            snapshot_id=sid[:200],
        )
    return int(m.group(1)), int(m.group(2))


def parse_volume_snapshot_id(snapshot_id: object, *, volume_id: str) -> int:
    """The sequence number of a volume snapshot id.

    Raises
    ------
    InvalidInputError
        Not a str.
    SnapshotNotFoundError
        A string that is not a volume snapshot id (no such snapshot can exist).
    """
    sid = _check_type(snapshot_id)
    if _VOLUME_ID_RE.fullmatch(sid) is None or int(sid) == 0:
        raise SnapshotNotFoundError(
            f"volume {volume_id!r} has no snapshot {sid!r} "
            "(volume snapshot ids look like '00000000000000000001')",
            volume_id=volume_id,
            snapshot_id=sid[:200],
        )
    return int(sid)
