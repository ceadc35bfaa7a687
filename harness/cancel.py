"""Cancellation harness: cancel every await point of write, stream_write,
stream_write_records, commit and stage_write_at, and check the outcome.

A :class:`~aiolode.testing.FaultInjectingStore` rule with a ``Hook`` on call
``k`` cancels the enclosing scope just before the k-th store call; the call
and everything after it then sees the cancellation at its next checkpoint
(unless shielded). ``k`` runs 1, 2, … until the operation completes without
reaching call ``k``, so every store call of the operation is a cancellation
point once, cold (fresh object, empty store) and warm (history present).

The contract checked (SPEC §3, docs/reliability.md):

- the operation either **returned** — then its snapshot exists, is the head,
  and reads back with the right bytes — or **raised the cancellation** — then
  no snapshot of it exists, ever (the commit point is shielded: a commit that
  reached it completes and *returns*; the caller sees the cancellation at its
  next checkpoint);
- ``verify`` finds no problem and the history is one linear chain;
- the Dataset removes the data files of a cancelled write (no orphans); a
  cancelled Volume commit leaves only its staged blocks (which the caller may
  still commit).

    python -m harness.cancel [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import aiolode
from aiolode.testing import FaultInjectingStore, Hook, Rule

from ._common import (
    CONFIGS,
    SLOT,
    all_snapshots,
    block_bytes,
    check_dataset,
    check_volume,
    chunks,
    make_dataset,
    payload,
    records,
)

Op = Callable[[aiolode.Store], Awaitable[Any]]


async def cancel_at_each_call(
    setup: Callable[[aiolode.Store], Awaitable[None]],
    op: Callable[[aiolode.Store], Awaitable[Any]],
    check: Callable[[aiolode.Store, Any], Awaitable[list[str]]],
    *,
    limit: int = 200,
) -> tuple[int, list[str]]:
    """Cancel ``op`` at store call 1, 2, … on a fresh store each time.

    Returns the number of cancellation points driven and the violations
    (``check`` receives the raw store and the op's result, ``None`` if cancelled).
    """
    violations: list[str] = []
    for k in range(1, limit + 1):
        raw = aiolode.MemoryStore()
        await setup(raw)
        scope = anyio.CancelScope()

        async def cancel(_: object, scope: anyio.CancelScope = scope) -> None:
            scope.cancel()

        store = FaultInjectingStore(raw, [Rule(op="*", nth=k, action=Hook(cancel))])
        result: Any = None
        with scope:
            result = await op(store)
        reached = any(c.injected for c in store.log)
        try:
            bad = await check(raw, result)
        except aiolode.AiolodeError as exc:
            bad = [f"checking raised {exc!r}"]
        violations += [f"cancel at call {k}: {b}" for b in bad]
        if not reached:
            return k - 1, violations
    violations.append(f"the operation still reached call {limit}")
    return limit, violations


async def dataset_cases() -> dict[str, tuple[int, list[str]]]:
    """Every Dataset write path x codec, cold and warm."""
    out: dict[str, tuple[int, list[str]]] = {}
    for cfg in CONFIGS:
        for warm in (False, True):
            kinds = ["write"]
            if cfg.raw:
                kinds.append("stream_write")
            elif cfg.codec in ("jsonl", "parquet"):
                kinds.append("stream_write_records")
            for kind in kinds:
                out[
                    f"dataset {cfg.name} {kind} {'warm' if warm else 'cold'}"
                ] = await _dataset_case(cfg, kind, warm)
    return out


async def _dataset_case(cfg: Any, kind: str, warm: bool) -> tuple[int, list[str]]:
    n = 300 if cfg.raw else 20
    tag = "t-op"

    async def setup(store: aiolode.Store) -> None:
        if warm:
            ds = make_dataset(store, cfg)
            data = payload("t-0", 10) if cfg.raw else records("t-0", 3)
            await ds.write(data, {"tag": "t-0", "n": 10 if cfg.raw else 3})

    async def op(store: aiolode.Store) -> Any:
        ds = make_dataset(store, cfg)
        meta = {"tag": tag, "n": n}
        if kind == "stream_write":
            async with ds.stream_write(meta) as w:
                async for c in chunks(payload(tag, n), 64):
                    await w.write(c)
            return w.snapshot
        if kind == "stream_write_records":
            return await ds.stream_write_records(records(tag, n), meta, batch_size=6)
        return await ds.write(payload(tag, n) if cfg.raw else records(tag, n), meta)

    async def check(store: aiolode.Store, result: Any) -> list[str]:
        acked = {result.id: tag} if result is not None else {}
        bad = await check_dataset(
            store, cfg, acked=acked, attempted={"t-0", tag}, allow_orphans=False
        )
        ds = make_dataset(store, cfg)
        tags = [s.metadata["tag"] for s in await all_snapshots(ds)]
        if result is None and tag in tags:
            bad.append("the call raised the cancellation but its snapshot exists")
        return bad

    return await cancel_at_each_call(setup, op, check)


async def volume_cases(
    *, commit: bool = True, stage: bool = True
) -> dict[str, tuple[int, list[str]]]:
    """stage_write_at (bytes, stream) and commit, cold and warm, with and without checksums."""
    out: dict[str, tuple[int, list[str]]] = {}
    do_commit = commit
    total = 16 * SLOT
    for checksum in (True, False):
        for warm in (False, True):
            label = f"{'sha256' if checksum else 'no checksum'} {'warm' if warm else 'cold'}"

            def vol(store: aiolode.Store, checksum: bool = checksum) -> aiolode.Volume:
                return aiolode.Volume(
                    "hv", store, total, checksum=aiolode.SHA256() if checksum else None
                )

            async def setup(store: aiolode.Store, warm: bool = warm, vol: Any = vol) -> None:
                if warm:
                    v = vol(store)
                    await v.commit([await v.stage_write_at(0, block_bytes(0, SLOT))])

            async def commit_op(store: aiolode.Store, vol: Any = vol) -> Any:
                v = vol(store)
                refs = [
                    await v.stage_write_at(off, block_bytes(off, SLOT))
                    for off in (3 * SLOT, 5 * SLOT)
                ]
                return await v.commit(refs), refs

            async def check_commit(
                store: aiolode.Store, result: Any, warm: bool = warm, checksum: bool = checksum
            ) -> list[str]:
                acked = (
                    [] if result is None else [(result[0].id, [(3 * SLOT, SLOT), (5 * SLOT, SLOT)])]
                )
                bad = await check_volume(store, total=total, acked=acked, checksum=checksum)
                v = vol(store)
                try:
                    latest = await v.latest()
                    count = len([s async for s in v.snapshots()])
                except aiolode.NoSnapshotsError:
                    latest, count = None, 0
                expect = int(warm) + (result is not None)
                if count != expect:
                    bad.append(
                        f"{count} snapshots, expected {expect} (returned: {result is not None})"
                    )
                if result is not None and latest is not None and latest.id != result[0].id:
                    bad.append("the returned snapshot is not the head")
                return bad

            if do_commit:
                out[f"volume commit {label}"] = await cancel_at_each_call(
                    setup, commit_op, check_commit
                )
            if not stage:
                continue

            for streamed in (False, True):

                async def stage(
                    store: aiolode.Store, vol: Any = vol, streamed: bool = streamed
                ) -> Any:
                    v = vol(store)
                    data = block_bytes(7 * SLOT, 2 * SLOT)
                    return await v.stage_write_at(7 * SLOT, chunks(data, 40) if streamed else data)

                async def check_stage(store: aiolode.Store, result: Any) -> list[str]:
                    bad = []
                    if result is not None:
                        try:
                            got = await store.get(result.key)
                        except aiolode.ObjectNotFoundError:
                            return ["stage_write_at returned a BlockRef whose object is missing"]
                        if got != block_bytes(7 * SLOT, 2 * SLOT):
                            bad.append("the staged block holds the wrong bytes")
                    else:
                        # A cancelled stage leaves no block (create-only puts, aborted
                        # streams); the warm setup's own block is not ours.
                        want = block_bytes(7 * SLOT, 2 * SLOT)
                        async for info in store.list("volumes/hv/blocks/"):
                            if await store.get(info.key) == want:
                                bad.append(f"a cancelled stage left block {info.key}")
                    return bad

                name = f"volume stage_write_at {'stream' if streamed else 'bytes'} {label}"
                out[name] = await cancel_at_each_call(setup, stage, check_stage)
    return out


async def run() -> dict[str, Any]:
    started = time.perf_counter()
    cases = await dataset_cases()
    cases.update(await volume_cases())
    return {"cases": cases, "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"))
    args = parser.parse_args()
    res = anyio.run(run, backend=args.backend)
    points = sum(n for n, _ in res["cases"].values())
    bad = 0
    for name, (n, violations) in res["cases"].items():
        print(f"  {name}: {n} cancellation points, {len(violations)} violations")
        for v in violations[:5]:
            print(f"    {v}")
        bad += len(violations)
    print(
        f"cancellation ({args.backend}): {len(res['cases'])} cases, {points} points, "
        f"{bad} violations, {res['seconds']:.1f} s"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
