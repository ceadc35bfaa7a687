"""copy_volume and the volume lifecycle: maintenance roots (expire, gc fence) are
copied as history, expired roots as far as the source still holds them, a copy
that fell behind a garbage collection jumps to the low-water mark, and a dropped
source — before or while being copied — is a VolumeNotFoundError."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

import aiolode
from aiolode._retry import Retry
from aiolode.testing import CountingStore, FaultInjectingStore, Hook, Rule
from aiolode.volume._log import RootLog, volume_log

from .test_volume import LENGTH, _assert_same, _commit_blocks, _keys, _volume

if TYPE_CHECKING:
    from aiolode.testing import Call

CK = aiolode.CRC32C


def _vol(store: aiolode.Store, volume_id: str = "disk") -> aiolode.Volume:
    return _volume(store, volume_id, CK())


def _log(store: aiolode.Store, volume_id: str) -> RootLog:
    return volume_log(store, volume_id, LENGTH, "crc32c", Retry())


async def _lwm(store: aiolode.Store, volume_id: str) -> int:
    return await _log(store, volume_id).read_lwm()


async def _root_fields(store: aiolode.Store, volume_id: str) -> dict[int, tuple[Any, ...]]:
    """The retained roots, by sequence, as the fields a copy must keep."""
    log = _log(store, volume_id)
    head = await log.refresh()
    out: dict[int, tuple[Any, ...]] = {}
    if head is None:
        return out
    for seq in range(await log.read_lwm(), head.seq + 1):
        r = await log.fetch(seq)
        assert r is not None, seq
        out[seq] = (
            r.operation,
            r.snapshot_id,
            r.tip,
            r.gc_fence,
            r.expired_below,
            r.dropped,
            r.commit_token,
            r.created_at,
            r.block_count,
        )
    return out


@pytest.mark.parametrize("rename", [False, True], ids=["same-id", "renamed"])
async def test_maintenance_roots_are_copied_as_history(
    memory: aiolode.MemoryStore, rename: bool
) -> None:
    src = _vol(memory)
    await _commit_blocks(src, 0, 5)
    await src.expire(keep_last=2)  # root 6: expire below 4
    await _commit_blocks(src, 10, 1)  # root 7
    target = "disk-2" if rename else "disk"
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_volume(src, dst_store, dst_id=target)
        assert (report.records, report.snapshots) == (7, 6)
        assert report.head == (await src.latest()).id
        dst = _vol(dst_store, target)
        await _assert_same(src, dst)  # snapshots 4, 5 and 7: 1-3 are expired there too
        assert await _root_fields(dst_store, target) == await _root_fields(memory, "disk")
        with pytest.raises(aiolode.SnapshotExpiredError):
            await dst.snapshot("00000000000000000002")

        # gc at the source: a fence root (8), expired roots 1-3 and what only they
        # used collected. The copy takes the fence as one record and no object.
        await src.gc(grace=timedelta(0))
        counted = CountingStore(dst_store)
        report = await aiolode.copy_volume(src, counted, dst_id=target)
        assert (report.first_seq, report.last_seq) == (8, 8)
        assert (report.records, report.snapshots, report.objects) == (1, 0, 0)
        assert report.head == (await src.latest()).id
        assert counted.snapshot()["put"] == 2  # the root and the hint
        fields = await _root_fields(dst_store, target)
        assert fields[8][0] == "fence"
        assert fields[8][3] is not None  # its gc_fence
        await _assert_same(src, dst)

        # A backup that runs its own gc commits a root of its own: it diverged,
        # and the next copy into it is refused (docs/copy.md: do not write to a
        # backup, maintenance included). As a restore it is a volume like any.
        await dst.gc(grace=timedelta(0))
        assert await _lwm(dst_store, target) == await _lwm(memory, "disk") == 4
        await _assert_same(src, dst)
        await _commit_blocks(src, 20, 1)
        with pytest.raises(aiolode.SnapshotConflictError) as info:
            await aiolode.copy_volume(src, dst_store, dst_id=target)
        assert info.value.conflicting == ["00000000000000000007"]  # the fence's tip
        await _commit_blocks(dst, 40, 1)


async def test_expired_roots_are_copied_until_collected(memory: aiolode.MemoryStore) -> None:
    """Roots the source expired but has not collected are copied (the copy
    starts at the low-water mark); their blocks are in the newest snapshot."""
    src = _vol(memory)
    await _commit_blocks(src, 0, 4)
    await src.expire(keep_last=1)
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_volume(src, dst_store)
        assert (report.first_seq, report.records, report.snapshots) == (1, 5, 4)
        dst = _vol(dst_store)
        await _assert_same(src, dst)
        assert [s.id async for s in dst.snapshots()] == ["00000000000000000004"]
        # Its own gc (as a restore: a backup is not maintained) collects what
        # the source's collects.
        dst_gc = await dst.gc(grace=timedelta(0))
        src_gc = await src.gc(grace=timedelta(0))
        assert dst_gc.deleted == src_gc.deleted
        assert any("/index/" in k for k in dst_gc.deleted)
        await _assert_same(src, dst)


async def test_copy_of_a_collected_source_starts_at_its_low_water_mark(
    memory: aiolode.MemoryStore,
) -> None:
    src = _vol(memory)
    await _commit_blocks(src, 0, 4)
    await src.expire(keep_last=1)
    await src.gc(grace=timedelta(0))
    assert await _lwm(memory, "disk") == 4
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_volume(src, dst_store)
        assert (report.first_seq, report.last_seq) == (4, 6)
        assert await _lwm(dst_store, "disk") == 4
        dst = _vol(dst_store)
        await _assert_same(src, dst)
        # A cold open of the copy finds its head from the mark.
        assert (await _vol(dst_store).latest()).id == (await src.latest()).id


async def test_copy_that_fell_behind_gc_jumps(memory: aiolode.MemoryStore) -> None:
    """The source collected roots the destination never got: the next copy goes
    on from the source's low-water mark (those roots were all expired)."""
    src = _vol(memory)
    await _commit_blocks(src, 0, 2)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_volume(src, dst_store)
        await _commit_blocks(src, 10, 4)  # roots 3-6
        await src.expire(keep_last=1)  # root 7
        await src.gc(grace=timedelta(0))  # root 8; roots 1-5 collected
        report = await aiolode.copy_volume(src, dst_store)
        assert (report.first_seq, report.last_seq) == (6, 8)
        assert await _lwm(dst_store, "disk") == 6
        dst = _vol(dst_store)
        await _assert_same(src, dst)
        await _commit_blocks(dst, 50, 1)
        assert (await dst.latest()).id == "00000000000000000009"


async def test_dropped_source_is_refused(memory: aiolode.MemoryStore) -> None:
    src = _vol(memory)
    await _commit_blocks(src, 0, 2)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_volume(src, dst_store)
        before = [k async for k in _keys(dst_store)]
        await src.drop(grace=timedelta(0))
        with pytest.raises(aiolode.VolumeNotFoundError) as info:
            await aiolode.copy_volume(src, dst_store)
        assert info.value.volume_id == "disk"
        # The backup keeps its snapshots: a drop is never copied.
        assert [k async for k in _keys(dst_store)] == before
        assert (await _vol(dst_store).latest()).id == "00000000000000000002"


async def test_source_dropped_while_copying(memory: aiolode.MemoryStore) -> None:
    src = _vol(memory)
    await _commit_blocks(src, 0, 3)

    async def drop(_: Call) -> None:
        await _vol(memory).drop(grace=timedelta(0))

    faulty = FaultInjectingStore(memory, [Rule(op="get", key="*/blocks/*", action=Hook(drop))])
    async with aiolode.MemoryStore() as dst_store:
        with pytest.raises(aiolode.VolumeNotFoundError) as info:
            await aiolode.copy_volume(_vol(faulty), dst_store)
        assert info.value.volume_id == "disk"
        assert isinstance(info.value.__cause__, aiolode.ObjectNotFoundError)
        with pytest.raises(aiolode.NoSnapshotsError):
            await _vol(dst_store).latest()


async def test_gc_while_copying_expired_roots(memory: aiolode.MemoryStore) -> None:
    """A garbage collection takes expired roots the copy is reading: the copy
    stops with SnapshotExpiredError, having committed nothing it could not
    finish, and the next run goes on from the new low-water mark."""
    src = _vol(memory)
    await _commit_blocks(src, 0, 6)
    await src.expire(keep_last=1)  # roots 1-5 expired, not collected

    async def collect(_: Call) -> None:
        await _vol(memory).gc(grace=timedelta(0))

    # Before the first block is read: the roots of the window were read, and
    # (one object at a time) the segments of roots 2-5 are still to be read.
    faulty = FaultInjectingStore(
        memory, [Rule(op="get", key="*/blocks/*", nth=1, action=Hook(collect))]
    )
    async with aiolode.MemoryStore() as dst_store:
        with pytest.raises(aiolode.SnapshotExpiredError) as info:
            await aiolode.copy_volume(_vol(faulty), dst_store, concurrency=1)
        assert info.value.volume_id == "disk"
        assert isinstance(info.value.__cause__, aiolode.ObjectNotFoundError)
        with pytest.raises(aiolode.NoSnapshotsError):
            await _vol(dst_store).latest()
        report = await aiolode.copy_volume(src, dst_store)
        assert report.first_seq == await _lwm(memory, "disk") == 6
        await _assert_same(src, _vol(dst_store))


async def test_lifecycle_between_stores(pair: tuple[aiolode.Store, aiolode.Store]) -> None:
    """Expiry, gc fences and a copy that fell behind, on every pair of stores
    (whatever their stamps' resolution decides gc may collect)."""
    src_store, dst_store = pair
    src = _vol(src_store)
    await _commit_blocks(src, 0, 3)
    await aiolode.copy_volume(src, dst_store)
    await _commit_blocks(src, 10, 3)
    await src.expire(keep_last=2)
    await src.gc(grace=timedelta(0))
    await _commit_blocks(src, 20, 1)
    report = await aiolode.copy_volume(src, dst_store)
    assert report.first_seq == max(4, await _lwm(src_store, "disk"))
    dst = _vol(dst_store)
    await _assert_same(src, dst)
    assert await _root_fields(dst_store, "disk") == await _root_fields(src_store, "disk")
    back = await aiolode.copy_volume(dst, src_store, dst_id="disk-restored")
    assert back.head == (await src.latest()).id
    await _assert_same(src, _vol(src_store, "disk-restored"))
