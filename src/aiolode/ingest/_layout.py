"""Quarry's layout: source / category / day / run_id / event_type, in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..codecs import JSONL
from ..dataset import Dataset
from ..errors import InvalidInputError
from ..layout import HiveLayout

if TYPE_CHECKING:
    from ..codecs import Codec
    from ..store import Store

__all__ = ("QUARRY_PARTITION_KEYS", "quarry_dataset", "quarry_layout")

QUARRY_PARTITION_KEYS: Final = ("source", "category", "day", "run_id", "event_type")
"""Quarry's partition keys, in path order."""


def quarry_layout() -> HiveLayout:
    """The layout of a Quarry-style store: hive partitions
    ``source=…/category=…/day=…/run_id=…/event_type=…/``.

    An :class:`~aiolode.Ingestor` fills every key: ``source`` and ``category``
    from its :class:`~aiolode.Run`, ``day`` from each event's time (UTC),
    ``run_id`` and ``event_type`` per record. A plain
    :class:`~aiolode.HiveLayout`, so the dataset records it and opens by name,
    and pyarrow, DuckDB or Polars read the partitions from the paths.
    ``ds.files(where={"run_id": ...})`` reads only that run's partition manifests.
    """
    return HiveLayout(*QUARRY_PARTITION_KEYS)


def quarry_dataset(id: str, store: Store, *, codec: Codec | None = None, **options: Any) -> Dataset:
    """A Quarry-style dataset in one line: :func:`quarry_layout`, JSON Lines by default.

    ::

        ds = aiolode.quarry_dataset("crawl", store)

    Events of different types carry different fields (an ``item`` has a
    price, an ``error`` a message), so the dataset's recorded schema may grow:
    ``schema_mode="add_columns"`` by default (new nullable columns and safe
    widenings are recorded with the write that brings them; a column changing
    type is still refused).

    Parameters
    ----------
    id, store
        As for :class:`~aiolode.Dataset`.
    codec
        The record codec (default :class:`~aiolode.JSONL`); pass the recorded
        one to open a dataset created with another.
    **options
        Any other :class:`~aiolode.Dataset` option (``compressor``,
        ``checksum``, ``retry``, ``timestamp_field``, ``schema_mode``...).

    Raises
    ------
    InvalidKeyError, InvalidInputError
        As for :class:`~aiolode.Dataset`; ``layout`` is given (the layout is
        Quarry's).
    """
    if "layout" in options:
        raise InvalidInputError(
            "quarry_dataset() sets the layout (quarry_layout()); use aiolode.Dataset "
            "for another layout"
        )
    options.setdefault("schema_mode", "add_columns")
    return Dataset(id, store, codec=codec or JSONL(), layout=quarry_layout(), **options)
