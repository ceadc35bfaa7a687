"""Copy, backup and restore: a dataset's or a volume's history to another store.

:func:`copy_dataset` and :func:`copy_volume` copy a history — records at the
same sequence numbers, objects byte for byte — between any two stores,
incrementally and resumably, and never show the destination in a half state
(``docs/copy.md``). Layer L5 (see ``tests/test_layers.py``): built on
``dataset/`` and ``volume/`` and the history layer below them.
"""

from __future__ import annotations

from ._dataset import copy_dataset as copy_dataset
from ._report import CopyProgress as CopyProgress
from ._report import CopyProgressCallback as CopyProgressCallback
from ._report import CopyReport as CopyReport
from ._volume import copy_volume as copy_volume

__all__ = ("CopyProgress", "CopyProgressCallback", "CopyReport", "copy_dataset", "copy_volume")
