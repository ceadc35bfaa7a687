"""Retry policy for commit loops and transient storage errors."""

from __future__ import annotations

import random
from typing import final

import attrs

from ._validate import check_int, check_number, safe_repr
from .errors import InvalidInputError

__all__ = ["Retry"]


def _positive_int(_: object, attr: attrs.Attribute[int], value: int) -> None:
    check_int(f"Retry.{attr.name}", value)


def _non_negative(_: object, attr: attrs.Attribute[float], value: float) -> None:
    check_number(f"Retry.{attr.name}", value)


@final
@attrs.frozen
class Retry:
    """How often and how patiently to retry a lost commit race or a transient error.

    Delay before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2**(n-1))``,
    scaled by a random factor in ``(1 - jitter, 1]`` so racing writers spread out.

    Parameters
    ----------
    attempts
        Total attempts, including the first (>= 1).
    base_delay, max_delay
        Seconds (finite).
    jitter
        Fraction of the delay that is randomised, in ``[0, 1]``.

    Raises
    ------
    InvalidInputError
        A parameter is out of range.
    """

    attempts: int = attrs.field(default=16, validator=_positive_int)
    base_delay: float = attrs.field(default=0.005, validator=_non_negative)
    max_delay: float = attrs.field(default=1.0, validator=_non_negative)
    jitter: float = attrs.field(default=1.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.jitter > 1:
            raise InvalidInputError(f"Retry.jitter must be in [0, 1], not {safe_repr(self.jitter)}")
        if self.max_delay < self.base_delay:
            raise InvalidInputError("Retry.max_delay must be >= base_delay")

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to sleep before retry ``retry_number`` (1-based). No I/O.

        ``rng`` draws the jitter (the module's shared generator by default).

        Raises
        ------
        InvalidInputError
            ``retry_number`` is not an int >= 1, or ``rng`` has no ``random()``.
        """
        check_int("retry_number", retry_number, minimum=1)
        if rng is not None and not callable(getattr(rng, "random", None)):
            raise InvalidInputError(f"rng must be a random.Random, not {type(rng).__name__}")
        # 2 ** 1023 is the largest power a float holds: beyond it the cap applies.
        d = min(self.max_delay, self.base_delay * (2.0 ** min(1023, retry_number - 1)))
        r = (rng or random).random()
        return d * (1.0 - self.jitter * r)
