"""Hostile arguments for every codec, compressor, schema function and the Arrow
bridge: a correct result or an AiolodeError subclass, never another exception.

``AIOLODE_FUZZ_EXAMPLES`` sets the examples per property (as tests/harness does).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiolode
from aiolode.codecs import Codec
from aiolode.compression import Compressor
from aiolode.schema import Field, Schema, as_schema, infer, merge

pa = pytest.importorskip("pyarrow")

EXAMPLES = int(os.environ.get("AIOLODE_FUZZ_EXAMPLES", "60"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)


class Color(Enum):
    RED = 1


class Level(IntEnum):
    HIGH = 3


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("hostile repr")


def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def cyclic_list() -> list[Any]:
    lst: list[Any] = [1]
    lst.append(lst)
    return lst


def deep(n: int) -> Any:
    v: Any = 1
    for _ in range(n):
        v = {"k": [v]}
    return v


ODD_VALUES: list[Any] = [
    math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**64, 10**400, "lone \ud800",
    "\x00nul", b"bytes", bytearray(b"x"), memoryview(b"m"), {1, 2}, frozenset(), object(),
    BadRepr(), Color.RED, Level.HIGH, uuid4(), Decimal("nan"), Decimal("1.5"),
    Decimal("1e400"), complex(1, 2), datetime(2024, 1, 1, tzinfo=UTC), datetime(1, 1, 1),
    date.max, time(23, 59), timedelta(days=1), (1, "x"), [1, "x"], {"k": math.nan},
    {1: "int key"}, {"\ud800": 1}, OrderedDict(a=1), cyclic_dict(), cyclic_list(),
    deep(80), deep(5), type, len, Ellipsis, NotImplemented, None, True, -0.0, "",
]  # fmt: skip

ODD_RECORDS: list[Any] = [
    None, 42, "text", b"bytes", {"a": 1}, [1, 2], [None], [[("a", 1)]], [{1: 2}],
    [{"\ud800": 1}], [{"a": 1}, {"a": "b"}], [{}], [{}, {}], iter([{"a": 1}]),
    ({"a": i} for i in range(3)), [object()], [{"a": BadRepr()}], [cyclic_dict()],
    [{"a": cyclic_list()}], [{"a": deep(200)}], [BadRepr()], OrderedDict(a=1),
    pa.table({"a": [1, None]}), pa.record_batch({"a": ["x"]}), pa.table({}),
    [pa.record_batch({"a": [1]}), pa.record_batch({"b": [1.0]})],
    pa.table({"u": pa.array([{"x": 1}]), "n": pa.nulls(1)}),
    pa.table({"iv": pa.array([(1, 2, 3)], pa.month_day_nano_interval())}),
    pa.table({"d": pa.array(["a"]).dictionary_encode()}),
    pa.table({"ts": pa.array([0], pa.timestamp("ns", "Asia/Tokyo"))}),
    pa.table({"a": [1], "b": [2]}).rename_columns(["x", "x"]),
]  # fmt: skip

CODECS: list[Codec] = [aiolode.JSONL(), aiolode.Parquet(row_group_size=2), aiolode.ArrowIPC()]
COMPRESSORS: list[Compressor] = [aiolode.Gzip(), aiolode.Zstd()]
SCHEMAS: list[Any] = [
    None,
    Schema([Field("a", "int32", nullable=False)]),
    Schema([Field("a", "timestamp[us, tz=UTC]")]),
    Schema([Field("a", "string"), Field("b", "list", children=(Field("item", "int8"),))]),
]


def typed(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``call``; only a result or an aiolode error may come out."""
    try:
        return call(*args, **kwargs)
    except aiolode.AiolodeError:
        return None
    except BaseException as exc:
        raise AssertionError(f"untyped {type(exc).__name__} from {call}: {exc!r}") from exc


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_encode_odd_records(codec: Codec, schema: Any) -> None:
    for mode in ("strict", "add_columns", "bogus", None, 3):
        for recs in ODD_RECORDS:
            typed(codec.encode, recs, schema=schema, schema_mode=mode)
        for v in ODD_VALUES:
            typed(codec.encode, [{"a": v}], schema=schema, schema_mode=mode, timestamp_field="a")
            typed(codec.encode, [{"a": v}], schema=schema, schema_mode=mode)
            ok = typed(codec.encode, [{"a": [v]}, {"a": {"k": v}}], schema=schema)
            if ok is not None:
                # What was accepted reads back (no silent change of what was written).
                back = codec.decode(ok.data)
                assert len(back) == 2


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_stream_encoder_odd_batches(codec: Codec) -> None:
    for schema in SCHEMAS:
        enc = typed(codec.open_encoder, schema=schema, timestamp_field="a")
        if enc is None:
            continue
        for recs in ODD_RECORDS:
            typed(enc.write, recs)
        tail = typed(enc.finish)
        typed(enc.finish)
        typed(enc.write, [{"a": 1}])
        if tail is not None:
            assert tail.row_count == enc.row_count


@fuzz
@given(data=st.binary(max_size=300) | st.sampled_from([b"", b"\n", b"PAR1", b"ARROW1\x00\x00"]))
def test_decode_any_bytes(data: bytes) -> None:
    import io

    for codec in CODECS:
        typed(codec.decode, data)
        typed(codec.to_arrow, data)
        typed(lambda c=codec: list(c.iter_decode([data, data[:3]])))
        typed(lambda c=codec: list(c.iter_batches(io.BytesIO(data))))
    for comp in COMPRESSORS:
        typed(comp.decompress, data)
        d = comp.decompressobj()
        typed(lambda d=d: d.decompress(data) + d.flush())


@pytest.mark.parametrize("comp", COMPRESSORS, ids=lambda c: c.name)
def test_compressors_odd_arguments(comp: Compressor) -> None:
    for v in [None, "text", 42, [b"x"], memoryview(b"abc")[::2], bytearray(b"x"), BadRepr()]:
        typed(comp.compress, v)
        typed(comp.decompress, v)
        typed(lambda v=v: comp.compressobj().compress(v))
    for level in [None, "3", 3.0, True, -100, 100, math.nan, 2**70]:
        typed(type(comp), level=level)
    for cls in (aiolode.Gzip, aiolode.Zstd):
        for opts in [{}, {"level": "x"}, {"level": None}, {"nope": 1}, {"level": 2**70}, None, 3]:
            typed(cls.from_options, opts)


def test_codec_constructors_and_options() -> None:
    bad = [None, "x", -1, 0, 2**70, math.nan, True, BadRepr(), {"a": 1}]
    for v in bad:
        typed(aiolode.Parquet, compression=v)
        typed(aiolode.Parquet, row_group_size=v)
        typed(aiolode.Parquet, schema=v)
        typed(aiolode.Parquet, compression_level=v)
        typed(aiolode.ArrowIPC, compression=v)
        typed(aiolode.ArrowIPC, schema=v)
        typed(aiolode.JSONL, stats=v)
        if isinstance(v, BadRepr):
            continue  # options come from JSON manifests
        for cls in (aiolode.Parquet, aiolode.ArrowIPC, aiolode.JSONL):
            typed(cls.from_options, {"compression": v, "row_group_size": v, "stats": v})
            typed(cls.from_options, v)
    from aiolode.codecs import codec_from_name

    for name in [None, "", "jsonl", "nope", 42, "\ud800"]:
        typed(codec_from_name, name, {"x": 1})
        typed(codec_from_name, name, [1])


@fuzz
@given(
    name=st.one_of(st.text(max_size=8), st.integers(), st.none(), st.binary(max_size=4)),
    typ=st.one_of(
        st.sampled_from(["int64", "list", "struct", "map", "decimal(99, 1)", "timestamp[us, tz=]"]),
        st.text(max_size=12),
        st.integers(),
    ),
    nullable=st.one_of(st.booleans(), st.none(), st.integers()),
)
def test_schema_values_hostile(name: Any, typ: Any, nullable: Any) -> None:
    f = typed(Field, name, typ, nullable)
    if f is not None:
        s = typed(Schema, [f])
        if s is not None:
            assert Schema.from_json(s.to_json()) == s
            typed(s.to_arrow)
            typed(merge, s, s, mode="add_columns")
    typed(Field.from_json, {"name": name, "type": typ, "nullable": nullable})
    typed(Schema.from_json, {"fields": [{"name": name, "type": typ, "children": name}]})


def test_schema_functions_hostile() -> None:
    s = Schema([Field("a", "int64")])
    for v in [None, 42, "text", b"x", [1], {"a": 1}, [{"a": BadRepr()}], [cyclic_dict()],
              [{"a": cyclic_list()}], pa.schema([("a", pa.int64())]), pa.table({"a": [1]}),
              pa.schema([("i", pa.month_day_nano_interval())]), [{"a": deep(100)}]]:  # fmt: skip
        typed(infer, v)
        typed(as_schema, v)
        typed(merge, s, v)
        typed(merge, v, s)
        typed(Schema.from_arrow, v)
        typed(Schema, v)
    typed(merge, s, s, mode=BadRepr())
    deep_doc: Any = {"name": "a", "type": "list", "children": []}
    for _ in range(200):
        deep_doc = {"name": "a", "type": "list", "children": [deep_doc]}
    typed(Field.from_json, deep_doc)
    typed(Schema.from_json, {"fields": [deep_doc]})


async def test_arrow_bridge_hostile(memory: aiolode.MemoryStore) -> None:
    from aiolode.arrow import arrow_dataset, arrow_filesystem

    ds = aiolode.Dataset("d", memory, codec=aiolode.Parquet())
    await ds.write([{"a": 1}])
    files = await ds.files()

    async def atyped(coro: Any) -> None:
        try:
            await coro
        except aiolode.AiolodeError:
            pass
        except BaseException as exc:
            raise AssertionError(f"untyped {type(exc).__name__}: {exc!r}") from exc

    for fs in ["auto", "native", "store", "memory", None, 3, "\ud800"]:
        for schema in [None, "x", pa.schema([("a", pa.string())]), pa.schema([("z", pa.int8())]),
                       pa.schema([("a", pa.month_day_nano_interval())])]:  # fmt: skip
            await atyped(arrow_dataset(memory, files, schema=schema, filesystem=fs))  # type: ignore[arg-type]
    await atyped(arrow_filesystem(memory))
    # Records written by JSONL that a given schema cannot hold.
    js = aiolode.Dataset("j", memory, codec=aiolode.JSONL())
    await js.write([{"a": "text"}])
    await atyped(arrow_dataset(memory, await js.files(), schema=pa.schema([("a", pa.int64())])))
