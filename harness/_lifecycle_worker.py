"""The processes of the lifecycle harness: appenders, the maintainer, a reader.

``python -m harness._lifecycle_worker <role> <kind> <location> <log> <seed> <backend> <opts.json>``

Every process records what it did in its own side file ``<log>``, one line
per event, flushed before the next store call: a SIGKILL loses at most the
line being written (the parent drops a last line without its newline). Lines:

- ``try <ds> <tag>`` / ``ack <ds> <snapshot id> <tag> <created_at>`` /
  ``refused <ds> <tag>`` (:class:`~aiolode.StaleWriteError`) — dataset appends;
- ``ack vol <snapshot id> <off,len;...>`` / ``refused vol <off,len;...>`` —
  volume commits;
- ``may <target> <id> ...`` — before an expiry: every snapshot it may expire
  (the maintainer in the crash harness, where nothing else writes);
  ``expired <target> <id> ...`` — after it, what it reported;
- ``del <key>`` — before each delete call the maintainer issues;
- ``op <name> <target>`` / ``done <name> <target>`` — around each maintenance
  operation (the crash harness knows what a kill interrupted);
- ``read ok|fail <ds> <snapshot id> [<error>]`` — the reader;
- ``error <target> <repr>`` — a typed error no rule explains (a violation).

Roles: ``append`` (self-describing blobs and records to datasets ``raw`` and
``rec``), ``vol-append`` (disjoint slots of volume ``vol``), ``maintain``
(expire + gc [+ compact] in a loop until the deadline), ``read`` (reads
retained snapshots until the deadline), ``crash-maintain`` (appends a few
snapshots, then maintenance operations one after another until killed,
announcing each with ``op``).
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO

import anyio

import aiolode
from aiolode.store import WrapperStore

from ._common import CONFIGS, SLOT, DatasetConfig, block_bytes, make_dataset, payload, records
from ._proc import open_location

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

RAW = next(c for c in CONFIGS if c.name == "raw")
#: The record datasets: Parquet (unpartitioned) and hive-partitioned gzip JSONL
#: (partition manifests: expiry by id + gc and drop after gc met two library
#: bugs there, now fixed and pinned in tests/harness/test_lifecycle_proof.py).
REC = next(c for c in CONFIGS if c.name == "parquet")
HIVE = next(c for c in CONFIGS if c.name == "jsonl-gzip-hive")
#: The datasets of a lifecycle run: name suffix -> configuration.
DATASETS: dict[str, DatasetConfig] = {"raw": RAW, "rec": REC, "hive": HIVE}
RETRY = aiolode.Retry(attempts=1000, base_delay=0.002, max_delay=0.05)


class Journal:
    """The side file of one process: a line per event, flushed at once."""

    def __init__(self, path: str) -> None:
        self._f: TextIO = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def __call__(self, *parts: object) -> None:
        self._f.write(" ".join(str(p) for p in parts) + "\n")
        self._f.flush()


class RecordingStore(WrapperStore[aiolode.Store]):
    """Journals every delete before it reaches the store."""

    def __init__(self, inner: aiolode.Store, say: Journal) -> None:
        super().__init__(inner)
        self._say = say

    async def _delete(self, key: str) -> None:
        self._say("del", key)
        await super()._delete(key)


def ds_id(prefix: str, name: str) -> str:
    """The dataset id of dataset ``name`` (``raw`` or ``rec``) of a run."""
    return f"{prefix}{name}"


def volume(store: aiolode.Store, vol_id: str, slots: int) -> aiolode.Volume:
    """The harness volume of ``slots`` slots."""
    return aiolode.Volume(vol_id, store, slots * SLOT, checksum=aiolode.SHA256(), retry=RETRY)


def blocks_text(blocks: list[tuple[int, int]]) -> str:
    return ";".join(f"{o},{n}" for o, n in blocks)


async def append_one(
    say: Journal, ds: aiolode.Dataset, name: str, tag: str, n: int
) -> aiolode.Snapshot | None:
    """One self-describing append, journaled; ``None`` when refused as stale."""
    say("try", name, tag)
    meta = {"tag": tag, "n": n}
    try:
        if DATASETS[name].raw:
            snap = await ds.write(payload(tag, n), meta)
        else:
            snap = await ds.write(records(tag, n), meta)
    except aiolode.StaleWriteError:
        say("refused", name, tag)
        return None
    say("ack", name, snap.id, tag, snap.created_at.isoformat())
    return snap


async def commit_slots(say: Journal, vol: aiolode.Volume, group: list[int]) -> bool:
    """Stage and commit ``group`` (slot numbers); ``False`` when refused as stale."""
    refs = [await vol.stage_write_at(s * SLOT, block_bytes(s * SLOT, SLOT)) for s in group]
    blocks = [(r.offset, r.length) for r in refs]
    try:
        vs = await vol.commit(refs, {"n": len(refs)})
    except aiolode.StaleWriteError:
        say("refused", "vol", blocks_text(blocks))
        return False
    say("ack", "vol", vs.id, blocks_text(blocks))
    return True


# ------------------------------------------------------------------- roles
async def role_append(
    say: Journal, store: aiolode.Store, rng: random.Random, opts: dict[str, Any]
) -> None:
    prefix, deadline, me = opts["prefix"], opts["deadline"], opts["index"]
    sets = {
        n: make_dataset(store, DATASETS[n], ds_id=ds_id(prefix, n), retry=RETRY) for n in DATASETS
    }
    i = 0
    while time.time() < deadline:
        name = rng.choice(sorted(sets))
        tag = f"p{me}i{i}"
        i += 1
        await append_one(
            say,
            sets[name],
            name,
            tag,
            rng.randint(1, 2000) if name == "raw" else rng.randint(1, 40),
        )


async def role_vol_append(
    say: Journal, store: aiolode.Store, rng: random.Random, opts: dict[str, Any]
) -> None:
    me, writers, slots, deadline = opts["index"], opts["writers"], opts["slots"], opts["deadline"]
    vol = volume(store, opts["vol"], slots)
    mine = list(range(me, slots, writers))
    while mine and time.time() < deadline:
        group = [mine.pop(0) for _ in range(min(len(mine), rng.randint(1, 3)))]
        while not await commit_slots(say, vol, group):
            pass  # refused: stage the same slots again


async def expire_dataset(
    say: Journal,
    ds: aiolode.Dataset,
    name: str,
    rng: random.Random,
    *,
    announce: bool,
    open_bugs: bool = True,
) -> None:
    """One expiry with a random criterion; with ``announce``, first journal the
    exact set it may expire (valid when nothing else writes meanwhile).

    ``snapshots=`` (holes in the history) not on a partitioned dataset unless
    ``open_bugs``: gc then breaks it (an open library bug, pinned in
    tests/harness/test_lifecycle_proof.py).
    """
    holes = not DATASETS[name].hive or open_bugs
    retained = [s async for s in ds.snapshots()]
    if len(retained) < 2:
        return
    pick = rng.random()
    kwargs: dict[str, Any]
    if pick < 0.4:
        k = rng.randint(1, 6)
        kwargs = {"keep_last": k}
        may = [s.id for s in retained[:-k]]
    elif pick < 0.7 and holes:
        chosen = rng.sample(retained[:-1], min(len(retained) - 1, rng.randint(1, 3)))
        kwargs = {"snapshots": [s.id for s in chosen]}
        may = [s.id for s in chosen]
    else:
        age = timedelta(seconds=rng.choice((0.0, 0.5, 2.0)))
        kwargs = {"older_than": age}
        may = [s.id for s in retained[:-1]]
    if announce:
        say("may", name, *may)
    report = await ds.expire(**kwargs)
    if report.expired:
        say("expired", name, *report.expired)


async def expire_volume(
    say: Journal, vol: aiolode.Volume, rng: random.Random, *, announce: bool
) -> None:
    retained = [s async for s in vol.snapshots()]
    if len(retained) < 2:
        return
    if rng.random() < 0.6:
        k = rng.randint(1, 6)
        kwargs: dict[str, Any] = {"keep_last": k}
        may = [s.id for s in retained[:-k]]
    else:
        kwargs = {"older_than": timedelta(seconds=rng.choice((0.0, 0.5, 2.0)))}
        may = [s.id for s in retained[:-1]]
    if announce:
        say("may", "vol", *may)
    report = await vol.expire(**kwargs)
    if report.expired:
        say("expired", "vol", *report.expired)


def maintenance_steps(
    say: Journal,
    store: aiolode.Store,
    opts: dict[str, Any],
    rng: random.Random,
    *,
    announce: bool,
) -> list[tuple[str, str, Callable[[], Awaitable[None]]]]:
    """The maintenance operations of one pass: ``(operation, target, run)``.

    A new lifecycle operation is one more entry here (``compact`` is added
    when the library has it).
    """
    prefix = opts["prefix"]
    grace = timedelta(seconds=opts["grace"])
    steps: list[tuple[str, str, Callable[[], Awaitable[None]]]] = []
    for name in DATASETS:
        ds = make_dataset(store, DATASETS[name], ds_id=ds_id(prefix, name), retry=RETRY)

        async def exp(ds: aiolode.Dataset = ds, name: str = name) -> None:
            await expire_dataset(
                say, ds, name, rng, announce=announce, open_bugs=opts.get("open_bugs", True)
            )

        async def gc(ds: aiolode.Dataset = ds) -> None:
            await ds.gc(grace=grace)

        steps += [("expire", name, exp), ("gc", name, gc)]
        if hasattr(aiolode.Dataset, "compact") and not DATASETS[name].raw:

            async def compact(ds: aiolode.Dataset = ds) -> None:
                await ds.compact(min_files=2)

            steps.append(("compact", name, compact))
    if opts.get("vol"):
        vol = volume(store, opts["vol"], opts["slots"])

        async def vexp() -> None:
            await expire_volume(say, vol, rng, announce=announce)

        async def vgc() -> None:
            await vol.gc(grace=grace)

        steps += [("expire", "vol", vexp), ("gc", "vol", vgc)]
    return steps


async def role_maintain(
    say: Journal, store: aiolode.Store, rng: random.Random, opts: dict[str, Any]
) -> None:
    store = RecordingStore(store, say)
    steps = maintenance_steps(say, store, opts, rng, announce=False)
    while time.time() < opts["deadline"]:
        for op, target, run in steps:
            say("op", op, target)
            with contextlib.suppress(aiolode.NoSnapshotsError):  # nothing committed yet
                await run()
            say("done", op, target)
        await anyio.sleep(rng.uniform(0.0, opts.get("pause", 0.2)))


async def role_read(
    say: Journal, store: aiolode.Store, rng: random.Random, opts: dict[str, Any]
) -> None:
    from ._common import _read_matches

    prefix = opts["prefix"]
    sets = {n: make_dataset(store, DATASETS[n], ds_id=ds_id(prefix, n)) for n in DATASETS}
    while time.time() < opts["deadline"]:
        name = rng.choice(sorted(sets))
        ds = sets[name]
        try:
            retained = [s async for s in ds.snapshots()]
        except aiolode.NoSnapshotsError:
            await anyio.sleep(0.05)
            continue
        if not retained:
            await anyio.sleep(0.05)
            continue
        # The oldest are the ones expiry and gc are about to take.
        snap = retained[min(int(rng.expovariate(0.5)), len(retained) - 1)]
        try:
            content = await ds.read(snap.id)
        except aiolode.AiolodeError as exc:
            say("read", "fail", name, snap.id, type(exc).__name__)
            continue
        tag, n = snap.metadata["tag"], snap.metadata["n"]
        assert isinstance(tag, str)
        assert isinstance(n, int)
        ok = _read_matches(DATASETS[name], content, tag, n)
        say("read", "ok" if ok else "wrong", name, snap.id)


async def role_crash_maintain(
    say: Journal, store: aiolode.Store, rng: random.Random, opts: dict[str, Any]
) -> None:
    """Append a few snapshots, then maintenance operations until killed; drop
    (announced) comes last with probability ``opts["drop"]``."""
    prefix, run = opts["prefix"], opts["run"]
    vol = volume(store, opts["vol"], opts["slots"])
    for name in DATASETS:
        ds = make_dataset(store, DATASETS[name], ds_id=ds_id(prefix, name), retry=RETRY)
        for i in range(rng.randint(2, 6)):
            await append_one(
                say,
                ds,
                name,
                f"r{run}{name}{i}",
                rng.randint(1, 3000) if name == "raw" else rng.randint(1, 40),
            )
    try:
        missing = (await vol.latest()).missing_ranges()
    except aiolode.NoSnapshotsError:
        missing = [(0, opts["slots"] * SLOT)]
    free = [s for off, ln in missing for s in range(off // SLOT, (off + ln) // SLOT)]
    rng.shuffle(free)
    for _ in range(rng.randint(2, 5)):
        if free:
            await commit_slots(say, vol, [free.pop() for _ in range(min(len(free), 2))])
    recording = RecordingStore(store, say)
    steps = maintenance_steps(say, recording, opts, rng, announce=True)
    rng.shuffle(steps)
    say("ready")
    for op, target, step in steps:
        say("op", op, target)
        await step()
        say("done", op, target)
    if rng.random() < opts["drop"]:
        targets = [*DATASETS, "vol"]
        rng.shuffle(targets)
        for target in targets:
            say("op", "drop", target)
            if target == "vol":
                await volume(recording, opts["vol"], opts["slots"]).drop(grace=timedelta(0))
            else:
                ds = make_dataset(recording, DATASETS[target], ds_id=ds_id(prefix, target))
                await ds.drop(grace=timedelta(0))
            say("done", "drop", target)
    say("finished")


ROLES: dict[
    str, Callable[[Journal, aiolode.Store, random.Random, dict[str, Any]], Awaitable[None]]
] = {
    "append": role_append,
    "vol-append": role_vol_append,
    "maintain": role_maintain,
    "read": role_read,
    "crash-maintain": role_crash_maintain,
}


async def _start_signal(say: Journal, go: str) -> float:
    """Say ``ready``, wait for the parent's go file; return the deadline it holds."""
    say("ready")
    path = anyio.Path(go)  # written atomically (os.replace) by the parent
    while not await path.exists():  # noqa: ASYNC110 - a file, polled before any work
        await anyio.sleep(0.02)
    return float(await path.read_text())


async def main(
    role: str, kind: str, location: str, log: str, seed: int, opts: dict[str, Any]
) -> None:
    say = Journal(log)
    rng = random.Random(seed)
    if "go" in opts:
        # Every process of a race starts at once, however long imports took.
        opts["deadline"] = await _start_signal(say, opts["go"])
    async with open_location(kind, location) as store:
        try:
            await ROLES[role](say, store, rng, opts)
        except aiolode.AiolodeError as exc:
            say("error", role, repr(exc).replace("\n", " "))
            raise


if __name__ == "__main__":
    r, k, loc, lg, sd, backend, op = sys.argv[1:8]
    anyio.run(main, r, k, loc, lg, int(sd), json.loads(op), backend=backend)
