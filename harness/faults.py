"""Randomised fault schedules over Dataset writes (every codec) and Volume commits.

Each schedule is a seed. From it: a Dataset configuration (or a Volume), one
to three fault rules for a :class:`~aiolode.testing.FaultInjectingStore`
(fail before the call, lose the acknowledgement, truncate or corrupt a read;
by operation, key pattern and call number or probability), and a short
workload (sequential and concurrent writes, streamed writes, staging and
commits from two Volume objects). After the workload, the invariants of
:mod:`harness._common` are checked on the raw store, and every exception that
reached the caller must be an :class:`aiolode.AiolodeError`.

    python -m harness.faults --schedules 10000 [--seed 0] [--backend asyncio]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any

import anyio

import aiolode
from aiolode.testing import Corrupt, Fail, FaultInjectingStore, LoseAck, Rule, Truncate

from ._common import (
    CONFIGS,
    SLOT,
    block_bytes,
    check_dataset,
    check_volume,
    chunks,
    make_dataset,
    payload,
    records,
)

_RETRY = aiolode.Retry(attempts=4, base_delay=0.0002, max_delay=0.001)
_WRITE_OPS = ("put", "put_stream", "delete")
_READ_OPS = ("get", "head", "iter_bytes", "list")
_DS_KEYS = ("*", "*/_log/0*", "*/_log/_latest*", "*/data/*")
_VOL_KEYS = ("*", "*/_log/*", "*/_latest", "*/index/*", "*/blocks/*")
_VOL_TOTAL = 32 * SLOT


def random_rules(
    rng: random.Random, keys: tuple[str, ...], *, read_faults: bool = True
) -> list[Rule]:
    """One to three rules: where (op, key glob), when (nth or probability), what.

    ``read_faults=False`` leaves out truncated and corrupted reads.
    """
    rules: list[Rule] = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        if not read_faults:
            kind *= 0.8
        key = rng.choice(keys)
        when: dict[str, Any]
        if rng.random() < 0.7:
            when = {"nth": sorted({rng.randint(1, 6) for _ in range(rng.randint(1, 3))})}
        else:
            when = {"probability": rng.uniform(0.05, 0.4), "times": rng.randint(1, 6)}
        if kind < 0.4:
            rules.append(
                Rule(op=rng.choice(_WRITE_OPS + _READ_OPS), key=key, action=Fail(), **when)
            )
        elif kind < 0.8:
            rules.append(Rule(op=rng.choice(_WRITE_OPS), key=key, action=LoseAck(), **when))
        elif kind < 0.9:
            rules.append(
                Rule(op=rng.choice(("get", "iter_bytes")), key=key, action=Truncate(), **when)
            )
        else:
            rules.append(
                Rule(op=rng.choice(("get", "iter_bytes")), key=key, action=Corrupt(), **when)
            )
    return rules


class Outcome:
    """What one schedule saw: violations and error types that reached the caller."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.errors: dict[str, int] = {}
        self.acked = 0
        self.injected = 0

    def caught(self, exc: BaseException) -> None:
        if isinstance(exc, aiolode.AiolodeError):
            name = type(exc).__name__
            self.errors[name] = self.errors.get(name, 0) + 1
        else:
            self.violations.append(f"untyped error reached the caller: {exc!r}")


async def dataset_schedule(seed: int, *, read_faults: bool = True) -> Outcome:
    """Run one fault schedule over a Dataset; return what happened."""
    rng = random.Random(seed)
    cfg = CONFIGS[seed % len(CONFIGS)]
    out = Outcome()
    raw = aiolode.MemoryStore()
    store = FaultInjectingStore(
        raw, random_rules(rng, _DS_KEYS, read_faults=read_faults), seed=seed
    )
    acked: dict[str, str] = {}
    attempted: set[str] = set()

    async def one(op: int) -> None:
        # A fresh Dataset object now and then: cold starts read the hint and probe.
        ds = make_dataset(store, cfg, retry=_RETRY) if rng.random() < 0.3 else shared
        tag = f"s{seed}-{op}"
        n = rng.randint(1, 40)
        attempted.add(tag)
        meta = {"tag": tag, "n": n}
        try:
            if cfg.raw and rng.random() < 0.3:
                async with ds.stream_write(meta) as w:
                    async for c in chunks(payload(tag, n), 5):
                        await w.write(c)
                snap = w.snapshot
            elif cfg.raw:
                snap = await ds.write(payload(tag, n), meta)
            elif cfg.codec == "jsonl" and rng.random() < 0.3:
                snap = await ds.stream_write_records(records(tag, n), meta, batch_size=7)
            else:
                snap = await ds.write(records(tag, n), meta)
        except Exception as exc:
            out.caught(exc)
            return
        acked[snap.id] = tag
        out.acked += 1

    shared = make_dataset(store, cfg, retry=_RETRY)
    op = 0
    for _ in range(rng.randint(2, 4)):
        width = 1 if rng.random() < 0.5 else rng.randint(2, 3)
        async with anyio.create_task_group() as tg:
            for _ in range(width):
                tg.start_soon(one, op)
                op += 1
    out.injected = sum(1 for c in store.log if c.injected)
    out.violations += await check_dataset(raw, cfg, acked=acked, attempted=attempted)
    return out


async def volume_schedule(seed: int, *, read_faults: bool = True) -> Outcome:
    """Run one fault schedule over a Volume (two objects committing); return what happened."""
    rng = random.Random(seed)
    out = Outcome()
    raw = aiolode.MemoryStore()
    store = FaultInjectingStore(
        raw, random_rules(rng, _VOL_KEYS, read_faults=read_faults), seed=seed
    )
    checksum = seed % 3 != 0
    vols = [
        aiolode.Volume(
            "hv", store, _VOL_TOTAL, checksum=aiolode.SHA256() if checksum else None, retry=_RETRY
        )
        for _ in range(2)
    ]
    slots = list(range(_VOL_TOTAL // SLOT))
    rng.shuffle(slots)
    acked: list[tuple[str, list[tuple[int, int]]]] = []

    async def committer(vol: aiolode.Volume, mine: list[int]) -> None:
        while mine:
            group = [mine.pop() for _ in range(min(len(mine), rng.randint(1, 3)))]
            refs = []
            try:
                for s in group:
                    # Runs of 1-2 slots; the second slot is only used if also ours.
                    off = s * SLOT
                    data = block_bytes(off, SLOT)
                    if rng.random() < 0.3:
                        refs.append(await vol.stage_write_at(off, chunks(data, 13)))
                    else:
                        refs.append(await vol.stage_write_at(off, data))
                snap = await vol.commit(refs, {"n": len(refs)})
            except Exception as exc:
                out.caught(exc)
                continue
            acked.append((snap.id, [(r.offset, r.length) for r in refs]))
            out.acked += 1

    n = rng.randint(2, 8)
    picked = slots[:n]
    async with anyio.create_task_group() as tg:
        tg.start_soon(committer, vols[0], picked[: n // 2])
        tg.start_soon(committer, vols[1], picked[n // 2 :])
    out.injected = sum(1 for c in store.log if c.injected)
    out.violations += await check_volume(raw, total=_VOL_TOTAL, acked=acked, checksum=checksum)
    return out


async def run(
    schedules: int, seed: int, *, progress: bool = False, read_faults: bool = True
) -> dict[str, Any]:
    """Run ``schedules`` schedules (alternating Dataset and Volume) from ``seed``."""
    started = time.perf_counter()
    failures: list[tuple[int, str, list[str]]] = []
    errors: dict[str, int] = {}
    acked = injected = 0
    for i in range(schedules):
        s = seed + i
        kind = "volume" if s % 4 == 3 else "dataset"
        fn = volume_schedule if kind == "volume" else dataset_schedule
        try:
            out = await fn(s, read_faults=read_faults)
        except Exception as exc:  # the harness itself must survive anything
            failures.append((s, kind, [f"schedule crashed: {exc!r}"]))
            continue
        acked += out.acked
        injected += out.injected
        for k, v in out.errors.items():
            errors[k] = errors.get(k, 0) + v
        if out.violations:
            failures.append((s, kind, out.violations))
        if progress and (i + 1) % 500 == 0:
            print(f"  {i + 1} schedules, {len(failures)} failing", file=sys.stderr, flush=True)
    return {
        "schedules": schedules,
        "failures": failures,
        "acked_commits": acked,
        "faults_injected": injected,
        "typed_errors": dict(sorted(errors.items())),
        "seconds": time.perf_counter() - started,
    }


async def _main_run(schedules: int, seed: int, read_faults: bool) -> dict[str, Any]:
    return await run(schedules, seed, progress=True, read_faults=read_faults)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    parser.add_argument(
        "--no-read-faults",
        action="store_true",
        help="leave out truncated and corrupted reads (fail-before and lost-ack faults only)",
    )
    args = parser.parse_args()
    res = anyio.run(
        _main_run, args.schedules, args.seed, not args.no_read_faults, backend=args.backend
    )
    kinds = "all faults" if not args.no_read_faults else "no read faults"
    print(f"fault schedules: {res['schedules']} ({args.backend}, {kinds}, seeds {args.seed}..)")
    print(
        f"acknowledged commits: {res['acked_commits']}, faults injected: {res['faults_injected']}"
    )
    print(f"typed errors that reached callers: {res['typed_errors']}")
    print(f"failing schedules: {len(res['failures'])}")
    for s, kind, v in res["failures"][:20]:
        print(f"  seed {s} ({kind}): {v[:3]}")
    print(f"wall time: {res['seconds']:.1f} s")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
