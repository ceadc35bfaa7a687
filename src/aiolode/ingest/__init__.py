"""Ingestion for high-rate producers: policies, exact drop accounting, run lineage.

Producers :meth:`~Ingestor.emit` records; the :class:`Ingestor` batches them
into snapshots of a dataset under a policy — :class:`Strict` (durable on
return, backpressure, nothing dropped) or :class:`Buffered` (bounded memory,
batches on size or time, a counted drop policy when full) — and records the
run's lineage (:class:`Run`) and the policy in every snapshot's metadata.
``emitted == written + dropped`` (see :class:`IngestStats`). Large payloads go
to a companion raw dataset (:meth:`Ingestor.emit_artifact`,
:class:`ArtifactRef`). :func:`quarry_layout` / :func:`quarry_dataset` give
Quarry's partitioning (source / category / day / run_id / event_type);
:func:`run_progress` and :func:`run_records` read back what a run committed,
to resume it. See ``docs/ingest.md``.
"""

from __future__ import annotations

from ._artifacts import ArtifactRef as ArtifactRef
from ._ingestor import Ingestor as Ingestor
from ._layout import QUARRY_PARTITION_KEYS as QUARRY_PARTITION_KEYS
from ._layout import quarry_dataset as quarry_dataset
from ._layout import quarry_layout as quarry_layout
from ._policy import Buffered as Buffered
from ._policy import OnFull as OnFull
from ._policy import Strict as Strict
from ._progress import RunProgress as RunProgress
from ._progress import run_progress as run_progress
from ._progress import run_records as run_records
from ._run import Run as Run
from ._stats import DROP_REASONS as DROP_REASONS
from ._stats import Drop as Drop
from ._stats import IngestStats as IngestStats

__all__ = (
    "DROP_REASONS",
    "QUARRY_PARTITION_KEYS",
    "ArtifactRef",
    "Buffered",
    "Drop",
    "IngestStats",
    "Ingestor",
    "OnFull",
    "Run",
    "RunProgress",
    "Strict",
    "quarry_dataset",
    "quarry_layout",
    "run_progress",
    "run_records",
)
