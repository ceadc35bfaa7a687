"""Tools for testing code that uses aiolode, and for testing store adapters."""

from __future__ import annotations

__all__: list[str] = []
