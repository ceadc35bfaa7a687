"""Volume lifecycle: expiry of old views, garbage collection, drop — safe while
writers stage and commit."""

from __future__ import annotations

from contextlib import aclosing, suppress
from datetime import UTC, datetime, timedelta

import anyio
import pytest

import aiolode
from aiolode import Volume
from aiolode.testing import FaultInjectingStore, Hook, Rule

NOW = timedelta(0)
N = 4096


def payload(offset: int, length: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(offset, offset + length))


async def _commit(vol: Volume, offset: int, length: int) -> aiolode.VolumeSnapshot:
    ref = await vol.stage_write_at(offset, payload(offset, length))
    return await vol.commit([ref], {"at": offset})


async def _ids(vol: Volume) -> list[str]:
    async with aclosing(vol.snapshots()) as it:
        return [s.id async for s in it]


async def _keys(store: aiolode.Store, prefix: str) -> set[str]:
    return {o.key async for o in store.list(prefix)}


async def _sound(vol: Volume, *, orphans: int = 0) -> aiolode.VerifyReport:
    report = await vol.verify()
    assert report.ok, report.problems
    assert len(report.orphans) == orphans, report.orphans
    return report


async def _all_readable(vol: Volume, snap: aiolode.VolumeSnapshot) -> None:
    for off, ln in snap.committed_ranges():
        assert await vol.read_at(snap, off, ln) == payload(off, ln)


async def test_expire_forgets_old_views_never_bytes(store: aiolode.Store) -> None:
    vol = Volume("v", store, N)
    snaps = [await _commit(vol, i * 100, 100) for i in range(6)]
    dry = await vol.expire(keep_last=2, dry_run=True)
    assert dry.dry_run
    assert dry.expired == tuple(s.id for s in snaps[:4])
    assert (dry.files, dry.bytes, dry.record) == ((), 0, None)  # a dry run commits nothing
    assert await _ids(vol) == [s.id for s in snaps]  # nothing changed
    real = await vol.expire(keep_last=2)
    assert real.expired == dry.expired
    assert real.record == 7  # expiry is a commit (a root that is not a snapshot)
    for reader in (vol, Volume("v", store, N)):  # this object, and a cold one
        assert await _ids(reader) == [s.id for s in snaps[4:]]
        with pytest.raises(aiolode.SnapshotExpiredError) as ei:
            await reader.snapshot(snaps[1].id)
        assert ei.value.snapshot_id == snaps[1].id
        with pytest.raises(aiolode.SnapshotExpiredError):
            await reader.read_at(snaps[0].id, 0, 10)
        latest = await reader.latest()
        assert latest.id == snaps[-1].id
        await _all_readable(reader, latest)  # every byte of every expired view is still here
    # Idempotent; older_than keeps the latest whatever its age.
    assert (await vol.expire(keep_last=2)).expired == ()
    assert (await vol.expire(older_than=NOW)).expired == (snaps[4].id,)
    assert await _ids(vol) == [snaps[5].id]
    with pytest.raises(aiolode.SnapshotExpiredError):
        await vol.snapshot_as_of(snaps[2].created_at)
    await _sound(vol)
    for bad in ({}, {"keep_last": 0}, {"keep_last": True}, {"older_than": 5}):
        with pytest.raises(aiolode.InvalidInputError):
            await vol.expire(**bad)  # type: ignore[arg-type]


async def test_gc_collects_staged_leftovers_and_merged_index(
    store: aiolode.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiolode._history import _collect

    # Roots below the low-water mark go only once older than the writers' window.
    monkeypatch.setattr(_collect, "WRITER_MAX_WARM_AGE", 0)
    vol = Volume("g", store, N)
    for i in range(12):  # enough commits for hot segments to merge away
        await _commit(vol, i * 10, 10)
    # A killed download's leftovers: staged, never committed.
    lost = [await vol.stage_write_at(2000 + i * 10, payload(2000 + i * 10, 10)) for i in range(3)]
    await vol.expire(keep_last=1)
    before = await _keys(store, "volumes/g/")
    await anyio.sleep(store.stamp_resolution.total_seconds())
    dry = await vol.gc(grace=NOW, dry_run=True)
    doomed = set(dry.deleted)
    assert {b.key for b in lost} <= doomed
    assert any("/index/" in k for k in doomed)  # segments only expired views used
    assert any("/_log/0" in k for k in doomed)  # roots below the low-water mark
    assert await _keys(store, "volumes/g/") == before  # a dry run changes nothing
    real = await vol.gc(grace=NOW)
    assert set(real.deleted) == doomed
    assert real.bytes == dry.bytes
    fresh = Volume("g", store, N)
    latest = await fresh.latest()
    assert latest.block_count == 12
    await _all_readable(fresh, latest)
    await _sound(fresh)
    assert (await vol.gc(grace=NOW)).deleted == ()


async def test_gc_respects_grace(memory: aiolode.MemoryStore) -> None:
    vol = Volume("g", memory, N)
    await _commit(vol, 0, 10)
    await vol.stage_write_at(100, b"young")
    report = await vol.gc(grace=timedelta(hours=1))
    assert report.deleted == ()
    assert report.kept_young == 1
    await _sound(vol, orphans=1)


async def test_maintenance_roots_are_not_snapshots(memory: aiolode.MemoryStore) -> None:
    vol = Volume("m", memory, N)
    a = await _commit(vol, 0, 10)
    await vol.gc(grace=timedelta(hours=1))  # commits a fence root at sequence 2
    assert await memory.exists("volumes/m/_log/00000000000000000002.json")
    for reader in (vol, Volume("m", memory, N)):
        assert (await reader.latest()).id == a.id
        assert await _ids(reader) == [a.id]
        with pytest.raises(aiolode.SnapshotNotFoundError):
            await reader.snapshot("00000000000000000002")
        assert (await reader.snapshot_as_of(datetime.now(UTC))).id == a.id
    b = await _commit(vol, 10, 10)
    assert b.id == "00000000000000000003"
    assert b.parent_id == a.id  # the parent is the previous snapshot, not the fence
    got: list[str] = []
    async with aclosing(Volume("m", memory, N).watch(poll_interval=0.01)) as it:
        async for s in it:
            got.append(s.id)
            if s.id == b.id:
                break
    assert got == [a.id, b.id]
    await _sound(vol)


async def test_a_commit_of_blocks_staged_before_a_fence_is_refused(store: aiolode.Store) -> None:
    vol = Volume("s", store, N)
    await _commit(vol, 0, 10)
    early = await vol.stage_write_at(100, payload(100, 10))
    await anyio.sleep(store.stamp_resolution.total_seconds())
    report = await Volume("s", store, N).gc(grace=NOW)  # another process collects it
    assert early.key in report.deleted
    with pytest.raises(aiolode.StaleWriteError) as ei:
        await vol.commit([early])
    assert isinstance(ei.value, aiolode.ConflictError)
    assert ei.value.volume_id == "s"
    late = await vol.stage_write_at(100, payload(100, 10))  # staged again: fine
    snap = await vol.commit([late])
    await _all_readable(vol, snap)
    await _sound(vol)


async def test_gc_of_a_volume_never_committed(memory: aiolode.MemoryStore) -> None:
    """The first download was killed: only staged blocks. GC fences the empty log,
    so the leftovers can go, and the next commit starts the history."""
    vol = Volume("e", memory, N)
    await vol.stage_write_at(0, b"lost")
    report = await Volume("e", memory, N).gc(grace=NOW)
    assert len(report.deleted) == 1
    with pytest.raises(aiolode.NoSnapshotsError):
        await vol.latest()
    snap = await _commit(vol, 0, 10)
    assert snap.parent_id is None
    assert await _ids(Volume("e", memory, N)) == [snap.id]
    await _sound(vol)
    assert (await Volume("x", memory, N).gc(grace=NOW)).deleted == ()  # nothing at all
    assert not await _keys(memory, "volumes/x/")


async def test_commits_racing_gc_lose_nothing(store: aiolode.Store) -> None:
    """Writers stage and commit while another process expires and collects in a
    loop with no grace: every acknowledged commit stays readable, a refused one
    is a StaleWriteError (and is staged again), nothing else goes wrong."""
    acked: list[tuple[int, int]] = []
    refused = 0
    done = anyio.Event()

    async def writer(w: int) -> None:
        nonlocal refused
        vol = Volume("r", store, N)
        for i in range(6):
            off = (w * 6 + i) * 40
            while True:
                ref = await vol.stage_write_at(off, payload(off, 40))
                try:
                    await vol.commit([ref])
                except aiolode.StaleWriteError:
                    refused += 1
                    continue
                acked.append((off, 40))
                break

    async def collector() -> None:
        vol = Volume("r", store, N)
        while not done.is_set():
            with suppress(aiolode.NoSnapshotsError):
                await vol.expire(keep_last=2)
            await vol.gc(grace=NOW)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(collector)
        async with anyio.create_task_group() as writers:
            for w in range(3):
                writers.start_soon(writer, w)
        done.set()
    vol = Volume("r", store, N)
    latest = await vol.latest()
    assert sorted(acked) == latest.committed_ranges() or sorted(acked) == sorted(
        (o, 40) for o, ln in latest.committed_ranges() for o in range(o, o + ln, 40)
    )
    await _all_readable(vol, latest)
    await anyio.sleep(store.stamp_resolution.total_seconds())  # the refused blocks are old
    await vol.gc(grace=NOW)
    await _sound(vol)


async def test_drop(store: aiolode.Store) -> None:
    vol = Volume("d", store, N)
    other = Volume("d", store, N)
    await _commit(vol, 0, 10)
    await _commit(other, 10, 10)
    staged = await other.stage_write_at(20, payload(20, 10))
    report = await vol.drop(grace=NOW)
    assert not report.done
    # A dropped volume has no new life: besides the log records (which tell
    # writers of the drop), nothing remains, whatever the store's stamps.
    assert all("/_log/0" in k for k in report.remaining), report.remaining
    assert staged.key in report.deleted
    left = await _keys(store, "volumes/d/")
    assert left == {*report.remaining, "volumes/d/_log/_lwm.json"}
    for reader in (vol, Volume("d", store, N)):
        with pytest.raises(aiolode.VolumeNotFoundError):
            await reader.latest()
        with pytest.raises(aiolode.NoSnapshotsError):  # a subclass
            await reader.latest()
        with pytest.raises(aiolode.VolumeNotFoundError):
            await reader.expire(keep_last=1)
        with pytest.raises(aiolode.VolumeNotFoundError):
            await reader.gc(grace=NOW)
    with pytest.raises(aiolode.VolumeNotFoundError):
        await other.commit([staged])  # a writer of the dropped volume: refused
    with pytest.raises(aiolode.VolumeNotFoundError):
        await _commit(Volume("d", store, N), 40, 10)  # and a new one, until the log goes
    # Resumable. The refused writers left what they stored after the tombstone
    # (a block staged, a hint put alongside a commit attempt): the next run takes it.
    again = await vol.drop(grace=NOW)
    assert {k for k in again.remaining if "/_log/0" in k} == {
        k for k in report.remaining if "/_log/0" in k
    }
    assert all("/_log/0" in k for k in again.remaining), again.remaining


async def test_drop_finishes_once_old_enough(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiolode._history import _collect

    vol = Volume("d", memory, N)
    await _commit(vol, 0, 10)
    assert not (await vol.drop(grace=NOW)).done
    monkeypatch.setattr(_collect, "WRITER_MAX_WARM_AGE", 0)
    report = await vol.drop(grace=NOW)
    assert report.done
    assert not await _keys(memory, "volumes/d/")
    # The name is free again.
    fresh = Volume("d", memory, N)
    snap = await _commit(fresh, 0, 10)
    assert snap.id == "00000000000000000001"


async def test_interrupted_gc_leaves_a_valid_volume(memory: aiolode.MemoryStore) -> None:
    vol = Volume("i", memory, N)
    for i in range(10):
        await _commit(vol, i * 10, 10)
    for i in range(4):
        await vol.stage_write_at(1000 + i, b"x")
    await vol.expire(keep_last=1)
    calls = 0

    async def crash(_: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise aiolode.TransientStorageError("killed mid-sweep")

    faulty = FaultInjectingStore(memory, [Rule(op="delete", action=Hook(crash))])
    with pytest.raises(aiolode.StorageError):
        await Volume("i", faulty, N, retry=aiolode.Retry(attempts=1)).gc(grace=NOW)
    fresh = Volume("i", memory, N)
    await _all_readable(fresh, await fresh.latest())
    await fresh.gc(grace=NOW)  # re-run finishes
    await _sound(fresh)
