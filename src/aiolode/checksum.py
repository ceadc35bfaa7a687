"""Checksums: opt-in per file/block digests, recorded as ``"<name>:<hex>"`` and
verified on every read.

Hashing a large buffer runs in a worker thread (hashlib releases the GIL), so
it never stalls the event loop.
"""

from __future__ import annotations

import abc
import hashlib
import zlib
from typing import Protocol, final

import anyio.to_thread

from .errors import ChecksumMismatchError, CorruptDataError, InvalidInputError, ManifestFormatError

__all__ = [
    "CRC32",
    "MD5",
    "SHA256",
    "Blake2b",
    "Checksum",
    "Hasher",
    "StreamVerifier",
    "checksum_from_name",
    "compute_checksum",
    "verify_checksum",
    "verify_object",
]

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
        """Return the recorded form ``"<name>:<hex>"``."""
        return f"{self.name}:{hexdigest}"

    def digest(self, data: bytes | bytearray | memoryview) -> str:
        """Return the recorded form for ``data`` (sync, CPU only: no I/O)."""
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


_BY_NAME: dict[str, type[Checksum]] = {c.name: c for c in (SHA256, MD5, Blake2b, CRC32)}


def checksum_from_name(name: str) -> Checksum:
    """Return the algorithm recorded as ``name``.

    Raises
    ------
    ManifestFormatError
        No algorithm of that name is known.
    """
    try:
        return _BY_NAME[name]()
    except KeyError:
        raise ManifestFormatError(
            f"unknown checksum algorithm {name!r}; known: {sorted(_BY_NAME)}", field="checksum"
        ) from None


def parse_recorded(recorded: str) -> tuple[Checksum, str]:
    """Split ``"<name>:<hex>"`` into the algorithm and the hex digest.

    Raises
    ------
    ManifestFormatError
        The string is not of that form or names an unknown algorithm.
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
        f"checksum must be None or an aiolode Checksum such as aiolode.SHA256(), not {checksum!r}"
    )


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
        self.seen = 0

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
