"""Crash harness: writer processes killed with SIGKILL at random instants.

For each kill: start :mod:`harness._crash_writer` (three concurrent writers:
raw blobs, streamed blobs, hive-partitioned gzip JSONL, volume commits), wait
until it has acknowledged its first commit, sleep a random 0-``max_delay`` seconds, SIGKILL it, then
run :mod:`harness._check` in a *fresh* process: ``verify`` finds no problem,
the history is one linear chain, every snapshot reads back with the bytes its
metadata implies, every acknowledged snapshot exists, no tag is committed
twice or invented. The next writer continues the same history (a restart);
every ``epoch`` kills the harness moves to fresh ids so checks stay short.

    python -m harness.crash --kills 100 --backend file|s3|seaweed [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from ._proc import PY, run_checker, s3_location, seaweed_location

_EPOCH = 10
_WRITER_BACKENDS = ("asyncio", "trio")


def _spec(state: dict[str, Any], epoch: int) -> dict[str, Any]:
    e = state[epoch]
    return {
        "datasets": [
            {"id": f"craw{epoch}", "config": "raw", "acked": e["craw"], "attempted": e["try_craw"]},
            {
                "id": f"crec{epoch}",
                "config": "jsonl-gzip-hive",
                "acked": e["crec"],
                "attempted": e["try_crec"],
            },
        ],
        "volumes": [{"id": f"cvol{epoch}", "total": 512 * 64, "acked": e["vol"]}],
    }


def run(kind: str, location: str, kills: int, seed: int, max_delay: float = 0.8) -> dict[str, Any]:
    """Kill ``kills`` writers on ``location``; return figures and violations."""
    rng = random.Random(seed)
    started = time.perf_counter()
    state: dict[int, dict[str, Any]] = {}
    violations: list[str] = []
    acks = 0
    killed_mid_write = 0
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        for i in range(kills):
            epoch = i // _EPOCH
            e = state.setdefault(
                epoch, {"craw": {}, "crec": {}, "vol": [], "try_craw": [], "try_crec": []}
            )
            backend = _WRITER_BACKENDS[i % 2]
            errf = open(os.path.join(tmp, "stderr.txt"), "w+")  # noqa: SIM115
            proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "harness._crash_writer",
                    kind,
                    location,
                    str(epoch),
                    str(i),
                    str(rng.randrange(1 << 30)),
                    backend,
                ],
                stdout=subprocess.PIPE,
                stderr=errf,
                text=True,
            )
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if first.strip() != "ready":
                proc.kill()
                proc.wait()
                errf.seek(0)
                violations.append(f"kill {i}: writer did not start: {first!r} {errf.read()!r}")
                errf.close()
                continue
            # Kill only once the writer has committed at least once in this
            # run, so every kill lands on a writer with history in flight.
            early: list[str] = []
            while True:
                line = proc.stdout.readline()
                if not line:
                    break
                early.append(line)
                if line.startswith("ack "):
                    break
            time.sleep(rng.uniform(0.0, max_delay))
            alive = proc.poll() is None
            if alive:
                os.kill(proc.pid, signal.SIGKILL)
            # Read through the same buffer as readline() above (communicate()
            # would bypass it and drop lines already buffered).
            out = "".join(early) + proc.stdout.read()
            proc.wait()
            errf.seek(0)
            err = errf.read()
            errf.close()
            if not alive:
                violations.append(f"kill {i}: writer died before the kill: {err[-2000:]}")
            lines = out.split("\n")[:-1]  # the last piece may be cut by the kill
            tries = sum(1 for ln in lines if ln.startswith("try "))
            done = sum(1 for ln in lines if ln.startswith("ack "))
            killed_mid_write += 1 if tries > done else 0
            for ln in lines:
                parts = ln.split(" ")
                if parts[0] == "try" and parts[1] in ("craw", "crec"):
                    e[f"try_{parts[1]}"].append(parts[2])
                elif parts[0] == "ack" and parts[1] in ("craw", "crec"):
                    e[parts[1]][parts[2]] = parts[3]
                    acks += 1
                elif parts[0] == "ack" and parts[1] == "vol":
                    blocks = [[int(x) for x in b.split(",")] for b in parts[3].split(";")]
                    e["vol"].append([parts[2], blocks])
                    acks += 1
            result = run_checker(kind, location, spec_path, _spec(state, epoch))
            violations += [f"kill {i}: {v}" for v in result["violations"]]
    return {
        "kind": kind,
        "kills": kills,
        "killed_mid_write": killed_mid_write,
        "acknowledged": acks,
        "violations": violations,
        "seconds": time.perf_counter() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--backend", choices=("file", "s3", "seaweed"), default="file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=0.8)
    args = parser.parse_args()
    if args.backend == "file":
        with tempfile.TemporaryDirectory() as root:
            res = run("file", root, args.kills, args.seed, args.max_delay)
    elif args.backend == "seaweed":
        with seaweed_location(f"crash-{os.getpid()}") as loc:
            res = run("seaweed", loc, args.kills, args.seed, args.max_delay)
    else:
        with s3_location(f"crash-{os.getpid()}") as loc:
            res = run("s3", loc, args.kills, args.seed, args.max_delay)
    print(
        f"crash harness ({res['kind']}): {res['kills']} SIGKILLs, "
        f"{res['killed_mid_write']} with an operation in flight, "
        f"{res['acknowledged']} acknowledged commits checked"
    )
    print(f"violations: {len(res['violations'])}")
    for v in res["violations"][:20]:
        print(f"  {v}")
    print(f"wall time: {res['seconds']:.1f} s")
    return 1 if res["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
