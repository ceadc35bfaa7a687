"""Lifecycle: checkpoints, expiry, garbage collection and drop, safe while writers run."""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import attrs
import pytest

import aiolode
from aiolode import Dataset
from aiolode.dataset._checkpoint import CHECKPOINT_INTERVAL, checkpoint_key, maybe_checkpoint
from aiolode.testing import CountingStore, FaultInjectingStore, Hook, Rule

NOW = timedelta(0)


async def _ids(ds: Dataset) -> list[str]:
    return [s.id async for s in ds.snapshots()]


async def _sound(ds: Dataset, *, orphans: int = 0) -> aiolode.VerifyReport:
    """verify() finds nothing wrong (and exactly ``orphans`` unreferenced keys)."""
    report = await aiolode.verify_dataset(ds.store, ds.id)
    assert report.ok, report.problems
    assert len(report.orphans) == orphans, report.orphans
    return report


async def test_expire_one_upload(store: aiolode.Store) -> None:
    ds = Dataset("up", store, checksum=aiolode.SHA256())
    snaps = [await ds.write(b"file-%d" % i, {"name": f"f{i}"}) for i in range(4)]
    report = await ds.expire(snapshots=[snaps[1].id])
    assert report.expired == (snaps[1].id,)
    assert report.files == tuple(f.key for f in snaps[1].files)
    assert report.bytes == snaps[1].files[0].size
    for reader in (ds, Dataset("up", store)):  # this object, and a cold one
        with pytest.raises(aiolode.SnapshotExpiredError) as ei:
            await reader.snapshot(snaps[1].id)
        assert ei.value.snapshot_id == snaps[1].id
        assert isinstance(ei.value, aiolode.SnapshotNotFoundError)
        with pytest.raises(aiolode.SnapshotExpiredError):
            await reader.read(snaps[1].id)
        with pytest.raises(aiolode.SnapshotExpiredError):
            await reader.files(as_of=snaps[1].id)
        assert await _ids(reader) == [snaps[0].id, snaps[2].id, snaps[3].id]
        assert [f.snapshot_id for f in await reader.files()] == [
            snaps[0].id,
            snaps[2].id,
            snaps[3].id,
        ]
        assert (await reader.latest()).id == snaps[3].id
        assert await reader.read(snaps[2].id) == b"file-2"
    # Idempotent; the latest snapshot is never expired.
    again = await ds.expire(snapshots=[snaps[1].id, snaps[3].id])
    assert again.expired == ()
    assert (await ds.latest()).id == snaps[3].id
    await _sound(ds)  # the expired snapshot's file is still referenced until gc
    with pytest.raises(aiolode.SnapshotExpiredError):
        await aiolode.verify_dataset(store, "up", snapshot_id=snaps[1].id)
    await anyio.sleep(store.stamp_resolution.total_seconds())
    await ds.gc(grace=NOW)
    assert (await _sound(ds)).snapshots_checked == 3  # and not required once collected


async def test_expire_keep_last_and_older_than(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("ttl", memory, codec=aiolode.JSONL())
    snaps = [await ds.write([{"i": i}]) for i in range(6)]
    dry = await ds.expire(keep_last=2, dry_run=True)
    assert dry.dry_run
    assert dry.expired == tuple(s.id for s in snaps[:4])
    assert await _ids(ds) == [s.id for s in snaps]  # nothing changed
    real = await ds.expire(keep_last=2)
    assert real.expired == dry.expired
    assert await _ids(ds) == [s.id for s in snaps[4:]]
    assert [r["i"] for f in await ds.files() for r in await ds.read(f.snapshot_id)] == [4, 5]
    # older_than: everything but the latest, which always stays.
    assert (await ds.expire(older_than=NOW)).expired == (snaps[4].id,)
    assert await _ids(ds) == [snaps[5].id]
    with pytest.raises(aiolode.SnapshotExpiredError):
        await ds.snapshot_as_of(snaps[1].created_at)
    with pytest.raises(aiolode.InvalidInputError):
        await ds.expire()
    with pytest.raises(aiolode.InvalidInputError):
        await ds.expire(keep_last=0)
    with pytest.raises(aiolode.InvalidInputError):
        await ds.expire(older_than=5)  # type: ignore[arg-type]
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await ds.expire(snapshots=["0000000000000099-0000"])
    await _sound(ds)


async def test_concurrent_appends_and_expiries_lose_nothing(memory: aiolode.MemoryStore) -> None:
    writer = Dataset("c", memory)
    await writer.write(b"first")
    keep: list[str] = []

    async def append(i: int) -> None:
        keep.append((await Dataset("c", memory).write(b"%d" % i)).id)

    async def expire_first() -> None:
        await Dataset("c", memory).expire(snapshots=[first.id])

    async def expire_old() -> None:
        await Dataset("c", memory).expire(older_than=timedelta(days=1))

    first = await writer.write(b"second")
    await writer.write(b"third")  # so that `first` is not the latest (never expired)
    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(append, i)
        tg.start_soon(expire_first)
        tg.start_soon(expire_old)
    ids = await _ids(Dataset("c", memory))
    assert set(keep) <= set(ids)  # every acknowledged, unexpired snapshot is there
    assert first.id not in ids
    assert len(ids) == 12
    await _sound(writer)


async def test_expiry_while_watching(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("w", memory)
    snaps = [await ds.write(b"%d" % i) for i in range(3)]
    await ds.expire(snapshots=[snaps[1].id])
    later = await ds.write(b"later")
    got: list[str] = []
    async with aclosing(Dataset("w", memory).watch(poll_interval=0.01)) as it:
        async for s in it:
            got.append(s.id)
            if s.id == later.id:
                break
    assert got == [snaps[0].id, snaps[2].id, later.id]


async def test_gc_collects_only_what_nothing_references(store: aiolode.Store) -> None:
    ds = Dataset("g", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    snaps = [await ds.write([{"p": str(i % 2), "i": i}]) for i in range(5)]
    # An aborted write's orphan, under a partition no retained snapshot names.
    await store.put("datasets/g/data/p=9/orphan.jsonl", b'{"i": 99}\n')
    await ds.expire(snapshots=[snaps[0].id, snaps[1].id])
    await anyio.sleep(store.stamp_resolution.total_seconds())  # S3 stamps whole seconds
    dry = await ds.gc(grace=NOW, dry_run=True)
    doomed = set(dry.deleted)
    assert "datasets/g/data/p=9/orphan.jsonl" in doomed
    for s in snaps[:2]:
        assert {f.key for f in s.files} <= doomed
        assert {p.key for p in s.manifest.partition_manifests} <= doomed
    for s in snaps[2:]:
        assert not ({f.key for f in s.files} & doomed)
    assert [o.key async for o in store.list("datasets/g/")]  # nothing deleted yet
    await _sound(ds, orphans=1)
    real = await ds.gc(grace=NOW)
    assert set(real.deleted) == doomed
    assert real.bytes == dry.bytes
    fresh = Dataset("g", store)
    assert await _ids(fresh) == [s.id for s in snaps[2:]]
    for s in snaps[2:]:
        assert await fresh.read(s.id) == await ds.read(s.id)
    for s in snaps[:2]:
        with pytest.raises(aiolode.SnapshotExpiredError):
            await fresh.snapshot(s.id)
    # A second run finds nothing more.
    assert (await ds.gc(grace=NOW)).deleted == ()
    await _sound(ds)


async def test_gc_respects_grace(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("g", memory)
    s = await ds.write(b"x")
    await memory.put("datasets/g/data/orphan.bin", b"junk")
    report = await ds.gc(grace=timedelta(hours=1))
    assert report.deleted == ()
    assert report.kept_young >= 1
    assert await ds.read(s.id) == b"x"


async def test_gc_after_expiry_keeps_cold_reads_cheap(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiolode._history import _collect

    monkeypatch.setattr(_collect, "WRITER_MAX_WARM_AGE", 0)  # records may go at once
    ds = Dataset("lwm", memory)
    for i in range(40):
        await ds.write(b"%d" % i)
    await ds.expire(keep_last=5)
    await ds.gc(grace=NOW)
    assert not await memory.exists("datasets/lwm/_log/0000000000000001.json")
    await memory.delete("datasets/lwm/_log/_latest.json")  # no hint: search from the mark
    counting = CountingStore(memory)
    cold = Dataset("lwm", counting)
    with counting.measure() as m:
        latest = await cold.latest()
    assert latest.id == "0000000000000040-0000"
    assert m.counts.total_calls <= 20, m.counts
    assert len(await _ids(cold)) == 5
    await _sound(cold)


async def test_a_write_slower_than_grace_is_refused(memory: aiolode.MemoryStore) -> None:
    ds0 = Dataset("s", memory)
    await ds0.write(b"base")
    started = anyio.Event()
    release = anyio.Event()

    async def pause(_: object) -> None:
        started.set()
        await release.wait()

    faulty = FaultInjectingStore(
        memory, [Rule(op="put", key="*/_log/0*", nth=1, action=Hook(pause))]
    )
    slow = Dataset("s", faulty)
    await slow.latest()
    errors: list[BaseException] = []

    async def slow_write() -> None:
        try:
            await slow.write(b"slow")
        except aiolode.AiolodeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_write)
        await started.wait()
        await Dataset("s", memory).gc(grace=NOW)  # its data file is collected
        release.set()
    assert len(errors) == 1
    assert isinstance(errors[0], aiolode.StaleWriteError)
    assert isinstance(errors[0], aiolode.ConflictError)
    snaps = [s async for s in Dataset("s", memory).snapshots()]
    for s in snaps:
        await Dataset("s", memory).read(s.id)  # no snapshot points at deleted data
    await _sound(ds0)


async def test_drop(store: aiolode.Store) -> None:
    ds = Dataset("d", store, codec=aiolode.JSONL())
    other = Dataset("d", store)
    first = await ds.write([{"a": 1}])
    second = await other.write([{"a": 2}])
    report = await ds.drop(grace=NOW)
    # What the history named goes at once, even in the tombstone's second.
    named = {f.key for f in (*first.files, *second.files)}
    assert named <= set(report.deleted)
    assert not named & set(report.remaining)
    # Data, descriptor, hint: gone. The log records stay until no writer can hold
    # a recent view of the log (they are what tells such a writer of the drop).
    assert not report.done
    # What remains besides the log: only objects the store stamped no earlier than
    # the tombstone (S3 stamps whole seconds), which may belong to a new life.
    tomb = await store.head(max(k for k in report.remaining if "/_log/0" in k))
    for k in report.remaining:
        if "/_log/0" not in k:
            stamp = (await store.head(k)).last_modified
            assert stamp is not None
            assert tomb.last_modified is not None
            assert stamp >= tomb.last_modified
    left = [o.key async for o in store.list("datasets/d/")]
    assert sorted(left) == sorted([*report.remaining, "datasets/d/_log/_lwm.json"])
    await _sound(ds)  # the tombstone and the records before it
    for reader in (ds, Dataset("d", store)):
        with pytest.raises(aiolode.DatasetNotFoundError):
            await reader.latest()
        with pytest.raises(aiolode.DatasetNotFoundError):
            await reader.files()
        assert not await reader.exists()
    with pytest.raises(aiolode.DatasetNotFoundError):
        await other.write([{"a": 3}])  # a writer of the dropped dataset: refused
    # The name can be used again at once: a new dataset, the old one invisible.
    again = Dataset("d", store, codec=aiolode.Parquet())
    s = await again.write([{"b": 1}])
    assert await again.read(s.id) == [{"b": 1}]
    assert await _ids(Dataset("d", store)) == [s.id]
    with pytest.raises(aiolode.DatasetNotFoundError):
        await other.write([{"a": 4}])  # still refused: another life now
    assert (await _sound(again)).snapshots_checked == 1


async def test_drop_finishes_once_old_enough(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiolode._history import _collect
    from aiolode.dataset import _dataset

    ds = Dataset("d", memory)
    await ds.write(b"x")
    idle = Dataset("d", memory)
    await idle.write(b"y")  # a writer of the life about to be dropped
    assert not (await ds.drop(grace=NOW)).done
    monkeypatch.setattr(_collect, "WRITER_MAX_WARM_AGE", 0)
    report = await ds.drop(grace=NOW)  # resumable: finishes what the first left
    assert report.done
    assert [o async for o in memory.list("datasets/d/")] == []
    # A writer idle for longer than the window re-reads the descriptor first.
    monkeypatch.setattr(_dataset, "WRITER_MAX_WARM_AGE", 0)
    with pytest.raises(aiolode.DatasetNotFoundError):
        await idle.write(b"resurrect?")
    assert [o async for o in memory.list("datasets/d/")] == []


async def test_writers_fold_checkpoints(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("cp", memory, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    for i in range(2 * CHECKPOINT_INTERVAL + 3):
        await ds.write([{"p": str(i % 3), "i": i}])
    log = ds._log
    for c in (CHECKPOINT_INTERVAL, 2 * CHECKPOINT_INTERVAL):
        assert await memory.exists(checkpoint_key(log, c))
    fresh = Dataset("cp", memory)
    files = await fresh.files()
    assert len(files) == 2 * CHECKPOINT_INTERVAL + 3
    assert [f.snapshot_id for f in files] == sorted(f.snapshot_id for f in files)
    rows = sorted(r["i"] for r in await _rows(fresh, files))
    assert rows == list(range(2 * CHECKPOINT_INTERVAL + 3))
    # Pruning and time travel across checkpoints.
    assert len(await fresh.files(where={"p": "1"})) == sum(
        1 for i in range(2 * CHECKPOINT_INTERVAL + 3) if i % 3 == 1
    )
    mid = files[CHECKPOINT_INTERVAL + 5].snapshot_id
    assert len(await fresh.files(as_of=mid)) == CHECKPOINT_INTERVAL + 6
    await _sound(ds)
    # A damaged checkpoint is ignored, never believed; verify reports it.
    await memory.put(checkpoint_key(log, 2 * CHECKPOINT_INTERVAL), b"{}", mode="overwrite")
    assert await Dataset("cp", memory).files() == files
    report = await aiolode.verify_dataset(memory, "cp")
    assert [p.key for p in report.problems] == [checkpoint_key(log, 2 * CHECKPOINT_INTERVAL)]


async def test_verify_checks_checkpoints_against_the_records(memory: aiolode.MemoryStore) -> None:
    """A checkpoint that decodes and names the right record, but folds other
    files than the records do, would make readers return wrong data: verify
    compares it with its own fold of the records."""
    from aiolode.manifest import decode, encode
    from aiolode.manifest._dataset import Checkpoint

    ds = Dataset("cp", memory)
    snaps = [await ds.write(b"%d" % i) for i in range(CHECKPOINT_INTERVAL + 2)]
    await ds.expire(snapshots=[snaps[3].id])
    await _sound(ds)
    key = checkpoint_key(ds._log, CHECKPOINT_INTERVAL)
    cp = decode(await memory.get(key), Checkpoint, key=key)
    forged = attrs.evolve(cp, files=cp.files[:-1])  # one file less
    await memory.put(key, encode(forged), mode="overwrite")
    report = await aiolode.verify_dataset(memory, "cp")
    assert [p.kind for p in report.problems] == [aiolode.ProblemKind.INVALID_RECORD]
    assert "disagrees with the records on 1 files" in report.problems[0].message


async def _rows(ds: Dataset, files: list[aiolode.DataFile]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for sid in dict.fromkeys(f.snapshot_id for f in files):
        out.extend(await ds.read(sid))
    return out


async def _fake_history(store: aiolode.MemoryStore, n: int) -> Dataset:
    """``n`` one-file commits written straight into the store, with the checkpoints
    a writer would have folded (fast setup for long histories)."""
    from aiolode.manifest import CommitRecord, FileRef, Manifest, encode

    ds = Dataset("h", store)
    log = ds._log
    start = datetime(2024, 1, 1, tzinfo=UTC)
    parent = None
    for seq in range(1, n + 1):
        sid = f"{seq:016d}-0000"
        when = start + timedelta(seconds=seq)
        m = Manifest(
            dataset_id="h",
            snapshot_id=sid,
            parent_id=parent,
            created_at=when,
            metadata={},
            files=[FileRef(key=f"datasets/h/data/{seq:08d}.bin", size=1)],
            row_count=None,
            codec=None,
            compressor=None,
            layout={"name": "default", "partition_keys": []},
            commit_token=f"t{seq}",
        )
        rec = CommitRecord(dataset_id="h", seq=seq, token=f"t{seq}", created_at=when, snapshots=[m])
        store._commit(f"datasets/h/_log/{seq:016d}.json", encode(rec), "create")
        parent = sid
    # The checkpoint a writer would have folded last (the one reads use).
    last = (n // CHECKPOINT_INTERVAL) * CHECKPOINT_INTERVAL
    if last:
        record = await log.fetch(last)
        assert await maybe_checkpoint(store, log, record)
    await store.put(
        "datasets/h/_log/_latest.json",
        b'{"schema_name":"aiolode.log.hint","format_version":1,"owner":"h","seq":%d}' % n,
        mode="overwrite",
    )
    return Dataset("h", store)


_HISTORIES: dict[int, aiolode.MemoryStore] = {}


@pytest.mark.parametrize("n", [100, 10_000])
async def test_files_cost_does_not_grow_with_history(n: int) -> None:
    if n not in _HISTORIES:  # built once, read under both backends
        _HISTORIES[n] = aiolode.MemoryStore()
        await _fake_history(_HISTORIES[n], n)
    counting = CountingStore(_HISTORIES[n])
    ds = Dataset("h", counting)
    with counting.measure() as m:
        files = await ds.files()
    assert len(files) == n
    # The head (3 gets), the newest checkpoint, the records after it (< 64).
    assert m.counts.total_calls <= 3 + 1 + CHECKPOINT_INTERVAL, m.counts
    assert m.counts["list"] == 0
    with counting.measure() as m:
        when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=n // 2)
        s = await Dataset("h", counting).snapshot_as_of(when)
    assert s.id == f"{n // 2:016d}-0000"


async def test_drop_never_deletes_a_new_life_begun_during_it(store: aiolode.Store) -> None:
    """A new dataset of the name may start as soon as the tombstone is visible; the
    drop's deletion pass, listing after that, must leave its objects alone."""
    await Dataset("d", store).write(b"old")
    born: list[aiolode.Snapshot] = []

    async def new_life(_: object) -> None:
        if not born:
            born.append(await Dataset("d", store).write(b"new"))

    dropper = FaultInjectingStore(store, [Rule(op="list", nth=1, action=Hook(new_life))])
    report = await Dataset("d", dropper).drop(grace=NOW)
    assert born
    fresh = Dataset("d", store)
    assert await fresh.read(born[0].id) == b"new"
    assert [s.id async for s in fresh.snapshots()] == [born[0].id]
    assert not set(report.deleted) & {f.key for f in born[0].files}
    await _sound(fresh, orphans=0)


async def test_drop_takes_expired_files_at_once(store: aiolode.Store) -> None:
    """Files of expired snapshots not yet collected are named by the history too:
    a drop takes them at once, whatever the store's stamp resolution."""
    ds = Dataset("d", store)
    first = await ds.write(b"one")
    await ds.write(b"two")
    await ds.expire(keep_last=1)
    report = await ds.drop(grace=NOW)
    assert {f.key for f in first.files} <= set(report.deleted)
    assert all("/_log/" in k for k in report.remaining), report.remaining
