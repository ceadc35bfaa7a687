"""Record codecs: JSON Lines, Parquet and Arrow IPC (the latter two on optional pyarrow)."""

from __future__ import annotations

from ._base import Codec as Codec
from ._base import ColumnStats as ColumnStats
from ._base import EncodedFile as EncodedFile
from ._base import EncodedTail as EncodedTail
from ._base import Records as Records
from ._base import StatValue as StatValue
from ._base import StreamEncoder as StreamEncoder
from ._base import codec_from_name as codec_from_name
from ._base import register_codec as register_codec

__all__ = [
    "Codec",
    "ColumnStats",
    "EncodedFile",
    "EncodedTail",
    "Records",
    "StatValue",
    "StreamEncoder",
    "codec_from_name",
    "register_codec",
]
