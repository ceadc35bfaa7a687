"""Cancellation at each await point of write, stream_write and
stream_write_records: before the commit point nothing is committed and the
data is cleaned up; once the commit is under way the caller gets its result."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import CountingStore, FaultInjectingStore, Hook, Rule


async def _verify(mem: aiolode.MemoryStore) -> list[aiolode.Snapshot]:
    ds = Dataset("d", mem)
    try:
        snaps = [s async for s in ds.snapshots()]
    except aiolode.DatasetNotFoundError:
        snaps = []  # nothing was ever committed (or recorded)
    for prev, cur in itertools.pairwise(snaps):
        assert cur.parent_id == prev.id
    # Data files and (format v2) partition manifests of committed snapshots.
    referenced = {f.key for s in snaps for f in s.files}
    referenced |= {p.key for s in snaps for p in s.manifest.partition_manifests}
    stored = {o.key async for o in mem.list("datasets/d/data/")}
    assert stored == referenced  # no orphan, nothing missing
    return snaps


def _cancel_at(n: int, scope_box: list[anyio.CancelScope]) -> Rule:
    async def cancel(_: object) -> None:
        scope_box[0].cancel()

    return Rule(op="*", nth=n, action=Hook(cancel))


async def _commit_point(fn: Any) -> tuple[int, int]:
    """``(calls, n)``: how many store calls ``fn`` makes, and the 1-based number
    of the commit record put among them (the commit point)."""
    mem = aiolode.MemoryStore()
    counting = CountingStore(mem, record=True)
    await fn(mem, counting)
    calls = list(counting.calls)
    record = next(i for i, (op, key) in enumerate(calls, 1) if op == "put" and "/_log/0" in key)
    return len(calls), record


async def test_cancel_write_at_each_call() -> None:
    async def op(setup: aiolode.Store, store: aiolode.Store) -> Any:
        await Dataset("d", setup).write(b"old")
        return await Dataset("d", store).write(b"new", {"tag": "new"})

    calls, commit_at = await _commit_point(op)
    # descriptor get ‖ hint get (seq 1); records 1 and 2 (get) and the stride
    # after them (8 heads); data put; record put
    assert (calls, commit_at) == (14, 14)
    for n in range(1, calls + 1):
        mem = aiolode.MemoryStore()
        box: list[anyio.CancelScope] = []
        faulty = FaultInjectingStore(mem)
        await Dataset("d", mem).write(b"old")
        faulty.add(_cancel_at(n, box))
        result: aiolode.Snapshot | None = None
        with anyio.CancelScope() as scope:
            box.append(scope)
            result = await Dataset("d", faulty).write(b"new", {"tag": "new"})
        snaps = await _verify(mem)
        if n < commit_at:
            # Cancelled before the commit point: nothing committed, nothing left.
            assert result is None, n
            assert len(snaps) == 1
        else:
            # The commit was under way (shielded): the caller learns the truth.
            assert result is not None, n
            assert [s.id for s in snaps][-1] == result.id
            assert len(snaps) == 2


async def test_cancel_waiting_writers_in_a_group() -> None:
    """Cancel a crowd of concurrent writers at random moments: each either
    returned its snapshot (which exists exactly once) or left nothing behind."""
    mem = aiolode.MemoryStore()
    ds = Dataset("d", mem)
    await ds.write(b"first")
    got: dict[int, aiolode.Snapshot] = {}

    async def writer(i: int, scope: anyio.CancelScope) -> None:
        with scope:
            got[i] = await ds.write(b"%d" % i, {"i": i})

    for round_ in range(5):
        scopes = [anyio.CancelScope() for _ in range(20)]
        async with anyio.create_task_group() as tg:
            for i, sc in enumerate(scopes):
                tg.start_soon(writer, round_ * 100 + i, sc)
            for k in range(round_ + 1):
                await anyio.lowlevel.checkpoint()
                for sc in scopes[k::3]:
                    sc.cancel()
    snaps = await _verify(mem)
    committed = {s.metadata["i"]: s.id for s in snaps if "i" in s.metadata}
    assert {i: s.id for i, s in got.items()} == committed


@pytest.mark.parametrize("where", ["before-write", "between-writes", "after-writes"])
async def test_cancel_stream_write_body(where: str) -> None:
    mem = aiolode.MemoryStore()
    ds = Dataset("d", mem)
    await ds.write(b"old")
    with anyio.CancelScope() as scope:
        async with ds.stream_write({"tag": "new"}) as w:
            if where == "before-write":
                scope.cancel()
                await anyio.lowlevel.checkpoint()
            await w.write(b"a" * 100_000)
            if where == "between-writes":
                scope.cancel()
                await anyio.lowlevel.checkpoint()
            await w.write(b"b" * 100_000)
            if where == "after-writes":
                scope.cancel()
                await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    snaps = await _verify(mem)
    assert len(snaps) == 1


async def test_exception_in_stream_write_body_aborts() -> None:
    mem = aiolode.MemoryStore()
    ds = Dataset("d", mem)

    class Boom(Exception):
        pass

    writers: list[aiolode.BlobWriter] = []

    async def body() -> None:
        async with ds.stream_write() as w:
            writers.append(w)
            await w.write(b"x" * 1000)
            raise Boom

    with pytest.raises(Boom):
        await body()
    assert await _verify(mem) == []
    with pytest.raises(aiolode.InvalidInputError):
        _ = writers[0].snapshot


async def test_cancel_stream_write_at_each_call() -> None:
    async def op(setup: aiolode.Store, store: aiolode.Store) -> None:
        await Dataset("d", setup).write(b"old")
        async with Dataset("d", store).stream_write() as w:
            await w.write(b"chunk" * 1000)

    calls, commit_at = await _commit_point(op)
    # descriptor get ‖ hint get (seq 1); records 1 and 2 (get) and the stride
    # after them (8 heads); streamed data put; record put
    assert (calls, commit_at) == (14, 14)
    for n in range(1, calls + 1):
        mem = aiolode.MemoryStore()
        await Dataset("d", mem).write(b"old")
        box: list[anyio.CancelScope] = []
        faulty = FaultInjectingStore(mem, [_cancel_at(n, box)])
        writer = None
        with anyio.CancelScope() as scope:
            box.append(scope)
            async with Dataset("d", faulty).stream_write({"n": n}) as w:
                writer = w
                await w.write(b"chunk" * 1000)
        snaps = await _verify(mem)
        if n < commit_at:
            # Before the commit point (perhaps before the block even began).
            assert len(snaps) == 1, n
        else:
            assert writer is not None
            assert len(snaps) == 2, n
            assert writer.snapshot.id == snaps[-1].id
            assert await Dataset("d", mem).read(snaps[-1].id) == b"chunk" * 1000


async def test_cancel_stream_write_records_midway() -> None:
    mem = aiolode.MemoryStore()
    ds = Dataset("d", mem, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))

    async def records(scope: anyio.CancelScope) -> Any:
        for i in range(500):
            if i == 250:
                scope.cancel()
            yield {"p": str(i % 7), "i": i}
            await anyio.lowlevel.checkpoint()

    with anyio.CancelScope() as scope:
        await ds.stream_write_records(records(scope), max_open_partitions=3, batch_size=16)
    assert scope.cancelled_caught
    assert await _verify(mem) == []
