"""Compressors: round trips whole and incremental at any chunking, and typed errors."""

from __future__ import annotations

import pickle
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolode import CorruptDataError, FormatError, Gzip, InvalidInputError, Zstd
from aiolode.compression import Compressor, compressor_from_name
from aiolode.errors import ManifestFormatError, MissingDependencyError, UnsupportedError

from .strategies import cut, splits

COMPRESSORS = [Gzip(), Gzip(level=1), Zstd(), Zstd(level=9)]
payloads = st.binary(max_size=3000) | st.text(max_size=2000).map(str.encode)


@pytest.mark.parametrize("comp", COMPRESSORS, ids=repr)
@settings(max_examples=25, deadline=None)
@given(data=payloads, st_data=st.data())
def test_round_trip_whole_and_incremental(
    comp: Compressor, data: bytes, st_data: st.DataObject
) -> None:
    whole = comp.compress(data)
    assert comp.decompress(whole) == data

    # Incremental compression of arbitrary pieces gives a stream the one-shot
    # decompressor reads...
    co = comp.compressobj()
    streamed = b"".join(co.compress(p) for p in cut(data, st_data.draw(splits(len(data)))))
    streamed += co.flush()
    assert comp.decompress(streamed) == data

    # ...and incremental decompression at any chunk boundaries reads both.
    for blob in (whole, streamed):
        do = comp.decompressobj()
        out = b"".join(do.decompress(p) for p in cut(blob, st_data.draw(splits(len(blob)))))
        out += do.flush()
        assert out == data
        assert do.eof


@pytest.mark.parametrize("comp", COMPRESSORS[::2], ids=repr)
def test_concatenated_streams_decode_as_one(comp: Compressor) -> None:
    a, b = b"first part " * 100, b"second"
    blob = comp.compress(a) + comp.compress(b)
    assert comp.decompress(blob) == a + b
    do = comp.decompressobj()
    assert do.decompress(blob[:7]) + do.decompress(blob[7:]) + do.flush() == a + b


@pytest.mark.parametrize("comp", COMPRESSORS[::2], ids=repr)
@settings(max_examples=20, deadline=None)
@given(data=payloads, st_data=st.data())
def test_every_truncation_is_reported(
    comp: Compressor, data: bytes, st_data: st.DataObject
) -> None:
    blob = comp.compress(data)
    n = st_data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    with pytest.raises(CorruptDataError) as ei:
        comp.decompress(blob[:n])
    assert ei.value.format == comp.name
    do = comp.decompressobj()
    with pytest.raises(CorruptDataError):
        _ = do.decompress(blob[:n]) + do.flush()


@pytest.mark.parametrize("comp", COMPRESSORS[::2], ids=repr)
@settings(max_examples=25, deadline=None)
@given(data=st.binary(min_size=1, max_size=500), st_data=st.data())
def test_corrupted_body_is_reported(comp: Compressor, data: bytes, st_data: st.DataObject) -> None:
    blob = bytearray(comp.compress(data))
    # Past the container header (gzip's mtime/OS bytes are not checked by
    # design; zstd's header is at most 18 bytes) the content checksum (CRC32 /
    # xxHash64) guards the data: a flipped bit is reported, or lands in bits
    # the decoder ignores (deflate's final padding) and changes nothing. It
    # never comes back as different data.
    header = 10 if comp.name == "gzip" else 18
    if len(blob) <= header:
        return
    i = st_data.draw(st.integers(min_value=header, max_value=len(blob) - 1))
    blob[i] ^= st_data.draw(st.integers(min_value=1, max_value=255))
    try:
        back = comp.decompress(bytes(blob))
    except CorruptDataError:
        return
    assert back == data


def test_flipped_payload_byte_is_reported() -> None:
    data = bytes(range(256)) * 8
    for comp in (Gzip(), Zstd()):
        blob = bytearray(comp.compress(data))
        blob[len(blob) // 2] ^= 0xFF
        with pytest.raises(CorruptDataError):
            comp.decompress(bytes(blob))


@pytest.mark.parametrize("comp", COMPRESSORS[::2], ids=repr)
@pytest.mark.parametrize("junk", [b"", b"not compressed at all", b"\x00" * 64])
def test_not_this_format(comp: Compressor, junk: bytes) -> None:
    with pytest.raises(CorruptDataError) as ei:
        comp.decompress(junk)
    assert isinstance(ei.value, FormatError)


def test_trailing_garbage_is_reported() -> None:
    for comp in (Gzip(), Zstd()):
        with pytest.raises(CorruptDataError):
            comp.decompress(comp.compress(b"payload") + b"garbage!")


def test_options_and_registry_round_trip() -> None:
    for comp in COMPRESSORS:
        back = compressor_from_name(comp.name, comp.options())
        assert back == comp
        assert back is not None
        assert back.options() == comp.options()
    assert compressor_from_name(None) is None
    assert compressor_from_name("gzip", {"level": 6, "from_the_future": 1}) == Gzip()
    assert (Gzip.extension, Zstd.extension) == (".gz", ".zst")
    assert repr(Zstd(level=5)) == "Zstd(level=5)"
    assert len({Gzip(), Gzip(6), Zstd()}) == 2


def test_unknown_or_invalid_recorded_compressor() -> None:
    with pytest.raises(ManifestFormatError) as ei:
        compressor_from_name("lzma")
    assert ei.value.field == "compressor"
    with pytest.raises(ManifestFormatError):
        compressor_from_name("zstd", {"level": "high"})


@pytest.mark.parametrize(
    ("cls", "level"), [(Gzip, 10), (Gzip, -1), (Gzip, True), (Zstd, 23), (Zstd, 2.5)]
)
def test_invalid_level(cls: type[Compressor], level: object) -> None:
    with pytest.raises(InvalidInputError):
        cls(level=level)  # type: ignore[call-arg]


def test_missing_zstandard_is_one_missing_dependency_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    comp = Zstd()  # constructing and recording it needs no import
    assert comp.options() == {"level": 3}
    for call in (
        lambda: comp.compress(b"x"),
        lambda: comp.decompress(b"x"),
        comp.decompressobj,
        comp.compressobj,
    ):
        with pytest.raises(MissingDependencyError, match=r"aiolode\[zstd\]") as ei:
            call()
        assert isinstance(ei.value, UnsupportedError)
        assert isinstance(ei.value, ImportError)
        assert (ei.value.package, ei.value.extra) == ("zstandard", "zstd")


def test_corrupt_data_error_pickles_with_attributes() -> None:
    err = CorruptDataError("bad", format="zstd", key="k")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.format, back.key, str(back)) == (CorruptDataError, "zstd", "k", "bad")
