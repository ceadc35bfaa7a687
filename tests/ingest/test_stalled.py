"""A store that stalls: Buffered stays bounded and counts drops exactly, per policy;
Strict applies backpressure; nothing is lost when the store comes back."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Buffered, Ingestor, Run, Strict
from aiolode.ingest import Drop
from aiolode.testing import FaultInjectingStore, Hook, Rule

from ._helpers import check_accounting, wait_until, written

#: Every way a data file is stored (batches are streamed: put_stream).
PUTS = ("put", "put_stream")


class Stall:
    """A Hook that holds every data put until released (the store 'stalls')."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.waiting = 0

    async def __call__(self, call: Any) -> None:
        self.waiting += 1
        await self.release.wait()

    def rule(self) -> Rule:
        return Rule(op=PUTS, key="*/data/*", action=Hook(self))


def _stalled(store: aiolode.Store) -> tuple[FaultInjectingStore[aiolode.Store], Stall]:
    stall = Stall()
    return FaultInjectingStore(store, [stall.rule()]), stall


async def _emit_while_stalled(
    store: aiolode.Store, policy: Buffered, n: int
) -> tuple[aiolode.ingest.IngestStats, list[Drop], list[dict[str, Any]], list[int | None]]:
    faulty, stall = _stalled(store)
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    drops: list[Drop] = []
    returned: list[int | None] = []
    async with Ingestor(ds, policy=policy, run=Run("r"), on_drop=drops.append) as ing:
        t0 = time.monotonic()
        for i in range(n):
            returned.append(await ing.emit({"i": i, "pad": "x" * 100}))
            st = ing.stats
            assert st.pending <= policy.max_buffer_rows
            assert st.pending_bytes <= policy.max_buffer_bytes
        # Every emit returned at once although the store never answered.
        assert time.monotonic() - t0 < 5
        await wait_until(lambda: stall.waiting >= 1)
        mid = ing.stats
        assert mid.written == 0
        assert mid.emitted == n
        assert mid.pending == policy.max_buffer_rows
        stall.release.set()
    st = ing.stats
    check_accounting(st, await written(aiolode.Dataset("d", store), "r"), drops)
    return st, drops, await written(aiolode.Dataset("d", store), "r"), returned


async def test_drop_newest_keeps_the_first_records(store: aiolode.Store) -> None:
    policy = Buffered(max_buffer_rows=40, flush_rows=10, flush_interval=60, on_full="drop_newest")
    st, drops, recs, returned = await _emit_while_stalled(store, policy, 300)
    assert [r["seq"] for r in recs] == list(range(1, 41))
    assert [d.seq for d in drops] == list(range(41, 301))
    assert st.dropped_by_reason == {"buffer_full": 260}
    assert returned == [*range(1, 41), *[None] * 260]


async def test_drop_oldest_keeps_the_newest_queued_records(store: aiolode.Store) -> None:
    policy = Buffered(max_buffer_rows=40, flush_rows=10, flush_interval=60, on_full="drop_oldest")
    st, _drops, recs, returned = await _emit_while_stalled(store, policy, 300)
    seqs = [r["seq"] for r in recs]
    # The batch already handed to the store is kept; the queue slides to the newest.
    in_flight = seqs[: len(seqs) - 30]
    assert in_flight == list(range(1, len(in_flight) + 1))
    assert seqs[len(in_flight) :] == list(range(271, 301))
    assert 1 <= len(in_flight) <= 10
    assert st.dropped == 300 - 40
    assert returned == list(range(1, 301))  # every emit was accepted (an older one went)


async def test_block_waits_for_room_and_loses_nothing(memory: aiolode.MemoryStore) -> None:
    faulty, stall = _stalled(memory)
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    policy = Buffered(max_buffer_rows=20, flush_rows=5, flush_interval=60, on_full="block")
    order: list[int] = []
    async with Ingestor(ds, policy=policy, run=Run("r")) as ing:

        async def producer(p: int) -> None:
            for j in range(10):
                seq = await ing.emit({"p": p, "j": j})
                assert seq is not None
                order.append(seq)

        async with anyio.create_task_group() as tg:
            for p in range(5):
                tg.start_soon(producer, p)
            await wait_until(lambda: ing.stats.pending == 20)
            await anyio.sleep(0.05)
            # Blocked: the buffer is full and the store does not answer.
            assert ing.stats.pending == 20
            assert len(order) == 20
            stall.release.set()
    st = ing.stats
    assert (st.emitted, st.written, st.dropped) == (50, 50, 0)
    recs = await written(aiolode.Dataset("d", memory), "r")
    check_accounting(st, recs, [])
    for p in range(5):
        assert [r["j"] for r in recs if r["p"] == p] == list(range(10))


async def test_strict_applies_backpressure(memory: aiolode.MemoryStore) -> None:
    faulty, stall = _stalled(memory)
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    acked: list[int] = []
    async with Ingestor(ds, policy=Strict(max_batch_rows=4), run=Run("r")) as ing:

        async def producer(p: int) -> None:
            for j in range(5):
                seq = await ing.emit({"p": p, "j": j})
                assert seq is not None
                acked.append(seq)

        async with anyio.create_task_group() as tg:
            for p in range(20):
                tg.start_soon(producer, p)
            await wait_until(lambda: stall.waiting >= 1)
            await anyio.sleep(0.05)
            assert acked == []  # nothing returns before it is committed
            assert ing.stats.pending <= 2 * 4  # one batch in flight, one queued
            stall.release.set()
    assert ing.stats.written == 100
    assert sorted(acked) == list(range(1, 101))


async def test_block_emit_cancelled_while_waiting_is_withdrawn(
    memory: aiolode.MemoryStore,
) -> None:
    faulty, stall = _stalled(memory)
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    policy = Buffered(max_buffer_rows=3, flush_rows=3, flush_interval=60, on_full="block")
    async with Ingestor(ds, policy=policy, run=Run("r")) as ing:
        for i in range(3):
            await ing.emit({"i": i})
        with anyio.move_on_after(0.1) as scope:
            await ing.emit({"i": "never"})
        assert scope.cancelled_caught
        assert ing.stats.emitted == 3
        stall.release.set()
        assert await ing.emit({"i": 3}) == 4
    recs = await written(aiolode.Dataset("d", memory), "r")
    assert [r["i"] for r in recs] == [0, 1, 2, 3]
    check_accounting(ing.stats, recs, [])


@pytest.mark.parametrize("on_full", ["drop_newest", "drop_oldest", "block"])
async def test_close_deadline_counts_what_the_stalled_store_kept(
    memory: aiolode.MemoryStore, on_full: str
) -> None:
    faulty, stall = _stalled(memory)
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    drops: list[Drop] = []
    policy = Buffered(
        max_buffer_rows=30,
        flush_rows=10,
        flush_interval=60,
        on_full=on_full,  # type: ignore[arg-type]
    )
    async with Ingestor(ds, policy=policy, run=Run("r"), on_drop=drops.append) as ing:
        for i in range(25):
            await ing.emit({"i": i}, event_type="t")
        t0 = time.monotonic()
        final = await ing.aclose(deadline=0.2)
        assert time.monotonic() - t0 < 2
    assert (final.written, final.dropped, final.pending, final.in_doubt) == (0, 25, 0, 0)
    assert final.dropped_by_reason == {"deadline": 25}
    assert final.dropped_by_event_type == {"t": {"deadline": 25}}
    check_accounting(final, [], drops)
    assert stall.waiting >= 1
    stall.release.set()
    # Nothing was committed (the stalled write was cancelled before its commit point).
    with pytest.raises(aiolode.NoSnapshotsError):
        await aiolode.Dataset("d", memory).latest()
