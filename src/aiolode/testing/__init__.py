"""Tools for testing code that uses aiolode, and for testing store adapters.

- :class:`CountingStore` counts the calls and bytes that reach a store, for
  cost-contract tests ("a warm write makes at most 3 calls beyond its data").
- :class:`LatencyStore` adds a round-trip time to every call.
- :class:`FaultInjectingStore` fails, delays, truncates or corrupts the calls
  that match its :class:`Rule` s (see :mod:`aiolode.testing.faults`).
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
from .faults import READ_OPS as READ_OPS
from .faults import Action as Action
from .faults import Call as Call
from .faults import Corrupt as Corrupt
from .faults import Crash as Crash
from .faults import Delay as Delay
from .faults import ErrorSpec as ErrorSpec
from .faults import Fail as Fail
from .faults import FaultInjectingStore as FaultInjectingStore
from .faults import Hook as Hook
from .faults import LoggedCall as LoggedCall
from .faults import LoseAck as LoseAck
from .faults import Rule as Rule
from .faults import SimulatedCrash as SimulatedCrash
from .faults import Truncate as Truncate

__all__ = [
    "OPS",
    "READ_OPS",
    "Action",
    "Call",
    "Corrupt",
    "CountingStore",
    "Crash",
    "Delay",
    "ErrorSpec",
    "Fail",
    "FaultInjectingStore",
    "Hook",
    "LatencyStore",
    "LoggedCall",
    "LoseAck",
    "Measurement",
    "Op",
    "Rule",
    "SimulatedCrash",
    "StoreCounts",
    "Truncate",
]
