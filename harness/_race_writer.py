"""One racing writer process: ``python -m harness._race_writer <kind> <location> <target> <writer> <count> <backend>``.

``target`` is ``ds`` (plain appends of self-describing blobs to dataset
``race``) or ``vol`` (one block per commit at this writer's own slots of
volume ``race``: disjoint from every other writer). Waits for a ``go`` line
on stdin so every process starts racing at once; prints one ``ack`` line per
commit.
"""

from __future__ import annotations

import sys

import anyio

import aiolode

from ._common import CONFIGS, SLOT, block_bytes, make_dataset, payload
from ._proc import open_location

RAW = next(c for c in CONFIGS if c.name == "raw")
# Generous: 8 writers on one chain lose most races; backoff spreads them out.
RETRY = aiolode.Retry(attempts=1000, base_delay=0.002, max_delay=0.05)


async def main(kind: str, location: str, target: str, writer: int, count: int, total: int) -> None:
    async with open_location(kind, location) as store:
        ds = make_dataset(store, RAW, ds_id="race", retry=RETRY)
        vol = aiolode.Volume("race", store, total * SLOT, checksum=aiolode.SHA256(), retry=RETRY)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        for i in range(count):
            tag = f"w{writer}i{i}"
            if target == "ds":
                snap = await ds.write(payload(tag, 100 + i), {"tag": tag, "n": 100 + i})
                print(f"ack {snap.id} {tag}", flush=True)
            else:
                off = (writer * count + i) * SLOT
                ref = await vol.stage_write_at(off, block_bytes(off, SLOT))
                vs = await vol.commit([ref], {"tag": tag})
                print(f"ack {vs.id} {off},{SLOT}", flush=True)


if __name__ == "__main__":
    k, loc, tgt, w, n, total, backend = sys.argv[1:8]
    anyio.run(main, k, loc, tgt, int(w), int(n), int(total), backend=backend)
