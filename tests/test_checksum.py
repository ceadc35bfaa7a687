"""Checksum algorithms: published test vectors, incremental == one-shot, the recorded
form, the default, and verification catching truncation and bit flips."""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import sys
import threading
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiolode
from aiolode import (
    CRC32,
    CRC32C,
    MD5,
    SHA256,
    XXH3,
    Blake2b,
    Blake3,
    Checksum,
    ChecksumMismatchError,
    CorruptDataError,
    InvalidInputError,
    ManifestFormatError,
    MissingDependencyError,
)
from aiolode import checksum as ck

from .codecs.strategies import cut, splits

if TYPE_CHECKING:
    from aiolode.checksum import Hasher

ALGORITHMS: list[Checksum] = [CRC32(), CRC32C(), XXH3(), Blake3(), SHA256(), MD5(), Blake2b()]
NEW = [CRC32C(), XXH3(), Blake3()]
BIG = 3 * ck.OFFLOAD_THRESHOLD + 12_345  # hashed in a worker thread, in several pieces

# Published check values, not outputs of the libraries under test:
# - CRC-32C "123456789": RFC 3720 (iSCSI) / the CRC catalogue's check value.
# - CRC-32 "123456789": the CRC catalogue's check value for CRC-32/ISO-HDLC.
# - XXH3-128 of the empty input, seed 0: xxHash's sanity-check table (high, low words).
# - BLAKE3 inputs of 0, 1 and 1023 bytes (byte i = i % 251): test_vectors.json of the
#   BLAKE3 reference repository (first 32 bytes of the extended output).
# - SHA-256 "abc": FIPS 180-2 example; MD5 "": RFC 1321; BLAKE2b-256 "abc": RFC 7693 family.
_B3 = bytes(i % 251 for i in range(1023))
VECTORS: list[tuple[Checksum, bytes, str]] = [
    (CRC32C(), b"123456789", "e3069283"),
    (CRC32C(), b"", "00000000"),
    (CRC32C(), bytes(32), "8a9136aa"),  # RFC 3720 B.4: 32 bytes of zeroes
    (CRC32C(), b"\xff" * 32, "62a8ab43"),  # RFC 3720 B.4: 32 bytes of ones
    (CRC32(), b"123456789", "cbf43926"),
    (XXH3(), b"", "99aa06d3014798d86001c324468d497f"),
    (Blake3(), b"", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
    (Blake3(), _B3[:1], "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
    (Blake3(), _B3, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"),
    (SHA256(), b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (MD5(), b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (Blake2b(), b"abc", "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"),
]


def _crc32c_reference(data: bytes) -> int:
    """Bitwise CRC-32C (reflected polynomial 0x82F63B78): an oracle independent of
    google-crc32c, for short inputs."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@pytest.mark.parametrize(("algo", "data", "hexdigest"), VECTORS, ids=lambda v: repr(v)[:24])
def test_published_vectors(algo: Checksum, data: bytes, hexdigest: str) -> None:
    assert algo.digest(data) == f"{algo.name}:{hexdigest}"
    h = algo.hasher()
    for i in range(len(data)):  # one byte at a time: the incremental path
        h.update(data[i : i + 1])
    assert h.hexdigest() == hexdigest


def _as(kind: str, piece: bytes) -> bytes | bytearray | memoryview:
    if kind == "bytearray":
        return bytearray(piece)
    if kind == "memoryview":
        return memoryview(piece)
    if kind == "slice":  # a memoryview that does not span its whole object
        return memoryview(b"\x00" + piece + b"\x00")[1:-1]
    return piece


@pytest.mark.parametrize("algo", ALGORITHMS, ids=repr)
@settings(max_examples=30, deadline=None)
@given(
    data=st.binary(max_size=5000),
    st_data=st.data(),
    kind=st.sampled_from(["bytes", "bytearray", "memoryview", "slice"]),
)
def test_incremental_equals_one_shot(
    algo: Checksum, data: bytes, st_data: st.DataObject, kind: str
) -> None:
    h = algo.hasher()
    for piece in cut(data, st_data.draw(splits(len(data)))):
        h.update(_as(kind, piece))
    assert algo.format(h.hexdigest()) == algo.digest(data)
    assert algo.digest(_as(kind, data)) == algo.digest(data)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=300))
def test_crc32c_matches_an_independent_implementation(data: bytes) -> None:
    assert CRC32C().digest(data) == f"crc32c:{_crc32c_reference(data):08x}"


@pytest.mark.parametrize("kind", ["bytearray", "slice", "memoryview"])
def test_crc32c_large_mutable_buffers_hash_in_bounded_pieces(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-crc32c reads only ``bytes`` (and releases the GIL only for them):
    other buffers are copied in pieces of at most 4 MiB, never whole; a memoryview
    of a whole ``bytes`` object is passed as that object, without a copy."""
    data = os.urandom(2 * ck._CRC32C_PIECE + 7)
    expected = CRC32C().digest(data)
    seen: list[tuple[type, int, bool]] = []
    algo = CRC32C()
    real = algo._extend

    def spy(crc: int, chunk: bytes) -> int:
        seen.append((type(chunk), len(chunk), chunk is data))
        return real(crc, chunk)

    monkeypatch.setattr(algo, "_extend", spy)
    assert algo.digest(_as(kind, data)) == expected
    if kind == "memoryview":
        assert seen == [(bytes, len(data), True)]
    else:
        assert [n for _, n, _ in seen] == [ck._CRC32C_PIECE, ck._CRC32C_PIECE, 7]
        assert all(t is bytes and not same for t, _, same in seen)


@pytest.mark.parametrize("algo", NEW, ids=repr)
def test_large_buffer_in_pieces_equals_whole(algo: Checksum) -> None:
    data = os.urandom(9 << 20)
    h = algo.hasher()
    h.update(bytearray(data[:5]))
    h.update(memoryview(data)[5 : 6 << 20])
    h.update(data[6 << 20 :])
    assert algo.format(h.hexdigest()) == algo.digest(data)


# ------------------------------------------------------------------ recorded form
@pytest.mark.parametrize("algo", ALGORITHMS, ids=repr)
def test_recorded_form_parses_back_to_the_algorithm(algo: Checksum) -> None:
    recorded = algo.digest(b"payload")
    name, _, hexdigest = recorded.partition(":")
    assert name == algo.name
    assert hexdigest
    assert all(c in "0123456789abcdef" for c in hexdigest)
    parsed, hx = ck.parse_recorded(recorded)
    assert (parsed, hx) == (algo, hexdigest)
    assert type(parsed) is type(algo)
    assert ck.checksum_from_name(algo.name) == algo
    assert pickle.loads(pickle.dumps(algo)) == algo


def test_names_are_unique_and_digest_lengths_fixed() -> None:
    assert len({a.name for a in ALGORITHMS}) == len(ALGORITHMS)
    widths = {a.name: len(a.digest(b"x").partition(":")[2]) for a in ALGORITHMS}
    assert widths == {
        "crc32": 8,
        "crc32c": 8,
        "xxh3_128": 32,
        "blake3": 64,
        "sha256": 64,
        "md5": 32,
        "blake2b": 64,
    }


@pytest.mark.parametrize(
    "recorded", ["crc99:00", "CRC32C:e3069283", "xxh3:00", "", "crc32c", "crc32c:", ":e3069283"]
)
def test_unknown_or_malformed_recorded_form(recorded: str) -> None:
    with pytest.raises(ManifestFormatError) as ei:
        ck.parse_recorded(recorded)
    assert ei.value.field == "checksum"
    with pytest.raises(ManifestFormatError):
        ck.StreamVerifier(key="k", size=None, checksum=recorded)


@pytest.mark.parametrize(
    ("algo", "module", "package", "extra"),
    [
        (CRC32C, "google_crc32c", "google-crc32c", "checksum"),
        (XXH3, "xxhash", "xxhash", None),  # the default's library: a base dependency
        (Blake3, "blake3", "blake3", "checksum"),
    ],
)
def test_missing_library_is_a_typed_error(
    algo: type[Checksum],
    module: str,
    package: str,
    extra: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import raise ImportError
    with pytest.raises(MissingDependencyError) as ei:
        algo()
    assert (ei.value.package, ei.value.extra) == (package, extra)
    assert isinstance(ei.value, ImportError)
    with pytest.raises(MissingDependencyError):
        ck.parse_recorded(f"{algo.name}:00")


# ------------------------------------------------------------------------ default
def test_default_sentinel_resolves_to_the_default_algorithm() -> None:
    got = ck.resolve_checksum_arg(ck.DEFAULT)
    assert isinstance(got, ck.DEFAULT_CHECKSUM)
    assert got == ck.default_checksum()
    assert ck.checksum_from_name(got.name) == got  # manifests recording it verify
    assert ck.resolve_checksum_arg(None) is None
    sha = SHA256()
    assert ck.resolve_checksum_arg(sha) is sha
    assert repr(ck.DEFAULT) == "aiolode.checksum.DEFAULT"


@pytest.mark.parametrize("bad", ["xxh3_128", XXH3, 0, True, "DEFAULT", ck.DefaultChecksum])
def test_resolve_refuses_anything_else(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        ck.resolve_checksum_arg(bad)


def test_default_algorithm_needs_no_extra() -> None:
    """The default's library is a base dependency: ``pip install aiolode`` alone
    must be able to write and verify it."""
    package = {CRC32C: "google-crc32c", XXH3: "xxhash", Blake3: "blake3"}.get(ck.DEFAULT_CHECKSUM)
    if package is None:  # a hashlib/zlib algorithm: the standard library has it
        assert ck.DEFAULT_CHECKSUM in (CRC32, SHA256, MD5, Blake2b)
        return
    base = [
        r.split(";")[0].strip()
        for r in importlib.metadata.requires("aiolode") or []
        if "extra ==" not in r
    ]
    assert any(r.replace("_", "-").startswith(package) for r in base), base


def test_new_algorithms_are_exported() -> None:
    for name in ("CRC32C", "XXH3", "Blake3"):
        assert name in aiolode.__all__
        assert getattr(aiolode, name) is getattr(ck, name)


# ------------------------------------------------------------------- verification
def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("algo", ALGORITHMS, ids=repr)
def test_every_single_bit_flip_is_detected(algo: Checksum) -> None:
    data = os.urandom(64)
    recorded = algo.digest(data)
    for bit in range(len(data) * 8):
        v = ck.StreamVerifier(key="k", size=len(data), checksum=recorded)
        v.update(_flip(data, bit))
        with pytest.raises(ChecksumMismatchError):
            v.check()


@pytest.mark.parametrize("algo", ALGORITHMS, ids=repr)
@pytest.mark.parametrize("n", [1000, BIG], ids=["small", "large"])
async def test_verify_object_detects_truncation_and_bit_flips(algo: Checksum, n: int) -> None:
    data = os.urandom(n)
    recorded = algo.digest(data)
    ctx = {"key": "ds/f1", "dataset_id": "ds", "snapshot_id": "s1"}
    await ck.verify_object(data, size=n, checksum=recorded, **ctx)  # intact: passes
    await ck.verify_object(memoryview(data), size=None, checksum=recorded, **ctx)

    for damaged in (data[:-1], data[: n // 2], data + b"\x00"):
        with pytest.raises(CorruptDataError) as ce:
            await ck.verify_object(damaged, size=n, checksum=recorded, **ctx)
        assert (ce.value.key, ce.value.dataset_id, ce.value.snapshot_id) == ("ds/f1", "ds", "s1")
        # Without a recorded size the digest alone catches it.
        with pytest.raises(ChecksumMismatchError):
            await ck.verify_object(damaged, size=None, checksum=recorded, **ctx)

    for bit in (0, 8 * n // 2 + 3, 8 * n - 1):
        with pytest.raises(ChecksumMismatchError) as me:
            await ck.verify_object(_flip(data, bit), size=n, checksum=recorded, **ctx)
        err = me.value
        assert (err.key, err.algorithm, err.expected) == ("ds/f1", algo.name, recorded)
        assert err.actual is not None
        assert err.actual.startswith(f"{algo.name}:")
        assert err.actual != recorded
        assert (err.dataset_id, err.snapshot_id) == ("ds", "s1")


@pytest.mark.parametrize("algo", NEW, ids=repr)
async def test_stream_verifier_in_chunks(algo: Checksum) -> None:
    data = os.urandom(BIG)
    recorded = algo.digest(data)
    step = ck.OFFLOAD_THRESHOLD + 1  # chunks both sides of the offload threshold
    chunks = [data[i : i + step] for i in range(0, len(data), step)] + [b"", data[:10]]

    ok = ck.StreamVerifier(key="k", size=len(data), checksum=recorded, volume_id="v")
    for c in chunks[:-2]:
        await ok.aupdate(memoryview(c))
    ok.check()

    extra = ck.StreamVerifier(key="k", size=len(data), checksum=recorded, volume_id="v")
    for c in chunks[:-2]:
        await extra.aupdate(c)
    with pytest.raises(CorruptDataError) as ei:  # one byte too many: raised as soon as seen
        await extra.aupdate(b"!")
    assert ei.value.volume_id == "v"

    short = ck.StreamVerifier(key="k", size=len(data), checksum=recorded)
    for c in chunks[:-3]:
        await short.aupdate(c)
    with pytest.raises(CorruptDataError):  # size is checked before the digest
        short.check()

    swapped = ck.StreamVerifier(key="k", size=None, checksum=recorded)
    for c in [chunks[1], chunks[0], *chunks[2:-2]]:  # same bytes, wrong order
        await swapped.aupdate(c)
    with pytest.raises(ChecksumMismatchError):
        swapped.check()


# ------------------------------------------------------------------ off the loop
class _ThreadSpy(Checksum):
    """Wraps a real algorithm and records the thread each ``update`` ran on."""

    def __init__(self, inner: Checksum) -> None:
        self.inner = inner
        self.name = inner.name
        self.threads: list[int] = []

    def hasher(self) -> Hasher:
        spy = self

        class _H:
            def __init__(self) -> None:
                self.h = spy.inner.hasher()

            def update(self, data: bytes | bytearray | memoryview, /) -> None:
                spy.threads.append(threading.get_ident())
                self.h.update(data)

            def hexdigest(self) -> str:
                return self.h.hexdigest()

        return _H()


@pytest.mark.parametrize("algo", ALGORITHMS, ids=repr)
async def test_large_buffers_are_hashed_off_the_loop(
    algo: Checksum, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    data = os.urandom(BIG)
    spy = _ThreadSpy(algo)
    assert await ck.compute_checksum(spy, data) == algo.digest(data)
    assert await ck.compute_checksum(spy, data[:1000]) == algo.digest(data[:1000])
    # The large buffer went to a worker thread; the small one stayed on the loop.
    assert spy.threads[0] != loop_thread
    assert spy.threads[1] == loop_thread

    # The read paths: verify_object and StreamVerifier.aupdate.
    spy.threads.clear()
    monkeypatch.setitem(ck._BY_NAME, algo.name, lambda: spy)
    await ck.verify_object(data, key="k", size=len(data), checksum=algo.digest(data))
    v = ck.StreamVerifier(key="k", size=len(data) + 10, checksum=algo.digest(data + bytes(10)))
    await v.aupdate(data)
    await v.aupdate(bytes(10))
    v.check()
    assert len(spy.threads) == 3
    assert spy.threads[0] != loop_thread
    assert spy.threads[1] != loop_thread
    assert spy.threads[2] == loop_thread
