"""Hive-partitioned events as gzip JSON Lines: one file per partition, one snapshot.

Run: python examples/hive_events.py

Shows HiveLayout("day", "source"): records are split by partition values into
``data/day=.../source=.../`` (values percent-encoded, so "web/mobile" cannot add a
path segment), all files in one snapshot, and read_table over the result.
"""

from __future__ import annotations

import tempfile

import anyio

import aiolode


async def main(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset(
            "events",
            store,
            codec=aiolode.JSONL(),
            compressor=aiolode.Gzip(),
            checksum=aiolode.CRC32(),
            layout=aiolode.HiveLayout("day", "source"),
        )
        records = [
            {"day": f"2024-05-0{1 + i % 2}", "source": ["api", "web/mobile"][i % 3 % 2], "n": i}
            for i in range(12)
        ]
        snap = await ds.write(records, metadata={"ingest": "batch-1"})
        for f in snap.files:
            print(f"{f.key}  rows={f.row_count} partition={f.partition}")
        assert len(snap.files) == len({(r["day"], r["source"]) for r in records})
        assert all(f.key.endswith(".jsonl.gz") for f in snap.files)
        assert any("source=web%2Fmobile" in f.key for f in snap.files)
        back = await ds.read(snap.id)
        assert sorted(r["n"] for r in back) == list(range(12))
        table = await ds.read_table(snap.id)
        assert table.num_rows == 12
        print(f"{table.num_rows} rows in {len(snap.files)} partition files: ok")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, tmp)
