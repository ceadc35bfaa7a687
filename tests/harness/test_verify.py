"""verify_dataset / verify_volume: healthy stores pass, every kind of damage is reported."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from harness._common import CONFIGS, SLOT, block_bytes, make_dataset, payload, records

import aiolode
from aiolode import Problem, ProblemKind, VerifyReport, verify_dataset, verify_volume
from aiolode.testing import CountingStore, Fail, FaultInjectingStore, Rule

if TYPE_CHECKING:
    pass


def _kinds(report: VerifyReport) -> list[ProblemKind]:
    return [p.kind for p in report.problems]


async def _dataset(store: aiolode.Store, n: int = 3, cfg_name: str = "jsonl") -> aiolode.Dataset:
    cfg = next(c for c in CONFIGS if c.name == cfg_name)
    ds = make_dataset(store, cfg)
    for i in range(n):
        data = payload(f"t{i}", 40) if cfg.raw else records(f"t{i}", 5)
        await ds.write(data, {"tag": f"t{i}", "n": 5})
    return ds


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
async def test_healthy_dataset_every_codec(cfg: Any) -> None:
    store = aiolode.MemoryStore()
    ds = make_dataset(store, cfg)
    for i in range(3):
        await ds.write(payload(f"t{i}", 40) if cfg.raw else records(f"t{i}", 6), {"i": i})
    report = await verify_dataset(ds)
    assert report.ok
    assert report.problems == ()
    assert report.head == "0000000000000003-0000"
    assert report.snapshots_checked == 3
    assert report.records_checked == 3
    files = [f async for s in ds.snapshots() for f in s.files]
    assert report.objects_checked == len(files)
    assert report.bytes_checked == (sum(f.size for f in files) if cfg.checksum else 0)
    assert report.orphans == ()


async def test_empty_dataset_and_volume() -> None:
    store = aiolode.MemoryStore()
    report = await verify_dataset(aiolode.Dataset("d", store))
    assert report.ok
    assert report.head is None
    assert report.snapshots_checked == 0
    vr = await verify_volume(aiolode.Volume("v", store, 10))
    assert vr.ok
    assert vr.head is None


async def test_dataset_damage_is_reported_not_raised(store: aiolode.Store) -> None:
    ds = await _dataset(store, 4)
    snaps = [s async for s in ds.snapshots()]
    # 1: a flipped byte; 2: a truncated file; 3: a deleted file.
    k1, k2, k3 = (snaps[i].files[0].key for i in (0, 1, 2))
    data = bytearray(await store.get(k1))
    data[3] ^= 0x20
    await store.put(k1, bytes(data), mode="overwrite")
    await store.put(k2, (await store.get(k2))[:-1], mode="overwrite")
    await store.delete(k3)
    report = await verify_dataset(ds)
    assert not report.ok
    by = {(p.kind, p.snapshot_id, p.key) for p in report.problems}
    assert by == {
        (ProblemKind.CHECKSUM_MISMATCH, snaps[0].id, k1),
        (ProblemKind.SIZE_MISMATCH, snaps[1].id, k2),
        (ProblemKind.MISSING_OBJECT, snaps[2].id, k3),
    }
    assert report.objects_checked == 4
    assert all(isinstance(p, Problem) and str(p).startswith(p.kind.value) for p in report.problems)


async def test_orphans_are_listed_never_deleted(store: aiolode.Store) -> None:
    ds = await _dataset(store, 2)
    await store.put("datasets/h/data/aborted.jsonl", b"12345")
    await store.put("datasets/h/data/p=x/aborted2.jsonl", b"1")
    await store.put("datasets/other/data/x.bin", b"not ours")
    report = await verify_dataset(ds)
    assert report.ok
    assert report.orphans == ("datasets/h/data/aborted.jsonl", "datasets/h/data/p=x/aborted2.jsonl")
    assert report.orphan_bytes == 6
    assert await store.exists("datasets/h/data/aborted.jsonl")


async def test_gap_and_wrong_parent_break_the_chain(store: aiolode.Store) -> None:
    ds = await _dataset(store, 4)
    await store.delete("datasets/h/_log/0000000000000002.json")
    key = "datasets/h/_log/0000000000000004.json"
    doc = json.loads(await store.get(key))
    doc["snapshots"][0]["parent_id"] = "0000000000000001-0000"
    await store.put(key, json.dumps(doc).encode(), mode="overwrite")
    report = await verify_dataset(ds)
    assert _kinds(report) == [ProblemKind.BROKEN_CHAIN, ProblemKind.BROKEN_CHAIN]
    gap, parent = report.problems
    assert gap.snapshot_id == "0000000000000002-0000"
    assert parent.snapshot_id == "0000000000000004-0000"
    # The files of the unreachable record's snapshot become orphans.
    assert len(report.orphans) == 1


async def test_invalid_records_are_reported() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 3)
    await store.put("datasets/h/_log/0000000000000002.json", b"{not json", mode="overwrite")
    key3 = "datasets/h/_log/0000000000000003.json"
    doc = json.loads(await store.get(key3))
    doc["format_version"] = 99
    await store.put(key3, json.dumps(doc).encode(), mode="overwrite")
    report = await verify_dataset(ds)
    assert _kinds(report) == [ProblemKind.INVALID_RECORD, ProblemKind.INVALID_RECORD]
    assert [p.key for p in report.problems] == [
        "datasets/h/_log/0000000000000002.json",
        key3,
    ]


async def test_unknown_codec_is_an_invalid_record() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 1)
    key = "datasets/h/_log/0000000000000001.json"
    doc = json.loads(await store.get(key))
    doc["snapshots"][0]["codec"] = "nonesuch"
    await store.put(key, json.dumps(doc).encode(), mode="overwrite")
    report = await verify_dataset(ds)
    assert _kinds(report) == [ProblemKind.INVALID_RECORD]


async def test_store_failures_become_storage_problems() -> None:
    raw = aiolode.MemoryStore()
    await _dataset(raw, 2)
    faulty = FaultInjectingStore(raw, [Rule(op="iter_bytes", key="*/data/*", nth=1, action=Fail())])
    report = await verify_dataset(make_dataset(faulty, CONFIGS[2]))
    assert _kinds(report) == [ProblemKind.STORAGE_ERROR]


async def test_snapshot_range_and_unknown_ids() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 3)
    last = (await ds.latest()).files[0].key
    await store.delete(last)
    report = await verify_dataset(ds, "0000000000000002-0000")
    assert report.ok  # the damage is after the range
    assert report.snapshot_id == "0000000000000002-0000"
    assert report.head == "0000000000000003-0000"
    assert report.snapshots_checked == 2
    assert report.orphans == ()  # later records still count as references
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await verify_dataset(ds, "0000000000000009-0000")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await verify_dataset(ds, "latest")
    with pytest.raises(aiolode.InvalidInputError):
        await verify_dataset(ds, 3)  # type: ignore[arg-type]


async def test_group_commit_records_hold_several_snapshots() -> None:
    import anyio

    store = aiolode.MemoryStore()
    ds = make_dataset(store, CONFIGS[0])
    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(ds.write, payload(f"g{i}", 10), {"tag": f"g{i}", "n": 10})
    report = await verify_dataset(ds)
    assert report.ok
    assert report.snapshots_checked == 8
    assert report.records_checked < 8


async def test_verify_cost_in_store_calls() -> None:
    # One listing, one get per record, one streamed get per checksummed file.
    raw = aiolode.MemoryStore()
    await _dataset(raw, 5)
    counting = CountingStore(raw)
    await verify_dataset(make_dataset(counting, CONFIGS[2]))
    counts = counting.counts
    assert counts["list"] == 1
    assert counts["get"] == 5
    assert counts["iter_bytes"] == 5
    assert counting.total_calls == 11


# ------------------------------------------------------------------------ volume
async def _volume(store: aiolode.Store, n: int = 4, checksum: bool = True) -> aiolode.Volume:
    vol = aiolode.Volume("v", store, 16 * SLOT, checksum=aiolode.SHA256() if checksum else None)
    for i in range(n):
        off = 2 * i * SLOT
        await vol.commit([await vol.stage_write_at(off, block_bytes(off, SLOT))], {"i": i})
    return vol


@pytest.mark.parametrize("checksum", [True, False])
async def test_healthy_volume(store: aiolode.Store, checksum: bool) -> None:
    vol = await _volume(store, checksum=checksum)
    staged = await vol.stage_write_at(15 * SLOT, block_bytes(15 * SLOT, SLOT))
    report = await verify_volume(vol)
    assert report.ok
    assert report.head == "00000000000000000004"
    assert report.snapshots_checked == 4
    assert report.objects_checked == 4  # each block once, though 4 snapshots share them
    assert report.bytes_checked == (4 * SLOT if checksum else 0)
    assert report.orphans == (staged.key,)
    assert report.orphan_bytes == SLOT


async def test_volume_damage_is_reported(store: aiolode.Store) -> None:
    vol = await _volume(store)
    blocks = (await vol.latest()).blocks()
    data = bytearray(await store.get(blocks[0].key))
    data[0] ^= 1
    await store.put(blocks[0].key, bytes(data), mode="overwrite")
    await store.put(blocks[1].key, b"short", mode="overwrite")
    await store.delete(blocks[2].key)
    report = await verify_volume(aiolode.Volume("v", store, 16 * SLOT, checksum=aiolode.SHA256()))
    assert {(p.kind, p.key) for p in report.problems} == {
        (ProblemKind.CHECKSUM_MISMATCH, blocks[0].key),
        (ProblemKind.SIZE_MISMATCH, blocks[1].key),
        (ProblemKind.MISSING_OBJECT, blocks[2].key),
    }


async def test_volume_chain_and_index_problems() -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 4)
    await store.delete("volumes/v/_log/00000000000000000002.json")
    key4 = "volumes/v/_log/00000000000000000004.json"
    root = json.loads(await store.get(key4))
    seg_key = root["segments"][0]["key"]
    seg = json.loads(await store.get(seg_key))
    seg["lengths"][0] = 10**9  # runs past N
    await store.put(seg_key, json.dumps(seg).encode(), mode="overwrite")
    vol = aiolode.Volume("v", store, 16 * SLOT, checksum=aiolode.SHA256())
    report = await verify_volume(vol)
    kinds = _kinds(report)
    assert ProblemKind.BROKEN_CHAIN in kinds
    # The root records the segment's digest: the tampering is a digest mismatch.
    assert any(
        p.key == seg_key and p.kind is ProblemKind.CHECKSUM_MISMATCH for p in report.problems
    )
    # A root written before digests existed: the segment's own checks catch it.
    root["segments"][0]["digest"] = None
    await store.put(key4, json.dumps(root).encode(), mode="overwrite")
    report = await verify_volume(vol)
    assert any(p.key == seg_key and p.kind is ProblemKind.INVALID_RECORD for p in report.problems)


async def test_volume_setting_mismatch_and_range() -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 3)
    other = aiolode.Volume("v", store, 16 * SLOT)  # opened without a checksum
    report = await verify_volume(other)
    assert ProblemKind.INVALID_RECORD in _kinds(report)
    vol = aiolode.Volume("v", store, 16 * SLOT, checksum=aiolode.SHA256())
    ranged = await verify_volume(vol, "00000000000000000002")
    assert ranged.ok
    assert ranged.snapshots_checked == 2
    assert ranged.objects_checked == 2
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await verify_volume(vol, "00000000000000000007")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await verify_volume(vol, "nope")
