"""The Compressor ABC: whole-buffer and incremental compression, recorded by name.

A compressor is applied *after* the codec (``records -> codec -> compressor ->
bytes``) and its ``name`` and :meth:`Compressor.options` are written to the
manifest, so a reader always decompresses with what the writer used.

All methods are synchronous and CPU-only (no I/O): the Dataset calls them from
worker threads, never on the event loop.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .._options import build_from_options
from ..errors import InvalidInputError, ManifestFormatError

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "CompressStream",
    "Compressor",
    "DecompressStream",
    "compressor_from_name",
    "register_compressor",
]


class CompressStream(Protocol):
    """Incremental compressor returned by :meth:`Compressor.compressobj`.

    Feed chunks with :meth:`compress` (each call returns whatever compressed
    bytes are ready, possibly ``b""``) and call :meth:`flush` exactly once at the
    end; the concatenation of all returned bytes is one complete compressed
    stream that :meth:`Compressor.decompress` reads back.
    """

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        """Compress a chunk; return the bytes ready now (possibly empty)."""
        ...

    def flush(self) -> bytes:
        """Finish the stream; return the final bytes. Call once, last."""
        ...


class DecompressStream(Protocol):
    """Incremental decompressor returned by :meth:`Compressor.decompressobj`.

    Chunk boundaries may fall anywhere. :meth:`flush` must be called after the
    last chunk: it returns any remaining output and raises
    :class:`~aiolode.errors.CorruptDataError` if the input was truncated.
    """

    @property
    def eof(self) -> bool:
        """True once a complete compressed stream has been consumed."""
        ...

    def decompress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        """Decompress a chunk; return the bytes ready now (possibly empty).

        Raises
        ------
        CorruptDataError
            The input is not valid for this format.
        """
        ...

    def flush(self) -> bytes:
        """End of input: return the rest and check the stream was complete.

        Raises
        ------
        CorruptDataError
            The input ended mid-stream (truncated) or was never started.
        """
        ...


class Compressor(abc.ABC):
    """A byte-level compression format, applied after the codec.

    Subclass it to add a format, then :func:`register_compressor` the class so
    manifests naming it can be read. ``name`` is recorded in manifests and must
    be unique; ``extension`` (with its dot) is appended to data-file keys.

    Every method is synchronous and CPU-bound: callers in async code run them in
    a worker thread (``anyio.to_thread.run_sync``).
    """

    name: ClassVar[str]
    """Recorded in manifests (``"gzip"``, ``"zstd"``). ``None`` there means raw."""

    extension: ClassVar[str]
    """File-name suffix including the dot (``".gz"``, ``".zst"``)."""

    @abc.abstractmethod
    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Compress a whole buffer.

        Memory: the input plus the compressed output.

        Raises
        ------
        MissingDependencyError
            The optional dependency implementing the format is not installed.
        """

    @abc.abstractmethod
    def decompress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Decompress a whole buffer (concatenated streams/members included).

        Memory: the input plus the decompressed output.

        Raises
        ------
        CorruptDataError
            ``data`` is corrupt, truncated, or not of this format.
        MissingDependencyError
            The optional dependency implementing the format is not installed.
        """

    @abc.abstractmethod
    def compressobj(self) -> CompressStream:
        """Return a fresh incremental compressor (memory: the codec's window).

        Raises
        ------
        MissingDependencyError
            The optional dependency implementing the format is not installed.
        """

    @abc.abstractmethod
    def decompressobj(self) -> DecompressStream:
        """Return a fresh incremental decompressor (memory: the codec's window).

        Raises
        ------
        MissingDependencyError
            The optional dependency implementing the format is not installed.
        """

    @abc.abstractmethod
    def options(self) -> dict[str, Any]:
        """Return the JSON-safe constructor options recorded in the manifest."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Rebuild the compressor from :meth:`options` (as read from a manifest).

        Unknown option names are ignored so that a newer writer's extra options
        do not make a file unreadable (decompression never depends on them).

        Raises
        ------
        ManifestFormatError
            An option has an invalid value.
        """
        if not isinstance(options, Mapping):
            raise ManifestFormatError(
                f"{cls.name} options must be a JSON object, not {type(options).__name__}",
                field="compressor_options",
            )
        return build_from_options(
            cls,
            options,
            cls._option_names(),
            what=f"compressor {cls.name!r}",
            field="compressor_options",
        )

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        """Names accepted by ``__init__`` (override if options differ)."""
        return frozenset()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options() == self.options()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options().items()))))


def check_bytes(data: object) -> None:
    """Refuse anything but a bytes-like argument (before a C library sees it).

    Raises
    ------
    InvalidInputError
        ``data`` is not ``bytes``, ``bytearray`` or a contiguous ``memoryview``.
    """
    if isinstance(data, bytes | bytearray):
        return
    if isinstance(data, memoryview) and data.c_contiguous:
        return
    raise InvalidInputError(
        f"compressors take bytes, bytearray or a contiguous memoryview, not {type(data).__name__}"
    )


_REGISTRY: dict[str, type[Compressor]] = {}


def register_compressor(cls: type[Compressor]) -> type[Compressor]:
    """Make manifests naming ``cls.name`` readable (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def compressor_from_name(
    name: str | None, options: Mapping[str, Any] | None = None
) -> Compressor | None:
    """Return the compressor a manifest records (``None``: no compression).

    Raises
    ------
    ManifestFormatError
        No compressor of that name is known, or its options are invalid.
    """
    if name is None:
        return None
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ManifestFormatError(
            f"unknown compressor {name!r}; known: {sorted(_REGISTRY)}", field="compressor"
        ) from None
    return cls.from_options(options or {})
