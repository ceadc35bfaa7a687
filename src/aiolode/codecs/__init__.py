"""Record codecs: JSON Lines, Parquet and Arrow IPC (the latter two on optional pyarrow)."""

from __future__ import annotations

from ._arrow import ArrowIPC as ArrowIPC
from ._base import Codec as Codec
from ._base import ColumnStats as ColumnStats
from ._base import EncodedFile as EncodedFile
from ._base import EncodedTail as EncodedTail
from ._base import Records as Records
from ._base import StatValue as StatValue
from ._base import StreamEncoder as StreamEncoder
from ._base import codec_from_name as codec_from_name
from ._base import register_codec as register_codec
from ._jsonl import JSONL as JSONL
from ._parquet import Parquet as Parquet

__all__ = [
    "JSONL",
    "ArrowIPC",
    "Codec",
    "ColumnStats",
    "EncodedFile",
    "EncodedTail",
    "Parquet",
    "Records",
    "StatValue",
    "StreamEncoder",
    "codec_from_name",
    "register_codec",
]
