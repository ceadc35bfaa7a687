"""Compressors applied after the codec: gzip (stdlib) and zstd (optional ``zstandard``)."""

from __future__ import annotations

from ._base import Compressor as Compressor
from ._base import CompressStream as CompressStream
from ._base import DecompressStream as DecompressStream
from ._base import compressor_from_name as compressor_from_name
from ._base import register_compressor as register_compressor
from ._gzip import Gzip as Gzip
from ._zstd import Zstd as Zstd

__all__ = (
    "CompressStream",
    "Compressor",
    "DecompressStream",
    "Gzip",
    "Zstd",
    "compressor_from_name",
    "register_compressor",
)
