"""Lifecycle harness: expiry, gc and drop while writers run, under SIGKILL, and faults.

**Race.** N appender processes (self-describing blobs and hive-partitioned
gzip JSONL records to two datasets) and W volume writers (disjoint slots of
one volume), a reader process reading retained snapshots, and one maintainer
process looping ``expire`` (``keep_last``, ``older_than``, ``snapshots=``) and
``gc(grace=...)`` (and ``compact`` once the library has it) over all three,
for a fixed time. Every process journals its acknowledgements, refusals,
expiry reports and deletes in a side file. Then a fresh process checks the
oracle of :mod:`harness._lifecycle_check`: no acknowledged snapshot lost that
was not expired, every retained snapshot reads back exactly, no deleted object
referenced by a retained snapshot, no read of a retained snapshot failed,
``verify`` clean.

**Crash.** A maintainer process appends a few snapshots, then runs expiry, gc
(no grace) and — in some runs — drop on every target, announcing each
operation and, before an expiry, what it may expire; it is SIGKILLed at a
random instant. A fresh process checks the oracle, reruns the maintenance
(gc again; a started drop finished, the name written again) and checks again.

**Faults** (in-process): :mod:`harness.lifecycle_faults`.

    python -m harness.lifecycle --minutes 5 --backend file|s3|seaweed [--part race|crash|faults]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

from ._lifecycle_worker import DATASETS
from ._proc import PY, s3_location, seaweed_location

_BACKENDS = ("asyncio", "trio")
#: Slots of the race volume (disjoint among its writers) and of the crash one.
RACE_SLOTS = 4096
CRASH_SLOTS = 256


def read_journal(path: str) -> list[list[str]]:
    """The complete lines of a side file (a kill may cut the last one)."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split("\n")[:-1]
    return [ln.split(" ") for ln in lines if ln]


def empty_target(ident: str) -> dict[str, Any]:
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


class Tally:
    """What the journals of one run (or one epoch of runs) said, by target."""

    def __init__(self, prefix: str, vol_id: str, slots: int) -> None:
        self.datasets = {n: empty_target(f"{prefix}{n}") for n in DATASETS}
        self.vol: dict[str, Any] = {**empty_target(vol_id), "acked": [], "slots": slots}
        self.figures: dict[str, int] = {
            "acked": 0,
            "refused_stale": 0,
            "expired_reported": 0,
            "deletes": 0,
            "reads_ok": 0,
            "reads_failed": 0,
            "maintenance_ops": 0,
        }
        self.errors: list[str] = []
        self.open_ops: list[tuple[str, str]] = []

    def target(self, name: str) -> dict[str, Any]:
        return self.vol if name == "vol" else self.datasets[name]

    def _owner(self, key: str) -> dict[str, Any] | None:
        for t in (*self.datasets.values(), self.vol):
            if f"/{t['id']}/" in key:
                return t
        return None

    def add(self, lines: list[list[str]]) -> None:
        """Fold one process's journal in."""
        started: list[tuple[str, str]] = []
        f = self.figures
        for p in lines:
            match p:
                case ["try", name, tag]:
                    self.target(name)["attempted"].append(tag)
                case ["ack", "vol", sid, blocks]:
                    self.vol["acked"].append(
                        [sid, [[int(x) for x in b.split(",")] for b in blocks.split(";")]]
                    )
                    f["acked"] += 1
                case ["ack", name, sid, tag, _]:
                    self.target(name)["acked"][sid] = tag
                    f["acked"] += 1
                case ["refused", name, what]:
                    if name != "vol":
                        self.target(name)["refused"].append(what)
                    f["refused_stale"] += 1
                case ["may", name, *ids]:
                    self.target(name)["may"] += ids
                case ["expired", name, *ids]:
                    self.target(name)["expired"] += ids
                    f["expired_reported"] += len(ids)
                case ["del", key]:
                    owner = self._owner(key)
                    if owner is not None:
                        owner["deleted"].append(key)
                    f["deletes"] += 1
                case ["op", op, name]:
                    started.append((op, name))
                    if op == "drop":
                        self.target(name)["drop"] = True
                case ["done", op, name]:
                    f["maintenance_ops"] += 1
                    if (op, name) in started:
                        started.remove((op, name))
                case ["read", "ok", *_]:
                    f["reads_ok"] += 1
                case ["read", "wrong", name, sid]:
                    self.errors.append(f"the reader read wrong bytes from {name} {sid}")
                case ["read", "fail", name, sid, err]:
                    self.target(name)["read_failures"].append([sid, err])
                    f["reads_failed"] += 1
                case ["error", role, *rest]:
                    self.errors.append(f"{role}: untolerated error {' '.join(rest)}")
                case _:
                    pass
        self.open_ops += started

    def spec(self, *, resume: bool = False, attempted: bool = True) -> dict[str, Any]:
        datasets = {}
        for n, d in self.datasets.items():
            d = dict(d)
            if not attempted:
                d["attempted"] = None
            datasets[n] = d
        return {"datasets": datasets, "volumes": [self.vol], "resume": resume}


def run_checker(kind: str, location: str, tmp: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the oracle in a fresh process; a checker that fails is one violation."""
    path = os.path.join(tmp, "spec.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    chk = subprocess.run(
        [PY, "-m", "harness._lifecycle_check", kind, location, path],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        result: dict[str, Any] = json.loads(chk.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"violations": [f"checker failed: {chk.stderr[-3000:]}"], "counts": {}}
    return result


def _spawn(
    role: str, kind: str, location: str, log: str, seed: int, backend: str, opts: dict[str, Any]
) -> subprocess.Popen[bytes]:
    err = open(log + ".err", "w")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(
        [
            PY,
            "-m",
            "harness._lifecycle_worker",
            role,
            kind,
            location,
            log,
            str(seed),
            backend,
            json.dumps(opts),
        ],
        stdout=subprocess.DEVNULL,
        stderr=err,
    )


# -------------------------------------------------------------------- race
def race(
    kind: str,
    location: str,
    *,
    seconds: float,
    appenders: int = 4,
    vol_writers: int = 2,
    grace: float = 2.0,
    seed: int = 0,
    prefix: str = "lc",
) -> dict[str, Any]:
    """Append, write a volume and read while one process expires and collects."""
    started = time.perf_counter()
    rng = random.Random(seed)
    vol_id = f"{prefix}vol"
    with tempfile.TemporaryDirectory() as tmp:
        go = os.path.join(tmp, "go")
        common = {"prefix": prefix, "go": go, "vol": vol_id, "slots": RACE_SLOTS}
        procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        roles: list[tuple[str, dict[str, Any]]] = [
            ("append", {**common, "index": i}) for i in range(appenders)
        ]
        roles += [
            ("vol-append", {**common, "index": i, "writers": vol_writers})
            for i in range(vol_writers)
        ]
        roles += [("read", common), ("maintain", {**common, "grace": grace})]
        for i, (role, opts) in enumerate(roles):
            log = os.path.join(tmp, f"{i}-{role}.log")
            procs.append(
                (
                    log,
                    _spawn(
                        role, kind, location, log, rng.randrange(1 << 30), _BACKENDS[i % 2], opts
                    ),
                )
            )
        # Start the clock once every process is up (imports are slow under load).
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 120 and not all(
            ["ready"] in read_journal(log) or p.poll() is not None for log, p in procs
        ):
            time.sleep(0.05)
        with open(go + ".tmp", "w") as f:
            f.write(f"{time.time() + seconds}\n")
        os.replace(go + ".tmp", go)
        tally = Tally(prefix, vol_id, RACE_SLOTS)
        violations: list[str] = []
        for log, p in procs:
            code = p.wait()
            tally.add(read_journal(log))
            if code != 0:
                with open(log + ".err") as f:
                    violations.append(f"{os.path.basename(log)} exited {code}: {f.read()[-1500:]}")
        result = run_checker(kind, location, tmp, tally.spec())
    violations += tally.errors + result["violations"]
    return {
        "part": "race",
        "kind": kind,
        "grace": grace,
        "appenders": appenders,
        "vol_writers": vol_writers,
        "seconds": time.perf_counter() - started,
        **tally.figures,
        **{f"checked_{k}": v for k, v in result.get("counts", {}).items()},
        "violations": violations,
    }


# ------------------------------------------------------------------- crash
def crash(
    kind: str,
    location: str,
    *,
    kills: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    max_delay: float = 1.5,
    drop: float = 0.3,
) -> dict[str, Any]:
    """SIGKILL the maintainer at random instants; check, rerun, check again."""
    rng = random.Random(seed)
    started = time.perf_counter()
    violations: list[str] = []
    figures: Counter[str] = Counter()
    epoch = 0
    tally = Tally(f"k{epoch}", f"k{epoch}vol", CRASH_SLOTS)
    i = 0
    spans: list[float] = []  # how long unkilled maintenance runs took
    with tempfile.TemporaryDirectory() as tmp:
        while (kills is not None and i < kills) or (
            seconds is not None and time.perf_counter() - started < seconds
        ):
            log = os.path.join(tmp, f"crash-{i}.log")
            opts = {
                "prefix": f"k{epoch}",
                "vol": f"k{epoch}vol",
                "slots": CRASH_SLOTS,
                "grace": 0.0,
                "run": i,
                "drop": drop,
            }
            proc = _spawn(
                "crash-maintain",
                kind,
                location,
                log,
                rng.randrange(1 << 30),
                _BACKENDS[i % 2],
                opts,
            )
            # Kill once maintenance has begun, at a random instant of it.
            t0 = time.perf_counter()
            while proc.poll() is None and time.perf_counter() - t0 < 60:
                if any(ln == ["ready"] for ln in read_journal(log)):
                    break
                time.sleep(0.01)
            ready = time.perf_counter()
            # Aim inside the maintenance: no later than most unkilled runs took.
            span = min(max_delay, 0.9 * sorted(spans)[len(spans) // 2]) if spans else max_delay
            time.sleep(rng.uniform(0.0, span))
            alive = proc.poll() is None
            if alive:
                os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait()
            lines = read_journal(log)
            if not alive:
                spans = [*spans[-20:], time.perf_counter() - ready]
            if not alive and ["finished"] not in lines:
                with open(log + ".err") as f:
                    violations.append(f"run {i}: maintainer died (exit {code}): {f.read()[-1500:]}")
            before = len(tally.open_ops)
            tally.add(lines)
            interrupted = tally.open_ops[before:]
            tally.open_ops = []
            figures["kills"] += 1 if alive else 0
            figures["finished_before_kill"] += 0 if alive else 1
            for op, _ in interrupted[:1]:
                figures[f"killed_in_{op}"] += 1
            dropping = any(t["drop"] for t in (*tally.datasets.values(), tally.vol))
            result = run_checker(kind, location, tmp, tally.spec(resume=True))
            violations += [f"run {i} (epoch {epoch}): {v}" for v in result["violations"]]
            for k, v in result.get("counts", {}).items():
                figures[f"checked_{k}"] += v
            if dropping:
                # The rerun finished the drops and reused the names: a new epoch.
                for k, v in tally.figures.items():
                    figures[k] += v
                epoch += 1
                tally = Tally(f"k{epoch}", f"k{epoch}vol", CRASH_SLOTS)
            i += 1
    for k, v in tally.figures.items():
        figures[k] += v
    return {
        "part": "crash",
        "kind": kind,
        "runs": i,
        "epochs": epoch + 1,
        "seconds": time.perf_counter() - started,
        **dict(sorted(figures.items())),
        "violations": violations,
    }


def report(res: dict[str, Any]) -> str:
    """One human line per figure."""
    head = f"lifecycle {res['part']} ({res['kind']})"
    figs = ", ".join(
        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in res.items()
        if k not in ("part", "kind", "violations")
    )
    lines = [f"{head}: {figs}", f"violations: {len(res['violations'])}"]
    lines += [f"  {v}" for v in res["violations"][:20]]
    return "\n".join(lines)


def _run_parts(kind: str, location: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    total = args.minutes * 60
    parts = args.part or ["race", "crash", "faults"]
    share = total / len(parts)
    for part in parts:
        if part == "race":
            for j, grace in enumerate(args.grace):
                res = race(
                    kind,
                    location,
                    seconds=share / len(args.grace),
                    grace=grace,
                    appenders=args.appenders,
                    seed=args.seed + j,
                    prefix=f"lc{j}g",
                )
                print(report(res), flush=True)
                out.append(res)
        elif part == "crash":
            res = crash(kind, location, seconds=share, seed=args.seed)
            print(report(res), flush=True)
            out.append(res)
        else:
            import anyio

            from . import lifecycle_faults

            for backend in _BACKENDS:
                res = anyio.run(
                    lifecycle_faults.run_for, kind, location, share / 2, args.seed, backend=backend
                )
                res["kind"] = f"{kind}, {backend}"
                print(report(res), flush=True)
                out.append(res)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="per backend, all parts")
    parser.add_argument("--backend", choices=("file", "s3", "seaweed"), default="file")
    parser.add_argument("--part", action="append", choices=("race", "crash", "faults"))
    parser.add_argument("--appenders", type=int, default=4)
    parser.add_argument(
        "--grace",
        type=float,
        action="append",
        help="gc grace of the race in seconds (repeat; default 2.0 and 0.5; 0 meets an open bug)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.grace = args.grace or [2.0, 0.5]
    if args.backend == "file":
        with tempfile.TemporaryDirectory() as root:
            results = _run_parts("file", root, args)
    elif args.backend == "seaweed":
        with seaweed_location(f"lc-{os.getpid()}") as loc:
            results = _run_parts("seaweed", loc, args)
    else:
        with s3_location(f"lc-{os.getpid()}") as loc:
            results = _run_parts("s3", loc, args)
    bad = sum(len(r["violations"]) for r in results)
    print(f"total violations: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
