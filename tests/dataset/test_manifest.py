"""Manifest format v1: golden files read back, strict decoding, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import aiolode
from aiolode import Dataset
from aiolode.manifest import ColumnStats, CommitRecord, FileRef, Manifest, decode, encode

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


def test_golden_manifest_v1() -> None:
    data = (DATA / "dataset-manifest-v1.json").read_bytes()
    m = decode(data, Manifest, key="golden")
    assert m == _expected_manifest()
    assert json.loads(encode(m)) == json.loads(data)


def test_golden_commit_record_v1() -> None:
    data = (DATA / "dataset-commit-v1.json").read_bytes()
    rec = decode(data, CommitRecord, key="golden")
    m2 = _expected_manifest()
    assert rec.seq == 2
    assert rec.token == m2.commit_token
    assert rec.snapshots[1] == m2
    assert rec.snapshots[0].snapshot_id == "0000000000000002-0000"
    assert rec.snapshots[0].files == []
    assert json.loads(encode(rec)) == json.loads(data)


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
