"""Gzip (RFC 1952) on the standard library's zlib."""

from __future__ import annotations

import zlib
from typing import Any, final

from .._validate import safe_repr
from ..errors import CorruptDataError, InvalidInputError
from ._base import Compressor, check_bytes, register_compressor

__all__ = ["Gzip"]

# wbits 31 = gzip container; 47 (32 + 15) auto-detects gzip or zlib on input, but
# we want non-gzip input rejected, so decompression uses 31 too.
_GZIP_WBITS = 31


def _corrupt(message: str, exc: BaseException | None = None) -> CorruptDataError:
    detail = f": {exc}" if exc is not None else ""
    return CorruptDataError(f"gzip data is {message}{detail}", format="gzip")


class _GzipDecompressStream:
    """Incremental gzip decoding across concatenated members (like ``gzip.decompress``)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(_GZIP_WBITS)
        self._started = False  # any input byte seen in the current member

    @property
    def eof(self) -> bool:
        return self._d.eof

    def decompress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        check_bytes(data)
        out: list[bytes] = []
        buf = bytes(data)
        while buf:
            if self._d.eof:
                # A new member may follow (gzip files are concatenable).
                self._d = zlib.decompressobj(_GZIP_WBITS)
            self._started = True
            try:
                out.append(self._d.decompress(buf))
            except zlib.error as exc:
                raise _corrupt("corrupt", exc) from exc
            buf = self._d.unused_data if self._d.eof else b""
        return b"".join(out)

    def flush(self) -> bytes:
        try:
            tail = self._d.flush()
        except zlib.error as exc:  # pragma: no cover - flush after errors only
            raise _corrupt("corrupt", exc) from exc
        if not self._d.eof:
            raise _corrupt("truncated" if self._started else "empty")
        return tail


class _GzipCompressStream:
    def __init__(self, level: int) -> None:
        self._c = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        check_bytes(data)
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


@final
@register_compressor
class Gzip(Compressor):
    """Gzip compression (standard library; always available).

    Parameters
    ----------
    level
        1 (fastest) to 9 (smallest); default 6, as ``gzip`` itself.

    Raises
    ------
    InvalidInputError
        ``level`` is not an integer from 0 to 9.
    """

    name = "gzip"
    extension = ".gz"

    def __init__(self, level: int = 6) -> None:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise InvalidInputError(f"gzip level must be an integer 0..9, not {safe_repr(level)}")
        self.level = level

    @classmethod
    def _option_names(cls) -> frozenset[str]:
        return frozenset({"level"})

    def options(self) -> dict[str, Any]:
        # docstring inherited
        return {"level": self.level}

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        # docstring inherited
        check_bytes(data)
        c = zlib.compressobj(self.level, zlib.DEFLATED, _GZIP_WBITS)
        return c.compress(data) + c.flush()

    def decompress(self, data: bytes | bytearray | memoryview) -> bytes:
        # docstring inherited
        d = _GzipDecompressStream()
        return d.decompress(data) + d.flush()

    def compressobj(self) -> _GzipCompressStream:
        # docstring inherited
        return _GzipCompressStream(self.level)

    def decompressobj(self) -> _GzipDecompressStream:
        # docstring inherited
        return _GzipDecompressStream()
