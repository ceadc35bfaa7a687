"""watch(): every snapshot once, in order, from a durable cursor, at bounded idle cost."""

from __future__ import annotations

from contextlib import aclosing

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import Call, CountingStore, Fail, FaultInjectingStore, Hook, Rule


async def _take(it: object, n: int) -> list[aiolode.Snapshot]:
    out: list[aiolode.Snapshot] = []
    async with aclosing(it) as agen:  # type: ignore[type-var]
        async for s in agen:
            out.append(s)
            if len(out) == n:
                break
    return out


async def test_backfill_then_follow(store: aiolode.Store) -> None:
    ds = Dataset("w", store)
    first = [await ds.write(b"%d" % i) for i in range(3)]
    seen: list[aiolode.Snapshot] = []

    async def consume() -> None:
        seen.extend(await _take(Dataset("w", store).watch(poll_interval=0.02), 6))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        later = [await ds.write(b"x%d" % i) for i in range(3)]
    assert [s.id for s in seen] == [s.id for s in first + later]


async def test_resume_after_a_cursor(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("w", memory)
    snaps = [await ds.write(b"%d" % i) for i in range(4)]
    got = await _take(ds.watch(after=snaps[1].id, poll_interval=0.01), 2)
    assert [s.id for s in got] == [s.id for s in snaps[2:]]
    got = await _take(ds.watch(after=snaps[1], poll_interval=0.01), 1)
    assert got[0].id == snaps[2].id
    with pytest.raises(aiolode.SnapshotNotFoundError):
        await _take(ds.watch(after="0000000000000099-0000"), 1)
    with pytest.raises(aiolode.InvalidInputError):
        await _take(ds.watch(poll_interval=-1), 1)


async def test_group_commits_are_delivered_one_snapshot_at_a_time(
    memory: aiolode.MemoryStore,
) -> None:
    ds = Dataset("w", memory)
    await ds.write(b"first")
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(ds.write, b"%d" % i)
    every = [s.id async for s in ds.snapshots()]
    assert len({s.split("-")[0] for s in every}) < len(every)  # records hold several
    got = await _take(ds.watch(poll_interval=0.01), len(every))
    assert [s.id for s in got] == every
    # Resume in the middle of a record: the rest of it, then the next ones.
    mid = next(s for s in every if not s.endswith("-0000"))
    rest = await _take(ds.watch(after=mid, poll_interval=0.01), len(every) - every.index(mid) - 1)
    assert [s.id for s in rest] == every[every.index(mid) + 1 :]


async def test_idle_costs_one_request_per_poll(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("w", memory)
    await ds.write(b"x")
    counting = CountingStore(memory)
    watcher = Dataset("w", counting).watch(poll_interval=0.05)
    async with aclosing(watcher) as it:
        await anext(it)
        with counting.measure() as m:
            with anyio.move_on_after(1.0):
                await anext(it)
    # 20 polls in a second at most; each is one get (or, one in 16, the hint).
    assert m.counts.total_calls <= 1.0 / 0.05 + 1, m.counts
    assert m.counts["list"] == 0


async def test_a_commit_in_this_process_wakes_the_watcher_at_once(
    memory: aiolode.MemoryStore,
) -> None:
    ds = Dataset("w", memory)
    await ds.write(b"x")
    got: list[aiolode.Snapshot] = []

    async def consume() -> None:
        got.extend(await _take(Dataset("w", memory).watch(poll_interval=3600), 2))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.sleep(0.05)
            await ds.write(b"y")
    assert len(got) == 2


async def test_transient_errors_are_retried(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("w", memory)
    snaps = [await ds.write(b"%d" % i) for i in range(3)]
    faulty = FaultInjectingStore(
        memory, [Rule(op="get", key="*/_log/0*2.json", nth=1, action=Fail())]
    )
    got = await _take(Dataset("w", faulty).watch(poll_interval=0.01), 3)
    assert [s.id for s in got] == [s.id for s in snaps]


async def test_a_hole_in_the_history_is_an_error_not_a_hang(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("w", memory)
    for i in range(4):
        await ds.write(b"%d" % i)
    await memory.delete("datasets/w/_log/0000000000000002.json")
    await memory.put(
        "datasets/w/_log/_latest.json",
        b'{"schema_name":"aiolode.log.hint","format_version":1,"owner":"w","seq":4}',
        mode="overwrite",
    )
    with anyio.fail_after(10), pytest.raises(aiolode.HistoryGapError):
        await _take(Dataset("w", memory).watch(poll_interval=0.001), 4)


async def test_a_commit_landing_while_the_watcher_looks_still_wakes_it(
    memory: aiolode.MemoryStore,
) -> None:
    """The watcher's ``get`` of the next record misses, but the commit lands (and
    notifies) before that miss comes back: the watcher must not then sleep a
    whole ``poll_interval``. (It used to start listening only after the miss.)"""
    ds = Dataset("w", memory)
    await ds.write(b"x")

    async def commit_then_miss(call: Call) -> None:
        await writer.write(b"y")  # lands, and notifies, while the get is in flight
        raise aiolode.ObjectNotFoundError("served before the put", key=call.key)

    shared = FaultInjectingStore(
        memory, [Rule(op="get", key="*/_log/0*2.json", nth=1, action=Hook(commit_then_miss))]
    )
    writer = Dataset("w", shared)
    with anyio.fail_after(10):  # a poll would take an hour
        got = await _take(Dataset("w", shared).watch(poll_interval=3600), 2)
    assert [s.id for s in got] == [s.id async for s in ds.snapshots()]


async def test_a_watch_started_before_a_flat_layout_dataset_exists_sees_it(
    memory: aiolode.MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiolode.dataset import _dataset

    monkeypatch.setattr(_dataset, "FLAT_RECHECK", 0.05)
    got: list[aiolode.Snapshot] = []

    async def consume() -> None:
        got.extend(await _take(Dataset("f", memory).watch(poll_interval=0.01), 1))

    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.sleep(0.1)
            await Dataset("f", memory, layout=aiolode.FlatLayout()).write(b"x")
    assert [s.id for s in got] == [(await Dataset("f", memory).latest()).id]
