"""Dataset tests take the shared ``store`` fixture (``tests/stores.py``)."""

from __future__ import annotations

from tests.stores import make_store as make_store

__all__ = ["make_store"]
