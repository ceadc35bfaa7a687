"""Checksums: per file/block digests, recorded as ``"<name>:<hex>"`` and
verified on every read.

Hashing a large buffer runs in a worker thread, so it never stalls the event
loop; every algorithm here releases the GIL while it hashes a large buffer
(hashlib, zlib, xxhash and blake3 always; google-crc32c for ``bytes`` of 1 MiB
and more, which :class:`CRC32C` arranges), so the loop keeps running meanwhile.
``benchmarks/bench_checksum.py`` measures both.

Datasets and volumes use :data:`DEFAULT_CHECKSUM` unless given ``checksum=None``
(the explicit opt-out) or another algorithm; ``docs/checksum-decision.md`` has
the figures behind the choice.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import importlib
import zlib
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, final

import anyio.to_thread

from ._validate import safe_repr
from .errors import (
    ChecksumMismatchError,
    CorruptDataError,
    InvalidInputError,
    ManifestFormatError,
    MissingDependencyError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = (
    "CRC32",
    "CRC32C",
    "DEFAULT",
    "DEFAULT_CHECKSUM",
    "MD5",
    "SHA256",
    "XXH3",
    "Blake2b",
    "Blake3",
    "Checksum",
    "DefaultChecksum",
    "Hasher",
    "RecordedObject",
    "StreamVerifier",
    "check_checksum_arg",
    "checksum_from_name",
    "compute_checksum",
    "default_checksum",
    "parse_recorded",
    "resolve_checksum_arg",
    "verify_checksum",
    "verify_object",
)

#: Buffers at least this large are hashed off the event loop.
OFFLOAD_THRESHOLD = 256 * 1024


class Hasher(Protocol):
    """An incremental digest (the hashlib interface)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        """Feed bytes."""

    def hexdigest(self) -> str:
        """Return the digest as lowercase hex."""


class Checksum(abc.ABC):
    """A digest algorithm. Subclass to add one; ``name`` must be unique."""

    name: str

    @abc.abstractmethod
    def hasher(self) -> Hasher:
        """Return a fresh incremental hasher."""

    def format(self, hexdigest: str) -> str:
        """Return the recorded form ``"<name>:<hex>"``.

        Raises
        ------
        InvalidInputError
            ``hexdigest`` is not a non-empty str of lowercase hex digits.
        """
        if (
            not isinstance(hexdigest, str)
            or not hexdigest
            or hexdigest.strip("0123456789abcdef") != ""
        ):
            raise InvalidInputError(
                f"hexdigest must be a non-empty str of lowercase hex digits, "
                f"not {safe_repr(hexdigest)}"
            )
        return f"{self.name}:{hexdigest}"

    def digest(self, data: bytes | bytearray | memoryview) -> str:
        """Return the recorded form for ``data`` (sync, CPU only: no I/O).

        Raises
        ------
        InvalidInputError
            ``data`` is not bytes, a bytearray or a memoryview.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(
                f"data must be bytes, a bytearray or a memoryview, not {type(data).__name__}"
            )
        h = self.hasher()
        h.update(data)
        return self.format(h.hexdigest())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checksum) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


@final
class SHA256(Checksum):
    """SHA-256."""

    name = "sha256"

    def hasher(self) -> Hasher:
        # docstring inherited
        return hashlib.sha256()


@final
class MD5(Checksum):
    """MD5 (integrity against accidents only, not adversaries)."""

    name = "md5"

    def hasher(self) -> Hasher:
        # docstring inherited
        return hashlib.md5(usedforsecurity=False)


@final
class Blake2b(Checksum):
    """BLAKE2b-256: cryptographic and faster than SHA-256 without SHA extensions."""

    name = "blake2b"

    def hasher(self) -> Hasher:
        # docstring inherited
        return hashlib.blake2b(digest_size=32)


class _Crc32Hasher:
    def __init__(self) -> None:
        self._v = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._v = zlib.crc32(data, self._v)

    def hexdigest(self) -> str:
        return f"{self._v:08x}"


@final
class CRC32(Checksum):
    """CRC-32 (zlib): cheapest; detects accidental corruption."""

    name = "crc32"

    def hasher(self) -> Hasher:
        # docstring inherited
        return _Crc32Hasher()


def _load(module: str, attr: str, *, package: str, algorithm: str, extra: str | None) -> Any:
    """Import a hashing library lazily (only when its algorithm is used).

    ``extra`` is the aiolode extra that installs it, ``None`` for a base dependency.

    Raises
    ------
    MissingDependencyError
        ``package`` is not installed.
    """
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        if extra:
            how = f"pip install 'aiolode[{extra}]' (or pip install {package})"
        else:
            how = f"aiolode depends on it, so this installation is broken: pip install {package}"
        raise MissingDependencyError(
            f"checksum {algorithm!r} needs the {package!r} package: {how}",
            package=package,
            extra=extra,
        ) from exc


#: Pieces in which :class:`CRC32C` copies a mutable buffer (see ``_Crc32cHasher``).
_CRC32C_PIECE = 4 << 20


class _Crc32cHasher:
    """Incremental CRC-32C over google-crc32c's ``extend``.

    ``extend`` reads only immutable buffers (``bytes``), and releases the GIL
    only for ``bytes`` of 1 MiB and more. A memoryview spanning a whole
    ``bytes`` object is passed as that object (no copy); anything else
    (bytearray, a slice, an Arrow buffer) is copied to ``bytes`` in 4 MiB
    pieces, so memory stays bounded and each copy holds the GIL only briefly.
    """

    __slots__ = ("_extend", "_v")

    def __init__(self, extend: Callable[[int, bytes], int]) -> None:
        self._extend = extend
        self._v = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        if isinstance(data, bytes):
            self._v = self._extend(self._v, data)
            return
        mv = data if isinstance(data, memoryview) else memoryview(data)
        if isinstance(mv.obj, bytes) and mv.c_contiguous and mv.nbytes == len(mv.obj):
            self._v = self._extend(self._v, mv.obj)
            return
        with mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes()) as flat:
            for i in range(0, len(flat), _CRC32C_PIECE):
                self._v = self._extend(self._v, bytes(flat[i : i + _CRC32C_PIECE]))

    def hexdigest(self) -> str:
        return f"{self._v:08x}"


@final
class CRC32C(Checksum):
    """CRC-32C (Castagnoli) via ``google-crc32c``: hardware-accelerated (SSE4.2,
    ARMv8 CRC), and the checksum S3 and GCS compute natively.

    Recorded as ``"crc32c:<8 hex digits>"`` (the big-endian value; S3 and GCS
    show the same four bytes base64-encoded).

    Raises
    ------
    MissingDependencyError
        ``google-crc32c`` is not installed (``pip install 'aiolode[checksum]'``).
    """

    name = "crc32c"

    def __init__(self) -> None:
        self._extend: Callable[[int, bytes], int] = _load(
            "google_crc32c",
            "extend",
            package="google-crc32c",
            algorithm=self.name,
            extra="checksum",
        )

    def hasher(self) -> Hasher:
        # docstring inherited
        return _Crc32cHasher(self._extend)


@final
class XXH3(Checksum):
    """XXH3-128 via ``xxhash``: the default (:data:`DEFAULT_CHECKSUM`) and the
    fastest here (tens of GB/s); non-cryptographic, 128 bits, so an accidental
    change goes unnoticed with probability about 2^-128.

    Recorded as ``"xxh3_128:<32 hex digits>"`` (xxHash's canonical big-endian form).

    Raises
    ------
    MissingDependencyError
        ``xxhash`` is not installed (a dependency of aiolode: a broken install).
    """

    name = "xxh3_128"

    def __init__(self) -> None:
        self._new: Callable[[], Hasher] = _load(
            "xxhash", "xxh3_128", package="xxhash", algorithm=self.name, extra=None
        )

    def hasher(self) -> Hasher:
        # docstring inherited
        return self._new()


@final
class Blake3(Checksum):
    """BLAKE3-256 via ``blake3`` (single-threaded): cryptographic, several times
    faster than SHA-256.

    Recorded as ``"blake3:<64 hex digits>"``.

    Raises
    ------
    MissingDependencyError
        ``blake3`` is not installed (``pip install 'aiolode[checksum]'``).
    """

    name = "blake3"

    def __init__(self) -> None:
        # max_threads stays 1: hashing already runs in anyio's worker threads,
        # next to encoding and compression; a second pool would compete with them.
        self._new: Callable[[], Hasher] = _load(
            "blake3", "blake3", package="blake3", algorithm=self.name, extra="checksum"
        )

    def hasher(self) -> Hasher:
        # docstring inherited
        return self._new()


_BY_NAME: dict[str, type[Checksum]] = {
    c.name: c for c in (SHA256, MD5, Blake2b, CRC32, CRC32C, XXH3, Blake3)
}


def checksum_from_name(name: str) -> Checksum:
    """Return the algorithm recorded as ``name``.

    Raises
    ------
    ManifestFormatError
        No algorithm of that name is known.
    MissingDependencyError
        The algorithm is known but its library is not installed.
    """
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ManifestFormatError(
            f"unknown checksum algorithm {name!r}; known: {sorted(_BY_NAME)}", field="checksum"
        )
    return cls()


def parse_recorded(recorded: str) -> tuple[Checksum, str]:
    """Split ``"<name>:<hex>"`` into the algorithm and the hex digest.

    Raises
    ------
    ManifestFormatError
        The string is not of that form or names an unknown algorithm.
    MissingDependencyError
        The algorithm's library is not installed.
    """
    name, sep, hexdigest = recorded.partition(":")
    if not sep or not hexdigest:
        raise ManifestFormatError(
            f"checksum {recorded!r} is not '<algorithm>:<hex>'", field="checksum"
        )
    return checksum_from_name(name), hexdigest


def check_checksum_arg(checksum: object) -> Checksum | None:
    """Validate a ``checksum=`` constructor argument.

    Raises
    ------
    InvalidInputError
        Not ``None`` and not a :class:`Checksum` instance.
    """
    if checksum is None or isinstance(checksum, Checksum):
        return checksum
    raise InvalidInputError(
        f"checksum must be None or an aiolode Checksum such as aiolode.SHA256(), not {safe_repr(checksum)}"
    )


class DefaultChecksum(enum.Enum):
    """The type of :data:`DEFAULT` (an enum so that type checkers narrow it)."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "aiolode.checksum.DEFAULT"


#: ``checksum=DEFAULT`` (the constructors' default) means :data:`DEFAULT_CHECKSUM`;
#: ``checksum=None`` means no checksum.
DEFAULT: Final[Literal[DefaultChecksum.DEFAULT]] = DefaultChecksum.DEFAULT

#: The algorithm datasets and volumes use unless told otherwise: the fastest
#: candidate that costs at most 3% on the 8 M-row Parquet write and the
#: 1,000-row JSONL commit (docs/checksum-decision.md, benchmarks/bench_checksum.py).
DEFAULT_CHECKSUM: Final[type[Checksum]] = XXH3


def default_checksum() -> Checksum:
    """Return a new instance of :data:`DEFAULT_CHECKSUM`.

    Raises
    ------
    MissingDependencyError
        Its library is not installed (it is a dependency of aiolode: a broken install).
    """
    return DEFAULT_CHECKSUM()


def resolve_checksum_arg(checksum: object) -> Checksum | None:
    """Validate a ``checksum=`` constructor argument whose default is :data:`DEFAULT`.

    :data:`DEFAULT` gives :func:`default_checksum`, ``None`` gives ``None`` (no
    checksum), a :class:`Checksum` instance is returned as is.

    Raises
    ------
    InvalidInputError
        Anything else (an algorithm's name or class, for instance).
    MissingDependencyError
        :data:`DEFAULT` was given and the default's library is not installed.
    """
    if checksum is DEFAULT:
        return default_checksum()
    return check_checksum_arg(checksum)


async def compute_checksum(checksum: Checksum, data: bytes | bytearray | memoryview) -> str:
    """Digest ``data``; buffers over 256 KiB are hashed in a worker thread."""
    if len(data) >= OFFLOAD_THRESHOLD:
        return await anyio.to_thread.run_sync(checksum.digest, data)
    return checksum.digest(data)


async def verify_checksum(
    recorded: str | None, data: bytes | bytearray | memoryview, *, key: str
) -> None:
    """Verify ``data`` against a recorded ``"<name>:<hex>"`` digest (``None``: no-op).

    Raises
    ------
    ChecksumMismatchError
        The digest differs (``.key``, ``.expected``, ``.actual``).
    ManifestFormatError
        The recorded digest is malformed.
    MissingDependencyError
        The recorded algorithm's library is not installed.
    """
    if recorded is None:
        return
    algo, _ = parse_recorded(recorded)
    actual = await compute_checksum(algo, data)
    if actual != recorded:
        raise ChecksumMismatchError(
            f"checksum mismatch for {key!r}: expected {recorded}, got {actual}",
            key=key,
            algorithm=algo.name,
            expected=recorded,
            actual=actual,
        )


class RecordedObject(Protocol):
    """A stored object as a manifest records it (a file reference, a block)."""

    @property
    def key(self) -> str:
        """The object's store key."""

    @property
    def size(self) -> int | None:
        """Its recorded size in bytes (``None``: unknown)."""

    @property
    def checksum(self) -> str | None:
        """Its recorded ``"<name>:<hex>"`` digest, or ``None``."""


class StreamVerifier:
    """Checks one stored object, fed chunk by chunk, against what a manifest records.

    The one place that decides whether bytes read back are the bytes that were
    written: the recorded size (always, when known) and the recorded digest
    (when there is one). Every read path feeds it and calls :meth:`check` at the
    end of the object, before the last bytes are handed on as complete.

    Parameters
    ----------
    key
        The object's store key (carried by the errors).
    size
        Recorded size in bytes, or ``None`` if unknown.
    checksum
        Recorded ``"<name>:<hex>"`` digest, or ``None``.
    dataset_id, snapshot_id, volume_id
        Context carried by the errors.

    Raises
    ------
    ManifestFormatError
        ``checksum`` is malformed or names an unknown algorithm.
    MissingDependencyError
        The recorded algorithm's library is not installed.
    """

    def __init__(
        self,
        *,
        key: str,
        size: int | None,
        checksum: str | None,
        dataset_id: str | None = None,
        snapshot_id: str | None = None,
        volume_id: str | None = None,
    ) -> None:
        self.key = key
        self.size = size
        self.checksum = checksum
        self._ctx = {"dataset_id": dataset_id, "snapshot_id": snapshot_id, "volume_id": volume_id}
        self._algo: Checksum | None = None
        self._hasher: Hasher | None = None
        if checksum is not None:
            self._algo, _ = parse_recorded(checksum)
            self._hasher = self._algo.hasher()
        self.seen: int = 0

    @classmethod
    def of(
        cls,
        obj: RecordedObject,
        *,
        dataset_id: str | None = None,
        snapshot_id: str | None = None,
        volume_id: str | None = None,
    ) -> StreamVerifier:
        """A verifier for ``obj`` as recorded (its ``key``, ``size``, ``checksum``).

        Raises
        ------
        ManifestFormatError
            The recorded checksum is malformed or names an unknown algorithm.
        MissingDependencyError
            The recorded algorithm's library is not installed.
        """
        return cls(
            key=obj.key,
            size=obj.size,
            checksum=obj.checksum,
            dataset_id=dataset_id,
            snapshot_id=snapshot_id,
            volume_id=volume_id,
        )

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed a chunk (sync, CPU only: call from a worker thread for large chunks).

        Raises
        ------
        CorruptDataError
            More bytes than the recorded size (raised as soon as it is known).
        """
        n = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        self.seen += n
        if self.size is not None and self.seen > self.size:
            raise self._size_error()
        if self._hasher is not None:
            self._hasher.update(chunk)

    async def aupdate(self, chunk: bytes | bytearray | memoryview) -> None:
        """Feed a chunk from the event loop (hashed in a worker thread when large).

        Raises
        ------
        CorruptDataError
            More bytes than the recorded size.
        """
        n = chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        if self._hasher is not None and n >= OFFLOAD_THRESHOLD:
            await anyio.to_thread.run_sync(self.update, chunk)
        else:
            self.update(chunk)

    def check(self) -> None:
        """Call at the end of the object: size first, then digest.

        Raises
        ------
        CorruptDataError
            The object's size differs from the recorded size.
        ChecksumMismatchError
            The digest differs from the recorded one.
        """
        if self.size is not None and self.seen != self.size:
            raise self._size_error()
        if self._hasher is None or self._algo is None or self.checksum is None:
            return
        actual = self._algo.format(self._hasher.hexdigest())
        if actual != self.checksum:
            raise ChecksumMismatchError(
                f"checksum mismatch for {self.key!r}: expected {self.checksum}, got {actual}",
                key=self.key,
                algorithm=self._algo.name,
                expected=self.checksum,
                actual=actual,
                **self._ctx,
            )

    def _size_error(self) -> CorruptDataError:
        more = "at least " if self.size is not None and self.seen > self.size else ""
        return CorruptDataError(
            f"object {self.key!r} has {more}{self.seen} bytes; its manifest records {self.size}",
            key=self.key,
            **self._ctx,
        )


async def verify_object(
    data: bytes | bytearray | memoryview,
    *,
    key: str,
    size: int | None,
    checksum: str | None,
    dataset_id: str | None = None,
    snapshot_id: str | None = None,
    volume_id: str | None = None,
) -> None:
    """Check a whole object read back against its recorded size and digest.

    Hashing runs in a worker thread for buffers over 256 KiB.

    Raises
    ------
    CorruptDataError
        The size differs from the recorded size.
    ChecksumMismatchError
        The digest differs.
    ManifestFormatError
        The recorded digest is malformed.
    MissingDependencyError
        The recorded algorithm's library is not installed.
    """
    v = StreamVerifier(
        key=key,
        size=size,
        checksum=checksum,
        dataset_id=dataset_id,
        snapshot_id=snapshot_id,
        volume_id=volume_id,
    )
    n = data.nbytes if isinstance(data, memoryview) else len(data)
    if size is not None and n != size:
        v.seen = n
        raise v._size_error()
    await v.aupdate(data)
    v.check()
