"""The history suite refuses a subclass that would not really run it."""

from __future__ import annotations

from typing import Any

import pytest

from aiolode import Dataset, Snapshot
from aiolode.testing.history_suite import HistoryConformance
from tests.history import (
    test_dataset_history as dataset_history,
)  # not the class: pytest would run it twice


def test_the_adapter_is_abstract() -> None:
    assert HistoryConformance.__abstractmethods__ == {
        "open_history",
        "stage",
        "commit",
        "read",
        "record_key",
        "hint_key",
        "snapshot_id_at",
    }


def test_a_complete_subclass_is_accepted() -> None:
    class TestAgain(dataset_history.TestDatasetHistory):
        pass

    assert TestAgain.__abstractmethods__ == frozenset()


def test_every_missing_piece_is_named() -> None:
    with pytest.raises(
        TypeError, match=r"TestEmpty .* does not provide commit, .*, kind, id_pattern$"
    ):

        class TestEmpty(HistoryConformance[Dataset, Snapshot]):
            pass


def test_a_forgotten_method_fails_at_definition() -> None:
    with pytest.raises(TypeError, match=r"does not provide hint_key$"):

        class TestForgetful(dataset_history.TestDatasetHistory):
            hint_key = HistoryConformance.hint_key  # type: ignore[assignment]


def test_a_base_may_leave_the_adapter_to_its_subclasses() -> None:
    class PartialBase(HistoryConformance[Dataset, Snapshot]):
        kind = "dataset"

        def snapshot_id_at(self, seq: int) -> str:
            return f"{seq:016d}-0000"

    assert "open_history" in PartialBase.__abstractmethods__
    assert PartialBase.kind == "dataset"


def test_the_default_clock_hook_reaches_the_history_layer(monkeypatch: Any) -> None:
    from datetime import UTC, datetime

    from aiolode._history import _log

    fixed = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    dataset_history.TestDatasetHistory().skew_clock(monkeypatch, lambda: fixed)
    assert _log.datetime.now(UTC) == fixed
    assert isinstance(_log.datetime.now(UTC), datetime)
