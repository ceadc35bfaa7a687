"""CI version of the cancellation harness: every await point of every write path.

The contract (docs/reliability.md): an operation cancelled at any store call
either returns (its snapshot exists and is the head) or raises the
cancellation (no snapshot of it exists). ``python -m harness.cancel`` prints
the same cases with their counts.
"""

from __future__ import annotations

import pytest
from harness._common import CONFIGS, DatasetConfig

from harness import cancel


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
async def test_dataset_write_paths(cfg: DatasetConfig) -> None:
    kinds = ["write"]
    if cfg.raw:
        kinds.append("stream_write")
    elif cfg.codec in ("jsonl", "parquet"):
        kinds.append("stream_write_records")
    for kind in kinds:
        for warm in (False, True):
            points, violations = await cancel._dataset_case(cfg, kind, warm)
            assert violations == []
            # A write makes at least its data put and its commit put.
            assert points >= 2


async def test_volume_stage_write_at() -> None:
    staged = await cancel.volume_cases(commit=False)
    assert len(staged) == 8
    for name, (points, violations) in staged.items():
        assert violations == [], name
        assert points >= 1


async def test_volume_commit_outcome_is_never_ambiguous() -> None:
    commits = await cancel.volume_cases(stage=False)
    assert len(commits) == 4
    violations = [v for _, vs in commits.values() for v in vs]
    assert violations == []
