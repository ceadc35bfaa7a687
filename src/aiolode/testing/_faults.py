"""FaultInjectingStore: make a store fail exactly where a test wants it to.

Rules work like an HTTP mock transport: each :class:`Rule` matches calls by
operation, key glob and call number (or probability, under a seed) and applies
an action::

    from aiolode.testing import Corrupt, Delay, Fail, FaultInjectingStore, Hook, LoseAck, Rule

    store = FaultInjectingStore(MemoryStore(), [
        Rule(op="put", key="*/manifest*", nth=1, action=LoseAck()),  # commit lands, reply lost
        Rule(op="get", key="*.parquet", action=Corrupt()),             # every data read flips a bit
        Rule(op="*", probability=0.05, action=Fail()),                 # 5% transient failures
    ], seed=42)

Actions and when they act:

============== ====================================================================
``Fail``       raise *before* the call: nothing reaches the inner store
``LoseAck``    make the call, *then* raise: it took effect, the caller sees an error
``Delay``      sleep before the call
``Hook``       await a callable before (or after) the call, e.g. a rival writer
``Crash``      the process "dies" before (or after) the call: every later call fails
``Truncate``   reads only: return fewer bytes than stored
``Corrupt``    reads only: flip bits in the returned bytes
============== ====================================================================

Every call that reaches this store is logged (:attr:`FaultInjectingStore.log`)
with the rules that fired on it, so a test can assert what actually happened.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, TypeAlias, TypeVar, final

import anyio
import attrs

from ..errors import AiolodeError, InvalidInputError, TransientStorageError
from ..store._base import Store
from ..store._wrapper import WrapperStore
from ..types import PutMode
from ._ops import OPS, Op, check_delay, check_op

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator
    from datetime import datetime

    from ..types import ObjectInfo, PendingUpload

__all__ = (
    "READ_OPS",
    "Action",
    "Call",
    "Corrupt",
    "Crash",
    "Delay",
    "ErrorSpec",
    "Fail",
    "FaultInjectingStore",
    "Hook",
    "LoggedCall",
    "LoseAck",
    "Rule",
    "SimulatedCrash",
    "Truncate",
)

S = TypeVar("S", bound=Store)

READ_OPS: tuple[Op, ...] = ("get", "get_range", "iter_bytes")
"""The operations that return object bytes (what Truncate and Corrupt act on)."""


@attrs.frozen
class Call:
    """One call that reached a :class:`FaultInjectingStore`.

    Attributes
    ----------
    index
        1-based position among all calls to this store.
    op
        The operation.
    key
        The key (for ``list``/``list_dirs``/``list_uploads``: the prefix; for
        ``abort_upload``: the upload's key).
    mode
        The put mode, for ``put`` and ``put_stream``.
    offset, length
        The range, for ``get_range``.
    store
        The *inner* store: calls on it bypass the faults (handy in hooks).
    """

    index: int
    op: Op
    key: str
    mode: PutMode | None = None
    offset: int | None = None
    length: int | None = None
    store: Store | None = attrs.field(default=None, eq=False, repr=False)


ErrorSpec: TypeAlias = "BaseException | type[BaseException] | Callable[[Call], BaseException]"
"""What a failing action raises: an exception instance (raised as is every time),
an exception class (instantiated with a message, and ``key=`` for aiolode errors),
or a factory called with the :class:`Call`."""


def _check_error(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or isinstance(value, BaseException) or callable(value):
        return
    raise InvalidInputError(
        f"{attribute.name} must be an exception, an exception class or a factory, not {value!r}"
    )


def _build_error(spec: object, call: Call, message: str) -> BaseException:
    if spec is None:
        return TransientStorageError(message, key=call.key)
    if isinstance(spec, BaseException):
        # Drop the traceback of the previous raise so it does not grow each time.
        return spec.with_traceback(None)
    if isinstance(spec, type) and issubclass(spec, BaseException):
        if issubclass(spec, AiolodeError):
            return spec(message, key=call.key)
        return spec(message)
    assert callable(spec)
    err = spec(call)
    if not isinstance(err, BaseException):
        raise InvalidInputError(
            f"the error factory {spec!r} returned {err!r}, not an exception", key=call.key
        )
    return err


class Action:
    """Base of the fault actions. Use the concrete ones below."""

    #: Operations the action can act on (``None``: all).
    supported_ops: ClassVar[tuple[Op, ...] | None] = None


@attrs.frozen
class Fail(Action):
    """Raise before the call; nothing reaches the inner store.

    ``error`` defaults to a :class:`~aiolode.TransientStorageError` naming the key.
    """

    error: ErrorSpec | None = attrs.field(default=None, validator=_check_error)


@attrs.frozen
class LoseAck(Action):
    """Make the call, then raise as if its response were lost.

    The call took effect (a put is stored) but the caller sees ``error``, by
    default a :class:`~aiolode.TransientStorageError`. On a streamed read or a
    listing, the error is raised after the last item.
    """

    error: ErrorSpec | None = attrs.field(default=None, validator=_check_error)


def _check_seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_delay(value, attribute.name)


@attrs.frozen
class Delay(Action):
    """Sleep ``seconds`` (``anyio.sleep``) before the call."""

    seconds: float = attrs.field(validator=_check_seconds)


def _check_hook(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise InvalidInputError(f"{attribute.name} must be an async callable, not {value!r}")


def _check_when(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ("before", "after"):
        raise InvalidInputError(f"{attribute.name} must be 'before' or 'after', not {value!r}")


@attrs.frozen
class Hook(Action):
    """Await ``fn(call)`` before the call (``when="before"``) or after it succeeded.

    Use it to interleave something at an exact point, e.g. let a rival writer
    commit between a writer's read of the head and its commit put. An
    exception raised by ``fn`` propagates to the caller (before: instead of the
    call; after: although the call took effect).
    """

    fn: Callable[[Call], Awaitable[object]] = attrs.field(validator=_check_hook)
    when: Literal["before", "after"] = attrs.field(default="before", validator=_check_when)


def _check_keep(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{attribute.name} must be None or an int >= 0, not {value!r}")


@attrs.frozen
class Crash(Action):
    """Simulate the process dying at this call: from now on nothing reaches the store.

    ``when="before"``: the call never reaches the inner store; ``"after"``: it
    took effect first (the process died before it saw the reply). Either way
    the call raises :class:`SimulatedCrash`, and so does every later call on
    this :class:`FaultInjectingStore` (logged as ``refused``) until
    :meth:`~FaultInjectingStore.recover`: cleanup code that would not run in a
    real crash cannot reach the store either. Check the state left behind
    through ``store.inner``, as a fresh process would.
    """

    when: Literal["before", "after"] = attrs.field(default="before", validator=_check_when)


@attrs.frozen
class Truncate(Action):
    """Return only the first ``keep`` bytes of a read.

    ``keep=None`` keeps the first half (rounded down), so any non-empty read
    comes back short. For ``iter_bytes`` the stream ends after ``keep`` bytes;
    with ``keep=None``, after half of its first chunk.
    """

    supported_ops: ClassVar[tuple[Op, ...] | None] = READ_OPS
    keep: int | None = attrs.field(default=None, validator=_check_keep)


def _check_bits(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{attribute.name} must be a positive int, not {value!r}")


@attrs.frozen
class Corrupt(Action):
    """Flip ``bits`` distinct bits of a read's bytes (positions drawn under the seed).

    For ``iter_bytes`` the bits are flipped in the first non-empty chunk. An
    empty read has nothing to flip and comes back unchanged; so does the excess
    when ``bits`` exceeds the number of bits read.
    """

    supported_ops: ClassVar[tuple[Op, ...] | None] = READ_OPS
    bits: int = attrs.field(default=1, validator=_check_bits)


class SimulatedCrash(BaseException):
    """The process "died": raised by a :class:`Crash` rule and by every later call.

    A ``BaseException`` (like ``KeyboardInterrupt``), so ``except Exception``
    in the code under test cannot swallow it, as nothing can catch a real
    crash. Deliberately not an :class:`~aiolode.AiolodeError`.
    """


def _to_ops(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, Iterable):
        items = tuple(value)
    else:
        raise InvalidInputError(f"op must be an operation name or names, not {value!r}")
    if not items:
        raise InvalidInputError("op must name at least one operation")
    checked = [check_op(o, allow_star=True) for o in items]
    if "*" in checked:
        return ("*",)
    return tuple(dict.fromkeys(checked))


def _to_nth(value: int | Iterable[int] | None) -> frozenset[int] | range | None:
    if value is None:
        return None
    if isinstance(value, range):
        # Kept lazy: ``range(3, sys.maxsize)`` means "from the third call on".
        if len(value) == 0 or value.step < 1 or value.start < 1:
            raise InvalidInputError(
                f"nth range must be non-empty, increasing and start at 1 or more, not {value!r}"
            )
        return value
    items = (value,) if isinstance(value, int) else value
    try:
        numbers = frozenset(items)
    except TypeError:
        raise InvalidInputError(f"nth must be an int, ints or None, not {value!r}") from None
    if not numbers or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in numbers):
        raise InvalidInputError(f"nth must hold call numbers >= 1 (1 is the first), not {value!r}")
    return numbers


def _check_probability(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInputError(f"probability must be None or in [0, 1], not {value!r}")


def _check_times(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"times must be None or an int >= 1, not {value!r}")


def _check_key_glob(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidInputError(f"key must be a glob string, not {value!r}")


def _check_action(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Action):
        raise InvalidInputError(
            f"action must be Fail, LoseAck, Delay, Hook, Crash, Truncate or Corrupt, not {value!r}"
        )


@attrs.frozen
class Rule:
    """When to inject a fault, and which.

    A call *matches* when its operation is in ``op`` and its key matches the
    ``key`` glob (:func:`fnmatch.fnmatchcase`: ``*`` also matches ``/``; listings
    match on their prefix). Each rule numbers the calls it matches, 1, 2, 3 …
    A matching call *fires* the rule when its number is in ``nth`` (every
    number if ``None``), the rule has fired fewer than ``times`` times, and a
    draw from the rule's seeded generator is below ``probability``.

    Parameters
    ----------
    op
        An operation name, ``"*"`` (all), or several names. For ``Truncate`` and
        ``Corrupt``, ``"*"`` means the read operations.
    key
        A glob over keys.
    nth
        Which matching calls fire: one number, several, a ``range`` (kept lazy:
        ``range(3, sys.maxsize)`` is "from the third on"), or ``None`` for all.
    probability
        Fire with this probability (drawn per matching call, under the store's seed).
    times
        Fire at most this many times.
    action
        What to do; :class:`Fail` by default.

    Raises
    ------
    InvalidInputError
        An unknown operation, a non-positive call number, a probability outside
        ``[0, 1]``, ``times < 1``, a read-only action on a write operation, or
        an action that is not one of this module's.
    """

    op: tuple[str, ...] = attrs.field(default=("*",), converter=_to_ops)
    key: str = attrs.field(default="*", validator=_check_key_glob)
    nth: frozenset[int] | range | None = attrs.field(default=None, converter=_to_nth)
    probability: float | None = attrs.field(default=None, validator=_check_probability)
    times: int | None = attrs.field(default=None, validator=_check_times)
    action: Action = attrs.field(factory=Fail, validator=_check_action)
    # Derived once, so matching a call costs a set lookup and a compiled regex.
    _ops: frozenset[str] = attrs.field(init=False, eq=False, repr=False)
    _key_re: re.Pattern[str] | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        supported = self.action.supported_ops
        if supported is not None and self.op != ("*",):
            bad = [o for o in self.op if o not in supported]
            if bad:
                raise InvalidInputError(
                    f"{type(self.action).__name__} acts on reads ({', '.join(supported)}) "
                    f"only, not on {', '.join(bad)}"
                )
        ops = frozenset(supported or OPS) if self.op == ("*",) else frozenset(self.op)
        object.__setattr__(self, "_ops", ops)
        key_re = None if self.key == "*" else re.compile(fnmatch.translate(self.key))
        object.__setattr__(self, "_key_re", key_re)

    @property
    def ops(self) -> frozenset[Op]:
        """The operations this rule can match."""
        return self._ops  # type: ignore[return-value]

    def matches(self, op: Op, key: str) -> bool:
        """Whether a call of ``op`` on ``key`` matches (ignoring nth/times/probability)."""
        if op not in self._ops:
            return False
        return self._key_re is None or self._key_re.match(key) is not None


@attrs.frozen
class LoggedCall:
    """One entry of :attr:`FaultInjectingStore.log`: a call and the rules it fired."""

    call: Call
    fired: tuple[Rule, ...] = ()
    #: The store had crashed (:class:`Crash`): the call raised and reached nothing.
    refused: bool = False

    @property
    def op(self) -> Op:
        """The call's operation."""
        return self.call.op

    @property
    def key(self) -> str:
        """The call's key (prefix for listings)."""
        return self.call.key

    @property
    def actions(self) -> tuple[Action, ...]:
        """The actions applied to this call, in rule order."""
        return tuple(r.action for r in self.fired)

    @property
    def injected(self) -> bool:
        """Whether any rule fired on this call."""
        return bool(self.fired)


@attrs.define
class _RuleState:
    rule: Rule
    rng: random.Random
    seen: int = 0
    fired: int = 0


@attrs.frozen
class _Plan:
    call: Call
    fired: tuple[_RuleState, ...]


@final
class FaultInjectingStore(WrapperStore[S]):
    """A store that injects faults into the calls that match its rules.

    Every fired rule applies, in rule order. Before the call: ``Delay`` sleeps,
    ``Hook(when="before")`` runs, and the first ``Fail`` or
    ``Crash(when="before")`` raises (later actions are skipped). Then the inner
    store is called. After it: ``Truncate`` and ``Corrupt`` transform the bytes
    read, ``Hook(when="after")`` runs, and the first ``LoseAck`` or
    ``Crash(when="after")`` raises. After a ``Crash`` every call raises
    :class:`SimulatedCrash` without reaching the inner store, until
    :meth:`recover`.

    Calls are numbered and rules evaluated when the call reaches this store
    (for ``iter_bytes`` and the listings: when iteration starts), the
    same points at which :class:`~aiolode.testing.CountingStore` counts. With a
    seed, the same sequence of calls gets the same faults: each rule draws from
    its own generator, seeded from ``seed`` and the rule's position in the order
    rules were added, so adding a rule does not change what earlier rules do.

    Cost: one log entry per call (``clear_log()`` drops them).

    Parameters
    ----------
    store
        The store to wrap.
    rules
        Initial rules (or one rule); more can be added (and all cleared) at any time.
    seed
        Seed for probabilities and corrupted bit positions. ``None``: not repeatable.

    Raises
    ------
    InvalidInputError
        ``store`` is not a :class:`~aiolode.Store`, or a rule is not a :class:`Rule`.
    """

    def __init__(
        self, store: S, rules: Iterable[Rule] | Rule = (), *, seed: int | str | None = None
    ) -> None:
        super().__init__(store)
        if isinstance(rules, Rule):
            rules = (rules,)
        self._seed = seed
        self._lock = threading.Lock()
        self._states: list[_RuleState] = []
        self._added = 0
        self._calls = 0
        self._log: list[LoggedCall] = []
        self._crashed = False
        # An attribute so tests can observe Delay without timing anything.
        self._sleep = anyio.sleep
        self.add(*rules)

    def __repr__(self) -> str:
        return f"FaultInjectingStore({self.inner!r}, <{len(self._states)} rules>)"

    # -------------------------------------------------------------- rules & log
    def add(self, *rules: Rule) -> None:
        """Append rules (evaluated after the existing ones).

        Raises
        ------
        InvalidInputError
            An argument is not a :class:`Rule`.
        """
        for rule in rules:
            if not isinstance(rule, Rule):
                raise InvalidInputError(f"expected a Rule, not {rule!r}")
        with self._lock:
            for rule in rules:
                self._added += 1
                rng = random.Random(None if self._seed is None else f"{self._seed!r}/{self._added}")
                self._states.append(_RuleState(rule, rng))

    def remove(self, rule: Rule) -> None:
        """Remove the first rule equal to ``rule``.

        Raises
        ------
        InvalidInputError
            No such rule.
        """
        with self._lock:
            for i, state in enumerate(self._states):
                if state.rule == rule:
                    del self._states[i]
                    return
        raise InvalidInputError(f"no such rule: {rule!r}")

    def clear(self) -> None:
        """Remove every rule; calls pass through untouched from now on (the log stays)."""
        with self._lock:
            self._states.clear()

    def clear_log(self) -> None:
        """Forget the logged calls (call numbering and rule counters continue)."""
        with self._lock:
            self._log.clear()

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The active rules, in evaluation order."""
        with self._lock:
            return tuple(s.rule for s in self._states)

    @property
    def log(self) -> list[LoggedCall]:
        """Every call so far, in order, with the rules that fired on it (a copy)."""
        with self._lock:
            return list(self._log)

    @property
    def faults(self) -> list[LoggedCall]:
        """The logged calls on which at least one rule fired."""
        return [e for e in self.log if e.injected]

    def fired(self, rule: Rule) -> int:
        """How many times the first active rule equal to ``rule`` fired.

        Raises
        ------
        InvalidInputError
            No such rule.
        """
        with self._lock:
            for state in self._states:
                if state.rule == rule:
                    return state.fired
        raise InvalidInputError(f"no such rule: {rule!r}")

    @property
    def crashed(self) -> bool:
        """Whether a :class:`Crash` rule fired (and :meth:`recover` was not called since)."""
        return self._crashed

    def recover(self) -> None:
        """Let calls through again after a :class:`Crash`, as a restarted process would."""
        with self._lock:
            self._crashed = False

    # ------------------------------------------------------------------ engine
    def _plan(
        self,
        op: Op,
        key: str,
        *,
        mode: PutMode | None = None,
        offset: int | None = None,
        length: int | None = None,
    ) -> _Plan:
        with self._lock:
            self._calls += 1
            call = Call(self._calls, op, key, mode, offset, length, self.inner)
            if self._crashed:
                self._log.append(LoggedCall(call, refused=True))
                raise SimulatedCrash(f"{op} {key!r} after the simulated crash")
            fired: list[_RuleState] = []
            for state in self._states:
                rule = state.rule
                if not rule.matches(op, key):
                    continue
                state.seen += 1
                if rule.nth is not None and state.seen not in rule.nth:
                    continue
                if rule.times is not None and state.fired >= rule.times:
                    continue
                if rule.probability is not None and state.rng.random() >= rule.probability:
                    continue
                state.fired += 1
                fired.append(state)
            self._log.append(LoggedCall(call, tuple(s.rule for s in fired)))
        return _Plan(call, tuple(fired))

    async def _before(self, plan: _Plan) -> None:
        for state in plan.fired:
            action = state.rule.action
            if isinstance(action, Delay):
                if action.seconds:
                    await self._sleep(action.seconds)
            elif isinstance(action, Hook):
                if action.when == "before":
                    await action.fn(plan.call)
            elif isinstance(action, Fail):
                c = plan.call
                raise _build_error(
                    action.error,
                    c,
                    f"injected fault: {c.op} {c.key!r} failed before reaching the store",
                )
            elif isinstance(action, Crash) and action.when == "before":
                self._crash(plan.call, "before")

    def _crash(self, call: Call, when: str) -> NoReturn:
        with self._lock:
            self._crashed = True
        raise SimulatedCrash(f"simulated crash {when} {call.op} {call.key!r}")

    async def _after(self, plan: _Plan) -> None:
        lost: LoseAck | Crash | None = None
        for state in plan.fired:
            action = state.rule.action
            if isinstance(action, Hook) and action.when == "after":
                await action.fn(plan.call)
            elif lost is None and (
                isinstance(action, LoseAck)
                or (isinstance(action, Crash) and action.when == "after")
            ):
                lost = action
        if isinstance(lost, Crash):
            self._crash(plan.call, "after")
        if lost is not None:
            c = plan.call
            raise _build_error(
                lost.error,
                c,
                f"injected fault: {c.op} {c.key!r} took effect but its response was lost",
            )

    @staticmethod
    def _transform(plan: _Plan, data: bytes) -> bytes:
        for state in plan.fired:
            action = state.rule.action
            if isinstance(action, Truncate):
                keep = len(data) // 2 if action.keep is None else action.keep
                data = data[:keep]
            elif isinstance(action, Corrupt):
                data = _flip_bits(data, action.bits, state.rng)
        return data

    # -------------------------------------------------------------------- hooks
    async def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        plan = self._plan("put", key, mode=mode)
        await self._before(plan)
        info = await super()._put_bytes(key, data, mode)
        await self._after(plan)
        return info

    async def _put_stream(
        self, key: str, chunks: AsyncIterator[bytes], mode: PutMode
    ) -> ObjectInfo:
        # docstring inherited
        plan = self._plan("put_stream", key, mode=mode)
        await self._before(plan)
        info = await super()._put_stream(key, chunks, mode)
        await self._after(plan)
        return info

    async def _get(self, key: str) -> bytes:
        # docstring inherited
        plan = self._plan("get", key)
        await self._before(plan)
        data = self._transform(plan, await super()._get(key))
        await self._after(plan)
        return data

    async def _get_range(self, key: str, offset: int, length: int) -> bytes:
        # docstring inherited
        plan = self._plan("get_range", key, offset=offset, length=length)
        await self._before(plan)
        data = self._transform(plan, await super()._get_range(key, offset, length))
        await self._after(plan)
        return data

    async def _iter_bytes(self, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        # docstring inherited
        plan = self._plan("iter_bytes", key)
        await self._before(plan)
        corrupt = [s for s in plan.fired if isinstance(s.rule.action, Corrupt)]
        # Several Truncate rules: the strictest wins.
        limit: int | None = None
        halve_first = False
        for state in plan.fired:
            action = state.rule.action
            if isinstance(action, Truncate):
                if action.keep is None:
                    halve_first = True
                else:
                    limit = action.keep if limit is None else min(limit, action.keep)
        sent = 0
        async with aclosing(super()._iter_bytes(key, chunk_size)) as it:
            async for chunk in it:
                if not chunk:
                    continue
                if halve_first:
                    chunk = chunk[: len(chunk) // 2]
                if limit is not None:
                    chunk = chunk[: max(0, limit - sent)]
                if corrupt and chunk:
                    for state in corrupt:
                        assert isinstance(state.rule.action, Corrupt)
                        chunk = _flip_bits(chunk, state.rule.action.bits, state.rng)
                    corrupt = []
                if chunk:
                    sent += len(chunk)
                    yield chunk
                if halve_first or (limit is not None and sent >= limit):
                    break
        await self._after(plan)

    async def _head(self, key: str) -> ObjectInfo:
        # docstring inherited
        plan = self._plan("head", key)
        await self._before(plan)
        info = await super()._head(key)
        await self._after(plan)
        return info

    async def _delete(self, key: str) -> None:
        # docstring inherited
        plan = self._plan("delete", key)
        await self._before(plan)
        await super()._delete(key)
        await self._after(plan)

    async def _list(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        # docstring inherited
        plan = self._plan("list", prefix)
        await self._before(plan)
        async with aclosing(super()._list(prefix)) as it:
            async for info in it:
                yield info
        await self._after(plan)

    async def _list_dirs(self, prefix: str) -> AsyncGenerator[str, None]:
        # docstring inherited
        plan = self._plan("list_dirs", prefix)
        await self._before(plan)
        async with aclosing(super()._list_dirs(prefix)) as it:
            async for d in it:
                yield d
        await self._after(plan)

    async def _abandoned_uploads(
        self, prefix: str, older_than: datetime
    ) -> AsyncGenerator[PendingUpload, None]:
        # docstring inherited
        plan = self._plan("list_uploads", prefix)
        await self._before(plan)
        async with aclosing(super()._abandoned_uploads(prefix, older_than)) as it:
            async for upload in it:
                yield upload
        await self._after(plan)

    async def _abort_upload(self, upload: PendingUpload) -> None:
        # docstring inherited
        plan = self._plan("abort_upload", upload.key)
        await self._before(plan)
        await super()._abort_upload(upload)
        await self._after(plan)


def _flip_bits(data: bytes, bits: int, rng: random.Random) -> bytes:
    total = len(data) * 8
    if total == 0:
        return data
    out = bytearray(data)
    for pos in rng.sample(range(total), min(bits, total)):
        out[pos // 8] ^= 1 << (pos % 8)
    return bytes(out)
