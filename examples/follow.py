"""Follow a dataset that other processes write, with a cursor kept in a file.

Run: python examples/follow.py   (uses a temporary directory; exits 0 on success)

Two writer processes append orders to the dataset ``orders`` on a local
directory while a consumer follows it with ``Dataset.watch(after=cursor)``. The
demo runs the consumer twice: the first run stops part-way, the second resumes
after the cursor it left, and between them every order is consumed exactly
once, in each writer's order.

The consumer's state file holds the cursor (the id of the last snapshot it
applied) *and* what it derived from the snapshots up to it (a total per
writer), replaced atomically after each snapshot (write a temporary file,
fsync, rename). Killed at any point (``kill -9`` included), it restarts from
the last state it saved: whatever it had applied after that was lost with it,
and ``watch(after=cursor)`` delivers it again. An effect kept somewhere else
(another database, a message sent) must be committed with the cursor, or be
idempotent by snapshot id, for the same guarantee.

The parts, usable on their own (``ROOT`` is a directory)::

    python examples/follow.py write ROOT --writer w0 --count 20 --interval 0.05
    python examples/follow.py consume ROOT --state state.json [--until N] [--backend trio]

``consume`` follows forever unless ``--until`` is given; run it again on the
same state file and it carries on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import aiolode

DATASET = "orders"


def amount(writer: str, order: int) -> int:
    """A deterministic amount for each order (so the totals can be checked)."""
    return 1 + (order * 7 + len(writer)) % 13


# ------------------------------------------------------------------ writer
async def write(root: str, writer: str, count: int, interval: float) -> None:
    """Append ``count`` orders, one snapshot each, ``interval`` seconds apart."""
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset(
            DATASET, store, codec=aiolode.JSONL(), retry=aiolode.Retry(attempts=100)
        )
        for order in range(count):
            row = {"writer": writer, "order": order, "amount": amount(writer, order)}
            await ds.write([row], metadata={"writer": writer})
            await anyio.sleep(interval)


# ---------------------------------------------------------------- consumer
def load_state(path: Path) -> dict[str, Any]:
    """The saved state, or the initial one (no cursor: start at the first snapshot)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return {"cursor": None, "consumed": 0, "next_order": {}, "total": {}}
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically: a crash leaves the old one or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def apply(state: dict[str, Any], snap: aiolode.Snapshot, rows: list[dict[str, Any]]) -> None:
    """The consumer's work: check each writer's orders come in order, once; add them up."""
    for row in rows:
        writer, order = row["writer"], row["order"]
        expected = state["next_order"].get(writer, 0)
        if order != expected:  # a gap or a repeat: watch() broke its promise
            raise SystemExit(f"{snap.id}: {writer} order {order}, expected {expected}")
        state["next_order"][writer] = order + 1
        state["total"][writer] = state["total"].get(writer, 0) + row["amount"]
    state["consumed"] += 1
    state["cursor"] = snap.id


async def consume(
    root: str, state_path: Path, until: int | None, work: float, poll_interval: float
) -> dict[str, Any]:
    """Follow ``orders`` after the saved cursor until ``until`` snapshots in all."""
    state = await anyio.to_thread.run_sync(load_state, state_path)
    where = f"after {state['cursor']}" if state["cursor"] else "from the first snapshot"
    print(f"consumer (pid {os.getpid()}): {state['consumed']} consumed so far, resuming {where}")
    if until is not None and state["consumed"] >= until:
        return state
    async with aiolode.FileStore(root) as store:
        ds = aiolode.Dataset(DATASET, store)
        watch = ds.watch(after=state["cursor"], poll_interval=poll_interval)
        async with aclosing(watch) as snapshots:
            async for snap in snapshots:
                rows = await ds.read(snap)
                await anyio.sleep(work)  # stands for real work (killable here)
                apply(state, snap, rows)
                await anyio.to_thread.run_sync(save_state, state_path, state)
                print(f"  {snap.id} {rows[0]['writer']} order {rows[0]['order']}", flush=True)
                if until is not None and state["consumed"] >= until:
                    break
    return state


# -------------------------------------------------------------------- demo
async def demo(root: str) -> None:
    writers, count = ["w0", "w1"], 15
    state_path = Path(root) / "consumer-state.json"
    me = [sys.executable, __file__]

    async def writer(name: str) -> None:
        cmd = [*me, "write", root, "--writer", name, "--count", str(count), "--interval", "0.05"]
        await anyio.run_process(cmd, stdout=None, stderr=None)

    async with anyio.create_task_group() as tg:
        for w in writers:
            tg.start_soon(writer, w)
        # The consumer, in its own process: a first run that stops after 10
        # snapshots, then a restart that resumes after the cursor it saved.
        for until in (10, len(writers) * count):
            print(f"-- consumer run until {until} snapshots", flush=True)
            cmd = [*me, "consume", root, "--state", str(state_path), "--until", str(until)]
            await anyio.run_process(cmd, stdout=None, stderr=None)

    state = await anyio.to_thread.run_sync(load_state, state_path)
    async with aiolode.FileStore(root) as store:
        history = [s.id async for s in aiolode.Dataset(DATASET, store).snapshots()]
    assert state["consumed"] == len(history) == len(writers) * count
    assert state["cursor"] == history[-1]
    assert state["next_order"] == dict.fromkeys(writers, count)
    assert state["total"] == {w: sum(amount(w, i) for i in range(count)) for w in writers}
    print(f"consumed {state['consumed']} snapshots exactly once over two runs: {state['total']}")
    print("ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("write", help="append orders to the dataset")
    w.add_argument("root")
    w.add_argument("--writer", default="w0")
    w.add_argument("--count", type=int, default=20)
    w.add_argument("--interval", type=float, default=0.05)
    c = sub.add_parser("consume", help="follow the dataset from the saved cursor")
    c.add_argument("root")
    c.add_argument("--state", type=Path, required=True, help="the state file (cursor + totals)")
    c.add_argument("--until", type=int, help="stop after this many snapshots in all")
    c.add_argument("--work", type=float, default=0.0, help="seconds of work per snapshot")
    c.add_argument("--poll-interval", type=float, default=0.1)
    for p in (w, c):
        p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = ap.parse_args()
    if args.cmd == "write":
        anyio.run(write, args.root, args.writer, args.count, args.interval, backend=args.backend)
    elif args.cmd == "consume":
        anyio.run(
            consume,
            args.root,
            args.state,
            args.until,
            args.work,
            args.poll_interval,
            backend=args.backend,
        )
    else:
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(demo, tmp)


if __name__ == "__main__":
    main()
