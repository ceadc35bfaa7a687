"""The oracle of the lifecycle harness, and its checker process.

``python -m harness._lifecycle_check <kind> <location> <spec.json>`` prints one
JSON line ``{"violations": [...], "counts": {...}}``. With ``"resume": true``
in the spec it checks, reruns the maintenance a kill interrupted (a ``gc``
with no grace; a ``drop`` finished, then the name written again) and checks
again.

The oracle, per dataset (what its processes journaled, see
:mod:`harness._lifecycle_worker`):

- ``verify`` finds no problem;
- every retained snapshot reads back with the bytes its metadata implies, and
  no object it references is one the maintainer deleted;
- every acknowledged snapshot is retained with its tag, unless an expiry
  reported it expired (or, for an expiry a kill interrupted, announced it
  might): then it raises :class:`~aiolode.SnapshotExpiredError`;
- every snapshot an expiry reported is expired; no tag committed twice, none
  invented, none refused (:class:`~aiolode.StaleWriteError`) and committed;
- every failed read by the reader process was of a snapshot not retained at
  the end (expiry is monotonic: retained at the end means retained then).

Per volume: ``verify`` clean; every acknowledged commit's blocks are in the
latest snapshot with their bytes; an acknowledged snapshot is retained and
holds its blocks, or was reported (or announced) expired and raises
:class:`~aiolode.SnapshotExpiredError`; every retained snapshot holds its
parent's ranges, reads back right (a sample), and uses no deleted block.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio

import aiolode
from aiolode import verify_dataset, verify_volume

from ._common import SLOT, _read_matches, _slots, block_bytes, make_dataset, payload
from ._lifecycle_worker import DATASETS, volume
from ._proc import open_location

if TYPE_CHECKING:
    from collections.abc import Iterator

NOW = timedelta(0)


@contextlib.contextmanager
def writer_window_closed() -> Iterator[None]:
    """Let log records go at once (as tests/dataset/test_lifecycle.py does): a
    drop then finishes in one run instead of ten minutes later."""
    from aiolode._history import _collect

    names = vars(_collect)
    saved = names["WRITER_MAX_WARM_AGE"]
    names["WRITER_MAX_WARM_AGE"] = 0
    try:
        yield
    finally:
        names["WRITER_MAX_WARM_AGE"] = saved


async def _expired(get: Any, sid: str) -> str | None:
    """``None`` when ``get(sid)`` raises SnapshotExpiredError, else what happened."""
    try:
        await get(sid)
    except aiolode.SnapshotExpiredError:
        return None
    except aiolode.AiolodeError as exc:
        return f"raises {type(exc).__name__}, not SnapshotExpiredError"
    return "is still readable"


async def check_dataset(
    store: aiolode.Store, name: str, ds: dict[str, Any], counts: Counter[str]
) -> list[str]:
    """The oracle for dataset ``ds["id"]`` (kind ``name``); see the module docstring."""
    cfg = DATASETS[name]
    dataset = make_dataset(store, cfg, ds_id=ds["id"])
    bad: list[str] = []
    try:
        retained = [s async for s in dataset.snapshots()]
    except aiolode.DatasetNotFoundError:
        if ds.get("drop"):
            counts["dropped"] += 1
            return []  # the drop committed its tombstone: resume() checks the rest
        if ds["acked"]:
            return [f"{len(ds['acked'])} acknowledged snapshots but no dataset"]
        return []
    report = await verify_dataset(store, ds["id"], layout=dataset.layout)
    bad += [f"verify: {p}" for p in report.problems]
    deleted = set(ds.get("deleted", ()))
    refused = set(ds.get("refused", ()))
    attempted = set(ds["attempted"]) if ds.get("attempted") is not None else None
    seen: dict[str, str] = {}
    for snap in retained:
        tag, n = snap.metadata.get("tag"), snap.metadata.get("n")
        if not isinstance(tag, str) or not isinstance(n, int):
            bad.append(f"snapshot {snap.id}: unexpected metadata {snap.metadata!r}")
            continue
        if tag in seen:
            bad.append(f"tag {tag} committed twice ({seen[tag]} and {snap.id})")
        seen[tag] = snap.id
        if attempted is not None and tag not in attempted:
            bad.append(f"snapshot {snap.id} has tag {tag} nobody wrote")
        if tag in refused:
            bad.append(f"snapshot {snap.id} ({tag}) was refused as stale, yet committed")
        keys = {f.key for f in snap.files} | {p.key for p in snap.manifest.partition_manifests}
        gone = sorted(keys & deleted)
        if gone:
            bad.append(f"retained snapshot {snap.id}: the maintainer deleted {gone}")
        try:
            content = await dataset.read(snap.id)
        except aiolode.AiolodeError as exc:
            bad.append(f"retained snapshot {snap.id} unreadable: {exc!r}")
            continue
        counts["reads_checked"] += 1
        if not _read_matches(cfg, content, tag, n):
            bad.append(f"retained snapshot {snap.id} ({tag}) reads back wrong content")
    retained_ids = {s.id for s in retained}
    counts["retained"] += len(retained)
    expired = set(ds.get("expired", ()))
    may = expired | set(ds.get("may", ()))
    for sid, tag in ds["acked"].items():
        if seen.get(tag) == sid:
            counts["acked_retained"] += 1
            continue
        if sid not in may:
            bad.append(f"acknowledged snapshot {sid} ({tag}) lost: not retained, never expired")
            continue
        why = await _expired(dataset.snapshot, sid)
        if why is not None:
            bad.append(f"acknowledged snapshot {sid} ({tag}) is gone but {why}")
        counts["acked_expired"] += 1
    for sid in sorted(expired):
        if sid in retained_ids:
            bad.append(f"snapshot {sid} was reported expired but is retained")
        elif sid not in ds["acked"]:
            why = await _expired(dataset.snapshot, sid)
            if why is not None:
                bad.append(f"snapshot {sid} was reported expired but {why}")
    for sid, err in ds.get("read_failures", ()):
        if sid in retained_ids:
            bad.append(f"a read of retained snapshot {sid} failed: {err}")
        else:
            counts["reads_of_expired_refused"] += 1
    counts["deleted_checked"] += len(deleted)
    return bad


async def check_volume(
    store: aiolode.Store, vol: dict[str, Any], counts: Counter[str]
) -> list[str]:
    """The oracle for volume ``vol["id"]``; see the module docstring."""
    v = volume(store, vol["id"], vol["slots"])
    total = vol["slots"] * SLOT
    bad: list[str] = []
    try:
        latest = await v.latest()
    except aiolode.VolumeNotFoundError:
        if vol.get("drop"):
            counts["dropped"] += 1
            return []
        return [f"{len(vol['acked'])} acknowledged commits but no volume"] if vol["acked"] else []
    except aiolode.NoSnapshotsError:
        return [f"{len(vol['acked'])} acknowledged commits but no snapshot"] if vol["acked"] else []
    report = await verify_volume(store, vol["id"], total_length=total, checksum=aiolode.SHA256())
    bad += [f"verify: {p}" for p in report.problems]
    retained = [s async for s in v.snapshots()]
    counts["retained"] += len(retained)
    deleted = set(vol.get("deleted", ()))
    prev: set[int] = set()
    for snap in retained:
        cov = _slots(snap.committed_ranges())
        if not prev <= cov:
            bad.append(f"snapshot {snap.id} lost ranges of its parent")
        prev = cov
        gone = sorted({b.key for b in snap.blocks()} & deleted)
        if gone:
            bad.append(f"retained snapshot {snap.id}: the maintainer deleted {gone[:3]}")
    rng = random.Random(len(retained))
    sample = [latest, *rng.sample(retained, min(len(retained), 8))]
    for snap in sample:
        for off, length in snap.committed_ranges():
            try:
                got = await v.read_at(snap.id, off, length)
            except aiolode.AiolodeError as exc:
                bad.append(f"read_at({off}, {length}) of {snap.id} failed: {exc!r}")
                continue
            counts["reads_checked"] += 1
            if got != block_bytes(off, length):
                bad.append(f"read_at({off}, {length}) of {snap.id} returned wrong bytes")
    latest_cov = _slots(latest.committed_ranges())
    by_id = {s.id: s for s in retained}
    may = set(vol.get("expired", ())) | set(vol.get("may", ()))
    for sid, blocks in vol["acked"]:
        want = _slots([tuple(b) for b in blocks])
        if not want <= latest_cov:
            bad.append(f"acknowledged commit {sid}: its blocks are not in the latest snapshot")
        if sid in by_id:
            counts["acked_retained"] += 1
            if not want <= _slots(by_id[sid].committed_ranges()):
                bad.append(f"acknowledged snapshot {sid} does not hold its blocks")
            continue
        if sid not in may:
            bad.append(f"acknowledged snapshot {sid} lost: not retained, never expired")
            continue
        why = await _expired(v.snapshot, sid)
        if why is not None:
            bad.append(f"acknowledged snapshot {sid} is gone but {why}")
        counts["acked_expired"] += 1
    for sid in vol.get("expired", ()):
        if sid in by_id:
            bad.append(f"snapshot {sid} was reported expired but is retained")
    counts["deleted_checked"] += len(deleted)
    return bad


async def check(store: aiolode.Store, spec: dict[str, Any], counts: Counter[str]) -> list[str]:
    """The oracle over every dataset and volume of ``spec``."""
    bad: list[str] = []
    for name, ds in spec.get("datasets", {}).items():
        bad += [f"{ds['id']}: {b}" for b in await check_dataset(store, name, ds, counts)]
    for vol in spec.get("volumes", []):
        bad += [f"{vol['id']}: {b}" for b in await check_volume(store, vol, counts)]
    return bad


async def _keys(store: aiolode.Store, prefix: str) -> list[str]:
    return [o.key async for o in store.list(prefix)]


async def finish_dataset_drop(
    store: aiolode.Store, name: str, ident: str, counts: Counter[str]
) -> list[str]:
    """Rerun an interrupted drop: the name is gone, only log records are left,
    the drop finishes once the writers' window is over, the name is reusable."""
    cfg = DATASETS[name]
    bad: list[str] = []
    ds = make_dataset(store, cfg, ds_id=ident)
    report = await ds.drop(grace=NOW)
    if await ds.exists():
        bad.append("still exists after drop()")
    try:
        await make_dataset(store, cfg, ds_id=ident).latest()
        bad.append("latest() answers after drop()")
    except aiolode.DatasetNotFoundError:
        pass
    named = [k for k in report.remaining if "/_log/" not in k]
    # What remains besides records may only be what the store stamped in the
    # tombstone's second (unnamed by the history): the next run takes it.
    counts["drop_left_unnamed"] += len(named)
    with writer_window_closed():
        final = await make_dataset(store, cfg, ds_id=ident).drop(grace=NOW)
    if not final.done:
        bad.append(f"drop() not done once the window is over: {final.remaining[:5]}")
    root = ds.layout.root(ident)
    left = await _keys(store, root)
    if left:
        bad.append(f"objects left after a finished drop: {left[:5]}")
    again = make_dataset(store, cfg, ds_id=ident)
    tag = f"again-{ident}"
    content: Any = payload(tag, 33) if cfg.raw else [{"p": "v0", "tag": tag, "i": 0}]
    snap = await again.write(content, {"tag": tag, "n": 33 if cfg.raw else 1})
    got = await make_dataset(store, cfg, ds_id=ident).read(snap.id)
    if not _read_matches(cfg, got, tag, 33 if cfg.raw else 1):
        bad.append("a new life of the name reads back wrong")
    ids = [s.id async for s in make_dataset(store, cfg, ds_id=ident).snapshots()]
    if ids != [snap.id]:
        bad.append(f"the new life sees snapshots {ids}, expected only {snap.id}")
    rep = await verify_dataset(store, ident, layout=again.layout)
    bad += [f"verify of the new life: {p}" for p in rep.problems]
    counts["drops_finished"] += 1
    return bad


async def finish_volume_drop(
    store: aiolode.Store, ident: str, slots: int, counts: Counter[str]
) -> list[str]:
    bad: list[str] = []
    v = volume(store, ident, slots)
    report = await v.drop(grace=NOW)
    if any("/_log/" not in k for k in report.remaining):
        bad.append(f"a dropped volume left more than log records: {report.remaining[:5]}")
    try:
        await volume(store, ident, slots).latest()
        bad.append("latest() answers after drop()")
    except aiolode.VolumeNotFoundError:
        pass
    with writer_window_closed():
        final = await volume(store, ident, slots).drop(grace=NOW)
    if not final.done:
        bad.append(f"drop() not done once the window is over: {final.remaining[:5]}")
    fresh = volume(store, ident, slots)
    ref = await fresh.stage_write_at(0, block_bytes(0, SLOT))
    snap = await fresh.commit([ref])
    if await volume(store, ident, slots).read_at(snap.id, 0, SLOT) != block_bytes(0, SLOT):
        bad.append("a new life of the volume reads back wrong")
    counts["drops_finished"] += 1
    return bad


async def resume(store: aiolode.Store, spec: dict[str, Any], counts: Counter[str]) -> list[str]:
    """Rerun the maintenance: finish started drops, collect again elsewhere."""
    bad: list[str] = []
    for name, ds in spec.get("datasets", {}).items():
        if ds.get("drop"):
            bad += [
                f"{ds['id']}: {b}" for b in await finish_dataset_drop(store, name, ds["id"], counts)
            ]
            ds["dropped_and_finished"] = True
        else:
            with contextlib.suppress(aiolode.DatasetNotFoundError):
                await make_dataset(store, DATASETS[name], ds_id=ds["id"]).gc(grace=NOW)
    for vol in spec.get("volumes", []):
        if vol.get("drop"):
            bad += [
                f"{vol['id']}: {b}"
                for b in await finish_volume_drop(store, vol["id"], vol["slots"], counts)
            ]
            vol["dropped_and_finished"] = True
        else:
            with contextlib.suppress(aiolode.NoSnapshotsError):
                await volume(store, vol["id"], vol["slots"]).gc(grace=NOW)
    return bad


async def check_and_resume(
    store: aiolode.Store, spec: dict[str, Any]
) -> tuple[list[str], Counter[str]]:
    """The oracle; with ``spec["resume"]``, then rerun and the oracle again on
    what was not dropped."""
    counts: Counter[str] = Counter()
    bad = [f"after the kill: {b}" for b in await check(store, spec, counts)]
    if spec.get("resume"):
        # gc needs the refused writes' objects older than the store's stamps say.
        await anyio.sleep(store.stamp_resolution.total_seconds())
        bad += [f"rerun: {b}" for b in await resume(store, spec, counts)]
        rest = {
            "datasets": {n: d for n, d in spec.get("datasets", {}).items() if not d.get("drop")},
            "volumes": [v for v in spec.get("volumes", []) if not v.get("drop")],
        }
        bad += [f"after the rerun: {b}" for b in await check(store, rest, Counter())]
    return bad, counts


async def main(kind: str, location: str, spec_path: str) -> dict[str, Any]:
    with open(spec_path) as f:  # noqa: ASYNC230 - a small file, before any concurrency
        spec = json.load(f)
    async with open_location(kind, location) as store:
        bad, counts = await check_and_resume(store, spec)
    return {"violations": bad, "counts": dict(counts)}


if __name__ == "__main__":
    out = anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
    print(json.dumps(out))
    sys.exit(1 if out["violations"] else 0)
