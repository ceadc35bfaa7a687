"""Codecs and compressors are shared by the Dataset's worker threads: no hidden state."""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

from aiolode import JSONL, ArrowIPC, Gzip, Parquet, Zstd
from aiolode.codecs import Codec
from aiolode.compression import Compressor

pytest.importorskip("pyarrow")

PAIRS: list[tuple[Codec, Compressor | None]] = [
    (JSONL(), Gzip()),
    (ArrowIPC(), Zstd()),
    (Parquet(row_group_size=50), None),
]


@pytest.mark.parametrize(("codec", "comp"), PAIRS, ids=["jsonl+gzip", "arrow+zstd", "parquet"])
async def test_one_codec_object_in_many_threads(codec: Codec, comp: Compressor | None) -> None:
    results: dict[int, list[dict[str, object]]] = {}

    def job(k: int) -> None:
        rows = [{"task": k, "i": i, "s": f"{k}-{i}" * (k % 5)} for i in range(300)]
        enc = codec.open_encoder(timestamp_field="i")
        co = comp.compressobj() if comp is not None else None
        out = []
        for start in range(0, 300, 70):
            piece = enc.write(rows[start : start + 70])
            out.append(co.compress(piece) if co is not None else piece)
        tail = enc.finish()
        out.append(co.compress(tail.data) + co.flush() if co is not None else tail.data)
        data = b"".join(out)
        plain = comp.decompress(data) if comp is not None else data
        assert plain == codec.encode(rows, timestamp_field="i").data
        results[k] = codec.decode(plain)

    limiter = anyio.CapacityLimiter(8)
    async with anyio.create_task_group() as tg:
        for k in range(16):
            tg.start_soon(lambda k=k: anyio.to_thread.run_sync(job, k, limiter=limiter))
    assert sorted(results) == list(range(16))
    for k, rows in results.items():
        assert [r["task"] for r in rows] == [k] * 300
