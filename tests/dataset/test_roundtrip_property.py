"""Property: whatever codec x compressor x checksum x layout, what is written
is what is read back (read, iter_records, read_table), and the manifest says
how it was written."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiolode
from aiolode import Dataset

CODECS = [None, "jsonl", "parquet"]
COMPRESSORS = [None, "gzip", "zstd"]
CHECKSUMS = [None, aiolode.SHA256(), aiolode.MD5(), aiolode.CRC32(), aiolode.Blake2b()]
LAYOUTS = ["default", "flat", "hive", "template"]

values = st.text(max_size=8)
records = st.lists(
    st.fixed_dictionaries(
        {
            "p": values,
            "q": st.sampled_from(["x", "y/z", ".."]),
            "i": st.integers(-(2**40), 2**40),
            "s": st.text(max_size=20),
        }
    ),
    max_size=20,
)


def _codec(name: str | None) -> Any:
    return {None: None, "jsonl": aiolode.JSONL(), "parquet": aiolode.Parquet(row_group_size=5)}[
        name
    ]


def _compressor(name: str | None) -> Any:
    return {None: None, "gzip": aiolode.Gzip(), "zstd": aiolode.Zstd()}[name]


def _layout(name: str) -> aiolode.Layout:
    if name == "hive":
        return aiolode.HiveLayout("p", "q")
    if name == "template":
        return aiolode.TemplateLayout("q={q}/part-{p}_/")
    return aiolode.FlatLayout() if name == "flat" else aiolode.DefaultLayout()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    codec=st.sampled_from(CODECS),
    compressor=st.sampled_from(COMPRESSORS),
    checksum=st.sampled_from(CHECKSUMS),
    layout=st.sampled_from(LAYOUTS),
    rows=records,
    blob=st.binary(max_size=2000),
)
async def test_round_trip(
    codec: str | None,
    compressor: str | None,
    checksum: aiolode.Checksum | None,
    layout: str,
    rows: list[dict[str, Any]],
    blob: bytes,
) -> None:
    if codec == "parquet":
        compressor = None  # refused at construction (tested elsewhere)
    if codec is None and layout in ("hive", "template"):
        layout = "default"  # raw blobs have no fields to partition by
    if layout == "template":
        rows = [r for r in rows if r["p"]]  # templates refuse empty values
    store = aiolode.MemoryStore()
    ds = Dataset(
        "prop",
        store,
        codec=_codec(codec),
        compressor=_compressor(compressor),
        checksum=checksum,
        layout=_layout(layout),
    )
    if codec is None:
        snap = await ds.write(blob, {"n": len(blob)})
        assert await Dataset("prop", store, layout=_layout(layout)).read(snap.id) == blob
    else:
        snap = await ds.write(rows)
        # Reads follow the manifest: no codec/compressor given (the layout
        # says where the log is, so it must match).
        fresh = Dataset("prop", store, layout=_layout(layout), codec=aiolode.JSONL())
        key = lambda r: (r["i"], r["s"], r["p"], r["q"])  # noqa: E731
        assert sorted(await fresh.read(snap.id), key=key) == sorted(rows, key=key)
        streamed = [r async for r in fresh.iter_records(snap.id, batch_size=3)]
        assert sorted(streamed, key=key) == sorted(rows, key=key)
        if rows:
            assert (await fresh.read_table(snap.id)).num_rows == len(rows)
        assert snap.row_count == len(rows)
        if layout in ("hive", "template"):
            assert len(snap.files) == len({(r["p"], r["q"]) for r in rows})
            for f in snap.files:
                assert {(r["p"], r["q"]) for r in await _file_rows(fresh, snap, f)} == {
                    (f.partition["p"], f.partition["q"])
                }
    m = snap.manifest
    assert m.codec == codec
    assert m.compressor == compressor
    assert m.layout["name"] == _layout(layout).name
    for f in m.files:
        assert (f.checksum is None) == (checksum is None)
        if checksum is not None:
            assert f.checksum is not None
            assert f.checksum.startswith(checksum.name + ":")


async def _file_rows(ds: Dataset, snap: aiolode.Snapshot, f: aiolode.FileRef) -> list[Any]:
    from aiolode.dataset._read import components, read_file

    codec, compressor = components(snap.manifest)
    assert codec is not None
    return codec.decode(await read_file(ds.store, f, compressor))
