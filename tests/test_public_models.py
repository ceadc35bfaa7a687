"""Public value types built by hand with a wrong type: InvalidInputError, never
an object that fails later with a bare exception.

The manifest models (FileRef, Manifest, DataFile) and the verify report types
are checked in tests/dataset/test_manifest_fields.py and
tests/harness/test_verify.py; the pins below are the public types outside them
that still accept anything.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import aiolode


async def test_a_snapshot_of_no_manifest_is_refused() -> None:
    store = aiolode.MemoryStore()
    await aiolode.Dataset("d", store).write(b"x")
    try:
        snap = aiolode.Snapshot(manifest=5)  # type: ignore[arg-type]
    except aiolode.InvalidInputError:
        return
    with pytest.raises(aiolode.AiolodeError):  # today: AttributeError
        await aiolode.Dataset("d", store).read(snap)


def test_a_volume_snapshot_of_wrong_types_is_refused() -> None:
    try:
        snap = aiolode.VolumeSnapshot(
            id="00000000000000000001",
            parent_id=None,
            created_at=datetime.now(UTC),
            metadata={},  # type: ignore[arg-type]
            volume_id="v",
            total_length=10,
            committed_bytes=0,
            block_count=0,
            runs=5,  # type: ignore[arg-type]
        )
    except aiolode.InvalidInputError:
        return
    with pytest.raises(aiolode.AiolodeError):  # today: TypeError
        snap.committed_ranges()
