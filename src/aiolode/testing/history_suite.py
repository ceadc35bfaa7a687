"""The history conformance suite: one contract, every kind of history.

A *history* is an append-only, linear sequence of immutable snapshots, each
named by an id: :class:`~aiolode.Dataset` and :class:`~aiolode.Volume` are two,
built on one history layer (SPEC section 4b). While they had an engine each,
the copies drifted apart (REVIEW b1: metadata that did not round-trip, a
healthy volume reported broken under clock skew, the same misuse raising two
different errors). This suite states the contract once and runs it, unchanged,
over every kind, so they cannot drift again:

- ids: format, sort order = commit order, the parent chain; a non-``str`` id is
  :class:`~aiolode.InvalidInputError`, a string that is no snapshot's id
  :class:`~aiolode.SnapshotNotFoundError` (with ``.snapshot_id`` and the owner's
  id); a snapshot object is accepted wherever an id is;
- ``latest``, ``snapshot``, ``snapshots`` (both orders) and ``snapshot_as_of``
  agree, on the write path and on a fresh object; an empty history;
- metadata: every accepted type round-trips, identical on the write and the
  read path, deeply immutable; every refusal is typed and comes before any I/O;
- clocks that disagree still give a monotonic ``created_at`` and a healthy
  ``verify()``; time travel still finds the right snapshot;
- damage: a missing record is a :class:`~aiolode.HistoryGapError` from every
  walk, never a silent stop; a damaged hint never gives a wrong answer;
- lost acknowledgements are the writer's own commit; an unknown outcome is
  said to be unknown, and nothing is ever committed twice;
- concurrent writers (tasks on one object, objects on one store) make one
  linear chain; cancellation at every store call of a commit is clean;
- ``watch()``: backfill then follow, resume exactly after a cursor, bounded
  idle cost.

Subclass :class:`HistoryConformance` in a pytest module, parametrised by the
history and snapshot types (``class TestVolumeHistory(HistoryConformance[Volume,
VolumeSnapshot])``), and implement its small adapter (the abstract methods and
:attr:`~HistoryConformance.kind` / :attr:`~HistoryConformance.id_pattern`): how
to open a history on a store, stage and commit one snapshot, read one back,
and where its records and hint live (backdoors for damage injection).

The tests take a ``store`` fixture (an opened, empty :class:`~aiolode.Store`;
provide it in a conftest to run the suite over several kinds of store, or on
the class) and an ``anyio_backend`` fixture (parametrise it over ``"asyncio"``
and ``"trio"``). A class named ``Test*`` that lacks part of the adapter is
refused when it is defined, so the module fails to import instead of the suite
passing by never running.
"""

from __future__ import annotations

import abc
import itertools
import math
import pickle
import re
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import anyio
import pytest

from .._history import _log as _history_log
from .._retry import Retry
from ..errors import (
    HistoryGapError,
    InvalidInputError,
    ManifestFormatError,
    NoSnapshotsError,
    NotFoundError,
    SnapshotNotFoundError,
    StorageError,
)
from ._counting import CountingStore
from ._faults import Call, Fail, FaultInjectingStore, Hook, LoseAck, Rule

if TYPE_CHECKING:
    from ..store import Store
    from ..verify import VerifyReport

__all__ = (
    "History",
    "HistoryConformance",
    "HistorySnapshot",
)


class HistorySnapshot(Protocol):
    """What the suite reads of a snapshot (``Snapshot``, ``VolumeSnapshot``)."""

    @property
    def id(self) -> str:
        """The snapshot id."""

    @property
    def parent_id(self) -> str | None:
        """The previous snapshot's id (``None`` for the first)."""

    @property
    def created_at(self) -> datetime:
        """Commit time, never earlier than the parent's."""

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The caller's metadata, deeply immutable."""


SnapT = TypeVar("SnapT", bound=HistorySnapshot)
"""The snapshot type of the history under test."""


class History(Protocol[SnapT]):
    """The read and follow API every history offers (``Dataset``, ``Volume``)."""

    @property
    def id(self) -> str:
        """The owner's id (dataset id, volume id)."""

    async def latest(self) -> SnapT:
        """The newest snapshot."""

    async def snapshot(self, snapshot: str | SnapT) -> SnapT:
        """The snapshot an id (or a snapshot object) names."""

    def snapshots(self, *, newest_first: bool = False) -> AsyncGenerator[SnapT, None]:
        """Every snapshot, oldest first (or newest first)."""

    async def snapshot_as_of(self, when: datetime) -> SnapT:
        """The newest snapshot committed at or before ``when``."""

    def watch(
        self, after: str | SnapT | None = None, *, poll_interval: float = 1.0
    ) -> AsyncGenerator[SnapT, None]:
        """Every snapshot after ``after``, once, in order, forever."""

    async def verify(self, snapshot_id: str | None = None) -> VerifyReport:
        """An integrity report."""


H = TypeVar("H", bound="History[Any]")
"""The history type under test."""

#: How long any single wait in the suite may take before it counts as a hang.
_PATIENCE = 30.0

#: Non-ASCII decimal digits: ``int()`` and ``re``'s ``\d`` accept them, ids must not.
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


# --------------------------------------------------------------------- metadata
def _deep(depth: int, leaf: Any, wrap: Callable[[Any], Any]) -> Any:
    value = leaf
    for _ in range(depth):
        value = wrap(value)
    return value


def _accepted_metadata() -> dict[str, Any]:
    """One value of every type metadata must accept (a fresh copy per call)."""
    return {
        "text": 'crawl ünïcödé 🚀 \u2028 \x00 \\ "quoted"',
        "empty": "",
        "int": 42,
        "negative": -7,
        "zero": 0,
        "big": 2**100,
        "big_negative": -(2**80) - 1,
        "float": 0.1,
        "negative_zero": -0.0,
        "tiny": 5e-324,
        "huge": 1.7976931348623157e308,
        "true": True,
        "false": False,
        "none": None,
        "list": [1, "two", None, 3.5],
        "tuple": (1, 2),
        "empty_list": [],
        "empty_map": {},
        "nested": {"a": [{"b": [1, {"c": None}]}], "": "empty key", "$x": "dollar key"},
        "tag_lookalike": {"$datetime": "not a datetime"},
        "map_lookalike": {"$map": {"$bytes": 1}},
        "deep": _deep(32, "bottom", lambda v: {"d": v}),
        "at": datetime(2026, 11, 30, 2, 35, 0, 123456, tzinfo=UTC),
        "at_offset": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        "day": date(2026, 11, 30),
        "uuid": uuid.UUID("7d444840-9dc0-11d1-b245-5ffdce74fad2"),
        "decimal": Decimal("1.10"),
        "decimal_huge": Decimal("-1.5E+1000"),
        "bytes": b"\x00\xff\x80",
        "bytearray": bytearray(b"array"),
        "memoryview": memoryview(b"xxview")[2:],
        "mixed": [date(2020, 1, 1), {"u": uuid.UUID(int=1)}, (b"b", Decimal("0"))],
    }


def _canonical(value: Any) -> Any:
    """What a reader must see for a metadata value written as ``value``: lists and
    tuples alike as sequences, bytes-likes as bytes, every leaf tagged with its
    type (so that ``1``, ``1.0`` and ``True`` stay apart)."""
    if isinstance(value, Mapping):
        return ("map", {k: _canonical(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return ("seq", tuple(_canonical(v) for v in value))
    if isinstance(value, bytes | bytearray | memoryview):
        return (bytes, bytes(value))
    if isinstance(value, float) and math.copysign(1.0, value) < 0 and value == 0:
        return (float, "-0.0")
    return (type(value), value)


def _exact(value: Any) -> Any:
    """``value`` with every container and leaf tagged with its exact type: two
    values are interchangeable only if these are equal."""
    if isinstance(value, Mapping):
        return (type(value), {k: _exact(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return (type(value), tuple(_exact(v) for v in value))
    if isinstance(value, datetime):
        return (type(value), value, value.utcoffset())
    return (type(value), value)


def _cyclic_mapping() -> dict[str, Any]:
    inner: dict[str, Any] = {"x": 1}
    inner["self"] = inner
    return {"outer": inner}


def _cyclic_list() -> dict[str, Any]:
    inner: list[Any] = [1]
    inner.append(inner)
    return {"outer": inner}


#: Metadata every history must refuse with InvalidInputError before any I/O
#: (factories: some values cannot be built once and shared, or printed).
REFUSED_METADATA: dict[str, Callable[[], Any]] = {
    "list-not-mapping": lambda: [("a", 1)],
    "str-not-mapping": lambda: "a=1",
    "int-not-mapping": lambda: 42,
    "int-key": lambda: {1: "one"},
    "nested-int-key": lambda: {"a": [{2: "b"}]},
    "tuple-key": lambda: {("a",): 1},
    "bytes-key": lambda: {b"k": 1},
    "none-key": lambda: {None: 1},
    "nan": lambda: {"x": float("nan")},
    "infinity": lambda: {"x": float("inf")},
    "nested-negative-infinity": lambda: {"a": [1, {"b": float("-inf")}]},
    "naive-datetime": lambda: {"at": datetime(2026, 1, 1, 12, 0)},
    "nested-naive-datetime": lambda: {"a": ({"at": datetime(2026, 1, 1)},)},
    "time-of-day": lambda: {"t": time(12, 30)},
    "set": lambda: {"s": {1, 2}},
    "frozenset": lambda: {"s": frozenset({"a"})},
    "object": lambda: {"o": object()},
    "complex": lambda: {"c": 1j},
    "type": lambda: {"t": int},
    "lone-surrogate-value": lambda: {"s": "\ud800"},
    "lone-surrogate-key": lambda: {"\udfff": 1},
    "nested-lone-surrogate": lambda: {"a": ["fine", {"b": "x\ud83dy"}]},
    "cycle-through-mapping": _cyclic_mapping,
    "cycle-through-list": _cyclic_list,
    "10000-deep-mappings": lambda: {"deep": _deep(10_000, 1, lambda v: {"d": v})},
    "10000-deep-lists": lambda: {"deep": _deep(10_000, 1, lambda v: [v])},
    "over-the-size-limit": lambda: {"x": "a" * 100_000},
    "over-the-size-limit-in-keys": lambda: {f"key-{i:06d}": None for i in range(20_000)},
}


def _mutations() -> dict[str, Callable[[Any], object]]:
    """Ways a caller may try to change metadata a snapshot holds."""
    return {
        "setitem": lambda m: m.__setitem__("new", 1),
        "delitem": lambda m: m.__delitem__("list"),
        "update": lambda m: m.update({"new": 1}),
        "pop": lambda m: m.pop("list"),
        "popitem": lambda m: m.popitem(),
        "clear": lambda m: m.clear(),
        "setdefault": lambda m: m.setdefault("new", 1),
        "ior": lambda m: m.__ior__({"new": 1}),
        "nested-setitem": lambda m: m["map"].__setitem__("k", "changed"),
        "deep-setitem": lambda m: m["deep"]["a"]["b"][0].__setitem__("c", 2),
        "nested-clear": lambda m: m["map"].clear(),
        "list-append": lambda m: m["list"].append(2),
        "list-setitem": lambda m: m["list"].__setitem__(0, 9),
    }


# ------------------------------------------------------------------------ helpers
async def _keys(store: Store) -> set[str]:
    async with aclosing(store.list()) as it:
        return {info.key async for info in it}


async def _take(agen: AsyncGenerator[SnapT, None], n: int) -> list[SnapT]:
    """The first ``n`` items of ``agen`` (then closed); fails after ``_PATIENCE`` s."""
    out: list[SnapT] = []
    with anyio.fail_after(_PATIENCE):
        async with aclosing(agen) as it:
            async for item in it:
                out.append(item)
                if len(out) == n:
                    break
    return out


async def _raises(
    expected: type[BaseException] | tuple[type[BaseException], ...],
    call: Awaitable[object],
    what: object,
) -> BaseException:
    """The ``expected`` error ``call`` raises (any other propagates); fails
    naming ``what`` when it raises none."""
    try:
        result = await call
    except expected as exc:
        return exc
    raise AssertionError(f"{what!r}: expected {expected}, got {result!r}")


async def _all(agen: AsyncGenerator[SnapT, None]) -> list[SnapT]:
    async with aclosing(agen) as it:
        return [s async for s in it]


def _same(a: HistorySnapshot, b: HistorySnapshot) -> None:
    """Assert that two snapshot objects describe the same commit, identically."""
    assert (a.id, a.parent_id, a.created_at) == (b.id, b.parent_id, b.created_at)
    assert _exact(a.metadata) == _exact(b.metadata), (a.id, a.metadata, b.metadata)


def _linear(snaps: Sequence[HistorySnapshot]) -> None:
    """Assert one linear chain: first parent None, each parent the previous id,
    ids increasing, created_at never decreasing."""
    assert snaps, "no snapshots"
    assert snaps[0].parent_id is None
    for prev, cur in itertools.pairwise(snaps):
        assert cur.parent_id == prev.id, (prev.id, cur.id, cur.parent_id)
        assert cur.id > prev.id, (prev.id, cur.id)
        assert cur.created_at >= prev.created_at, (prev.id, cur.id)


def _clock_class(now: Callable[[], datetime]) -> type[datetime]:
    """A ``datetime`` whose ``now()`` answers ``now()`` (in the zone asked for)."""

    class SkewedDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> SkewedDatetime:
            t = now()
            if tz is not None:
                t = t.astimezone(tz)
            return cls.combine(t.date(), t.timetz())

    return SkewedDatetime


class HistoryConformance(abc.ABC, Generic[H, SnapT]):
    """Conformance tests for one kind of history; see the module docstring.

    Raises
    ------
    TypeError
        When a ``Test*`` subclass is defined without part of the adapter.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    #: ``"dataset"`` or ``"volume"``: errors name the owner in ``<kind>_id``.
    kind: ClassVar[str]
    #: A regular expression every snapshot id fully matches.
    id_pattern: ClassVar[str]
    #: The error every read of a history never written raises (a
    #: NoSnapshotsError subclass), or ``None`` when such a history is simply
    #: empty (``latest()`` raises NoSnapshotsError, ``snapshots()`` yields
    #: nothing, ``snapshot(id)`` raises SnapshotNotFoundError).
    never_written_error: ClassVar[type[NoSnapshotsError] | None] = None
    #: Strings that are ids of no snapshot of this kind, beyond the generic ones
    #: (typically ids of the other kinds).
    extra_malformed_ids: ClassVar[tuple[str, ...]] = ()
    #: Concurrent writers in the concurrency tests.
    writers: ClassVar[int] = 8
    #: ``poll_interval`` of the watchers the suite starts.
    poll_interval: ClassVar[float] = 0.02
    #: The retry policy :meth:`open_history` must pass on: patient enough for
    #: :attr:`writers` racing writers and quick to back off. Tests that make a
    #: store fail every retry set a shorter one on the test instance.
    retry: Retry = Retry(attempts=16, base_delay=0.001, max_delay=0.01)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("Test"):
            return  # a base for other suites: checked when a Test* class is defined
        inherited = {
            n for base in cls.__mro__[1:] for n in getattr(base, "__abstractmethods__", ())
        }
        missing = sorted(
            n for n in inherited if getattr(getattr(cls, n, None), "__isabstractmethod__", False)
        )
        missing += [a for a in ("kind", "id_pattern") if not isinstance(getattr(cls, a, None), str)]
        if missing:
            raise TypeError(
                f"{cls.__qualname__} runs the history conformance suite but does not "
                f"provide {', '.join(missing)}"
            )

    # ------------------------------------------------------------------- adapter
    @abc.abstractmethod
    def open_history(self, store: Store, name: str) -> H:
        """A history object named ``name`` on ``store`` (no I/O).

        Every call returns a new object, as another task or process would open
        it; objects with the same name share one history.
        """

    @abc.abstractmethod
    async def stage(self, history: H) -> object:
        """Prepare one commit's content; I/O is allowed (a volume stages a block).

        Each call prepares content that can be committed alongside (or after)
        any other staged for the same history: disjoint, never a conflict.
        """

    @abc.abstractmethod
    async def commit(self, history: H, staged: object, metadata: Any) -> SnapT:
        """Commit ``staged`` (from :meth:`stage`) with ``metadata`` as one snapshot.

        Pass ``metadata`` through unchanged, whatever it is: refusing bad
        metadata is the history's job, under test.
        """

    @abc.abstractmethod
    async def read(self, history: H, snapshot: object) -> object:
        """Read the content of the snapshot that ``snapshot`` (an id, a snapshot
        object, or anything a caller might pass) designates, through the
        history's own read API (e.g. ``Dataset.read``, ``Volume.read_at``)."""

    @abc.abstractmethod
    def record_key(self, history: H, seq: int) -> str:
        """The store key of record ``seq`` (1-based) of ``history``'s log."""

    @abc.abstractmethod
    def hint_key(self, history: H) -> str:
        """The store key of ``history``'s latest-sequence hint."""

    @abc.abstractmethod
    def snapshot_id_at(self, seq: int) -> str:
        """The id of the (first) snapshot that record ``seq`` commits."""

    def unknown_ids(self, committed: Sequence[SnapT]) -> list[str]:
        """Well-formed ids no committed snapshot has (``committed``: all of them,
        one record each). Override to add ids of the kind's own shape."""
        return [self.snapshot_id_at(len(committed) + 1), self.snapshot_id_at(10**9)]

    def skew_clock(self, monkeypatch: pytest.MonkeyPatch, now: Callable[[], datetime]) -> None:
        """Make every commit read ``now()`` as the current time.

        The default patches the history layer's clock, which both built-in
        histories use; override it for a history that keeps time elsewhere.
        """
        monkeypatch.setattr(_history_log, "datetime", _clock_class(now))

    # ------------------------------------------------------------- conveniences
    async def commit_one(self, history: H, metadata: Any = None) -> SnapT:
        """Stage and commit one snapshot."""
        return await self.commit(history, await self.stage(history), metadata)

    async def commit_many(self, history: H, n: int) -> list[SnapT]:
        """Commit ``n`` snapshots one after the other, with metadata ``{"i": i}``."""
        return [await self.commit_one(history, {"i": i}) for i in range(n)]

    def _owner(self, err: BaseException) -> object:
        return getattr(err, f"{self.kind}_id", None)

    # ======================================================================= ids
    async def test_ids_format_order_and_chain(self, store: Store) -> None:
        h = self.open_history(store, "ids")
        snaps = await self.commit_many(h, 4)
        for s in snaps:
            assert isinstance(s.id, str)
            assert re.fullmatch(self.id_pattern, s.id), s.id
        assert [s.id for s in snaps] == sorted(s.id for s in snaps)
        assert len({s.id for s in snaps}) == 4
        assert snaps[0].id == self.snapshot_id_at(1)
        _linear(snaps)
        walked = await _all(self.open_history(store, "ids").snapshots())
        assert [s.id for s in walked] == [s.id for s in snaps]

    async def test_a_non_str_id_is_invalid_input(self, store: Store) -> None:
        h = self.open_history(store, "ids")
        real = await self.commit_one(h)
        fresh = self.open_history(store, "ids")
        for bad in (42, 1, 1.0, None, True, real.id.encode(), [real.id], (real.id,), uuid.uuid4()):
            err = await _raises(InvalidInputError, fresh.snapshot(bad), bad)
            assert not isinstance(err, NotFoundError), repr(bad)
            await _raises(InvalidInputError, self.read(fresh, bad), bad)
            if bad is not None:  # watch(after=None) means "from the start"
                w = fresh.watch(after=bad, poll_interval=self.poll_interval)
                await _raises(InvalidInputError, _take(w, 1), bad)

    def _malformed(self, real: str) -> list[str]:
        return [
            "",
            " ",
            "latest",
            "HEAD",
            "1",
            "-1",
            "0",
            "0x1",
            "../" + real,
            real + "/",
            " " + real,
            real + " ",
            real + "\n",
            real[:-1],
            real + "0",
            "0" + real,
            real.replace("0", "O"),
            real + "\x00",
            "\ud800" + real,
            "9" * 5000,
            self.snapshot_id_at(0),
            *self.extra_malformed_ids,
        ]

    async def test_a_malformed_id_is_not_found(self, store: Store) -> None:
        h = self.open_history(store, "ids")
        real = (await self.commit_one(h)).id
        fresh = self.open_history(store, "ids")
        for bad in self._malformed(real):
            with pytest.raises(SnapshotNotFoundError) as ei:
                await fresh.snapshot(bad)
            assert self._owner(ei.value) == fresh.id, repr(bad)
            assert isinstance(ei.value.snapshot_id, str), repr(bad)
            assert bad.startswith(ei.value.snapshot_id), repr(bad)
            with pytest.raises(SnapshotNotFoundError):
                await self.read(fresh, bad)
            with pytest.raises(SnapshotNotFoundError):
                await _take(fresh.watch(after=bad, poll_interval=self.poll_interval), 1)

    async def test_an_id_spelled_with_other_digits_is_not_found(self, store: Store) -> None:
        # ``int()`` and ``re``'s ``\d`` take any Unicode decimal digit: an id
        # parsed with them names snapshot 1 in Arabic-Indic or fullwidth digits.
        h = self.open_history(store, "ids")
        real = (await self.commit_one(h)).id
        for bad in (real.translate(_ARABIC_INDIC), real.translate(_FULLWIDTH)):
            await _raises(SnapshotNotFoundError, h.snapshot(bad), bad)
            await _raises(SnapshotNotFoundError, self.read(h, bad), bad)

    async def test_an_unknown_id_is_not_found(self, store: Store) -> None:
        h = self.open_history(store, "ids")
        snaps = await self.commit_many(h, 2)
        fresh = self.open_history(store, "ids")
        for sid in self.unknown_ids(snaps):
            assert re.fullmatch(self.id_pattern, sid), sid
            with pytest.raises(SnapshotNotFoundError) as ei:
                await fresh.snapshot(sid)
            assert ei.value.snapshot_id == sid
            assert self._owner(ei.value) == fresh.id
            with pytest.raises(SnapshotNotFoundError):
                await self.read(fresh, sid)
            with pytest.raises(SnapshotNotFoundError):
                await _take(fresh.watch(after=sid, poll_interval=self.poll_interval), 1)

    async def test_a_snapshot_object_is_accepted_wherever_an_id_is(self, store: Store) -> None:
        h = self.open_history(store, "ids")
        snaps = await self.commit_many(h, 3)
        fresh = self.open_history(store, "ids")
        for s in snaps:
            _same(await fresh.snapshot(s), s)
            assert await self.read(fresh, s) == await self.read(fresh, s.id)
        got = await _take(fresh.watch(after=snaps[0], poll_interval=self.poll_interval), 2)
        assert [s.id for s in got] == [s.id for s in snaps[1:]]

    async def test_a_snapshot_of_another_history_is_refused(self, store: Store) -> None:
        mine = self.open_history(store, "mine")
        other = self.open_history(store, "other")
        await self.commit_one(mine)
        foreign = await self.commit_one(other)
        # Same id, same kind, another owner: never silently the wrong snapshot.
        with pytest.raises(InvalidInputError):
            await mine.snapshot(foreign)
        with pytest.raises(InvalidInputError):
            await self.read(mine, foreign)
        with pytest.raises(InvalidInputError):
            await _take(mine.watch(after=foreign, poll_interval=self.poll_interval), 1)

    # ================================================================= reads agree
    async def test_latest_snapshot_snapshots_and_as_of_agree(self, store: Store) -> None:
        h = self.open_history(store, "agree")
        snaps = await self.commit_many(h, 5)
        _same(await h.latest(), snaps[-1])
        fresh = self.open_history(store, "agree")
        _same(await fresh.latest(), snaps[-1])
        for s in snaps:
            _same(await fresh.snapshot(s.id), s)
        oldest = await _all(self.open_history(store, "agree").snapshots())
        newest = await _all(self.open_history(store, "agree").snapshots(newest_first=True))
        assert len(oldest) == len(newest) == len(snaps)
        for a, b, c in zip(oldest, reversed(newest), snaps, strict=True):
            _same(a, c)
            _same(b, c)
        timed = self.open_history(store, "agree")
        for s in snaps:
            # The newest snapshot committed at or before s.created_at: s, or a
            # later one committed within the same microsecond.
            want = [t for t in snaps if t.created_at <= s.created_at][-1]
            _same(await timed.snapshot_as_of(s.created_at), want)
        _same(await timed.snapshot_as_of(datetime.now(UTC) + timedelta(days=1)), snaps[-1])
        far = timezone(timedelta(hours=-12))
        _same(await timed.snapshot_as_of(datetime.max.replace(tzinfo=far)), snaps[-1])
        with pytest.raises(SnapshotNotFoundError):
            await timed.snapshot_as_of(datetime.min.replace(tzinfo=UTC))
        with pytest.raises(SnapshotNotFoundError) as ei:
            await timed.snapshot_as_of(snaps[0].created_at - timedelta(microseconds=1))
        assert self._owner(ei.value) == timed.id
        with pytest.raises(InvalidInputError):
            await timed.snapshot_as_of(datetime(2026, 1, 1))
        with pytest.raises(InvalidInputError):
            await timed.snapshot_as_of("2026-01-01T00:00:00+00:00")  # type: ignore[arg-type]

    async def test_an_empty_history(self, store: Store) -> None:
        h = self.open_history(store, "empty")
        err = self.never_written_error
        with pytest.raises(err or NoSnapshotsError) as e1:
            await h.latest()
        assert self._owner(e1.value) == h.id
        if err is None:
            assert await _all(h.snapshots()) == []
            assert await _all(h.snapshots(newest_first=True)) == []
            with pytest.raises(SnapshotNotFoundError):
                await h.snapshot(self.snapshot_id_at(1))
        else:
            assert issubclass(err, NoSnapshotsError)
            for newest_first in (False, True):
                with pytest.raises(err):
                    await _all(h.snapshots(newest_first=newest_first))
            with pytest.raises(err):
                await h.snapshot(self.snapshot_id_at(1))
        with pytest.raises(err or NoSnapshotsError):
            await h.snapshot_as_of(datetime.now(UTC))
        assert await _keys(store) == set(), "reading an empty history wrote something"

    async def test_watch_on_an_empty_history_waits_for_the_first_commit(self, store: Store) -> None:
        got: list[SnapT] = []

        async def follow() -> None:
            w = self.open_history(store, "first")
            got.extend(await _take(w.watch(poll_interval=self.poll_interval), 2))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(5 * self.poll_interval)
            h = self.open_history(store, "first")
            snaps = await self.commit_many(h, 2)
        assert [s.id for s in got] == [s.id for s in snaps]

    # ==================================================================== metadata
    async def test_metadata_round_trips_every_accepted_type(self, store: Store) -> None:
        h = self.open_history(store, "meta")
        written = await self.commit_one(h, _accepted_metadata())
        want = _canonical(_accepted_metadata())
        assert _canonical(written.metadata) == want
        # The write path and every read path hand back the same values, of the same types.
        fresh = self.open_history(store, "meta")
        for read_back in (
            await fresh.latest(),
            await fresh.snapshot(written.id),
            (await _all(self.open_history(store, "meta").snapshots()))[0],
            await self.open_history(store, "meta").snapshot_as_of(written.created_at),
        ):
            _same(read_back, written)
            assert _canonical(read_back.metadata) == want
        # Plain values too: it pickles, and compares equal to the plain input.
        plain = {"a": 1, "b": "x", "c": None, "d": {"e": True}}
        snap = await self.commit_one(h, plain)
        assert snap.metadata == plain
        assert (await self.open_history(store, "meta").latest()).metadata == plain
        assert pickle.loads(pickle.dumps(snap.metadata)) == plain
        # A snapshot's metadata is valid metadata: it can be passed on as it is.
        again = await self.commit_one(h, written.metadata)
        assert _exact(again.metadata) == _exact(written.metadata)

    @pytest.mark.parametrize("empty", [None, {}])
    async def test_no_metadata_is_an_empty_mapping(self, store: Store, empty: object) -> None:
        h = self.open_history(store, "meta")
        written = await self.commit_one(h, empty)
        assert dict(written.metadata) == {}
        assert dict((await self.open_history(store, "meta").latest()).metadata) == {}

    async def test_metadata_is_deeply_immutable(self, store: Store) -> None:
        given: dict[str, Any] = {
            "list": [1],
            "map": {"k": "v"},
            "deep": {"a": {"b": [{"c": 1}]}},
        }
        h = self.open_history(store, "meta")
        snap = await self.commit_one(h, given)
        before = _exact(snap.metadata)
        # Changing what the caller passed changes nothing the library holds.
        given["list"].append(2)
        given["map"]["k"] = "changed"
        given["deep"]["a"]["b"][0]["c"] = 2
        given["new"] = 1
        assert _exact(snap.metadata) == before
        for name, mutate in _mutations().items():
            for m in (snap.metadata, (await self.open_history(store, "meta").latest()).metadata):
                try:
                    mutate(m)
                except (TypeError, AttributeError):
                    continue
                raise AssertionError(f"{name} changed snapshot metadata")
        with pytest.raises(AttributeError):
            setattr(snap, "metadata", {})  # noqa: B010
        copy = dict(snap.metadata)  # a copy is the caller's own
        copy["new"] = 1
        assert _exact(snap.metadata) == before
        assert _exact((await h.snapshot(snap.id)).metadata) == before
        assert _exact((await h.latest()).metadata) == before
        assert _exact((await self.open_history(store, "meta").latest()).metadata) == before

    async def test_bad_metadata_is_refused_before_any_io(self, store: Store) -> None:
        counting = CountingStore(store)
        h = self.open_history(counting, "meta")
        first = await self.commit_one(h)
        staged = await self.stage(h)
        keys = await _keys(store)
        wrong = await self._refusals(counting, h, staged, REFUSED_METADATA)
        assert not wrong, wrong
        assert await _keys(store) == keys
        fresh = self.open_history(store, "meta")
        _same(await fresh.latest(), first)
        assert len(await _all(fresh.snapshots())) == 1
        # The object is still usable: the same staged content commits fine.
        second = await self.commit(h, staged, {"ok": True})
        assert second.parent_id == first.id

    async def test_metadata_without_a_faithful_form_is_refused_typed(self, store: Store) -> None:
        """Values Python accepts but cannot carry through JSON and back unchanged:
        an int longer than ``int()``'s default limit (4300 digits: neither
        ``json.dumps`` nor ``json.loads`` takes it) and NaN decimals (NaN is never
        equal to itself; a signalling NaN even makes ``==`` and ``hash`` raise).
        They must be refused like a float NaN: typed, before any I/O."""
        counting = CountingStore(store)
        h = self.open_history(counting, "meta")
        staged = await self.stage(h)
        cases: dict[str, Callable[[], Any]] = {
            "int-of-4301-digits": lambda: {"v": 10**4300},
            "negative-int-of-5000-digits": lambda: {"v": -(10**4999)},
            "decimal-nan": lambda: {"v": Decimal("NaN")},
            "decimal-signalling-nan": lambda: {"v": Decimal("sNaN")},
            "nested-decimal-nan": lambda: {"v": [{"d": Decimal("-NaN")}]},
        }
        wrong = await self._refusals(counting, h, staged, cases)
        assert not wrong, wrong

    async def _refusals(
        self,
        counting: CountingStore[Any],
        history: H,
        staged: object,
        cases: Mapping[str, Callable[[], Any]],
    ) -> dict[str, str]:
        """Commit each case's metadata; return how each one that was not refused
        with InvalidInputError before any store call was handled instead."""
        wrong: dict[str, str] = {}
        for case, make in cases.items():
            with counting.measure() as m:
                try:
                    await self.commit(history, staged, make())
                except InvalidInputError:
                    pass
                except Exception as exc:  # reported with the others, by the caller
                    wrong[case] = f"raised {type(exc).__name__}: {exc}"[:160]
                else:
                    wrong[case] = "accepted"
            if m.counts.total_calls and case not in wrong:
                wrong[case] = f"refused after {m.counts.total_calls} store calls"
            if case in wrong:
                staged = await self.stage(history)  # it may have been committed
        return wrong

    # ================================================================ clock skew
    @pytest.mark.parametrize(
        "schedule",
        [
            # (writer, its clock's offset in seconds from the true time)
            (("a", 0), ("b", -3600), ("a", 0), ("b", -3600)),
            (("a", 3600), ("b", 0), ("a", 3600), ("b", 0)),
            (("a", 0), ("a", -86400), ("b", 60), ("a", -1), ("b", -7200), ("a", 0)),
        ],
        ids=["one-writer-behind", "one-writer-ahead", "clocks-jumping-back"],
    )
    async def test_skewed_clocks_keep_created_at_monotonic(
        self,
        store: Store,
        monkeypatch: pytest.MonkeyPatch,
        schedule: tuple[tuple[str, int], ...],
    ) -> None:
        offset = [0.0]
        true_now = datetime.now
        self.skew_clock(monkeypatch, lambda: true_now(UTC) + timedelta(seconds=offset[0]))
        writers = {"a": self.open_history(store, "skew"), "b": self.open_history(store, "skew")}
        committed = []
        for i, (who, seconds) in enumerate(schedule):
            offset[0] = seconds
            committed.append(await self.commit_one(writers[who], {"i": i, "by": who}))
        offset[0] = 0
        fresh = self.open_history(store, "skew")
        snaps = await _all(fresh.snapshots())
        assert [s.id for s in snaps] == [s.id for s in committed]
        _linear(snaps)  # created_at never decreases along the history
        for s, c in zip(snaps, committed, strict=True):
            _same(s, c)
        report = await self.open_history(store, "skew").verify()
        assert report.ok, report.problems
        # Time travel over the clamped times: the newest snapshot at or before t.
        timed = self.open_history(store, "skew")
        probes = sorted(
            {s.created_at + timedelta(microseconds=d) for s in snaps for d in (-1, 0, 1)}
        )
        for t in probes:
            want = [s for s in snaps if s.created_at <= t]
            if not want:
                with pytest.raises(SnapshotNotFoundError):
                    await timed.snapshot_as_of(t)
            else:
                assert (await timed.snapshot_as_of(t)).id == want[-1].id, t

    # ====================================================================== damage
    async def test_a_missing_record_is_a_gap_for_every_walk(self, store: Store) -> None:
        h = self.open_history(store, "gap")
        snaps = await self.commit_many(h, 6)
        await store.delete(self.record_key(h, 2))
        fresh = self.open_history(store, "gap")
        _same(await fresh.latest(), snaps[-1])  # the head is still found
        _same(await fresh.snapshot(snaps[3].id), snaps[3])  # and what exists is readable
        for newest_first in (False, True):
            with pytest.raises(HistoryGapError) as ei:
                await _all(self.open_history(store, "gap").snapshots(newest_first=newest_first))
            assert isinstance(ei.value, ManifestFormatError)
            assert ei.value.sequence == 2
            assert ei.value.key == self.record_key(h, 2)
            assert self._owner(ei.value) == h.id
        with pytest.raises(HistoryGapError):
            await self.open_history(store, "gap").snapshot_as_of(snaps[0].created_at)
        with pytest.raises(SnapshotNotFoundError):
            await self.open_history(store, "gap").snapshot(snaps[1].id)
        got: list[SnapT] = []

        async def follow() -> None:
            with anyio.fail_after(_PATIENCE):
                watcher = self.open_history(store, "gap").watch(poll_interval=0.005)
                async with aclosing(watcher) as it:
                    async for s in it:
                        got.append(s)

        with pytest.raises(HistoryGapError):
            await follow()
        assert [s.id for s in got] == [snaps[0].id]

    async def test_whichever_record_is_missing_no_one_builds_on_the_hole(
        self, store: Store
    ) -> None:
        """A hole below the head must not make ``latest()`` go back in time, nor
        let a writer commit into it (that would rewrite history: the hole
        vanishes from every walk, and the next record's parent becomes another
        commit). Each record below the head is removed in turn; the hint is intact."""
        n = 5
        for k in range(1, n):
            name = f"hole{k}"
            h = self.open_history(store, name)
            snaps = await self.commit_many(h, n)
            await store.delete(self.record_key(h, k))
            try:
                head = await self.open_history(store, name).latest()
            except HistoryGapError:
                pass
            else:
                assert head.id == snaps[-1].id, f"record {k} missing: latest() is {head.id}"
            try:
                new = await self.commit_one(self.open_history(store, name), {"after": k})
            except HistoryGapError:
                continue
            assert new.id > snaps[-1].id, f"record {k} missing: committed {new.id} into the hole"
            with pytest.raises(HistoryGapError):
                await _all(self.open_history(store, name).snapshots())

    async def test_a_damaged_record_is_a_format_error_never_built_upon(self, store: Store) -> None:
        h = self.open_history(store, "bad")
        snaps = await self.commit_many(h, 4)
        await store.put(self.record_key(h, 2), b'{"schema_name": "garbage"', mode="overwrite")
        fresh = self.open_history(store, "bad")
        _same(await fresh.latest(), snaps[-1])
        with pytest.raises(ManifestFormatError) as ei:
            await fresh.snapshot(snaps[1].id)
        assert ei.value.key == self.record_key(h, 2)
        assert self._owner(ei.value) == h.id
        for newest_first in (False, True):
            with pytest.raises(ManifestFormatError):
                await _all(self.open_history(store, "bad").snapshots(newest_first=newest_first))
        new = await self.commit_one(self.open_history(store, "bad"))
        assert new.parent_id == snaps[-1].id
        # The damaged head itself: nothing may be committed on top of it.
        await store.put(self.record_key(h, 6), b"\x00not json", mode="overwrite")
        with pytest.raises(ManifestFormatError):
            await self.commit_one(self.open_history(store, "bad"))
        assert await store.get(self.record_key(h, 6)) == b"\x00not json"
        assert not await store.exists(self.record_key(h, 7))

    async def test_a_damaged_hint_never_gives_a_wrong_answer(self, store: Store) -> None:
        h = self.open_history(store, "hint")
        snaps = await self.commit_many(h, 3)
        damaged: list[bytes | None] = [
            b"",
            b"garbage",
            b"0",
            b"-1",
            b"1",
            b"99999",
            b"18446744073709551616",
            b"{}",
            b"[]",
            b'{"seq": 1}',
            b'{"seq": 2, "owner": "someone-else"}',
            b'{"seq": 99}',
            b'{"seq": true}',
            b"\xff\xfe",
            None,  # no hint at all
        ]
        for hint in damaged:
            if hint is None:
                await store.delete(self.hint_key(h))
            else:
                await store.put(self.hint_key(h), hint, mode="overwrite")
            _same(await self.open_history(store, "hint").latest(), snaps[-1])
            walked = await _all(self.open_history(store, "hint").snapshots())
            assert [s.id for s in walked] == [s.id for s in snaps], hint
            new = await self.commit_one(self.open_history(store, "hint"), {"after": repr(hint)})
            assert new.parent_id == snaps[-1].id, hint
            snaps.append(new)

    # ================================================================= lost acks
    async def test_a_lost_ack_on_the_commit_is_the_writers_own_commit(self, store: Store) -> None:
        faulty = FaultInjectingStore(store)
        h = self.open_history(faulty, "ack")
        first = await self.commit_one(h)
        rule = Rule(op="put", key=self.record_key(h, 2), nth=1, action=LoseAck())
        faulty.add(rule)
        snap = await self.commit_one(h, {"lost": "ack"})  # no error, no conflict
        assert faulty.fired(rule) == 1
        assert snap.parent_id == first.id
        assert dict(snap.metadata) == {"lost": "ack"}
        snaps = await _all(self.open_history(store, "ack").snapshots())
        assert [s.id for s in snaps] == [first.id, snap.id]  # committed exactly once
        report = await self.open_history(store, "ack").verify()
        assert report.ok, report.problems
        assert report.orphans == ()

    @pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
    async def test_a_lost_ack_at_any_put_of_a_commit_commits_once(
        self, store: Store, warm: bool
    ) -> None:
        puts = await self._count_commit_calls(store, warm=warm, ops=("put", "put_stream"))
        assert puts >= 1
        for k in range(1, puts + 1):
            name = f"ack{k}"
            faulty = FaultInjectingStore(store)
            opened = self.open_history(faulty, name)
            first = await self.commit_one(opened)
            writer = opened if warm else self.open_history(faulty, name)
            staged = await self.stage(writer)
            rule = Rule(op=("put", "put_stream"), nth=k, action=LoseAck())
            faulty.add(rule)
            snap = await self.commit(writer, staged, {"k": k})
            assert faulty.fired(rule) == 1, f"put {k} of {puts} never happened"
            faulty.clear()
            snaps = await _all(self.open_history(store, name).snapshots())
            assert [s.id for s in snaps] == [first.id, snap.id], k
            report = await self.open_history(store, name).verify()
            assert report.ok, (k, report.problems)

    async def test_a_landed_commit_reported_as_a_storage_error_keeps_what_it_references(
        self, store: Store
    ) -> None:
        """A record put that took effect, but whose reply is an error that is not
        classified as transient (a generic StorageError: an unmapped backend
        error, a failed directory fsync after the link): the writer cannot know
        it failed, so it must read the slot back before deleting anything the
        record may reference. Deleting them leaves a committed snapshot whose
        objects are gone."""
        faulty = FaultInjectingStore(store)
        h = self.open_history(faulty, "landed")
        first = await self.commit_one(h)
        key = self.record_key(h, 2)
        faulty.add(Rule(op="put", key=key, nth=1, action=LoseAck(error=StorageError)))
        result: SnapT | None = None
        told: StorageError | None = None
        try:
            result = await self.commit_one(h, {"landed": True})
        except StorageError as exc:
            told = exc
        faulty.clear()
        try:
            snaps = await _all(self.open_history(store, "landed").snapshots())
            for s in snaps:
                await self.read(self.open_history(store, "landed"), s.id)
        except NotFoundError as exc:
            raise AssertionError(f"the landed commit's objects were deleted: {exc}") from exc
        # Told an error about a commit that landed: it must not say "failed".
        assert told is None or "unknown" in str(told), f"a landed commit was reported as: {told}"
        assert [s.id for s in snaps] == [first.id, snaps[-1].id]  # it landed, once
        if result is not None:
            _same(result, snaps[1])
        report = await self.open_history(store, "landed").verify()
        assert report.ok, report.problems

    @pytest.mark.parametrize("lands", [True, False], ids=["put-landed", "put-lost"])
    async def test_an_unknown_outcome_is_typed_and_never_doubles(
        self, store: Store, lands: bool
    ) -> None:
        self.retry = Retry(attempts=3, base_delay=0.001, max_delay=0.002)  # every retry fails
        faulty = FaultInjectingStore(store)
        h = self.open_history(faulty, "unknown")
        first = await self.commit_one(h)
        key = self.record_key(h, 2)
        faulty.add(
            Rule(op="put", key=key, nth=1, action=LoseAck() if lands else Fail()),
            Rule(op=("get", "head"), key=key, action=Fail()),  # every read-back fails
        )
        with pytest.raises(StorageError) as ei:
            await self.commit_one(h, {"try": 1})
        assert "unknown" in str(ei.value), ei.value
        assert self._owner(ei.value) == h.id
        faulty.clear()
        snaps = await _all(self.open_history(store, "unknown").snapshots())
        assert snaps[0].id == first.id
        assert len(snaps) == (2 if lands else 1)
        # What may have committed was kept: the history is whole and readable.
        report = await self.open_history(store, "unknown").verify()
        assert report.ok, report.problems
        for s in snaps:
            await self.read(self.open_history(store, "unknown"), s.id)
        # The caller retries (after reading latest(), as the error says): once more.
        again = await self.commit_one(self.open_history(faulty, "unknown"), {"try": 2})
        snaps2 = await _all(self.open_history(store, "unknown").snapshots())
        assert [s.id for s in snaps2] == [*(s.id for s in snaps), again.id]

    # ================================================================ concurrency
    async def test_concurrent_tasks_on_one_object_make_one_chain(self, store: Store) -> None:
        h = self.open_history(store, "tasks")
        await self.commit_one(h, {"i": -1})
        staged = [await self.stage(h) for _ in range(self.writers)]
        got: dict[int, SnapT] = {}

        async def write(i: int) -> None:
            got[i] = await self.commit(h, staged[i], {"i": i})

        async with anyio.create_task_group() as tg:
            for i in range(self.writers):
                tg.start_soon(write, i)
        self._one_chain(await _all(self.open_history(store, "tasks").snapshots()), got)

    async def test_concurrent_objects_on_one_store_make_one_chain(self, store: Store) -> None:
        objects = [self.open_history(store, "objects") for _ in range(self.writers)]
        staged = [await self.stage(h) for h in objects]
        got: dict[int, SnapT] = {}

        async def write(i: int) -> None:
            got[i] = await self.commit(objects[i], staged[i], {"i": i})

        async with anyio.create_task_group() as tg:
            for i in range(self.writers):
                tg.start_soon(write, i)
        self._one_chain(await _all(self.open_history(store, "objects").snapshots()), got)
        report = await self.open_history(store, "objects").verify()
        assert report.ok, report.problems

    def _one_chain(self, snaps: list[SnapT], got: dict[int, SnapT]) -> None:
        _linear(snaps)
        by_id = {s.id: s for s in snaps}
        assert len(by_id) == len(snaps)
        mine = [s for s in snaps if s.metadata.get("i", -1) >= 0]
        assert len(mine) == self.writers == len(got)  # none lost, none twice
        for i, s in got.items():
            assert s.id in by_id, s.id
            assert by_id[s.id].metadata["i"] == i
            _same(by_id[s.id], s)

    # ================================================================ cancellation
    async def _count_commit_calls(
        self, store: Store, *, warm: bool, ops: tuple[str, ...] | None = None
    ) -> int:
        """Store calls (of ``ops``, default all) one commit makes on a history with
        one snapshot: through the object that committed it (``warm``) or a new one."""
        counting = CountingStore(store, record=True)
        name = f"count-{'warm' if warm else 'cold'}"
        h = self.open_history(counting, name)
        await self.commit_one(h)
        writer = h if warm else self.open_history(counting, name)
        staged = await self.stage(writer)
        start = len(counting.calls)
        await self.commit(writer, staged, {"counted": True})
        calls = counting.calls[start:]
        return len([c for c in calls if ops is None or c[0] in ops])

    @pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
    async def test_cancel_at_every_store_call_of_a_commit(self, store: Store, warm: bool) -> None:
        calls = await self._count_commit_calls(store, warm=warm)
        assert calls >= 1
        # One more than counted: that commit runs without being cancelled.
        outcomes = {await self._cancel_at(store, n, warm=warm) for n in range(1, calls + 2)}
        # Every case was exercised: cancelled before the commit point, at or
        # after it, and not at all.
        assert outcomes == {"before", "after", "uncancelled"}, outcomes

    async def _cancel_at(self, store: Store, n: int, *, warm: bool) -> str:
        """Cancel a commit at its ``n``-th store call; check what it left; say
        whether the cancel came before the commit point, after it, or never."""
        name = f"cancel{n}"
        faulty = FaultInjectingStore(store)
        opened = self.open_history(faulty, name)
        first = await self.commit_one(opened)
        writer = opened if warm else self.open_history(faulty, name)
        staged = await self.stage(writer)
        target = self.record_key(writer, 2)
        hint = self.hint_key(writer)
        before = await _keys(store) - {hint}
        scope = anyio.CancelScope()
        seen: dict[str, bool] = {}

        async def cancel(call: Call) -> None:
            # Whether the commit point (the record put) was reached by now.
            seen["reached"] = any(e.op == "put" and e.key == target for e in faulty.log)
            scope.cancel()

        faulty.add(Rule(op="*", nth=n, action=Hook(cancel)))
        result: SnapT | None = None
        with scope:
            result = await self.commit(writer, staged, {"n": n})
        faulty.clear()
        snaps = await _all(self.open_history(store, name).snapshots())
        if seen.get("reached", True):
            # Not cancelled, or cancelled at or after the commit point: the
            # commit happened and the caller was told.
            assert result is not None, f"call {n}: committed, but the caller got nothing"
            assert [s.id for s in snaps] == [first.id, result.id], n
            assert dict(result.metadata) == {"n": n}
            report = await self.open_history(store, name).verify()
            assert report.ok, (n, report.problems)
            return "after" if seen else "uncancelled"
        assert result is None, f"call {n}: cancelled before the commit point, yet {result}"
        assert [s.id for s in snaps] == [first.id], n
        assert await _keys(store) - {hint} == before, f"call {n}: objects left behind"
        return "before"

    # ======================================================================= watch
    async def test_watch_backfills_then_follows(self, store: Store) -> None:
        h = self.open_history(store, "watch")
        old = await self.commit_many(h, 3)
        seen: list[SnapT] = []

        async def follow() -> None:
            w = self.open_history(store, "watch")
            seen.extend(await _take(w.watch(poll_interval=self.poll_interval), 6))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            new = [await self.commit_one(h, {"new": i}) for i in range(3)]
        assert [s.id for s in seen] == [s.id for s in old + new]
        for a, b in zip(seen, old + new, strict=True):
            _same(a, b)

    async def test_watch_finds_commits_of_another_process_by_polling(self, store: Store) -> None:
        # Another store object on the same place: no in-process wake-up reaches it.
        elsewhere = CountingStore(store)
        h = self.open_history(store, "poll")
        await self.commit_one(h)
        seen: list[SnapT] = []

        async def follow() -> None:
            w = self.open_history(elsewhere, "poll")
            seen.extend(await _take(w.watch(poll_interval=self.poll_interval), 3))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            for _ in range(2):
                await anyio.sleep(3 * self.poll_interval)
                await self.commit_one(h)
        assert [s.id for s in seen] == [s.id for s in await _all(h.snapshots())]

    async def test_watch_resumes_exactly_after_a_cursor(self, store: Store) -> None:
        h = self.open_history(store, "cursor")
        snaps = await self.commit_many(h, 5)
        for i, s in enumerate(snaps[:-1]):
            for cursor in (s.id, s):
                w = self.open_history(store, "cursor")
                got = await _take(w.watch(after=cursor, poll_interval=self.poll_interval), 1)
                assert got[0].id == snaps[i + 1].id
        rest = await _take(
            self.open_history(store, "cursor").watch(after=snaps[1].id), len(snaps) - 2
        )
        assert [s.id for s in rest] == [s.id for s in snaps[2:]]
        # After the head: nothing until the next commit, then exactly it.
        later: list[SnapT] = []

        async def follow() -> None:
            w = self.open_history(store, "cursor")
            later.extend(await _take(w.watch(after=snaps[-1], poll_interval=self.poll_interval), 1))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(5 * self.poll_interval)
            assert later == []
            new = await self.commit_one(h)
        assert [s.id for s in later] == [new.id]

    async def test_watch_refuses_a_bad_poll_interval(self, store: Store) -> None:
        h = self.open_history(store, "poll")
        await self.commit_one(h)
        bad_intervals: tuple[Any, ...] = (0, -1, math.nan, math.inf, "1", None, True)
        for bad in bad_intervals:
            w = h.watch(poll_interval=bad)
            await _raises(InvalidInputError, _take(w, 1), bad)

    async def test_watch_idles_at_one_request_per_poll(self, store: Store) -> None:
        h = self.open_history(store, "idle")
        await self.commit_one(h)
        counting = CountingStore(store)
        poll, span = 0.05, 0.6
        watcher = self.open_history(counting, "idle").watch(poll_interval=poll)
        async with aclosing(watcher) as it:
            with anyio.fail_after(_PATIENCE):
                await anext(it)
            with counting.measure() as m:
                with anyio.move_on_after(span):
                    await anext(it)
        calls = m.counts.total_calls
        assert calls <= span / poll + 1, m.counts
        assert calls >= 3, (
            f"an idle watcher that never polls cannot see other processes: {m.counts}"
        )
