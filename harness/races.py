"""Race harness: N processes x M commits on one Dataset, and on one Volume.

Every process waits for a common start signal, then commits as fast as it
can with no coordination but the store's conditional puts. Afterwards (fresh
process): exactly N x M snapshots in one linear chain, each writer's commits
all present exactly once, ``verify`` clean; for the Volume, N x M snapshots
and every block present in the final snapshot with the right bytes.

    python -m harness.races --procs 8 --commits 50 --backend file|s3|seaweed
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from ._proc import PY, run_checker, s3_location, seaweed_location


def run_target(kind: str, location: str, target: str, procs: int, commits: int) -> dict[str, Any]:
    """Race ``procs`` writer processes on ``target`` (``ds`` or ``vol``) and check."""
    started = time.perf_counter()
    total = procs * commits
    children = [
        subprocess.Popen(
            [
                PY,
                "-m",
                "harness._race_writer",
                kind,
                location,
                target,
                str(w),
                str(commits),
                str(total),
                ("asyncio", "trio")[w % 2],
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(procs)
    ]
    for c in children:
        assert c.stdout is not None
        if c.stdout.readline().strip() != "ready":
            raise RuntimeError("a race writer did not start")
    t0 = time.perf_counter()
    for c in children:
        assert c.stdin is not None
        c.stdin.write("go\n")
        c.stdin.flush()
    acks: list[list[str]] = []
    failed = []
    for c in children:
        assert c.stdout is not None
        out = c.stdout.read()
        if c.wait() != 0:
            failed.append(c.returncode)
        acks += [ln.split(" ")[1:] for ln in out.splitlines() if ln.startswith("ack ")]
    race_seconds = time.perf_counter() - t0
    violations = [f"{len(failed)} writer(s) failed: exit codes {failed}"] if failed else []
    if len(acks) != total:
        violations.append(f"{len(acks)} acknowledged commits, expected {total}")
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = os.path.join(tmp, "spec.json")
        if target == "ds":
            spec: dict[str, Any] = {
                "datasets": [
                    {
                        "id": "race",
                        "config": "raw",
                        "acked": dict(acks),
                        "attempted": [f"w{w}i{i}" for w in range(procs) for i in range(commits)],
                    }
                ]
            }
        else:
            spec = {
                "volumes": [
                    {
                        "id": "race",
                        "total": total * 64,
                        "acked": [[sid, [[int(x) for x in b.split(",")]]] for sid, b in acks],
                    }
                ]
            }
        spec["expect_snapshots"] = total
        result = run_checker(kind, location, spec_path, spec)
    violations += result["violations"]
    counts = result.get("snapshots", {})
    if counts.get("race") != total:
        violations.append(f"{counts.get('race')} snapshots in the chain, expected {total}")
    if target == "vol" and result.get("complete", {}).get("race") is not True:
        violations.append("the final volume snapshot is not complete")
    return {
        "target": target,
        "kind": kind,
        "procs": procs,
        "commits": commits,
        "snapshots": counts.get("race"),
        "commits_per_second": total / race_seconds,
        "violations": violations,
        "seconds": time.perf_counter() - started,
    }


def run(kind: str, location: str, procs: int, commits: int) -> list[dict[str, Any]]:
    """The Dataset race then the Volume race on ``location``."""
    return [run_target(kind, location, t, procs, commits) for t in ("ds", "vol")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--backend", choices=("file", "s3", "seaweed"), default="file")
    args = parser.parse_args()
    if args.backend == "file":
        with tempfile.TemporaryDirectory() as root:
            results = run("file", root, args.procs, args.commits)
    elif args.backend == "seaweed":
        with seaweed_location(f"race-{os.getpid()}") as loc:
            results = run("seaweed", loc, args.procs, args.commits)
    else:
        with s3_location(f"race-{os.getpid()}") as loc:
            results = run("s3", loc, args.procs, args.commits)
    bad = 0
    for r in results:
        what = "Dataset" if r["target"] == "ds" else "Volume (disjoint blocks)"
        print(
            f"races ({r['kind']}, {what}): {r['procs']} processes x {r['commits']} commits -> "
            f"{r['snapshots']} snapshots in one chain, {r['commits_per_second']:.0f} commits/s, "
            f"{len(r['violations'])} violations, {r['seconds']:.1f} s"
        )
        for v in r["violations"][:20]:
            print(f"  {v}")
        bad += len(r["violations"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
