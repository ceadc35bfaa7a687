"""Fault injection and cancellation: a commit is all or nothing, never ambiguous."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
import pytest

from aiolode import (
    MemoryStore,
    OverlappingBlocksError,
    PermissionDeniedError,
    Retry,
    SnapshotConflictError,
    Store,
    TransientStorageError,
    Volume,
)
from aiolode.testing import Call, Fail, FaultInjectingStore, Hook, LoseAck, Rule

from .test_volume import chunks, payload

N = 1000
FAST = Retry(attempts=20, base_delay=0.0, max_delay=0.0)


async def index_keys(store: MemoryStore) -> set[str]:
    async with aclosing(store.list("volumes/v/index/")) as it:
        return {info.key async for info in it}


async def referenced_index_keys(store: MemoryStore) -> set[str]:
    """Index objects some root references (segments and segment lists)."""
    vol = Volume("v", store, N)
    keys: set[str] = set()
    async with aclosing(vol.snapshots()) as it:
        async for snap in it:
            state = vol._index._states[int(snap.id)]
            keys.update(r.key for r in state.root.segments)
            keys.update(r.key for r in state.frozen_refs)
            if state.root.frozen_key:
                keys.add(state.root.frozen_key)
    return keys


async def test_lost_ack_on_root_put_is_recognised(mem: MemoryStore) -> None:
    faulty = FaultInjectingStore(mem, [Rule(op="put", key="*/_log/*", nth=2, action=LoseAck())])
    vol = Volume("v", faulty, N, retry=FAST)
    await vol.commit([await vol.stage_write_at(0, b"a")])
    snap = await vol.commit([await vol.stage_write_at(1, b"b")])
    assert snap.id == f"{2:020d}"
    latest = await Volume("v", mem, N).latest()
    assert latest.id == snap.id  # committed once, not twice
    assert latest.committed_ranges() == [(0, 2)]
    assert any(c.injected for c in faulty.log)


async def test_lost_ack_on_segment_and_block_puts(mem: MemoryStore) -> None:
    faulty = FaultInjectingStore(
        mem,
        [
            Rule(op="put", key="*/index/*", nth=1, action=LoseAck()),
            Rule(op="put", key="*/blocks/*", nth=1, action=LoseAck()),
        ],
    )
    vol = Volume("v", faulty, N, retry=FAST)
    snap = await vol.commit([await vol.stage_write_at(0, b"abc")])
    assert await Volume("v", mem, N).read_at(snap.id, 0, 3) == b"abc"


async def test_random_transient_faults_everywhere(mem: MemoryStore) -> None:
    faulty = FaultInjectingStore(mem, [Rule(op="*", probability=0.2, action=Fail())], seed=3)
    vol = Volume("v", faulty, N, retry=FAST)
    for i in range(10):
        await vol.commit([await vol.stage_write_at(i * 10, payload(i * 10, 10))])
    latest = await Volume("v", mem, N).latest()
    assert latest.committed_ranges() == [(0, 100)]
    assert await Volume("v", faulty, N, retry=FAST).read_at(latest.id, 0, 100) == payload(0, 100)


async def test_permanent_failure_of_root_put_leaves_nothing(mem: MemoryStore) -> None:
    rule = Rule(op="put", key="*/_log/*", action=Fail(PermissionDeniedError))
    faulty = FaultInjectingStore(mem, [rule])
    vol = Volume("v", faulty, N)
    ref = await vol.stage_write_at(0, b"a")
    with pytest.raises(PermissionDeniedError):
        await vol.commit([ref])
    assert await index_keys(mem) == set()  # the orphan segment was removed


async def test_rival_commit_before_root_put(mem: MemoryStore) -> None:
    rival = Volume("v", mem, N)
    fired = False

    async def rival_commits(call: Call) -> None:
        nonlocal fired
        if not fired:
            fired = True
            await rival.commit([await rival.stage_write_at(500, b"r" * 10)])

    faulty = FaultInjectingStore(mem, [Rule(op="put", key="*/_log/*", action=Hook(rival_commits))])
    vol = Volume("v", faulty, N)
    snap = await vol.commit([await vol.stage_write_at(0, b"m" * 10)])
    assert snap.id == f"{2:020d}"
    assert snap.committed_ranges() == [(0, 10), (500, 10)]
    assert await index_keys(mem) == await referenced_index_keys(mem)


async def test_overlapping_rival_is_never_retried(mem: MemoryStore) -> None:
    rival = Volume("v", mem, N)

    async def rival_commits(call: Call) -> None:
        await rival.commit([await rival.stage_write_at(5, b"r" * 10)])

    faulty = FaultInjectingStore(
        mem, [Rule(op="put", key="*/_log/*", nth=1, action=Hook(rival_commits))]
    )
    vol = Volume("v", faulty, N)
    with pytest.raises(OverlappingBlocksError) as ei:
        await vol.commit([await vol.stage_write_at(0, b"m" * 10)])
    assert ei.value.ranges == [(0, 10)]
    assert (await vol.latest()).committed_ranges() == [(5, 10)]
    assert await index_keys(mem) == await referenced_index_keys(mem)


async def test_endless_losing_gives_snapshot_conflict(mem: MemoryStore) -> None:
    rival = Volume("v", mem, N)
    spot = iter(range(100, N))

    async def rival_commits(call: Call) -> None:
        await rival.commit([await rival.stage_write_at(next(spot), b"r")])

    faulty = FaultInjectingStore(mem, [Rule(op="put", key="*/_log/*", action=Hook(rival_commits))])
    vol = Volume("v", faulty, N, retry=Retry(attempts=3, base_delay=0.0, max_delay=0.0))
    with pytest.raises(SnapshotConflictError):
        await vol.commit([await vol.stage_write_at(0, b"m")])


async def test_failed_stream_leaves_no_block(mem: MemoryStore) -> None:
    async def broken() -> object:
        yield b"abc"
        raise TransientStorageError("source died")

    vol = Volume("v", mem, N)
    with pytest.raises(TransientStorageError):
        await vol.stage_write_at(0, broken())  # type: ignore[arg-type]
    async with aclosing(mem.list("volumes/")) as it:
        assert [i.key async for i in it] == []


async def _commit_cancelled_at(call_no: int) -> tuple[bool, MemoryStore, bool]:
    """Cancel a commit when it makes its ``call_no``-th store call.

    Returns whether the hook fired, the store, and whether the commit returned.
    """
    mem = MemoryStore()
    base = Volume("v", mem, N)
    await base.commit([await base.stage_write_at(0, b"base")])
    fired = False
    returned = False
    with anyio.CancelScope() as scope:

        async def cancel(call: Call) -> None:
            nonlocal fired
            fired = True
            scope.cancel()

        faulty = FaultInjectingStore(mem, [Rule(op="*", nth=call_no, action=Hook(cancel))])
        vol = Volume("v", faulty, N)
        ref = await vol.stage_write_at(100, chunks(b"x" * 50, 10))
        await vol.commit([ref])
        returned = True
    return fired, mem, returned


async def test_cancellation_at_every_store_call() -> None:
    outcomes = []
    for call_no in range(1, 20):
        fired, mem, returned = await _commit_cancelled_at(call_no)
        latest = await Volume("v", mem, N).latest()
        committed = latest.id == f"{2:020d}"
        outcomes.append(committed)
        # Either the old state or the new one; never torn, never half-visible.
        if committed:
            assert latest.committed_ranges() == [(0, 4), (100, 50)]
            assert await Volume("v", mem, N).read_at(latest.id, 100, 50) == b"x" * 50
        else:
            assert latest.committed_ranges() == [(0, 4)]
            assert await index_keys(mem) == await referenced_index_keys(mem)
        # The volume stays usable.
        follow = Volume("v", mem, N)
        await follow.commit([await follow.stage_write_at(900, b"after")])
        if not fired:
            assert returned
            break
    else:
        pytest.fail("the commit never finished within 19 store calls")
    assert outcomes[0] is False  # cancelled while staging: nothing committed
    assert outcomes[-1] is True


async def test_lost_ack_of_the_root_is_recognised(mem: MemoryStore) -> None:
    """The root put lands but reports failure: reading the slot back finds our
    token, so the commit succeeds (not a conflict, not committed twice)."""
    faulty = FaultInjectingStore(mem, [Rule(op="put", key="*/_log/*", action=LoseAck())])
    vol = Volume("v", faulty, N, retry=Retry(attempts=1))
    snap = await vol.commit([await vol.stage_write_at(0, b"abc")])
    fresh = Volume("v", mem, N)
    assert (await fresh.latest()).id == snap.id
    assert await fresh.read_at(snap.id, 0, 3) == b"abc"


async def test_ambiguous_root_failure_keeps_what_a_landed_root_needs(mem: MemoryStore) -> None:
    """The root put lands but reports failure, and reading it back keeps failing:
    the caller sees an unknown outcome, and the segment the landed root references
    is not cleaned up."""
    faulty = FaultInjectingStore(
        mem,
        [
            Rule(op="put", key="*/_log/*", action=LoseAck()),
            Rule(op="get", key="*/_log/0*", action=Fail()),
        ],
    )
    vol = Volume("v", faulty, N, retry=Retry(attempts=2, base_delay=0, max_delay=0))
    ref = await vol.stage_write_at(0, b"abc")
    with pytest.raises(TransientStorageError, match="unknown outcome"):
        await vol.commit([ref])
    fresh = Volume("v", mem, N)
    snap = await fresh.latest()
    assert await fresh.read_at(snap.id, 0, 3) == b"abc"


async def test_cancelled_stream_staging_leaves_no_block(store: Store) -> None:
    started = anyio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"a" * 100
        started.set()
        await anyio.sleep_forever()
        yield b"never"

    vol = Volume("v", store, N)
    async with anyio.create_task_group() as tg:
        tg.start_soon(vol.stage_write_at, 0, slow())
        await started.wait()
        tg.cancel_scope.cancel()
    async with aclosing(store.list("volumes/")) as it:
        assert [i.key async for i in it] == []
