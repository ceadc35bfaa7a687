"""Decoding (and encoding) the documents that list files: the readers' hot path.

Run: ``.venv/bin/python benchmarks/bench_manifest_decode.py [--quick] [--files N]``.
Prints a markdown section; every figure sits next to its anchor measured in
the same run.

A commit record holding one snapshot of N files (100,000 by default; each with
a checksum, a row count, partition values and statistics of three columns), a
checkpoint of N files and a partition manifest of N files are encoded once,
then decoded repeatedly through :func:`aiolode.manifest.decode` (seal check,
JSON parse, strict structuring, the models' own validation). Anchor:
``json.loads`` of the same bytes, the floor of reading the document at all;
the ratio is what the models cost on top. Also: encoding (``encode``) against
``json.dumps`` of the same structure.

Figures are CPU time of the (single-threaded) process, so other load on a
shared machine inflates them less than wall time; medians of several
repetitions, interleaved (decode, anchor, decode, ...) so the machine's drift
hits both alike; the spread is the interquartile range.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiolode.manifest import decode, encode
from aiolode.manifest._dataset import (
    Checkpoint,
    CheckpointFile,
    CheckpointSnapshot,
    ColumnStats,
    CommitRecord,
    ExpiryState,
    FileRef,
    Manifest,
    PartitionManifest,
)

if TYPE_CHECKING:
    from collections.abc import Callable


def _files(n: int) -> list[FileRef]:
    return [
        FileRef(
            key=f"datasets/d/data/p=v{i % 8}/{i:032x}.jsonl",
            size=1000 + i,
            checksum=f"xxh3_128:{i:032x}",
            row_count=100,
            partition={"p": f"v{i % 8}"},
            stats={
                "i": ColumnStats(min=i, max=i + 99, null_count=0),
                "s": ColumnStats(min=f"a{i}", max=f"z{i}", null_count=0),
                "x": ColumnStats(min=0.5, max=i + 0.5, null_count=3),
            },
        )
        for i in range(n)
    ]


def documents(n: int) -> dict[str, tuple[bytes, Any]]:
    """The encoded documents, by name, with the object each decodes to."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    files = _files(n)
    manifest = Manifest(
        dataset_id="d",
        snapshot_id="0000000000000001-0000",
        parent_id=None,
        created_at=now,
        metadata={"run": "bench"},
        files=files,
        row_count=100 * n,
        codec="jsonl",
        compressor=None,
        layout={"name": "hive", "partition_keys": ["p"]},
        commit_token="t" * 32,
    )
    record = CommitRecord(
        dataset_id="d", seq=1, token="t" * 32, created_at=now, snapshots=[manifest]
    )
    checkpoint = Checkpoint(
        dataset_id="d",
        seq=1,
        created_at=now,
        tip="0000000000000001-0000",
        expiry=ExpiryState(),
        snapshots=[
            CheckpointSnapshot(
                snapshot_id="0000000000000001-0000", created_at=now, codec="jsonl", compressor=None
            )
        ],
        files=[CheckpointFile("0000000000000001-0000", f) for f in files],
    )
    pmanifest = PartitionManifest(dataset_id="d", token="t", partition={"p": "v0"}, files=files)
    return {
        "commit record": (encode(record), record),
        "checkpoint": (encode(checkpoint), checkpoint),
        "partition manifest": (encode(pmanifest), pmanifest),
    }


def _time(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _iqr(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--files", type=int, default=None)
    p.add_argument("--reps", type=int, default=None)
    args = p.parse_args()
    n = args.files or (5_000 if args.quick else 100_000)
    reps = args.reps or (3 if args.quick else 7)
    docs = documents(n)
    print(f"{n:,} files per document; median of {reps} interleaved runs (IQR).\n")
    print("| document | size | decode | json.loads | ratio | per file |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (raw, want) in docs.items():
        cls = type(want)
        assert decode(raw, cls) == want, name  # the figures are of a correct decode
        dec: list[float] = []
        anchor: list[float] = []
        for _ in range(reps):
            dec.append(_time(lambda raw=raw, cls=cls: decode(raw, cls)))
            anchor.append(_time(lambda raw=raw: json.loads(raw)))
        d, a = statistics.median(dec), statistics.median(anchor)
        print(
            f"| {name} | {len(raw) / 2**20:.1f} MiB | {d * 1e3:.0f} ms (±{_iqr(dec) * 1e3:.0f}) "
            f"| {a * 1e3:.0f} ms (±{_iqr(anchor) * 1e3:.0f}) | {d / a:.2f}x "
            f"| {d / n * 1e6:.2f} µs |"
        )
    raw, obj = docs["commit record"]
    plain = json.loads(raw)
    enc: list[float] = []
    anchor = []
    for _ in range(reps):
        enc.append(_time(lambda: encode(obj)))
        anchor.append(
            _time(lambda: json.dumps(plain, sort_keys=True, separators=(",", ":")).encode())
        )
    e, a = statistics.median(enc), statistics.median(anchor)
    print(
        f"\nEncoding the commit record: {e * 1e3:.0f} ms (±{_iqr(enc) * 1e3:.0f}) against "
        f"{a * 1e3:.0f} ms for json.dumps of the same structure ({e / a:.2f}x)."
    )


if __name__ == "__main__":
    main()
