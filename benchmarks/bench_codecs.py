"""Codec benchmarks: JSON Lines on orjson, Arrow-native inputs, loop stalls.

Run: ``.venv/bin/python benchmarks/bench_codecs.py [--quick]``. Prints a markdown
section; every figure sits next to its anchor measured in the same run.

1. JSONL encode and decode of a 1,000-row batch (the ingestion hot path):
   aiolode's codec (orjson, plus its one validating scan) vs the previous
   stdlib-``json`` codec (reproduced here) and vs bare ``orjson``/``json`` loops
   that do no checking at all (the floor).
2. Longest event-loop stall (a 1 ms ticker task) while a Dataset writes and
   reads back 200,000 JSONL rows (about 25 MiB), on asyncio and trio.
3. Arrow-native inputs: ``write(polars_df)``, ``write(RecordBatchReader)`` and
   ``stream_write_records(RecordBatchReader)`` vs ``write(pyarrow.Table)`` of the
   same 1 M rows (Parquet, 8 hive partitions, memory store), and vs the rows
   going through Python dicts (``to_pylist()``) as ``write`` needed before.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

import anyio
import anyio.to_thread
import orjson

import aiolode


def med(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Any, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return med(out)


def batch_rows(n: int = 1000) -> list[dict[str, Any]]:
    t = datetime(2024, 5, 1, tzinfo=UTC)
    return [
        {
            "id": i,
            "url": f"https://example.com/page/{i}",
            "status": 200,
            "bytes": 1234 + i,
            "elapsed": 0.125 * i,
            "ok": True,
            "at": t,
            "tags": ["a", "b"],
        }
        for i in range(n)
    ]


# The previous codec (stdlib json), as it was on main before orjson: encode with
# its nested-key check and its statistics pass; decode line by line.
def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_stdlib = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default
).encode


def _check_nested(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) is not str:
                raise ValueError(path)
            _check_nested(v, path)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_nested(v, path)


_NUM, _STR, _BOOL, _OTHER = 1, 2, 3, 4


def _old_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    cols: dict[str, list[Any]] = {}
    for rec in rows:
        for k, v in rec.items():
            if v is None:
                if k not in cols:
                    cols[k] = [0, None, None, 0]
                continue
            tv = type(v)
            if tv is str:
                kind = _STR
            elif tv is bool:
                kind = _BOOL
            elif tv is int or (tv is float and math.isfinite(v)):
                kind = _NUM
            elif isinstance(v, datetime | date | dtime):
                kind, v = _STR, v.isoformat()
            else:
                kind = _OTHER
            c = cols.get(k)
            if c is None:
                cols[k] = [kind, v, v, 1]
                continue
            c[3] += 1
            ck = c[0]
            if ck != kind:
                if ck == 0:
                    c[0], c[1], c[2] = kind, v, v
                    continue
                c[0] = _OTHER
            if c[0] == _OTHER:
                continue
            if v < c[1]:
                c[1] = v
            elif v > c[2]:
                c[2] = v
    return cols


def stdlib_encode(rows: list[dict[str, Any]], stats: bool = True) -> bytes:
    lines = []
    for rec in rows:
        for k, v in rec.items():
            if type(v) is dict or type(v) is list:
                _check_nested(v, k)
        lines.append(_stdlib(rec))
    if stats:
        _old_stats(rows)
    lines.append("")
    return "\n".join(lines).encode()


def stdlib_decode(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.split(b"\n") if line.strip()]


def bare_orjson(rows: list[dict[str, Any]]) -> bytes:
    return b"\n".join([orjson.dumps(r, default=_default) for r in rows]) + b"\n"


def jsonl_section(repeat: int) -> list[str]:
    codec = aiolode.JSONL()
    rows = batch_rows()
    data = codec.encode(rows).data
    assert data == stdlib_encode(rows), "orjson must write what the stdlib codec wrote"
    # Interleaved, so a machine shared with other work slows both sides alike.
    enc, enc_std, enc_floor, enc_ns, enc_std_ns, dec, dec_std, dec_floor = ([] for _ in range(8))
    nostats = aiolode.JSONL(stats=False)
    lines = data.splitlines()
    for _ in range(repeat):
        enc.append(timed(lambda: codec.encode(rows), 1))
        enc_std.append(timed(lambda: stdlib_encode(rows), 1))
        enc_floor.append(timed(lambda: bare_orjson(rows), 1))
        enc_ns.append(timed(lambda: nostats.encode(rows), 1))
        enc_std_ns.append(timed(lambda: stdlib_encode(rows, stats=False), 1))
        dec.append(timed(lambda: codec.decode(data), 1))
        dec_std.append(timed(lambda: stdlib_decode(data), 1))
        dec_floor.append(timed(lambda: [orjson.loads(line) for line in lines], 1))
    enc, enc_std, enc_floor, enc_ns, enc_std_ns, dec, dec_std, dec_floor = (
        med(x) for x in (enc, enc_std, enc_floor, enc_ns, enc_std_ns, dec, dec_std, dec_floor)
    )
    return [
        f"### JSON Lines, one 1,000-row batch (median of {repeat})",
        "",
        "| | aiolode (orjson) | stdlib-json codec | ratio | bare orjson (no checks) | aiolode / bare |",
        "|---|---|---|---|---|---|",
        f"| encode (stats on) | {enc * 1e3:.3f} ms | {enc_std * 1e3:.3f} ms | "
        f"{enc_std / enc:.2f}x faster | {enc_floor * 1e3:.3f} ms | {enc / enc_floor:.2f}x |",
        f"| encode (stats off) | {enc_ns * 1e3:.3f} ms | {enc_std_ns * 1e3:.3f} ms | "
        f"{enc_std_ns / enc_ns:.2f}x faster | {enc_floor * 1e3:.3f} ms | "
        f"{enc_ns / enc_floor:.2f}x |",
        f"| decode | {dec * 1e3:.3f} ms | {dec_std * 1e3:.3f} ms | {dec_std / dec:.2f}x faster | "
        f"{dec_floor * 1e3:.3f} ms | {dec / dec_floor:.2f}x |",
        "",
        "The stdlib column is the previous codec (json.JSONEncoder per record, its",
        "nested-key check and its statistics pass; json.loads per line). aiolode's scan",
        "also checks every value (64-bit ints, finite floats, one type per column) and",
        "infers the schema. bare orjson checks nothing: it is the floor.",
        "",
    ]


async def _anchors() -> tuple[float, float]:
    async def idle() -> None:
        await anyio.sleep(1.0)

    async def busy() -> None:
        await anyio.to_thread.run_sync(_busy, 1.0)

    return await _stall(idle), await _stall(busy)


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _stall(work: Any) -> float:
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await anyio.sleep(0.001)
            now = time.perf_counter()
            worst = max(worst, now - last - 0.001)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await work()
        done = True
    return worst


def stall_section(n: int) -> list[str]:
    rows = batch_rows(n)
    out = [
        f"### Event-loop stall, JSONL write + read of {n:,} rows",
        "",
        "| backend | write | read | iter_records | anchor: idle loop | anchor: pure-Python worker thread |",
        "|---|---|---|---|---|---|",
    ]
    for backend in ("asyncio", "trio"):

        async def main() -> tuple[float, float, float]:
            async with aiolode.MemoryStore() as store:
                ds = aiolode.Dataset("s", store, codec=aiolode.JSONL())
                snap: list[Any] = []

                async def write() -> None:
                    snap.append(await ds.write(rows))

                async def read() -> None:
                    assert len(await ds.read(snap[0])) == n

                async def iterate() -> None:
                    count = 0
                    async for _ in ds.iter_records(snap[0], batch_size=4096):
                        count += 1
                    assert count == n

                return await _stall(write), await _stall(read), await _stall(iterate)

        w, r, i = anyio.run(main, backend=backend)
        idle, busy = anyio.run(_anchors, backend=backend)
        out.append(
            f"| {backend} | {w * 1e3:.1f} ms | {r * 1e3:.1f} ms | {i * 1e3:.1f} ms "
            f"| {idle * 1e3:.1f} ms | {busy * 1e3:.1f} ms |"
        )
    out.append("")
    out.append(
        "Longest gap of a 1 ms ticker. The anchors are the same ticker over an idle loop and "
        "over a worker thread running pure Python (the GIL switch interval): on a loaded "
        "machine they bound what any codec can reach."
    )
    out.append("")
    return out


def arrow_section(n: int, repeat: int) -> list[str]:
    import polars as pl
    import pyarrow as pa

    days = 8
    table = pa.table(
        {
            "day": [f"2024-05-0{1 + i % days}" for i in range(n)],
            "id": pa.array(range(n), pa.int64()),
            "v": pa.array([i * 0.5 for i in range(n)], pa.float64()),
            "s": [f"row {i}" for i in range(n)],
        }
    )
    df = pl.from_arrow(table)

    def run(make: Any, stream: bool = False) -> float:
        async def main() -> float:
            async with aiolode.MemoryStore() as store:
                ds = aiolode.Dataset(
                    "a", store, codec=aiolode.Parquet(), layout=aiolode.HiveLayout("day")
                )
                data = make()
                t = time.perf_counter()
                snap = await ds.stream_write_records(data) if stream else await ds.write(data)
                elapsed = time.perf_counter() - t
                assert snap.row_count == n
                assert len(snap.files) == days
                return elapsed

        return med([anyio.run(main) for _ in range(repeat)])

    def reader() -> Any:
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(64 * 1024))

    base = run(lambda: table)
    cases = [
        ("write(pyarrow.Table)", base),
        ("write(polars.DataFrame)", run(lambda: df)),
        ("write(RecordBatchReader)", run(reader)),
        ("stream_write_records(RecordBatchReader)", run(reader, stream=True)),
        ("write(table.to_pylist()) - rows as Python dicts", run(table.to_pylist)),
    ]
    out = [
        f"### Arrow-native inputs: {n:,} rows, Parquet, {days} hive partitions, memory store "
        f"(median of {repeat})",
        "",
        "| input | time | vs write(pyarrow.Table) |",
        "|---|---|---|",
    ]
    out += [f"| {name} | {t:.3f} s | {t / base:.2f}x |" for name, t in cases]
    out.append("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeat = 5 if args.quick else 31
    lines = ["## Codecs", ""]
    lines += jsonl_section(repeat)
    lines += stall_section(50_000 if args.quick else 200_000)
    lines += arrow_section(200_000 if args.quick else 1_000_000, 3 if args.quick else 5)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
