"""Argument checks shared by every public entry point (no I/O, no other aiolode imports
but the error tree)."""

from __future__ import annotations

from ._text import safe_repr
from .errors import InvalidInputError

__all__ = ("check_int", "check_number", "safe_repr")


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[minimum, maximum]``.

    Raises
    ------
    InvalidInputError
        Anything else, naming ``name`` and the accepted range.
    """
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise InvalidInputError(f"{name} must be an int {bound}, not {safe_repr(value)}")
    return value


def check_number(name: str, value: object, *, minimum: float = 0.0) -> float:
    """``value`` as a float if it is a finite int or float (not a bool) ``>= minimum``.

    Raises
    ------
    InvalidInputError
        Anything else, naming ``name`` (an int too large for a float too).
    """
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or value != value  # NaN
        or value in (float("inf"), float("-inf"))
        or value < minimum
    ):
        raise InvalidInputError(
            f"{name} must be a finite number >= {minimum}, not {safe_repr(value)}"
        )
    try:
        return float(value)
    except OverflowError:  # an int beyond 1.8e308
        raise InvalidInputError(
            f"{name} must be a finite number >= {minimum}, not an int too large for a float"
        ) from None
