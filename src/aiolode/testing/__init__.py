"""Tools for testing code that uses aiolode, and for testing store adapters.

- :class:`CountingStore` counts the calls and bytes that reach a store, for
  cost-contract tests ("a warm write makes at most 3 calls beyond its data").
- :class:`LatencyStore` adds a round-trip time to every call.
- :mod:`aiolode.testing.store_suite` holds :class:`~aiolode.testing.store_suite.StoreConformance`,
  the conformance suite every store adapter must pass (import it from there:
  it needs pytest).

See ``docs/testing.md`` for a guide.
"""

from __future__ import annotations

from ._counting import CountingStore as CountingStore
from ._counting import Measurement as Measurement
from ._counting import StoreCounts as StoreCounts
from ._latency import LatencyStore as LatencyStore
from ._ops import OPS as OPS
from ._ops import Op as Op

__all__ = ["OPS", "CountingStore", "LatencyStore", "Measurement", "Op", "StoreCounts"]
