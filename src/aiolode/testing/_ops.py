"""Names of the store operations that wrappers count, slow down and fault."""

from __future__ import annotations

import math
from typing import Literal, TypeAlias, cast

from ..errors import InvalidInputError

__all__ = (
    "OPS",
    "Op",
    "check_delay",
    "check_op",
)

Op: TypeAlias = Literal[
    "put",
    "put_stream",
    "get",
    "get_range",
    "iter_bytes",
    "head",
    "delete",
    "list",
    "list_dirs",
    "list_uploads",
    "abort_upload",
]
"""One kind of call that reaches a store.

Each public :class:`~aiolode.Store` method is one of these, as seen by the store
it calls: ``put`` with bytes-like data is ``"put"`` and with an async iterable
``"put_stream"``; :meth:`~aiolode.Store.exists` and a zero-length
:meth:`~aiolode.Store.get_range` are ``"head"``;
:meth:`~aiolode.Store.abandoned_uploads` is ``"list_uploads"``.
"""

OPS: tuple[Op, ...] = (
    "put",
    "put_stream",
    "get",
    "get_range",
    "iter_bytes",
    "head",
    "delete",
    "list",
    "list_dirs",
    "list_uploads",
    "abort_upload",
)
"""Every :data:`Op`, in a fixed order."""


def check_op(op: object, *, allow_star: bool = False) -> Op:
    """Return ``op`` if it names an operation (or ``"*"`` when allowed, returned as is).

    A typo in an operation name would make a test silently vacuous, so it is an
    error rather than a rule that never matches.

    Raises
    ------
    InvalidInputError
        ``op`` is not one of :data:`OPS` (or ``"*"``).
    """
    if op in OPS or (allow_star and op == "*"):
        return cast("Op", op)
    allowed = ", ".join(repr(o) for o in (("*", *OPS) if allow_star else OPS))
    raise InvalidInputError(f"unknown store operation {op!r}; expected one of {allowed}")


def check_delay(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a finite number of seconds ``>= 0``.

    Raises
    ------
    InvalidInputError
        ``value`` is not a real number, is negative, NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{what} must be finite and >= 0, not {value!r}")
    return float(value)
