"""The history layer: one append-only log implementation under Dataset and Volume.

Layer L3 (see ``aiolode/__init__.py``): imports stores, the manifest converter and
ids, never dataset/, volume/ or reader/.
"""

from __future__ import annotations

from ._calls import CLEANUP_TIMEOUT as CLEANUP_TIMEOUT
from ._calls import delete_quietly as delete_quietly
from ._calls import put_unique as put_unique
from ._calls import retrying as retrying
from ._log import Draft as Draft
from ._log import LogRecord as LogRecord
from ._log import LogSpec as LogSpec
from ._log import Outcome as Outcome
from ._log import SequenceLog as SequenceLog
from ._watch import follow as follow

__all__ = (
    "CLEANUP_TIMEOUT",
    "Draft",
    "LogRecord",
    "LogSpec",
    "Outcome",
    "SequenceLog",
    "delete_quietly",
    "follow",
    "put_unique",
    "retrying",
)
