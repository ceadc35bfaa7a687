"""verify_dataset / verify_volume: healthy stores pass, every kind of damage is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from harness._common import CONFIGS, SLOT, block_bytes, make_dataset, payload, records

import aiolode
from aiolode import Problem, ProblemKind, VerifyReport, verify_dataset, verify_volume
from aiolode._history._log import HINT_SCHEMA, LWM_SCHEMA, encode_pointer
from aiolode.testing import CountingStore, Fail, FaultInjectingStore, Rule, seal_document

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def _kinds(report: VerifyReport) -> list[ProblemKind]:
    return [p.kind for p in report.problems]


def _layout(cfg: Any) -> aiolode.Layout | None:
    return aiolode.HiveLayout("p") if cfg.hive else None


async def _dataset(store: aiolode.Store, n: int = 3, cfg_name: str = "jsonl") -> aiolode.Dataset:
    cfg = next(c for c in CONFIGS if c.name == cfg_name)
    ds = make_dataset(store, cfg)
    for i in range(n):
        data = payload(f"t{i}", 40) if cfg.raw else records(f"t{i}", 5)
        await ds.write(data, {"tag": f"t{i}", "n": 5})
    return ds


async def _edit(store: aiolode.Store, key: str, fn: Callable[[dict[str, Any]], object]) -> None:
    """Rewrite the JSON document at ``key`` in place (bypassing every writer check)."""
    doc = json.loads(await store.get(key))
    fn(doc)
    await store.put(key, seal_document(doc), mode="overwrite")


# ----------------------------------------------------------------------- dataset
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
async def test_healthy_dataset_every_codec(cfg: Any) -> None:
    store = aiolode.MemoryStore()
    ds = make_dataset(store, cfg)
    for i in range(3):
        await ds.write(payload(f"t{i}", 40) if cfg.raw else records(f"t{i}", 6), {"i": i})
    # Without a layout, the descriptor says which (hive for the hive configs).
    report = await verify_dataset(store, "h")
    assert report.ok, report.problems
    assert report.problems == ()
    assert report.head == "0000000000000003-0000"
    assert report.snapshots_checked == 3
    assert report.records_checked == 3
    files = [f async for s in ds.snapshots() for f in s.files]
    assert report.objects_checked == len(files)
    assert report.bytes_checked == (sum(f.size for f in files) if cfg.checksum else 0)
    # The descriptor and the hint are the log's own objects, never orphans.
    assert await store.exists("datasets/h/_dataset.json")
    assert report.orphans == ()
    assert await verify_dataset(store, "h", layout=_layout(cfg)) == report


async def test_dataset_object_and_method_give_the_plain_report() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 2, "jsonl-gzip-hive")
    plain = await verify_dataset(store, "h", layout=aiolode.HiveLayout("p"))
    assert plain.ok
    assert await verify_dataset(ds) == plain
    assert await ds.verify() == plain
    by_name = aiolode.Dataset("h", store)  # layout unknown until found: looked up
    assert await verify_dataset(by_name) == plain
    assert await by_name.verify() == plain
    ranged = await verify_dataset(ds, snapshot_id="0000000000000001-0000")
    assert ranged.snapshots_checked == 1
    with pytest.raises(aiolode.InvalidInputError):
        await verify_dataset(ds, "0000000000000001-0000")  # type: ignore[call-overload]


async def test_empty_dataset_and_volume() -> None:
    store = aiolode.MemoryStore()
    report = await verify_dataset(store, "d")
    assert report.ok
    assert report.head is None
    assert report.snapshots_checked == 0
    vr = await verify_volume(store, "v", total_length=10)
    assert vr.ok
    assert vr.head is None


async def test_dataset_damage_is_reported_not_raised(store: aiolode.Store) -> None:
    ds = await _dataset(store, 4)
    snaps = [s async for s in ds.snapshots()]
    # 1: a flipped byte; 2: a truncated file; 3: a deleted file; 4: one byte more.
    k1, k2, k3, k4 = (snaps[i].files[0].key for i in (0, 1, 2, 3))
    data = bytearray(await store.get(k1))
    data[3] ^= 0x20
    await store.put(k1, bytes(data), mode="overwrite")
    await store.put(k2, (await store.get(k2))[:-1], mode="overwrite")
    await store.delete(k3)
    await store.put(k4, await store.get(k4) + b"\n", mode="overwrite")
    report = await verify_dataset(store, "h")
    assert not report.ok
    by = {(p.kind, p.snapshot_id, p.key) for p in report.problems}
    assert by == {
        (ProblemKind.CHECKSUM_MISMATCH, snaps[0].id, k1),
        (ProblemKind.SIZE_MISMATCH, snaps[1].id, k2),
        (ProblemKind.MISSING_OBJECT, snaps[2].id, k3),
        (ProblemKind.SIZE_MISMATCH, snaps[3].id, k4),
    }
    assert report.objects_checked == 4
    assert all(isinstance(p, Problem) and str(p).startswith(p.kind.value) for p in report.problems)


async def test_orphans_are_listed_never_deleted(store: aiolode.Store) -> None:
    await _dataset(store, 2)
    await store.put("datasets/h/data/aborted.jsonl", b"12345")
    await store.put("datasets/h/data/p=x/aborted2.jsonl", b"1")
    await store.put("datasets/other/data/x.bin", b"not ours")
    report = await verify_dataset(store, "h")
    assert report.ok
    assert report.orphans == ("datasets/h/data/aborted.jsonl", "datasets/h/data/p=x/aborted2.jsonl")
    assert report.orphan_bytes == 6
    assert await store.exists("datasets/h/data/aborted.jsonl")


async def test_gap_and_wrong_parent_break_the_chain(store: aiolode.Store) -> None:
    await _dataset(store, 4)
    await store.delete("datasets/h/_log/0000000000000002.json")

    def reparent(doc: dict[str, Any]) -> None:
        doc["snapshots"][0]["parent_id"] = "0000000000000001-0000"

    await _edit(store, "datasets/h/_log/0000000000000004.json", reparent)
    report = await verify_dataset(store, "h")
    assert _kinds(report) == [ProblemKind.BROKEN_CHAIN, ProblemKind.BROKEN_CHAIN]
    gap, parent = report.problems
    assert gap.snapshot_id == "0000000000000002-0000"
    assert parent.snapshot_id == "0000000000000004-0000"
    # The files of the unreachable record's snapshot become orphans.
    assert len(report.orphans) == 1


async def test_invalid_records_are_reported() -> None:
    store = aiolode.MemoryStore()
    await _dataset(store, 3)
    await store.put("datasets/h/_log/0000000000000002.json", b"{not json", mode="overwrite")
    key3 = "datasets/h/_log/0000000000000003.json"
    await _edit(store, key3, lambda d: d.update(format_version=99))
    report = await verify_dataset(store, "h")
    assert _kinds(report) == [ProblemKind.INVALID_RECORD, ProblemKind.INVALID_RECORD]
    assert [p.key for p in report.problems] == ["datasets/h/_log/0000000000000002.json", key3]


async def test_unknown_codec_is_an_invalid_record() -> None:
    store = aiolode.MemoryStore()
    await _dataset(store, 1)

    def unknown(doc: dict[str, Any]) -> None:
        doc["snapshots"][0]["codec"] = "nonesuch"

    await _edit(store, "datasets/h/_log/0000000000000001.json", unknown)
    report = await verify_dataset(store, "h")
    assert _kinds(report) == [ProblemKind.INVALID_RECORD]


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda m: m["files"][0].update(key="datasets/other/data/x.jsonl"), "outside"),
        (lambda m: m.update(row_count=m["row_count"] + 1), "rows"),
        (
            lambda m: m.update(
                partition_manifests=[
                    {
                        "partition": {"p": "a"},
                        "key": "datasets/h/data/p=a/_manifests/x.json",
                        "file_count": 1,
                        "row_count": None,
                        "size": 1,
                    }
                ]
            ),
            "both inline files and partition manifests",
        ),
    ],
    ids=["foreign-file", "row-total", "files-and-partitions"],
)
async def test_snapshot_invariants_of_v3_records(
    damage: Callable[[dict[str, Any]], object], words: str
) -> None:
    """What the writer refuses to build, verify reports from the bytes alone."""
    store = aiolode.MemoryStore()
    await _dataset(store, 2)
    key = "datasets/h/_log/0000000000000002.json"
    assert json.loads(await store.get(key))["format_version"] == 3
    await _edit(store, key, lambda d: damage(d["snapshots"][0]))
    report = await verify_dataset(store, "h")
    (problem,) = report.by_kind(ProblemKind.INVALID_RECORD)
    assert words in problem.message
    assert problem.snapshot_id == "0000000000000002-0000"
    # A foreign key is reported, never fetched as if it were ours.
    assert all(p.key is None or not p.key.startswith("datasets/other/") for p in report.problems)


async def test_partition_manifest_that_disagrees_with_its_summary() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 1, "jsonl-gzip-hive")
    ref = (await ds.latest()).manifest.partition_manifests[0]

    def grow(doc: dict[str, Any]) -> None:
        doc["files"][0]["size"] += 1

    await _edit(store, ref.key, grow)
    report = await verify_dataset(store, "h")
    kinds = _kinds(report)
    assert ProblemKind.INVALID_RECORD in kinds
    assert any(p.key == ref.key and "summary" in p.message for p in report.problems)
    # The file itself no longer matches the size the manifest now records.
    assert ProblemKind.SIZE_MISMATCH in kinds


async def test_store_failures_become_storage_problems() -> None:
    raw = aiolode.MemoryStore()
    await _dataset(raw, 2)
    faulty = FaultInjectingStore(raw, [Rule(op="iter_bytes", key="*/data/*", nth=1, action=Fail())])
    report = await verify_dataset(faulty, "h")
    assert _kinds(report) == [ProblemKind.STORAGE_ERROR]


async def test_snapshot_range_and_unknown_ids() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 3)
    last = (await ds.latest()).files[0].key
    await store.delete(last)
    report = await verify_dataset(store, "h", snapshot_id="0000000000000002-0000")
    assert report.ok  # the damage is after the range
    assert report.snapshot_id == "0000000000000002-0000"
    assert report.head == "0000000000000003-0000"
    assert report.snapshots_checked == 2
    assert report.orphans == ()  # later records still count as references
    assert not (await verify_dataset(store, "h")).ok
    for missing in ("0000000000000009-0000", "latest", "0000000000000002-0001"):
        with pytest.raises(aiolode.SnapshotNotFoundError):
            await verify_dataset(store, "h", snapshot_id=missing)
    with pytest.raises(aiolode.InvalidInputError):
        await verify_dataset(store, "h", snapshot_id=3)  # type: ignore[call-overload]
    with pytest.raises(aiolode.InvalidKeyError):
        await verify_dataset(store, "../h")
    with pytest.raises(aiolode.InvalidInputError):
        await verify_dataset(store, "h", layout="hive")  # type: ignore[call-overload]


async def test_group_commit_records_hold_several_snapshots() -> None:
    store = aiolode.MemoryStore()
    ds = make_dataset(store, CONFIGS[0])
    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(ds.write, payload(f"g{i}", 10), {"tag": f"g{i}", "n": 10})
    report = await verify_dataset(store, "h")
    assert report.ok
    assert report.snapshots_checked == 8
    assert report.records_checked < 8


async def test_verify_cost_in_store_calls() -> None:
    # One listing, the descriptor, one get per record, one streamed get per checksummed file.
    raw = aiolode.MemoryStore()
    await _dataset(raw, 5)
    counting = CountingStore(raw)
    await verify_dataset(counting, "h")
    counts = counting.counts
    assert counts["list"] == 1
    assert counts["get"] == 1 + 5
    assert counts["iter_bytes"] == 5
    assert counting.total_calls == 12


# -------------------------------------------------------------------- descriptor
async def test_damaged_descriptor_is_reported() -> None:
    store = aiolode.MemoryStore()
    await _dataset(store, 1)
    key = "datasets/h/_dataset.json"
    good = await store.get(key)
    await store.put(key, b"{not json", mode="overwrite")
    report = await verify_dataset(store, "h")
    assert [(p.kind, p.key) for p in report.problems] == [(ProblemKind.INVALID_RECORD, key)]
    for edit, words in [
        (lambda d: d.update(dataset_id="other"), "belongs to dataset 'other'"),
        (lambda d: d.update(codec="nonesuch"), "unusable component"),
        (lambda d: d.update(checksum="nonesuch"), "unusable component"),
    ]:
        await store.put(key, good, mode="overwrite")
        await _edit(store, key, edit)
        (problem,) = (await verify_dataset(store, "h")).problems
        assert problem.kind is ProblemKind.INVALID_RECORD
        assert problem.key == key
        assert words in problem.message


async def test_descriptor_layout_must_match() -> None:
    store = aiolode.MemoryStore()
    await _dataset(store, 1, "jsonl-gzip-hive")
    report = await verify_dataset(store, "h", layout=aiolode.HiveLayout("q"))
    (problem,) = report.problems
    assert problem.key == "datasets/h/_dataset.json"
    assert "records layout" in problem.message
    # A descriptor that describes a flat dataset cannot sit under datasets/.
    await _edit(
        store,
        "datasets/h/_dataset.json",
        lambda d: d.update(layout={"name": "flat", "partition_keys": []}),
    )
    (problem,) = (await verify_dataset(store, "h")).problems
    assert "whose root is not" in problem.message


async def test_flat_dataset_is_found_without_a_layout() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("f", store, codec=aiolode.JSONL(), layout=aiolode.FlatLayout())
    await ds.write([{"v": 1}])
    report = await verify_dataset(store, "f")
    assert report.ok
    assert report.head == "0000000000000001-0000"
    assert report.objects_checked == 1
    assert report.orphans == ()
    assert await verify_dataset(store, "f", layout=aiolode.FlatLayout()) == report


class _CustomLayout(aiolode.Layout):
    name = "mine"

    def partition_path(self, values: Mapping[str, str]) -> str:
        return ""

    def parse_partition_path(self, path: str) -> dict[str, str]:
        return {}


async def test_custom_layout_must_be_given() -> None:
    store = aiolode.MemoryStore()
    await aiolode.Dataset("c", store, layout=_CustomLayout()).write(b"x")
    with pytest.raises(aiolode.ConfigMismatchError):
        await verify_dataset(store, "c")
    assert (await verify_dataset(store, "c", layout=_CustomLayout())).ok


# ---------------------------------------------------------- low-water mark, hint
async def test_records_below_the_low_water_mark_are_expired_not_gaps() -> None:
    store = aiolode.MemoryStore()
    ds = await _dataset(store, 4)
    first = (await ds.snapshot("0000000000000001-0000")).files[0].key
    await store.put(
        "datasets/h/_log/_latest.json", encode_pointer(HINT_SCHEMA, "h", 4), mode="overwrite"
    )
    await store.put("datasets/h/_log/_lwm.json", encode_pointer(LWM_SCHEMA, "h", 3))
    await store.delete("datasets/h/_log/0000000000000001.json")
    await store.delete(first)
    # Record 2 is below the mark but not collected yet: what it names is no orphan.
    report = await verify_dataset(store, "h")
    assert report.ok, report.problems
    assert report.snapshots_checked == 2
    assert report.orphans == ()
    with pytest.raises(aiolode.SnapshotExpiredError):
        await verify_dataset(store, "h", snapshot_id="0000000000000002-0000")
    # The readers agree: what is below the mark and gone was expired.
    with pytest.raises(aiolode.SnapshotExpiredError):
        await aiolode.Dataset("h", store).snapshot("0000000000000001-0000")


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        (b"{not json", ProblemKind.INVALID_RECORD),
        (encode_pointer(LWM_SCHEMA, "someone-else", 2), ProblemKind.INVALID_RECORD),
        (encode_pointer(HINT_SCHEMA, "h", 2), ProblemKind.INVALID_RECORD),
        (encode_pointer(LWM_SCHEMA, "h", 9), ProblemKind.BROKEN_CHAIN),
    ],
    ids=["garbage", "foreign", "not-a-mark", "past-the-head"],
)
async def test_unusable_low_water_mark(document: bytes, kind: ProblemKind) -> None:
    store = aiolode.MemoryStore()
    await _dataset(store, 3)
    await store.put("datasets/h/_log/_lwm.json", document)
    report = await verify_dataset(store, "h")
    assert [(p.kind, p.key) for p in report.problems] == [(kind, "datasets/h/_log/_lwm.json")]
    assert report.snapshots_checked == 3  # checked from record 1, as readers would
    assert report.orphans == ()


# ------------------------------------------------------------------------ volume
async def _volume(store: aiolode.Store, n: int = 4, checksum: bool = True) -> aiolode.Volume:
    vol = aiolode.Volume("v", store, 16 * SLOT, checksum=aiolode.SHA256() if checksum else None)
    for i in range(n):
        off = 2 * i * SLOT
        await vol.commit([await vol.stage_write_at(off, block_bytes(off, SLOT))], {"i": i})
    return vol


async def _verify_v(store: aiolode.Store, **kw: Any) -> VerifyReport:
    return await verify_volume(store, "v", total_length=16 * SLOT, checksum="sha256", **kw)


async def _segment_of(store: aiolode.Store, seq: int, index: int = 0) -> str:
    """The key of hot segment ``index`` of root ``seq``, after clearing its digest
    there, so a test can edit the segment and reach the checks behind the digest."""
    key = f"volumes/v/_log/{seq:020d}.json"
    root = json.loads(await store.get(key))
    root["segments"][index]["digest"] = None
    await store.put(key, seal_document(root), mode="overwrite")
    return str(root["segments"][index]["key"])


@pytest.mark.parametrize("checksum", [True, False])
async def test_healthy_volume(store: aiolode.Store, checksum: bool) -> None:
    vol = await _volume(store, checksum=checksum)
    staged = await vol.stage_write_at(15 * SLOT, block_bytes(15 * SLOT, SLOT))
    report = await verify_volume(
        store, "v", total_length=16 * SLOT, checksum=aiolode.SHA256() if checksum else None
    )
    assert report.ok, report.problems
    assert report.head == "00000000000000000004"
    assert report.snapshots_checked == 4
    assert report.objects_checked == 4  # each block once, though 4 snapshots share them
    assert report.bytes_checked == (4 * SLOT if checksum else 0)
    assert await store.exists("volumes/v/_latest")  # the hint: the log's own
    assert report.orphans == (staged.key,)
    assert report.orphan_bytes == SLOT


async def test_volume_object_and_method_give_the_plain_report() -> None:
    store = aiolode.MemoryStore()
    vol = await _volume(store, 3)
    plain = await _verify_v(store)
    assert plain.ok
    assert await verify_volume(store, "v", total_length=16 * SLOT, checksum=vol.checksum) == plain
    assert await verify_volume(vol) == plain
    assert await vol.verify() == plain
    assert (await verify_volume(vol, snapshot_id="00000000000000000001")).snapshots_checked == 1
    with pytest.raises(aiolode.InvalidInputError):
        await verify_volume(vol, "v")  # type: ignore[call-overload]


async def test_volume_arguments() -> None:
    store = aiolode.MemoryStore()
    with pytest.raises(aiolode.InvalidInputError):
        await verify_volume(store, "v")  # type: ignore[call-overload]
    with pytest.raises(aiolode.InvalidInputError):
        await verify_volume(store, "v", total_length=-1)
    with pytest.raises(aiolode.InvalidInputError):
        await verify_volume(store, "v", total_length=1, checksum="nonesuch")
    with pytest.raises(aiolode.InvalidInputError):
        await verify_volume(store, "v", total_length=1, checksum=1)  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidKeyError):
        await verify_volume(store, "a b", total_length=1)


async def test_volume_damage_is_reported(store: aiolode.Store) -> None:
    vol = await _volume(store)
    blocks = (await vol.latest()).blocks()
    data = bytearray(await store.get(blocks[0].key))
    data[0] ^= 1
    await store.put(blocks[0].key, bytes(data), mode="overwrite")
    await store.put(blocks[1].key, b"short", mode="overwrite")
    await store.delete(blocks[2].key)
    report = await _verify_v(store)
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

    def past_n(seg: dict[str, Any]) -> None:
        seg["lengths"][0] = 10**9

    await _edit(store, seg_key, past_n)
    report = await _verify_v(store)
    kinds = _kinds(report)
    assert ProblemKind.BROKEN_CHAIN in kinds
    # The root records the segment's digest: the tampering is a digest mismatch.
    assert any(
        p.key == seg_key and p.kind is ProblemKind.CHECKSUM_MISMATCH for p in report.problems
    )
    # A root written before digests existed: the segment's own checks catch it.
    await _segment_of(store, 4)
    report = await _verify_v(store)
    assert any(
        p.key == seg_key and p.kind is ProblemKind.INVALID_RECORD and "past" in p.message
        for p in report.problems
    )


async def test_volume_setting_mismatch_and_range() -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 3)
    report = await verify_volume(store, "v", total_length=16 * SLOT)  # without the checksum
    assert ProblemKind.INVALID_RECORD in _kinds(report)
    report = await verify_volume(store, "v", total_length=8 * SLOT, checksum="sha256")
    assert any("total_length" in p.message for p in report.problems)
    ranged = await _verify_v(store, snapshot_id="00000000000000000002")
    assert ranged.ok
    assert ranged.snapshots_checked == 2
    assert ranged.objects_checked == 2
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await _verify_v(store, snapshot_id="00000000000000000007")
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await _verify_v(store, snapshot_id="nope")
    with pytest.raises(aiolode.InvalidInputError):
        await _verify_v(store, snapshot_id=2)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda r: r.update(block_count=-1), "negative totals"),
        (lambda r: r.update(committed_bytes=10**9), "bytes of a"),
        (lambda r: r["segments"][0].update(key="volumes/w/index/seg-x.json"), "outside"),
        (lambda r: r.update(frozen_key="elsewhere/list.json", frozen_count=0), "outside"),
        (lambda r: r.update(sequence=9), "sequence 9"),
    ],
    ids=["negative", "past-n", "foreign-segment", "foreign-list", "position"],
)
async def test_root_invariants(edit: Callable[[dict[str, Any]], object], words: str) -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 2)
    key = "volumes/v/_log/00000000000000000002.json"
    await _edit(store, key, edit)
    report = await _verify_v(store)
    assert any(
        p.kind is ProblemKind.INVALID_RECORD and p.key == key and words in p.message
        for p in report.problems
    ), report.problems
    # A foreign index document is reported, never followed.
    assert not any((p.key or "").startswith(("volumes/w/", "elsewhere/")) for p in report.problems)


async def test_roots_of_both_formats_verify() -> None:
    """Roots v2 (tagged metadata) are written; a v1 root, whose metadata is plain
    JSON even where it looks like a tag, still verifies."""
    from datetime import UTC, datetime

    store = aiolode.MemoryStore()
    vol = aiolode.Volume("v", store, 16 * SLOT, checksum=aiolode.SHA256())
    when = datetime(2026, 11, 30, tzinfo=UTC)
    await vol.commit([await vol.stage_write_at(0, block_bytes(0, SLOT))], {"at": when})
    await vol.commit([await vol.stage_write_at(SLOT, block_bytes(SLOT, SLOT))], {"x": 1})
    key1 = "volumes/v/_log/00000000000000000001.json"
    root1 = json.loads(await store.get(key1))
    assert root1["format_version"] == 2
    assert root1["metadata"] == {"at": {"$datetime": "2026-11-30T00:00:00+00:00"}}
    assert (await _verify_v(store)).ok
    root1["format_version"] = 1  # read literally: a mapping with a "$datetime" key
    await store.put(key1, seal_document(root1), mode="overwrite")
    assert (await _verify_v(store)).ok
    root1["format_version"] = 3
    await store.put(key1, seal_document(root1), mode="overwrite")
    (problem,) = (await _verify_v(store)).problems
    assert (problem.kind, problem.key) == (ProblemKind.INVALID_RECORD, key1)


@pytest.mark.parametrize(
    ("rename", "words"),
    [
        (lambda name, off: f"{off + 1:x}-{name.split('-')[1]}", "staged for another offset"),
        (lambda name, off: f"{off:x}-{name.split('-')[1]}.bak", "not a block name"),
        (lambda name, off: "..", "not a block name"),
    ],
    ids=["moved", "foreign-name", "dotdot"],
)
async def test_block_names_are_sealed_to_their_offset(
    rename: Callable[[str, int], str], words: str
) -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 1)
    seg_key = await _segment_of(store, 1)

    def edit(seg: dict[str, Any]) -> None:
        seg["names"][0] = rename(seg["names"][0], seg["offsets"][0])

    await _edit(store, seg_key, edit)
    (problem,) = (await _verify_v(store)).problems
    assert (problem.kind, problem.key) == (ProblemKind.INVALID_RECORD, seg_key)
    assert words in problem.message


async def test_legacy_block_names_still_verify() -> None:
    """Blocks staged before names carried their offset (``blocks/<32 hex>``)."""
    store = aiolode.MemoryStore()
    await _volume(store, 1)
    seg_key = await _segment_of(store, 1)
    seg = json.loads(await store.get(seg_key))
    old = seg["names"][0]
    seg["names"][0] = old.split("-")[1]
    await store.put(seg_key, seal_document(seg), mode="overwrite")
    data = await store.get(f"volumes/v/blocks/{old}")
    await store.put(f"volumes/v/blocks/{seg['names'][0]}", data)
    await store.delete(f"volumes/v/blocks/{old}")
    report = await _verify_v(store)
    assert report.ok, report.problems
    assert report.objects_checked == 1
    assert report.orphans == ()


async def test_two_entries_naming_one_block_must_agree() -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 3)
    # Root 3 holds a 2-entry segment (root 2's too) and a 1-entry one; make both
    # name one block.
    first, second = await _segment_of(store, 3, 0), await _segment_of(store, 3, 1)
    assert await _segment_of(store, 2, 0) == first
    a = json.loads(await store.get(first))
    b = json.loads(await store.get(second))
    legacy = "0" * 32
    await store.put(f"volumes/v/blocks/{legacy}", block_bytes(0, SLOT))
    a["names"][0] = legacy
    b["names"][0] = legacy
    await store.put(first, seal_document(a), mode="overwrite")
    await store.put(second, seal_document(b), mode="overwrite")
    report = await _verify_v(store, snapshot_id="00000000000000000003")
    assert any(
        p.kind is ProblemKind.INVALID_RECORD and "two segments" in p.message
        for p in report.problems
    ), report.problems


async def test_overlapping_segments_of_the_newest_snapshot() -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 3)
    second = await _segment_of(store, 3, 1)

    def onto_the_first_block(seg: dict[str, Any]) -> None:
        name = seg["names"][0]
        seg["offsets"][0] = 0
        seg["names"][0] = f"0-{name.split('-')[1]}"

    await _edit(store, second, onto_the_first_block)
    report = await _verify_v(store, snapshot_id="00000000000000000003")
    assert any("overlaps another segment" in p.message for p in report.problems), report.problems


async def test_volume_roots_below_the_low_water_mark() -> None:
    store = aiolode.MemoryStore()
    await _volume(store, 4)
    await store.put("volumes/v/_log/_lwm.json", encode_pointer(LWM_SCHEMA, "v", 3))
    await store.delete("volumes/v/_log/00000000000000000001.json")
    report = await _verify_v(store)
    assert report.ok, report.problems
    assert report.snapshots_checked == 2
    assert report.objects_checked == 4  # root 3 alone says which ranges exist
    with pytest.raises(aiolode.SnapshotExpiredError):
        await _verify_v(store, snapshot_id="00000000000000000002")
    # Not a low-water mark document: checked from root 1, whose absence is a gap.
    await store.put("volumes/v/_log/_lwm.json", b"3", mode="overwrite")
    report = await _verify_v(store)
    assert {(p.kind, p.key) for p in report.problems} == {
        (ProblemKind.INVALID_RECORD, "volumes/v/_log/_lwm.json"),
        (ProblemKind.BROKEN_CHAIN, "volumes/v/_log/00000000000000000001.json"),
    }


# ------------------------------------------------------------------ independence
def test_verify_imports_nothing_it_checks() -> None:
    """verify reads the stored format: it never imports the engines it checks
    (function-level imports included)."""
    from tests.test_layers import module_imports

    src = Path(aiolode.__file__).parent
    forbidden = ("aiolode.dataset", "aiolode.volume", "aiolode.reader", "aiolode._history")
    imports = module_imports(src, "aiolode")
    verify_modules = {m: deps for m, deps in imports.items() if m.startswith("aiolode.verify")}
    assert len(verify_modules) >= 6
    bad = {
        m: sorted(d for d in deps.all if d.startswith(forbidden))
        for m, deps in verify_modules.items()
    }
    assert bad == {m: [] for m in verify_modules}


def test_report_types_check_their_fields() -> None:
    """Problem and VerifyReport built by hand: a wrong type is InvalidInputError
    naming the field (``str(Problem(5, ...))`` was a bare AttributeError)."""
    p = Problem(ProblemKind.MISSING_OBJECT, "gone", key="k")
    assert str(p) == "missing_object: gone"
    for kw in ({"kind": "missing_object"}, {"message": None}, {"key": 5}, {"snapshot_id": b"s"}):
        with pytest.raises(aiolode.InvalidInputError, match=rf"Problem\.{next(iter(kw))}"):
            Problem(**{"kind": ProblemKind.MISSING_OBJECT, "message": "m", **kw})
    good: dict[str, Any] = {
        "target": "dataset",
        "id": "d",
        "head": None,
        "snapshot_id": None,
        "records_checked": 0,
        "snapshots_checked": 0,
        "objects_checked": 0,
        "bytes_checked": 0,
        "problems": [p],
        "orphans": ["k"],
        "orphan_bytes": 1,
    }
    report = VerifyReport(**good)
    assert report.problems == (p,)
    assert report.orphans == ("k",)
    assert not report.ok
    for name, bad in (
        ("target", "table"),
        ("records_checked", -1),
        ("problems", ["missing"]),
        ("orphans", "k"),
        ("orphan_bytes", None),
    ):
        with pytest.raises(aiolode.InvalidInputError, match=rf"VerifyReport\.{name}") as info:
            VerifyReport(**{**good, name: bad})
        assert info.value.field == name
