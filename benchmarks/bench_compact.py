"""Compaction benchmark: ``Dataset.compact()`` next to a raw pyarrow rewrite of the same files.

One dataset of many small appends (Parquet, zstd, ``HiveLayout("day")`` over 4
days; each append is ``--rows`` rows of one day: an int id, a timestamp, a
repeating user name, a float and a random hex string), built once per store
kind. Each round then rewrites the same input three ways, in rotating order:

- **aiolode**: ``await ds.compact()`` with its defaults (128 MiB target,
  ``min_files=4``) on a fresh ``Dataset`` object (a cold process: it reads the
  head and the newest checkpoint), over a ``CountingStore``;
- **raw, pyarrow.dataset**: per partition, ``pyarrow.dataset.dataset(paths)
  .to_table()`` over the same files (pyarrow's threaded reader) and one
  ``pyarrow.parquet.write_table`` (zstd) to the same kind of store (a local
  file, fsynced like FileStore's puts; or an object through the same S3
  endpoint with pyarrow's ``S3FileSystem``): the floor of any rewrite of these
  bytes, with no checks, statistics, checksums or commit;
- **raw, file by file**: the same, reading one file after another with
  ``pyarrow.parquet.read_table`` (the access pattern ``compact()`` has);
- **deltalake**: the same rows appended as the same number of small commits
  (``write_deltalake(mode="append", partition_by=["day"])``, zstd), then
  ``DeltaTable(uri).optimize.compact(target_size=128 MiB)`` timed (local
  directory only, see below).

On the local filesystem the dataset (and the Delta table) is built once and
copied for each round, so every round starts from the same files. Throughput
is the input's stored MiB per wall second (deltalake: its own input files'
bytes; the rows are the same). Ratios are aiolode's throughput over the
anchor's, per round, median over rounds (spread min-max).

Also printed: files before and after, the store calls of the compaction,
``to_arrow_dataset().to_table()`` time before and after it, and the peak RSS
growth during each rewrite (psutil, sampled every 5 ms, over the RSS just
before it) next to the biggest group's stored bytes and its Arrow size.

S3 runs against the moto server (a subprocess, serialising requests), one
round. deltalake is not run there: its appends to moto cost about as much as
the whole local run, and moto's serialising server measures itself more than
the writer.

Usage::

    .venv/bin/python benchmarks/bench_compact.py [--quick] [--stores file,s3]
        [--appends 2000] [--rows 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

import aiolode
from aiolode.testing import CountingStore

if TYPE_CHECKING:
    from collections.abc import Callable

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

MiB = 1 << 20
DAYS = ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")
TARGET = 128 * MiB
NAME = "ev"
WRITERS = 8  # concurrent appenders while building (group commit; not timed)


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = ".2f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def batch(i: int, rows: int) -> Any:
    """Append ``i``: ``rows`` rows of one day."""
    import pyarrow as pa

    start = i * rows
    ids = range(start, start + rows)
    return pa.table(
        {
            "day": pa.array([DAYS[i % len(DAYS)]] * rows, pa.string()),
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array([1_714_521_600_000_000 + k * 1_000 for k in ids], pa.timestamp("us")),
            "user": pa.array([f"user{k % 997}" for k in ids], pa.string()),
            "value": pa.array([(k * 2654435761 % 1_000_003) / 7.0 for k in ids], pa.float64()),
            "payload": pa.array([os.urandom(16).hex() for _ in ids], pa.string()),
        }
    )


# ------------------------------------------------------------------ peak RSS
class PeakRSS:
    """Samples this process's RSS every 5 ms; ``peak`` is the growth over the start."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.base = 0
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss - self.base)

    def __enter__(self) -> PeakRSS:
        self.base = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss - self.base)


# ------------------------------------------------------------------- building
def dataset(store: aiolode.Store) -> aiolode.Dataset:
    return aiolode.Dataset(
        NAME, store, codec=aiolode.Parquet(compression="zstd"), layout=aiolode.HiveLayout("day")
    )


async def build_aiolode(store: aiolode.Store, tables: list[Any]) -> None:
    """Every table as its own append (one small file each); WRITERS at a time."""
    ds = dataset(store)
    await ds.write(tables[0])  # records the configuration
    todo = iter(tables[1:])

    async def writer() -> None:
        for t in todo:
            await ds.write(t)

    async with anyio.create_task_group() as tg:
        for _ in range(WRITERS):
            tg.start_soon(writer)


def _delta_props() -> Any:
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD")


def build_delta(uri: str, tables: list[Any]) -> None:
    from deltalake import write_deltalake

    for t in tables:
        write_deltalake(
            uri, t, mode="append", partition_by=["day"], writer_properties=_delta_props()
        )


async def input_files(store: aiolode.Store) -> tuple[dict[str, list[str]], int, int]:
    """The live files per partition (keys, commit order), their bytes and rows."""
    files = await dataset(store).files()
    by_day: dict[str, list[str]] = {}
    for df in files:
        by_day.setdefault(df.file.partition["day"], []).append(df.file.key)
    size = sum(df.file.size for df in files)
    rows = sum(df.file.row_count or 0 for df in files)
    return by_day, size, rows


# ------------------------------------------------------------------ the rewrites
class Result:
    def __init__(self, seconds: float, bytes_in: int, rss: int, **extra: Any) -> None:
        self.seconds = seconds
        self.bytes_in = bytes_in
        self.rss = rss
        self.extra = extra

    @property
    def mibs(self) -> float:
        return self.bytes_in / MiB / self.seconds


async def read_all(store: aiolode.Store) -> tuple[float, int, int]:
    """``to_arrow_dataset().to_table()``: seconds, rows, sum of ids."""
    import pyarrow.compute as pc

    ds = dataset(store)
    t0 = time.perf_counter()
    adt = await ds.to_arrow_dataset()
    table = await anyio.to_thread.run_sync(adt.to_table)
    took = time.perf_counter() - t0
    return took, table.num_rows, pc.sum(table["id"]).as_py()


async def run_aiolode(store: aiolode.Store) -> Result:
    counting = CountingStore(store)
    ds = dataset(counting)
    with PeakRSS() as rss, counting.measure() as m:
        t0 = time.perf_counter()
        report = await ds.compact()
        took = time.perf_counter() - t0
    return Result(took, report.bytes_in, rss.peak, report=report, calls=m.counts)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_rewrite(
    fs: Any, paths: dict[str, list[str]], out: Callable[[str], str], threaded: bool, durable: bool
) -> tuple[int, int]:
    """Per partition: read its files, write one file. Returns (biggest Arrow bytes, rows)."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    biggest = rows = 0
    for day, files in paths.items():
        if threaded:
            table = pads.dataset(files, format="parquet", filesystem=fs).to_table()
        else:
            table = pa.concat_tables([pq.read_table(f, filesystem=fs) for f in files])
        target = out(day)
        pq.write_table(table, target, filesystem=fs, compression="zstd")
        if durable:
            _fsync(target)
            _fsync(os.path.dirname(target))
        biggest = max(biggest, table.nbytes)
        rows += table.num_rows
    return biggest, rows


async def run_raw(
    store: aiolode.Store, by_day: dict[str, list[str]], size: int, threaded: bool, tag: str
) -> Result:
    arrow = await store.arrow_filesystem()
    assert arrow is not None
    durable = isinstance(store, aiolode.FileStore)
    paths = {d: [arrow.path(k) for k in keys] for d, keys in by_day.items()}
    if durable:
        Path(arrow.path(f"raw-{tag}")).mkdir()

    def out(day: str) -> str:
        return arrow.path(f"raw-{tag}/{day}.parquet")

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        biggest, rows = await anyio.to_thread.run_sync(
            raw_rewrite, arrow.filesystem, paths, out, threaded, durable
        )
        took = time.perf_counter() - t0
    return Result(took, size, rss.peak, arrow_bytes=biggest, rows=rows)


def _removed_bytes(metrics: dict[str, Any]) -> int:
    """The input bytes in optimize's metrics (a JSON string or a mapping)."""
    import json

    removed = metrics["filesRemoved"]
    if isinstance(removed, str):
        removed = json.loads(removed)
    return int(removed["totalSize"])


def delta_compact(uri: str) -> Result:
    from deltalake import DeltaTable

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        metrics = DeltaTable(uri).optimize.compact(
            target_size=TARGET, writer_properties=_delta_props()
        )
        took = time.perf_counter() - t0
    return Result(
        took,
        _removed_bytes(metrics),
        rss.peak,
        added=metrics["numFilesAdded"],
        removed=metrics["numFilesRemoved"],
    )


# --------------------------------------------------------------------- rounds
def fmt_calls(counts: Any) -> str:
    return ", ".join(f"{op} {n}" for op, n in counts.nonzero().items())


async def round_file(
    tmp: Path, r: int, order: list[str], meta: dict[str, Any], results: dict[str, list[Result]]
) -> None:
    src = tmp / f"round{r}"
    await anyio.to_thread.run_sync(shutil.copytree, tmp / "template", src)
    async with aiolode.FileStore(src / "aiolode") as store:
        before = await read_all(store)
        for name in order:
            if name == "aiolode":
                res = await run_aiolode(store)
            elif name == "raw":
                res = await run_raw(store, meta["by_day"], meta["size"], True, f"t{r}")
            elif name == "raw1":
                res = await run_raw(store, meta["by_day"], meta["size"], False, f"s{r}")
            else:
                res = await anyio.to_thread.run_sync(delta_compact, str(src / "delta"))
            results.setdefault(name, []).append(res)
        after = await read_all(store)
        await check(store, before, after, results["aiolode"][-1], meta)
    results.setdefault("read_before", []).append(Result(before[0], 0, 0))
    results.setdefault("read_after", []).append(Result(after[0], 0, 0))
    await anyio.to_thread.run_sync(shutil.rmtree, src)


async def check(
    store: aiolode.Store,
    before: tuple[float, int, int],
    after: tuple[float, int, int],
    res: Result,
    meta: dict[str, Any],
) -> None:
    """The compaction kept every row and left one file per day."""
    assert before[1:] == after[1:] == (meta["rows"], meta["idsum"]), (before, after)
    report = res.extra["report"]
    assert report.rows == meta["rows"], report
    assert report.groups == len(DAYS), report
    files = await dataset(store).files()
    assert len(files) == len(DAYS), len(files)
    res.extra["files_after"] = len(files)


def biggest_group(meta: dict[str, Any]) -> int:
    return max(meta["day_bytes"].values())


async def bench_file(args: argparse.Namespace, tables: list[Any], out: list[str]) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "template" / "aiolode").mkdir(parents=True)
        t0 = time.perf_counter()
        async with aiolode.FileStore(tmp / "template" / "aiolode") as store:
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    anyio.to_thread.run_sync, build_delta, str(tmp / "template" / "delta"), tables
                )
                await build_aiolode(store, tables)
            meta = await describe(store)
        built = time.perf_counter() - t0
        results: dict[str, list[Result]] = {}
        names = ["aiolode", "raw", "raw1", "delta"]
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            await round_file(tmp, r, order, meta, results)
    report(out, "local filesystem (FileStore)", args, meta, results, built)


async def describe(store: aiolode.Store) -> dict[str, Any]:
    by_day, size, rows = await input_files(store)
    sizes = {df.file.key: df.file.size for df in await dataset(store).files()}
    _, _, idsum = await read_all(store)
    return {
        "by_day": by_day,
        "size": size,
        "rows": rows,
        "idsum": idsum,
        "files": sum(len(v) for v in by_day.values()),
        "day_bytes": {d: sum(sizes[k] for k in keys) for d, keys in by_day.items()},
    }


async def bench_s3(args: argparse.Namespace, tables: list[Any], out: list[str]) -> None:
    import boto3

    from aiolode.testing.moto_server import run_moto_server

    with run_moto_server() as url:
        admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        await anyio.to_thread.run_sync(lambda: admin.create_bucket(Bucket="bench-compact"))
        async with aiolode.S3Store(
            "bench-compact", "ev", endpoint_url=url, region_name="us-east-1"
        ) as store:
            t0 = time.perf_counter()
            await build_aiolode(store, tables)
            built = time.perf_counter() - t0
            meta = await describe(store)
            results: dict[str, list[Result]] = {}
            before = await read_all(store)
            for name in ("raw", "raw1", "aiolode"):
                if name == "aiolode":
                    res = await run_aiolode(store)
                else:
                    res = await run_raw(store, meta["by_day"], meta["size"], name == "raw", name)
                results.setdefault(name, []).append(res)
            after = await read_all(store)
            await check(store, before, after, results["aiolode"][-1], meta)
            results["read_before"] = [Result(before[0], 0, 0)]
            results["read_after"] = [Result(after[0], 0, 0)]
    report(out, "S3 (moto server, serialising)", args, meta, results, built)


# -------------------------------------------------------------------- report
def report(
    out: list[str],
    where: str,
    args: argparse.Namespace,
    meta: dict[str, Any],
    results: dict[str, list[Result]],
    built: float,
) -> None:
    ours = results["aiolode"]
    n = len(ours)
    lines = [
        f"### {where}\n",
        f"{meta['files']:,} input files ({args.appends:,} appends of {args.rows} rows, "
        f"{len(DAYS)} days), {meta['size'] / MiB:.1f} MiB stored, {meta['rows']:,} rows "
        f"(built in {built:.0f} s, not timed). {n} round(s); median (spread min-max).\n",
        "| rewrite | seconds | MiB/s | aiolode / this (throughput) | peak RSS growth (MiB) |",
        "|---|---|---|---|---|",
    ]
    labels = {
        "aiolode": "aiolode `ds.compact()`",
        "raw": "raw pyarrow.dataset read + write_table per day",
        "raw1": "raw file-by-file read_table + write_table per day",
        "delta": "deltalake `optimize.compact()`",
    }
    for name in ("aiolode", "raw", "raw1", "delta"):
        if name not in results:
            continue
        rs = results[name]
        secs = [x.seconds for x in rs]
        mibs = [x.mibs for x in rs]
        ratios = [a.mibs / x.mibs for a, x in zip(ours, rs, strict=True)]
        ratio = "1.00x" if name == "aiolode" else f"{med(ratios):.2f}x ({spread(ratios)})"
        rss = [x.rss / MiB for x in rs]
        lines.append(
            f"| {labels[name]} | {med(secs):.2f} ({spread(secs)}) "
            f"| {med(mibs):.1f} ({spread(mibs, '.1f')}) | {ratio} | {med(rss):.0f} "
            f"({spread(rss, '.0f')}) |"
        )
    last = ours[-1]
    rep = last.extra["report"]
    rb = [x.seconds for x in results["read_before"]]
    ra = [x.seconds for x in results["read_after"]]
    speed = [b / a for b, a in zip(rb, ra, strict=True)]
    arrow = max(x.extra["arrow_bytes"] for x in results["raw"])
    lines += [
        "",
        f"- Files: {meta['files']:,} before, {last.extra['files_after']} after "
        f"({rep.groups} groups; {rep.bytes_in / MiB:.1f} MiB in, {rep.bytes_out / MiB:.1f} MiB "
        "out).",
        f"- Store calls of the compaction: {last.extra['calls'].total_calls:,} "
        f"({fmt_calls(last.extra['calls'])}).",
        f"- `to_arrow_dataset().to_table()`: {med(rb):.2f} s before ({spread(rb)}), "
        f"{med(ra):.2f} s after ({spread(ra)}): {med(speed):.1f}x faster.",
        f"- Memory: the biggest group is {biggest_group(meta) / MiB:.1f} MiB stored, "
        f"{arrow / MiB:.1f} MiB as Arrow; the compaction's peak RSS growth "
        f"{med([x.rss / MiB for x in ours]):.0f} MiB (raw pyarrow.dataset rewrite: "
        f"{med([x.rss / MiB for x in results['raw']]):.0f} MiB).",
    ]
    if "delta" in results:
        d = results["delta"][-1]
        lines.append(
            f"- deltalake: {d.extra['removed']:,} files removed, {d.extra['added']} added, "
            f"{d.bytes_in / MiB:.1f} MiB in."
        )
    out.append("\n".join(lines) + "\n")
    print(out[-1], flush=True)


async def main_async(args: argparse.Namespace) -> None:
    tables = [batch(i, args.rows) for i in range(args.appends)]
    out: list[str] = []
    stores = args.stores.split(",")
    if "file" in stores:
        await bench_file(args, tables, out)
    if "s3" in stores:
        await bench_s3(args, tables, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--stores", default="file,s3", help="comma-separated: file, s3")
    parser.add_argument("--appends", type=int, default=None)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    if args.appends is None:
        args.appends = 80 if args.quick else 2000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    print("## Compaction\n", flush=True)
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
