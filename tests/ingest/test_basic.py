"""The Ingestor on every store kind: lineage, order, batching, pruning, partitions."""

from __future__ import annotations

import logging
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest

import aiolode
from aiolode import Buffered, Ingestor, Run, Strict
from aiolode.ingest import Drop, run_progress
from aiolode.testing import CountingStore

from ._helpers import check_accounting, wait_until, written

RUN = Run("run-1", job_id="job-7", parent_run_id="run-0", attempt=2, source="shop", category="toys")
T0 = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)


async def test_strict_producers_share_commits_and_keep_seq_order(store: aiolode.Store) -> None:
    ds = aiolode.quarry_dataset("crawl", store)
    producers, each = 16, 12
    async with Ingestor(ds, policy=Strict(), run=RUN) as ing:

        async def produce(p: int) -> None:
            for j in range(each):
                seq = await ing.emit({"p": p, "j": j}, event_type="item", event_time=T0)
                assert isinstance(seq, int)

        async with anyio.create_task_group() as tg:
            for p in range(producers):
                tg.start_soon(produce, p)
    total = producers * each
    st = ing.stats
    assert (st.emitted, st.written, st.dropped) == (total, total, 0)
    # Group commit: producers waiting on one commit form the next batch.
    assert st.batches <= total // 4, st
    recs = await written(aiolode.Dataset("crawl", store), "run-1")
    check_accounting(st, recs, [])
    for r in recs:
        assert r["run_id"] == "run-1"
        assert (r["source"], r["category"], r["event_type"], r["day"]) == (
            "shop",
            "toys",
            "item",
            "2026-11-30",
        )
    # Each producer's records are in its emission order.
    for p in range(producers):
        assert [r["j"] for r in recs if r["p"] == p] == list(range(each))


async def test_strict_emit_is_durable_on_return(store: aiolode.Store) -> None:
    ds = aiolode.quarry_dataset("crawl", store)
    reader = aiolode.Dataset("crawl", store)  # another object: sees only what is committed
    async with Ingestor(ds, policy=Strict(), run=RUN) as ing:
        for i in range(3):
            seq = await ing.emit({"i": i}, event_type="item")
            assert seq is not None
            assert [r["seq"] for r in await written(reader, "run-1")] == list(range(1, seq + 1))


async def test_every_snapshot_carries_lineage_policy_and_batch(store: aiolode.Store) -> None:
    ds = aiolode.quarry_dataset("crawl", store)
    policy = Buffered(flush_rows=5, max_buffer_rows=50, flush_interval=30)
    async with Ingestor(ds, policy=policy, run=RUN) as ing:
        for i in range(12):
            await ing.emit({"i": i}, event_type="item", event_time=T0)
    snaps = [s async for s in aiolode.Dataset("crawl", store).snapshots()]
    assert len(snaps) == ing.stats.batches == 3
    firsts = []
    for s in snaps:
        meta = s.metadata["ingest"]
        assert meta["run"] == {
            "run_id": "run-1",
            "job_id": "job-7",
            "parent_run_id": "run-0",
            "attempt": 2,
            "source": "shop",
            "category": "toys",
        }
        assert meta["policy"] == {"name": "buffered", **policy.describe()}
        assert meta["rows"] == s.row_count
        assert meta["batch"] == f"run-1/2/{meta['seq_first']}-{meta['seq_last']}"
        assert meta["drops"]["total"] == 0
        firsts.append(meta["seq_first"])
    assert firsts == [1, 6, 11]
    assert dict(ing.stats.flushes) == {"rows": 2, "close": 1}


async def test_files_where_run_id_prunes_to_one_run(store: aiolode.Store) -> None:
    ds = aiolode.quarry_dataset("crawl", store)
    for rid in ("a", "b", "c"):
        async with Ingestor(ds, run=Run(rid, source="s", category="k")) as ing:
            for et in ("item", "error"):
                await ing.emit({"x": 1}, event_type=et, event_time=T0)
    counting = CountingStore(store, record=True)
    files = await aiolode.Dataset("crawl", counting).files(where={"run_id": "b"})
    assert sorted(f.partition["event_type"] for f in files) == ["error", "item"]
    assert {f.partition["run_id"] for f in files} == {"b"}
    # Only run b's partition manifests were read: the others were pruned.
    manifests = [k for op, k in counting.calls if op == "get" and "/_manifests/" in k]
    assert len(manifests) == 2
    assert all("run_id=b/" in k for k in manifests)


async def test_same_partitions_and_records_under_both_policies(store: aiolode.Store) -> None:
    events = [
        ({"n": i}, ("item", "error", "page")[i % 3], T0 + timedelta(hours=i % 2)) for i in range(60)
    ]
    results: dict[str, tuple[list[dict[str, Any]], list[dict[str, str]]]] = {}
    for name, policy in (
        ("strict", Strict(max_batch_rows=7)),
        ("buffered", Buffered(flush_rows=11, max_buffer_rows=20, flush_interval=0.01)),
    ):
        ds = aiolode.quarry_dataset(f"events-{name}", store)
        async with Ingestor(ds, policy=policy, run=RUN) as ing:
            for rec, et, when in events:
                await ing.emit(rec, event_type=et, event_time=when)
        assert ing.stats.dropped == 0
        parts = [dict(p) async for p in ds.partitions()]
        results[name] = (await written(ds, "run-1"), parts)
    (strict_recs, strict_parts), (buf_recs, buf_parts) = results["strict"], results["buffered"]
    assert strict_recs == buf_recs
    assert sorted(map(sorted, map(dict.items, strict_parts))) == sorted(
        map(sorted, map(dict.items, buf_parts))
    )
    assert {p["day"] for p in strict_parts} == {"2026-11-30", "2026-12-01"}
    assert {p["event_type"] for p in strict_parts} == {"item", "error", "page"}


async def test_buffered_cuts_batches_on_rows_bytes_and_interval(
    memory: aiolode.MemoryStore,
) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    policy = Buffered(flush_rows=10, flush_bytes=10_000, max_buffer_rows=1000, flush_interval=60)
    async with Ingestor(ds, policy=policy, run=Run("r")) as ing:
        for i in range(25):
            await ing.emit({"i": i})
        await wait_until(lambda: ing.stats.written == 20)
        assert dict(ing.stats.flushes) == {"rows": 2}
        big = "x" * 4000
        for i in range(3):
            await ing.emit({"big": big, "i": i})
        await wait_until(lambda: ing.stats.written > 20)
        assert ing.stats.flushes["bytes"] == 1
        await ing.flush()
        assert ing.stats.pending == 0
    fast = Buffered(flush_rows=1000, max_buffer_rows=1000, flush_interval=0.05)
    async with Ingestor(ds, policy=fast, run=Run("r2")) as ing:
        await ing.emit({"i": 0})
        await ing.emit({"i": 1})
        assert ing.stats.written == 0  # returned at once
        await wait_until(lambda: ing.stats.written == 2)
        assert dict(ing.stats.flushes) == {"interval": 1}


async def test_time_field_gives_the_utc_day(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.quarry_dataset("q", memory)
    async with Ingestor(ds, run=Run("r", source="s", category="c"), time_field="ts") as ing:
        await ing.emit({"ts": "2026-11-30T23:30:00-02:00"}, event_type="a")  # 01:30 UTC next day
        await ing.emit({"ts": datetime(2026, 5, 1, 1, tzinfo=timezone(timedelta(hours=3)))})
        await ing.emit({"ts": date(2026, 1, 2)})
        # An explicit event_time wins over the field.
        await ing.emit({"ts": "2026-01-01"}, event_time=date(2027, 3, 4))
        with pytest.raises(aiolode.InvalidInputError, match="time field"):
            await ing.emit({"other": 1})
        with pytest.raises(aiolode.InvalidInputError, match="timezone-aware"):
            await ing.emit({"ts": datetime(2026, 1, 1)})
    assert [r["day"] for r in await written(ds, "r")] == [
        "2026-12-01",
        "2026-04-30",
        "2026-01-02",
        "2027-03-04",
    ]
    assert ing.stats.emitted == 4  # refused emits are not emitted


async def test_emit_refuses_bad_records_before_emitting(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.quarry_dataset("q", memory)
    async with Ingestor(ds, run=Run("r", source="s", category="c")) as ing:
        bad: list[tuple[Any, dict[str, Any], type[Exception]]] = [
            (["not", "a", "mapping"], {}, aiolode.InvalidInputError),
            ({"seq": 3}, {}, aiolode.InvalidInputError),
            ({"run_id": "other"}, {}, aiolode.InvalidInputError),
            ({"source": "elsewhere"}, {}, aiolode.InvalidInputError),
            ({"event_type": "x"}, {"event_type": "y"}, aiolode.InvalidInputError),
            ({"a": 1}, {"event_type": ""}, aiolode.InvalidInputError),
            ({"a": 1}, {"event_type": 5}, aiolode.InvalidInputError),
            ({"a": 1}, {"event_time": "yesterday"}, aiolode.InvalidInputError),
            ({"a": object()}, {}, aiolode.SchemaViolationError),
            ({"a": b"bytes"}, {}, aiolode.SchemaViolationError),
            ({"a": [1.0, {"b": float("nan")}]}, {}, aiolode.SchemaViolationError),
            ({"a": float("-inf")}, {}, aiolode.SchemaViolationError),
            ({1: "non-str key"}, {}, aiolode.SchemaViolationError),
        ]
        for record, kw, exc in bad:
            with pytest.raises(exc):
                await ing.emit(record, **kw)
        # Fields the ingestor sets may be given with the same value.
        assert await ing.emit({"run_id": "r", "source": "s", "x": 1}, event_type="item") == 1
    assert ing.stats.emitted == ing.stats.written == 1


async def test_emit_needs_an_open_ingestor(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    ing = Ingestor(ds, run=Run("r"))
    with pytest.raises(aiolode.UnsupportedOperationError):
        await ing.emit({"a": 1})
    with pytest.raises(aiolode.UnsupportedOperationError):
        await ing.aclose()
    async with ing:
        await ing.emit({"a": 1})
        final = await ing.aclose()
        assert final.written == 1
        with pytest.raises(aiolode.UnsupportedOperationError):
            await ing.emit({"a": 2})
        assert (await ing.aclose()) == final  # idempotent
    with pytest.raises(aiolode.InvalidInputError, match="once"):
        async with ing:
            pass


async def test_raw_dataset_and_bad_arguments_are_refused(memory: aiolode.MemoryStore) -> None:
    raw = aiolode.Dataset("raw", memory)
    with pytest.raises(aiolode.InvalidInputError, match="raw"):
        async with Ingestor(raw):
            pass
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    bad_kwargs: tuple[dict[str, Any], ...] = (
        {"policy": "strict"},
        {"run": "r"},
        {"time_field": ""},
        {"resume": 1},
        {"artifacts": "x"},
        {"on_drop": 3},
        {"close_timeout": -1},
        {"max_artifact_uploads": 0},
    )
    for kw in bad_kwargs:
        with pytest.raises(aiolode.InvalidInputError):
            Ingestor(ds, **kw)
    with pytest.raises(aiolode.InvalidInputError):
        Ingestor("d")  # type: ignore[arg-type]


def test_policy_and_run_validation() -> None:
    strict_bad: tuple[dict[str, Any], ...] = (
        {"max_batch_rows": 0},
        {"max_batch_bytes": -1},
        {"max_delay": -0.1},
        {"max_batch_rows": True},
    )
    for kw in strict_bad:
        with pytest.raises(aiolode.InvalidInputError):
            Strict(**kw)
    buffered_bad: tuple[dict[str, Any], ...] = (
        {"on_full": "drop"},
        {"flush_rows": 11, "max_buffer_rows": 10},
        {"flush_bytes": 11, "max_buffer_bytes": 10},
        {"flush_interval": 0},
        {"max_buffer_rows": 0},
    )
    for kw in buffered_bad:
        with pytest.raises(aiolode.InvalidInputError):
            Buffered(**kw)
    run_bad: tuple[dict[str, Any], ...] = (
        {"run_id": ""},
        {"run_id": " x"},
        {"run_id": "a\nb"},
        {"run_id": "x" * 201},
    )
    for kw in run_bad:
        with pytest.raises(aiolode.InvalidInputError):
            Run(**kw)
    with pytest.raises(aiolode.InvalidInputError):
        Run("r", attempt=0)
    with pytest.raises(aiolode.InvalidInputError):
        Run("r", source="")
    r = Run.new(source="s")
    assert r.run_id != Run.new().run_id
    assert r.source == "s"
    assert r.next_attempt().attempt == 2
    assert r.next_attempt().run_id == r.run_id
    assert Strict().describe() == {
        "name": "strict",
        "max_batch_rows": 1000,
        "max_batch_bytes": 8 * 1024 * 1024,
        "max_delay": 0.0,
    }
    assert Buffered(on_full="drop_oldest").describe()["on_full"] == "drop_oldest"


class _Hostile:
    """An argument whose ``repr`` raises: an error message must not need it."""

    def __repr__(self) -> str:
        raise RuntimeError("hostile __repr__")


_HUGE = 10**400  # an int no float holds
_EAST = timezone(timedelta(hours=5))


async def test_hostile_arguments_are_refused_typed(memory: aiolode.MemoryStore) -> None:
    # Found by the hostile sweep (tests/harness/test_hostile_api.py): every
    # refusal of the ingestor, its policies and Run called repr() on the
    # argument (a hostile __repr__ replaced the InvalidInputError), an int too
    # large for a float escaped as OverflowError, and so did an event time out
    # of range once in UTC.
    ds = aiolode.quarry_dataset("q", memory)
    for kw in ("dataset", "policy", "run", "time_field", "resume", "artifacts", "on_drop"):
        args: dict[str, Any] = {"dataset": ds, kw: _Hostile()}
        with pytest.raises(aiolode.InvalidInputError, match=kw):
            Ingestor(**args)
    for make in (
        lambda: Ingestor(ds, close_timeout=_HUGE),
        lambda: Strict(max_delay=_HUGE),
        lambda: Buffered(flush_interval=_HUGE),
        lambda: Buffered(on_full=_Hostile()),  # type: ignore[arg-type]
        lambda: Buffered(on_full=["block"]),  # type: ignore[arg-type]
        lambda: Run(_Hostile()),  # type: ignore[arg-type]
        *(
            (lambda f=f: Run("r", **{f: _Hostile()}))
            for f in ("job_id", "parent_run_id", "source", "category")
        ),
        lambda: Run.new(category=[_Hostile()]),
        lambda: aiolode.IngestStats(dropped_by_reason=3),  # type: ignore[arg-type]
        lambda: aiolode.IngestStats(flushes=object()),  # type: ignore[arg-type]
        lambda: aiolode.quarry_dataset("q", memory, layout=aiolode.quarry_layout()),
    ):
        with pytest.raises(aiolode.InvalidInputError):
            make()
    run = Run("r", source="s", category="c")
    async with Ingestor(ds, run=run, time_field="ts") as ing:
        for when in (
            datetime(1, 1, 1, tzinfo=_EAST),  # before year 1 in UTC
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
            "0001-01-01T00:00:00+05:00",
        ):
            with pytest.raises(aiolode.InvalidInputError, match="between years 1 and 9999"):
                await ing.emit({"a": 1}, event_time=when)
            with pytest.raises(aiolode.InvalidInputError, match="between years 1 and 9999"):
                await ing.emit({"a": 1, "ts": when})
        with pytest.raises(aiolode.InvalidInputError, match="timezone-aware"):
            await ing.emit({"a": 1}, event_time=_Naive(2026, 1, 1, tzinfo=UTC))
        with pytest.raises(aiolode.InvalidInputError):
            await ing.aclose(deadline=_HUGE)
        with pytest.raises(aiolode.InvalidInputError):
            await run_progress(ds, _Hostile())  # type: ignore[arg-type]
    assert ing.stats.emitted == 0


class _Naive(datetime):
    """An aware-looking datetime whose tzinfo says it has no offset (naive, really)."""

    def utcoffset(self) -> None:
        return None


async def test_drops_are_counted_logged_rate_limited_and_reported_in_metadata(
    memory: aiolode.MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    drops: list[Drop] = []
    policy = Buffered(max_buffer_rows=10, flush_rows=10, flush_interval=60, on_full="drop_newest")
    caplog.set_level(logging.WARNING, logger="aiolode.ingest")
    async with Ingestor(ds, policy=policy, run=Run("r"), on_drop=drops.append) as ing:
        for i in range(10):
            await ing.emit({"i": i}, event_type="a")
        # Full: the writer has the batch but has not committed it yet (no
        # checkpoint between these emits and the writer's take would be needed
        # for that; the buffer counts records in flight too).
        got = [await ing.emit({"i": i}, event_type="b") for i in range(10, 15)]
        assert got.count(None) == ing.stats.dropped
    st = ing.stats
    assert st.dropped >= 1
    assert st.dropped_by_reason == {"buffer_full": st.dropped}
    assert st.dropped_by_event_type == {"b": {"buffer_full": st.dropped}}
    check_accounting(st, await written(ds, "r"), drops)
    assert all(d.reason == "buffer_full" and d.record["seq"] == d.seq for d in drops)
    lines = [r for r in caplog.records if r.name == "aiolode.ingest"]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
    assert "buffer_full" in lines[0].getMessage()
    # The newest snapshot (a batch, or the closing tally) reports every drop.
    newest = await aiolode.Dataset("d", memory).latest()
    assert newest.metadata["ingest"]["drops"] == {
        "total": st.dropped,
        "by_reason": {"buffer_full": st.dropped},
        "by_event_type": {"b": {"buffer_full": st.dropped}},
    }


async def test_run_progress_and_resume_continue_the_numbering(store: aiolode.Store) -> None:
    ds = aiolode.quarry_dataset("crawl", store)
    run = Run("resumable", source="s", category="c")
    assert await run_progress(ds, "resumable") == aiolode.ingest.RunProgress("resumable")
    async with Ingestor(ds, policy=Strict(), run=run) as ing:
        for i in range(5):
            await ing.emit({"i": i}, event_type="item")
    async with Ingestor(ds, policy=Strict(), run=Run("other", source="s", category="c")) as other:
        await other.emit({"i": 99}, event_type="item")
    async with Ingestor(ds, policy=Strict(), run=run.next_attempt(), resume=True) as ing2:
        assert ing2.progress is not None
        assert ing2.progress.last_seq == 5
        assert await ing2.emit({"i": 5}, event_type="item") == 6
    fresh = aiolode.Dataset("crawl", store)
    prog = await run_progress(fresh, "resumable")
    assert (prog.rows, prog.last_seq, prog.attempts, prog.snapshots) == (6, 6, (1, 2), 6)
    assert [r["i"] for r in await written(fresh, "resumable")] == list(range(6))


async def test_stats_before_open_and_repr(memory: aiolode.MemoryStore) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    ing = Ingestor(ds, run=Run("r"))
    assert ing.stats.emitted == 0
    assert ing.stats.balanced
    assert "Ingestor('d'" in repr(ing)
    assert ing.dataset is ds
    assert ing.run.run_id == "r"
    assert ing.policy == Strict()
    assert ing.progress is None


async def test_unpartitioned_dataset_uses_metadata_to_find_runs(
    memory: aiolode.MemoryStore,
) -> None:
    ds = aiolode.Dataset("d", memory, codec=aiolode.JSONL())
    async with Ingestor(ds, run=Run("a")) as ing:
        await ing.emit({"x": 1})
    await ds.write([{"x": -1}])  # not from an ingestor
    async with Ingestor(ds, run=Run("b")) as ing:
        await ing.emit({"x": 2})
    recs = await written(aiolode.Dataset("d", memory), "b")
    assert [(r["x"], r["seq"], r["event_type"]) for r in recs] == [(2, 1, "event")]
    assert "day" not in recs[0]  # only derived when the layout partitions by day
    async with aclosing(aiolode.ingest.run_records(ds, "missing")) as none:
        assert [r async for r in none] == []


async def test_buffered_json_lines_are_the_bytes_the_codec_writes(
    memory: aiolode.MemoryStore,
) -> None:
    """The buffer holds JSON Lines datasets' records as encoded lines: what is
    written must be byte for byte what writing the records themselves gives."""
    rows: list[dict[str, Any]] = [
        {
            "when": datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC),
            "naive": datetime(2026, 1, 1, 0, 0),
            "day_only": date(2026, 2, 3),
            "nested": {"t": (1, 2.5, None), "ok": True},
            "text": 'é\u2028"quoted"',
            "big": 2**62,
        },
        {"when": datetime(2026, 11, 29, tzinfo=UTC), "other": [1, 2]},
    ]
    opts = {"codec": aiolode.JSONL(), "timestamp_field": "when"}
    via = aiolode.Dataset("via", memory, **opts)  # type: ignore[arg-type]
    async with Ingestor(via, policy=Buffered(), run=Run("r")) as ing:
        for row in rows:
            await ing.emit(row, event_type="e")
    direct = aiolode.Dataset("direct", memory, **opts)  # type: ignore[arg-type]
    await direct.write(
        [{**row, "event_type": "e", "run_id": "r", "seq": i + 1} for i, row in enumerate(rows)]
    )
    a, b = await via.latest(), await direct.latest()
    [fa], [fb] = a.files, b.files
    assert await memory.get(fa.key) == await memory.get(fb.key)
    assert (a.manifest.min_timestamp, a.manifest.max_timestamp) == (
        b.manifest.min_timestamp,
        b.manifest.max_timestamp,
    )
    assert await via.read(a) == await direct.read(b)
