"""Hostile arguments over every public call (issue 10 §5).

The public API is enumerated by introspection: every class in ``aiolode.__all__``
(its constructor and every public method, classmethod and property defined in
aiolode) and every module-level function there. :data:`COVERED` lists them by
hand, and :func:`test_every_public_callable_is_covered` fails when a new one
appears without an entry (or an entry outlives its callable).

Each call gets hostile arguments of every type — ``None``, bools, huge and
negative ints, NaN and infinities, lone surrogates, NUL, very long strings,
path tricks, bytes-likes, lists, dicts with non-str keys, cyclic and
10,000-deep structures, objects whose ``__repr__``/``__eq__``/``__len__``/
``__iter__`` raise, naive datetimes, and aiolode objects of the wrong kind (a
Snapshot of another dataset, a VolumeSnapshot where a Snapshot goes, a BlockRef
of another volume ...) — one argument at a time with the others valid, in a
deterministic sweep, and any mix of them under Hypothesis. The contract:

- a result, or an :class:`aiolode.AiolodeError`;
- a ``TypeError`` only when Python's own binding of the call fails (a wrong
  number or name of arguments), never for a value;
- an exception raised by the caller's own object (our hostile ``__iter__`` or
  ``__len__``) may come back unchanged: it is the caller's, not the library's;
  its ``__repr__`` and ``__str__`` must never be needed to report an error;
- never a hang (each call has a deadline; a ``watch`` may stay idle);
- after a call that raised, the store holds exactly what it held before (no
  partial objects; a store made for the call, such as a copy's destination,
  stays empty), and nothing outside a FileStore's root is created or removed.

Calls are made as a user makes them: what they return is awaited, iterated
or entered; an :class:`~aiolode.Ingestor` the constructor returns is used
(entered, fed, closed: every argument has an effect), and each Ingestor
method runs on a fresh ingestor entered for that call. Besides the values of
every type, some parameters get hostile values of the right type
(:func:`_hostile_extras`: records a producer may emit, ranges a copy may be
asked for, pending uploads pointing outside the root, times at the edges of
the calendar).

``AIOLODE_HOSTILE_EXAMPLES`` sets the Hypothesis examples (``nox -s
harness_hostile`` runs the long version); ``AIOLODE_HOSTILE_ONLY`` (a regular
expression) limits the fuzz to the callables whose names it matches.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import io
import linecache
import math
import os
import re
import shutil
import tempfile
import types
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiolode
from aiolode.testing import strategies as lst

from .conftest import FUZZ_EXAMPLES

EXAMPLES = int(os.environ.get("AIOLODE_HOSTILE_EXAMPLES", str(max(FUZZ_EXAMPLES * 10, 100))))
ONLY = re.compile(os.environ.get("AIOLODE_HOSTILE_ONLY", ""))
CALL_DEADLINE = 20.0

# ------------------------------------------------------------------ coverage
#: Every public callable, by class: "" is the constructor. Module-level
#: functions are under "". Exceptions are constructed, then str/repr/pickled.
_LAYOUT = (
    "",
    "datasets_prefix",
    "root",
    "log_prefix",
    "data_prefix",
    "partition_values",
    "partition_path",
    "parse_partition_path",
    "data_key",
    "partition_manifest_key",
    "describe",
)
_STORE = (
    "",
    "aopen",
    "aclose",
    "arrow_filesystem",
    "objects_in_memory",
    "put",
    "get",
    "get_range",
    "iter_bytes",
    "head",
    "exists",
    "delete",
    "list",
    "list_dirs",
    "stamp_resolution",
    "abandoned_uploads",
    "abort_upload",
)
_CHECKSUM = ("", "hasher", "format", "digest")
_CODEC = (
    "",
    "options",
    "from_options",
    "encode",
    "open_encoder",
    "decode",
    "to_arrow",
    "iter_decode",
    "iter_batches",
)
_COMPRESSOR = (
    "",
    "compress",
    "decompress",
    "compressobj",
    "decompressobj",
    "options",
    "from_options",
)
_ERRORS = tuple(n for n in aiolode.__all__ if n.endswith("Error"))
COVERED: dict[str, tuple[str, ...]] = {
    "": (
        "open_store",
        "verify_dataset",
        "verify_volume",
        "copy_dataset",
        "copy_volume",
        "quarry_dataset",
        "quarry_layout",
    ),
    **dict.fromkeys(_ERRORS, ("",)),
    **dict.fromkeys(("CRC32", "CRC32C", "MD5", "SHA256", "XXH3", "Blake2b", "Blake3"), _CHECKSUM),
    "Checksum": _CHECKSUM,
    **dict.fromkeys(("JSONL", "ArrowIPC", "Parquet", "Codec"), _CODEC),
    **dict.fromkeys(("Gzip", "Zstd", "Compressor"), _COMPRESSOR),
    **dict.fromkeys(
        ("DefaultLayout", "FlatLayout", "HiveLayout", "TemplateLayout", "Layout"), _LAYOUT
    ),
    "MemoryStore": _STORE,
    "FileStore": (*_STORE, "root"),
    "S3Store": _STORE,
    "GCSStore": _STORE,
    "Store": _STORE,
    "Blob": (
        "",
        "checksum",
        "compressor",
        "content_type",
        "read_range",
        "size",
        "snapshot",
        "stored_size",
    ),
    "BlobWriter": (
        "",
        "bytes_written",
        "committed_before",
        "content_type",
        "metadata",
        "set_metadata",
        "snapshot",
        "write",
    ),
    "BlockRef": ("", "end"),
    "DataFile": ("", "checksum", "key", "partition", "row_count", "size"),
    "Dataset": (
        "",
        "id",
        "store",
        "layout",
        "codec",
        "exists",
        "write",
        "stream_write",
        "stream_write_records",
        "latest",
        "snapshot",
        "snapshots",
        "partitions",
        "watch",
        "snapshot_as_of",
        "read",
        "read_table",
        "iter_records",
        "open_blob",
        "read_range",
        "schema",
        "files",
        "expire",
        "gc",
        "compact",
        "drop",
        "checkpoint",
        "verify",
        "to_arrow_dataset",
    ),
    "DatasetReader": (
        "",
        "store",
        "layout",
        "list_datasets",
        "dataset",
        "iter_object",
        "read_range",
        "range_reader",
    ),
    "DropReport": ("", "done"),
    "ExpireReport": ("",),
    "GCReport": ("",),
    "Field": ("", "child", "to_json", "from_json", "type_name"),
    "FileRef": ("",),
    "IfMatch": ("",),
    "Manifest": ("", "file_count", "files_loaded", "partitions"),
    "ObjectInfo": ("",),
    "Problem": ("",),
    "ProblemKind": ("",),
    "Retry": ("", "delay"),
    "Schema": ("", "field", "names", "from_arrow", "from_json", "to_arrow", "to_json"),
    "Snapshot": (
        "",
        "id",
        "dataset_id",
        "parent_id",
        "created_at",
        "metadata",
        "row_count",
        "files",
        "partitions",
    ),
    "VerifyReport": ("", "ok", "by_kind"),
    "Volume": (
        "",
        "id",
        "store",
        "total_length",
        "checksum",
        "latest",
        "snapshot",
        "snapshots",
        "snapshot_as_of",
        "watch",
        "stage_write_at",
        "commit",
        "verify",
        "read_at",
        "open_reader",
        "expire",
        "gc",
        "drop",
    ),
    "VolumeReader": ("", "statistics", "snapshot", "read"),
    "VolumeSnapshot": ("", "is_complete", "committed_ranges", "missing_ranges", "blocks"),
    # Ingestion, copy, compaction and pending uploads.
    "Ingestor": (
        "",
        "aclose",
        "dataset",
        "emit",
        "emit_artifact",
        "flush",
        "policy",
        "progress",
        "run",
        "stats",
    ),
    "Strict": ("", "describe", "name"),
    "Buffered": ("", "describe", "name"),
    "Run": ("", "describe", "new", "next_attempt"),
    "IngestStats": ("", "balanced"),
    "ArtifactRef": ("", "from_record", "to_record"),
    "PendingUpload": ("",),
    "CopyProgress": ("",),
    "CopyReport": ("", "up_to_date"),
    "CompactReport": ("",),
}


def _own_members(cls: type) -> dict[str, Any]:
    """Public methods, classmethods, staticmethods and properties aiolode defines."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("aiolode"):
            continue
        for m, v in vars(klass).items():
            if not m.startswith("_") and isinstance(
                v, types.FunctionType | classmethod | staticmethod | property
            ):
                out[m] = v
    return out


def public_callables() -> set[str]:
    """``Class`` (constructor), ``Class.member`` and module-level function names."""
    out: set[str] = set()
    for name in aiolode.__all__:
        obj = getattr(aiolode, name)
        if inspect.isclass(obj):
            out.add(name)
            if issubclass(obj, BaseException | enum.Enum):
                out |= {f"{name}.{m}" for m in _own_members(obj)}  # none today
                continue
            out |= {f"{name}.{m}" for m in _own_members(obj)}
        elif isinstance(obj, types.FunctionType):
            out.add(name)
    return out


def covered() -> set[str]:
    out: set[str] = set()
    for cls, members in COVERED.items():
        for m in members:
            out.add(m if not cls else (cls if not m else f"{cls}.{m}"))
    return out


def test_every_public_callable_is_covered() -> None:
    have, want = covered(), public_callables()
    assert want - have == set(), f"public callables without hostile coverage: {sorted(want - have)}"
    assert have - want == set(), (
        f"covered names that are not public callables: {sorted(have - want)}"
    )


# ------------------------------------------------------------ hostile values
class HostileError(Exception):
    """Raised by a hostile object's dunder (``.dunder`` says which)."""

    def __init__(self, dunder: str) -> None:
        super().__init__(f"hostile {dunder}")
        self.dunder = dunder


class BadRepr:
    def __repr__(self) -> str:
        raise HostileError("__repr__")

    def __str__(self) -> str:
        raise HostileError("__str__")

    def __format__(self, spec: str) -> str:
        raise HostileError("__format__")


class BadEq(BadRepr):
    def __eq__(self, other: object) -> bool:
        raise HostileError("__eq__")

    def __hash__(self) -> int:
        raise HostileError("__hash__")

    def __bool__(self) -> bool:
        raise HostileError("__bool__")


class BadLen(BadRepr):
    def __len__(self) -> int:
        raise HostileError("__len__")

    def __iter__(self) -> Iterator[Any]:
        raise HostileError("__iter__")

    def __getitem__(self, i: Any) -> Any:
        raise HostileError("__getitem__")


class HugeLen(BadRepr):
    def __len__(self) -> int:
        return 2**62

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class BadIter(BadRepr):
    def __iter__(self) -> Iterator[Any]:
        yield {"a": 1}
        raise HostileError("__next__")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._agen()

    async def _agen(self) -> AsyncIterator[bytes]:
        yield b"x"
        raise HostileError("__anext__")


class StrLie(str):
    """A str whose equality and hash lie."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


class NaughtyMapping(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise HostileError("items")

    def keys(self) -> Any:
        raise HostileError("keys")


# The caller's own object raising while the library consumes it may propagate.
_CALLERS_OWN = {"__iter__", "__next__", "__len__", "__getitem__", "__anext__", "__aiter__",
                "__eq__", "__hash__", "__bool__", "items", "keys",
                "utcoffset", "dst", "tzname"}  # fmt: skip


def _deep(n: int = 10_000) -> list[Any]:
    out: list[Any] = []
    cur = out
    for _ in range(n):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return out


def _deep_dict(n: int = 10_000) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cur = out
    for _ in range(n):
        nxt: dict[str, Any] = {}
        cur["k"] = nxt
        cur = nxt
    return out


def _cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _cyclic_list() -> list[Any]:
    lst_: list[Any] = [1]
    lst_.append(lst_)
    return lst_


class _Color(enum.Enum):
    RED = "red"


def static_hostile() -> list[Any]:
    """One of every kind of hostile value (fresh objects: mutable ones included)."""
    return [
        None,
        True,
        False,
        0,
        -1,
        1,
        2**63,
        -(2**63) - 1,
        10**100,
        0.5,
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        "",
        "\ud800",
        "a\x00b",
        "x" * 100_000,
        "../../etc/passwd",
        "/abs/key",
        "a//b",
        ".",
        "..",
        "C:\\temp\\x",
        "~/x",
        "%2e%2e/x",
        "é/ü",
        " ",
        "\n",
        b"",
        b"\x00\xff",
        bytearray(b"ab"),
        memoryview(b"abcdef")[1:3],
        [],
        [1, "a", None],
        (),
        {},
        {1: 2},
        {(1, 2): "x"},
        {"k": object()},
        {"k": math.nan},
        {None: 1},
        set(),
        frozenset({1}),
        _cyclic_dict(),
        _cyclic_list(),
        _DEEP_LIST,
        _DEEP_DICT,
        BadRepr(),
        BadEq(),
        BadLen(),
        HugeLen(),
        BadIter(),
        StrLie("x"),
        NaughtyMapping({"a": 1}),
        datetime(2024, 1, 1),  # naive
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
        date(2024, 1, 1),
        timedelta(seconds=-1),
        timedelta.max,
        Decimal("NaN"),
        complex(1, 1),
        _Color.RED,
        object(),
        int,
        print,
        ValueError("boom"),
        io.BytesIO(b"x"),
    ]


_DEEP_LIST = _deep()
_DEEP_DICT = _deep_dict()


def hostile_strategy(wrong_kinds: list[Any]) -> st.SearchStrategy[Any]:
    """Hostile values of every type, plus generated text, numbers, bytes and structures."""
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=40),
        st.text(st.characters(categories=["Cs", "Cc", "Zs"]), max_size=8),
        lst.bad_keys(),
        st.binary(max_size=40),
        st.datetimes(),
        st.datetimes(timezones=st.just(UTC)),
    )
    nested = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=3),
        ),
        max_leaves=6,
    )
    return st.one_of(
        nested,
        st.sampled_from(range(len(static_hostile()))).map(lambda i: static_hostile()[i]),
        st.sampled_from(range(len(wrong_kinds))).map(lambda i: wrong_kinds[i]),
    )


# ------------------------------------------------------------------- context
@attrs.define
class Ctx:
    """Valid objects to call methods on and to pass as valid arguments."""

    store: aiolode.MemoryStore
    ds: aiolode.Dataset
    raw: aiolode.Dataset
    snaps: list[aiolode.Snapshot]
    other: aiolode.Snapshot
    vol: aiolode.Volume
    vsnaps: list[aiolode.VolumeSnapshot]
    other_vsnap: aiolode.VolumeSnapshot
    staged: aiolode.BlockRef
    other_ref: aiolode.BlockRef
    datafile: aiolode.DataFile
    report: aiolode.VerifyReport
    fs: aiolode.FileStore
    sandbox: str
    stack: contextlib.AsyncExitStack
    encoded: dict[str, bytes]
    spare: aiolode.Dataset
    raw_snap: aiolode.Snapshot
    spare_vol: aiolode.Volume
    ing_ds: aiolode.Dataset
    run: aiolode.Run
    fs_upload: aiolode.PendingUpload
    cache: dict[str, Any] = attrs.field(factory=dict)
    #: The store's state a refused call must leave (call() sets it; a driver
    #: moves it past each step that succeeded) and the state at the refusal.
    mark: dict[str, bytes] = attrs.field(factory=dict)
    refused_at: dict[str, bytes] | None = None

    def wrong_kinds(self) -> list[Any]:
        """aiolode objects of the wrong kind, or of another dataset/volume."""
        return [
            self.other,  # a Snapshot of another dataset
            self.other.manifest,
            self.vsnaps[0],  # a VolumeSnapshot where a Snapshot goes
            self.other_vsnap,  # a VolumeSnapshot of another volume
            self.other_ref,  # a BlockRef staged by another volume
            attrs.evolve(self.staged, offset=self.staged.offset + 1),  # moved after staging
            self.datafile,
            self.datafile.file,
            self.report,
            self.ds,
            self.vol,
            self.store,
            aiolode.DefaultLayout(),
            aiolode.XXH3(),
            aiolode.JSONL(),
            aiolode.Gzip(),
            aiolode.Retry(),
            aiolode.ObjectInfo("k", 1, "e"),
            aiolode.IfMatch("etag"),
            aiolode.Schema.from_json({"fields": [{"name": "a", "type": "int64"}]}),
            aiolode.ProblemKind.INVALID_RECORD,
            aiolode.SnapshotNotFoundError("x"),
            self.other.id,  # a valid id of another dataset
            self.vsnaps[-1].id,  # a volume snapshot id where a dataset id goes
            self.snaps[0].id.replace("-0000", "-9999"),  # well-formed, no such snapshot
            self.ing_ds,  # a Quarry-style dataset
            self.run,
            aiolode.Strict(),
            aiolode.PendingUpload("k/x", "u", datetime(2024, 1, 1, tzinfo=UTC)),
        ]


async def make_ctx() -> Ctx:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL(), layout=aiolode.HiveLayout("p"))
    snaps = [
        await ds.write([{"p": "a", "x": 1}, {"p": "b", "x": 2}], {"n": 1}),
        await ds.write([{"p": "a", "x": 3}], {"n": 2}),
    ]
    raw = aiolode.Dataset("r", store)
    raw_snap = await raw.write(b"blob", content_type="text/plain")
    spare = aiolode.Dataset("z", store, codec=aiolode.JSONL())  # drop/gc/expire hit this one
    await spare.write([{"x": 1}])
    await spare.write([{"x": 2}])
    other = await aiolode.Dataset("o", store, codec=aiolode.JSONL()).write([{"x": 1}])
    spare_vol = aiolode.Volume("y", store, 4096)  # Volume drop/gc/expire hit this one
    for i in range(2):
        await spare_vol.commit([await spare_vol.stage_write_at(i * 8, b"spare")])
    vol = aiolode.Volume("v", store, 4096)
    vsnaps = [
        await vol.commit([await vol.stage_write_at(0, b"abcd")]),
        await vol.commit([await vol.stage_write_at(64, b"efgh")]),
    ]
    staged = await vol.stage_write_at(1024, b"ijkl")
    wvol = aiolode.Volume("w", store, 4096)
    other_ref = await wvol.stage_write_at(2048, b"mnop")
    other_vsnap = await wvol.commit([await wvol.stage_write_at(0, b"qrst")])
    datafile = (await ds.files())[0]
    report = await ds.verify()
    # The Ingestor's dataset: Quarry's layout, one run already committed (resume).
    run = aiolode.Run("r1", source="s", category="c")
    ing_ds = aiolode.quarry_dataset("q", store)
    async with aiolode.Ingestor(ing_ds, run=run) as ing:
        await ing.emit({"x": 1}, event_type="item")
    sandbox = await anyio.to_thread.run_sync(tempfile.mkdtemp)
    root = os.path.join(sandbox, "root")
    await anyio.to_thread.run_sync(os.mkdir, root)
    await anyio.to_thread.run_sync(_plant, sandbox)
    stack = contextlib.AsyncExitStack()
    fs = await stack.enter_async_context(aiolode.FileStore(root))
    await fs.put("k/x", b"abc")
    # What a write killed mid-flight leaves in a FileStore: a named temp file.
    await anyio.to_thread.run_sync(_plant_temp, root)
    async with contextlib.aclosing(
        fs.abandoned_uploads("k/", older_than=datetime.now(UTC) + timedelta(minutes=1))
    ) as pending:
        (fs_upload,) = [u async for u in pending]
    encoded = {
        "jsonl": aiolode.JSONL().encode([{"a": 1}]).data,
        "parquet": aiolode.Parquet().encode([{"a": 1}]).data,
        "arrow": aiolode.ArrowIPC().encode([{"a": 1}]).data,
    }
    # Handed-out objects, entered here: outside any call's deadline scope.
    cache = {
        "reader": await stack.enter_async_context(vol.open_reader()),
        "blob": await stack.enter_async_context(raw.open_blob(raw_snap.id)),
        "writer": await stack.enter_async_context(raw.stream_write()),
    }
    return Ctx(
        cache=cache,
        store=store,
        ds=ds,
        raw=raw,
        snaps=snaps,
        other=other,
        vol=vol,
        vsnaps=vsnaps,
        other_vsnap=other_vsnap,
        staged=staged,
        other_ref=other_ref,
        datafile=datafile,
        report=report,
        fs=fs,
        sandbox=sandbox,
        stack=stack,
        encoded=encoded,
        spare=spare,
        raw_snap=raw_snap,
        spare_vol=spare_vol,
        ing_ds=ing_ds,
        run=run,
        fs_upload=fs_upload,
    )


async def close_ctx(ctx: Ctx) -> list[str]:
    """Close the context; return the paths created outside the FileStore root."""
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(Exception):
            await ctx.stack.aclose()
        escaped = await anyio.to_thread.run_sync(_escaped, ctx.sandbox)
        await anyio.to_thread.run_sync(shutil.rmtree, ctx.sandbox, True)
    return escaped


#: A FileStore temp name (``.aiolode-tmp-`` + 16 hex digits).
_TEMP = ".aiolode-tmp-0123456789abcdef"
#: Temp-named files beside the FileStore's root (relative to the sandbox): a
#: call that reaches outside the root to delete (``abort_upload`` of
#: ``../.aiolode-tmp-...``) removes one.
_BAIT = (_TEMP, f"bait/{_TEMP}", "bait/x")


def _plant(sandbox: str) -> None:
    for rel in _BAIT:
        path = os.path.join(sandbox, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"bait")


def _plant_temp(root: str) -> None:
    with open(os.path.join(root, "k", _TEMP), "wb") as f:
        f.write(b"half a write")


def _escaped(sandbox: str) -> list[str]:
    """Paths created outside the FileStore root, and bait that was removed."""
    root = os.path.join(sandbox, "root")
    bait = {os.path.join(sandbox, rel) for rel in _BAIT}
    out = [f"removed {p}" for p in sorted(bait) if not os.path.exists(p)]
    for dirpath, dirnames, filenames in os.walk(sandbox):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.commonpath([path, root]) == root:
                continue
            if path not in bait and path != os.path.join(sandbox, "bait"):
                out.append(path)
    return out


# ----------------------------------------------------------------- instances
@functools.cache
def _dead_s3_client() -> Any:
    """A boto3 client of an endpoint nothing listens on that gives up at once
    (the default retries and timeouts make the S3Store sweep take minutes)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=0.2,
            read_timeout=0.2,
        ),
    )


async def instance(cls_name: str, member: str, ctx: Ctx) -> Any:
    """A valid object of ``cls_name`` to call ``member`` on."""
    if cls_name in ("CRC32", "CRC32C", "MD5", "SHA256", "XXH3", "Blake2b", "Blake3"):
        return getattr(aiolode, cls_name)()
    simple: dict[str, Callable[[], Any]] = {
        "Checksum": aiolode.XXH3,
        "JSONL": aiolode.JSONL,
        "ArrowIPC": aiolode.ArrowIPC,
        "Parquet": aiolode.Parquet,
        "Codec": aiolode.JSONL,
        "Gzip": aiolode.Gzip,
        "Zstd": aiolode.Zstd,
        "Compressor": aiolode.Gzip,
        "DefaultLayout": aiolode.DefaultLayout,
        "FlatLayout": aiolode.FlatLayout,
        "HiveLayout": lambda: aiolode.HiveLayout("p"),
        "TemplateLayout": lambda: aiolode.TemplateLayout("{p}/"),
        "Layout": aiolode.DefaultLayout,
        "Retry": aiolode.Retry,
        "DropReport": lambda: aiolode.DropReport(False, (), ()),
        "Field": lambda: aiolode.Field("a", "struct", children=(aiolode.Field("b", "int64"),)),
        "Schema": lambda: aiolode.Schema.from_json({"fields": [{"name": "a", "type": "int64"}]}),
        "Strict": aiolode.Strict,
        "Buffered": lambda: aiolode.Buffered(max_buffer_rows=8, flush_rows=4),
        "IngestStats": lambda: aiolode.IngestStats(emitted=3, written=2, dropped=1),
        "CopyReport": lambda: aiolode.CopyReport(
            "dataset", "d", "d", 1, 2, 2, 2, 3, 9, 0, 0, 0, "x"
        ),
        "S3Store": lambda: aiolode.S3Store("bucket", client=_dead_s3_client()),
        "GCSStore": lambda: aiolode.GCSStore(
            "bucket", endpoint="http://127.0.0.1:9", anonymous=True, retries=0, timeout=2.0
        ),
    }
    if cls_name in simple:
        return simple[cls_name]()
    if cls_name in ("MemoryStore", "Store"):
        return ctx.store
    if cls_name == "FileStore":
        return ctx.fs
    if cls_name == "Dataset":
        if member in ("drop", "gc", "expire", "compact"):
            return ctx.spare
        return ctx.raw if member in ("stream_write", "open_blob", "read_range") else ctx.ds
    if cls_name == "DatasetReader":
        return aiolode.DatasetReader(ctx.store)
    if cls_name == "Snapshot":
        return ctx.snaps[0]
    if cls_name == "Manifest":
        return ctx.snaps[0].manifest
    if cls_name == "DataFile":
        return ctx.datafile
    if cls_name == "VerifyReport":
        return ctx.report
    if cls_name == "Volume":
        return ctx.spare_vol if member in ("drop", "gc", "expire") else ctx.vol
    if cls_name == "VolumeSnapshot":
        return ctx.vsnaps[-1]
    if cls_name == "BlockRef":
        return ctx.staged
    if cls_name == "VolumeReader":
        return ctx.cache["reader"]
    if cls_name == "Blob":
        return ctx.cache["blob"]
    if cls_name == "BlobWriter":
        return ctx.cache["writer"]
    if cls_name == "Run":
        return ctx.run
    if cls_name == "ArtifactRef":
        return _artifact_ref(ctx)
    raise AssertionError(f"no instance for {cls_name}")


# -------------------------------------------------------------- valid values
def _valid_table(ctx: Ctx) -> dict[str, Callable[[], Any]]:
    """Valid values, by ``callable.param`` or ``*.param``."""
    now = datetime.now(UTC)
    fref = ctx.datafile.file
    m = ctx.snaps[0].manifest
    return {
        # generic, by parameter name
        "*.data": lambda: b"abc",
        "*.hexdigest": lambda: "00" * 16,
        "*.options": dict,
        "*.records": lambda: [{"p": "a", "x": 1}],
        "*.chunks": lambda: [ctx.encoded["jsonl"]],
        "*.file": lambda: io.BytesIO(ctx.encoded["jsonl"]),
        "*.chunk": lambda: b"x",
        "*.key": lambda: "k/x",
        "*.offset": lambda: 0,
        "*.length": lambda: 2,
        "*.prefix": lambda: "",
        "*.snapshot": lambda: ctx.snaps[0].id,
        "*.when": lambda: now,
        "*.dataset_id": lambda: "d",
        "*.record": lambda: {"p": "a"},
        "*.values": dict,
        "*.path": lambda: "",
        "*.filename": lambda: "f.jsonl",
        "*.token": lambda: "t0",
        "*.name": lambda: "a",
        "*.retry_number": lambda: 1,
        "*.ref": lambda: ctx.datafile,
        "*.message": lambda: "message",
        "*.bucket": lambda: "bucket",
        "*.etag": lambda: '"e"',
        "*.size": lambda: 3,
        "*.store": lambda: ctx.store,
        "*.id": lambda: "n",
        # per callable
        "HiveLayout.partition_path.values": lambda: {"p": "a"},
        "HiveLayout.data_key.values": lambda: {"p": "a"},
        "HiveLayout.partition_manifest_key.values": lambda: {"p": "a"},
        "HiveLayout.parse_partition_path.path": lambda: "p=a",
        "TemplateLayout.partition_path.values": lambda: {"p": "a"},
        "TemplateLayout.data_key.values": lambda: {"p": "a"},
        "TemplateLayout.partition_manifest_key.values": lambda: {"p": "a"},
        "TemplateLayout.parse_partition_path.path": lambda: "a/",
        "TemplateLayout.template": lambda: "{p}/",
        "HiveLayout.keys": lambda: "p",
        "Parquet.decode.data": lambda: ctx.encoded["parquet"],
        "Parquet.to_arrow.data": lambda: ctx.encoded["parquet"],
        "Parquet.iter_decode.chunks": lambda: [ctx.encoded["parquet"]],
        "Parquet.iter_batches.file": lambda: io.BytesIO(ctx.encoded["parquet"]),
        "ArrowIPC.decode.data": lambda: ctx.encoded["arrow"],
        "ArrowIPC.to_arrow.data": lambda: ctx.encoded["arrow"],
        "ArrowIPC.iter_decode.chunks": lambda: [ctx.encoded["arrow"]],
        "ArrowIPC.iter_batches.file": lambda: io.BytesIO(ctx.encoded["arrow"]),
        "Gzip.decompress.data": lambda: aiolode.Gzip().compress(b"abc"),
        "Zstd.decompress.data": lambda: aiolode.Zstd().compress(b"abc"),
        "Compressor.decompress.data": lambda: aiolode.Gzip().compress(b"abc"),
        "Dataset.write.data": lambda: [{"p": "a", "x": 9}],
        "Dataset.stream_write_records.records": lambda: [{"p": "a", "x": 9}],
        "Dataset.snapshot_as_of.when": lambda: ctx.snaps[-1].created_at,
        "Dataset.open_blob.snapshot": lambda: ctx.raw_snap.id,
        "Dataset.read_range.snapshot": lambda: ctx.raw_snap.id,
        "Dataset.expire.keep_last": lambda: 1,
        "Dataset.expire.dry_run": lambda: True,
        "Dataset.gc.dry_run": lambda: True,
        "Dataset.drop.dry_run": lambda: True,
        "Volume.expire.keep_last": lambda: 1,
        "Volume.expire.dry_run": lambda: True,
        "Volume.gc.dry_run": lambda: True,
        "Volume.drop.dry_run": lambda: True,
        "BlobWriter.set_metadata.metadata": lambda: {"k": "v"},
        "Blob.read_range.length": lambda: 2,
        "Blob.snapshot": lambda: ctx.raw_snap,
        "Blob.chunk_size": lambda: 64,
        "Volume.snapshot.snapshot": lambda: ctx.vsnaps[-1].id,
        "Volume.read_at.snapshot": lambda: ctx.vsnaps[-1].id,
        "Volume.read_at.length": lambda: 4,
        "Volume.stage_write_at.offset": lambda: 3000,
        "Volume.stage_write_at.data": lambda: b"zz",
        "Volume.commit.blocks": lambda: [ctx.staged],
        "Volume.snapshot_as_of.when": lambda: ctx.vsnaps[-1].created_at,
        "VolumeReader.read.length": lambda: 4,
        "DatasetReader.read_range.key": lambda: ctx.datafile,
        "DatasetReader.range_reader.key": lambda: ctx.datafile,
        "DatasetReader.dataset.dataset_id": lambda: "d",
        "Schema.field.name": lambda: "a",
        "Schema.fields": lambda: [aiolode.Field("a", "int64")],
        "Schema.from_json.data": lambda: {"fields": [{"name": "a", "type": "int64"}]},
        "Schema.from_arrow.schema": lambda: aiolode.Schema.from_json(
            {"fields": [{"name": "a", "type": "int64"}]}
        ).to_arrow(),
        "Field.child.name": lambda: "b",
        "Field.type": lambda: "int64",
        "Field.from_json.data": lambda: {"name": "a", "type": "int64"},
        "JSONL.from_options.options": lambda: {"stats": True},
        "Dataset.id": lambda: "n",
        "Volume.id": lambda: "n",
        "Volume.total_length": lambda: 100,
        "FileStore.root": lambda: os.path.join(ctx.sandbox, "root"),
        "BlockRef.offset": lambda: 0,
        "BlockRef.length": lambda: 4,
        "BlockRef.key": lambda: "volumes/v/blocks/0-x",
        "DataFile.file": lambda: fref,
        "DataFile.snapshot_id": lambda: ctx.snaps[0].id,
        "DataFile.codec": lambda: "jsonl",
        "DataFile.compressor": lambda: None,
        "FileRef.key": lambda: fref.key,
        "FileRef.size": lambda: fref.size,
        "IfMatch.etag": lambda: '"e"',
        "ObjectInfo.key": lambda: "k",
        "ObjectInfo.size": lambda: 1,
        "ObjectInfo.etag": lambda: '"e"',
        "Problem.kind": lambda: aiolode.ProblemKind.INVALID_RECORD,
        "Problem.message": lambda: "m",
        "ProblemKind.value": lambda: "invalid_record",
        "Snapshot.manifest": lambda: m,
        "DropReport.dry_run": lambda: False,
        "DropReport.deleted": tuple,
        "DropReport.remaining": tuple,
        "ExpireReport.dry_run": lambda: False,
        "ExpireReport.expired": tuple,
        "ExpireReport.files": tuple,
        "ExpireReport.bytes": lambda: 0,
        "ExpireReport.record": lambda: None,
        "GCReport.dry_run": lambda: False,
        "GCReport.fence": lambda: now,
        "GCReport.deleted": tuple,
        "GCReport.bytes": lambda: 0,
        "GCReport.kept_young": lambda: 0,
        **_valid_table_new(ctx),
        "open_store.url": lambda: "memory://",
        "verify_volume.volume_id": lambda: "v",
        "verify_volume.total_length": lambda: 4096,
        **{f"Manifest.{k}": (lambda v=v: v) for k, v in attrs.asdict(m, recurse=False).items()},
        **{
            f"VerifyReport.{k}": (lambda v=v: v)
            for k, v in attrs.asdict(ctx.report, recurse=False).items()
        },
        **{
            f"VolumeSnapshot.{a.alias}": (lambda v=v: v)
            for a, v in zip(
                attrs.fields(type(ctx.vsnaps[0])),
                attrs.astuple(ctx.vsnaps[0], recurse=False),
                strict=True,
            )
        },
    }


_STORES = ("Store", "MemoryStore", "FileStore", "S3Store", "GCSStore")


def _artifact_ref(ctx: Ctx) -> aiolode.ArtifactRef:
    return aiolode.ArtifactRef("q.artifacts", ctx.raw_snap.id, "shot", "image/png", 3)


def _valid_table_new(ctx: Ctx) -> dict[str, Callable[[], Any]]:
    """Valid values of the callables that joined the sweep with ingestion and copy."""
    now = datetime.now(UTC)
    ref = _artifact_ref(ctx)
    return {
        # Ingestion (the Ingestor's methods run on a fresh one; see _scope).
        "Ingestor.dataset": lambda: ctx.ing_ds,
        "Ingestor.policy": lambda: aiolode.Buffered(
            max_buffer_rows=16, flush_rows=8, flush_interval=0.05
        ),
        "Ingestor.run": lambda: attrs.evolve(ctx.run, attempt=2),
        "Ingestor.time_field": lambda: "ts",
        "Ingestor.resume": lambda: True,
        "Ingestor.artifacts": lambda: aiolode.Dataset("q.shots", ctx.store),
        "Ingestor.on_drop": lambda: lambda drop: None,
        "Ingestor.close_timeout": lambda: 5.0,
        "Ingestor.max_artifact_uploads": lambda: 2,
        "Ingestor.emit.record": lambda: {"x": 3, "ok": True},
        "Ingestor.emit.event_type": lambda: "item",
        "Ingestor.emit.event_time": lambda: now,
        "Ingestor.emit_artifact.name": lambda: "page",
        "Ingestor.emit_artifact.data": lambda: Fresh(
            lambda: _achunks(b"<html>", b"</html>"), "async chunks"
        ),
        "Ingestor.emit_artifact.content_type": lambda: "text/html",
        "Ingestor.aclose.deadline": lambda: 5.0,
        "Strict.max_batch_rows": lambda: 10,
        "Strict.max_batch_bytes": lambda: 1 << 20,
        "Strict.max_delay": lambda: 0.01,
        "Buffered.max_buffer_rows": lambda: 100,
        "Buffered.max_buffer_bytes": lambda: 1 << 20,
        "Buffered.flush_rows": lambda: 10,
        "Buffered.flush_bytes": lambda: 1 << 16,
        "Buffered.flush_interval": lambda: 0.5,
        "Buffered.on_full": lambda: "drop_oldest",
        "Run.run_id": lambda: "run-1",
        "Run.job_id": lambda: "job",
        "Run.parent_run_id": lambda: "run-0",
        "Run.attempt": lambda: 2,
        "Run.source": lambda: "shop",
        "Run.category": lambda: "product",
        "ArtifactRef.from_record.value": ref.to_record,
        **{f"ArtifactRef.{k}": (lambda v=v: v) for k, v in attrs.asdict(ref).items()},
        **{f"IngestStats.{a.name}": (lambda: 0) for a in attrs.fields(aiolode.IngestStats)},
        "IngestStats.dropped_by_reason": lambda: {"deadline": 1},
        "IngestStats.dropped_by_event_type": lambda: {"item": {"deadline": 1}},
        "IngestStats.flushes": lambda: {"rows": 1},
        "IngestStats.last_snapshot_id": lambda: None,
        "IngestStats.last_error": lambda: None,
        "IngestStats.in_doubt_batches": tuple,
        "quarry_dataset.id": lambda: "q2",
        # Pending uploads: a real one in the FileStore (a dead write's temp file).
        **{
            f"{store}.abandoned_uploads.older_than": lambda: now + timedelta(minutes=1)
            for store in _STORES
        },
        **{
            f"{store}.abort_upload.upload": lambda: aiolode.PendingUpload(
                "k/x", "upload-1", now - timedelta(days=1)
            )
            for store in _STORES
        },
        "FileStore.abort_upload.upload": lambda: ctx.fs_upload,
        "PendingUpload.key": lambda: "k/x",
        "PendingUpload.upload_id": lambda: "upload-1",
        "PendingUpload.initiated": lambda: now,
        "PendingUpload.size": lambda: 3,
        # Copy: from the context's dataset / volume to a new store each call.
        "copy_dataset.src": lambda: ctx.ds,
        "copy_volume.src": lambda: ctx.vol,
        **{
            f"{copy}.{param}": value
            for copy in ("copy_dataset", "copy_volume")
            for param, value in (
                ("dst_store", lambda: Fresh(aiolode.MemoryStore, "MemoryStore")),
                ("dst_id", lambda: "copied"),
                ("progress", lambda: _progress_sink),
                ("concurrency", lambda: 2),
            )
        },
        "copy_dataset.snapshots": lambda: (ctx.snaps[0], ctx.snaps[-1].id),
        "CopyProgress.bytes": lambda: 10,
        "CopyProgress.objects": lambda: 1,
        "CopyProgress.records": lambda: 1,
        "CopyProgress.snapshots": lambda: 1,
        "CopyProgress.records_total": lambda: 2,
        **{
            f"CopyReport.{a.name}": (lambda v=v: v)
            for a, v in zip(
                attrs.fields(aiolode.CopyReport),
                ("dataset", "d", "d", 1, 2, 2, 2, 3, 9, 0, 0, 0, "x"),
                strict=True,
            )
        },
        **{
            f"CompactReport.{a.name}": (lambda v=v: v)
            for a, v in zip(
                attrs.fields(aiolode.CompactReport),
                (False, 3, ("a",), ("b",), 1, 2, 10, 8),
                strict=True,
            )
        },
    }


async def _progress_sink(progress: aiolode.CopyProgress) -> None:
    assert isinstance(progress, aiolode.CopyProgress)


async def _achunks(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _keys(name: str, param: str) -> tuple[str, ...]:
    """Where the tables look ``param`` of ``name`` up, most specific first."""
    forwarded = (f"{_FORWARDED[name][0]}.{param}",) if name in _FORWARDED else ()
    return (f"{name}.{param}", f"{name.split('.')[0]}.{param}", *forwarded, f"*.{param}")


def _valid(table: dict[str, Callable[[], Any]], name: str, param: str) -> tuple[bool, Any]:
    for k in _keys(name, param):
        if k in table:
            return True, table[k]()
    return False, None


# ---------------------------------------------------------------- the calls
#: Exceptions a callable documents beyond the aiolode tree, with why.
ALLOWED: dict[str, tuple[tuple[type[BaseException], ...], str]] = {
    # Python's Enum lookup: a ValueError whose message Python builds with repr().
    "ProblemKind": ((ValueError, RecursionError, HostileError), "Enum lookup by value"),
    **dict.fromkeys(
        ("Store", "Checksum", "Codec", "Compressor", "Layout"),
        ((TypeError,), "an abstract base class: Python refuses to instantiate it"),
    ),
}
#: Source lines where the library calls a callable the caller passed (a
#: ``where=`` predicate, a copy's ``progress``): what it raises is the caller's.
_CALLBACK_SITES = ("pred(", "self.callback(")
_CALLERS_CALLABLE = "the caller's own callable raised"
_LIBRARY = os.path.dirname(aiolode.__file__)
#: Best-effort pointers a refused call may still refresh (they decide nothing:
#: readers treat them as a hint and search past them).
_HINTS = ("/_log/_latest.json", "/_latest")
#: Callables that yield a context manager the call is about.
_CONTEXT_MANAGERS = {"Dataset.stream_write", "Volume.open_reader"}
#: Async generators that may wait for new snapshots forever.
_FOLLOWERS = {"Dataset.watch", "Volume.watch"}


def target(name: str) -> tuple[str, str, Any]:
    """(class name or "", member or "", the callable/descriptor itself)."""
    if "." in name:
        cls_name, member = name.split(".", 1)
        return cls_name, member, inspect.getattr_static(getattr(aiolode, cls_name), member)
    obj = getattr(aiolode, name)
    if inspect.isclass(obj):
        return name, "", obj
    return "", name, obj


def parameters(name: str) -> list[inspect.Parameter]:
    """The parameters a caller passes (no self/cls, no private ones, no ``*args``)."""
    cls_name, member, obj = target(name)
    if isinstance(obj, property):
        return []
    if cls_name and not member:
        if issubclass(obj, enum.Enum):
            return [inspect.Parameter("value", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        fn: Any = obj
    elif cls_name:
        fn = getattr(getattr(aiolode, cls_name), member)
    else:
        fn = obj
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in ("self", "cls") or p.name.startswith("_"):
            continue
        if p.kind is p.VAR_KEYWORD:
            if name in _FORWARDED:
                to, own = _FORWARDED[name]
                names = {q.name for q in out} | own
                out += [
                    q.replace(kind=q.KEYWORD_ONLY)
                    for q in parameters(to)
                    if q.name not in names and q.kind is not q.VAR_POSITIONAL
                ]
            continue
        out.append(p)
    return out


#: Callables whose ``**kwargs`` go on to another callable: that one's parameters
#: (but those the first sets itself) are swept as theirs.
_FORWARDED: dict[str, tuple[str, frozenset[str]]] = {
    "Run.new": ("Run", frozenset({"run_id"})),
    "quarry_dataset": ("Dataset", frozenset({"id", "store", "codec"})),
}


_CHECKPOINT = re.compile(r"(?P<log>.*/_log/)_checkpoints/(?P<seq>\d+)\.json\Z")
_RECORD = re.compile(r"(?P<log>.*/_log/)(?P<seq>\d+)\.json\Z")


def _upkeep(key: str, before: dict[str, bytes], after: dict[str, bytes]) -> bool:
    """Whether ``key`` is a new checkpoint of history committed before the call.

    A write folds the checkpoint due at a 64-record boundary alongside its data
    puts (best effort, like the hint), so one the codec then refuses may still
    leave the fold of records committed earlier: it decides nothing, and holds
    what any later write would fold.
    """
    m = _CHECKPOINT.match(key)
    if m is None or key in before or key not in after:
        return False
    committed = [
        int(r["seq"])
        for k in before
        if (r := _RECORD.match(k)) is not None and r["log"] == m["log"]
    ]
    return bool(committed) and int(m["seq"]) <= max(committed)


def _objects(store: aiolode.MemoryStore) -> dict[str, bytes]:
    return {k: o.data for k, o in store._objects.items() if not k.endswith(_HINTS)}


async def _store_state(ctx: Ctx) -> dict[str, bytes]:
    return _objects(ctx.store)


async def _fs_state(ctx: Ctx) -> list[str]:
    def walk() -> list[str]:
        out = []
        for dirpath, _, filenames in os.walk(os.path.join(ctx.sandbox, "root")):
            for f in filenames:
                if not f.startswith(".aiolode"):
                    path = os.path.join(dirpath, f)
                    with open(path, "rb") as fh:
                        out.append(f"{path}:{hash(fh.read())}")
        return sorted(out)

    return await anyio.to_thread.run_sync(walk)


async def _drive(name: str, result: Any, ctx: Ctx) -> Any:
    """Await, iterate or enter what the call returned, as a caller would."""
    if inspect.isawaitable(result):
        result = await result
    if name == "Ingestor":
        return await _drive_ingestor(result, ctx)
    if name in _CONTEXT_MANAGERS and hasattr(result, "__aenter__"):
        async with result as value:
            return value
    if isinstance(result, AsyncGenerator | AsyncIterator) and not isinstance(result, aiolode.Store):
        items = []
        agen: Any = result
        try:
            for _ in range(4):
                if name in _FOLLOWERS:
                    got = None
                    with anyio.move_on_after(0.2):
                        got = await anext(agen)
                    if got is None:
                        break
                    items.append(got)
                else:
                    items.append(await anext(agen))
        except StopAsyncIteration:
            pass
        finally:
            if hasattr(agen, "aclose"):
                await agen.aclose()
        return items
    if isinstance(result, types.GeneratorType):
        try:
            return [next(result) for _ in range(4)]
        except StopIteration:
            return None
        finally:
            result.close()
    return result


async def _drive_ingestor(ing: aiolode.Ingestor, ctx: Ctx) -> aiolode.IngestStats:
    """Use a new Ingestor as a producer would, so every constructor argument
    is used: open it (``resume``), emit (``time_field``, ``run``, ``policy``),
    emit a record the dataset's schema refuses (dropped: ``on_drop``; a
    Strict emit raises it), store an artifact (``artifacts``,
    ``max_artifact_uploads``), close it (``close_timeout``). Each step that
    succeeds may write; a refusal after it must not write more."""
    ts = "2024-01-02T03:04:05+00:00"
    async with ing:
        try:
            await ing.emit({"x": 2, "ts": ts}, event_type="item")
            await ing.flush()
            await _succeeded(ctx)
            with contextlib.suppress(aiolode.SchemaViolationError):
                await ing.emit({"x": "not an int", "ts": ts}, event_type="item")
            await ing.flush()
            await _succeeded(ctx)
            await ing.emit_artifact("shot", b"png")
            await _succeeded(ctx)
        except Exception:
            await _refused(ctx)
            raise
    return ing.stats


@attrs.frozen
class Verdict:
    name: str
    ok: bool
    what: str


def _binds(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature
        return True
    return True


async def call(name: str, ctx: Ctx, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Verdict:
    """Make one call the way a user would and judge what came out."""
    cls_name, member, obj = target(name)
    is_prop = isinstance(obj, property)
    made: list[Any] = []
    args, kwargs = _fresh(args, kwargs, made)
    ctx.mark, ctx.refused_at = await _store_state(ctx), None
    fs_before = await _fs_state(ctx) if cls_name == "FileStore" else None
    fn: Any = None
    try:
        with anyio.fail_after(CALL_DEADLINE):
            async with _scope(cls_name, member, ctx) as inst:
                try:
                    if inst is not None and is_prop:
                        getattr(inst, member)
                        return Verdict(name, True, "property")
                    fn = obj if inst is None else getattr(inst, member)
                    await _drive(name, fn(*args, **kwargs), ctx)
                except Exception:
                    await _refused(ctx)
                    raise
    except TimeoutError:
        return Verdict(name, False, f"hang: no answer within {CALL_DEADLINE} s")
    except Exception as exc:
        verdict = _judge(name, fn, args, kwargs, exc)
        if not verdict.ok:
            return verdict
        before = ctx.mark
        after = ctx.refused_at if ctx.refused_at is not None else await _store_state(ctx)
        changed = sorted(
            k
            for k in set(after) ^ set(before) | {k for k in after if before.get(k) != after[k]}
            if not _upkeep(k, before, after)
        )
        if changed:
            return Verdict(name, False, f"refused ({type(exc).__name__}) but wrote {changed[:4]}")
        if fs_before is not None and await _fs_state(ctx) != fs_before:
            return Verdict(name, False, f"refused ({type(exc).__name__}) but changed the FileStore")
        for store in made:
            if verdict.what == _CALLERS_CALLABLE:
                break  # a copy stopped by its progress callback resumes from there
            if isinstance(store, aiolode.MemoryStore) and _objects(store):
                written = sorted(_objects(store))[:4]
                return Verdict(
                    name, False, f"refused ({type(exc).__name__}) but wrote {written} there"
                )
        return verdict
    return Verdict(name, True, "result")


async def _refused(ctx: Ctx) -> None:
    """Note the store's state where a call (or a step of its driver) was refused."""
    if ctx.refused_at is None:
        ctx.refused_at = await _store_state(ctx)


async def _succeeded(ctx: Ctx) -> None:
    """A step of a driver succeeded: a refusal after it must leave what it wrote."""
    ctx.mark = await _store_state(ctx)


@attrs.frozen(eq=False)
class Fresh:
    """A valid or hostile value made anew for each call: a store a copy fills
    (it must stay empty when the call is refused), a one-shot async iterator."""

    make: Callable[[], Any]
    label: str

    def __repr__(self) -> str:
        return f"<fresh {self.label}>"


def _fresh(
    args: tuple[Any, ...], kwargs: dict[str, Any], made: list[Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    def one(v: Any) -> Any:
        if isinstance(v, Fresh):
            v = v.make()
            made.append(v)
        return v

    return tuple(one(a) for a in args), {k: one(v) for k, v in kwargs.items()}


@contextlib.asynccontextmanager
async def _scope(cls_name: str, member: str, ctx: Ctx) -> AsyncIterator[Any]:
    """The object to call ``member`` on, for the length of the call (``None`` for a
    function or a constructor). An Ingestor is made and entered for each call:
    ``aclose`` ends it, and its writer task must live inside the call's deadline."""
    if not (cls_name and member):
        yield None
    elif cls_name == "Ingestor":
        ing = aiolode.Ingestor(
            ctx.ing_ds, run=ctx.run, resume=member == "progress", close_timeout=5.0
        )
        async with ing:
            yield ing
    else:
        yield await instance(cls_name, member, ctx)


def _judge(
    name: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception
) -> Verdict:
    kind = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:200]}"
    if isinstance(exc, aiolode.AiolodeError):
        return Verdict(name, True, type(exc).__name__)
    if isinstance(exc, TypeError) and fn is not None and not _binds(fn, args, kwargs):
        return Verdict(name, True, "signature")
    if isinstance(exc, TypeError) and re.search(
        r"got an unexpected keyword argument|takes \d+ positional argument", str(exc)
    ):
        # Python's own binding, one level down (a ``**kwargs`` passed on to super()).
        return Verdict(name, True, "signature")
    if isinstance(exc, HostileError) and not (
        name in ALLOWED and isinstance(exc, ALLOWED[name][0])
    ):
        if exc.dunder in _CALLERS_OWN:
            return Verdict(name, True, f"caller's own {exc.dunder}")
        return Verdict(name, False, f"the library needed the argument's {exc.dunder}: {kind}")
    allowed = ALLOWED.get(name)
    if allowed is not None and isinstance(exc, allowed[0]):
        return Verdict(name, True, f"documented {type(exc).__name__}")
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    # The caller's callable raised: the last library frame is a callback site,
    # and every frame after it is the caller's code.
    library = [f for f in frames if f.tb_frame.f_code.co_filename.startswith(_LIBRARY)]
    if library:
        last = library[-1]
        line = linecache.getline(last.tb_frame.f_code.co_filename, last.tb_lineno)
        if any(site in line for site in _CALLBACK_SITES):
            return Verdict(name, True, _CALLERS_CALLABLE)
    tb = frames[-1] if frames else None
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else ""
    return Verdict(name, False, f"{kind}{where}")


#: Constructors of value types and structured errors that validate with attrs
#: (or build their fields) and let a plain ValueError/TypeError/AssertionError
#: through for a wrong argument type: pinned below (xfail strict), kept out of
#: the sweep and the fuzz until fixed. Deep: the attrs validators and
#: converters of the manifest models are shared with the decode path, which
#: maps those exceptions to ManifestFormatError.
MODEL_CONSTRUCTORS = (
    "DataFile",
    "FileRef",
    "Manifest",
    "OverlappingBlocksError",
    "RangeMissingError",
    "SnapshotConflictError",
)


def all_names() -> list[str]:
    return sorted(covered() - set(MODEL_CONSTRUCTORS))


def plan_sweep(
    name: str, ctx: Ctx, values: list[Any]
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Each parameter in turn gets each hostile value, the others valid."""
    table = _valid_table(ctx)
    params = parameters(name)
    base: dict[str, Any] = {}
    for p in params:
        found, value = _valid(table, name, p.name)
        if found:
            base[p.name] = value
        elif p.default is p.empty and p.kind is not p.VAR_POSITIONAL:
            base[p.name] = None  # no valid value known: the internal-only constructors
    yield _split(params, base)
    extras = _hostile_extras(ctx)
    for p in params:
        for v in [*values, *_extra(extras, name, p.name)]:
            yield _split(params, {**base, p.name: v})
    # A signature mismatch (unless it takes *args): one positional argument too many.
    args, kwargs = _split(params, base)
    yield (*args, "extra"), kwargs


class _BadTz(tzinfo):
    """A tzinfo whose every answer raises (the caller's own object)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise HostileError("utcoffset")

    def dst(self, dt: datetime | None) -> timedelta:
        raise HostileError("dst")

    def tzname(self, dt: datetime | None) -> str:
        raise HostileError("tzname")


def _hostile_extras(ctx: Ctx) -> dict[str, list[Any]]:
    """Hostile values of the right type for one parameter (by ``callable.param``
    or ``*.param``), on top of :func:`static_hostile` and the wrong kinds: the
    records a producer may emit, the ranges a copy may be asked for, pending
    uploads that point elsewhere, times at the edges of the calendar."""
    east, west = timezone(timedelta(hours=5)), timezone(timedelta(hours=-5))
    edges = [
        datetime(1, 1, 1, tzinfo=east),  # before year 1 in UTC
        datetime(9999, 12, 31, 23, tzinfo=west),  # after year 9999 in UTC
        datetime(2024, 1, 1, tzinfo=_BadTz()),
    ]
    s0, s1 = ctx.snaps[0], ctx.snaps[-1]
    now = datetime.now(UTC)

    def upload(key: Any, upload_id: Any = _TEMP, **kw: Any) -> aiolode.PendingUpload:
        return aiolode.PendingUpload(key, upload_id, kw.pop("initiated", now), **kw)

    uploads = [
        upload(BadRepr(), BadRepr()),
        upload(None, None, initiated=None),
        upload("", ""),
        upload(f"../{_TEMP}"),  # the bait beside the root
        upload(f"../bait/{_TEMP}"),
        upload(f"k/../../{_TEMP}"),
        upload(f"/{_TEMP}"),
        upload(f"k\x00/{_TEMP}"),
        upload(f"k/{_TEMP}", ".aiolode-tmp-fedcba9876543210"),  # id and key disagree
        upload("k/x", "x"),  # an object, not a temp file
        upload("k", "k"),  # a directory
        upload(StrLie(f"k/{_TEMP}"), StrLie(_TEMP)),
        upload(f"k/{_TEMP}", _TEMP, initiated=BadEq(), size=-1),
        upload("x" * 5000, "x" * 5000),
    ]

    def agen(*items: Any) -> Fresh:
        return Fresh(lambda: _achunks(*items), f"async chunks {len(items)}")

    def bad_mapping() -> Any:
        class M(dict):  # type: ignore[type-arg]
            def __getitem__(self, k: Any) -> Any:
                raise HostileError("__getitem__")

        return M(dataset_id="d", snapshot_id="s", name="n", content_type="t", size=1)

    ref = _artifact_ref(ctx).to_record()
    return {
        "Ingestor.emit.record": [
            {"x": BadRepr()},
            {"x": BadEq()},
            {"x": StrLie("v")},
            {"x": 2**64},
            {"x": -(2**63) - 1},
            {"x": math.nan},
            {"x": {"y": math.inf}},
            {"x": _DEEP_DICT},
            {"x": _DEEP_LIST},
            {"x": _cyclic_dict()},
            {"x": datetime(2024, 1, 1)},
            {"x": b"bytes"},
            {"x": Decimal("1.5")},
            {"\ud800": 1},
            {"": 1},
            {"x": "a\x00b"},
            {"x": "x" * 100_000},
            {"seq": 1},
            {"run_id": "another"},
            {"run_id": BadEq()},
            {"event_type": "another"},
            {"source": 1},
            {"category": None},
            {"day": "2024-01-01"},
            {"day": BadRepr()},
            {"ts": BadRepr()},
            {"x": [1, "a", None]},
            {"x": "a"},  # a str where the recorded column is an int
        ],
        "Ingestor.emit.event_time": [
            *edges,
            "2024-13-45",
            "2024-01-01T00:00:00+25:00",
            "0001-01-01T00:00:00+05:00",
            "\ud800",
            date(1, 1, 1),
        ],
        "Ingestor.emit.event_type": ["a/b", "a=b", "x" * 201, "\t", StrLie("item")],
        "Ingestor.emit_artifact.data": [
            agen(),
            agen("text"),
            agen(None),
            agen(b"a", 10**100),
            agen(b"a", BadRepr()),
            agen(bytearray(b"a"), memoryview(b"b")),
            agen(*([b"x" * 1024] * 64)),
            Fresh(lambda: iter([b"a"]), "a sync iterator"),
            [b"a", b"b"],
        ],
        "Ingestor.emit_artifact.name": ["a/b", "../x", "x" * 1025, "\t"],
        "Ingestor.emit_artifact.content_type": ["x" * 256, "\n", "text/plain\x00"],
        "Ingestor.time_field": ["x", "day", "seq", "\ud800"],
        "Ingestor.artifacts": [ctx.raw, ctx.spare, aiolode.Dataset("q", ctx.store)],
        "Ingestor.on_drop": [BadRepr, lambda drop: 1 / 0],
        "Ingestor.policy": [
            aiolode.Buffered(max_buffer_rows=1, flush_rows=1, on_full="drop_newest"),
            aiolode.Strict(max_batch_rows=1, max_batch_bytes=1),
        ],
        "Ingestor.run": [aiolode.Run("r1"), aiolode.Run("r1", source="s2", category="c")],
        "Ingestor.aclose.deadline": [0, 10**400, 1e-300],
        "Buffered.on_full": [StrLie("block"), "BLOCK", "drop"],
        "Run.new.attempt": [0, 10**400],
        "ArtifactRef.from_record.value": [
            {**ref, "size": "3"},
            {**ref, "size": -1},
            {**ref, "size": True},
            {**ref, "content_type": BadRepr()},
            {**ref, "name": None},
            {k: v for k, v in ref.items() if k != "size"},
            bad_mapping(),
        ],
        "copy_dataset.snapshots": [
            (None, None),
            (BadRepr(), None),
            (None, BadEq()),
            (s1.id, s0.id),  # the wrong way round
            (s1, s0),
            (ctx.other, None),  # a Snapshot of another dataset
            (None, ctx.other.id),
            (ctx.vsnaps[0], None),
            (ctx.vsnaps[0].id, None),
            (s0.id.replace("-0000", "-9999"), None),
            ("not-a-snapshot-id", None),
            (StrLie(s0.id), None),
            (_DEEP_LIST, None),
            [s0.id, s1.id],
            (s0.id,),
            (s0.id, s1.id, None),
        ],
        **{
            f"{copy}.{param}": value
            for copy in ("copy_dataset", "copy_volume")
            for param, value in (
                ("dst_store", [ctx.fs, aiolode.FileStore(os.path.join(ctx.sandbox, "root"))]),
                ("dst_id", ["d", "v", "w", "o", "q", "copied/x", "a" * 300]),
                ("progress", [BadRepr, lambda p: 1 / 0, _progress_sink]),
                ("concurrency", [0, 10**6, 10**400]),
            )
        },
        **{f"{store}.abort_upload.upload": uploads for store in _STORES},
        **{f"{store}.abandoned_uploads.older_than": edges for store in _STORES},
        "PendingUpload.initiated": edges,
        "quarry_dataset.layout": [aiolode.quarry_layout(), None],
    }


def _extra(extras: dict[str, list[Any]], name: str, param: str) -> list[Any]:
    for k in _keys(name, param):
        if k in extras:
            return extras[k]
    return []


def _split(
    params: list[inspect.Parameter], values: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in params:
        if p.name not in values:
            continue
        if p.kind is p.VAR_POSITIONAL:
            v = values[p.name]
            args.append(v)
        elif p.kind is p.POSITIONAL_ONLY:
            args.append(values[p.name])
        else:
            kwargs[p.name] = values[p.name]
    return tuple(args), kwargs


# ------------------------------------------------------------------- the tests
_CLASSES = sorted({n.split(".")[0] for n in all_names()})


@pytest.mark.parametrize("group", _CLASSES)
async def test_hostile_sweep(group: str) -> None:
    """Every hostile value in every parameter of every callable of ``group``."""
    names = [n for n in all_names() if n.split(".")[0] == group]
    await _sweep(names)


@pytest.mark.parametrize("name", MODEL_CONSTRUCTORS)
async def test_hostile_model_constructors(name: str) -> None:
    await _sweep([name])


async def _sweep(names: list[str]) -> None:
    ctx = await make_ctx()
    failures: list[Verdict] = []
    calls = 0
    try:
        values = static_hostile() + ctx.wrong_kinds()
        for name in names:
            for args, kwargs in plan_sweep(name, ctx, values):
                calls += 1
                v = await call(name, ctx, args, kwargs)
                if not v.ok:
                    failures.append(attrs.evolve(v, what=f"{v.what} | args={_brief(args, kwargs)}"))
    finally:
        escaped = await close_ctx(ctx)
    assert escaped == []
    assert calls >= len(names)
    assert failures == [], "\n".join(f"{f.name}: {f.what}" for f in _dedupe(failures))


def _brief(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    def one(v: Any) -> str:
        try:
            text = repr(v)
        except Exception:
            text = f"<{type(v).__name__} with a hostile repr>"
        return text if len(text) < 60 else text[:60] + "…"

    return ", ".join([*(one(a) for a in args), *(f"{k}={one(v)}" for k, v in kwargs.items())])


def _dedupe(failures: list[Verdict]) -> list[Verdict]:
    seen: dict[tuple[str, str], Verdict] = {}
    for f in failures:
        seen.setdefault((f.name, f.what.split(" | ")[0][:120]), f)
    return list(seen.values())


hostile_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@hostile_settings
@given(data=st.data())
async def test_hostile_fuzz(data: st.DataObject) -> None:
    """Any callable, any mix of hostile and valid arguments, sometimes too many or unknown ones."""
    name = data.draw(st.sampled_from([n for n in all_names() if ONLY.search(n)]), label="callable")
    ctx = await make_ctx()
    try:
        table = _valid_table(ctx)
        values: dict[str, Any] = {}
        kinds = ctx.wrong_kinds()
        hostile = hostile_strategy(kinds)
        extras = _hostile_extras(ctx)
        params = parameters(name)
        for p in params:
            found, valid = _valid(table, name, p.name)
            if data.draw(st.booleans(), label=f"{p.name} hostile"):
                mine = _extra(extras, name, p.name)
                values[p.name] = data.draw(
                    hostile_strategy([*kinds, *mine]) if mine else hostile, label=p.name
                )
            elif found:
                values[p.name] = valid
            elif p.default is p.empty:
                values[p.name] = None
        args, kwargs = _split(params, values)
        extra = data.draw(st.sampled_from(["none", "none", "none", "positional", "keyword"]))
        if extra == "positional":
            args = (*args, data.draw(hostile, label="extra"))
        elif extra == "keyword":
            kwargs["no_such_parameter"] = data.draw(hostile, label="extra kw")
        verdict = await call(name, ctx, args, kwargs)
    finally:
        escaped = await close_ctx(ctx)
    assert escaped == []
    assert verdict.ok, f"{verdict.name}: {verdict.what} | args={_brief(args, kwargs)}"


# ------------------------------------------------- the defects it found
# One small test per class of defect the sweep found and the library now
# refuses with a typed error (each failed before the fix).
async def test_an_argument_whose_repr_raises_is_refused_typed() -> None:
    store = aiolode.MemoryStore()
    for make in (
        lambda: aiolode.Dataset(BadRepr(), store),  # type: ignore[arg-type]
        lambda: aiolode.Dataset("d", BadRepr()),  # type: ignore[arg-type]
        lambda: aiolode.DatasetReader(_deep()),  # type: ignore[arg-type]
        lambda: aiolode.S3Store("b", part_size=BadRepr()),  # type: ignore[arg-type]
        lambda: aiolode.Volume("v", store, 10, checksum=BadRepr()),  # type: ignore[arg-type]
    ):
        with pytest.raises(aiolode.InvalidInputError):
            make()
    await aiolode.Dataset("d", store).write(b"x")
    with pytest.raises(aiolode.InvalidInputError):
        await aiolode.Dataset("d", store).gc(grace=_deep())  # type: ignore[arg-type]


async def test_an_age_longer_than_time_expires_nothing() -> None:
    store = aiolode.MemoryStore()
    ds = aiolode.Dataset("d", store)
    await ds.write(b"x")
    vol = aiolode.Volume("v", store, 10)
    await vol.commit([await vol.stage_write_at(0, b"x")])
    for obj in (ds, vol):
        report = await obj.expire(older_than=timedelta.max, dry_run=True)
        assert report.expired == ()
        assert (await obj.gc(grace=timedelta.max, dry_run=True)).deleted == ()


async def test_a_lying_len_is_not_trusted() -> None:
    store = aiolode.MemoryStore()
    vol = aiolode.Volume("v", store, 10)
    with pytest.raises(aiolode.InvalidInputError):
        await vol.commit(HugeLen())  # type: ignore[arg-type]
    assert aiolode.Schema(HugeLen()).names == []  # type: ignore[arg-type]
    aiolode.ArrowIPC().encode(HugeLen())  # an empty batch, not a MemoryError


def test_codec_checksum_layout_and_retry_arguments_are_checked() -> None:
    cases: list[Callable[[], object]] = [
        lambda: aiolode.JSONL().decode(None),  # type: ignore[arg-type]
        lambda: aiolode.Parquet().to_arrow("x"),  # type: ignore[arg-type]
        lambda: list(aiolode.ArrowIPC().iter_decode([1, 2])),  # type: ignore[list-item]
        lambda: list(aiolode.Parquet().iter_batches(io.BytesIO(b"x"), 2**63)),
        lambda: aiolode.JSONL().encode([{"a": 1}], schema=1),  # type: ignore[arg-type]
        lambda: aiolode.XXH3().digest("text"),  # type: ignore[arg-type]
        lambda: aiolode.XXH3().format(BadRepr()),  # type: ignore[arg-type]
        lambda: aiolode.HiveLayout("p").parse_partition_path(None),  # type: ignore[arg-type]
        lambda: aiolode.HiveLayout("p").data_key("d", None, "f"),  # type: ignore[arg-type]
        lambda: aiolode.DefaultLayout().data_key("d", {}, BadRepr()),  # type: ignore[arg-type]
        lambda: aiolode.DefaultLayout().root(["x"]),  # type: ignore[arg-type]
        lambda: aiolode.Retry().delay(None),  # type: ignore[arg-type]
        lambda: aiolode.Retry().delay(1, rng=1),  # type: ignore[arg-type]
        lambda: aiolode.GCSStore("b", endpoint=1),  # type: ignore[arg-type]
        lambda: aiolode.GCSStore("\ud800"),
    ]
    for case in cases:
        with pytest.raises(aiolode.InvalidInputError):
            case()
    assert aiolode.Retry().delay(10**6) <= aiolode.Retry().max_delay


async def test_handed_out_objects_refuse_direct_construction() -> None:
    store = aiolode.MemoryStore()
    snap = await aiolode.Dataset("d", store, codec=aiolode.JSONL()).write([{"a": 1}])
    for make in (
        lambda: aiolode.Blob(store, None, 64),  # type: ignore[arg-type]
        lambda: aiolode.Blob(store, snap, 64),  # a record snapshot
        lambda: aiolode.BlobWriter(None, None),  # type: ignore[arg-type]
    ):
        with pytest.raises(aiolode.AiolodeError):
            make()
