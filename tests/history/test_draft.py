"""A dataset commit's record is built lazily, by the thread that sends it where
the store puts from threads (``Draft(build=...)``): once, with the outcome of an
eager build."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

import aiolode
from aiolode import InvalidInputError
from aiolode._history._log import Draft
from aiolode.dataset._commit import Committer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

ROWS = [{"i": i, "s": f"v{i}"} for i in range(20)]


@pytest.fixture(params=["memory", "file"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s: aiolode.Store = (
        aiolode.MemoryStore() if request.param == "memory" else aiolode.FileStore(tmp_path)
    )
    async with s:
        yield s


async def _keys(store: aiolode.Store) -> set[str]:
    return {k async for k in store.list("")}


async def test_built_once_where_it_is_sent(
    store: aiolode.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    await ds.write(ROWS)
    threads: list[str] = []
    build = Committer._build

    def counting(self: Committer, *args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return build(self, *args)

    monkeypatch.setattr(Committer, "_build", counting)
    snap = await ds.write(ROWS)
    assert len(threads) == 1
    on_loop = threads[0] == threading.main_thread().name
    assert on_loop is not store._puts_in_threads()
    assert await ds.read(snap) == ROWS
    assert (await aiolode.Dataset("d", store).latest()).id == snap.id


async def test_a_refused_build_commits_nothing(
    store: aiolode.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    first = await ds.write(ROWS)
    before = await _keys(store)
    refusal = InvalidInputError("refused while building the record")

    def refuse(self: Committer, *args: Any) -> Any:
        raise refusal

    monkeypatch.setattr(Committer, "_build", refuse)
    with pytest.raises(InvalidInputError) as ei:
        await ds.write(ROWS)
    assert ei.value is refusal
    # Not committed, known to be so: the data file went with it.
    assert await _keys(store) == before
    monkeypatch.undo()
    assert (await aiolode.Dataset("d", store).latest()).id == first.id
    assert (await ds.write(ROWS)).id != first.id  # the writer goes on


async def test_a_failing_build_bug_propagates(
    store: aiolode.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = aiolode.Dataset("d", store, codec=aiolode.JSONL())
    await ds.write(ROWS)

    def bug(self: Committer, *args: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Committer, "_build", bug)
    with pytest.raises(ZeroDivisionError):
        await ds.write(ROWS)


def test_draft_takes_a_record_or_a_build() -> None:
    with pytest.raises(TypeError):
        Draft()
    with pytest.raises(TypeError):
        Draft(object(), build=object)
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        return "record"

    d: Draft[str] = Draft(build=build)
    assert d.record == "record"
    assert d.record == "record"
    assert calls == [1]
