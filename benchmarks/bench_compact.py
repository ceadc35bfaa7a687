"""Compaction benchmark: ``Dataset.compact()`` next to a raw pyarrow rewrite of the same files.

One dataset of many small appends (Parquet, zstd, ``HiveLayout("day")`` over 4
days; each append is ``--rows`` rows of one day: an int id, a timestamp, a
repeating user name, a float and a random hex string, so one small file each).
It is built once in memory (8 concurrent appenders, group commit) and copied
with ``copy_dataset`` to the store under test, which keeps every snapshot and
file as appended. Each round then rewrites the same input in these ways, each
in its own fresh process (imports done and the store opened before the clock
starts), in rotating order:

- **aiolode**: ``await ds.compact()`` with its defaults (128 MiB target,
  ``min_files=4``) on a fresh ``Dataset`` (a cold process: it reads the head,
  the newest checkpoint and the records after it), over a ``CountingStore``;
- **raw, pyarrow.dataset**: per day, ``pyarrow.dataset.dataset(paths)
  .to_table()`` over the same files (pyarrow's threaded reader) and one
  ``pyarrow.parquet.write_table`` (zstd) to the same kind of store (a local
  file, fsynced like FileStore's puts; or an object through the same S3
  endpoint with pyarrow's ``S3FileSystem``): the floor of any rewrite of these
  bytes, with no checks, statistics, checksums or commit;
- **raw, file by file**: the same, reading one file after the other with
  ``pyarrow.parquet.read_table`` (the access pattern ``compact()`` has);
- **deltalake** (local directory): the same rows appended as the same number
  of small commits (``write_deltalake(mode="append", partition_by=["day"])``,
  zstd), then ``DeltaTable(uri).optimize.compact(target_size=128 MiB)``.

On the local filesystem the dataset and the Delta table are built once and
copied (``shutil.copytree``) for each round, so every round starts from the
same files. Throughput is the input's stored MiB per wall second (deltalake:
its own input files' bytes; the rows are the same). Ratios are aiolode's
throughput over the anchor's, per round, median over rounds (spread min-max).

Also printed: files before and after, the store calls of the compaction,
``to_arrow_dataset().to_table()`` time before and after it (in this process),
and each rewrite's peak RSS growth (the child's ``VmHWM``, reset after setup,
minus its RSS then) next to the biggest group's stored bytes and Arrow size.

S3 runs against the moto server (a subprocess that serialises requests) with
``--s3-appends`` appends (default 500: every request to moto costs ~1 ms of
its Python, so 2,000 files there would take several minutes per rewrite), one
round. deltalake is not run there: its 500 appends to moto alone take longer
than the local run, and moto measures itself more than the writer.

Usage::

    .venv/bin/python benchmarks/bench_compact.py [--quick] [--stores file,s3]
        [--appends 2000] [--s3-appends 500] [--rows 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import aiolode
from aiolode.testing import CountingStore

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

MiB = 1 << 20
DAYS = ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04")
TARGET = 128 * MiB
NAME = "ev"
BUCKET = "bench-compact"
WRITERS = 8  # concurrent appenders while building (not timed)
LABELS = {
    "aiolode": "aiolode `ds.compact()`",
    "raw": "raw pyarrow.dataset read + write_table per day",
    "raw1": "raw file-by-file read_table + write_table per day",
    "delta": "deltalake `optimize.compact()`",
}


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


def dataset(store: aiolode.Store) -> aiolode.Dataset:
    return aiolode.Dataset(
        NAME, store, codec=aiolode.Parquet(compression="zstd"), layout=aiolode.HiveLayout("day")
    )


def open_store(where: dict[str, str]) -> aiolode.Store:
    if "root" in where:
        return aiolode.FileStore(where["root"])
    return aiolode.S3Store(
        BUCKET, where["prefix"], endpoint_url=where["url"], region_name="us-east-1"
    )


# ------------------------------------------------------------------- building
async def build_memory(tables: list[Any]) -> aiolode.Dataset:
    """Every table as its own append (one small file each); WRITERS at a time."""
    ds = dataset(aiolode.MemoryStore())
    await ds.write(tables[0])  # records the configuration
    todo = iter(tables[1:])

    async def writer() -> None:
        for t in todo:
            await ds.write(t)

    async with anyio.create_task_group() as tg:
        for _ in range(WRITERS):
            tg.start_soon(writer)
    return ds


def _delta_props() -> Any:
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD")


def build_delta(uri: str, tables: list[Any]) -> int:
    """The same small files as a Delta table, ``WRITERS`` files per commit.

    The first table goes through ``write_deltalake``; the others are written by
    pyarrow (zstd, the day as the partition directory, as deltalake writes
    them) and committed with ``create_write_transaction``, ``WRITERS`` at a
    time: 2,000 one-file ``write_deltalake`` appends take about 5 minutes on a
    loaded 2-core machine (7 commits/s). Returns the number of commits.
    """
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake
    from deltalake.transaction import AddAction, RemoveAction

    write_deltalake(
        uri, tables[0], mode="append", partition_by=["day"], writer_properties=_delta_props()
    )
    commits = 1
    table = DeltaTable(uri)
    pending: list[AddAction | RemoveAction] = []
    for i, t in enumerate(tables[1:], 1):
        day = t["day"][0].as_py()
        rel = f"day={day}/part-{i:05d}.zstd.parquet"
        path = Path(uri) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t.drop_columns(["day"]), path, compression="zstd")
        st = path.stat()
        stats = json.dumps({"numRecords": t.num_rows})
        pending.append(
            AddAction(rel, st.st_size, {"day": day}, st.st_mtime_ns // 10**6, True, stats)
        )
        if len(pending) == WRITERS or i == len(tables) - 1:
            table.create_write_transaction(
                pending, mode="append", schema=table.schema(), partition_by=["day"]
            )
            commits += 1
            pending = []
    return commits


async def describe(store: aiolode.Store) -> dict[str, Any]:
    """The live files per day (keys in commit order), their bytes and rows."""
    files = await dataset(store).files()
    by_day: dict[str, list[str]] = {}
    day_bytes: dict[str, int] = {}
    for df in files:
        day = df.file.partition["day"]
        by_day.setdefault(day, []).append(df.file.key)
        day_bytes[day] = day_bytes.get(day, 0) + df.file.size
    _, rows, idsum = await read_all(store)
    commits = {s.id.split("-")[0] async for s in dataset(store).snapshots()}
    return {
        "commits": len(commits),
        "by_day": by_day,
        "size": sum(day_bytes.values()),
        "rows": rows,
        "idsum": idsum,
        "files": len(files),
        "day_bytes": day_bytes,
    }


async def read_all(store: aiolode.Store) -> tuple[float, int, int]:
    """``to_arrow_dataset().to_table()`` on a fresh Dataset: seconds, rows, sum of ids."""
    import pyarrow.compute as pc

    ds = dataset(store)
    t0 = time.perf_counter()
    adt = await ds.to_arrow_dataset()
    table = await anyio.to_thread.run_sync(adt.to_table)
    took = time.perf_counter() - t0
    return took, table.num_rows, pc.sum(table["id"]).as_py()


# -------------------------------------------------- the rewrites (child process)
def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> int:
    """Reset the kernel's high-water mark (VmHWM) to now; the RSS now."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _rss()


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_rewrite(
    fs: Any, paths: dict[str, list[str]], out: dict[str, str], threaded: bool, durable: bool
) -> tuple[int, int]:
    """Per day: read its files, write one file. Returns (biggest Arrow bytes, rows)."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    biggest = rows = 0
    for day, files in paths.items():
        if threaded:
            table = pads.dataset(files, format="parquet", filesystem=fs).to_table()
        else:
            table = pa.concat_tables([pq.read_table(f, filesystem=fs) for f in files])
        pq.write_table(table, out[day], filesystem=fs, compression="zstd")
        if durable:
            _fsync(out[day])
            _fsync(os.path.dirname(out[day]))
        biggest = max(biggest, table.nbytes)
        rows += table.num_rows
    return biggest, rows


async def child_aiolode(spec: dict[str, Any]) -> dict[str, Any]:
    async with open_store(spec["where"]) as store:
        counting = CountingStore(store)
        ds = dataset(counting)
        base = _reset_peak()
        with counting.measure() as m:
            t0 = time.perf_counter()
            report = await ds.compact()
            took = time.perf_counter() - t0
        peak = _peak()
    return {
        "seconds": took,
        "bytes_in": report.bytes_in,
        "rss": peak - base,
        "groups": report.groups,
        "rows": report.rows,
        "bytes_out": report.bytes_out,
        "written": len(report.written),
        "calls": m.counts.nonzero(),
    }


async def child_raw(spec: dict[str, Any]) -> dict[str, Any]:
    async with open_store(spec["where"]) as store:
        arrow = await store.arrow_filesystem()
        assert arrow is not None
        durable = "root" in spec["where"]
        tag = spec["tag"]
        paths = {d: [arrow.path(k) for k in keys] for d, keys in spec["by_day"].items()}
        out = {d: arrow.path(f"raw-{tag}/{d}.parquet") for d in paths}
        if durable:
            Path(arrow.path(f"raw-{tag}")).mkdir()
        base = _reset_peak()
        t0 = time.perf_counter()
        biggest, rows = await anyio.to_thread.run_sync(
            raw_rewrite, arrow.filesystem, paths, out, spec["threaded"], durable
        )
        took = time.perf_counter() - t0
        peak = _peak()
    assert rows == spec["rows"], (rows, spec["rows"])
    return {
        "seconds": took,
        "bytes_in": spec["size"],
        "rss": peak - base,
        "arrow_bytes": biggest,
    }


def child_delta(spec: dict[str, Any]) -> dict[str, Any]:
    import json as _json

    from deltalake import DeltaTable

    base = _reset_peak()
    t0 = time.perf_counter()
    metrics = DeltaTable(spec["uri"]).optimize.compact(
        target_size=TARGET, writer_properties=_delta_props()
    )
    took = time.perf_counter() - t0
    peak = _peak()
    removed = metrics["filesRemoved"]
    if isinstance(removed, str):
        removed = _json.loads(removed)
    return {
        "seconds": took,
        "bytes_in": int(removed["totalSize"]),
        "rss": peak - base,
        "added": metrics["numFilesAdded"],
        "removed": metrics["numFilesRemoved"],
    }


def child(spec_path: str) -> None:
    # Everything the rewrites import, before any clock starts.
    import deltalake  # noqa: F401
    import pyarrow.compute
    import pyarrow.dataset
    import pyarrow.parquet  # noqa: F401

    spec = json.loads(Path(spec_path).read_text())
    kind = spec["kind"]
    if kind == "aiolode":
        result = anyio.run(child_aiolode, spec)
    elif kind in ("raw", "raw1"):
        result = anyio.run(child_raw, spec)
    else:
        result = child_delta(spec)
    print(json.dumps(result))


async def run_child(tmp: Path, spec: dict[str, Any]) -> dict[str, Any]:
    path = tmp / f"spec-{spec['kind']}-{spec.get('tag', '')}.json"
    path.write_text(json.dumps(spec))
    proc = await anyio.run_process([sys.executable, __file__, "--child", str(path)], check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{spec['kind']} child failed ({proc.returncode}):\n{proc.stderr.decode()[-4000:]}"
        )
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------- rounds
async def one_rewrite(
    tmp: Path, name: str, where: dict[str, str], meta: dict[str, Any], tag: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": name, "where": where, "tag": tag}
    if name in ("raw", "raw1"):
        spec |= {
            "by_day": meta["by_day"],
            "size": meta["size"],
            "rows": meta["rows"],
            "threaded": name == "raw",
        }
    elif name == "delta":
        spec["uri"] = where["delta"]
    return await run_child(tmp, spec)


async def check(store: aiolode.Store, before: Any, after: Any, res: Any, meta: Any) -> None:
    """The compaction kept every row and left one file per day."""
    assert before[1:] == after[1:] == (meta["rows"], meta["idsum"]), (before, after)
    assert res["rows"] == meta["rows"], res
    assert res["groups"] == len(meta["by_day"]), res
    files = await dataset(store).files()
    assert len(files) == len(meta["by_day"]), len(files)
    res["files_after"] = len(files)


async def rounds(
    tmp: Path,
    where_of: Any,
    names: list[str],
    n: int,
    meta: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for r in range(n):
        where = await where_of(r)
        order = names[r % len(names) :] + names[: r % len(names)]
        async with open_store(where) as store:
            before = await read_all(store)
            for name in order:
                res = await one_rewrite(tmp, name, where, meta, f"{name}{r}")
                results.setdefault(name, []).append(res)
            after = await read_all(store)
            await check(store, before, after, results["aiolode"][-1], meta)
        results.setdefault("read", []).append({"before": before[0], "after": after[0]})
        if "root" in where:
            await anyio.to_thread.run_sync(shutil.rmtree, Path(where["root"]).parent)
    return results


async def bench_file(args: argparse.Namespace, tables: list[Any], out: list[str]) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmpdir:
        tmp = Path(tmpdir)
        template = tmp / "template"
        (template / "aiolode").mkdir(parents=True)
        t0 = time.perf_counter()
        delta_commits = 0

        async def delta() -> None:
            nonlocal delta_commits
            uri = str(template / "delta")
            delta_commits = await anyio.to_thread.run_sync(build_delta, uri, tables)

        async with anyio.create_task_group() as tg:
            tg.start_soon(delta)
            mem = await build_memory(tables)
            async with aiolode.FileStore(template / "aiolode") as fs:
                await aiolode.copy_dataset(mem, fs, concurrency=16)
                meta = await describe(fs)
        built = time.perf_counter() - t0
        meta["delta_commits"] = delta_commits

        async def where_of(r: int) -> dict[str, str]:
            dst = tmp / f"round{r}"
            await anyio.to_thread.run_sync(shutil.copytree, template, dst)
            return {"root": str(dst / "aiolode"), "delta": str(dst / "delta")}

        results = await rounds(
            tmp, where_of, ["aiolode", "raw", "raw1", "delta"], args.rounds, meta
        )
    report(out, "local filesystem (FileStore)", args.appends, args, meta, results, built)


async def bench_s3(args: argparse.Namespace, tables: list[Any], out: list[str]) -> None:
    import boto3

    from aiolode.testing.moto_server import run_moto_server

    tables = tables[: args.s3_appends]
    with run_moto_server() as url, tempfile.TemporaryDirectory() as tmpdir:
        admin = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        await anyio.to_thread.run_sync(lambda: admin.create_bucket(Bucket=BUCKET))
        t0 = time.perf_counter()
        mem = await build_memory(tables)
        where = {"url": url, "prefix": "ev"}
        async with open_store(where) as store:
            await aiolode.copy_dataset(mem, store, concurrency=16)
            meta = await describe(store)
        built = time.perf_counter() - t0

        async def where_of(r: int) -> dict[str, str]:
            assert r == 0  # the compaction is done after one round: no copies here
            return where

        results = await rounds(Path(tmpdir), where_of, ["raw", "raw1", "aiolode"], 1, meta)
    report(out, "S3 (moto server, serialising)", len(tables), args, meta, results, built)


# ------------------------------------------------------------- round trips
def _rewrite_bytes(datas: list[bytes]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(pa.BufferReader(d)) for d in datas])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


async def _get_all(store: aiolode.Store, keys: list[str], limiter: Any) -> list[bytes]:
    datas: list[bytes] = [b""] * len(keys)

    async def one(i: int, key: str) -> None:
        async with limiter:
            datas[i] = await store.get(key)

    async with anyio.create_task_group() as tg:
        for i, key in enumerate(keys):
            tg.start_soon(one, i, key)
    return datas


async def raw_round_trips(
    store: aiolode.Store, by_day: dict[str, list[str]], inflight: int
) -> None:
    """Per day: get its files (``inflight`` at a time), rewrite them as one, put it."""
    limiter = anyio.CapacityLimiter(inflight)
    for day, keys in by_day.items():
        datas = await _get_all(store, keys, limiter)
        body = await anyio.to_thread.run_sync(_rewrite_bytes, datas)
        await store.put(f"raw-{inflight}/{day}.parquet", body)


async def bench_latency(args: argparse.Namespace, tables: list[Any], out: list[str]) -> None:
    """compact() where every store call costs a round trip (LatencyStore over memory)."""
    from aiolode.testing import LatencyStore

    tables = tables[: args.latency_appends]
    mem = await build_memory(tables)
    store = LatencyStore(mem.store, args.latency_ms / 1000)
    meta = await describe(mem.store)
    counting = CountingStore(store)
    times: dict[str, float] = {}
    for name, inflight in (("raw8", 8), ("raw1", 1)):
        t0 = time.perf_counter()
        await raw_round_trips(store, meta["by_day"], inflight)
        times[name] = time.perf_counter() - t0
    with counting.measure() as m:
        t0 = time.perf_counter()
        report = await dataset(counting).compact()
        times["aiolode"] = time.perf_counter() - t0
    assert report.rows == meta["rows"], report
    calls = m.counts.total_calls
    lines = [
        f"### Round-trip bound: {args.latency_ms} ms per store call\n",
        f"LatencyStore over MemoryStore (an object store's first-byte latency, no bandwidth "
        f"limit): {meta['files']:,} files ({len(tables):,} appends of {args.rows} rows, "
        f"{meta['size'] / MiB:.1f} MiB), one run. Raw: per day, get the files with a bound "
        "on the gets in flight, decode, concatenate, encode (zstd), one put.\n",
        "| rewrite | seconds | MiB/s | aiolode / this (throughput) |",
        "|---|---|---|---|",
    ]
    rows = (
        ("aiolode", f"aiolode `ds.compact()` ({calls:,} store calls)"),
        ("raw8", "raw, 8 gets in flight"),
        ("raw1", "raw, one get at a time"),
    )
    for name, label in rows:
        secs = times[name]
        lines.append(
            f"| {label} | {secs:.2f} | {meta['size'] / MiB / secs:.1f} "
            f"| {times[name] / times['aiolode']:.2f}x |"
        )
    floor = calls * args.latency_ms / 1000
    lines.append(
        f"\nThe compaction's calls one after the other would take {floor:.1f} s "
        f"({calls:,} x {args.latency_ms} ms).\n"
    )
    out.append("\n".join(lines))
    print(out[-1], flush=True)


# -------------------------------------------------------------------- report
def report(
    out: list[str],
    where: str,
    appends: int,
    args: argparse.Namespace,
    meta: dict[str, Any],
    results: dict[str, list[dict[str, Any]]],
    built: float,
) -> None:
    def mibs(x: dict[str, Any]) -> float:
        return float(x["bytes_in"]) / MiB / float(x["seconds"])

    ours = results["aiolode"]
    lines = [
        f"### {where}\n",
        f"{meta['files']:,} input files ({appends:,} appends of {args.rows} rows over "
        f"{len(DAYS)} days, {meta['commits']:,} commits), {meta['size'] / MiB:.1f} MiB stored, "
        f"{meta['rows']:,} rows "
        f"(built in {built:.0f} s, not timed). {len(ours)} round(s); median (spread min-max).\n",
        "| rewrite | seconds | MiB/s | aiolode / this (throughput) | peak RSS growth (MiB) |",
        "|---|---|---|---|---|",
    ]
    for name, label in LABELS.items():
        if name not in results:
            continue
        rs = results[name]
        secs = [x["seconds"] for x in rs]
        speeds = [mibs(x) for x in rs]
        ratios = [mibs(a) / mibs(x) for a, x in zip(ours, rs, strict=True)]
        ratio = "1.00x" if name == "aiolode" else f"{med(ratios):.2f}x ({spread(ratios)})"
        rss = [x["rss"] / MiB for x in rs]
        lines.append(
            f"| {label} | {med(secs):.2f} ({spread(secs)}) "
            f"| {med(speeds):.1f} ({spread(speeds, '.1f')}) | {ratio} "
            f"| {med(rss):.0f} ({spread(rss, '.0f')}) |"
        )
    last = ours[-1]
    calls = last["calls"]
    rb = [x["before"] for x in results["read"]]
    ra = [x["after"] for x in results["read"]]
    speedup = [b / a for b, a in zip(rb, ra, strict=True)]
    arrow = max(x["arrow_bytes"] for x in results["raw"])
    lines += [
        "",
        f"- Files: {meta['files']:,} before, {last['files_after']} after ({last['groups']} "
        f"groups; {last['bytes_in'] / MiB:.1f} MiB in, {last['bytes_out'] / MiB:.1f} MiB out).",
        f"- Store calls of the compaction: {sum(calls.values()):,} ("
        + ", ".join(f"{op} {n:,}" for op, n in calls.items())
        + ").",
        f"- `to_arrow_dataset().to_table()` on a fresh Dataset: {med(rb):.2f} s before "
        f"({spread(rb)}), {med(ra):.2f} s after ({spread(ra)}): {med(speedup):.1f}x "
        f"({spread(speedup, '.1f')}).",
        f"- Memory: the biggest group is {max(meta['day_bytes'].values()) / MiB:.1f} MiB "
        f"stored, {arrow / MiB:.1f} MiB as Arrow.",
    ]
    if "delta" in results:
        d = results["delta"][-1]
        lines.append(
            f"- deltalake: the same {meta['files']:,} files in {meta['delta_commits']:,} "
            f"commits; {d['removed']:,} files removed, {d['added']} added, "
            f"{d['bytes_in'] / MiB:.1f} MiB in."
        )
    out.append("\n".join(lines) + "\n")
    print(out[-1], flush=True)


async def main_async(args: argparse.Namespace) -> None:
    most = max(args.appends, args.s3_appends, args.latency_appends)
    tables = [batch(i, args.rows) for i in range(most)]
    out: list[str] = []
    stores = args.stores.split(",")
    if "file" in stores:
        await bench_file(args, tables[: args.appends], out)
    if "s3" in stores:
        await bench_s3(args, tables, out)
    if "latency" in stores:
        await bench_latency(args, tables, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument(
        "--stores", default="file,s3,latency", help="comma-separated: file, s3, latency"
    )
    parser.add_argument("--appends", type=int, default=None)
    parser.add_argument("--s3-appends", type=int, default=None)
    parser.add_argument("--latency-appends", type=int, default=None)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.appends is None:
        args.appends = 40 if args.quick else 2000
    if args.s3_appends is None:
        args.s3_appends = 24 if args.quick else 500
    if args.latency_appends is None:
        args.latency_appends = 24 if args.quick else 400
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    print("## Compaction\n", flush=True)
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
