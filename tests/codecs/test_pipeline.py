"""Codec x compressor as the Dataset uses them, plus the manifest registries."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiolode
from aiolode import JSONL, ArrowIPC, Gzip, Parquet, Zstd
from aiolode.codecs import Codec, codec_from_name
from aiolode.compression import Compressor
from aiolode.errors import ManifestFormatError

from .strategies import batches, cut, splits

PAIRS = [
    (codec, comp)
    for codec in (JSONL(), ArrowIPC(), Parquet(row_group_size=5))
    for comp in (None, Gzip(), Zstd())
    if comp is None or codec.accepts_outer_compression
]
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {"id": st.integers(0, 10**6), "ts": st.integers(0, 2**31)},
        optional={"name": st.text(max_size=10) | st.none(), "score": st.floats(-1e9, 1e9)},
    ),
    max_size=40,
)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _filled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": r["id"], "ts": r["ts"], "name": r.get("name"), "score": r.get("score")} for r in rows
    ]


@pytest.mark.parametrize(("codec", "comp"), PAIRS, ids=lambda x: repr(x))
@settings(max_examples=20, deadline=None)
@given(rows=rows_strategy, st_data=st.data())
def test_streamed_encode_compress_decompress_decode(
    codec: Codec, comp: Compressor | None, rows: list[dict[str, Any]], st_data: st.DataObject
) -> None:
    pytest.importorskip("pyarrow")
    if codec.name != "jsonl":
        # Fix the schema so that every batch (even all-null "name") fits.
        import pyarrow as pa

        schema = pa.schema(
            [("id", pa.int64()), ("ts", pa.int64()), ("name", pa.string()), ("score", pa.float64())]
        )
        codec = (
            Parquet(row_group_size=5, schema=schema)
            if codec.name == "parquet"
            else ArrowIPC(schema=schema)
        )
        expected = _filled(rows)
    else:
        expected = rows
    enc = codec.open_encoder(timestamp_field="ts")
    co = comp.compressobj() if comp is not None else None
    out = []
    for batch in batches(rows, st_data.draw(splits(len(rows)))):
        piece = enc.write(batch)
        out.append(co.compress(piece) if co is not None else piece)
    tail = enc.finish()
    out.append(co.compress(tail.data) + co.flush() if co is not None else tail.data)
    stored = b"".join(out)
    assert tail.row_count == len(rows)
    if rows:
        lo, hi = min(r["ts"] for r in rows), max(r["ts"] for r in rows)
        assert tail.min_timestamp is not None
        assert tail.max_timestamp is not None
        assert (
            aiolode.codecs._timestamps.to_utc(lo, "ts").isoformat()[:19] == tail.min_timestamp[:19]
        )
        assert (
            aiolode.codecs._timestamps.to_utc(hi, "ts").isoformat()[:19] == tail.max_timestamp[:19]
        )

    # Read back the way a reader does: decompress incrementally at arbitrary
    # chunk boundaries, then stream-decode or spool for random access.
    def plain_chunks() -> Any:
        do = comp.decompressobj() if comp is not None else None
        for chunk in cut(stored, st_data.draw(splits(len(stored), max_parts=8))):
            yield do.decompress(chunk) if do is not None else chunk
        if do is not None:
            yield do.flush()

    if codec.supports_forward_stream:
        got = [r for b in codec.iter_decode(plain_chunks()) for r in b]
    else:
        got = [r for b in codec.iter_batches(io.BytesIO(b"".join(plain_chunks())), 7) for r in b]
    assert got == expected
    whole = comp.decompress(stored) if comp is not None else stored
    assert codec.decode(whole) == expected


@pytest.mark.parametrize(
    "codec",
    [
        JSONL(),
        JSONL(stats=False),
        ArrowIPC(),
        ArrowIPC("zstd"),
        Parquet(),
        Parquet("gzip", 10, None, 5),
    ],
    ids=repr,
)
def test_codec_registry_round_trip(codec: Codec) -> None:
    back = codec_from_name(codec.name, codec.options())
    assert back == codec
    assert type(back) is type(codec)
    assert hash(back) == hash(codec)
    # A newer writer's extra option does not make the file unreadable.
    assert codec_from_name(codec.name, {**codec.options(), "future_option": 1}) == codec


def test_registry_errors() -> None:
    assert codec_from_name(None) is None
    with pytest.raises(ManifestFormatError) as ei:
        codec_from_name("avro")
    assert ei.value.field == "codec"
    with pytest.raises(ManifestFormatError) as ei:
        codec_from_name("parquet", {"row_group_size": -1})
    assert ei.value.field == "codec_options"


def test_options_are_json_safe() -> None:
    import json

    for codec in (JSONL(), Parquet(), ArrowIPC()):
        assert json.loads(json.dumps(codec.options())) == codec.options()
    for comp in (Gzip(), Zstd()):
        assert json.loads(json.dumps(comp.options())) == comp.options()


def test_top_level_exports() -> None:
    assert issubclass(aiolode.JSONL, aiolode.Codec)
    assert issubclass(aiolode.Parquet, aiolode.Codec)
    assert issubclass(aiolode.ArrowIPC, aiolode.Codec)
    assert issubclass(aiolode.Gzip, aiolode.Compressor)
    assert issubclass(aiolode.Zstd, aiolode.Compressor)
    assert issubclass(aiolode.CorruptDataError, aiolode.FormatError)
