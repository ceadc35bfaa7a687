"""``examples/follow.py``: a consumer killed with SIGKILL midway resumes from its
cursor file and, over the restarts, applies every snapshot exactly once, in order."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

import aiolode

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "follow.py"
WRITERS = ("w0", "w1")
COUNT = 40


def _amount(writer: str, order: int) -> int:
    return 1 + (order * 7 + len(writer)) % 13  # the example's amounts


async def _state(path: Path) -> dict[str, Any]:
    try:
        text = await anyio.Path(path).read_text()
    except FileNotFoundError:
        return {"consumed": 0}
    state: dict[str, Any] = json.loads(text)
    return state


async def _printed(proc: Process) -> list[str]:
    """The snapshot ids a consumer printed (each printed after its state was saved)."""
    assert proc.stdout is not None
    out = b""
    async for chunk in proc.stdout:
        out += chunk
    return [line.split()[0] for line in out.decode().splitlines() if line.startswith("  ")]


async def test_a_killed_consumer_resumes_exactly_once(tmp_path: Path, anyio_backend: str) -> None:
    root, state_path = tmp_path / "store", tmp_path / "state.json"
    root.mkdir()
    base = [sys.executable, str(EXAMPLE)]
    consume = [
        *base,
        *("consume", str(root), "--state", str(state_path), "--backend", anyio_backend),
        *("--until", str(len(WRITERS) * COUNT), "--poll-interval", "0.02"),
    ]
    printed: list[str] = []
    with anyio.fail_after(240):
        writers = [
            await anyio.open_process(
                [
                    *(*base, "write", str(root), "--writer", w, "--count", str(COUNT)),
                    *("--interval", "0.02", "--backend", anyio_backend),
                ]
            )
            for w in WRITERS
        ]
        # Two consumers killed midway (while it works on a snapshot it has not
        # saved yet, most likely), while the writers go on.
        for kill_at in (8, 30):
            proc = await anyio.open_process([*consume, "--work", "0.03"])
            async with anyio.create_task_group() as tg:

                async def collect(p: Process = proc) -> None:
                    printed.extend(await _printed(p))

                tg.start_soon(collect)
                while (await _state(state_path))["consumed"] < kill_at:
                    assert proc.returncode is None, "the consumer stopped on its own"
                    await anyio.sleep(0.01)
                proc.send_signal(signal.SIGKILL)
                assert await proc.wait() == -signal.SIGKILL  # it had not failed before
        # The last run resumes after the cursor and finishes.
        last = await anyio.run_process(consume, check=False)
        assert last.returncode == 0, last.stderr.decode()
        printed += [ln.split()[0] for ln in last.stdout.decode().splitlines() if ln[:2] == "  "]
        for w in writers:
            assert await w.wait() == 0

    state = await _state(state_path)
    async with aiolode.FileStore(str(root)) as store:
        history = [s.id async for s in aiolode.Dataset("orders", store).snapshots()]
    assert len(history) == len(WRITERS) * COUNT
    # Every snapshot applied once (the consumer checks each writer's orders come
    # contiguous and raises on a gap or a repeat), the cursor at the end.
    assert state["consumed"] == len(history)
    assert state["cursor"] == history[-1]
    assert state["next_order"] == dict.fromkeys(WRITERS, COUNT)
    assert state["total"] == {w: sum(_amount(w, i) for i in range(COUNT)) for w in WRITERS}
    # What the runs reported as saved: in commit order, none twice.
    assert printed == sorted(set(printed))
    assert set(printed) <= set(history)
    assert len(printed) >= len(history) - 2  # at most one lost print per kill
