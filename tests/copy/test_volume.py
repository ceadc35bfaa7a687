"""copy_volume: roots, index documents and blocks preserved between any two
stores; each block copied once; renaming re-digests the index; incremental."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import aiolode
from aiolode.testing import CountingStore

from .conftest import Hostile

if TYPE_CHECKING:
    from aiolode.volume import VolumeSnapshot

SMALL = "aiolode._copy._objects.SMALL_OBJECT"
FREEZE = "aiolode.volume._index.FREEZE_AT"
LENGTH = 64 * 1024


def _volume(
    store: aiolode.Store, volume_id: str = "disk", checksum: aiolode.Checksum | None = None
) -> aiolode.Volume:
    return aiolode.Volume(volume_id, store, LENGTH, checksum=checksum)


async def _commit_blocks(vol: aiolode.Volume, start: int, count: int, size: int = 512) -> None:
    """``count`` commits of one block each, at distinct offsets."""
    for i in range(start, start + count):
        data = bytes([i % 251]) * size
        ref = await vol.stage_write_at(i * size, data)
        await vol.commit([ref], metadata={"i": i})


async def _view(vol: aiolode.Volume) -> list[tuple[Any, ...]]:
    """Every snapshot as a reader sees it, with the bytes it holds."""
    out = []
    async for s in vol.snapshots():
        out.append((s.id, s.parent_id, s.created_at, dict(s.metadata), await _content(vol, s)))
    return out


async def _content(vol: aiolode.Volume, snap: VolumeSnapshot) -> list[tuple[int, bytes]]:
    """The committed ranges of a snapshot and their bytes."""
    out = []
    pos = 0
    for off, length in [*snap.missing_ranges(), (LENGTH, 0)]:
        if off > pos:
            out.append((pos, await vol.read_at(snap.id, pos, off - pos)))
        pos = off + length
    return out


async def _assert_same(src: aiolode.Volume, dst: aiolode.Volume) -> None:
    assert await _view(dst) == await _view(src)
    report = await aiolode.verify_volume(dst)
    assert report.ok, report.problems


async def test_copy_between_stores(
    pair: tuple[aiolode.Store, aiolode.Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SMALL, 1024)  # blocks above 1 KiB are streamed
    src_store, dst_store = pair
    src = _volume(src_store, checksum=aiolode.SHA256())
    await _commit_blocks(src, 0, 3)
    ref = await src.stage_write_at(32 * 1024, bytes(range(256)) * 40)  # 10 KiB: streamed
    await src.commit([ref])
    report = await aiolode.copy_volume(src, dst_store)
    assert (report.records, report.objects) == (4, 8)  # 4 roots: 4 blocks + 4 segments
    await _assert_same(src, _volume(dst_store, checksum=aiolode.SHA256()))

    await _commit_blocks(src, 4, 2)
    counted = CountingStore(dst_store, record=True)
    report = await aiolode.copy_volume(src, counted)
    assert (report.first_seq, report.last_seq, report.records) == (5, 6, 2)
    puts = [k for op, k in counted.calls if op in ("put", "put_stream")]
    assert len([k for k in puts if "/blocks/" in k]) == 2
    assert len([k for k in puts if "/_log/0" in k]) == 2
    await _assert_same(src, _volume(dst_store, checksum=aiolode.SHA256()))

    # Restore under another name, next to the original.
    back = _volume(dst_store, checksum=aiolode.SHA256())
    await aiolode.copy_volume(back, src_store, dst_id="disk-restored")
    await _assert_same(src, _volume(src_store, "disk-restored", aiolode.SHA256()))


@pytest.mark.parametrize("rename", [False, True], ids=["same-id", "renamed"])
async def test_frozen_segments_and_merges(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch, rename: bool
) -> None:
    """Hot segments merge and freeze into segment lists; every block is copied
    exactly once, with the root that committed it, incrementally too."""
    monkeypatch.setattr(FREEZE, 4)
    src = _volume(memory, checksum=aiolode.CRC32C())
    await _commit_blocks(src, 0, 9, size=64)
    target = "disk-2" if rename else "disk"
    async with aiolode.MemoryStore() as inner:
        dst_store = CountingStore(inner, record=True)
        await aiolode.copy_volume(src, dst_store, dst_id=target)
        for more in (1, 5, 7):  # across freezes, one copy at a time
            await _commit_blocks(src, 100 + more * 10, more, size=64)
            await aiolode.copy_volume(src, dst_store, dst_id=target)
        dst = _volume(inner, target, aiolode.CRC32C())
        await _assert_same(src, dst)
        blocks = [k for op, k in dst_store.calls if op == "put" and "/blocks/" in k]
        assert len(blocks) == len(set(blocks)) == 9 + 1 + 5 + 7
        lists = [k async for k in _keys(inner) if "/index/list-" in k]
        assert lists, "expected segment lists (frozen segments)"
        if rename:
            keys = [k async for k in _keys(inner)]
            assert all(k.startswith("volumes/disk-2/") for k in keys)


async def _keys(store: aiolode.Store) -> Any:
    async for o in store.list(""):
        yield o.key


async def test_ids_and_bytes_preserved(memory: aiolode.MemoryStore) -> None:
    src = _volume(memory)  # no block checksum: lengths are checked
    await _commit_blocks(src, 0, 3)
    async with aiolode.MemoryStore() as dst_store:
        report = await aiolode.copy_volume(src, dst_store)
        assert report.head == (await src.latest()).id
        async for o in memory.list("volumes/"):
            if not o.key.endswith("_latest"):
                assert await dst_store.get(o.key) == await memory.get(o.key), o.key
        dst = _volume(dst_store)
        await _assert_same(src, dst)
        # The copy takes new commits like any volume.
        await _commit_blocks(dst, 50, 1)


async def test_nothing_new_costs_no_put(memory: aiolode.MemoryStore) -> None:
    src = _volume(memory)
    await _commit_blocks(src, 0, 2)
    async with aiolode.MemoryStore() as inner:
        await aiolode.copy_volume(src, inner)
        counted = CountingStore(inner)
        report = await aiolode.copy_volume(src, counted)
        assert report.up_to_date
        assert counted.snapshot()["put"] == 0


async def test_empty_volume_copies_nothing(memory: aiolode.MemoryStore) -> None:
    async with aiolode.MemoryStore() as dst:
        report = await aiolode.copy_volume(_volume(memory), dst)
        assert report.up_to_date
        assert report.head is None
        assert [k async for k in _keys(dst)] == []


async def test_diverged_destination_is_refused(memory: aiolode.MemoryStore) -> None:
    src = _volume(memory)
    await _commit_blocks(src, 0, 2)
    async with aiolode.MemoryStore() as dst_store:
        await aiolode.copy_volume(src, dst_store)
        await _commit_blocks(_volume(dst_store), 10, 1)
        await _commit_blocks(src, 20, 1)
        with pytest.raises(aiolode.SnapshotConflictError) as info:
            await aiolode.copy_volume(src, dst_store)
        assert info.value.volume_id == "disk"
        assert info.value.conflicting == ["00000000000000000003"]


async def test_damaged_block_is_never_committed(memory: aiolode.MemoryStore) -> None:
    src = _volume(memory, checksum=aiolode.SHA256())
    await _commit_blocks(src, 0, 2)
    key = next(iter([k async for k in _keys(memory) if "/blocks/" in k]))
    good = await memory.get(key)
    await memory.put(key, bytes(b ^ 0xFF for b in good), mode="overwrite")
    async with aiolode.MemoryStore() as dst_store:
        with pytest.raises(aiolode.ChecksumMismatchError):
            await aiolode.copy_volume(src, dst_store)
        with pytest.raises(aiolode.NoSnapshotsError):
            await _volume(dst_store, checksum=aiolode.SHA256()).latest()


async def test_damaged_index_segment_is_refused(memory: aiolode.MemoryStore) -> None:
    src = _volume(memory)
    await _commit_blocks(src, 0, 1)
    key = next(iter([k async for k in _keys(memory) if "/index/seg-" in k]))
    await memory.put(key, (await memory.get(key)).replace(b"disk", b"dusk"), mode="overwrite")
    async with aiolode.MemoryStore() as dst_store:
        with pytest.raises(aiolode.ChecksumMismatchError):
            await aiolode.copy_volume(src, dst_store)


async def test_arguments_are_checked(memory: aiolode.MemoryStore) -> None:
    src = _volume(memory)
    await _commit_blocks(src, 0, 1)
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_volume("disk", memory)  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_volume(src, None)  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError, match="onto itself"):
        await aiolode.copy_volume(src, memory)
    with pytest.raises(aiolode.InvalidKeyError):
        await aiolode.copy_volume(src, memory, dst_id="")
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.copy_volume(src, memory, dst_id="x", concurrency=-1)
    # Found by the hostile sweep: each refusal called repr() on the argument.
    with pytest.raises(aiolode.InvalidInputError, match="src"):
        await aiolode.copy_volume(Hostile(), memory)  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError, match="dst_store"):
        await aiolode.copy_volume(src, Hostile())  # type: ignore[arg-type]
    with pytest.raises(aiolode.InvalidInputError, match="progress"):
        await aiolode.copy_volume(src, memory, dst_id="x", progress=Hostile())  # type: ignore[arg-type]
    async with aiolode.MemoryStore() as dst:
        # Opened with another length than the volume records.
        with pytest.raises(aiolode.InvalidInputError, match="total_length"):
            await aiolode.copy_volume(aiolode.Volume("disk", memory, 10), dst)


async def test_a_huge_concurrency_is_a_limit_not_a_task_count(
    memory: aiolode.MemoryStore,
) -> None:
    # Found by the hostile sweep (with copy_dataset): one worker task per unit
    # of ``concurrency`` per window, whatever the window held.
    src = _volume(memory)
    await _commit_blocks(src, 0, 3)
    tasks: list[int] = []

    def count(p: aiolode.CopyProgress) -> None:
        tasks.append(len(anyio.get_running_tasks()))

    async with aiolode.MemoryStore() as dst:
        report = await aiolode.copy_volume(src, dst, progress=count, concurrency=100_000)
    assert report.records == 3
    assert tasks
    assert max(tasks) < 50
