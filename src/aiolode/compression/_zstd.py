"""Zstandard on the optional ``zstandard`` package (imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

from .._validate import safe_repr
from ..errors import CorruptDataError, InvalidInputError, MissingDependencyError
from ._base import Compressor, check_bytes, register_compressor

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["Zstd"]


def _zstd() -> ModuleType:
    try:
        import zstandard
    except ImportError as exc:
        raise MissingDependencyError(
            "zstd compression needs the 'zstandard' package: pip install 'aiolode[zstd]'",
            package="zstandard",
            extra="zstd",
        ) from exc
    return zstandard


def _corrupt(message: str, exc: BaseException | None = None) -> CorruptDataError:
    detail = f": {exc}" if exc is not None else ""
    return CorruptDataError(f"zstd data is {message}{detail}", format="zstd")


class _ZstdCompressStream:
    def __init__(self, level: int) -> None:
        zstd = _zstd()
        self._c = zstd.ZstdCompressor(level=level, write_checksum=True).compressobj()
        self._finish = zstd.COMPRESSOBJ_FLUSH_FINISH

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        check_bytes(data)
        out: bytes = self._c.compress(data)
        return out

    def flush(self) -> bytes:
        out: bytes = self._c.flush(self._finish)
        return out


class _ZstdDecompressStream:
    """Incremental zstd decoding across concatenated frames, truncation detected."""

    def __init__(self) -> None:
        self._zstd = _zstd()
        self._dctx = self._zstd.ZstdDecompressor()
        self._d = self._dctx.decompressobj()
        self._started = False
        self._frame_eof = False

    @property
    def eof(self) -> bool:
        return self._frame_eof

    def decompress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        check_bytes(data)
        out: list[bytes] = []
        buf = bytes(data)
        while buf:
            if self._frame_eof:
                # Another frame follows (zstd frames are concatenable).
                self._d = self._dctx.decompressobj()
                self._frame_eof = False
            self._started = True
            try:
                out.append(self._d.decompress(buf))
            except self._zstd.ZstdError as exc:
                raise _corrupt("corrupt", exc) from exc
            if self._d.eof:
                self._frame_eof = True
                buf = self._d.unused_data
            else:
                buf = b""
        return b"".join(out)

    def flush(self) -> bytes:
        if not self._frame_eof:
            raise _corrupt("truncated" if self._started else "empty")
        return b""


@final
@register_compressor
class Zstd(Compressor):
    """Zstandard compression (needs the ``zstandard`` package: ``aiolode[zstd]``).

    Frames carry a content checksum (xxHash64), so corruption is reported as
    :class:`~aiolode.errors.CorruptDataError` rather than decoded into garbage.

    Parameters
    ----------
    level
        1 (fastest) to 22 (smallest), or negative for ultra-fast; default 3.

    Raises
    ------
    InvalidInputError
        ``level`` is not an integer from -7 to 22.
    """

    name = "zstd"
    extension = ".zst"

    def __init__(self, level: int = 3) -> None:
        if isinstance(level, bool) or not isinstance(level, int) or not -7 <= level <= 22:
            raise InvalidInputError(f"zstd level must be an integer -7..22, not {safe_repr(level)}")
        self.level = level

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        return frozenset({"level"})

    def options(self) -> dict[str, Any]:
        # docstring inherited
        return {"level": self.level}

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        # docstring inherited
        zstd = _zstd()
        check_bytes(data)
        out: bytes = zstd.ZstdCompressor(level=self.level, write_checksum=True).compress(data)
        return out

    def decompress(self, data: bytes | bytearray | memoryview) -> bytes:
        # docstring inherited
        # Streamed frames carry no content size, which one-shot
        # ZstdDecompressor.decompress() requires; the incremental path handles
        # both kinds of frame, concatenated frames, and detects truncation.
        d = _ZstdDecompressStream()
        return d.decompress(data) + d.flush()

    def compressobj(self) -> _ZstdCompressStream:
        # docstring inherited
        return _ZstdCompressStream(self.level)

    def decompressobj(self) -> _ZstdDecompressStream:
        # docstring inherited
        return _ZstdDecompressStream()
