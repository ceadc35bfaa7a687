"""A writer process for the multi-process tests: ``python -m tests.dataset._writer_proc``.

Arguments: ``<kind> <location> <writer> <count> <mode>`` where kind is ``file``
or ``s3`` (location ``endpoint|bucket``) and mode is ``append`` (plain appends)
or ``own-partition`` (hive partition = writer, each write with
``expected_parent`` = the writer's previous snapshot: disjoint, never conflicts).
Prints one line per committed snapshot id.
"""

from __future__ import annotations

import sys

import anyio

import aiolode


async def main(kind: str, location: str, writer: str, count: int, mode: str) -> None:
    if kind == "file":
        store: aiolode.Store = aiolode.FileStore(location)
    else:
        endpoint, bucket = location.split("|")
        store = aiolode.S3Store(bucket, endpoint_url=endpoint, region_name="us-east-1")
    retry = aiolode.Retry(attempts=200, base_delay=0.002, max_delay=0.05)
    async with store:
        if mode == "append":
            ds = aiolode.Dataset("shared", store, retry=retry)
            for i in range(count):
                s = await ds.write(f"{writer}:{i}".encode(), {"writer": writer, "i": i})
                print(s.id, flush=True)
        else:
            ds = aiolode.Dataset(
                "parts", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("w"), retry=retry
            )
            parent = None
            for i in range(count):
                s = await ds.write(
                    [{"w": writer, "i": i}], {"writer": writer, "i": i}, expected_parent=parent
                )
                parent = s.id
                print(s.id, flush=True)


if __name__ == "__main__":
    k, loc, w, n, m = sys.argv[1:6]
    anyio.run(main, k, loc, w, int(n), m)
