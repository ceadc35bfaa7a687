"""Costs of ``Dataset.compact()`` found by ``benchmarks/bench_compact.py``
(pinned as strict xfails until fixed; now regression tests)."""

from __future__ import annotations

import anyio

import aiolode
from aiolode import Dataset
from aiolode.testing import Call, FaultInjectingStore, Hook, Rule

BIG = 1 << 30


async def test_compact_reads_its_input_files_concurrently() -> None:
    in_flight = 0
    most = 0

    async def track(call: Call) -> None:
        # Runs before each data-file get: overlapping sleeps mean overlapping gets.
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await anyio.sleep(0.01)
        finally:
            in_flight -= 1

    memory = aiolode.MemoryStore()
    ds = Dataset("ev", memory, codec=aiolode.Parquet(), layout=aiolode.HiveLayout("day"))
    for i in range(16):
        await ds.write([{"day": f"d{i % 2}", "i": i}])
    watched = FaultInjectingStore(memory, [Rule(op="get", key="*.parquet", action=Hook(track))])
    compactor = Dataset("ev", watched)
    report = await compactor.compact(target_file_size=BIG, min_files=2)
    assert report.rows == 16
    assert len(await compactor.files()) == 2
    assert most > 1, f"at most {most} input file read in flight at once"
