"""The invariant under faults: emitted == written + dropped, exactly, per policy.

Failures before a call, lost acknowledgements (the call took effect, the reply
was lost), delays, a commit whose outcome the store will not tell, records the
codec refuses, and producers cancelled at random: every emitted seq is written
exactly once or counted as dropped exactly once, a run's records are in seq
order, and a producer's records keep its emission order.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Buffered, Ingestor, Run, Strict
from aiolode.ingest import Drop
from aiolode.testing import Delay, Fail, FaultInjectingStore, LoseAck, Rule

from ._helpers import check_accounting, written

#: The dataset gives up quickly, so the ingestor's own retries and lookups run.
#: Every way a data file is stored (batches are streamed: put_stream).
PUTS = ("put", "put_stream")

FAST = aiolode.Retry(attempts=2, base_delay=0.0, max_delay=0.0)

POLICIES: dict[str, Strict | Buffered] = {
    "strict": Strict(max_batch_rows=16),
    "block": Buffered(max_buffer_rows=64, flush_rows=16, flush_interval=0.01),
    "drop_newest": Buffered(
        max_buffer_rows=24, flush_rows=8, flush_interval=0.01, on_full="drop_newest"
    ),
    "drop_oldest": Buffered(
        max_buffer_rows=24, flush_rows=8, flush_interval=0.01, on_full="drop_oldest"
    ),
}

FAULTS: dict[str, list[Rule]] = {
    "fail": [
        Rule(op=PUTS, probability=0.15, action=Fail()),
        Rule(op="get", probability=0.05, action=Fail()),
    ],
    "lose_ack": [Rule(op=PUTS, probability=0.2, action=LoseAck())],
    "mixed": [
        Rule(op=PUTS, probability=0.1, action=Fail()),
        Rule(op=PUTS, probability=0.1, action=LoseAck()),
        Rule(op="*", probability=0.2, action=Delay(0.002)),
    ],
}


async def _produce(ing: Ingestor, producers: int, each: int) -> None:
    async def one(p: int) -> None:
        for j in range(each):
            await ing.emit({"p": p, "j": j}, event_type=("item", "page")[j % 2])
            if j % 4 == 3:
                await anyio.sleep(0.001)  # a producer's pace: batches keep flowing

    async with anyio.create_task_group() as tg:
        for p in range(producers):
            tg.start_soon(one, p)


def _per_producer_order(recs: list[dict[str, Any]]) -> None:
    by: dict[int, list[int]] = {}
    for r in recs:
        by.setdefault(r["p"], []).append(r["j"])
    for js in by.values():
        assert js == sorted(js), "a producer's records were reordered"


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("policy", sorted(POLICIES))
async def test_invariant_under_faults(core_store: aiolode.Store, policy: str, fault: str) -> None:
    faulty = FaultInjectingStore(
        core_store, FAULTS[fault], seed=zlib.crc32(f"{policy}/{fault}".encode())
    )
    ds = aiolode.quarry_dataset("d", faulty, retry=FAST)
    drops: list[Drop] = []
    run = Run("r", source="s", category="c")
    async with Ingestor(ds, policy=POLICIES[policy], run=run, on_drop=drops.append) as ing:
        await _produce(ing, producers=6, each=40)
    st = ing.stats
    assert st.emitted == 240
    assert faulty.faults, "no fault was injected: the test proves nothing"
    recs = await written(aiolode.Dataset("d", core_store), "r")
    check_accounting(st, recs, drops)
    _per_producer_order(recs)
    if policy in ("strict", "block"):
        assert st.written == 240
        assert st.dropped == 0
    else:
        assert set(st.dropped_by_reason) <= {"buffer_full"}


async def test_unknown_commit_outcome_is_looked_up_not_guessed(
    memory: aiolode.MemoryStore,
) -> None:
    """The commit record lands but its reply is lost, and the store then refuses
    every read of it until the dataset gives up: ``write`` raises with an
    unknown outcome. The ingestor must find its batch by key instead of
    committing it twice (or dropping it)."""

    def refuse_until_released(call: Any) -> BaseException:
        return aiolode.TransientStorageError("unavailable", key=call.key)

    faulty = FaultInjectingStore(
        memory,
        [
            Rule(op="put", key="*/_log/0*", nth=1, action=LoseAck()),
            Rule(op="get", key="*/_log/0*", times=6, action=Fail(refuse_until_released)),
        ],
    )
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL(), retry=FAST)
    async with Ingestor(ds, policy=Strict(), run=Run("r")) as ing:
        assert await ing.emit({"i": 0}) == 1
        assert await ing.emit({"i": 1}) == 2
    st = ing.stats
    assert faulty.fired(faulty.rules[0]) == 1  # the commit landed, its reply was lost
    assert st.lookups >= 1
    recs = await written(aiolode.Dataset("d", memory), "r")
    assert [r["i"] for r in recs] == [0, 1]
    check_accounting(st, recs, [])
    snaps = [s async for s in aiolode.Dataset("d", memory).snapshots()]
    assert len(snaps) == 2


async def test_data_put_failures_are_retried_without_a_lookup(
    memory: aiolode.MemoryStore,
) -> None:
    faulty = FaultInjectingStore(memory, [Rule(op=PUTS, key="*/data/*", times=5, action=Fail())])
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL(), retry=FAST)
    async with Ingestor(ds, policy=Strict(), run=Run("r")) as ing:
        await ing.emit({"i": 0})
    assert ing.stats.retries >= 2
    # A failed data put happens before the commit point: nothing to look up.
    log_gets = [c for c in faulty.log if c.op == "get" and "/_log/0" in c.key]
    assert len(log_gets) <= 3, [c.key for c in log_gets]
    assert [r["i"] for r in await written(aiolode.Dataset("d", memory), "r")] == [0]


@pytest.mark.parametrize("policy", ["strict", "block"])
async def test_a_batch_the_codec_refuses_is_split_not_dropped(
    memory: aiolode.MemoryStore, policy: str
) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    pol = Strict(max_delay=0.05) if policy == "strict" else Buffered(flush_interval=0.05)
    # One column holding ints and strings: the batch is refused as a whole; split,
    # the ints are written (the first records the column as int64) and only the
    # strings, refused alone by the recorded schema, are counted (or raised).
    refused: list[object] = []

    async def emit(v: object) -> None:
        try:
            await ing.emit({"v": v})
        except aiolode.SchemaViolationError:
            refused.append(v)

    async with Ingestor(ds, policy=pol, run=Run("r")) as ing:
        # The int first (trio may start the tasks below in any order, and a
        # string batch written first would record the column as a string).
        await emit(1)
        async with anyio.create_task_group() as tg:
            for v in ("a", 2, "b", 3):
                tg.start_soon(emit, v)
    st = ing.stats
    assert (st.written, st.dropped_by_reason) == (3, {"invalid": 2})
    assert st.batches >= 2
    assert sorted(refused, key=str) == (["a", "b"] if policy == "strict" else [])
    assert sorted(r["v"] for r in await written(ds, "r")) == [1, 2, 3]


async def test_a_record_the_codec_refuses_alone_is_counted_or_raised(
    memory: aiolode.MemoryStore,
) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    drops: list[Drop] = []
    # 2**63 passes the emit-time JSON check (orjson writes 64-bit unsigned ints)
    # but the JSONL codec refuses it (int64 columns).
    async with Ingestor(
        ds, policy=Buffered(flush_interval=0.01), run=Run("b"), on_drop=drops.append
    ) as ing:
        for v in (1, 2**63, 2):
            await ing.emit({"v": v})
    st = ing.stats
    assert (st.written, st.dropped_by_reason) == (2, {"invalid": 1})
    check_accounting(st, await written(ds, "b"), drops)
    assert drops[0].seq == 2
    async with Ingestor(ds, policy=Strict(), run=Run("s")) as ing:
        with pytest.raises(aiolode.SchemaViolationError):
            await ing.emit({"v": 2**63})
        assert await ing.emit({"v": 3}) == 2
    assert ing.stats.dropped_by_reason == {"invalid": 1}
    check_accounting(ing.stats, await written(ds, "s"), [Drop({}, 1, "event", "invalid")])


async def test_a_permanent_error_fails_strict_emitters_and_counts_buffered_drops(
    memory: aiolode.MemoryStore,
) -> None:
    faulty = FaultInjectingStore(
        memory,
        [Rule(op=PUTS, key="*/data/*", times=1, action=Fail(aiolode.PermissionDeniedError))],
    )
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL())
    async with Ingestor(ds, policy=Strict(), run=Run("s")) as ing:
        with pytest.raises(aiolode.PermissionDeniedError):
            await ing.emit({"i": 0})
        await ing.emit({"i": 1})  # the next batch is not affected
    assert ing.stats.dropped_by_reason == {"write_failed": 1}
    faulty.add(Rule(op=PUTS, key="*/data/*", times=1, action=Fail(aiolode.PermissionDeniedError)))
    drops: list[Drop] = []
    async with Ingestor(
        ds, policy=Buffered(flush_rows=2), run=Run("b"), on_drop=drops.append
    ) as ing:
        for i in range(4):
            await ing.emit({"i": i})
    assert ing.stats.dropped_by_reason == {"write_failed": 2}
    check_accounting(ing.stats, await written(aiolode.Dataset("d", memory), "b"), drops)


@pytest.mark.parametrize("policy", sorted(POLICIES))
async def test_producers_cancelled_at_random(core_store: aiolode.Store, policy: str) -> None:
    faulty = FaultInjectingStore(core_store, [Rule(op="*", probability=0.3, action=Delay(0.003))])
    ds = aiolode.Dataset("d", faulty, codec=aiolode.JSONL(), retry=FAST)
    rng = random.Random(policy)
    drops: list[Drop] = []
    acked: list[int] = []
    async with Ingestor(ds, policy=POLICIES[policy], run=Run("r"), on_drop=drops.append) as ing:

        async def producer(p: int) -> None:
            with anyio.move_on_after(rng.uniform(0.005, 0.15)):
                for j in range(10_000):
                    seq = await ing.emit({"p": p, "j": j})
                    if seq is not None:
                        acked.append(seq)

        async with anyio.create_task_group() as tg:
            for p in range(8):
                tg.start_soon(producer, p)
    st = ing.stats
    recs = await written(aiolode.Dataset("d", core_store), "r")
    check_accounting(st, recs, drops)
    _per_producer_order(recs)
    assert st.emitted > 0
    if policy == "strict":
        # Every acknowledged emit is durable; a cancelled one's record is kept too.
        assert set(acked) <= {r["seq"] for r in recs}
        assert st.written == st.emitted


@pytest.mark.parametrize("how", ["clean", "error", "cancel"])
@pytest.mark.parametrize("policy", ["strict", "block", "drop_newest"])
async def test_leaving_the_block_flushes(core_store: aiolode.Store, how: str, policy: str) -> None:
    ds = aiolode.Dataset("d", core_store, codec=aiolode.JSONL())
    # Thresholds that a short block never reaches: only the exit flushes.
    pol: Strict | Buffered = Strict(max_delay=3600)
    if policy != "strict":
        pol = Buffered(flush_interval=3600, flush_rows=1000, on_full=POLICIES[policy].on_full)  # type: ignore[union-attr]
    drops: list[Drop] = []

    async def body(scope: anyio.CancelScope | None = None) -> None:
        async with Ingestor(ds, policy=pol, run=Run("r"), on_drop=drops.append) as ing:
            self_ing.append(ing)
            for i in range(20):
                if isinstance(pol, Strict):
                    await anyio.lowlevel.checkpoint()
                    ing_task.start_soon(ing.emit, {"i": i})
                else:
                    await ing.emit({"i": i})
            await anyio.sleep(0.01)
            assert ing.stats.written == 0  # held: only leaving the block flushes
            if how == "error":
                raise ValueError("boom")
            if scope is not None:
                scope.cancel()  # the block is cancelled with records held
                await anyio.sleep(10)

    self_ing: list[Ingestor] = []
    async with anyio.create_task_group() as ing_task:
        if how == "error":
            # The block's own error comes out unchanged: no exception group.
            with pytest.raises(ValueError, match="boom") as info:
                await body()
            assert type(info.value) is ValueError
        elif how == "cancel":
            with anyio.CancelScope() as scope:
                await body(scope)
            assert scope.cancelled_caught
        else:
            await body()
    st = self_ing[0].stats
    assert st.emitted == 20
    assert (st.written, st.dropped) == (20, 0)
    check_accounting(st, await written(ds, "r"), drops)
