"""The damage matrix (issue 10 §2): every stored object x every damage x every read call.

A *world* is a dataset (or volume) written through the library into a
``MemoryStore``, next to a second one of the same configuration ("the other
one", whose objects are swapped in), with every stored object named by its
*role* (``record:head``, ``data:first``, ``segment:hot`` …). For each role and
each damage (delete, truncate, bit flip, garbage, empty, a valid object of the
other dataset/volume swapped in, one of another snapshot/sequence of the same
one, an older version of the same key) the pristine bytes are copied into a
fresh store (memory or filesystem), the one object is damaged, and every public
read call runs on fresh objects, each under a timeout. Each result is
classified against the *oracle* (the same call on the pristine store, itself
checked against what was written):

``correct``       equal to the oracle
``stale``         equal to the oracle of the state before the last commit, for
                  a damage that *is* that state (the newest record/root deleted:
                  indistinguishable from the commit never having happened)
``typed``         an :class:`aiolode.AiolodeError` subclass
``undetectable``  different data, where the contract says it cannot be told:
                  a data file or block changed *in place, same size*, and no
                  digest covers the read (no checksum; a partial ``read_range``;
                  an Arrow dataset read in place without ``verify=True``)
``wrong``         different data: a failure
``untyped``       any other exception: a failure
``hang``          no answer within the timeout: a failure

``verify()`` runs on each damaged state too: it must not be ``ok`` where the
damaged object is referenced by the history (records, partition manifests,
checkpoints, data files, index documents, blocks), nor where a read call saw
the damage as an error; and it must be ``ok`` for states that are legitimate
(a deleted or older ``latest`` hint). Finally, no read call may write: the
store must hold exactly the damaged bytes afterwards.

``python -m harness.damage`` runs the long version (``nox -s harness_damage``);
``tests/harness/test_damage.py`` runs a reduced one in CI.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
import attrs

import aiolode
from aiolode.volume import _index as volume_index

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = [
    "DAMAGE_KINDS",
    "DATASET_CONFIGS",
    "OUTCOMES",
    "VOLUME_CONFIGS",
    "Call",
    "Damage",
    "DsConfig",
    "Tally",
    "VolConfig",
    "World",
    "build",
    "damages",
    "run_case",
    "run_world",
]

OUTCOMES = ("correct", "stale", "typed", "undetectable", "wrong", "untyped", "hang")
FAILING = ("wrong", "untyped", "hang", "verify-missed", "verify-false-alarm", "read-wrote")
DAMAGE_KINDS = (
    "delete",
    "truncate",
    "bitflip",
    "garbage",
    "empty",
    "swap-other",
    "swap-sibling",
    "older",
)

CALL_TIMEOUT = 20.0
"""Seconds a read call may take before it counts as a hang."""
WATCH_IDLE = 0.75
"""Seconds a watch may stay silent before the items so far are its answer."""
WATCH_CONFIRM = 8.0
"""A watch that fell short is run again with this idle time before it counts as a hang."""

# --------------------------------------------------------------------- configs


@attrs.frozen
class DsConfig:
    """A dataset world: codec x compressor x checksum; ``lifecycle`` for the long history."""

    name: str
    codec: str | None  # None (raw), "jsonl", "parquet", "arrow"
    compressor: str | None = None  # None, "gzip", "zstd"
    checksum: str | None = "xxh3"  # None, "xxh3", "sha256"
    lifecycle: bool = False

    @property
    def hive(self) -> bool:
        return self.codec is not None


@attrs.frozen
class VolConfig:
    """A volume world: with or without a block checksum."""

    name: str
    checksum: str | None
    lifecycle: bool = False


def _ds_configs() -> tuple[DsConfig, ...]:
    out = []
    for codec in (None, "jsonl", "parquet", "arrow"):
        for comp in (None, "gzip", "zstd"):
            if codec == "parquet" and comp is not None:
                continue  # Parquet compresses internally: an outer compressor is refused
            for ck in ("xxh3", None):
                name = f"{codec or 'raw'}-{comp or 'none'}-{ck or 'nock'}"
                out.append(DsConfig(name, codec, comp, ck))
    out.append(DsConfig("jsonl-none-sha256", "jsonl", None, "sha256"))
    out.append(DsConfig("life-jsonl-gzip-xxh3", "jsonl", "gzip", "xxh3", lifecycle=True))
    out.append(DsConfig("life-raw-none-nock", None, None, None, lifecycle=True))
    return tuple(out)


DATASET_CONFIGS = _ds_configs()
VOLUME_CONFIGS = (
    VolConfig("vol-nock", None),
    VolConfig("vol-xxh3", "xxh3"),
    VolConfig("vol-sha256", "sha256"),
    VolConfig("life-vol-xxh3", "xxh3", lifecycle=True),
)

_CHECKSUMS: dict[str | None, Callable[[], aiolode.Checksum | None]] = {
    None: lambda: None,
    "xxh3": aiolode.XXH3,
    "sha256": aiolode.SHA256,
}


def _make_dataset(cfg: DsConfig, store: aiolode.Store, ds_id: str) -> aiolode.Dataset:
    codec = {
        None: None,
        "jsonl": aiolode.JSONL,
        "parquet": aiolode.Parquet,
        "arrow": aiolode.ArrowIPC,
    }[cfg.codec]
    comp = {None: None, "gzip": aiolode.Gzip, "zstd": aiolode.Zstd}[cfg.compressor]
    return aiolode.Dataset(
        ds_id,
        store,
        codec=codec() if codec else None,
        compressor=comp() if comp else None,
        checksum=_CHECKSUMS[cfg.checksum](),
        layout=aiolode.HiveLayout("p") if cfg.hive else aiolode.DefaultLayout(),
    )


def blob(tag: str, step: int) -> bytes:
    """The raw blob of step ``step`` of dataset ``tag`` (sizes differ by step)."""
    seed = hashlib.sha256(f"{tag}:{step}".encode()).digest()
    n = 180 + 37 * step
    return (seed * (n // 32 + 1))[:n]


def rows(tag: str, step: int) -> list[dict[str, Any]]:
    """The records of step ``step`` of dataset ``tag`` (two partitions)."""
    return [
        {"p": f"v{i % 2}", "tag": tag, "step": step, "i": i, "s": f"{tag}-{step}-{i}" * (1 + i % 3)}
        for i in range(3 + step % 4)
    ]


def block(tag: str, offset: int, length: int) -> bytes:
    """The bytes volume ``tag`` stores at ``[offset, offset + length)``."""
    seed = hashlib.sha256(f"{tag}:{offset}".encode()).digest()
    return (seed * (length // 32 + 1))[:length]


# ------------------------------------------------------------------ the world

Result = tuple[str, Any]  # ("ok", canonical value) | ("error", exc) | ("timeout", None)


@attrs.frozen
class Call:
    """One public read call: ``fn(store)`` returns a canonical, comparable value."""

    name: str
    fn: Callable[[aiolode.Store], Awaitable[Any]] = attrs.field(eq=False, repr=False)
    kind: Literal["value", "watch", "verify"] = "value"
    # Store kinds on which no digest covers what this call returns, by contract: a
    # read_range, an Arrow dataset read in place (NATIVE/STORE route) without
    # verify=True, a volume range read without checksums. ``span`` is the
    # (offset, length) it reads of the damaged object (None: all of it).
    partial_on: tuple[str, ...] = ()
    span: tuple[int, int] | None = None
    # A call that writes (an idempotent retry) runs on its own copy of the state
    # and is left out of the "no read writes" check.
    writes: bool = False
    # Store kinds on which this call reads a damaged data file through pyarrow's
    # own (unvalidated) IPC reader and can crash the process: skipped for
    # damaged data files there (KNOWN_BUGS["arrow-inplace-crash"]).
    crashes_on: tuple[str, ...] = ()
    # A custom judge of an "ok" answer: (world, value, oracle value, stale_ok) ->
    # "correct" | "wrong" (dry runs: what they would delete, not what they return).
    judge: Callable[[World, Any, Any, bool], str] | None = attrs.field(
        default=None, eq=False, repr=False
    )


@attrs.define
class World:
    """A pristine store and everything needed to damage it and judge the reads."""

    kind: Literal["dataset", "volume"]
    config: DsConfig | VolConfig
    contents: dict[str, bytes]
    prev: dict[str, bytes]
    roles: dict[str, str]
    other: dict[str, str]
    siblings: dict[str, str]
    versions: dict[str, list[bytes]]
    head_key: str
    referenced: set[str]
    data_roles: set[str]  # data files / blocks: undetectable in place without a digest
    hint_roles: set[str]  # best-effort pointers: deleting or aging them is a legitimate state
    calls: list[Call]
    checksum: bool
    root: str = ""
    oracle: dict[str, Result] = attrs.field(factory=dict)
    prev_oracle: dict[str, Result] = attrs.field(factory=dict)
    oracle_store: str | None = None
    written: dict[Any, Any] = attrs.field(factory=dict)
    baseline: set[tuple[Any, str | None, str]] = attrs.field(factory=set)

    @property
    def name(self) -> str:
        return self.config.name


async def _contents(store: aiolode.MemoryStore) -> dict[str, bytes]:
    out = {}
    async with aclosing(store.list()) as infos:
        async for info in infos:
            out[info.key] = await store.get(info.key)
    return out


class _Versions:
    """Records every version of the keys that are overwritten (hints, low-water marks)."""

    def __init__(self, store: aiolode.MemoryStore, keys: Sequence[str]) -> None:
        self.store = store
        self.keys = list(keys)
        self.seen: dict[str, list[bytes]] = {k: [] for k in keys}

    async def capture(self) -> None:
        for k in self.keys:
            try:
                data = await self.store.get(k)
            except aiolode.ObjectNotFoundError:
                continue
            if not self.seen[k] or self.seen[k][-1] != data:
                self.seen[k].append(data)

    def older(self) -> dict[str, list[bytes]]:
        return {k: v[:-1] for k, v in self.seen.items() if len(v) > 1}


def _log_key(ds_id: str, seq: int) -> str:
    return f"datasets/{ds_id}/_log/{seq:016d}.json"


def marker_key(ds_id: str, idem: str) -> str:
    """Where the idempotency marker of key ``idem`` of dataset ``ds_id`` lives."""
    digest = hashlib.sha256(idem.encode()).hexdigest()[:40]
    return f"datasets/{ds_id}/_log/_keys/{digest}.json"


def _other_key(key: str, mine: str, theirs: str) -> str:
    return key.replace(f"/{mine}/", f"/{theirs}/", 1)


# ------------------------------------------------------------------ datasets
async def _build_dataset(cfg: DsConfig) -> World:
    store = aiolode.MemoryStore()
    dss = {t: _make_dataset(cfg, store, t) for t in ("d", "o")}
    vers = _Versions(
        store,
        [f"datasets/{t}/_log/{n}" for t in ("d", "o") for n in ("_latest.json", "_lwm.json")]
        + [marker_key(t, f"k{i}") for t in ("d", "o") for i in range(4)],
    )
    snaps: dict[str, list[aiolode.Snapshot]] = {"d": [], "o": []}
    written: dict[str, Any] = {}
    step = 0

    async def write_both() -> None:
        nonlocal step
        for tag, ds in dss.items():
            data = blob(tag, step) if cfg.codec is None else rows(tag, step)
            extra: dict[str, Any] = {"idempotency_key": f"k{step}"}
            if cfg.codec is None:
                extra["content_type"] = "application/x-damage"
            snap = await ds.write(data, {"tag": tag, "step": step}, **extra)
            snaps[tag].append(snap)
            if tag == "d":
                written[snap.id] = data
        step += 1
        await vers.capture()

    if not cfg.lifecycle:
        for _ in range(3):
            await write_both()
        prev = await _contents(store)
        await write_both()
        head_seq = 4
        expired: list[str] = []
    else:
        for _ in range(66):  # past the 64-record checkpoint boundary
            await write_both()
        for ds in dss.values():
            await ds.checkpoint()
        expired = []
        for lo, hi in ((0, 5), (5, 10)):
            for tag, ds in dss.items():
                ids = [s.id for s in snaps[tag][lo:hi]]
                await ds.expire(snapshots=ids)
                await ds.gc(grace=timedelta(0))  # collects records below: a low-water mark
                if tag == "d":
                    expired += ids
            await vers.capture()
            await write_both()
        prev = await _contents(store)
        for tag, ds in dss.items():  # a lifecycle-only record at the head
            await ds.expire(snapshots=[snaps[tag][10].id])
        expired.append(snaps["d"][10].id)
        await vers.capture()
        head_seq = _head_seq(await _contents(store), "d")
    contents = await _contents(store)

    d_snaps = snaps["d"]
    o_snaps = snaps["o"]
    roles: dict[str, str] = {"descriptor": "datasets/d/_dataset.json"}
    siblings: dict[str, str] = {}
    if not cfg.lifecycle:
        roles |= {
            "record:first": _log_key("d", 1),
            "record:mid": _log_key("d", 2),
            "record:head": _log_key("d", head_seq),
        }
        siblings |= {
            "record:first": _log_key("d", 2),
            "record:mid": _log_key("d", 3),
            "record:head": _log_key("d", head_seq - 1),
        }
        roles |= {"marker:first": marker_key("d", "k0"), "marker:head": marker_key("d", "k3")}
        siblings |= {"marker:first": marker_key("d", "k1"), "marker:head": marker_key("d", "k2")}
        pick = [d_snaps[0], d_snaps[1], d_snaps[-1]]
        data_pick = {"data:first": (0, 1), "data:head": (-1, -2)}
        pm_pick = {"pmanifest:mid": (1, 2)}
    else:
        seqs = _record_seqs(contents, "d")
        cp_key = next(k for k in contents if k.startswith("datasets/d/_log/_checkpoints/"))
        fence_seq = max(s for s in seqs if s < head_seq and _is_lifecycle(contents, "d", s))
        roles |= {
            "record:expired": _log_key("d", 11),
            "record:old": _log_key("d", 30),
            "record:after-checkpoint": _log_key("d", 65),
            "record:fence": _log_key("d", fence_seq),
            "record:last-append": _log_key("d", head_seq - 1),
            "record:head": _log_key("d", head_seq),
            "checkpoint": cp_key,
            "lwm": "datasets/d/_log/_lwm.json",
        }
        siblings |= {
            "record:expired": _log_key("d", 12),
            "record:old": _log_key("d", 31),
            "record:after-checkpoint": _log_key("d", 66),
            "record:fence": _log_key("d", fence_seq - 1),
            "record:last-append": _log_key("d", head_seq - 2),
            "record:head": _log_key("d", head_seq - 1),
        }
        pick = [d_snaps[10], d_snaps[29], d_snaps[-1]]  # expired, old, newest
        data_pick = {"data:old": (29, 30), "data:head": (-1, -2)}
        pm_pick = {"pmanifest:head": (-1, -2)}
    roles["hint"] = "datasets/d/_log/_latest.json"
    for role, (i, j) in data_pick.items():
        roles[role] = d_snaps[i].files[0].key
        siblings[role] = d_snaps[j].files[0].key
    other = {
        r: _other_key(k, "d", "o")
        for r, k in roles.items()
        if not r.startswith(("data:", "pmanifest:"))
    }
    for role, (i, _) in data_pick.items():
        other[role] = o_snaps[i].files[0].key
    if cfg.hive:
        for role, (i, j) in pm_pick.items():
            roles[role] = d_snaps[i].manifest.partition_manifests[0].key
            siblings[role] = d_snaps[j].manifest.partition_manifests[0].key
            other[role] = o_snaps[i].manifest.partition_manifests[0].key
    for r in list(other):
        if other[r] not in contents:
            del other[r]
    versions = {
        k: v for k, v in vers.older().items() if k.startswith("datasets/d/") and k in contents
    }
    referenced = {
        r
        for r in roles
        if r.startswith(("record:", "pmanifest:", "data:", "checkpoint", "marker:"))
    }
    data_roles = {r for r in roles if r.startswith("data:")}
    world = World(
        kind="dataset",
        config=cfg,
        contents=contents,
        prev=prev,
        roles=roles,
        other=other,
        siblings=siblings,
        versions=versions,
        head_key=_log_key("d", head_seq),
        referenced=referenced,
        data_roles=data_roles,
        # Best-effort pointers: the hint; idempotency markers (one deleted or a
        # step behind is a state a crash leaves).
        hint_roles={"hint"} | {r for r in roles if r.startswith("marker:")},
        calls=[],
        checksum=cfg.checksum is not None,
        root="datasets/d/",
    )
    visible = [s for s in d_snaps if s.id not in expired]
    # An idempotent retry of the first and the newest write (their markers are roles).
    retries = (
        []
        if cfg.lifecycle
        else [
            (f"k{i}", d_snaps[i], written[d_snaps[i].id], {"tag": "d", "step": i}) for i in (0, 3)
        ]
    )
    world.calls = _dataset_calls(cfg, visible, pick, await dss["d"].files(), len(visible), retries)
    world.calls.append(Call("verify", _verify_dataset, kind="verify"))
    # What was written is what the oracle must read back (checked in compute_oracle).
    world.written = {s.id: written[s.id] for s in pick if s.id not in expired}
    return world


def _record_seqs(contents: dict[str, bytes], ds_id: str) -> list[int]:
    prefix = f"datasets/{ds_id}/_log/"
    out = []
    for k in contents:
        stem = k[len(prefix) :].removesuffix(".json")
        if k.startswith(prefix) and stem.isdigit() and len(stem) == 16:
            out.append(int(stem))
    return sorted(out)


def _head_seq(contents: dict[str, bytes], ds_id: str) -> int:
    return _record_seqs(contents, ds_id)[-1]


def _is_lifecycle(contents: dict[str, bytes], ds_id: str, seq: int) -> bool:
    doc = json.loads(contents[_log_key(ds_id, seq)])
    return not doc.get("snapshots")


def _dataset(store: aiolode.Store) -> aiolode.Dataset:
    return aiolode.Dataset("d", store)  # by name: the descriptor says what it is


def _table(table: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    cols = tuple(sorted(table.column_names))
    out = sorted(
        json.dumps({c: r[c] for c in cols}, sort_keys=True, default=repr) for r in table.to_pylist()
    )
    return cols, tuple(out)


class ScanError(Exception):
    """A non-aiolode error raised by pyarrow's own ``to_table()`` scan (``.error``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


async def _materialise(ads: Any) -> Any:
    """``to_table()`` of an Arrow dataset, in a worker thread, canonicalised.

    Errors pyarrow raises while scanning come back as :class:`ScanError`, so the
    classifier can tell them from errors of ``to_arrow_dataset`` itself.
    """

    def run() -> Any:
        try:
            return _table(ads.to_table())
        except aiolode.AiolodeError:
            raise
        except Exception as exc:
            raise ScanError(exc) from exc

    return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)


def _dataset_calls(
    cfg: DsConfig,
    visible: list[aiolode.Snapshot],
    pick: list[aiolode.Snapshot],
    files: list[aiolode.DataFile],
    n_visible: int,
    retries: Sequence[tuple[str, aiolode.Snapshot, Any, dict[str, Any]]] = (),
) -> list[Call]:
    calls: list[Call] = []

    def add(name: str, fn: Callable[[aiolode.Store], Awaitable[Any]], **kw: Any) -> None:
        calls.append(Call(name, fn, **kw))

    async def latest(s: aiolode.Store) -> Any:
        return (await _dataset(s).latest()).manifest

    add("latest", latest)

    async def exists(s: aiolode.Store) -> Any:
        return await _dataset(s).exists()

    add("exists", exists)
    for i, snap in enumerate(pick):
        sid = snap.id

        async def one(s: aiolode.Store, sid: str = sid) -> Any:
            return (await _dataset(s).snapshot(sid)).manifest

        add(f"snapshot[{i}]", one)

    for newest in (False, True):

        async def walk(s: aiolode.Store, newest: bool = newest) -> Any:
            ds = _dataset(s)
            async with aclosing(ds.snapshots(newest_first=newest)) as it:
                return tuple([x.manifest async for x in it])

        add(f"snapshots(newest_first={newest})", walk)

    mid = visible[len(visible) // 2]
    for label, when in (
        ("mid", mid.created_at),
        ("future", datetime(2200, 1, 1, tzinfo=UTC)),
    ):

        async def as_of(s: aiolode.Store, when: datetime = when) -> Any:
            return (await _dataset(s).snapshot_as_of(when)).manifest

        add(f"snapshot_as_of({label})", as_of)

    where: Any = {"p": "v0"} if cfg.hive else (lambda part: True)
    variants: list[tuple[str, dict[str, Any]]] = [
        ("", {}),
        ("where", {"where": where}),
        ("since", {"since": visible[len(visible) // 3].id}),
        ("as_of", {"as_of": mid.id}),
    ]
    for label, kw in variants:

        async def fls(s: aiolode.Store, kw: dict[str, Any] = kw) -> Any:
            return tuple(await _dataset(s).files(**kw))

        add(f"files({label})", fls)

    async def parts(s: aiolode.Store) -> Any:
        async with aclosing(_dataset(s).partitions()) as it:
            return tuple([dict(p) async for p in it])

    add("partitions", parts)

    for i, snap in enumerate(pick):
        sid = snap.id

        async def rd(s: aiolode.Store, sid: str = sid) -> Any:
            return await _dataset(s).read(sid)

        add(f"read[{i}]", rd)
        if cfg.codec is None:
            continue

        async def rt(s: aiolode.Store, sid: str = sid) -> Any:
            table = await _dataset(s).read_table(sid)
            return await anyio.to_thread.run_sync(_table, table)

        add(f"read_table[{i}]", rt)

        async def it(s: aiolode.Store, sid: str = sid) -> Any:
            async with aclosing(_dataset(s).iter_records(sid, batch_size=2)) as recs:
                return [r async for r in recs]

        add(f"iter_records[{i}]", it)

    if cfg.codec is not None:
        # Which routes read in place (docs/reader.md): "auto" on a FileStore is
        # NATIVE for uncompressed files and gzipped JSONL; "store" is STORE for
        # uncompressed Parquet/Arrow (JSONL is decoded eagerly there); compressed
        # files are otherwise fetched whole and checked.
        in_place = {
            "auto": ("file",)
            if cfg.compressor is None or (cfg.codec == "jsonl" and cfg.compressor == "gzip")
            else (),
            "store": ("memory", "file") if cfg.compressor is None and cfg.codec != "jsonl" else (),
            "memory": (),
        }
        for fs, verify in (("auto", False), ("store", False), ("memory", False), ("auto", True)):

            async def arrow(s: aiolode.Store, fs: str = fs, verify: bool = verify) -> Any:
                ads = await _dataset(s).to_arrow_dataset(filesystem=fs, verify=verify)
                return await _materialise(ads)

            # In place (NATIVE on a FileStore under "auto", STORE under "store"), no
            # digest is checked without verify=True: documented in docs/reader.md.
            add(
                f"to_arrow_dataset({fs},verify={verify}).to_table",
                arrow,
                partial_on=() if verify else in_place[fs],
                # pyarrow's dataset scan of an IPC file does not validate its
                # buffers: unless a digest is checked first, a damaged one can
                # crash the process on any route (KNOWN_BUGS).
                crashes_on=("memory", "file")
                if cfg.codec == "arrow" and not (verify and cfg.checksum)
                else (),
            )

    cursor = visible[-4].id if len(visible) > 4 else None
    want = min(3, len(visible)) if cursor else len(visible)

    async def watch(s: aiolode.Store, idle: float = WATCH_IDLE) -> Any:
        return await _collect(_dataset(s).watch(cursor, poll_interval=0.01), want, idle)

    add("watch", watch, kind="watch")

    async def watch_first(s: aiolode.Store, idle: float = WATCH_IDLE) -> Any:
        return await _collect(_dataset(s).watch(poll_interval=0.01), 1, idle)

    add("watch(first)", watch_first, kind="watch")

    if cfg.codec is None:
        for i, snap in enumerate(pick):
            sid = snap.id

            async def blob_(s: aiolode.Store, sid: str = sid) -> Any:
                async with _dataset(s).open_blob(sid, chunk_size=64) as b:
                    head = (b.size, b.stored_size, b.checksum, b.compressor, b.content_type)
                    return head, b"".join([c async for c in b])

            add(f"open_blob[{i}]", blob_)
            size = snap.files[0].size
            for label, off, ln in (("whole", 0, size), ("middle", size // 3, size // 3 + 1)):

                async def rr(s: aiolode.Store, sid: str = sid, off: int = off, ln: int = ln) -> Any:
                    return await _dataset(s).read_range(sid, off, ln)

                add(f"read_range[{i}]({label})", rr, partial_on=("memory", "file"), span=(off, ln))

                async def brr(
                    s: aiolode.Store, sid: str = sid, off: int = off, ln: int = ln
                ) -> Any:
                    async with _dataset(s).open_blob(sid) as b:
                        return await b.read_range(off, ln)

                add(
                    f"open_blob[{i}].read_range({label})",
                    brr,
                    partial_on=("memory", "file"),
                    span=(off, ln),
                )

    for key, snap, data, meta in retries:
        extra: dict[str, Any] = (
            {"content_type": "application/x-damage"} if cfg.codec is None else {}
        )

        async def retry(
            s: aiolode.Store,
            key: str = key,
            snap: aiolode.Snapshot = snap,
            data: Any = data,
            meta: dict[str, Any] = meta,
            extra: dict[str, Any] = extra,
        ) -> Any:
            ds = _dataset(s)
            got = await ds.write(data, meta, idempotency_key=key, **extra)
            if got.id == snap.id and got.created_at == snap.created_at:
                return ("same", got.manifest)
            return (
                "new",
                await ds.read(got.id),
            )  # a second commit: right only if the first is gone

        add(f"write(idempotency_key={key})", retry, writes=True)

    _add_dry_runs(add, "d", lambda s: _dataset(s))

    async def reader_list(s: aiolode.Store) -> Any:
        async with aclosing(aiolode.DatasetReader(s).list_datasets()) as it:
            return tuple([x async for x in it])

    add("DatasetReader.list_datasets", reader_list)

    async def reader_files(s: aiolode.Store) -> Any:
        return tuple(await aiolode.DatasetReader(s).dataset("d").files())

    add("DatasetReader.dataset.files", reader_files)
    chosen = [f for f in files if f.snapshot_id in {p.id for p in pick}]
    for i, f in enumerate(chosen):

        async def iter_object(s: aiolode.Store, f: aiolode.DataFile = f) -> Any:
            async with aclosing(aiolode.DatasetReader(s).iter_object(f, chunk_size=64)) as it:
                return b"".join([c async for c in it])

        add(f"DatasetReader.iter_object[{i}]", iter_object)
        for label, off, ln in (("whole", 0, f.size), ("middle", f.size // 3, f.size // 3 + 1)):

            async def read_range(s: aiolode.Store, f: Any = f, off: int = off, ln: int = ln) -> Any:
                return await aiolode.DatasetReader(s).read_range(f, off, ln)

            add(
                f"DatasetReader.read_range[{i}]({label})",
                read_range,
                partial_on=("memory", "file"),
                span=(off, ln),
            )
    return calls


def _judge_gc(world: World, value: Any, oracle: Any, stale_ok: bool) -> str:
    """A gc dry run may name only what the pristine one names (or, for the state
    before the last commit, what that commit added: its objects are orphans there)."""
    allowed = set(oracle)
    if stale_ok:
        allowed |= set(world.contents) - set(world.prev)
    return "correct" if set(value) <= allowed else "wrong"


def _judge_drop(world: World, value: Any, oracle: Any, stale_ok: bool) -> str:
    """A drop dry run may name only keys under its own root (never another's)."""
    return "correct" if all(k.startswith(world.root) for k in value) else "wrong"


def _add_dry_runs(add: Callable[..., None], tag: str, obj: Callable[[aiolode.Store], Any]) -> None:
    """expire/gc/drop dry runs: a reader's view of what maintenance would do.

    Run on a damaged state they must not delete anything (the "no read writes"
    check) and must not plan to delete what the history still needs.
    """

    async def expire(s: aiolode.Store) -> Any:
        report = await obj(s).expire(keep_last=2, dry_run=True)
        return tuple(report.expired), tuple(report.files)

    add("expire(keep_last=2,dry_run)", expire)

    async def gc(s: aiolode.Store) -> Any:
        return tuple((await obj(s).gc(grace=timedelta(0), dry_run=True)).deleted)

    add("gc(dry_run)", gc, judge=_judge_gc)

    async def drop(s: aiolode.Store) -> Any:
        return tuple((await obj(s).drop(grace=timedelta(0), dry_run=True)).deleted)

    add("drop(dry_run)", drop, judge=_judge_drop)


async def _collect(gen: Any, want: int, idle: float) -> tuple[tuple[Any, ...], bool]:
    """Up to ``want`` items of a watch; stops after ``idle`` seconds of silence."""
    items: list[Any] = []
    async with aclosing(gen) as it:
        while len(items) < want:
            got = None
            with anyio.move_on_after(idle):
                got = await anext(it)
            if got is None:
                return tuple(items), False
            items.append(_canon_snapshot(got))
    return tuple(items), True


def _canon_snapshot(s: Any) -> Any:
    if isinstance(s, aiolode.Snapshot):
        return s.manifest
    return _canon_volume_snapshot(s)


async def _verify_dataset(s: aiolode.Store) -> Any:
    return await aiolode.verify_dataset(s, "d")


# -------------------------------------------------------------------- volumes
_TOTAL = 4096
# (offset, length) per commit: adjacent 64-byte blocks (spanning reads), shorter
# ones, and gaps (reads across them are refused).
_COMMITS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 64),),
    ((64, 64), (128, 40)),
    ((256, 64),),
    ((320, 64), (384, 64)),
    ((512, 50),),
    ((640, 64), (704, 64)),
    ((1024, 64),),
    ((1088, 30),),
    ((2048, 64),),
    ((2112, 64),),
    ((3000, 64),),  # after the 10th commit froze everything: a hot segment again
)


def _volume(store: aiolode.Store, cfg: VolConfig, vol_id: str = "v") -> aiolode.Volume:
    return aiolode.Volume(vol_id, store, _TOTAL, checksum=_CHECKSUMS[cfg.checksum]())


def _canon_volume_snapshot(s: aiolode.VolumeSnapshot) -> Any:
    return (
        s.id,
        s.parent_id,
        s.created_at,
        s.metadata,
        s.volume_id,
        s.total_length,
        s.committed_bytes,
        s.block_count,
        tuple(s.blocks()),
        tuple(s.committed_ranges()),
        tuple(s.missing_ranges()),
        s.is_complete,
    )


@asynccontextmanager
async def _freeze_at(n: int) -> AsyncIterator[None]:
    old = volume_index.FREEZE_AT
    volume_index.FREEZE_AT = n
    try:
        yield
    finally:
        volume_index.FREEZE_AT = old


async def _build_volume(cfg: VolConfig) -> World:
    store = aiolode.MemoryStore()
    vols = {t: _volume(store, cfg, t) for t in ("v", "w")}
    vers = _Versions(
        store,
        [f"volumes/{t}/{n}" for t in ("v", "w") for n in ("_latest", "_log/_lwm.json")],
    )
    snaps: dict[str, list[aiolode.VolumeSnapshot]] = {"v": [], "w": []}
    prev: dict[str, bytes] = {}
    async with _freeze_at(4):  # a small threshold: frozen segments and a segment list
        for n, commit in enumerate(_COMMITS):
            if n == len(_COMMITS) - 1:
                if cfg.lifecycle:  # maintenance roots (expiry, gc fence) and a low-water mark
                    for vol in vols.values():
                        await vol.expire(keep_last=6)
                        await vol.gc(grace=timedelta(0))
                    await vers.capture()
                prev = await _contents(store)
            for tag, vol in vols.items():
                refs = [await vol.stage_write_at(o, block(tag, o, ln)) for o, ln in commit]
                snaps[tag].append(await vol.commit(refs, {"tag": tag, "n": n}))
            await vers.capture()
    contents = await _contents(store)
    head = len(_COMMITS) + (2 if cfg.lifecycle else 0)

    def root_key(tag: str, seq: int) -> str:
        return f"volumes/{tag}/_log/{seq:020d}.json"

    def root(tag: str, seq: int) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(contents[root_key(tag, seq)])
        return doc

    hv, hw = root("v", head), root("w", head)
    if not hv.get("frozen_key") or not hv.get("segments"):
        raise AssertionError("the volume world needs frozen and hot segments")
    frozen_v = json.loads(contents[hv["frozen_key"]])
    frozen_w = json.loads(contents[hw["frozen_key"]])
    fseg_v, fseg_w = _first_segment_key(frozen_v), _first_segment_key(frozen_w)
    # An older segment list, referenced by older roots only.
    old_lists = [
        root("v", s).get("frozen_key") for s in range(1, head) if root_key("v", s) in contents
    ]
    old_list = next((k for k in reversed(old_lists) if k and k != hv["frozen_key"]), None)
    blocks_v = {b.offset: b.key for b in snaps["v"][-1].blocks()}
    blocks_w = {b.offset: b.key for b in snaps["w"][-1].blocks()}
    roles = {
        "root:first": root_key("v", 1),
        "root:mid": root_key("v", 5),
        "root:head": root_key("v", head),
        "hint": "volumes/v/_latest",
        "segment:hot": hv["segments"][0]["key"],
        "segment:frozen": fseg_v,
        "segment-list": hv["frozen_key"],
        "block:first": blocks_v[0],
        "block:mid": blocks_v[384],
        "block:last": blocks_v[2112],
    }
    siblings = {
        "root:first": root_key("v", 2),
        "root:mid": root_key("v", 4),
        "root:head": root_key("v", head - 1),
        "segment:hot": fseg_v,
        "segment:frozen": hv["segments"][0]["key"],
        "block:first": blocks_v[128],  # another length
        "block:mid": blocks_v[320],  # the same length
        "block:last": blocks_v[1088],
    }
    if old_list is not None:
        siblings["segment-list"] = old_list
    if cfg.lifecycle:
        roles |= {
            "root:expire": root_key("v", head - 2),
            "root:fence": root_key("v", head - 1),
            "lwm": "volumes/v/_log/_lwm.json",
        }
        siblings |= {"root:expire": root_key("v", head - 3), "root:fence": root_key("v", head - 2)}
        if roles["lwm"] not in contents:
            raise AssertionError("the volume lifecycle world needs a low-water mark")
    other = {
        "root:first": root_key("w", 1),
        "root:mid": root_key("w", 5),
        "root:head": root_key("w", head),
        "hint": "volumes/w/_latest",
        "segment:hot": hw["segments"][0]["key"],
        "segment:frozen": fseg_w,
        "segment-list": hw["frozen_key"],
        "block:first": blocks_w[0],
        "block:mid": blocks_w[384],
        "block:last": blocks_w[2112],
    }
    if cfg.lifecycle:
        other |= {
            "root:expire": root_key("w", head - 2),
            "root:fence": root_key("w", head - 1),
            "lwm": "volumes/w/_log/_lwm.json",
        }
    versions = {k: v for k, v in vers.older().items() if k.startswith("volumes/v/")}
    world = World(
        kind="volume",
        config=cfg,
        contents=contents,
        prev=prev,
        roles=roles,
        other=other,
        siblings=siblings,
        versions=versions,
        head_key=root_key("v", head),
        # In the lifecycle world the first root is expired (below the low-water
        # mark): nothing retained references it.
        referenced={
            r
            for r in roles
            if r not in ("hint", "lwm") and not (cfg.lifecycle and r == "root:first")
        },
        data_roles={r for r in roles if r.startswith("block:")},
        hint_roles={"hint"},
        calls=[],
        checksum=cfg.checksum is not None,
        root="volumes/v/",
    )
    world.calls = _volume_calls(cfg, snaps["v"])
    world.calls.append(Call("verify", lambda s: _verify_volume(s, cfg), kind="verify"))
    world.written = {(o, ln): block("v", o, ln) for commit in _COMMITS for o, ln in commit}
    return world


def _first_segment_key(doc: Any) -> str:
    """The first segment key listed in a segment-list document (format-agnostic)."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str) and "/index/seg-" in x:
            found.append(x)

    walk(doc)
    if not found:
        raise AssertionError(f"no segment in {doc!r}")
    return found[0]


async def _verify_volume(s: aiolode.Store, cfg: VolConfig) -> Any:
    return await aiolode.verify_volume(
        s, "v", total_length=_TOTAL, checksum=_CHECKSUMS[cfg.checksum]()
    )


def _volume_calls(cfg: VolConfig, snaps: list[aiolode.VolumeSnapshot]) -> list[Call]:
    calls: list[Call] = []

    def add(name: str, fn: Callable[[aiolode.Store], Awaitable[Any]], **kw: Any) -> None:
        calls.append(Call(name, fn, **kw))

    def vol(s: aiolode.Store) -> aiolode.Volume:
        return _volume(s, cfg)

    async def latest(s: aiolode.Store) -> Any:
        return _canon_volume_snapshot(await vol(s).latest())

    add("latest", latest)

    async def missing(s: aiolode.Store) -> Any:
        snap = await vol(s).latest()
        return tuple(snap.missing_ranges()), tuple(snap.committed_ranges()), snap.is_complete

    add("latest.missing_ranges", missing)
    head, mid, first = snaps[-1], snaps[4], snaps[0]
    for label, sid in (("first", first.id), ("mid", mid.id), ("head", head.id)):

        async def one(s: aiolode.Store, sid: str = sid) -> Any:
            return _canon_volume_snapshot(await vol(s).snapshot(sid))

        add(f"snapshot({label})", one)
    for newest in (False, True):

        async def walk(s: aiolode.Store, newest: bool = newest) -> Any:
            async with aclosing(vol(s).snapshots(newest_first=newest)) as it:
                return tuple([_canon_volume_snapshot(x) async for x in it])

        add(f"snapshots(newest_first={newest})", walk)

    async def as_of(s: aiolode.Store) -> Any:
        return _canon_volume_snapshot(await vol(s).snapshot_as_of(mid.created_at))

    add("snapshot_as_of(mid)", as_of)
    unchecked = ("memory", "file") if cfg.checksum is None else ()
    ranges = [(b.offset, b.length) for b in head.blocks()]
    ranges += [(0, 168), (256, 192), (640, 128), (0, 512), (2048, 128), (1024, 94)]
    for off, ln in ranges:

        async def read_at(s: aiolode.Store, off: int = off, ln: int = ln) -> Any:
            return await vol(s).read_at(head.id, off, ln)

        add(f"read_at(head,{off},{ln})", read_at, partial_on=unchecked)
    for b in mid.blocks()[:3]:

        async def read_old(s: aiolode.Store, b: Any = b) -> Any:
            return await vol(s).read_at(mid.id, b.offset, b.length)

        add(f"read_at(mid,{b.offset},{b.length})", read_old, partial_on=unchecked)
    for label, sid, page in (("head", head.id, 16), ("mid", mid.id, 4096)):

        async def reader(
            s: aiolode.Store, sid: str = sid, page: int = page, rs: Any = tuple(ranges)
        ) -> Any:
            out = []
            async with vol(s).open_reader(sid, page_size=page, cache_pages=4) as r:
                for off, ln in rs:
                    try:
                        out.append(await r.read(off, ln))
                    except aiolode.RangeMissingError as exc:
                        out.append(("missing", tuple(exc.missing)))
            return tuple(out)

        add(f"open_reader({label},page={page}).read", reader, partial_on=unchecked)

    async def watch(s: aiolode.Store, idle: float = WATCH_IDLE) -> Any:
        return await _collect(vol(s).watch(snaps[-4].id, poll_interval=0.01), 3, idle)

    add("watch", watch, kind="watch")

    async def watch_first(s: aiolode.Store, idle: float = WATCH_IDLE) -> Any:
        return await _collect(vol(s).watch(poll_interval=0.01), 1, idle)

    add("watch(first)", watch_first, kind="watch")
    _add_dry_runs(add, "v", vol)
    return calls


# -------------------------------------------------------------------- damages
def json_change(orig: bytes, damaged: bytes | None) -> str:
    """What a damage did to a JSON document, as a path pattern (``-`` if not JSON).

    ``renamed:<path>`` a field name changed (the old name is gone);
    ``value:<path>`` a value changed (list indices shown as ``*``);
    ``invalid`` the bytes no longer decode.
    """
    try:
        a = json.loads(orig)
    except ValueError:
        return "-"
    if damaged is None:
        return "deleted"
    try:
        b = json.loads(damaged)
    except ValueError:
        return "invalid"

    def walk(x: Any, y: Any, path: str) -> str | None:
        if isinstance(x, dict) and isinstance(y, dict):
            gone = sorted(set(x) - set(y))
            if gone:
                return f"renamed:{path}.{gone[0]}"
            added = sorted(set(y) - set(x))
            if added:
                return f"added:{path}.{added[0]}"
            for k in x:
                found = walk(x[k], y[k], f"{path}.{k}")
                if found:
                    return found
            return None
        if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for u, v in zip(x, y, strict=True):
                found = walk(u, v, f"{path}[*]")
                if found:
                    return found
            return None
        if x != y or type(x) is not type(y):
            return f"value:{path}"
        return None

    return walk(a, b, "") or "same"


@attrs.frozen
class Damage:
    """What is done to one object: ``data=None`` deletes it."""

    kind: str
    data: bytes | None
    label: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}{'@' + self.label if self.label else ''}"


def damages(world: World, role: str, rng: random.Random, *, flips: int = 1) -> list[Damage]:
    """Every damage that applies to ``role`` (``flips`` bit flips and garbages)."""
    key = world.roles[role]
    orig = world.contents[key]
    out = [Damage("delete", None), Damage("truncate", orig[: len(orig) // 2]), Damage("empty", b"")]
    for _ in range(flips):
        pos = rng.randrange(len(orig) * 8) if orig else 0
        flipped = bytearray(orig)
        if flipped:
            flipped[pos // 8] ^= 1 << (pos % 8)
        out.append(Damage("bitflip", bytes(flipped), str(pos)))
        seed = rng.randrange(1 << 30)
        garbage = random.Random(seed).randbytes(len(orig))
        out.append(Damage("garbage", garbage, str(seed)))
    if role in world.other:
        out.append(Damage("swap-other", world.contents[world.other[role]]))
    if role in world.siblings:
        out.append(Damage("swap-sibling", world.contents[world.siblings[role]]))
    for i, old in enumerate(world.versions.get(key, [])):
        if old != orig:
            out.append(Damage("older", old, str(i)))
    return [d for d in out if d.data != orig]


# -------------------------------------------------------------- store states
class Stores:
    """Materialises store contents as a MemoryStore or a FileStore (in a temp dir).

    A damaged state differs from its world's pristine contents by one object, so
    a memory store is a copy of the pristine store's object table (the objects
    themselves are immutable and shared) with that one object changed through
    the store's own API: cases cost microseconds, not one put per object.
    """

    def __init__(self, kind: Literal["memory", "file"]) -> None:
        self.kind = kind
        self.tmp = tempfile.mkdtemp(prefix="aiolode-damage-") if kind == "file" else None
        self._pristine: dict[int, tuple[dict[str, bytes], aiolode.MemoryStore]] = {}

    async def _base(self, base: dict[str, bytes]) -> aiolode.MemoryStore:
        found = self._pristine.get(id(base))
        if found is None or found[0] is not base:
            store = aiolode.MemoryStore()
            for k, v in base.items():
                await store.put(k, v, mode="overwrite")
            found = self._pristine[id(base)] = (base, store)
        return found[1]

    @asynccontextmanager
    async def open(
        self, contents: dict[str, bytes], *, base: dict[str, bytes] | None = None
    ) -> AsyncIterator[aiolode.Store]:
        """A store holding ``contents`` (``base``: the pristine contents it derives from)."""
        if self.kind == "memory":
            store = aiolode.MemoryStore()
            if base is None:
                base = contents
            src = await self._base(base)
            store._objects = dict(src._objects)
            store._keys = list(src._keys)
            for k in base.keys() - contents.keys():
                await store.delete(k)
            for k, v in contents.items():
                if base.get(k) is not v:
                    await store.put(k, v, mode="overwrite")
            yield store
            return
        assert self.tmp is not None
        root = await anyio.to_thread.run_sync(_write_tree, self.tmp, contents)
        try:
            async with aiolode.FileStore(root) as store:
                yield store
        finally:
            await anyio.to_thread.run_sync(shutil.rmtree, root, True)

    def close(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _write_tree(tmp: str, contents: dict[str, bytes]) -> str:
    root = tempfile.mkdtemp(dir=tmp)
    for k, v in contents.items():
        path = os.path.join(root, *k.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(v)
    return root


async def _snapshot_store(store: aiolode.Store) -> dict[str, bytes]:
    if isinstance(store, aiolode.MemoryStore):
        return {k: o.data for k, o in store._objects.items()}
    out = {}
    async with aclosing(store.list()) as infos:
        async for info in infos:
            out[info.key] = await store.get(info.key)
    return out


# ------------------------------------------------------------------ running
async def _run_call(call: Call, store: aiolode.Store, *, idle: float | None = None) -> Result:
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            if call.kind == "watch" and idle is not None:
                value = await call.fn(store, idle)  # type: ignore[call-arg]
            else:
                value = await call.fn(store)
    except TimeoutError:
        return ("timeout", None)
    except Exception as exc:
        return ("error", exc)
    return ("ok", value)


def _same_content(got: Any, written: Any) -> bool:
    if isinstance(written, bytes):
        return bool(got == written)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    return sorted(got, key=key) == sorted(written, key=key)


def _check_written(world: World) -> None:
    """The oracle must itself be right: it reads back what was written."""
    written = world.written
    if world.kind == "dataset":
        for call in world.calls:
            if call.name.startswith("read["):
                status, value = world.oracle[call.name]
                if status != "ok":
                    continue
                if not any(_same_content(value, w) for w in written.values()):
                    raise AssertionError(
                        f"{world.name}: the oracle of {call.name} is not what was written"
                    )
        reads = [c for c in world.calls if c.name.startswith("read[")]
        if sum(world.oracle[c.name][0] == "ok" for c in reads) < 2:
            raise AssertionError(f"{world.name}: too few readable snapshots in the oracle")
    else:
        for call in world.calls:
            if call.name.startswith("read_at(head,"):
                off, ln = (int(x) for x in call.name[len("read_at(head,") : -1].split(","))
                status, value = world.oracle[call.name]
                if (off, ln) in written and (status != "ok" or value != written[(off, ln)]):
                    raise AssertionError(f"{world.name}: the oracle of {call.name} is wrong")


async def _run_all(
    calls: Sequence[Call], stores: Stores, contents: dict[str, bytes]
) -> dict[str, Result]:
    """Every call on ``contents``: readers on one store, each writer on its own copy."""
    async with stores.open(contents) as store:
        out = {c.name: await _run_call(c, store) for c in calls if not c.writes}
    for c in calls:
        if c.writes:
            async with stores.open(contents) as store:
                out[c.name] = await _run_call(c, store)
    return out


async def compute_oracle(world: World, stores: Stores) -> None:
    """The answers of every call on the pristine store (and on the previous state)."""
    if world.oracle_store == stores.kind:
        return
    world.oracle = await _run_all(world.calls, stores, world.contents)
    bad = {
        n: r
        for n, r in world.oracle.items()
        if r[0] == "timeout" or (r[0] == "error" and not isinstance(r[1], aiolode.AiolodeError))
    }
    if bad:
        raise AssertionError(f"{world.name}: the pristine store fails: {bad}")
    verify = world.oracle["verify"]
    if verify[0] != "ok":
        raise AssertionError(f"{world.name}: verify of the pristine store: {verify}")
    # Problems verify reports on the pristine store are findings of their own
    # (run_world reports them); damaged states are judged on what is new.
    world.baseline = {(p.kind, p.key, p.message) for p in verify[1].problems}
    for call in world.calls:
        status, value = world.oracle[call.name]
        if call.kind == "watch" and (status != "ok" or value[1] is False):
            raise AssertionError(f"{world.name}: the pristine watch fell short: {value}")
    world.prev_oracle = await _run_all(
        [c for c in world.calls if c.kind in ("value", "watch")], stores, world.prev
    )
    _check_written(world)
    world.oracle_store = stores.kind


@attrs.frozen
class Finding:
    """One failing result, with what it takes to reproduce it."""

    outcome: str
    world: str
    store: str
    role: str
    key: str
    damage: str
    call: str
    detail: str
    change: str = ""
    verify_saw: str = ""  # the kinds of problem verify reported in the damaged state

    @property
    def signature(self) -> str:
        return (
            f"{self.outcome} | {self.role.split(':')[0]} | {self.damage.split('@')[0]} "
            f"| {self.change} | {self.call}"
        )


@attrs.define
class Tally:
    """Counts over many cases."""

    cases: int = 0
    combinations: int = 0
    skipped: int = 0  # calls not run: they would crash the process (a known bug)
    outcomes: collections.Counter[str] = attrs.field(factory=collections.Counter)
    typed: collections.Counter[str] = attrs.field(factory=collections.Counter)
    verify: collections.Counter[str] = attrs.field(factory=collections.Counter)
    findings: list[Finding] = attrs.field(factory=list)

    def add(self, other: Tally) -> None:
        self.cases += other.cases
        self.combinations += other.combinations
        self.skipped += other.skipped
        self.outcomes.update(other.outcomes)
        self.typed.update(other.typed)
        self.verify.update(other.verify)
        self.findings += other.findings

    @property
    def failures(self) -> collections.Counter[str]:
        c: collections.Counter[str] = collections.Counter()
        for f in self.findings:
            c[f.outcome] += 1
        return c

    def unknown(self) -> list[Finding]:
        """Findings no known bug explains."""
        return [f for f in self.findings if known_bug(f) is None]

    def summary(self) -> dict[str, Any]:
        sigs: dict[str, list[Finding]] = collections.defaultdict(list)
        for f in self.findings:
            sigs[f.signature].append(f)
        by_bug: collections.Counter[str] = collections.Counter()
        wrong_by_bug: collections.Counter[str] = collections.Counter()
        for f in self.findings:
            bug = known_bug(f) or "UNKNOWN"
            by_bug[bug] += 1
            if f.outcome == "wrong":
                wrong_by_bug[bug] += 1
        return {
            "cases": self.cases,
            "combinations": self.combinations,
            "skipped_crashing": self.skipped,
            "outcomes": dict(self.outcomes),
            "wrong_data": self.outcomes["wrong"],
            "untyped_errors": self.outcomes["untyped"],
            "hangs": self.outcomes["hang"],
            "typed_errors": dict(self.typed.most_common()),
            "verify": dict(self.verify),
            "failures": dict(self.failures),
            "failures_by_bug": dict(by_bug.most_common()),
            "wrong_data_by_bug": dict(wrong_by_bug.most_common()),
            "unknown_failures": len(self.unknown()),
            "failure_kinds": {
                s: {"count": len(fs), "example": attrs.asdict(fs[0])}
                for s, fs in sorted(sigs.items())
            },
        }


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


async def run_case(
    world: World,
    role: str,
    damage: Damage,
    stores: Stores,
    *,
    calls: Sequence[Call] | None = None,
) -> Tally:
    """Damage one object of ``world`` and run ``calls`` (default: all) on it."""
    await compute_oracle(world, stores)
    key = world.roles[role]
    orig = world.contents[key]
    contents = dict(world.contents)
    if damage.data is None:
        del contents[key]
    else:
        contents[key] = damage.data
    sizes = (len(orig), None if damage.data is None else len(damage.data))
    same_size = sizes[0] == sizes[1]
    stale_ok = key == world.head_key and damage.kind == "delete"
    tally = Tally(cases=1)
    base: dict[str, Any] = {
        "world": world.name,
        "store": stores.kind,
        "role": role,
        "key": key,
        "damage": damage.name,
        "change": json_change(orig, damage.data) if damage.kind == "bitflip" else "",
    }
    todo = list(world.calls if calls is None else calls)
    visible_errors: list[str] = []
    verify_result: Result | None = None
    if role in world.data_roles and damage.data is not None:
        crashing = [c for c in todo if stores.kind in c.crashes_on]
        tally.skipped += len(crashing)
        todo = [c for c in todo if c not in crashing]
    writers = [c for c in todo if c.writes]
    todo = [c for c in todo if not c.writes]
    for call in writers:  # each on its own copy of the damaged state
        async with stores.open(contents, base=world.contents) as store:
            result = await _run_call(call, store)
        outcome = _classify(
            world, call, result, stale_ok=stale_ok, role=role, store=stores.kind, sizes=sizes
        )
        tally.combinations += 1
        tally.outcomes[outcome] += 1
        if outcome == "typed":
            tally.typed[type(result[1]).__name__] += 1
        if outcome in FAILING:
            tally.findings.append(
                Finding(
                    outcome, call=call.name, detail=_detail(result, world.oracle[call.name]), **base
                )
            )
    async with stores.open(contents, base=world.contents) as store:
        for call in todo:
            result = await _run_call(call, store)
            if call.kind == "verify":
                verify_result = result
                if result[0] == "error" and isinstance(result[1], aiolode.AiolodeError):
                    tally.typed[type(result[1]).__name__] += 1
                    tally.outcomes["typed"] += 1
                elif result[0] != "ok":
                    outcome = "hang" if result[0] == "timeout" else "untyped"
                    tally.outcomes[outcome] += 1
                    tally.findings.append(
                        Finding(outcome, call=call.name, detail=_detail(result), **base)
                    )
                tally.combinations += 1
                continue
            outcome = _classify(
                world, call, result, stale_ok=stale_ok, role=role, store=stores.kind, sizes=sizes
            )
            if outcome == "hang?":
                result = await _run_call(call, store, idle=WATCH_CONFIRM)
                outcome = _classify(
                    world,
                    call,
                    result,
                    stale_ok=stale_ok,
                    role=role,
                    store=stores.kind,
                    sizes=sizes,
                )
                if outcome == "hang?":
                    outcome = "hang"
            tally.combinations += 1
            tally.outcomes[outcome] += 1
            if outcome == "typed":
                tally.typed[type(result[1]).__name__] += 1
                if world.oracle[call.name][0] == "ok":
                    visible_errors.append(f"{call.name}: {type(result[1]).__name__}")
            if outcome in FAILING:
                tally.findings.append(
                    Finding(
                        outcome,
                        call=call.name,
                        detail=_detail(result, world.oracle[call.name]),
                        **base,
                    )
                )
        after = await _snapshot_store(store)
    if after != contents:
        changed = sorted(k for k in set(after) | set(contents) if after.get(k) != contents.get(k))
        tally.findings.append(
            Finding("read-wrote", call="*", detail=f"changed: {changed[:5]}", **base)
        )
    if verify_result is not None and verify_result[0] == "ok":
        saw = ",".join(
            sorted(
                {
                    p.kind.value
                    for p in verify_result[1].problems
                    if (p.kind, p.key, p.message) not in world.baseline
                }
            )
        )
        tally.findings = [attrs.evolve(f, verify_saw=saw) for f in tally.findings]
        _judge_verify(
            world, role, damage, verify_result[1], same_size, stale_ok, visible_errors, tally, base
        )
    return tally


def _judge_verify(
    world: World,
    role: str,
    damage: Damage,
    report: Any,
    same_size: bool,
    stale_ok: bool,
    visible_errors: list[str],
    tally: Tally,
    base: dict[str, str],
) -> None:
    undetectable = role in world.data_roles and same_size and not world.checksum
    # A lagging or missing hint, and a missing checkpoint (readers walk the
    # records instead), are states a healthy store can be in.
    legit = (role in world.hint_roles and damage.kind in ("delete", "older")) or (
        role == "checkpoint" and damage.kind == "delete"
    )
    must = (role in world.referenced or bool(visible_errors)) and not (
        undetectable or stale_ok or legit
    )
    new = [p for p in report.problems if (p.kind, p.key, p.message) not in world.baseline]
    if not new:
        tally.verify["ok"] += 1
        if must:
            why = "referenced" if role in world.referenced else "not referenced"
            why += f"; readers saw {visible_errors[:3]}" if visible_errors else "; no reader saw it"
            tally.findings.append(Finding("verify-missed", call="verify", detail=why, **base))
    else:
        tally.verify["reported"] += 1
        if legit:
            tally.findings.append(
                Finding("verify-false-alarm", call="verify", detail=str(new[:3]), **base)
            )


def _undetectable(
    world: World, call: Call, role: str, store: str, orig: int, damaged: int | None
) -> bool:
    """Whether the contract lets this damage of a data file or block go unseen by ``call``.

    Without a digest, bytes changed in place (same size) cannot be told; a
    partial read (``read_range``, an Arrow dataset read in place without
    ``verify=True``, a volume range read without checksums) has no digest to
    check and sees only the bytes it reads, so an object that kept at least its
    recorded length passes it.
    """
    if role not in world.data_roles or damaged is None:
        return False
    if store in call.partial_on:
        return damaged >= (orig if call.span is None else sum(call.span))
    return damaged == orig and not world.checksum


def _classify(
    world: World,
    call: Call,
    result: Result,
    *,
    stale_ok: bool,
    role: str,
    store: str,
    sizes: tuple[int, int | None],
) -> str:
    status, value = result
    if status == "timeout":
        return "hang"
    if status == "error":
        if isinstance(value, aiolode.AiolodeError):
            return "typed"
        if isinstance(value, ScanError) and _undetectable(world, call, role, store, *sizes):
            return "undetectable"  # pyarrow's own scan of bytes nobody could check
        return "untyped"
    o_status, o_value = world.oracle[call.name]
    if call.kind == "watch":
        items, complete = value
        want_items = o_value[0] if o_status == "ok" else ()
        if complete and _equal(items, want_items):
            return "correct"
        p_status, p_value = world.prev_oracle.get(call.name, ("error", None))
        if stale_ok and p_status == "ok" and _equal(items, p_value[0][: len(items)]):
            return "stale"  # what the state before the last commit yields
        if not complete and _equal(items, want_items[: len(items)]):
            return "stale" if stale_ok else "hang?"
        if stale_ok:
            return "stale" if not complete else "wrong"
        return "wrong"
    if o_status == "ok" and _equal(value, o_value):
        return "correct"
    if call.judge is not None and o_status == "ok":
        return call.judge(world, value, o_value, stale_ok)
    if stale_ok:
        p_status, p_value = world.prev_oracle.get(call.name, ("error", None))
        if p_status == "ok" and _equal(value, p_value):
            return "stale"
    if _undetectable(world, call, role, store, *sizes):
        return "undetectable"
    return "wrong"


def _detail(result: Result, oracle: Result | None = None) -> str:
    status, value = result
    if status == "error":
        tb = traceback.extract_tb(value.__traceback__)
        where = f" at {tb[-1].filename.split('site-packages/')[-1]}:{tb[-1].lineno}" if tb else ""
        return f"{type(value).__module__}.{type(value).__name__}: {str(value)[:300]}{where}"
    if status == "timeout":
        return "timeout"
    text = f"got {_short(value)}"
    if oracle is not None:
        text += f"; expected {_short(oracle[1]) if oracle[0] == 'ok' else _detail(oracle)}"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "…"


# ------------------------------------------------------------ known bugs
#: Bugs the matrix found, each pinned by a strict xfail test in
#: tests/harness/test_damage.py (and listed in docs/reliability.md). When one is
#: fixed, its test flips and its entry here goes: the matrix then holds the line.
KNOWN_BUGS: dict[str, str] = {
    "arrow-inplace-crash": (
        "an Arrow IPC data file damaged in place (no checksum, or verify=False) read "
        "through to_arrow_dataset().to_table() can crash the process (SIGSEGV/SIGABRT "
        "inside pyarrow's IPC scan, which does not validate buffers; intermittent): "
        "those calls are skipped for damaged Arrow data files, counted as skipped_crashing"
    ),
}


def known_bug(f: Finding) -> str | None:
    """The known bug a finding belongs to (a key of :data:`KNOWN_BUGS`), if any."""
    return None


# ----------------------------------------------------------------- the driver
_WORLDS: dict[str, World] = {}


async def build(cfg: DsConfig | VolConfig) -> World:
    """The world of ``cfg`` (built once per process: it is never modified)."""
    if cfg.name not in _WORLDS:
        if isinstance(cfg, DsConfig):
            _WORLDS[cfg.name] = await _build_dataset(cfg)
        else:
            _WORLDS[cfg.name] = await _build_volume(cfg)
    return _WORLDS[cfg.name]


async def run_world(
    cfg: DsConfig | VolConfig,
    stores: Stores,
    rng: random.Random,
    *,
    flips: int = 1,
    roles: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    call_sample: float = 1.0,
    call_prefixes: Sequence[str] | None = None,
) -> Tally:
    """Every (role, damage) of one world.

    ``roles``/``kinds`` restrict the objects and damages; ``call_prefixes`` the
    calls (by name prefix; ``verify`` always runs); ``call_sample`` < 1 runs a
    random share of the remaining value calls in each case.
    """
    world = await build(cfg)
    await compute_oracle(world, stores)
    tally = Tally()
    pristine = world.oracle["verify"][1]
    if not pristine.ok:
        tally.findings.append(
            Finding(
                "verify-false-alarm",
                world=world.name,
                store=stores.kind,
                role="-",
                key="-",
                damage="none",
                call="verify",
                detail=f"the pristine store: {list(pristine.problems)[:3]} orphans {pristine.orphans[:3]}",
            )
        )
    for role in roles or world.roles:
        for damage in damages(world, role, rng, flips=flips):
            if kinds is not None and damage.kind not in kinds:
                continue
            calls = world.calls
            if call_prefixes is not None:
                calls = [
                    c
                    for c in calls
                    if c.kind == "verify" or c.name.startswith(tuple(call_prefixes))
                ]
            if call_sample < 1.0:
                calls = [c for c in calls if c.kind != "value" or rng.random() < call_sample]
            tally.add(await run_case(world, role, damage, stores, calls=calls))
    return tally


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.damage", description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    p.add_argument("--store", choices=["memory", "file", "both"], default="both")
    p.add_argument("--flips", type=int, default=3, help="bit flips and garbages per object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worlds", default="all", help="comma-separated world names, or 'all'")
    p.add_argument("--json", help="write the summary and every finding to this file")
    return p


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the matrix; return the summary (``unknown_failures`` must be 0)."""
    cfgs: list[DsConfig | VolConfig] = [*DATASET_CONFIGS, *VOLUME_CONFIGS]
    if args.worlds != "all":
        names = set(args.worlds.split(","))
        cfgs = [c for c in cfgs if c.name in names]
    kinds: list[Literal["memory", "file"]] = (
        ["memory", "file"] if args.store == "both" else [args.store]
    )
    total = Tally()
    started = time.monotonic()
    for kind in kinds:
        stores = Stores(kind)
        try:
            for cfg in cfgs:
                t0 = time.monotonic()
                rng = random.Random(f"{args.seed}:{cfg.name}:{kind}")
                tally = await run_world(cfg, stores, rng, flips=args.flips)
                total.add(tally)
                print(
                    f"{kind:6} {cfg.name:24} cases {tally.cases:4} combinations "
                    f"{tally.combinations:6} failures {sum(tally.failures.values()):4} "
                    f"unknown {len(tally.unknown()):3} ({time.monotonic() - t0:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            stores.close()
    summary = total.summary()
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["args"] = vars(args)
    if args.json:
        with open(args.json, "w") as f:  # noqa: ASYNC230 - once, after the run
            json.dump(
                {**summary, "findings": [attrs.asdict(x) for x in total.findings]},
                f,
                indent=1,
                default=str,
            )
    summary["unknown"] = [attrs.asdict(x) for x in total.unknown()[:20]]
    return summary


if __name__ == "__main__":
    parsed = _parser().parse_args()
    out = anyio.run(main, parsed, backend=parsed.backend)
    out.pop("failure_kinds")
    print(json.dumps(out, indent=1, default=str))
    sys.exit(1 if out["unknown_failures"] else 0)
