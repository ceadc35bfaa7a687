"""A writer process that the crash harness kills with SIGKILL at a random instant.

``python -m harness._crash_writer <kind> <location> <epoch> <run> <seed> <backend>``

Three tasks write concurrently (group commits, streamed blobs, volume commits)
until killed. Before each operation a ``try`` line names its tag; after each
acknowledgement an ``ack`` line names the snapshot. Lines are flushed at once
so the parent knows every acknowledgement that preceded the kill.
"""

from __future__ import annotations

import random
import sys

import anyio

import aiolode

from ._common import CONFIGS, SLOT, block_bytes, chunks, make_dataset, payload, records
from ._proc import open_location

RAW = next(c for c in CONFIGS if c.name == "raw")
REC = next(c for c in CONFIGS if c.name == "jsonl-gzip-hive")
VOL_SLOTS = 512
_RETRY = aiolode.Retry(attempts=100, base_delay=0.001, max_delay=0.02)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(kind: str, location: str, epoch: int, run: int, seed: int) -> None:
    rng = random.Random(seed)
    async with open_location(kind, location) as store:
        raw = make_dataset(store, RAW, ds_id=f"craw{epoch}", retry=_RETRY)
        rec = make_dataset(store, REC, ds_id=f"crec{epoch}", retry=_RETRY)
        vol = aiolode.Volume(
            f"cvol{epoch}", store, VOL_SLOTS * SLOT, checksum=aiolode.SHA256(), retry=_RETRY
        )
        try:
            missing = (await vol.latest()).missing_ranges()
        except aiolode.NoSnapshotsError:
            missing = [(0, VOL_SLOTS * SLOT)]
        free = [s for off, ln in missing for s in range(off // SLOT, (off + ln) // SLOT)]
        rng.shuffle(free)
        say("ready")
        counter = 0

        async def worker(w: int) -> None:
            nonlocal counter
            while True:
                counter += 1
                tag = f"e{epoch}r{run}w{w}n{counter}"
                n = rng.randint(1, 3000)
                r = rng.random()
                if r < 0.35:
                    say(f"try craw {tag}")
                    meta = {"tag": tag, "n": n}
                    if rng.random() < 0.5:
                        async with raw.stream_write(meta) as bw:
                            async for c in chunks(payload(tag, n), 512):
                                await bw.write(c)
                        snap = bw.snapshot
                    else:
                        snap = await raw.write(payload(tag, n), meta)
                    say(f"ack craw {snap.id} {tag}")
                elif r < 0.7:
                    say(f"try crec {tag}")
                    snap = await rec.write(
                        records(tag, n // 30 + 1), {"tag": tag, "n": n // 30 + 1}
                    )
                    say(f"ack crec {snap.id} {tag}")
                elif free:
                    say(f"try vol {tag}")
                    group = [free.pop() for _ in range(min(len(free), rng.randint(1, 4)))]
                    refs = [
                        await vol.stage_write_at(s * SLOT, block_bytes(s * SLOT, SLOT))
                        for s in group
                    ]
                    vs = await vol.commit(refs, {"tag": tag})
                    say(f"ack vol {vs.id} " + ";".join(f"{b.offset},{b.length}" for b in refs))
                else:
                    await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            for w in range(3):
                tg.start_soon(worker, w)


if __name__ == "__main__":
    k, loc, ep, rn, sd, backend = sys.argv[1:7]
    anyio.run(main, k, loc, int(ep), int(rn), int(sd), backend=backend)
