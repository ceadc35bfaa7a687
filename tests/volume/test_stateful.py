"""A Hypothesis state machine: Volume against a model (bytearray + coverage).

The async API runs through a blocking portal, once per anyio backend.
"""

from __future__ import annotations

from typing import Any

import anyio.from_thread
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aiolode import (
    CRC32,
    InvalidInputError,
    InvalidRangeError,
    MemoryStore,
    OverlappingBlocksError,
    RangeMissingError,
    Volume,
)
from aiolode.volume import BlockRef

N = 192


def gaps(covered: list[bool], offset: int, length: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = None
    for i in range(offset, offset + length):
        if not covered[i] and start is None:
            start = i
        elif covered[i] and start is not None:
            out.append((start, i - start))
            start = None
    if start is not None:
        out.append((start, offset + length - start))
    return out


def ranges(covered: list[bool]) -> list[tuple[int, int]]:
    inverted = [not c for c in covered]
    return gaps(inverted, 0, len(covered))


async def _stream(data: bytes, size: int) -> Any:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class VolumeMachine(RuleBasedStateMachine):
    backend = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self._cm = anyio.from_thread.start_blocking_portal(self.backend)
        self.portal = self._cm.__enter__()
        self.store = MemoryStore(page_size=3)
        self.vol = self._new_volume()
        self.data = bytearray(N)
        self.covered = [False] * N
        self.pending: list[tuple[BlockRef, bytes]] = []
        self.history: list[tuple[str, bytes, list[bool]]] = []
        self.counter = 0

    def teardown(self) -> None:
        self._cm.__exit__(None, None, None)

    def _new_volume(self) -> Volume:
        return Volume("m", self.store, N, checksum=CRC32())

    def call(self, fn: Any, *args: Any) -> Any:
        return self.portal.call(fn, *args)

    @initialize()
    def start(self) -> None:
        pass

    @rule(offset=st.integers(0, N + 4), length=st.integers(0, 40), streamed=st.booleans())
    def stage(self, offset: int, length: int, streamed: bool) -> None:
        self.counter += 1
        payload = bytes((self.counter * 31 + i) % 256 for i in range(length))
        data: Any = (lambda: _stream(payload, 7)) if streamed else (lambda: payload)
        if length == 0 or offset + length > N:
            with pytest.raises(InvalidRangeError):
                self.call(self.vol.stage_write_at, offset, data())
            return
        ref = self.call(self.vol.stage_write_at, offset, data())
        assert (ref.offset, ref.length) == (offset, length)
        self.pending.append((ref, payload))

    @rule(picks=st.lists(st.integers(0, 1000), max_size=4, unique=True))
    def commit(self, picks: list[int]) -> None:
        chosen = sorted({p % len(self.pending) for p in picks}) if self.pending else []
        blocks = [self.pending[i] for i in chosen]
        if not blocks:
            with pytest.raises(InvalidInputError):
                self.call(self.vol.commit, [])
            return
        claimed = list(self.covered)
        clash = False
        for ref, _ in blocks:
            for i in range(ref.offset, ref.end):
                clash |= claimed[i]
                claimed[i] = True
        if clash:
            with pytest.raises(OverlappingBlocksError):
                self.call(self.vol.commit, [r for r, _ in blocks])
            return
        snap = self.call(self.vol.commit, [r for r, _ in blocks])
        for ref, payload in blocks:
            self.data[ref.offset : ref.end] = payload
        self.covered = claimed
        self.pending = [p for i, p in enumerate(self.pending) if i not in chosen]
        self.history.append((snap.id, bytes(self.data), list(self.covered)))

    @precondition(lambda self: self.history)
    @rule(offset=st.integers(0, N - 1), length=st.integers(0, 64), old=st.integers(0, 1000))
    def read(self, offset: int, length: int, old: int) -> None:
        length = min(length, N - offset)
        sid, data, covered = self.history[old % len(self.history)]
        missing = gaps(covered, offset, length)
        if missing:
            with pytest.raises(RangeMissingError) as ei:
                self.call(self.vol.read_at, sid, offset, length)
            assert ei.value.missing == missing
        else:
            assert (
                self.call(self.vol.read_at, sid, offset, length) == data[offset : offset + length]
            )

    @precondition(lambda self: self.history)
    @rule(offset=st.integers(0, N - 1), length=st.integers(1, 64))
    def read_with_reader(self, offset: int, length: int) -> None:
        length = min(length, N - offset)

        async def go() -> bytes | list[tuple[int, int]]:
            async with self.vol.open_reader(page_size=16, cache_pages=4) as reader:
                try:
                    first = await reader.read(offset, length)
                    assert await reader.read(offset, length) == first  # served from the cache
                    return first
                except RangeMissingError as exc:
                    return exc.missing

        expected_missing = gaps(self.covered, offset, length)
        got = self.call(go)
        if expected_missing:
            assert got == expected_missing
        else:
            assert got == self.data[offset : offset + length]

    @rule()
    def reopen(self) -> None:
        """A new process resumes: a fresh Volume object on the same store."""
        self.vol = self._new_volume()

    @invariant()
    def snapshot_matches_model(self) -> None:
        if not self.history:
            return
        latest = self.call(self.vol.latest)
        assert latest.id == self.history[-1][0]
        assert latest.committed_ranges() == ranges(self.covered)
        assert latest.committed_bytes == sum(self.covered)
        assert latest.is_complete == all(self.covered)
        expected_missing = gaps(self.covered, 0, N)
        assert latest.missing_ranges() == expected_missing


def _run(backend: str, examples: int, steps: int) -> None:
    machine = type(f"VolumeMachine_{backend}", (VolumeMachine,), {"backend": backend})
    test = machine.TestCase
    test.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    test().runTest()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_volume_state_machine(backend: str) -> None:
    _run(backend, examples=30, steps=25)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_volume_state_machine_long(backend: str) -> None:
    _run(backend, examples=300, steps=50)
