"""Tools for testing code that uses aiolode, and for testing store adapters.

- :class:`CountingStore` counts the calls and bytes that reach a store, for
  cost-contract tests ("a warm write makes at most 3 calls beyond its data").
- :class:`LatencyStore` adds a round-trip time to every call.
- :class:`FaultInjectingStore` fails, delays, truncates or corrupts the calls
  that match its :class:`Rule` s.
- :func:`seal_document` stores a hand-edited document the way aiolode stores
  its own (with its seal), to inject valid but inconsistent state.

Every name above has one home: this package (the modules behind it are private).
Three public modules are not imported here, because they need a test-only
dependency:

- :mod:`aiolode.testing.store_suite` holds :class:`~aiolode.testing.store_suite.StoreConformance`,
  the conformance suite every store adapter must pass (needs pytest);
- :mod:`aiolode.testing.history_suite` holds
  :class:`~aiolode.testing.history_suite.HistoryConformance`, the contract every
  history (Dataset, Volume) keeps, run unchanged over each (needs pytest);
- :mod:`aiolode.testing.strategies` holds Hypothesis strategies (needs hypothesis).

:mod:`aiolode.testing.moto_server` runs moto's S3 server for tests (needs moto).
See ``docs/testing.md`` for a guide.
"""

from __future__ import annotations

from ._counting import CountingStore as CountingStore
from ._counting import Measurement as Measurement
from ._counting import StoreCounts as StoreCounts
from ._documents import seal_document as seal_document
from ._faults import READ_OPS as READ_OPS
from ._faults import Action as Action
from ._faults import Call as Call
from ._faults import Corrupt as Corrupt
from ._faults import Crash as Crash
from ._faults import Delay as Delay
from ._faults import ErrorSpec as ErrorSpec
from ._faults import Fail as Fail
from ._faults import FaultInjectingStore as FaultInjectingStore
from ._faults import Hook as Hook
from ._faults import LoggedCall as LoggedCall
from ._faults import LoseAck as LoseAck
from ._faults import Rule as Rule
from ._faults import SimulatedCrash as SimulatedCrash
from ._faults import Truncate as Truncate
from ._latency import LatencyStore as LatencyStore
from ._ops import OPS as OPS
from ._ops import Op as Op

__all__ = (
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
    "seal_document",
)
