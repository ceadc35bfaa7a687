"""Record codecs: JSON Lines, Parquet and Arrow IPC (the latter two on optional pyarrow).

Also the one detection of Arrow inputs (``is_arrow``, ``arrow_table``,
``arrow_batches``) that the write path and every codec share.
"""

from __future__ import annotations

from ._arrow import ArrowIPC as ArrowIPC
from ._arrowdata import ACCEPTED as ACCEPTED
from ._arrowdata import arrow_batches as arrow_batches
from ._arrowdata import arrow_table as arrow_table
from ._arrowdata import describe as describe
from ._arrowdata import is_arrow as is_arrow
from ._arrowdata import is_arrow_batch as is_arrow_batch
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

__all__ = (
    "ACCEPTED",
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
    "arrow_batches",
    "arrow_table",
    "codec_from_name",
    "describe",
    "is_arrow",
    "is_arrow_batch",
    "register_codec",
)
