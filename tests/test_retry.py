"""Retry: the delay schedule and its validation."""

from __future__ import annotations

import random

import pytest

from aiolode import InvalidInputError, Retry


def test_delay_doubles_up_to_the_cap_without_jitter() -> None:
    r = Retry(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [r.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_draws_from_the_given_generator() -> None:
    r = Retry(base_delay=1.0, max_delay=8.0, jitter=0.5)
    expected = random.Random(7)
    rng = random.Random(7)
    for n in range(1, 6):
        full = min(8.0, 2.0 ** (n - 1))
        assert r.delay(n, rng) == full * (1 - 0.5 * expected.random())


def test_jitter_uses_the_shared_generator_by_default() -> None:
    r = Retry(base_delay=1.0, max_delay=1.0, jitter=1.0)
    state = random.getstate()
    try:
        random.seed(3)
        first = r.delay(1)
        random.seed(3)
        assert r.delay(1) == first
    finally:
        random.setstate(state)
    assert all(0.0 < r.delay(1) <= 1.0 for _ in range(200))


@pytest.mark.parametrize(
    "kw",
    [
        {"attempts": 0},
        {"attempts": True},
        {"attempts": 2.0},
        {"base_delay": -1},
        {"base_delay": float("nan")},
        {"max_delay": float("inf")},
        {"jitter": 1.5},
        {"jitter": "0.1"},
        {"base_delay": 2.0, "max_delay": 1.0},
    ],
)
def test_bad_parameters(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        Retry(**kw)  # type: ignore[arg-type]
