"""Manifest formats v1, v2 and v3: golden files read back, strict decoding, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

import aiolode
from aiolode import Dataset
from aiolode.manifest import ColumnStats, CommitRecord, FileRef, Manifest, decode, encode
from aiolode.manifest._dataset import PartitionManifest, PartitionRef
from aiolode.reader import DatasetReader

DATA = Path(__file__).parent.parent / "data"


def _expected_manifest() -> Manifest:
    return Manifest(
        dataset_id="events",
        snapshot_id="0000000000000002-0001",
        parent_id="0000000000000002-0000",
        created_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        metadata={"source": "crawler", "tags": ["a", "b"], "nested": {"n": 1}},
        files=[
            FileRef(
                key="datasets/events/data/day=2024-05-01/source=web%2Fa/"
                "3f2c0d0e8b9a4c1d9e7f6a5b4c3d2e1f.jsonl.gz",
                size=1234,
                checksum="sha256:" + "ab" * 32,
                row_count=10,
                partition={"day": "2024-05-01", "source": "web/a"},
                stats={
                    "id": ColumnStats(min=1, max=10, null_count=0),
                    "name": ColumnStats(min="a", max="z", null_count=2),
                },
            )
        ],
        row_count=10,
        codec="jsonl",
        codec_options={"stats": True},
        compressor="gzip",
        compressor_options={"level": 6},
        layout={"name": "hive", "partition_keys": ["day", "source"]},
        commit_token="5c1e0b7f4a2d4e6f8a9b0c1d2e3f4a5b",
        min_timestamp="2024-05-01T00:00:00.000000Z",
        max_timestamp="2024-05-01T23:59:59.000000Z",
    )


def _v3_manifest(m: dict[str, Any]) -> dict[str, Any]:
    files = [{**f, "sources": []} for f in m.get("files", [])]
    return {
        "partition_manifests": [],
        **m,
        "files": files,
        "format_version": 3,
        "operation": "append",
        "replaces": [],
        "idempotency_key": None,
    }


def _as_v3(doc: dict[str, Any]) -> dict[str, Any]:
    """What a v1/v2 document re-encodes to: version 3, with v3's defaults."""
    if "snapshots" not in doc:
        return _v3_manifest(doc)
    snaps = [
        {k: v for k, v in _v3_manifest(s).items() if k != "format_version"}
        for s in doc["snapshots"]
    ]
    return {
        **doc,
        "format_version": 3,
        "snapshots": snaps,
        "ops": [],
        "expiry": None,
        "expiry_seq": 0,
        "gc_fence": None,
        "dropped": False,
        "tip": None,
        "incarnation": "",
        "schema": None,
        "schema_seq": 0,
    }


def test_golden_manifest_v1() -> None:
    data = (DATA / "dataset-manifest-v1.json").read_bytes()
    m = decode(data, Manifest, key="golden")
    assert m == _expected_manifest()
    assert m.files_loaded
    assert json.loads(encode(m)) == _as_v3(json.loads(data))


def test_golden_commit_record_v1() -> None:
    data = (DATA / "dataset-commit-v1.json").read_bytes()
    rec = decode(data, CommitRecord, key="golden")
    m2 = _expected_manifest()
    assert rec.seq == 2
    assert rec.token == m2.commit_token
    assert rec.snapshots[1] == m2
    assert rec.snapshots[0].snapshot_id == "0000000000000002-0000"
    assert rec.snapshots[0].files == ()
    assert json.loads(encode(rec)) == _as_v3(json.loads(data))


_PKEY = (
    "datasets/events/data/day=2024-05-01/source=web%2Fa/_manifests/"
    "9d8c7b6a5f4e3d2c1b0a99887766554f.json"
)


def _expected_v2() -> Manifest:
    """The golden v2 snapshot: files in a partition manifest, a summary inline."""
    m = _expected_manifest()
    ref = PartitionRef(
        partition={"day": "2024-05-01", "source": "web/a"},
        key=_PKEY,
        file_count=1,
        row_count=10,
        size=1234,
    )
    return attrs.evolve(m, files=[], partition_manifests=[ref])


def test_golden_v2_documents() -> None:
    m = decode((DATA / "dataset-manifest-v2.json").read_bytes(), Manifest, key="golden")
    assert m == _expected_v2()
    assert not m.files_loaded
    assert m.file_count == 1
    assert m.partitions == ({"day": "2024-05-01", "source": "web/a"},)
    data = (DATA / "dataset-commit-v2.json").read_bytes()
    rec = decode(data, CommitRecord, key="golden")
    assert rec.snapshots[1] == _expected_v2()
    assert rec.snapshots[0].files == ()
    assert rec.snapshots[0].partition_manifests == ()
    assert json.loads(encode(rec)) == _as_v3(json.loads(data))
    pdata = (DATA / "dataset-partition-v1.json").read_bytes()
    pm = decode(pdata, PartitionManifest, key=_PKEY)
    assert pm.files == _expected_manifest().files
    assert pm.partition == {"day": "2024-05-01", "source": "web/a"}
    expected = json.loads(pdata)
    expected["files"] = [{**f, "sources": []} for f in expected["files"]]
    assert json.loads(encode(pm)) == expected


async def test_dataset_reads_golden_v2_log(memory: aiolode.MemoryStore) -> None:
    """A v1 record followed by a v2 record with a partition manifest: one history."""
    prefix = "datasets/events/_log/"
    one = json.loads((DATA / "dataset-commit-v1.json").read_bytes())
    one["seq"] = 1
    one["snapshots"] = [
        {**one["snapshots"][0], "snapshot_id": "0000000000000001-0000", "parent_id": None}
    ]
    await memory.put(prefix + "0000000000000001.json", json.dumps(one).encode())
    await memory.put(
        prefix + "0000000000000002.json", (DATA / "dataset-commit-v2.json").read_bytes()
    )
    await memory.put(_PKEY, (DATA / "dataset-partition-v1.json").read_bytes())
    latest = await Dataset("events", memory).latest()
    # The Dataset API returns the files, read from the partition manifest.
    assert latest.manifest == attrs.evolve(_expected_v2(), files=_expected_manifest().files)
    assert latest.manifest.partition_manifests == _expected_v2().partition_manifests
    ds = DatasetReader(memory).dataset("events")
    assert (await ds.snapshot(latest.id)).manifest == latest.manifest
    assert tuple(f.file for f in await ds.files()) == _expected_manifest().files
    # A partition manifest that disagrees with its summary is refused.
    bad = json.loads((DATA / "dataset-partition-v1.json").read_bytes())
    bad["partition"] = {"day": "2024-05-02", "source": "web/a"}
    await memory.put(_PKEY, json.dumps(bad).encode(), mode="overwrite")
    with pytest.raises(aiolode.ManifestFormatError) as ei:
        await Dataset("events", memory).latest()
    assert ei.value.key == _PKEY
    await memory.delete(_PKEY)
    with pytest.raises(aiolode.ManifestFormatError, match="missing"):
        await DatasetReader(memory).dataset("events").files()


async def test_dataset_reads_golden_log(tmp_path: Path) -> None:
    """A store holding the golden record is a readable dataset history."""
    mem = aiolode.MemoryStore()
    prefix = "datasets/events/_log/"
    rec = (DATA / "dataset-commit-v1.json").read_bytes()
    one = json.loads(rec)
    one["seq"] = 1
    one["snapshots"] = [
        {**one["snapshots"][0], "snapshot_id": "0000000000000001-0000", "parent_id": None}
    ]
    await mem.put(prefix + "0000000000000001.json", json.dumps(one).encode())
    await mem.put(prefix + "0000000000000002.json", rec)
    ds = Dataset("events", mem)
    latest = await ds.latest()
    assert latest.manifest == _expected_manifest()
    ids = [s.id async for s in ds.snapshots()]
    assert ids == ["0000000000000001-0000", "0000000000000002-0000", "0000000000000002-0001"]


def test_unknown_version_and_schema() -> None:
    doc = json.loads((DATA / "dataset-manifest-v1.json").read_bytes())
    with pytest.raises(aiolode.UnsupportedFormatVersionError) as ei:
        decode(json.dumps({**doc, "format_version": 99}), Manifest, key="k")
    assert ei.value.format_version == 99
    assert ei.value.key == "k"
    with pytest.raises(aiolode.ManifestFormatError) as e2:
        decode(json.dumps({**doc, "schema_name": "other"}), Manifest)
    assert e2.value.field == "schema_name"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"files": [{"key": "k", "size": "12"}]}, "files[0].size"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": "2024-05-01T00:00:00"}, "created_at"),
        ({"dataset_id": 3}, "dataset_id"),
    ],
)
def test_invalid_fields_named(patch: dict[str, object], field: str) -> None:
    doc = json.loads((DATA / "dataset-manifest-v1.json").read_bytes())
    with pytest.raises(aiolode.ManifestFormatError) as ei:
        decode(json.dumps({**doc, **patch}), Manifest)
    assert ei.value.field == field


def test_missing_field_named() -> None:
    doc = json.loads((DATA / "dataset-manifest-v1.json").read_bytes())
    del doc["snapshot_id"]
    with pytest.raises(aiolode.ManifestFormatError) as ei:
        decode(json.dumps(doc), Manifest)
    assert ei.value.field is not None
    assert "snapshot_id" in ei.value.field


async def test_corrupt_record_in_log(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory)
    await ds.write(b"x")
    await memory.put("datasets/d/_log/0000000000000002.json", b"{broken")
    with pytest.raises(aiolode.ManifestFormatError) as ei:
        await Dataset("d", memory).latest()
    assert ei.value.key == "datasets/d/_log/0000000000000002.json"
    # A record of another dataset (or seq) at this position is refused too.
    rec = await memory.get("datasets/d/_log/0000000000000001.json")
    await memory.put("datasets/d/_log/0000000000000002.json", rec, mode="overwrite")
    with pytest.raises(aiolode.ManifestFormatError):
        await Dataset("d", memory).latest()


@pytest.mark.parametrize(
    ("damage", "field"),
    [("empty", "snapshots"), ("wrong-id", "snapshots[0].snapshot_id")],
)
async def test_inconsistent_record_is_refused(
    memory: aiolode.MemoryStore, damage: str, field: str
) -> None:
    ds = Dataset("d", memory)
    await ds.write(b"x")
    key = "datasets/d/_log/0000000000000001.json"
    doc = json.loads(await memory.get(key))
    if damage == "empty":
        doc["snapshots"] = []
    else:
        doc["snapshots"][0]["snapshot_id"] = "0000000000000007-0000"
    await memory.put(key, json.dumps(doc).encode(), mode="overwrite")
    await memory.delete("datasets/d/_log/_latest.json")
    with pytest.raises(aiolode.ManifestFormatError) as ei:
        await Dataset("d", memory).latest()
    assert ei.value.field == field
    with pytest.raises(aiolode.ManifestFormatError):
        await Dataset("d", memory).snapshot("0000000000000001-0000")


async def test_partition_manifests_on_storage_and_verify(memory: aiolode.MemoryStore) -> None:
    """Format v2 on storage: one partition manifest per touched partition,
    under its prefix, named by the record; verify follows them."""
    ds = Dataset("d", memory, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    snap = await ds.write([{"p": "a", "v": 1}, {"p": "b", "v": 2}, {"p": "a", "v": 3}])
    refs = snap.manifest.partition_manifests
    assert [r.partition for r in refs] == [{"p": "a"}, {"p": "b"}]
    assert [r.key.rsplit("/", 2)[0] for r in refs] == ["datasets/d/data/p=a", "datasets/d/data/p=b"]
    assert all("/_manifests/" in r.key for r in refs)
    assert [(r.file_count, r.row_count) for r in refs] == [(1, 2), (1, 1)]
    assert sum(r.size for r in refs) == sum(f.size for f in snap.files)
    record = json.loads(await memory.get("datasets/d/_log/0000000000000001.json"))
    assert record["format_version"] == 3
    assert record["snapshots"][0]["files"] == []
    # The summaries give totals and partitions without any partition manifest.
    assert snap.row_count == 3
    assert snap.manifest.file_count == 2
    report = await aiolode.verify_dataset(ds)
    assert report.ok, report.problems
    assert report.orphans == ()
    assert report.objects_checked == 2
    # An aborted write's partition manifest is an orphan, never data.
    stray = ds.layout.partition_manifest_key("d", {"p": "z"}, "0" * 32)
    await memory.put(stray, (DATA / "dataset-partition-v1.json").read_bytes())
    assert (await aiolode.verify_dataset(ds)).orphans == (stray,)
    assert [f.key for f in await ds.files()] == [f.key for f in snap.files]
    # A missing partition manifest is a reported problem.
    await memory.delete(refs[1].key)
    kinds = {p.kind for p in (await aiolode.verify_dataset(ds)).problems}
    assert kinds == {aiolode.ProblemKind.MISSING_OBJECT}


async def test_unpartitioned_keeps_files_inline(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("d", memory, codec=aiolode.JSONL())
    snap = await ds.write([{"v": 1}])
    assert snap.manifest.partition_manifests == ()
    record = json.loads(await memory.get("datasets/d/_log/0000000000000001.json"))
    assert [f["key"] for f in record["snapshots"][0]["files"]] == [snap.files[0].key]
    assert not [o.key async for o in memory.list("datasets/d/data/") if "_manifests" in o.key]


def test_golden_commit_record_v3_metadata_types() -> None:
    """v3 metadata keeps Python types through a documented tagging (spec v3)."""
    import decimal
    import uuid

    data = (DATA / "dataset-commit-v3.json").read_bytes()
    rec = decode(data, CommitRecord, key="golden")
    meta = rec.snapshots[0].metadata
    assert meta["fetched_at"] == datetime(2026, 11, 30, 1, 35, 0, 123456, tzinfo=UTC)
    assert meta["fetched_at"].utcoffset() is not None
    assert meta["day"] == datetime(2026, 11, 30).date()
    assert meta["request"] == uuid.UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2")
    assert meta["price"] == decimal.Decimal("1.10")
    assert str(meta["price"]) == "1.10"
    assert meta["digest"] == b"\x00\xffaiolode"
    assert meta["tags"] == ("a", "b")
    # A user mapping that looks like a tag is escaped, never misread.
    assert meta["literal"] == {"$datetime": "not a tag: escaped"}
    assert json.loads(encode(rec)) == json.loads(data)


def test_legacy_metadata_that_looks_like_a_tag_stays_a_mapping() -> None:
    """Documents written before tags existed (v1/v2) read their metadata literally."""
    doc = json.loads((DATA / "dataset-manifest-v2.json").read_bytes())
    doc["metadata"] = {"$datetime": "2024-01-01T00:00:00+00:00", "x": {"$bytes": "AA=="}}
    m = decode(json.dumps(doc).encode(), Manifest, key="golden")
    assert m.metadata == {"$datetime": "2024-01-01T00:00:00+00:00", "x": {"$bytes": "AA=="}}
    doc["metadata"] = {"$uuid": "not-a-uuid"}
    assert decode(json.dumps(doc).encode(), Manifest, key="g").metadata == {"$uuid": "not-a-uuid"}


def test_golden_descriptor_v1() -> None:
    from aiolode.manifest._dataset import DatasetDescriptor

    data = (DATA / "dataset-descriptor-v1.json").read_bytes()
    d = decode(data, DatasetDescriptor, key="golden")
    assert (d.codec, d.compressor, d.checksum) == ("jsonl", "zstd", "sha256")
    assert d.layout == {"name": "hive", "partition_keys": ("day",)}
    assert d.timestamp_field == "ts"
    assert json.loads(encode(d)) == json.loads(data)


async def test_dataset_opens_by_name_from_the_golden_descriptor(
    memory: aiolode.MemoryStore,
) -> None:
    await memory.put(
        "datasets/events/_dataset.json", (DATA / "dataset-descriptor-v1.json").read_bytes()
    )
    ds = Dataset("events", memory)
    snap = await ds.write([{"day": "2026-11-30", "ts": "2026-11-30T00:00:00Z", "n": 1}])
    assert (snap.manifest.codec, snap.manifest.compressor) == ("jsonl", "zstd")
    assert snap.manifest.layout["partition_keys"] == ("day",)
    assert (snap.files[0].checksum or "").startswith("sha256:")
    assert snap.files[0].partition == {"day": "2026-11-30"}
    with pytest.raises(aiolode.ConfigMismatchError) as ei:
        await Dataset("events", memory, compressor=aiolode.Gzip()).write([{"day": "x"}])
    assert ei.value.field == "compressor"
