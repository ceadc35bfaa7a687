"""FaultInjectingStore: every action behaves as documented, deterministically."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiolode import (
    IfMatch,
    InvalidInputError,
    MemoryStore,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    TransientStorageError,
)
from aiolode.store import FileStore, Store
from aiolode.testing import (
    Call,
    Corrupt,
    CountingStore,
    Crash,
    Delay,
    Fail,
    FaultInjectingStore,
    Hook,
    LoseAck,
    Rule,
    SimulatedCrash,
    Truncate,
)

DATA = bytes(range(256)) * 4  # 1 KiB


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def _drain(
    it: AsyncIterator[Any], out: list[Any], f: Callable[[Any], Any] = lambda x: x
) -> None:
    """Collect items into ``out`` so they are kept when iteration raises."""
    async for item in it:
        out.append(f(item))


def _bit_diff(a: bytes, b: bytes) -> int:
    assert len(a) == len(b)
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


@pytest.fixture(params=["memory", "fs", pytest.param("s3", marks=pytest.mark.s3)])
def inner(request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str) -> Store:
    """The wrapped store: faults must behave the same over every backend."""
    if request.param == "memory":
        return MemoryStore(page_size=3)
    if request.param == "s3":
        store: Store = request.getfixturevalue("s3_store")  # opened, on a fresh bucket
        return store
    return FileStore(tmp_path, page_size=3)


#: For the many small variations whose outcome does not depend on the backend,
#: skip S3 (a fresh bucket costs about half a second).
LOCAL = pytest.mark.parametrize("inner", ["memory", "fs"], indirect=True)


@pytest.fixture
async def counting(inner: Store) -> AsyncIterator[CountingStore]:
    async with CountingStore(inner) as c:
        yield c


def faulty(store: Store, *rules: Rule, seed: int | None = 1) -> FaultInjectingStore:
    return FaultInjectingStore(store, rules, seed=seed)


# --------------------------------------------------------------------------- Fail
async def test_fail_raises_before_the_call(counting: CountingStore) -> None:
    rule = Rule(op="put", action=Fail())
    s = faulty(counting, rule)
    with pytest.raises(TransientStorageError) as ei:
        await s.put("a/b", b"x")
    assert ei.value.key == "a/b"
    assert "injected" in str(ei.value)
    assert counting.total_calls == 0  # nothing reached the inner store
    assert not await counting.exists("a/b")
    assert [(e.op, e.key, e.fired) for e in s.log] == [("put", "a/b", (rule,))]


@LOCAL
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermissionDeniedError("denied", key="k"), PermissionDeniedError),
        (PermissionDeniedError, PermissionDeniedError),
        (OSError, OSError),
        (lambda call: TransientStorageError(f"#{call.index} {call.op}"), TransientStorageError),
    ],
)
async def test_fail_error_specs(counting: CountingStore, error: Any, expected: type) -> None:
    s = faulty(counting, Rule(op="get", action=Fail(error)))
    await counting.put("k", b"v")
    for _ in range(2):  # an instance can be raised repeatedly
        with pytest.raises(expected) as ei:
            await s.get("k")
    if isinstance(ei.value, PermissionDeniedError):
        assert ei.value.key == "k"  # classes get key= when they are aiolode errors
    assert counting.counts["get"] == 0


@LOCAL
async def test_fail_factory_must_return_an_exception(counting: CountingStore) -> None:
    s = faulty(counting, Rule(action=Fail(lambda call: "not an exception")))  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidInputError):
        await s.head("k")


@LOCAL
async def test_nth_key_glob_and_times(counting: CountingStore) -> None:
    second = Rule(op="put", key="data/*", nth=2)
    s = faulty(counting, second)
    await s.put("data/1", b"")
    await s.put("meta/1", b"")  # does not match the glob: not numbered
    with pytest.raises(TransientStorageError):
        await s.put("data/2", b"")
    await s.put("data/3", b"")
    assert s.fired(second) == 1
    assert [e.key for e in s.faults] == ["data/2"]
    assert sorted([i.key async for i in counting.list("")]) == ["data/1", "data/3", "meta/1"]

    s2 = faulty(counting, Rule(op=("get", "head"), nth=(1, 3)), Rule(op="delete", times=2))
    with pytest.raises(TransientStorageError):
        await s2.get("data/1")
    await s2.head("data/1")
    with pytest.raises(TransientStorageError):
        await s2.head("data/1")
    await s2.get("data/1")
    for _ in range(2):
        with pytest.raises(TransientStorageError):
            await s2.delete("data/1")
    await s2.delete("data/1")
    assert not await counting.exists("data/1")


@LOCAL
async def test_glob_star_crosses_slashes_and_lists_match_on_prefix(
    counting: CountingStore,
) -> None:
    s = faulty(counting, Rule(key="ds/*/manifest.json"), Rule(op="list", key="ds/"))
    await s.put("ds/x/data.bin", b"")
    with pytest.raises(TransientStorageError):
        await s.put("ds/snapshots/00001/manifest.json", b"{}")
    with pytest.raises(TransientStorageError):
        [i async for i in s.list("ds/")]
    assert [i.key async for i in s.list("ds/x/")] == ["ds/x/data.bin"]


# ------------------------------------------------------------------------ LoseAck
async def test_lose_ack_applies_then_raises(counting: CountingStore) -> None:
    s = faulty(counting, Rule(op="put", key="*manifest*", nth=1, action=LoseAck()))
    with pytest.raises(TransientStorageError) as ei:
        await s.put("ds/manifest.json", b"commit")
    assert "response was lost" in str(ei.value)
    assert await counting.get("ds/manifest.json") == b"commit"  # it took effect
    # A naive retry now meets its own write: exactly what lost-ack handling must see.
    with pytest.raises(ObjectExistsError):
        await s.put("ds/manifest.json", b"commit")


async def test_lose_ack_on_stream_put_and_cas(counting: CountingStore) -> None:
    s = faulty(counting, Rule(op=("put_stream", "put"), action=LoseAck(PermissionDeniedError)))
    with pytest.raises(PermissionDeniedError):
        await s.put("st", _chunks(b"ab", b"cd"))
    assert await counting.get("st") == b"abcd"
    etag = (await counting.head("st")).etag
    with pytest.raises(PermissionDeniedError):
        await s.put("st", b"v2", mode=IfMatch(etag))
    assert await counting.get("st") == b"v2"
    assert [e.call.mode for e in s.log] == ["create", IfMatch(etag)]


async def test_lose_ack_on_iterators_raises_after_the_last_item(
    counting: CountingStore,
) -> None:
    await counting.put("l/a", b"abc")
    await counting.put("l/b", b"")
    s = faulty(counting, Rule(op=("list", "list_dirs", "iter_bytes"), action=LoseAck()))
    seen: list[str] = []
    with pytest.raises(TransientStorageError):
        await _drain(s.list("l/"), seen, lambda info: info.key)
    assert seen == ["l/a", "l/b"]
    dirs: list[str] = []
    with pytest.raises(TransientStorageError):
        await _drain(s.list_dirs(""), dirs)
    assert dirs == ["l/"]
    chunks: list[bytes] = []
    with pytest.raises(TransientStorageError):
        await _drain(s.iter_bytes("l/a", chunk_size=1), chunks)
    assert b"".join(chunks) == b"abc"


@LOCAL
async def test_fail_on_iterators_raises_at_first_iteration(counting: CountingStore) -> None:
    await counting.put("k", b"abc")
    s = faulty(counting, Rule(op=("list", "iter_bytes", "list_dirs")))
    it = s.iter_bytes("k")
    assert s.log == []  # not iterated yet: no call
    with pytest.raises(TransientStorageError):
        await it.__anext__()
    with pytest.raises(TransientStorageError):
        await s.list().__anext__()
    with pytest.raises(TransientStorageError):
        await s.list_dirs().__anext__()
    assert counting.snapshot().nonzero() == {"put": 1}


# -------------------------------------------------------------------------- Delay
@LOCAL
async def test_delay_sleeps_before_the_call(counting: CountingStore) -> None:
    s = faulty(counting, Rule(op="get", action=Delay(0.25)), Rule(op="get", action=Delay(0)))
    delays: list[float] = []
    reached: list[int] = []

    async def sleep(seconds: float) -> None:
        reached.append(counting.total_calls)
        delays.append(seconds)
        await anyio.lowlevel.checkpoint()

    s._sleep = sleep  # type: ignore[method-assign]
    await counting.put("k", b"v")
    assert await s.get("k") == b"v"
    await s.head("k")
    assert delays == [0.25]  # a zero delay does not sleep
    assert reached == [1]  # slept before the get reached the store (only the put had)


@LOCAL
async def test_cancelled_during_delay_never_reaches_the_store(counting: CountingStore) -> None:
    s = faulty(counting, Rule(action=Delay(3600)))
    with anyio.move_on_after(0.01) as scope:
        await s.put("k", b"v")
    assert scope.cancelled_caught
    assert counting.total_calls == 0


@LOCAL
async def test_delay_then_fail_in_rule_order(counting: CountingStore) -> None:
    s = faulty(counting, Rule(action=Delay(0.001)), Rule(action=Fail(OSError)), Rule(action=Fail()))
    with pytest.raises(OSError):  # the first Fail wins
        await s.head("k")
    assert len(s.log[0].fired) == 3  # every matching rule fired and counted
    assert [type(a).__name__ for a in s.log[0].actions] == ["Delay", "Fail", "Fail"]


# ----------------------------------------------------------------------- Truncate
@LOCAL
@pytest.mark.parametrize(("keep", "expected"), [(None, 512), (0, 0), (10, 10), (5000, 1024)])
async def test_truncate_reads(counting: CountingStore, keep: int | None, expected: int) -> None:
    await counting.put("obj", DATA)
    s = faulty(counting, Rule(key="obj", action=Truncate(keep)))
    assert await s.get("obj") == DATA[:expected]
    assert await s.get_range("obj", 0, 2000) == DATA[:expected]
    streamed = b"".join([c async for c in s.iter_bytes("obj", chunk_size=100)])
    if keep is None:
        assert streamed == DATA[:50]  # half of the first chunk
    else:
        assert streamed == DATA[:expected]
    await s.put("obj2", b"writes are untouched")  # op="*" means reads for Truncate
    assert [e.injected for e in s.log] == [True, True, True, False]


async def test_truncate_strictest_wins_on_streams(counting: CountingStore) -> None:
    await counting.put("obj", DATA)
    s = faulty(counting, Rule(action=Truncate(300)), Rule(action=Truncate(150)))
    assert b"".join([c async for c in s.iter_bytes("obj", chunk_size=100)]) == DATA[:150]
    assert await s.get("obj") == DATA[:150]


# ------------------------------------------------------------------------ Corrupt
@pytest.mark.parametrize("bits", [1, 3])
async def test_corrupt_flips_exactly_n_bits(counting: CountingStore, bits: int) -> None:
    await counting.put("obj", DATA)
    s = faulty(counting, Rule(op=("get", "get_range", "iter_bytes"), action=Corrupt(bits)))
    got = await s.get("obj")
    assert _bit_diff(got, DATA) == bits
    part = await s.get_range("obj", 100, 50)
    assert _bit_diff(part, DATA[100:150]) == bits
    streamed = [c async for c in s.iter_bytes("obj", chunk_size=256)]
    assert _bit_diff(streamed[0], DATA[:256]) == bits
    assert b"".join(streamed[1:]) == DATA[256:]  # only the first chunk is corrupted
    assert await counting.get("obj") == DATA  # the stored bytes are intact


@LOCAL
async def test_corrupt_is_deterministic_under_a_seed(inner: Store) -> None:
    await inner.put("obj", DATA)
    reads = []
    for seed in (7, 7, 8):
        s = faulty(inner, Rule(op="get", action=Corrupt(2)), seed=seed)
        reads.append([await s.get("obj") for _ in range(3)])
    assert reads[0] == reads[1]
    assert reads[0] != reads[2]
    assert len(set(reads[0])) > 1  # successive reads flip different bits


@LOCAL
async def test_corrupt_empty_and_tiny_reads(counting: CountingStore) -> None:
    await counting.put("empty", b"")
    await counting.put("one", b"\x00")
    s = faulty(counting, Rule(action=Corrupt(bits=100)))
    assert await s.get("empty") == b""
    assert await s.get("one") == b"\xff"  # all 8 bits flipped, not more


@pytest.mark.parametrize("action", [Truncate(), Corrupt()])
@pytest.mark.parametrize("op", ["put", "head", "list", ("get", "delete")])
async def test_read_actions_refuse_other_ops(action: Any, op: Any) -> None:
    with pytest.raises(InvalidInputError):
        Rule(op=op, action=action)


# --------------------------------------------------------------------------- Hook
async def test_hook_lets_a_rival_writer_win(counting: CountingStore) -> None:
    """The classic race, made deterministic: a rival commits between check and put."""

    async def rival(call: Call) -> None:
        assert call.store is counting
        await call.store.put(call.key, b"rival")

    s = faulty(counting, Rule(op="put", key="*/manifest.json", nth=1, action=Hook(rival)))
    assert not await s.exists("ds/manifest.json")
    with pytest.raises(ObjectExistsError):
        await s.put("ds/manifest.json", b"mine")
    assert await counting.get("ds/manifest.json") == b"rival"
    await s.put("ds/other/manifest.json", b"mine")  # nth=1: only once


@LOCAL
async def test_hook_after_and_hook_errors(counting: CountingStore) -> None:
    events: list[tuple[str, int, bool]] = []

    async def after(call: Call) -> None:
        events.append((call.op, call.index, await counting.exists(call.key)))

    async def boom(call: Call) -> None:
        raise PermissionDeniedError("hook refused", key=call.key)

    s = faulty(
        counting,
        Rule(op="put", action=Hook(after, when="after")),
        Rule(op="delete", action=Hook(boom)),
    )
    await s.put("k", b"v")
    assert events == [("put", 1, True)]
    with pytest.raises(PermissionDeniedError):
        await s.delete("k")
    assert await counting.exists("k")  # a before-hook that raises stops the call


# ---------------------------------------------------------- probability and seeds
async def _workload(s: FaultInjectingStore) -> list[str]:
    outcome = []
    for i in range(40):
        try:
            await s.put(f"k/{i}", b"x", mode="overwrite")
            await s.get(f"k/{i}")
            outcome.append("ok")
        except TransientStorageError:
            outcome.append("fail")
        except ObjectNotFoundError:
            outcome.append("missing")
    return outcome


async def test_probability_is_deterministic_under_a_seed() -> None:
    runs = []
    logs = []
    for seed in (11, 11, 12):
        s = faulty(
            MemoryStore(),
            Rule(op="put", probability=0.3),
            Rule(op="get", probability=0.3, action=LoseAck()),
            seed=seed,
        )
        runs.append(await _workload(s))
        logs.append([(e.call.index, e.op, e.key, len(e.fired)) for e in s.log])
    assert runs[0] == runs[1]
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]
    assert "fail" in runs[0]
    assert "ok" in runs[0]


async def test_adding_a_rule_does_not_change_earlier_rules() -> None:
    a = faulty(MemoryStore(), Rule(op="put", probability=0.5), seed=3)
    b = faulty(MemoryStore(), Rule(op="put", probability=0.5), seed=3)
    b.add(Rule(op="get", probability=0.5))
    await _workload(a)
    await _workload(b)
    assert [e.key for e in a.faults if e.op == "put"] == [e.key for e in b.faults if e.op == "put"]


@LOCAL
@pytest.mark.parametrize(("p", "fired"), [(0, 0), (0.0, 0), (1, 10), (1.0, 10)])
async def test_probability_bounds(counting: CountingStore, p: float, fired: int) -> None:
    rule = Rule(op="head", probability=p)
    s = faulty(counting, rule, seed=None)
    for _ in range(10):
        try:
            await s.head("k")
        except TransientStorageError:
            pass
        except ObjectNotFoundError:
            pass
    assert s.fired(rule) == fired


# ------------------------------------------------------------ runtime rules & log
@LOCAL
async def test_rules_added_removed_and_cleared_at_runtime(counting: CountingStore) -> None:
    s = faulty(counting)
    await s.put("a", b"1")
    r1 = Rule(op="get")
    r2 = Rule(op="head", action=Fail(OSError))
    s.add(r1, r2)
    assert s.rules == (r1, r2)
    with pytest.raises(TransientStorageError):
        await s.get("a")
    s.remove(r1)
    assert await s.get("a") == b"1"
    with pytest.raises(OSError):
        await s.head("a")
    s.clear()
    assert s.rules == ()
    await s.head("a")
    with pytest.raises(InvalidInputError):
        s.remove(r1)
    with pytest.raises(InvalidInputError):
        s.fired(r1)
    with pytest.raises(InvalidInputError):
        s.add("not a rule")  # type: ignore[arg-type]


async def test_log_records_every_call(counting: CountingStore) -> None:
    rule = Rule(op="get_range", action=Truncate(1))
    s = faulty(counting, rule)
    await s.put("k", b"abc", mode="overwrite")
    assert await s.get_range("k", 1, 2) == b"b"
    assert await s.exists("k")
    assert await s.get_range("k", 0, 0) == b""  # zero length is a head
    log = s.log
    assert [(e.call.index, e.op, e.key) for e in log] == [
        (1, "put", "k"),
        (2, "get_range", "k"),
        (3, "head", "k"),
        (4, "head", "k"),
    ]
    assert log[0].call.mode == "overwrite"
    assert (log[1].call.offset, log[1].call.length) == (1, 2)
    assert s.faults == [log[1]]
    assert log[1].fired == (rule,)
    assert log[1].actions == (Truncate(1),)
    s.clear_log()
    assert s.log == []
    await s.head("k")
    assert s.log[0].call.index == 5  # numbering continues
    assert "FaultInjectingStore" in repr(s)


@LOCAL
async def test_a_single_rule_needs_no_list(counting: CountingStore) -> None:
    s = FaultInjectingStore(counting, Rule(op="get"))
    with pytest.raises(TransientStorageError):
        await s.get("k")


@LOCAL
async def test_no_rules_is_transparent(counting: CountingStore) -> None:
    s = faulty(counting)
    await s.put("a/b", _chunks(b"x", b"y"))
    assert await s.get("a/b") == b"xy"
    assert [i.key async for i in s.list()] == ["a/b"]
    assert counting.total_calls == 3 == len(s.log)
    assert s.faults == []


# -------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs",
    [
        {"op": "gett"},
        {"op": ()},
        {"op": ("get", "bogus")},
        {"op": 5},
        {"key": None},
        {"nth": 0},
        {"nth": -1},
        {"nth": ()},
        {"nth": True},
        {"nth": "1"},
        {"nth": 1.5},
        {"probability": 1.5},
        {"probability": -0.1},
        {"probability": "0.5"},
        {"times": 0},
        {"times": 1.0},
        {"action": "fail"},
        {"action": Fail},
    ],
)
async def test_bad_rules(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        Rule(**kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Fail("boom"),
        lambda: LoseAck(42),
        lambda: Delay(-1),
        lambda: Delay(float("nan")),
        lambda: Hook("not callable"),
        lambda: Hook(lambda c: None, when="during"),
        lambda: Truncate(-1),
        lambda: Truncate(True),
        lambda: Corrupt(0),
        lambda: Corrupt(1.5),
    ],
)
async def test_bad_actions(make: Any) -> None:
    with pytest.raises(InvalidInputError):
        make()


@LOCAL
async def test_nth_range_from_the_third_call_on(counting: CountingStore) -> None:
    rule = Rule(op="head", nth=range(3, sys.maxsize))
    s = faulty(counting, rule)
    await counting.put("k", b"")
    await s.head("k")
    await s.head("k")
    for _ in range(5):
        with pytest.raises(TransientStorageError):
            await s.head("k")
    assert s.fired(rule) == 5
    assert rule.nth == range(3, sys.maxsize)


@pytest.mark.parametrize("nth", [range(0, 5), range(3, 3), range(5, 1, -1)])
async def test_bad_nth_ranges(nth: range) -> None:
    with pytest.raises(InvalidInputError):
        Rule(nth=nth)


async def test_rule_normalises_its_fields() -> None:
    r = Rule(op=["get", "get", "head"], nth=[2, 1, 2])
    assert r.op == ("get", "head")
    assert r.nth == frozenset({1, 2})
    assert Rule(op=("get", "*")).op == ("*",)
    assert r.matches("get", "any/key")
    assert not r.matches("put", "any/key")
    assert Rule(action=Corrupt()).ops == frozenset({"get", "get_range", "iter_bytes"})
    assert Rule() == Rule(op="*", key="*", action=Fail())


# -------------------------------------------------------------------------- Crash
async def test_crash_before_stops_every_later_call(counting: CountingStore) -> None:
    s = faulty(counting, Rule(op="put", key="*/manifest.json", action=Crash()))
    await s.put("ds/data.bin", b"data")
    with pytest.raises(SimulatedCrash):
        await s.put("ds/manifest.json", b"commit")
    assert s.crashed
    assert not await counting.exists("ds/manifest.json")
    calls = counting.total_calls
    # Cleanup a real crash would never run cannot reach the store either.
    with pytest.raises(SimulatedCrash):
        await s.delete("ds/data.bin")
    with pytest.raises(SimulatedCrash):
        await s.list().__anext__()
    assert counting.total_calls == calls
    assert [e.refused for e in s.log] == [False, False, True, True]
    assert await counting.get("ds/data.bin") == b"data"  # the orphan a restart must tolerate
    s.recover()
    assert not s.crashed
    await s.delete("ds/data.bin")
    assert not await counting.exists("ds/data.bin")


@LOCAL
async def test_crash_after_the_write_took_effect(counting: CountingStore) -> None:
    s = faulty(counting, Rule(op="put_stream", action=Crash(when="after")))
    with pytest.raises(SimulatedCrash):
        await s.put("k", _chunks(b"a", b"b"))
    assert await counting.get("k") == b"ab"
    with pytest.raises(SimulatedCrash):
        await s.get("k")


async def _six_puts(s: Store) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(s.put, f"k/{i}", b"x")


@LOCAL
async def test_crash_is_not_an_exception_and_escapes_task_groups(counting: CountingStore) -> None:
    s = faulty(counting, Rule(op="put", nth=3, action=Crash()))
    with pytest.raises(BaseExceptionGroup) as ei:
        await _six_puts(s)
    assert ei.group_contains(SimulatedCrash)
    assert not ei.group_contains(Exception)  # nothing an ``except Exception`` could catch
    assert s.crashed
    log = s.log
    crash_at = next(i for i, e in enumerate(log) if e.fired)
    assert crash_at == 2
    assert all(e.refused for e in log[crash_at + 1 :])
    # At most the two puts planned before the crash landed (the task group may
    # cancel them first); none after it did.
    assert len([i async for i in counting.list("k/")]) <= 2


async def test_crash_when_is_validated() -> None:
    with pytest.raises(InvalidInputError):
        Crash(when="during")  # type: ignore[arg-type]
