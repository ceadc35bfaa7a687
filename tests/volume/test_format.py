"""Volume format (``docs/spec/volume-v1.md``): golden documents read back, current
ones re-encode byte for byte, and a store holding them is a readable Volume.

The golden files in ``tests/data`` were written once and frozen:

- ``volume-root-v2.json``, ``volume-segment_list-v1.json``,
  ``volume-segment-v1.json``: one commit of two 16-byte blocks at 0 and 32 of
  a 64-byte volume ``disk`` with SHA-256 block digests, by the current code with
  ``FREEZE_AT`` lowered to 2 so that the commit's segment froze into a segment
  list (``created_at`` then set to a round value);
- ``volume-root-v1.json``: the same commit by the last aiolode that wrote root
  format v1 (git ``f9f90a4^``), whose metadata is plain JSON that looks like
  v2 type tags.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import aiolode
from aiolode._sealed import seal
from aiolode.manifest._converter import decode, encode
from aiolode.manifest._volume import SegmentRef, VolumeRoot, VolumeSegment, VolumeSegmentList

DATA = Path(__file__).parent.parent / "data"
ROOT_KEY = "volumes/disk/_log/00000000000000000001.json"


def block(offset: int, length: int) -> bytes:
    """The bytes of the golden volume's block at ``offset`` (as written)."""
    text = f"block@{offset}: aiolode golden volume; ".encode()
    return (text * (length // len(text) + 1))[:length]


def _golden(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_golden_root_v2() -> None:
    data = _golden("volume-root-v2.json")
    root = decode(data, VolumeRoot, key=ROOT_KEY)
    assert (root.volume_id, root.snapshot_id, root.sequence, root.parent_id) == (
        "disk",
        "00000000000000000001",
        1,
        None,
    )
    assert root.created_at == datetime(2026, 11, 30, 2, 35, tzinfo=UTC)
    assert (root.total_length, root.checksum) == (64, "sha256")
    assert (root.block_count, root.committed_bytes) == (2, 32)
    assert root.segments == ()
    assert root.frozen_count == 1
    assert root.frozen_key is not None
    assert root.frozen_key.startswith("volumes/disk/index/list-")
    assert root.frozen_digest is not None
    assert root.frozen_digest.startswith("sha256:")
    # v2 metadata keeps Python types through the tagging of manifest/_metadata.
    meta = root.metadata
    assert meta["fetched_at"] == datetime(2026, 11, 30, 2, 35, 0, 123456, tzinfo=UTC)
    assert meta["price"] == Decimal("1.10")
    assert str(meta["price"]) == "1.10"
    assert meta["source"] == "golden"
    assert meta["literal"] == {"$datetime": "not a tag: escaped"}  # escaped as $map
    assert encode(root) == seal(data)  # the golden is unsealed: written, it gains its seal


def test_golden_root_v1_reads_its_metadata_literally() -> None:
    data = _golden("volume-root-v1.json")
    assert json.loads(data)["format_version"] == 1
    root = decode(data, VolumeRoot, key=ROOT_KEY)
    assert root.metadata == {
        "fetched_at": {"$datetime": "2026-11-30T02:35:00.123456+00:00"},
        "digest": {"$bytes": "AP9haW9sb2Rl"},
        "source": "golden",
    }
    assert isinstance(root.metadata["fetched_at"]["$datetime"], str)
    assert (root.volume_id, root.sequence, root.total_length, root.checksum) == (
        "disk",
        1,
        64,
        "sha256",
    )
    assert (root.block_count, root.committed_bytes, root.frozen_count) == (2, 32, 1)
    # Written again it is a v2 root whose tag look-alikes are escaped: still literal.
    again = encode(root)
    doc = json.loads(again)
    assert doc["format_version"] == 2
    assert doc["metadata"]["fetched_at"] == {
        "$map": {"$datetime": "2026-11-30T02:35:00.123456+00:00"}
    }
    assert decode(again, VolumeRoot, key=ROOT_KEY) == root


def test_golden_segment_and_segment_list() -> None:
    seg_data = _golden("volume-segment-v1.json")
    list_data = _golden("volume-segment_list-v1.json")
    seg = decode(seg_data, VolumeSegment, key="golden")
    assert seg.volume_id == "disk"
    assert (seg.offsets, seg.lengths) == ([0, 32], [16, 16])
    # Block names are sealed to the offset they were staged for.
    assert [n.split("-")[0] for n in seg.names] == ["0", "20"]
    assert seg.checksums == [aiolode.SHA256().digest(block(o, 16)) for o in (0, 32)]
    lst = decode(list_data, VolumeSegmentList, key="golden")
    assert lst.volume_id == "disk"
    (ref,) = lst.segments
    assert isinstance(ref, SegmentRef)
    assert (ref.count, ref.nbytes) == (2, 32)
    # Every reference to an index document carries the sha256 of its bytes.
    assert ref.digest == aiolode.SHA256().digest(seg_data)
    root = decode(_golden("volume-root-v2.json"), VolumeRoot, key=ROOT_KEY)
    assert root.frozen_digest == aiolode.SHA256().digest(list_data)
    assert encode(seg) == seal(seg_data)
    assert encode(lst) == seal(list_data)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("volume-root-v2.json", VolumeRoot),
        ("volume-segment-v1.json", VolumeSegment),
        ("volume-segment_list-v1.json", VolumeSegmentList),
    ],
)
def test_newer_versions_are_refused(name: str, cls: type[Any]) -> None:
    doc = json.loads(_golden(name))
    doc["format_version"] += 1
    with pytest.raises(aiolode.UnsupportedFormatVersionError):
        decode(json.dumps(doc).encode(), cls, key="golden")


async def _golden_store(store: aiolode.Store, root: str = "volume-root-v2.json") -> None:
    """Put the golden documents (and the blocks they name) where a volume keeps them."""
    seg_data = _golden("volume-segment-v1.json")
    list_data = _golden("volume-segment_list-v1.json")
    root_data = _golden(root)
    await store.put(json.loads(root_data)["frozen_key"], list_data)
    await store.put(json.loads(list_data)["segments"][0]["key"], seg_data)
    seg = json.loads(seg_data)
    for offset, length, name in zip(seg["offsets"], seg["lengths"], seg["names"], strict=True):
        await store.put(f"volumes/disk/blocks/{name}", block(offset, length))
    await store.put(ROOT_KEY, root_data)


async def test_a_store_of_golden_documents_is_a_volume(store: aiolode.Store) -> None:
    await _golden_store(store)
    vol = aiolode.Volume("disk", store, 64, checksum=aiolode.SHA256())
    snap = await vol.latest()
    assert snap.id == "00000000000000000001"
    assert snap.metadata["price"] == Decimal("1.10")
    assert snap.committed_ranges() == [(0, 16), (32, 16)]  # (offset, length)
    assert snap.missing_ranges() == [(16, 16), (48, 16)]
    assert await vol.read_at(snap.id, 0, 16) == block(0, 16)
    assert await vol.read_at(snap.id, 35, 10) == block(32, 16)[3:13]
    with pytest.raises(aiolode.RangeMissingError) as ei:
        await vol.read_at(snap.id, 8, 32)
    assert ei.value.missing == [(16, 16)]
    report = await aiolode.verify_volume(store, "disk", total_length=64, checksum="sha256")
    assert report.ok, report.problems
    assert report.orphans == ()
    # The current code commits on top of the golden history.
    ref = await vol.stage_write_at(16, block(16, 16))
    new = await vol.commit([ref])
    assert new.parent_id == snap.id
    assert await vol.read_at(new.id, 0, 48) == block(0, 16) + block(16, 16) + block(32, 16)
    assert (await aiolode.verify_volume(vol)).ok


async def test_golden_volume_refuses_other_settings() -> None:
    store = aiolode.MemoryStore()
    await _golden_store(store)
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.Volume("disk", store, 65, checksum=aiolode.SHA256()).latest()
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.Volume("disk", store, 64).latest()


async def test_a_tampered_golden_segment_is_never_read() -> None:
    store = aiolode.MemoryStore()
    await _golden_store(store)
    seg = json.loads(_golden("volume-segment-v1.json"))
    seg["lengths"][1] = 17  # one byte more than the block holds
    key = json.loads(_golden("volume-segment_list-v1.json"))["segments"][0]["key"]
    await store.put(key, encode(decode(json.dumps(seg), VolumeSegment)), mode="overwrite")
    with pytest.raises(aiolode.ChecksumMismatchError):
        await aiolode.Volume("disk", store, 64, checksum=aiolode.SHA256()).latest()
