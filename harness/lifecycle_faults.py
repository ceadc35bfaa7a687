"""Randomised fault schedules over expiry, gc and drop (in-process, asyncio or trio).

Each schedule is a seed. From it: a target (a raw dataset, a hive-partitioned
gzip JSONL dataset, or a volume) with a few acknowledged snapshots; one or two
:class:`~aiolode.testing.FaultInjectingStore` rules on the maintainer's store
(fail before the call, lose the acknowledgement of a put or delete, or crash
the "process" before or after a call: nothing reaches the store afterwards);
the maintenance (an expiry with a random criterion, ``gc`` with no grace,
sometimes ``drop``) through that store while an appender commits through a
clean one. Then the oracle of :mod:`harness._lifecycle_check` on the store
itself, the maintenance rerun on a clean store (gc again; a started drop
finished and the name written again), and the oracle again. Every exception
that reached the maintainer or the appender must be an
:class:`aiolode.AiolodeError` (or the simulated crash).

    python -m harness.lifecycle_faults --schedules 2000 [--seed 0] [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import anyio

import aiolode
from aiolode.testing import Crash, Fail, FaultInjectingStore, LoseAck, Rule, SimulatedCrash

from ._common import SLOT, block_bytes, make_dataset, payload, records
from ._lifecycle_check import check_and_resume
from ._lifecycle_worker import DATASETS, volume
from ._proc import open_location

NOW = timedelta(0)
_RETRY = aiolode.Retry(attempts=3, base_delay=0.0002, max_delay=0.001)
_OPS = ("put", "delete", "get", "head", "list")
_KEYS = ("*", "*/_log/*", "*/data/*", "*/blocks/*", "*/index/*", "*/_checkpoints/*", "*/_lwm.json")
_SLOTS = 64


def random_rules(rng: random.Random) -> list[Rule]:
    """One or two rules on the maintainer's store: where, when, what."""
    rules: list[Rule] = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.random()
        op = rng.choice(_OPS)
        if kind < 0.3:
            action: Any = Crash(when=rng.choice(("before", "after")))
        elif kind < 0.65 and op in ("put", "delete"):
            action = LoseAck()
        else:
            action = Fail()
        when: dict[str, Any]
        if rng.random() < 0.7 or isinstance(action, Crash):
            when = {"nth": rng.randint(1, 12)}
        else:
            when = {"probability": rng.uniform(0.05, 0.4), "times": rng.randint(1, 4)}
        rules.append(Rule(op=op, key=rng.choice(_KEYS), action=action, **when))
    return rules


class Outcome:
    """What one schedule saw."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.errors: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def caught(self, exc: BaseException, where: str) -> None:
        if isinstance(exc, aiolode.AiolodeError):
            self.errors[type(exc).__name__] += 1
        else:
            self.violations.append(f"untyped error reached the {where}: {exc!r}")


def _target(ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "acked": {},
        "attempted": [],
        "refused": [],
        "expired": [],
        "may": [],
        "deleted": [],
        "read_failures": [],
        "drop": False,
    }


async def dataset_schedule(
    store: aiolode.Store, seed: int, *, prefix: str = "f", open_bugs: bool = True
) -> Outcome:
    """One fault schedule over a dataset on ``store``.

    ``open_bugs=False`` keeps clear of the two open library bugs this harness
    found (tests/harness/test_lifecycle_proof.py pins them): appends do not
    overlap ``gc`` (a write whose files were stored before the fence is still
    acknowledged), and ``snapshots=`` expiry is not used on the partitioned
    dataset (gc then breaks it).
    """
    rng = random.Random(seed)
    name = ("raw", "rec")[seed % 2]
    cfg = DATASETS[name]
    out = Outcome()
    t = _target(f"{prefix}{seed}{name}")
    created: dict[str, Any] = {}
    clean = make_dataset(store, cfg, ds_id=t["id"])
    gc_lock = anyio.Lock()

    async def append(i: int) -> None:
        tag = f"s{seed}i{i}"
        n = rng.randint(1, 900) if cfg.raw else rng.randint(1, 20)
        t["attempted"].append(tag)
        try:
            async with gc_lock:
                snap = await clean.write(
                    payload(tag, n) if cfg.raw else records(tag, n), {"tag": tag, "n": n}
                )
        except aiolode.StaleWriteError:
            t["refused"].append(tag)
            return
        except aiolode.DatasetNotFoundError:
            return  # dropped meanwhile: refused, never resurrected
        except Exception as exc:
            out.caught(exc, "appender")
            return
        t["acked"][snap.id] = tag
        created[snap.id] = snap.created_at

    for i in range(rng.randint(3, 6)):
        await append(i)
    faulty = FaultInjectingStore(store, random_rules(rng), seed=seed)
    ds = make_dataset(faulty, cfg, ds_id=t["id"], retry=_RETRY)
    criteria: list[dict[str, Any]] = []

    async def maintain() -> None:
        ops = ["expire", "gc"] + (["drop"] if rng.random() < 0.3 else [])
        for op in ops:
            try:
                if op == "expire":
                    pick = rng.random()
                    ids = sorted(t["acked"])
                    if pick < 0.4:
                        kw: dict[str, Any] = {"keep_last": rng.randint(1, 3)}
                    elif pick < 0.7 and (not cfg.hive or open_bugs):
                        kw = {"snapshots": rng.sample(ids[:-1], min(len(ids) - 1, 2))}
                    else:
                        kw = {"older_than": NOW}
                    criteria.append(kw)
                    report = await ds.expire(**kw)
                    t["expired"] += list(report.expired)
                elif op == "gc":
                    if open_bugs:
                        await ds.gc(grace=NOW)
                    else:
                        async with gc_lock:
                            await ds.gc(grace=NOW)
                else:
                    t["drop"] = True
                    await ds.drop(grace=NOW)
            except SimulatedCrash:
                out.counts["crashed"] += 1
                return  # the process is dead: nothing more from it
            except Exception as exc:
                out.caught(exc, "maintainer")

    async def appender() -> None:
        for i in range(10, 10 + rng.randint(0, 3)):
            await append(i)
            await anyio.sleep(rng.uniform(0, 0.002))

    async with anyio.create_task_group() as tg:
        tg.start_soon(maintain)
        tg.start_soon(appender)
    # What an expiry may have expired, from its criterion (its report may be lost).
    ids = sorted(t["acked"])
    for kw in criteria:
        if "snapshots" in kw:
            t["may"] += kw["snapshots"]
        elif "keep_last" in kw:
            t["may"] += ids[: -kw["keep_last"]]
        else:
            t["may"] += ids[:-1]
    out.counts["faults"] += len(faulty.faults)
    out.counts["acked"] += len(t["acked"])
    t["deleted"] = [c.key for c in faulty.log if c.op == "delete" and not c.refused]
    out.counts["deletes"] += len(t["deleted"])
    bad, counts = await check_and_resume(store, {"datasets": {name: t}, "resume": True})
    out.violations += [f"seed {seed} ({name}): {b}" for b in bad]
    out.counts.update(counts)
    return out


async def volume_schedule(
    store: aiolode.Store, seed: int, *, prefix: str = "f", open_bugs: bool = True
) -> Outcome:
    """One fault schedule over a volume on ``store``."""
    rng = random.Random(seed)
    out = Outcome()
    vol: dict[str, Any] = {**_target(f"{prefix}{seed}vol"), "acked": [], "slots": _SLOTS}
    clean = volume(store, vol["id"], _SLOTS)
    free = list(range(_SLOTS))
    rng.shuffle(free)

    async def commit() -> None:
        group = [free.pop() for _ in range(rng.randint(1, 2))]
        try:
            refs = [
                await clean.stage_write_at(s * SLOT, block_bytes(s * SLOT, SLOT)) for s in group
            ]
            snap = await clean.commit(refs)
        except (aiolode.StaleWriteError, aiolode.VolumeNotFoundError):
            return
        except Exception as exc:
            out.caught(exc, "appender")
            return
        vol["acked"].append([snap.id, [[r.offset, r.length] for r in refs]])

    for _ in range(rng.randint(3, 6)):
        await commit()
    faulty = FaultInjectingStore(store, random_rules(rng), seed=seed)
    v = aiolode.Volume(vol["id"], faulty, _SLOTS * SLOT, checksum=aiolode.SHA256(), retry=_RETRY)
    # Staged, never committed: something for gc to collect.
    await clean.stage_write_at(free.pop() * SLOT, b"x" * SLOT)
    criteria: list[dict[str, Any]] = []

    async def maintain() -> None:
        ops = ["expire", "gc"] + (["drop"] if rng.random() < 0.3 else [])
        for op in ops:
            try:
                if op == "expire":
                    kw: dict[str, Any] = (
                        {"keep_last": rng.randint(1, 3)}
                        if rng.random() < 0.6
                        else {"older_than": NOW}
                    )
                    criteria.append(kw)
                    report = await v.expire(**kw)
                    vol["expired"] += list(report.expired)
                elif op == "gc":
                    await v.gc(grace=NOW)
                else:
                    vol["drop"] = True
                    await v.drop(grace=NOW)
            except SimulatedCrash:
                out.counts["crashed"] += 1
                return
            except Exception as exc:
                out.caught(exc, "maintainer")

    async def appender() -> None:
        for _ in range(rng.randint(0, 3)):
            await commit()

    async with anyio.create_task_group() as tg:
        tg.start_soon(maintain)
        tg.start_soon(appender)
    ids = sorted(s for s, _ in vol["acked"])
    for kw in criteria:
        vol["may"] += ids[: -kw["keep_last"]] if "keep_last" in kw else ids[:-1]
    out.counts["faults"] += len(faulty.faults)
    out.counts["acked"] += len(vol["acked"])
    vol["deleted"] = [c.key for c in faulty.log if c.op == "delete" and not c.refused]
    out.counts["deletes"] += len(vol["deleted"])
    bad, counts = await check_and_resume(store, {"volumes": [vol], "resume": True})
    out.violations += [f"seed {seed} (volume): {b}" for b in bad]
    out.counts.update(counts)
    return out


async def run(
    store: aiolode.Store,
    seeds: range,
    *,
    deadline: float | None = None,
    prefix: str = "f",
    open_bugs: bool = True,
) -> dict[str, Any]:
    """Run the schedules of ``seeds`` (a third over volumes) on ``store``."""
    started = time.perf_counter()
    violations: list[str] = []
    errors: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    done = 0
    for s in seeds:
        if deadline is not None and time.perf_counter() > deadline:
            break
        fn = volume_schedule if s % 3 == 2 else dataset_schedule
        try:
            out = await fn(store, s, prefix=prefix, open_bugs=open_bugs)
        except Exception as exc:  # the harness itself must survive anything
            violations.append(f"seed {s}: schedule crashed: {exc!r}")
            continue
        done += 1
        violations += out.violations
        errors.update(out.errors)
        counts.update(out.counts)
    return {
        "part": "faults",
        "schedules": done,
        **{k: counts[k] for k in sorted(counts)},
        "typed_errors": dict(sorted(errors.items())),
        "seconds": time.perf_counter() - started,
        "violations": violations,
    }


async def run_for(kind: str, location: str, seconds: float, seed: int) -> dict[str, Any]:
    """Schedules from ``seed`` on ``location`` for ``seconds``."""
    async with open_location(kind, location) as store:
        return await run(
            store,
            range(seed, seed + 10**9),
            deadline=time.perf_counter() + seconds,
            prefix=f"f{time.time_ns()}x",
        )


async def _main(schedules: int, seed: int) -> dict[str, Any]:
    async with aiolode.MemoryStore() as store:
        return await run(store, range(seed, seed + schedules))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    args = parser.parse_args()
    res = anyio.run(_main, args.schedules, args.seed, backend=args.backend)
    print({k: v for k, v in res.items() if k != "violations"})
    print(f"violations: {len(res['violations'])}")
    for v in res["violations"][:20]:
        print(f"  {v}")
    return 1 if res["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
