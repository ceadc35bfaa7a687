"""Bounded fan-out that never leaks an ExceptionGroup to callers."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import anyio

from .errors import AiolodeError, StorageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["bounded_map", "collapse_group"]

T = TypeVar("T")
R = TypeVar("R")


def collapse_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """Turn an exception group from internal fan-out into one error for the caller.

    Cancellation and KeyboardInterrupt-like base exceptions win (they must
    propagate); a single leaf is returned as is; else the first aiolode leaf;
    otherwise a :class:`StorageError` summarising the failures. Callers raise the
    result ``from group`` so every failure stays visible in the chain.
    """
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup[BaseException]) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                leaves.append(e)

    walk(group)
    for leaf in leaves:
        if not isinstance(leaf, Exception):
            return leaf
    first = leaves[0]
    if len(leaves) == 1:
        return first
    for leaf in leaves:
        if isinstance(leaf, AiolodeError):
            return leaf
    return StorageError(f"{len(leaves)} concurrent operation(s) failed; first: {first!r}")


async def bounded_map(
    fn: Callable[[T], Awaitable[R]], items: Iterable[T], *, limit: int
) -> list[R]:
    """Run ``fn`` over ``items`` with at most ``limit`` in flight; results in order.

    Raises
    ------
    AiolodeError
        The first failure's aiolode error (others chained via the group).
    """
    seq = list(items)
    results: list[R | None] = [None] * len(seq)
    limiter = anyio.CapacityLimiter(max(1, limit))

    async def one(i: int, item: T) -> None:
        async with limiter:
            results[i] = await fn(item)

    try:
        async with anyio.create_task_group() as tg:
            for i, item in enumerate(seq):
                tg.start_soon(one, i, item)
    except BaseExceptionGroup as eg:
        raise collapse_group(eg) from eg
    return results  # type: ignore[return-value]
