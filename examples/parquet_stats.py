"""Parquet with per-file column statistics, streamed by row groups.

Run: python examples/parquet_stats.py

Shows: writing a pyarrow Table, the min/max/null statistics recorded in the
manifest, a records stream encoded row group by row group, and reading back
through iter_records (bounded memory) and read_table.
"""

from __future__ import annotations

import tempfile

import anyio
import pyarrow as pa

import aiolode


async def rows(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield {"sensor": f"s{i % 4}", "value": float(i), "ok": i % 10 != 0}


async def main(root: str) -> None:
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset(
            "metrics",
            store,
            codec=aiolode.Parquet(compression="zstd", row_group_size=1000),
            checksum=aiolode.SHA256(),
            # The stream below adds a column `ok`; without this the recorded
            # schema (sensor, value) refuses it with SchemaViolationError.
            schema_mode="add_columns",
        )
        table = pa.table({"sensor": ["a", "b", None, "d"], "value": [1.5, -2.0, 3.25, 0.0]})
        snap = await ds.write(table, metadata={"unit": "celsius"})
        stats = snap.files[0].stats
        print({k: (v.min, v.max, v.null_count) for k, v in stats.items()})
        assert (stats["value"].min, stats["value"].max) == (-2.0, 3.25)
        assert stats["sensor"].null_count == 1
        assert (await ds.read_table(snap.id)).equals(table)

        streamed = await ds.stream_write_records(rows(10_000))
        assert streamed.row_count == 10_000
        assert streamed.files[0].stats["value"].max == 9999.0
        print("schema now:", [f.name for f in (await ds.schema()).fields])
        total = 0.0
        async for rec in ds.iter_records(streamed.id):
            total += rec["value"]
        assert total == sum(range(10_000))
        print(f"{streamed.row_count} streamed rows, sum={total}: ok")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, tmp)
