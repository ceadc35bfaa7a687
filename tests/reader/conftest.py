"""Reader tests take the shared ``store`` fixture (``tests/stores.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass


# Combinations that take the same code path as another, faster one run only
# with the slow tests (the suite shares a time budget; moto is slow):
# memory JSONL is decoded eagerly whatever the compressor, file Arrow IPC goes
# native like Parquet, and S3 keeps one lazy (Parquet) and one eager (zstd) case.
_SLOW = {
    "memory": {"jsonl-gzip", "jsonl-zstd"},
    "file": {"arrow"},
    "s3": {"jsonl", "arrow", "jsonl-gzip"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        spec = getattr(item, "callspec", None)
        if spec is None or "tests/reader/" not in item.nodeid.replace("\\", "/"):
            continue
        params = spec.params
        if params.get("codec") in _SLOW.get(params.get("store_spec", ""), ()):
            item.add_marker(pytest.mark.slow)
