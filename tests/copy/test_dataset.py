"""copy_dataset: histories, bytes and rows preserved between any two stores;
incremental; ranges; renaming; expiry; divergence refused; damage detected."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import aiolode
from aiolode.testing import (
    CountingStore,
    Fail,
    FaultInjectingStore,
    Hook,
    LoseAck,
    Rule,
    seal_document,
)

from .conftest import Hostile, assert_same_dataset, events, history, rows_by_snapshot, write_events

if TYPE_CHECKING:
    from aiolode.testing import Call

SMALL = "aiolode._copy._objects.SMALL_OBJECT"


def _puts(store: CountingStore[Any]) -> list[str]:
    return sorted(k for op, k in store.calls if op in ("put", "put_stream"))


# ------------------------------------------------------------------ every pair
async def test_copy_between_stores(
    pair: tuple[aiolode.Store, aiolode.Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backup, incremental backup and restore between two kinds of store: the same
    snapshots, bytes and rows, verify clean; large files streamed store to store."""
    monkeypatch.setattr(SMALL, 64 * 1024)  # stream anything above 64 KiB
    src_store, dst_store = pair
    src = events(src_store)
    await write_events(src, 0, 3)
    blobs = aiolode.Dataset("blobs", src_store)
    big = bytes(range(256)) * 1200  # 300 KiB: streamed
    await blobs.write(big, {"name": "big"})
    await blobs.write(b"small", {"name": "small"})

    report = await aiolode.copy_dataset(src, dst_store)
    assert (report.records, report.snapshots, report.first_seq, report.last_seq) == (3, 3, 1, 3)
    assert report.head == (await src.latest()).id
    await assert_same_dataset(src, aiolode.Dataset("events", dst_store))
    report = await aiolode.copy_dataset(blobs, dst_store)
    assert report.records == 2
    assert report.bytes > len(big)
    await assert_same_dataset(blobs, aiolode.Dataset("blobs", dst_store))

    # Nightly again: only the new snapshots travel.
    await write_events(src, 3, 2)
    counted = CountingStore(dst_store, record=True)
    report = await aiolode.copy_dataset(src, counted)
    assert (report.records, report.first_seq, report.last_seq) == (2, 4, 5)
    log = "datasets/events/_log/"
    puts = _puts(counted)
    assert [k for k in puts if k.startswith(log)] == [
        f"{log}0000000000000004.json",
        f"{log}0000000000000005.json",
        f"{log}_latest.json",
    ]
    # Per snapshot: its data files and partition manifests, nothing older.
    assert len(puts) == 3 + sum(2 * len(s.files) for s in await _snapshots(src, 4))
    await assert_same_dataset(src, aiolode.Dataset("events", dst_store))

    # Restore: copy back, under another name, next to the original.
    restored = await aiolode.copy_dataset(
        aiolode.Dataset("events", dst_store), src_store, dst_id="events-restored"
    )
    assert restored.records == 5
    await assert_same_dataset(src, aiolode.Dataset("events-restored", src_store))


async def _snapshots(ds: aiolode.Dataset, from_seq: int) -> list[aiolode.Snapshot]:
    return [s async for s in ds.snapshots() if int(s.id.split("-")[0]) >= from_seq]


# ----------------------------------------------------------------- the basics
async def test_ids_metadata_times_and_bytes_preserved(memory: aiolode.MemoryStore) -> None:
    src = aiolode.Dataset("raw", memory, checksum=aiolode.SHA256())
    for i in range(3):
        await src.write(f"blob {i}".encode() * (i + 1), {"i": i, "nested": {"k": [i]}})
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, dst_store)
        dst = aiolode.Dataset("raw", dst_store)
        await assert_same_dataset(src, dst)
        # Records are byte-identical: tokens, times, metadata, everything.
        for seq in (1, 2, 3):
            key = f"datasets/raw/_log/{seq:016d}.json"
            assert await dst_store.get(key) == await memory.get(key)
        key = "datasets/raw/_dataset.json"
        assert await dst_store.get(key) == await memory.get(key)
        # The copy is a dataset like any other: it takes new writes.
        snap = await dst.write(b"after the copy")
        assert snap.parent_id == (await src.latest()).id


async def test_nothing_new_costs_no_put(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 3)
    async with aiolode.MemoryStore() as inner:
        await aiolode.copy_dataset(src, inner)
        counted = CountingStore(inner)
        report = await aiolode.copy_dataset(src, counted)
        assert report.up_to_date
        assert report.records == report.objects == 0
        assert report.first_seq is None
        assert report.head == (await src.latest()).id
        counts = counted.snapshot()
        assert counts["put"] == counts["put_stream"] == 0
        assert counts.total_calls <= 4 + 8  # the destination's head search only


async def test_incremental_reads_only_new_data_at_the_source(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 4)
    async with aiolode.MemoryStore() as dst:
        await aiolode.copy_dataset(src, dst)
        new = await write_events(src, 4, 1)
        counted_src = CountingStore(memory, record=True)
        again = aiolode.Dataset("events", counted_src)
        await aiolode.copy_dataset(again, dst)
        new_keys = {f.key for f in new[0].files}
        data_reads = {k for op, k in counted_src.calls if op == "get" and "/data/" in k}
        assert {k for k in data_reads if not k.endswith(".json")} == new_keys


async def test_group_commits_are_copied_whole(memory: aiolode.MemoryStore) -> None:
    src = aiolode.Dataset("g", memory, codec=aiolode.JSONL())
    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(src.write, [{"i": i}])
    ids = [s.id async for s in src.snapshots()]
    assert len(ids) == 12
    assert any(not i.endswith("-0000") for i in ids), "expected a record of several snapshots"
    async with aiolode.MemoryStore() as dst:
        report = await aiolode.copy_dataset(src, dst)
        assert report.snapshots == 12
        assert report.records < 12
        await assert_same_dataset(src, aiolode.Dataset("g", dst))


# --------------------------------------------------------------------- ranges
async def test_range_then_the_rest(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    snaps = await write_events(src, 0, 6)
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_dataset(src, dst_store, snapshots=(snaps[1], snaps[3].id))
        assert (report.first_seq, report.last_seq, report.records) == (2, 4, 3)
        dst = aiolode.Dataset("events", dst_store)
        assert [s.id async for s in dst.snapshots()] == [s.id for s in snaps[1:4]]
        assert (await dst.latest()).id == snaps[3].id
        assert (await aiolode.verify_dataset(dst_store, "events")).ok
        with pytest.raises(aiolode.SnapshotExpiredError):
            await dst.snapshot(snaps[0].id)
        # A range starting after the destination's head would leave a gap.
        with pytest.raises(aiolode.InvalidInputError, match="gap"):
            await aiolode.copy_dataset(src, dst_store, snapshots=(snaps[5], None))
        # An open start goes on from the destination's head.
        report = await aiolode.copy_dataset(src, dst_store, snapshots=(None, snaps[4]))
        assert (report.first_seq, report.last_seq) == (5, 5)
        report = await aiolode.copy_dataset(src, dst_store)
        assert (report.first_seq, report.last_seq) == (6, 6)
        assert [s.id async for s in dst.snapshots()] == [s.id for s in snaps[1:]]
        assert (await aiolode.verify_dataset(dst_store, "events")).ok


async def test_range_arguments_are_checked(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    snaps = await write_events(src, 0, 3)
    async with aiolode.MemoryStore() as dst:
        with pytest.raises(aiolode.SnapshotNotFoundError):
            await aiolode.copy_dataset(src, dst, snapshots=("0000000000000009-0000", None))
        with pytest.raises(aiolode.SnapshotNotFoundError):
            await aiolode.copy_dataset(src, dst, snapshots=(None, "0000000000000002-0003"))
        with pytest.raises(aiolode.InvalidInputError, match="after the last"):
            await aiolode.copy_dataset(src, dst, snapshots=(snaps[2], snaps[0]))
        with pytest.raises(aiolode.InvalidInputError, match="tuple"):
            await aiolode.copy_dataset(src, dst, snapshots=snaps[0].id)  # type: ignore[arg-type]
        assert [k async for k in _keys(dst)] == []


async def _keys(store: aiolode.Store) -> Any:
    async for o in store.list(""):
        yield o.key


# ------------------------------------------------------------------- renaming
async def test_rename_rewrites_documents_consistently(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 66)  # past the first checkpoint (every 64 records)
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_dataset(src, dst_store, dst_id="events-copy")
        assert report.records == 66
        dst = aiolode.Dataset("events-copy", dst_store)
        await assert_same_dataset(src, dst)
        keys = [k async for k in _keys(dst_store)]
        assert all(k.startswith("datasets/events-copy/") for k in keys)
        for k in keys:
            if k.endswith(".json") and "/_latest" not in k and "/_lwm" not in k:
                doc = json.loads(await dst_store.get(k))
                assert doc.get("dataset_id") == "events-copy", k
        cp = json.loads(
            await dst_store.get("datasets/events-copy/_log/_checkpoints/0000000000000064.json")
        )
        assert all(f["file"]["key"].startswith("datasets/events-copy/") for f in cp["files"])
        # The renamed copy reads through its checkpoint like the source does.
        counted = CountingStore(dst_store)
        files = await aiolode.Dataset("events-copy", counted).files()
        assert len(files) == sum(len(s.files) for s in [s async for s in src.snapshots()])
        assert counted.snapshot()["get"] < 40
        # ... and goes on incrementally under its new name.
        await write_events(src, 66, 2)
        report = await aiolode.copy_dataset(src, dst_store, dst_id="events-copy")
        assert report.records == 2
        await assert_same_dataset(src, dst)


async def test_copy_within_one_store_under_another_id(memory: aiolode.MemoryStore) -> None:
    src = aiolode.Dataset("a", memory, codec=aiolode.JSONL())
    await src.write([{"x": 1}])
    with pytest.raises(aiolode.InvalidInputError, match="onto itself"):
        await aiolode.copy_dataset(src, memory)
    await aiolode.copy_dataset(src, memory, dst_id="b")
    await assert_same_dataset(src, aiolode.Dataset("b", memory))
    assert (await aiolode.verify_dataset(memory, "a")).ok


async def test_flat_layout_found_by_name(memory: aiolode.MemoryStore) -> None:
    await aiolode.Dataset("f", memory, layout=aiolode.FlatLayout()).write(b"flat")
    src = aiolode.Dataset("f", memory)  # opened by name: located under the flat root
    async with aiolode.MemoryStore() as dst:
        await aiolode.copy_dataset(src, dst)
        assert await dst.exists("f/_dataset.json")
        assert await aiolode.Dataset("f", dst).read((await src.latest()).id) == b"flat"


# ---------------------------------------------------------------- divergence
async def test_diverged_destination_is_refused(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 2)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, dst_store)
        dst = events(dst_store)
        await write_events(dst, 100, 1)  # written at the destination directly
        await write_events(src, 2, 1)
        before = await history(dst)
        with pytest.raises(aiolode.SnapshotConflictError) as info:
            await aiolode.copy_dataset(src, dst_store)
        assert info.value.conflicting == ["0000000000000003-0000"]
        assert info.value.dataset_id == "events"
        assert await history(dst) == before


async def test_destination_ahead_of_the_source_is_refused(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 2)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, dst_store)
        await write_events(events(dst_store), 7, 1)
        with pytest.raises(aiolode.SnapshotConflictError, match="past the source's head"):
            await aiolode.copy_dataset(src, dst_store)


async def test_another_incarnation_is_refused(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 1)
    async with aiolode.MemoryStore() as dst_store:
        # Same name, created independently, no commit yet: another descriptor.
        doc = json.loads(await memory.get("datasets/events/_dataset.json"))
        doc["incarnation"] = "f" * 32
        await dst_store.put("datasets/events/_dataset.json", seal_document(doc))
        with pytest.raises(aiolode.SnapshotConflictError, match="incarnation"):
            await aiolode.copy_dataset(src, dst_store)
        assert not await dst_store.exists("datasets/events/_log/0000000000000001.json")


async def test_records_of_a_concurrent_copy_are_accepted(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 20)
    async with aiolode.MemoryStore() as dst_store:
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(aiolode.copy_dataset, src, dst_store)
        await assert_same_dataset(src, aiolode.Dataset("events", dst_store))


async def test_lost_acknowledgements_are_recognised(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 3)
    async with aiolode.MemoryStore() as inner:
        dst = FaultInjectingStore(
            inner,
            [
                Rule(op="put", key="*/_log/0*.json", nth=2, action=LoseAck()),
                Rule(op="put", key="*/data/*.jsonl", nth=1, action=LoseAck()),
            ],
        )
        report = await aiolode.copy_dataset(src, dst)
        assert report.records == 3
        await assert_same_dataset(src, aiolode.Dataset("events", inner))


# ------------------------------------------------------------- never half-seen
async def test_destination_only_ever_shows_complete_snapshots(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the moment each record lands, a fresh reader of the destination reads
    every snapshot it sees, rows and all (windows of 2 records: the next
    window's objects are being copied meanwhile)."""
    monkeypatch.setattr("aiolode._copy._engine.WINDOW", 2)
    src = events(memory)
    await write_events(src, 0, 5)
    expected = await rows_by_snapshot(src)
    seen: list[int] = []
    async with aiolode.MemoryStore() as inner:

        async def look(call: Call) -> None:
            reader = aiolode.Dataset("events", inner)
            got = await rows_by_snapshot(reader)
            assert got == {k: expected[k] for k in got}
            seen.append(len(got))

        dst = FaultInjectingStore(
            inner, [Rule(op="put", key="*/_log/0*.json", action=Hook(look, when="after"))]
        )
        await aiolode.copy_dataset(src, dst)
    assert seen == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------------ damage
async def test_damaged_source_file_is_never_committed(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    snaps = await write_events(src, 0, 3)
    victim = snaps[1].files[0]
    good = await memory.get(victim.key)
    await memory.put(victim.key, bytes(b ^ 1 for b in good), mode="overwrite")
    async with aiolode.MemoryStore() as dst_store:
        with pytest.raises(aiolode.ChecksumMismatchError) as info:
            await aiolode.copy_dataset(src, dst_store)
        assert info.value.key == victim.key
        assert not await dst_store.exists(victim.key)
        dst = aiolode.Dataset("events", dst_store)
        with pytest.raises(aiolode.NoSnapshotsError):
            await dst.latest()
        # Repaired at the source, the copy goes through.
        await memory.put(victim.key, good, mode="overwrite")
        await aiolode.copy_dataset(src, dst_store)
        await assert_same_dataset(src, dst)


async def test_damaged_large_file_aborts_its_streamed_put(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SMALL, 1024)
    src = aiolode.Dataset("b", memory, checksum=aiolode.CRC32())
    snap = await src.write(b"x" * 10_000)
    key = snap.files[0].key
    await memory.put(key, b"y" * 10_000, mode="overwrite")
    async with aiolode.MemoryStore() as dst:
        with pytest.raises(aiolode.ChecksumMismatchError):
            await aiolode.copy_dataset(src, dst)
        assert not await dst.exists(key)
        await memory.put(key, b"x" * 9_999, mode="overwrite")
        with pytest.raises(aiolode.CorruptDataError):
            await aiolode.copy_dataset(src, dst)
        assert not await dst.exists(key)


async def test_missing_source_file_is_an_error(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    snaps = await write_events(src, 0, 2)
    await memory.delete(snaps[0].files[0].key)
    async with aiolode.MemoryStore() as dst:
        with pytest.raises(aiolode.ObjectNotFoundError) as info:
            await aiolode.copy_dataset(src, dst)
        assert info.value.snapshot_id == snaps[0].id
        assert info.value.dataset_id == "events"


@pytest.mark.parametrize("large", [False, True], ids=["small", "streamed"])
async def test_objects_already_there_are_checked(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    """Left by an interrupted run: kept when they are the source's bytes, copied
    again when they are not (same size, other bytes; or another size)."""
    if large:
        monkeypatch.setattr(SMALL, 16)
    for checksum in (aiolode.XXH3(), None):
        src = aiolode.Dataset(f"c{checksum is None}", memory, checksum=checksum)
        snaps = [await src.write(f"payload number {i}".encode()) for i in range(3)]
        keys = [s.files[0].key for s in snaps]
        async with aiolode.MemoryStore() as dst_store:
            await dst_store.put(keys[0], await memory.get(keys[0]))
            await dst_store.put(keys[1], b"PAYLOAD NUMBER 1")  # same size, other bytes
            await dst_store.put(keys[2], b"short")
            report = await aiolode.copy_dataset(src, dst_store)
            assert (report.objects, report.verified, report.repaired) == (0, 1, 2)
            await assert_same_dataset(src, aiolode.Dataset(src.id, dst_store))


# ------------------------------------------------------------------------ expiry
async def test_expired_and_collected_history(memory: aiolode.MemoryStore) -> None:
    """Records below the source's low-water mark are gone: the copy starts there;
    files of expired snapshots the source collected are skipped."""
    src = events(memory)
    snaps = await write_events(src, 0, 6)
    await src.expire(keep_last=3)  # snapshots 1-3 expire; records 1-3 are collected
    await src.expire(snapshots=[snaps[4]])  # one more, above the mark
    await src.gc(grace=timedelta(0))
    await write_events(src, 6, 1)  # moves the hint above the mark (see known bugs)
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_dataset(src, dst_store)
        assert report.first_seq == 4  # the source's low-water mark
        # Its partition manifests were collected, and with them the list of its files.
        assert report.skipped == len(snaps[4].partitions)
        dst = aiolode.Dataset("events", dst_store)
        assert await history(dst) == await history(src)
        assert await rows_by_snapshot(dst) == await rows_by_snapshot(src)
        with pytest.raises(aiolode.SnapshotExpiredError):
            await dst.snapshot(snaps[4].id)
        for store in (dst_store, memory):
            report = await aiolode.verify_dataset(store, "events")
            assert report.ok, report.problems
            assert report.orphans == ()


async def test_expired_but_not_collected_files_are_copied(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    snaps = await write_events(src, 0, 3)
    await src.expire(snapshots=[snaps[0]])
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_dataset(src, dst_store)
        assert report.skipped == 0
        assert report.records == 4  # the expiry is part of the history
        for f in snaps[0].files:
            assert await dst_store.get(f.key) == await memory.get(f.key)
        dst = aiolode.Dataset("events", dst_store)
        assert await history(dst) == await history(src)
        assert (await aiolode.verify_dataset(dst_store, "events")).ok


async def test_a_lagging_copy_jumps_over_collected_records(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 3)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, dst_store)
        await write_events(src, 3, 4)
        await src.expire(keep_last=1)
        await src.gc(grace=timedelta(0))  # records 1-6 collected at the source
        await write_events(src, 7, 1)  # moves the hint above the mark (see known bugs)
        report = await aiolode.copy_dataset(src, dst_store)
        assert report.first_seq == 7
        dst = aiolode.Dataset("events", dst_store)
        assert await history(dst) == await history(src)
        assert await rows_by_snapshot(dst) == await rows_by_snapshot(src)
        assert (await dst.latest()).id == (await src.latest()).id
        report = await aiolode.verify_dataset(dst_store, "events")
        assert report.ok, report.problems
        # The destination's history went on after the jump: it takes writes.
        await dst.write([{"day": "d9", "i": 0, "j": 0}])


# ---------------------------------------------------------------------- progress
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_progress_in_bytes_and_snapshots(memory: aiolode.MemoryStore, kind: str) -> None:
    src = events(memory)
    await write_events(src, 0, 20)
    seen: list[aiolode.CopyProgress] = []

    def sync_cb(p: aiolode.CopyProgress) -> None:
        seen.append(p)

    async def async_cb(p: aiolode.CopyProgress) -> None:
        await anyio.sleep(0)
        seen.append(p)

    async with aiolode.MemoryStore() as dst:
        report = await aiolode.copy_dataset(
            src, dst, progress=sync_cb if kind == "sync" else async_cb
        )
    assert seen
    assert all(p.records_total == 20 for p in seen)
    for a, b in itertools.pairwise(seen):
        assert a.bytes <= b.bytes
        assert a.records <= b.records
        assert a.snapshots <= b.snapshots
    last = seen[-1]
    assert (last.records, last.snapshots, last.objects, last.bytes) == (
        report.records,
        report.snapshots,
        report.objects,
        report.bytes,
    )


# ------------------------------------------------------------------- arguments
async def test_arguments_are_checked(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 1)
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_dataset("events", memory)  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_dataset(src, "memory://")  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidKeyError):
        await aiolode.copy_dataset(src, memory, dst_id="../x")
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_dataset(src, memory, dst_id="x", concurrency=0)
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_dataset(src, memory, dst_id="x", progress=3)  # type: ignore[arg-type]
    with pytest.raises(aiolode.DatasetNotFoundError):
        await aiolode.copy_dataset(aiolode.Dataset("nope", memory), memory, dst_id="x")
    # Found by the hostile sweep: each refusal called repr() on the argument.
    for kw in ({"src": Hostile()}, {"dst_store": Hostile()}, {"snapshots": Hostile()}):
        args: dict[str, Any] = {"src": src, "dst_store": memory, "dst_id": "x", **kw}
        with pytest.raises(aiolode.InvalidInputError, match=next(iter(kw))):
            await aiolode.copy_dataset(**args)
    with pytest.raises(aiolode.InvalidInputError, match="progress"):
        await aiolode.copy_dataset(src, memory, dst_id="x", progress=Hostile())  # type: ignore[arg-type]
    assert [k async for k in _keys(memory) if "/x/" in k or k.startswith("datasets/x")] == []


async def test_a_huge_concurrency_is_a_limit_not_a_task_count(
    memory: aiolode.MemoryStore,
) -> None:
    # Found by the hostile sweep: the copy started ``concurrency`` worker tasks
    # per window whatever the window held; concurrency=2**63 filled 23 GiB of
    # memory before the OOM killer stopped it. Workers now start with the jobs.
    src = events(memory)
    await write_events(src, 0, 3)
    tasks: list[int] = []

    def count(p: aiolode.CopyProgress) -> None:
        tasks.append(len(anyio.get_running_tasks()))

    async with aiolode.MemoryStore() as dst:
        report = await aiolode.copy_dataset(src, dst, progress=count, concurrency=100_000)
        assert report.records == 3
        await assert_same_dataset(src, events(dst))
    assert tasks
    assert max(tasks) < 50


async def test_dropped_source_is_not_found(memory: aiolode.MemoryStore) -> None:
    src = events(memory)
    await write_events(src, 0, 1)
    await src.drop()
    async with aiolode.MemoryStore() as dst:
        with pytest.raises(aiolode.DatasetNotFoundError):
            await aiolode.copy_dataset(src, dst)


async def test_transient_failures_are_retried(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transient errors at either end — record and file reads, object and record
    puts, a streamed put halfway — are retried; a streamed object's bytes are
    counted once."""
    monkeypatch.setattr(SMALL, 1024)
    src = aiolode.Dataset("b", memory)
    for i in range(3):
        await src.write(bytes([i]) * (3000 if i == 1 else 100))
    flaky_src = FaultInjectingStore(
        memory,
        [
            Rule(op="get", key="*/_log/0*.json", nth=2, action=Fail()),
            Rule(op="get", key="*/data/*", nth=1, action=Fail()),
            Rule(op="iter_bytes", nth=1, action=LoseAck()),  # fails after the last chunk
        ],
    )
    async with aiolode.MemoryStore() as inner:
        dst = FaultInjectingStore(
            inner,
            [
                Rule(op="put", key="*/data/*", nth=1, action=Fail()),
                Rule(op="put", key="*/_log/0*.json", nth=(1, 3), action=Fail()),
            ],
        )
        seen: list[int] = []
        report = await aiolode.copy_dataset(
            aiolode.Dataset("b", flaky_src), dst, progress=lambda p: seen.append(p.bytes)
        )
        assert report.records == 3
        assert len(flaky_src.faults) == 3
        assert len(dst.faults) == 3
        await assert_same_dataset(src, aiolode.Dataset("b", inner))
        written = 0
        async for o in inner.list(""):
            if not o.key.endswith("_latest.json"):
                written += o.size
        assert report.bytes == seen[-1] == written


@pytest.mark.parametrize("dst_id", ["events", "events-copy"])
async def test_idempotency_keys_hold_at_the_destination(
    memory: aiolode.MemoryStore, dst_id: str
) -> None:
    """A write retried with its idempotency key against a copy (a restore) finds
    the copied snapshot instead of committing the data again."""
    src = events(memory)
    first = await src.write([{"day": "d0", "i": 0, "j": 0}], idempotency_key="order-1")
    await write_events(src, 1, 2)
    again = await src.write([{"day": "d1", "i": 9, "j": 9}], idempotency_key="order-2")
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, dst_store, dst_id=dst_id)
        dst = aiolode.Dataset(dst_id, dst_store)
        report = await aiolode.verify_dataset(dst_store, dst_id)
        assert report.ok, report.problems
        assert report.orphans == ()
        head = (await dst.latest()).id
        retried = await dst.write([{"day": "d0", "i": 0, "j": 0}], idempotency_key="order-1")
        assert retried.id == first.id
        retried = await dst.write([{"day": "d1", "i": 9, "j": 9}], idempotency_key="order-2")
        assert retried.id == again.id
        assert (await dst.latest()).id == head  # nothing committed twice
        fresh = await dst.write([{"day": "d1", "i": 10, "j": 0}], idempotency_key="order-3")
        assert fresh.parent_id == head


async def test_source_dropped_while_copying(memory: aiolode.MemoryStore) -> None:
    """A drop deletes the files its history names at once: a copy meeting one
    gone says the dataset was dropped, and commits nothing past its files."""
    src = events(memory)
    await write_events(src, 0, 3)

    async def drop(_: Call) -> None:
        await events(memory).drop(grace=timedelta(0))

    rule = Rule(op="get", key="datasets/events/data/*", nth=1, action=Hook(drop))
    faulty = FaultInjectingStore(memory, [rule])
    async with aiolode.MemoryStore() as dst_store:
        with pytest.raises(aiolode.DatasetNotFoundError) as info:
            await aiolode.copy_dataset(events(faulty), dst_store, concurrency=1)
        assert info.value.dataset_id == "events"
        # A partition manifest gone, here; a data file in other interleavings.
        missing = (aiolode.ObjectNotFoundError, aiolode.ManifestFormatError)
        assert isinstance(info.value.__cause__, missing)
        with pytest.raises((aiolode.DatasetNotFoundError, aiolode.NoSnapshotsError)):
            await events(dst_store).latest()


async def test_new_life_after_a_drop(memory: aiolode.MemoryStore) -> None:
    """A name dropped and written again: its copy holds the new life only (the
    old one's records are below the mark), and a backup of the old life refuses
    it (another incarnation)."""
    src = events(memory)
    await write_events(src, 0, 2)
    async with aiolode.MemoryStore() as old_backup, aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, old_backup)
        await src.drop(grace=timedelta(0))
        await write_events(src, 10, 2)
        report = await aiolode.copy_dataset(src, dst_store)
        assert report.snapshots == 2
        await assert_same_dataset(src, events(dst_store))
        with pytest.raises(aiolode.SnapshotConflictError):
            await aiolode.copy_dataset(src, old_backup)


@pytest.mark.parametrize("dst_id", [None, "renamed"])
async def test_compactions_are_copied(memory: aiolode.MemoryStore, dst_id: str | None) -> None:
    src = aiolode.Dataset("c", memory, codec=aiolode.JSONL())
    snaps = [await src.write([{"i": i}]) for i in range(6)]
    await src.compact(target_file_size=1 << 30, min_files=2)
    await src.write([{"i": 6}])
    await src.expire(snapshots=[snaps[0].id])  # the compacted file stops serving
    await src.compact(target_file_size=1 << 30, min_files=2)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_dataset(src, dst_store, dst_id=dst_id)
        dst = aiolode.Dataset(dst_id or "c", dst_store)
        got = [f.file for f in await dst.files()]
        want = [f.file for f in await src.files()]
        assert len(got) == len(want) == 1
        assert got[0].sources
        assert [s.snapshot_id for s in got[0].sources] == [s.snapshot_id for s in want[0].sources]
        root = f"datasets/{dst_id or 'c'}/"
        assert all(s.key is not None and s.key.startswith(root) for s in got[0].sources)
        rows = [json.loads(x)["i"] for x in (await dst_store.get(got[0].key)).splitlines()]
        assert rows == [1, 2, 3, 4, 5, 6]
        report = await aiolode.verify_dataset(dst_store, dst_id or "c")
        assert report.ok, report.problems
