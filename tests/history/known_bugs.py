"""Library bugs the history suite found, shared by both kinds (they live in the
shared history layer or metadata rules).

Each entry marks one conformance test ``xfail(strict=True)`` on the class that
``with_known_bugs`` decorates. Fix the bug, then delete its entry: the test then
runs (and, strict, an unexpected pass fails until the entry goes).
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import pytest

from aiolode.testing.history_suite import HistoryConformance

C = TypeVar("C", bound=type[HistoryConformance[Any, Any]])

KNOWN_BUGS: dict[str, str] = {}


def _xfail(name: str, reason: str) -> Any:
    base = getattr(HistoryConformance, name)

    @pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)
    @functools.wraps(base)
    async def test(self: Any, *args: Any, **kwargs: Any) -> None:
        await base(self, *args, **kwargs)

    return test


def with_known_bugs(cls: C) -> C:
    """Mark the tests of :data:`KNOWN_BUGS` as expected failures on ``cls``."""
    for name, reason in KNOWN_BUGS.items():
        setattr(cls, name, _xfail(name, reason))
    return cls
