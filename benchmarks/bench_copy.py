"""Copy benchmark: copy_dataset / copy_volume throughput next to a raw copy of the same bytes.

For each store pair (memory -> memory: CPU cost; file -> file; file -> S3 on a
SeaweedFS server, a real S3 implementation) and each workload, one round runs
three copies of the same history into fresh destinations, in rotating order:

- **raw objects**: the data objects (files, blocks) copied store to store by
  hand with the same concurrency (8): ``dst.put(key, await src.get(key))``, or
  a streamed ``dst.put(key, src.iter_bytes(key))`` above 8 MiB; no verification,
  no records, no manifests: the floor of any copy of these bytes;
- **raw ordered**: every object of the history copied the same way, then its log
  records one by one, in order (a record may only appear once its predecessor
  does): the floor of a copy that keeps the destination's history valid;
- **aiolode**: ``copy_dataset`` / ``copy_volume`` into a fresh destination:
  records, partition manifests / index documents, the descriptor, every object
  verified against its recorded size and digest, records in order (overlapped
  with the next window's objects).

Workloads: many small files (one 64 KiB raw file per snapshot: one record per
64 KiB), large files (16 MiB raw files, streamed store to store), and a volume
of 256 KiB blocks committed 16 at a time. Throughput is data MiB (the files or
blocks) per second; ratios are aiolode / anchor in the same round, medians over
the rounds (spread min-max).

Usage::

    .venv/bin/python benchmarks/bench_copy.py [--quick] [--backend trio] [--stores memory,file,seaweed]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack, aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import aiolode

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Local test servers (SeaweedFS) accept any credentials; botocore needs some.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

MiB = 1 << 20
CONCURRENCY = 8
LARGE = 8 * MiB  # aiolode streams objects above this size; so does the raw copy


@contextlib.contextmanager
def seaweed() -> Iterator[str]:
    from aiolode.testing.seaweed_server import run_seaweed_server

    with run_seaweed_server(bucket="bench-copy") as endpoint:
        yield endpoint


class Place:
    """Makes fresh stores of one kind (each round copies into an empty one)."""

    def __init__(self, name: str, kind: str, tmp: Path, endpoint: str | None) -> None:
        self.name = name
        self.kind = kind
        self.tmp = tmp
        self.endpoint = endpoint
        self.n = 0

    def make(self) -> aiolode.Store:
        self.n += 1
        if self.kind == "memory":
            return aiolode.MemoryStore()
        if self.kind == "file":
            root = self.tmp / f"{self.name}-{self.n}"
            root.mkdir()
            return aiolode.FileStore(root)
        assert self.endpoint is not None
        return aiolode.S3Store(
            "bench-copy",
            f"{self.name}{self.n}",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
        )


async def raw_copy(src: aiolode.Store, dst: aiolode.Store, keys: list[tuple[str, int]]) -> None:
    """The data objects, concurrently: the floor of any copy of these bytes."""
    lim = anyio.CapacityLimiter(CONCURRENCY)

    async def one(key: str, size: int) -> None:
        async with lim:
            if size > LARGE:
                async with aclosing(src.iter_bytes(key)) as body:
                    await dst.put(key, body)
            else:
                await dst.put(key, await src.get(key))

    async with anyio.create_task_group() as tg:
        for key, size in keys:
            tg.start_soon(one, key, size)


async def raw_ordered(
    src: aiolode.Store, dst: aiolode.Store, others: list[tuple[str, int]], records: list[str]
) -> None:
    """Everything the history holds, with the order a history needs and nothing
    else: every other object concurrently, then the log records one by one (a
    record may only appear once its predecessor exists). No verification."""
    await raw_copy(src, dst, others)
    for key in records:
        await dst.put(key, await src.get(key))


# ------------------------------------------------------------------- workloads
async def build_small(store: aiolode.Store, n: int) -> Any:
    ds = aiolode.Dataset("small", store)
    for i in range(n):
        await ds.write(i.to_bytes(4, "big") * (16 * 1024))  # 64 KiB
    return ds


async def build_large(store: aiolode.Store, n: int) -> Any:
    ds = aiolode.Dataset("large", store)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    for i in range(n):
        async with ds.stream_write({"i": i}) as w:
            for _ in range(16):
                await w.write(chunk)
    return ds


async def build_volume(store: aiolode.Store, n: int) -> Any:
    size = 256 * 1024
    vol = aiolode.Volume("vol", store, n * size, checksum=aiolode.XXH3())
    for start in range(0, n, 16):
        refs = [
            await vol.stage_write_at(i * size, i.to_bytes(4, "big") * (size // 4))
            for i in range(start, min(n, start + 16))
        ]
        await vol.commit(refs)
    return vol


def root_of(history: Any) -> str:
    if isinstance(history, aiolode.Dataset):
        return history.layout.root(history.id)
    return f"volumes/{history.id}/"


async def split_keys(history: Any) -> tuple[list[tuple[str, int]], list[str]]:
    """Every object of the history but the log records, and the records in order."""
    others: list[tuple[str, int]] = []
    records: list[str] = []
    async for o in history.store.list(root_of(history)):
        parent, name = o.key.rsplit("/", 2)[-2:]
        if parent == "_log" and name[:-5].isdigit():
            records.append(o.key)
        elif not name.startswith("_latest"):
            others.append((o.key, o.size))
    return others, sorted(records)


async def data_keys(history: Any) -> list[tuple[str, int]]:
    if isinstance(history, aiolode.Dataset):
        return [(f.key, f.size) async for s in history.snapshots() for f in s.files]
    keys = []
    async for o in history.store.list(f"volumes/{history.id}/blocks/"):
        keys.append((o.key, o.size))
    return keys


async def copy(history: Any, dst: aiolode.Store) -> aiolode.CopyReport:
    if isinstance(history, aiolode.Dataset):
        return await aiolode.copy_dataset(history, dst, concurrency=CONCURRENCY)
    return await aiolode.copy_volume(history, dst, concurrency=CONCURRENCY)


async def measure(
    label: str,
    src_place: Place,
    dst_place: Place,
    build: Callable[[aiolode.Store, int], Any],
    n: int,
    rounds: int,
    out: list[str],
) -> tuple[float, float]:
    async with AsyncExitStack() as stack:
        src = await stack.enter_async_context(src_place.make())
        history = await build(src, n)
        keys = await data_keys(history)
        others, records = await split_keys(history)
        mib = sum(s for _, s in keys) / MiB
        rates: dict[str, list[float]] = {"raw": [], "ordered": [], "aiolode": []}
        vs_raw: list[float] = []
        vs_ordered: list[float] = []
        order = ["raw", "ordered", "aiolode"]
        for r in range(rounds):
            times: dict[str, float] = {}
            for which in order[r % 3 :] + order[: r % 3]:
                async with dst_place.make() as dst:
                    t0 = time.perf_counter()
                    if which == "raw":
                        await raw_copy(src, dst, keys)
                    elif which == "ordered":
                        await raw_ordered(src, dst, others, records)
                    else:
                        report = await copy(history, dst)
                        assert report.records == len(records)
                    times[which] = time.perf_counter() - t0
            for which, t in times.items():
                rates[which].append(mib / t)
            vs_raw.append(times["raw"] / times["aiolode"])
            vs_ordered.append(times["ordered"] / times["aiolode"])

        def fmt(values: list[float], digits: str = ".0f") -> str:
            med = statistics.median(values)
            return f"{med:{digits}} ({min(values):{digits}}-{max(values):{digits}})"

        out.append(
            f"| {label} | {src_place.kind} -> {dst_place.kind} | {len(keys)} x "
            f"{mib / len(keys):.3g} MiB, {len(records)} records | {fmt(rates['raw'])} | "
            f"{fmt(rates['ordered'])} | {fmt(rates['aiolode'])} | {fmt(vs_raw, '.2f')} | "
            f"{fmt(vs_ordered, '.2f')} |"
        )
        print(out[-1], flush=True, file=sys.stderr)
        return statistics.median(vs_raw), statistics.median(vs_ordered)


async def main_async(args: argparse.Namespace) -> None:
    kinds = args.stores.split(",")
    rounds = 3 if args.quick else 5
    n_small, n_large, n_blocks = (32, 2, 64) if args.quick else (256, 8, 512)
    out = [
        f"Backend: {args.backend}. Concurrency {CONCURRENCY} (both). Median over {rounds} "
        "rounds (spread min-max); ratio = aiolode / raw throughput in the same round.",
        "",
        "| workload | stores | data | raw objects (MiB/s) | raw ordered (MiB/s) | aiolode (MiB/s) "
        "| x raw objects | x raw ordered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary: list[str] = []
    with contextlib.ExitStack() as servers, tempfile.TemporaryDirectory() as tmp:
        endpoint = servers.enter_context(seaweed()) if "seaweed" in kinds else None
        pairs = []
        if "memory" in kinds:
            pairs.append(("memory", "memory"))
        if "file" in kinds:
            pairs.append(("file", "file"))
        if "seaweed" in kinds:
            pairs.append(("file", "seaweed"))
        for i, (src_kind, dst_kind) in enumerate(pairs):
            src_place = Place(f"p{i}-src", src_kind, Path(tmp), endpoint)
            dst_place = Place(f"p{i}-dst", dst_kind, Path(tmp), endpoint)
            for label, build, n in (
                ("dataset, small files", build_small, n_small),
                ("dataset, large files (streamed)", build_large, n_large),
                ("volume, 256 KiB blocks", build_volume, n_blocks),
            ):
                a, b = await measure(label, src_place, dst_place, build, n, rounds, out)
                summary.append(
                    f"- {label}, {src_kind} -> {dst_kind}: {a:.2f}x raw objects, "
                    f"{b:.2f}x raw ordered"
                )
    print("\n".join(out))
    print(
        "\nSummary (aiolode copy throughput / raw store-to-store copy of the same data "
        "objects; / the same history copied raw in the order it needs):\n"
    )
    print("\n".join(summary))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    ap.add_argument("--stores", default="memory,file,seaweed")
    args = ap.parse_args()
    anyio.run(main_async, args, backend=args.backend)


if __name__ == "__main__":
    main()
