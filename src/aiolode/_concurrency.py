"""Bounded fan-out, and the one place where exception groups become one error.

Internal concurrency never leaks a bare :class:`ExceptionGroup` to callers
(trio's "designing for multiple errors"): :func:`reraise` turns a group from a
task group into what a caller can handle —

- a cancellation (or another ``BaseException`` that is not an ``Exception``)
  propagates unchanged: it must never be swallowed into an error;
- a single failure is re-raised **as is**, with its own ``__cause__`` intact
  (e.g. the botocore error behind a storage error); the group becomes its
  ``__context__``;
- several failures raise one error of the most specific aiolode category they
  all share (or :class:`~aiolode.AiolodeError`), ``from`` the group, so every
  failure stays visible in the chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, TypeVar

import anyio

from .errors import AiolodeError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["bounded_map", "collapse_group", "reraise"]

T = TypeVar("T")
R = TypeVar("R")

_CONTEXT = ("key", "dataset_id", "snapshot_id", "volume_id")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        else:
            out.append(e)
    return out


def collapse_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error :func:`reraise` would raise for ``group`` (not raised).

    For callers that must clean up before raising. Prefer :func:`reraise`.
    """
    try:
        reraise(group)
    except BaseException as exc:
        return exc


def reraise(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Raise the single error a caller of internal fan-out should see (module docstring).

    Raises
    ------
    BaseException
        Always: the leaf, or a category error ``from`` the group.
    """
    leaves = _leaves(group)
    for leaf in leaves:
        if not isinstance(leaf, Exception):
            raise leaf
    if len(leaves) == 1:
        raise leaves[0]
    aiolode = [e for e in leaves if isinstance(e, AiolodeError)]
    cls: type[AiolodeError] = AiolodeError
    if len(aiolode) == len(leaves):
        for c in type(aiolode[0]).__mro__:
            if (
                isinstance(c, type)
                and issubclass(c, AiolodeError)
                and all(isinstance(e, c) for e in aiolode)
            ):
                cls = c
                break
    # Context shared by every failure (the same dataset, say) stays on the summary.
    ctx = {
        name: getattr(aiolode[0], name)
        for name in _CONTEXT
        if aiolode and all(getattr(e, name, None) == getattr(aiolode[0], name) for e in aiolode)
    }
    summary = "; ".join(str(e) or type(e).__name__ for e in leaves[:3])
    more = f" (and {len(leaves) - 3} more)" if len(leaves) > 3 else ""
    err = cls(f"{len(leaves)} concurrent operations failed: {summary}{more}")
    for name, value in ctx.items():
        setattr(err, name, value)
    raise err from group


async def bounded_map(
    fn: Callable[[T], Awaitable[R]], items: Iterable[T], *, limit: int
) -> list[R]:
    """Run ``fn`` over ``items`` with at most ``limit`` in flight; results in order.

    At most ``limit`` tasks exist at any time (workers pull the next item), so a
    million items cost a million awaits, not a million tasks.

    Raises
    ------
    AiolodeError
        A failure, as :func:`reraise` decides (the first one stops the others).
    """
    seq = list(items)
    results: list[R | None] = [None] * len(seq)
    if not seq:
        return []
    it = iter(enumerate(seq))

    async def worker() -> None:
        for i, item in it:
            results[i] = await fn(item)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(min(max(1, limit), len(seq))):
                tg.start_soon(worker)
    except BaseExceptionGroup as eg:
        reraise(eg)
    return results  # type: ignore[return-value]
