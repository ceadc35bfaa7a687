"""Arrow-native inputs: a Polars DataFrame, a RecordBatchReader and batches vs a Table.

Run: ``.venv/bin/python benchmarks/bench_arrow_inputs.py [--quick]``. Prints a
markdown section; every figure sits next to its anchor measured in the same run.

The same 1,000,000 rows (an int, a float, a short string, a timestamp) are
written as one snapshot of a Parquet dataset on a FileStore, given as:

- a ``pyarrow.Table`` (the anchor),
- a Polars ``DataFrame`` (through ``__arrow_c_stream__``),
- a ``pyarrow.RecordBatchReader`` over 64 Ki-row batches (a stream: never a
  whole table in memory on the caller's side),
- a ``list`` of those ``RecordBatch`` es,
- ``stream_write_records`` of the reader (the bounded-memory path),

and a raw floor: ``pyarrow.parquet.write_table`` of the table to a local file.
Medians of 3 runs, spread; ratios are time / the Table's time (lower is better).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pyarrow as pa
import pyarrow.parquet as pq

import aiolode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def _table(n: int) -> Any:
    import datetime as dt

    base = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "value": pa.array([i * 0.5 for i in range(n)], pa.float64()),
            "site": pa.array([f"site-{i % 97}" for i in range(n)], pa.string()),
            "ts": pa.array(
                [base + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us", "UTC")
            ),
        }
    )


async def _median(fn: Callable[[int], Awaitable[None]], runs: int) -> tuple[float, list[float]]:
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        await fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


async def main_async(quick: bool) -> None:
    import polars as pl

    n = 100_000 if quick else 1_000_000
    runs = 1 if quick else 3
    table = _table(n)
    frame = pl.from_arrow(table)
    batches = table.to_batches(max_chunksize=65_536)
    rows: dict[str, tuple[float, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "store").mkdir()
        async with aiolode.FileStore(Path(tmp) / "store") as store:

            def dataset(name: str) -> aiolode.Dataset:
                return aiolode.Dataset(name, store, codec=aiolode.Parquet())

            async def check(ds: aiolode.Dataset, snap: aiolode.Snapshot) -> None:
                assert snap.row_count == n, (ds.id, snap.row_count)

            async def run_table(i: int) -> None:
                ds = dataset(f"table{i}")
                await check(ds, await ds.write(table))

            async def run_polars(i: int) -> None:
                ds = dataset(f"polars{i}")
                await check(ds, await ds.write(frame))

            async def run_reader(i: int) -> None:
                ds = dataset(f"reader{i}")
                reader = pa.RecordBatchReader.from_batches(table.schema, iter(batches))
                await check(ds, await ds.write(reader))

            async def run_batches(i: int) -> None:
                ds = dataset(f"batches{i}")
                await check(ds, await ds.write(list(batches)))

            async def run_stream(i: int) -> None:
                ds = dataset(f"stream{i}")
                reader = pa.RecordBatchReader.from_batches(table.schema, iter(batches))
                await check(ds, await ds.stream_write_records(reader))

            async def run_raw(i: int) -> None:
                path = Path(tmp) / f"raw{i}.parquet"
                await anyio.to_thread.run_sync(pq.write_table, table, path)

            await dataset("warm-up").write(table.slice(0, 1000))  # imports, pools
            for name, fn in (
                ("pyarrow.Table (anchor)", run_table),
                ("polars.DataFrame", run_polars),
                ("pyarrow.RecordBatchReader", run_reader),
                ("list[RecordBatch]", run_batches),
                ("stream_write_records(reader)", run_stream),
                ("raw floor: pq.write_table to a file", run_raw),
            ):
                rows[name] = await _median(fn, runs)
    anchor = rows["pyarrow.Table (anchor)"][0]
    print("## Arrow-native inputs\n")
    print(
        f"{n:,} rows (int64, float64, string, timestamp) as one snapshot of a Parquet "
        f"dataset on a FileStore; median of {runs} (spread). Ratio: time / the Table's.\n"
    )
    print("| input | seconds | rows/s | ratio to Table |")
    print("|---|---|---|---|")
    for name, (med, times) in rows.items():
        print(
            f"| {name} | {med:.2f} ({min(times):.2f}-{max(times):.2f}) | "
            f"{n / med:,.0f} | {med / anchor:.2f}x |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, one run")
    args = parser.parse_args()
    anyio.run(main_async, args.quick)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
