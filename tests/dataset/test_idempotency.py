"""Idempotent writes: a retry with the same key returns the first commit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Dataset
from aiolode.testing import CountingStore, Crash, FaultInjectingStore, LoseAck, Rule, SimulatedCrash


async def test_retry_returns_the_first_commit(store: aiolode.Store) -> None:
    ds = Dataset("k", store, codec=aiolode.JSONL())
    first = await ds.write([{"page": 42}], {"try": 1}, idempotency_key="crawl/page-42")
    again = await ds.write([{"page": 42}], {"try": 2}, idempotency_key="crawl/page-42")
    assert again.id == first.id
    assert again.metadata == {"try": 1}
    # From a new process (a new object): the same.
    other = await Dataset("k", store).write([{"page": 42}], idempotency_key="crawl/page-42")
    assert other.id == first.id
    assert [s.id async for s in ds.snapshots()] == [first.id]
    assert (await ds.verify()).orphans == ()  # the retries' files were removed
    # Another key commits.
    s2 = await ds.write([{"page": 43}], idempotency_key="crawl/page-43")
    assert s2.id != first.id
    assert first.manifest.idempotency_key == "crawl/page-42"


async def test_cost_is_constant(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("k", memory)
    for i in range(200):
        await ds.write(b"%d" % i, idempotency_key=f"k{i}")
    counting = CountingStore(memory)
    fresh = Dataset("k", counting)
    await fresh.latest()
    with counting.measure() as m:
        s = await fresh.write(b"0", idempotency_key="k0")
    assert s.id == "0000000000000001-0000"
    assert m.counts.total_calls <= 4, m.counts  # marker + its snapshot (+ descriptor)


def _marker_of(ds: Dataset, key: str) -> str:
    import hashlib

    return (
        f"{ds.layout.log_prefix(ds.id)}_keys/{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"
    )


@pytest.mark.parametrize("lost", ["k3", "k140", "k199"])
async def test_a_lost_marker_is_not_a_new_key(memory: aiolode.MemoryStore, lost: str) -> None:
    """Markers are a shortcut: the history indexes the keys too (the newest
    checkpoint, then the records after it), so a retry whose marker was
    deleted finds its snapshot, at a cost that does not grow with the history."""
    ds = Dataset("k", memory)
    first = {}
    for i in range(200):
        first[f"k{i}"] = await ds.write(b"%d" % i, idempotency_key=f"k{i}")
    await memory.delete(_marker_of(ds, lost))
    counting = CountingStore(memory)
    fresh = Dataset("k", counting)
    await fresh.latest()
    with counting.measure() as m:
        again = await fresh.write(b"again", idempotency_key=lost)
    assert again.id == first[lost].id
    # The marker (missing), the newest checkpoint (192), the records after it
    # (8), the snapshot's record: never a walk of the 200 records.
    assert m.counts.total_calls <= 1 + 1 + 8 + 1, m.counts
    assert len([s async for s in ds.snapshots()]) == 200
    # A new key costs the same lookup, then commits.
    with counting.measure() as m:
        new = await fresh.write(b"new", idempotency_key="brand-new")
    assert new.id == "0000000000000201-0000"
    assert m.counts.total_calls <= 1 + 8 + 3, m.counts


async def test_a_lost_marker_of_an_expired_snapshot_commits_again(
    memory: aiolode.MemoryStore,
) -> None:
    ds = Dataset("k", memory)
    old = await ds.write(b"old", idempotency_key="k")
    await ds.write(b"newer")
    await ds.expire(snapshots=[old])
    await memory.delete(_marker_of(ds, "k"))
    again = await Dataset("k", memory).write(b"old", idempotency_key="k")
    assert again.id != old.id  # the key expired with its snapshot


async def test_concurrent_retries_commit_once(memory: aiolode.MemoryStore) -> None:
    results: list[aiolode.Snapshot] = []

    async def attempt() -> None:
        results.append(await Dataset("k", memory).write(b"x", idempotency_key="once"))

    await Dataset("k", memory).write(b"seed")
    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(attempt)
    ids = {s.id for s in results}
    assert len(ids) == 1
    snaps = [s async for s in Dataset("k", memory).snapshots()]
    assert len(snaps) == 2


async def test_crash_between_commit_and_marker(memory: aiolode.MemoryStore) -> None:
    """The commit landed, the process died before the marker named it: the
    retry finds the snapshot by scanning the records since the write began."""
    faulty = FaultInjectingStore(memory, [Rule(op="put", key="*/_keys/*", nth=2, action=Crash())])
    ds = Dataset("k", faulty)
    await Dataset("k", memory).write(b"seed")
    with pytest.raises(SimulatedCrash):
        await ds.write(b"payload", idempotency_key="job-1")
    retry = await Dataset("k", memory).write(b"payload", idempotency_key="job-1")
    snaps = [s async for s in Dataset("k", memory).snapshots()]
    assert [s.id for s in snaps] == ["0000000000000001-0000", retry.id]
    assert await Dataset("k", memory).read(retry.id) == b"payload"


async def test_lost_ack_then_retry(memory: aiolode.MemoryStore) -> None:
    faulty = FaultInjectingStore(
        memory,
        [Rule(op="put", key="*/_log/0*", nth=1, action=LoseAck(error=aiolode.StorageError))],
    )
    ds = Dataset("k", faulty, retry=aiolode.Retry(attempts=1))
    with contextlib.suppress(aiolode.AiolodeError):
        await ds.write(b"x", idempotency_key="j")
    again = await Dataset("k", memory).write(b"x", idempotency_key="j")
    assert len([s async for s in Dataset("k", memory).snapshots()]) == 1
    assert again.id == "0000000000000001-0000"


async def test_keys_expire_with_their_snapshots(memory: aiolode.MemoryStore) -> None:
    ds = Dataset("k", memory)
    first = await ds.write(b"v1", idempotency_key="upload")
    await ds.write(b"other")
    await ds.expire(snapshots=[first.id])
    again = await ds.write(b"v2", idempotency_key="upload")
    assert again.id != first.id
    assert await ds.read(again.id) == b"v2"
    with pytest.raises(aiolode.InvalidInputError):
        await ds.write(b"x", idempotency_key="")
    with pytest.raises(aiolode.InvalidInputError):
        await ds.write(b"x", idempotency_key="\ud800")
    report = await ds.gc(grace=timedelta(0))
    assert await ds.read(again.id) == b"v2"
    assert (await ds.write(b"v2", idempotency_key="upload")).id == again.id
    assert report.deleted  # the expired snapshot's file went


@pytest.mark.no_blockbuster
def test_kill_9_then_rerun_is_one_line(tmp_path: Any) -> None:
    """A process killed at a random point of its writes; the rerun with the same
    keys leaves every key committed exactly once."""
    script = textwrap.dedent(
        f"""
        import anyio, aiolode, sys
        async def main():
            async with aiolode.FileStore({str(tmp_path)!r}) as store:
                ds = aiolode.Dataset("crawl", store, codec=aiolode.JSONL())
                for i in range(60):
                    await ds.write([{{"page": i}}], idempotency_key=f"page-{{i}}")
                    print(i, flush=True)
        anyio.run(main)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    for _ in range(20):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)

    async def check() -> None:
        async with aiolode.FileStore(tmp_path) as store:
            ds = Dataset("crawl", store)
            pages = [r["page"] async for r in _rows(ds)]
            assert sorted(pages) == list(range(60))

    anyio.run(check)


async def _rows(ds: Dataset) -> Any:
    async for s in ds.snapshots():
        for r in await ds.read(s.id):
            yield r


async def test_stream_write_with_a_key(store: aiolode.Store) -> None:
    ds = Dataset("blobs", store)
    async with ds.stream_write({"name": "a.bin"}, idempotency_key="upload/a") as w:
        assert not w.committed_before
        for _ in range(3):
            await w.write(b"x" * 1000)
        w.metadata["size"] = w.bytes_written
    first = w.snapshot
    # The retry (a new object, as after a crash): nothing uploaded, the first snapshot.
    counting = CountingStore(store)
    again = Dataset("blobs", counting)
    async with again.stream_write({"name": "a.bin"}, idempotency_key="upload/a") as w2:
        assert w2.committed_before
        await w2.write(b"y" * 1000)  # discarded
        w2.metadata["size"] = 1  # the block runs as usual; nothing is committed
    assert w2.snapshot.id == first.id
    assert w2.snapshot.metadata == {"name": "a.bin", "size": 3000}
    assert counting.snapshot()["put"] == 0
    assert await ds.read(first.id) == b"x" * 3000
    assert [s.id async for s in ds.snapshots()] == [first.id]
    # A failure inside a replayed block propagates.
    with pytest.raises(RuntimeError):
        async with again.stream_write(idempotency_key="upload/a"):
            raise RuntimeError("boom")
    with pytest.raises(aiolode.InvalidInputError):
        async with ds.stream_write(idempotency_key=""):
            pass
    assert (await ds.verify()).orphans == ()
