"""Store calls of the ingestor, counted (the figures ``Ingestor``'s docstring and
docs/ingest.md give): a batch is one ``write``; nothing ever lists."""

from __future__ import annotations

import anyio

import aiolode
from aiolode import Buffered, Ingestor, Run, Strict
from aiolode.testing import CountingStore

#: A batch's data files are streamed (``put_stream``); everything else is ``put``.
PUTS = ("put", "put_stream")


def _ops(calls: list[tuple[str, str]]) -> list[str]:
    return sorted(op for op, _ in calls)


async def test_open_reads_the_descriptor_and_writes_nothing() -> None:
    counting = CountingStore(aiolode.MemoryStore(), record=True)
    ds = aiolode.Dataset("d", counting, codec=aiolode.JSONL())
    async with Ingestor(ds, run=Run("r")):
        # descriptor get ‖ the log's end (hint get, probe, low-water mark), and
        # the flat-layout fallback's head: a new dataset is recorded by its first write.
        assert not [op for op, _ in counting.calls if op in PUTS]
        assert counting.total_calls <= 5
    assert counting.listed == 0


async def test_a_warm_buffered_batch_is_one_data_put_and_one_record_put() -> None:
    counting = CountingStore(aiolode.MemoryStore(), record=True)
    ds = aiolode.Dataset("d", counting, codec=aiolode.JSONL())
    policy = Buffered(flush_rows=1000, flush_interval=3600)
    async with Ingestor(ds, policy=policy, run=Run("r")) as ing:
        for i in range(1000):
            await ing.emit({"i": i})
        await ing.flush()  # the first batch also records the descriptor
        counting.reset()
        for i in range(1000):
            await ing.emit({"i": i})
        await ing.flush()
        calls = list(counting.calls)
    assert ing.stats.batches == 2
    data = [k for op, k in calls if op in PUTS and "/data/" in k]
    records = [k for op, k in calls if op in PUTS and "/_log/0" in k]
    assert (len(data), len(records)) == (1, 1)
    # Besides them, at most the hint put (alongside the data): no get at all.
    assert all(op in PUTS for op in _ops(calls))
    assert len(calls) <= 3
    assert counting.listed == 0


async def test_a_partitioned_batch_adds_one_manifest_per_partition() -> None:
    counting = CountingStore(aiolode.MemoryStore(), record=True)
    ds = aiolode.quarry_dataset("q", counting)
    run = Run("r", source="s", category="c")
    async with Ingestor(ds, policy=Buffered(flush_rows=300), run=run) as ing:
        for i in range(300):
            await ing.emit({"i": i}, event_type="item")
        await ing.flush()
        counting.reset()
        for i in range(300):
            await ing.emit({"i": i}, event_type=("item", "page", "error")[i % 3])
        await ing.flush()
        calls = list(counting.calls)
    data = [k for op, k in calls if op in PUTS and "/data/" in k and "/_manifests/" not in k]
    manifests = [k for op, k in calls if op in PUTS and "/_manifests/" in k]
    assert (len(data), len(manifests)) == (3, 3)
    assert len(calls) <= 3 + 3 + 2
    assert counting.listed == 0


async def test_strict_producers_pay_one_commit_per_batch() -> None:
    counting = CountingStore(aiolode.MemoryStore(), record=True)
    ds = aiolode.Dataset("d", counting, codec=aiolode.JSONL())
    async with Ingestor(ds, policy=Strict(), run=Run("r")) as ing:
        await ing.emit({"p": -1, "j": -1})  # warm (and the schema recorded)
        counting.reset()

        async def producer(p: int) -> None:
            for j in range(10):
                await ing.emit({"p": p, "j": j})

        async with anyio.create_task_group() as tg:
            for p in range(64):
                tg.start_soon(producer, p)
        calls = list(counting.calls)
    batches = ing.stats.batches - 1
    records = [k for op, k in calls if op in PUTS and "/_log/0" in k]
    data = [k for op, k in calls if op in PUTS and "/data/" in k]
    assert len(records) == len(data) == batches
    assert batches <= 640 // 16  # producers share commits
    assert len(calls) <= 3 * batches
    assert counting.listed == 0
