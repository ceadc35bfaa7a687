"""The Arrow bridge: committed data files as a ``pyarrow.dataset.Dataset``.

:func:`arrow_dataset` builds one over :class:`~aiolode.reader.DataFile` objects
(from :meth:`aiolode.Dataset.files` or :meth:`aiolode.DatasetReader.files`),
choosing for every file how pyarrow reads it (a typed :class:`Plan` of
:class:`Route` s) and checking every file against its manifest as it builds;
:func:`arrow_filesystem` gives a pyarrow filesystem over any store. pyarrow is
imported only when they are called (``aiolode[parquet]``).
"""

from __future__ import annotations

from ._bridge import Plan as Plan
from ._bridge import Planned as Planned
from ._bridge import Route as Route
from ._bridge import arrow_dataset as arrow_dataset
from ._bridge import arrow_filesystem as arrow_filesystem
from ._bridge import plan as plan

__all__ = ("Plan", "Planned", "Route", "arrow_dataset", "arrow_filesystem", "plan")
