"""CI version of the damage matrix (``python -m harness.damage`` is the long run).

Every stored object x every damage x every public read call gives correct data,
a state that is the previous commit's (the newest record deleted), damage the
contract says cannot be seen (bytes changed in place with no digest covering
the read), or an ``AiolodeError`` — never wrong data, another exception, or a
hang; ``verify`` reports what it must. Here a reduced matrix: one bit flip and
one garbage per object, eight worlds chosen so that every kind of object, every
damage and every call runs at least once, on both backends, a memory and a
file store (the native Arrow route).

The bugs the matrix found are pinned below by strict xfails, one test each with
the smallest repro, and are the only findings the matrix tolerates
(``harness.damage.KNOWN_BUGS``): a fixed bug flips its test; then remove its
entry so that the matrix holds the line.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest

import aiolode
from aiolode._history._log import HINT_SCHEMA, encode_pointer
from aiolode.testing import FaultInjectingStore, Hook, Rule
from harness import damage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# (world, store, roles (None: all), calls (name prefixes; None: all), share of them
# run per case). Sized for CI: every kind of object, damage and call runs, on
# both backends, in about 10 s each on a quiet 2-core machine.
_CI: list[tuple[str, str, tuple[str, ...] | None, tuple[str, ...] | None, float]] = [
    ("raw-zstd-xxh3", "memory", None, None, 0.5),
    ("jsonl-gzip-nock", "memory", None, None, 0.3),
    ("arrow-none-nock", "memory", None, None, 0.25),
    (
        "parquet-none-xxh3",  # the filesystem: the native Arrow route
        "file",
        ("data:first", "pmanifest:mid", "record:mid"),
        ("to_arrow_dataset", "read", "files()", "DatasetReader.iter_object"),
        0.5,
    ),
    ("vol-xxh3", "memory", None, None, 0.3),
    ("vol-nock", "file", ("root:head", "segment-list", "block:mid"), None, 0.3),
    (
        "life-vol-xxh3",  # maintenance roots (expiry, gc fence) and a volume low-water mark
        "memory",
        ("root:expire", "root:fence", "lwm", "root:head"),
        None,
        0.4,
    ),
    (
        "life-jsonl-gzip-xxh3",
        "memory",
        ("checkpoint", "lwm", "record:fence", "record:head"),
        ("latest", "snapshot", "files", "read[", "watch", "to_arrow_dataset(memory"),
        0.5,
    ),
]
_ALL = {c.name: c for c in (*damage.DATASET_CONFIGS, *damage.VOLUME_CONFIGS)}


@pytest.fixture(scope="module")
def stores() -> Iterator[dict[str, damage.Stores]]:
    made = {"memory": damage.Stores("memory"), "file": damage.Stores("file")}
    yield made
    for s in made.values():
        s.close()


@pytest.mark.parametrize(
    ("world", "store", "roles", "calls", "share"), _CI, ids=[c[0] for c in _CI]
)
async def test_damage_matrix(
    world: str,
    store: str,
    roles: tuple[str, ...] | None,
    calls: tuple[str, ...] | None,
    share: float,
    stores: dict[str, damage.Stores],
    anyio_backend: str,
) -> None:
    rng = random.Random(f"ci:{world}:{anyio_backend}")
    tally = await damage.run_world(
        _ALL[world],
        stores[store],
        rng,
        flips=1,
        roles=roles,
        call_prefixes=calls,
        call_sample=share,
    )
    unknown = [attrs.asdict(f) for f in tally.unknown()]
    assert unknown == [], json.dumps(unknown[:5], indent=1, default=str)
    # The matrix must bite: damage was seen (typed errors) and survived (correct).
    assert tally.outcomes["typed"] > 0
    assert tally.outcomes["correct"] > 0
    assert tally.outcomes["untyped"] == tally.failures["untyped"]


async def test_ci_covers_every_kind_of_object_damage_and_call() -> None:
    """The reduced matrix still touches every role kind, damage kind and call."""
    for w in {c[0] for c in _CI}:
        await damage.build(_ALL[w])
    kinds = {r.split(":")[0] for c in _CI for r in (c[2] or _roles_of(c[0]))}
    assert kinds >= {
        "descriptor",
        "record",
        "hint",
        "lwm",
        "checkpoint",
        "pmanifest",
        "data",
        "root",
        "segment",
        "segment-list",
        "block",
        "marker",
    }
    calls = {c.name.split("[")[0].split("(")[0] for w in {c[0] for c in _CI} for c in _calls_of(w)}
    assert calls >= {
        "open_blob",
        "read_range",
        "watch",
        "expire",
        "gc",
        "drop",
        "write",
        "read_at",
        "open_reader",
        "to_arrow_dataset",
        "DatasetReader.read_range",
    }


def _calls_of(world: str) -> list[damage.Call]:
    return damage._WORLDS[world].calls if world in damage._WORLDS else []


def _roles_of(world: str) -> tuple[str, ...]:
    # Role names are fixed per world kind (see harness.damage._build_*).
    if world.startswith("vol-"):
        return (
            "root:first",
            "root:mid",
            "root:head",
            "hint",
            "segment:hot",
            "segment:frozen",
            "segment-list",
            "block:first",
            "block:mid",
            "block:last",
        )
    cfg = _ALL[world]
    hive = isinstance(cfg, damage.DsConfig) and cfg.hive
    roles = ["descriptor", "record:first", "record:mid", "record:head", "hint", "data:first"]
    roles += ["marker:first", "marker:head"]
    return (*roles, "data:head", *(["pmanifest:mid"] if hive else []))


async def test_every_damage_kind_applies(stores: dict[str, damage.Stores]) -> None:
    world = await damage.build(_ALL["jsonl-gzip-nock"])
    made = {d.kind for r in world.roles for d in damage.damages(world, r, random.Random(0))}
    # An older version of an overwritten object (the hint, which moves once
    # per 8 records; the low-water mark) exists in the longer lifecycle world.
    life = await damage.build(_ALL["life-jsonl-gzip-xxh3"])
    made |= {d.kind for r in life.roles for d in damage.damages(life, r, random.Random(0))}
    assert made == set(damage.DAMAGE_KINDS)
    assert set(_roles_of("jsonl-gzip-nock")) == set(world.roles)
    vol = await damage.build(_ALL["vol-nock"])
    assert set(_roles_of("vol-nock")) == set(vol.roles)
    life_vol = await damage.build(_ALL["life-vol-xxh3"])
    assert set(life_vol.roles) - set(vol.roles) == {"root:expire", "root:fence", "lwm"}
    for role in ("root:expire", "root:fence"):  # maintenance roots: not snapshots
        doc = json.loads(life_vol.contents[life_vol.roles[role]])
        assert doc["operation"] != "commit", doc["operation"]
    assert {r.split(":")[0] for r in life.roles} >= {"checkpoint", "lwm", "record", "pmanifest"}
    assert json.loads(life.contents[life.head_key])["snapshots"] == []  # lifecycle-only head


# ------------------------------------------------- the classifier can fail
async def test_classifier_reports_wrong_untyped_and_hang(
    stores: dict[str, damage.Stores],
) -> None:
    """A matrix that cannot fail is a defect: feed the judge bad answers."""
    world = await damage.build(_ALL["jsonl-gzip-xxh3"])
    await damage.compute_oracle(world, stores["memory"])
    read = next(c for c in world.calls if c.name == "read[0]")

    def judge(result: Any, role: str = "data:first", size: int | None = None) -> str:
        orig = len(world.contents[world.roles[role]])
        return damage._classify(
            world,
            read,
            result,
            stale_ok=False,
            role=role,
            store="memory",
            sizes=(orig, orig if size is None else size),
        )

    good = world.oracle["read[0]"]
    assert judge(good) == "correct"
    assert judge(("ok", [{"p": "v0", "tag": "x"}])) == "wrong"
    # Checksummed: bytes changed in place are never "undetectable".
    assert judge(("ok", [])) == "wrong"
    assert judge(("error", ValueError("raw"))) == "untyped"
    assert judge(("error", aiolode.CorruptDataError("typed"))) == "typed"
    assert judge(("timeout", None)) == "hang"
    nock = await damage.build(_ALL["jsonl-gzip-nock"])
    await damage.compute_oracle(nock, stores["memory"])
    orig = len(nock.contents[nock.roles["data:first"]])
    same = damage._classify(
        nock,
        read,
        ("ok", []),
        stale_ok=False,
        role="data:first",
        store="memory",
        sizes=(orig, orig),
    )
    shorter = damage._classify(
        nock,
        read,
        ("ok", []),
        stale_ok=False,
        role="data:first",
        store="memory",
        sizes=(orig, orig - 1),
    )
    assert (same, shorter) == ("undetectable", "wrong")


async def test_a_read_that_writes_is_reported(stores: dict[str, damage.Stores]) -> None:
    world = await damage.build(_ALL["raw-none-xxh3"])
    await damage.compute_oracle(world, stores["memory"])

    async def writes(s: aiolode.Store) -> Any:
        await s.put("datasets/d/_log/_latest.json", b"{}", mode="overwrite")
        return True

    call = damage.Call("writer", writes)
    world.oracle["writer"] = ("ok", True)
    tally = await damage.run_case(
        world, "data:first", damage.Damage("delete", None), stores["memory"], calls=[call]
    )
    assert [f.outcome for f in tally.findings] == ["read-wrote"]


# ------------------------------------------------------- the bugs it found
def _log(n: int, ds: str = "d") -> str:
    return f"datasets/{ds}/_log/{n:016d}.json"


async def _edit(store: aiolode.Store, key: str, fn: Callable[[Any], object]) -> None:
    doc = json.loads(await store.get(key))
    fn(doc)
    await store.put(key, json.dumps(doc).encode(), mode="overwrite")


def _bug(name: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"BUG {name}: {damage.KNOWN_BUGS[name]}")


async def test_verify_accepts_a_healthy_dataset_after_expire() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    snaps = [await ds.write([{"a": i}]) for i in range(3)]
    await ds.expire(snapshots=[snaps[0].id])
    await ds.gc(grace=timedelta(0))
    report = await ds.verify()
    assert report.ok, report.problems


async def test_verify_knows_checkpoints() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    for i in range(65):
        await ds.write([{"a": i}])
    await ds.checkpoint()
    (cp,) = [i.key async for i in store.list("datasets/d/_log/_checkpoints/")]
    report = await ds.verify()
    assert report.ok
    assert cp not in report.orphans
    await store.put(cp, b"{not json", mode="overwrite")
    assert not (await ds.verify()).ok


async def test_a_gap_after_the_hint_is_not_a_shorter_history() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    snaps = [await ds.write(b"x0"), await ds.write(b"x1")]
    lagging = await store.get("datasets/d/_log/_latest.json")  # names record 1
    snaps += [await ds.write(b"x%d" % i) for i in range(2, 5)]
    # A hint that lags is a healthy state (the hint is never the truth) ...
    await store.put("datasets/d/_log/_latest.json", lagging, mode="overwrite")
    # ... and the record right after it is lost: records 3, 4, 5 still exist.
    await store.delete(_log(2))
    fresh = aiolode.Dataset("d", store)
    assert not (await fresh.verify()).ok  # verify sees the gap
    try:
        latest = await fresh.latest()
    except aiolode.AiolodeError:
        pass
    else:
        assert latest.id == snaps[-1].id  # today: snapshot 1, silently
    with pytest.raises(aiolode.HistoryGapError):
        [s async for s in fresh.snapshots()]  # today: [snapshot 1]


async def test_commits_racing_the_hint_check_are_not_a_gap() -> None:
    """Was confirm-race: a cold head read checked records hint, hint + 1 and
    hint + 2 concurrently, and two commits landing in between made a healthy
    history a HistoryGapError (tests/dataset/test_concurrency.py flaked)."""
    store = aiolode.MemoryStore()
    await aiolode.Dataset("d", store).write(b"1")
    await aiolode.Dataset("d", store).write(b"2")
    # The hint names the head, as the last writer leaves it.
    await store.put(
        "datasets/d/_log/_latest.json", encode_pointer(HINT_SCHEMA, "d", 2), mode="overwrite"
    )

    async def rivals(_: object) -> None:
        await anyio.sleep(0.05)  # the concurrent get of record 3 has answered: absent
        w = aiolode.Dataset("d", store)
        await w.write(b"3")
        await w.write(b"4")

    racing = FaultInjectingStore(store, [Rule("head", _log(4), nth=1, action=Hook(rivals))])
    assert (await aiolode.Dataset("d", racing).latest()).id.startswith(f"{4:016d}")
    assert (await aiolode.Dataset("d", store).verify()).ok


async def test_a_partition_manifest_of_another_snapshot_is_refused() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    s1 = await ds.write([{"p": "a", "x": 1}])
    s2 = await ds.write([{"p": "a", "x": 2}])
    k1 = s1.manifest.partition_manifests[0].key
    k2 = s2.manifest.partition_manifests[0].key
    await store.put(k2, await store.get(k1), mode="overwrite")
    fresh = aiolode.Dataset("d", store)
    try:
        got = await fresh.read(s2.id)
    except aiolode.AiolodeError:
        got = None
    assert got in (None, [{"p": "a", "x": 2}])  # today: [{"p": "a", "x": 1}]
    assert not (await fresh.verify()).ok  # today: ok


async def test_a_damaged_field_name_is_not_a_missing_field() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    snap = await ds.write([{"p": "a", "x": 1}, {"p": "b", "x": 2}])

    def rename(doc: Any) -> None:
        doc["snapshots"][0]["partition_manifestz"] = doc["snapshots"][0].pop("partition_manifests")

    await _edit(store, _log(1), rename)
    fresh = aiolode.Dataset("d", store)
    with pytest.raises(aiolode.FormatError):
        await fresh.read(snap.id)  # today: [] for a snapshot of 2 rows
    assert not (await fresh.verify()).ok  # today: ok


async def test_a_damaged_seal_name_is_detected() -> None:
    """Found by the matrix: a bit flip in the seal's own name (``~digest``)
    left a document with no seal to check and one unknown member, read as a
    document written before seals: verify (and readers) saw nothing."""
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    snaps = [await ds.write([{"x": i}], idempotency_key=f"k{i}") for i in range(3)]
    for key in (_log(2), _marker("d", "k1")):
        pristine = await store.get(key)
        assert pristine.count(b'"~digest"') == 1
        await store.put(key, pristine.replace(b'"~digest"', b'"~digust"'), mode="overwrite")
        fresh = aiolode.Dataset("d", store)
        report = await fresh.verify()
        assert [p.key for p in report.problems] == [key], report.problems
        assert report.problems[0].kind is aiolode.ProblemKind.INVALID_RECORD
        if key == _log(2):
            with pytest.raises(aiolode.ManifestFormatError, match="has no seal"):
                await fresh.snapshot(snaps[1].id)
        await store.put(key, pristine, mode="overwrite")
    assert (await aiolode.Dataset("d", store).verify()).ok


async def test_readers_refuse_a_record_verify_rejects() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    snaps = [await ds.write(b"x%d" % i) for i in range(3)]
    await _edit(store, _log(3), lambda d: d["snapshots"][0].update(parent_id=snaps[0].id))
    fresh = aiolode.Dataset("d", store)
    assert not (await fresh.verify()).ok  # BROKEN_CHAIN: parent is not snapshot 2
    with pytest.raises(aiolode.FormatError):
        await fresh.snapshot(snaps[2].id)  # today: parent_id 1, served


async def test_a_flipped_metadata_value_is_detected() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    snap = await ds.write(b"x", {"tag": "good"})
    await ds.write(b"y")
    await _edit(store, _log(1), lambda d: d["snapshots"][0]["metadata"].update(tag="evil"))
    fresh = aiolode.Dataset("d", store)
    try:
        meta = (await fresh.snapshot(snap.id)).metadata
    except aiolode.AiolodeError:
        meta = None
    assert meta in (None, {"tag": "good"})  # today: {"tag": "evil"}
    assert not (await fresh.verify()).ok  # today: ok


async def test_a_flipped_volume_root_value_is_detected() -> None:
    store = aiolode.MemoryStore()
    vol = aiolode.Volume("v", store, 100)
    snap = await vol.commit([await vol.stage_write_at(0, b"abc")], {"tag": "good"})
    await _edit(
        store,
        "volumes/v/_log/00000000000000000001.json",
        lambda d: d["metadata"].update(tag="evil"),
    )
    fresh = aiolode.Volume("v", store, 100)
    try:
        meta = (await fresh.snapshot(snap.id)).metadata
    except aiolode.AiolodeError:
        meta = None
    assert meta in (None, {"tag": "good"})  # today: {"tag": "evil"}
    assert not (await fresh.verify()).ok  # today: ok


async def test_a_damaged_checkpoint_is_a_typed_error() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    for i in range(65):
        await ds.write([{"a": i}])
    await ds.checkpoint()
    (cp,) = [i.key async for i in store.list("datasets/d/_log/_checkpoints/")]
    pristine = await aiolode.Dataset("d", store).files()
    await _edit(store, cp, lambda d: d["files"][0].update(snapshot_id="0000000000000001-0009"))
    fresh = aiolode.Dataset("d", store)
    try:
        got = await fresh.files()  # today: KeyError '0000000000000001-0009'
    except aiolode.AiolodeError:
        return
    assert got == pristine


# ------------------------------------------- idempotent retries on damage
def _marker(ds: str, key: str) -> str:
    return damage.marker_key(ds, key)


async def test_a_retry_on_a_damaged_history_is_refused_not_written_twice() -> None:
    """Found by the matrix: the record of the keyed write was damaged, and the
    retry swallowed the error and committed the same write a second time."""
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    first = await ds.write(b"once", idempotency_key="k")
    await ds.write(b"later")
    await store.put(_log(1), b"{damaged", mode="overwrite")
    with pytest.raises(aiolode.AiolodeError):
        await aiolode.Dataset("d", store).write(b"once", idempotency_key="k")
    assert not await store.exists(_log(3))  # nothing was written
    await store.delete(_log(1))
    with pytest.raises(aiolode.AiolodeError):
        await aiolode.Dataset("d", store).write(b"once", idempotency_key="k")
    assert not await store.exists(_log(3))
    assert first.id.startswith("0000000000000001")


async def test_a_marker_naming_no_snapshot_falls_back_to_a_search() -> None:
    """A marker whose snapshot id was damaged (or names another snapshot) is
    not trusted: the retry finds the keyed snapshot in the history."""
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    first = await ds.write(b"once", idempotency_key="k")
    other = await ds.write(b"other", idempotency_key="j")
    for bad in ("0000000000000009-0000", other.id, "not an id"):
        await _edit(store, _marker("d", "k"), lambda d, bad=bad: d.update(snapshot_id=bad))
        again = await aiolode.Dataset("d", store).write(b"once", idempotency_key="k")
        assert again.id == first.id
        assert again.created_at == first.created_at
    assert [s.id async for s in aiolode.Dataset("d", store).snapshots()] == [first.id, other.id]


async def test_a_retry_after_its_marker_was_deleted_is_not_written_twice() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    first = await ds.write(b"once", idempotency_key="k")
    await store.delete(_marker("d", "k"))
    again = await aiolode.Dataset("d", store).write(b"once", idempotency_key="k")
    assert again.id == first.id  # today: a second snapshot


async def test_a_damaged_arrow_file_is_refused_by_the_codec() -> None:
    """The codec path validates IPC buffers before any access (it segfaulted
    on the damage matrix's bit flips before): CorruptDataError."""
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.ArrowIPC(), checksum=None)
    snap = await ds.write([{"i": i, "s": f"row-{i}" * (1 + i % 3)} for i in range(6)])
    raw = await store.get(snap.files[0].key)
    codec = aiolode.ArrowIPC()
    for pos in range(0, len(raw) * 8, 7):
        data = bytearray(raw)
        data[pos // 8] ^= 1 << (pos % 8)
        try:
            codec.decode(bytes(data))
            list(codec.iter_decode([bytes(data)]))
        except aiolode.AiolodeError:
            pass
