"""The index: interval arithmetic, the merge policy, frozen segments."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiolode import CRC32, MemoryStore, RangeMissingError, Volume
from aiolode.volume import _index
from aiolode.volume._blocks import BlockRef, Run, coalesce, complement, find_overlaps, lookup

from .test_volume import payload


def disjoint_blocks(draw: st.DrawFn, total: int) -> list[tuple[int, int]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, total), max_size=30))) | {0, total})
    keep = draw(st.lists(st.booleans(), min_size=len(cuts), max_size=len(cuts)))
    return [(a, b - a) for a, b, k in zip(cuts, cuts[1:], keep, strict=False) if k and b > a]


@st.composite
def split_runs(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[Run]]:
    blocks = disjoint_blocks(draw, 200)
    k = draw(st.integers(1, 4))
    groups: list[list[tuple[int, int]]] = [[] for _ in range(k)]
    for b in blocks:
        groups[draw(st.integers(0, k - 1))].append(b)
    runs = [
        Run([o for o, _ in g], [n for _, n in g], [f"b{o}" for o, _ in g], None, "p/")
        for g in groups
    ]
    return blocks, runs


@settings(max_examples=60, deadline=None)
@given(data=split_runs(), offset=st.integers(0, 199), length=st.integers(0, 60))
def test_lookup_matches_brute_force(
    data: tuple[list[tuple[int, int]], list[Run]], offset: int, length: int
) -> None:
    blocks, runs = data
    length = min(length, 200 - offset)
    covered = [False] * 200
    for o, n in blocks:
        covered[o : o + n] = [True] * n
    pieces, missing = lookup(runs, offset, length)
    expect_missing = []
    i = offset
    while i < offset + length:
        if covered[i]:
            i += 1
            continue
        j = i
        while j < offset + length and not covered[j]:
            j += 1
        expect_missing.append((i, j - i))
        i = j
    assert missing == expect_missing
    assert sum(p.hi - p.lo for p in pieces) == sum(covered[offset : offset + length])
    assert all(p.key == f"p/b{p.block_offset}" for p in pieces)
    merged = Run.merge(runs, "p/")
    assert list(merged.ranges()) == blocks
    assert merged.validate(200) is None
    assert coalesce(runs) == coalesce([merged])
    assert complement(coalesce(runs), 200) == [
        r for r in complement(coalesce([merged]), 200) if r[1] > 0
    ]
    probe = BlockRef(offset, max(1, length), "p/x")
    hit = find_overlaps(runs, [probe]) != []
    assert hit == any(covered[offset : offset + max(1, length)])


def test_merge_policy_is_a_binary_counter() -> None:
    counts: list[int] = []
    rewritten = 0
    for _ in range(1000):
        k = _index.plan_merge(counts, 1)
        merged = 1 + sum(counts[len(counts) - k :])
        rewritten += merged
        counts = [*counts[: len(counts) - k], merged]
        assert all(a > b for a, b in itertools.pairwise(counts))
        assert len(counts) <= 11  # log2(1000) + 1
    assert rewritten <= 1000 * 11  # each entry rewritten O(log B) times


def test_run_validation_finds_broken_invariants() -> None:
    assert Run([0, 5], [5, 5], ["a", "b"], None, "").validate(10) is None
    assert "overlaps" in (Run([0, 4], [5, 5], ["a", "b"], None, "").validate(10) or "")
    assert "past" in (Run([0], [11], ["a"], None, "").validate(10) or "")
    assert "non-positive" in (Run([0], [0], ["a"], None, "").validate(10) or "")


async def test_frozen_segments_and_offloaded_merges(
    monkeypatch: pytest.MonkeyPatch, mem: MemoryStore
) -> None:
    """With tiny thresholds, exercise freezing, segment lists and thread offload."""
    monkeypatch.setattr(_index, "FREEZE_AT", 8)
    monkeypatch.setattr(_index, "_OFFLOAD_ENTRIES", 4)
    total = 64 * 10
    vol = Volume("f", mem, total, checksum=CRC32())
    order = list(range(64))
    random.Random(1).shuffle(order)
    snaps = []
    for start in range(0, 64, 3):
        refs = [
            await vol.stage_write_at(i * 10, payload(i * 10, 10)) for i in order[start : start + 3]
        ]
        snaps.append(await vol.commit(refs))
    latest = snaps[-1]
    assert latest.is_complete
    state = vol._index._states[int(latest.id)]
    assert len(state.frozen_runs) >= 2
    assert all(r.count < 8 for r in state.hot_runs)
    assert await vol.read_at(latest.id, 0, total) == payload(0, total)
    # A fresh object loads the same index through the segment list.
    fresh = Volume("f", mem, total, checksum=CRC32())
    assert (await fresh.latest()).committed_ranges() == [(0, total)]
    assert await fresh.read_at(latest.id, 5, total - 10) == payload(5, total - 10)
    # Old snapshots still say exactly what they said.
    old = snaps[5]
    assert (await fresh.snapshot(old.id)).committed_ranges() == old.committed_ranges()
    gap = old.missing_ranges()[0]
    with pytest.raises(RangeMissingError) as ei:
        await fresh.read_at(old.id, gap[0], gap[1])
    assert ei.value.missing == [gap]
    blocks = latest.blocks()
    assert [b.offset for b in blocks] == [i * 10 for i in range(64)]


def test_fenced_search_matches_plain_bisect() -> None:
    rng = random.Random(5)
    offsets, lengths = [], []
    pos = 0
    for _ in range(5000):
        pos += rng.randrange(0, 5)
        n = rng.randrange(1, 4)
        offsets.append(pos)
        lengths.append(n)
        pos += n
    run = Run(offsets, lengths, [str(o) for o in offsets], None, "")
    assert run.fence is not None
    ends = [o + n for o, n in zip(offsets, lengths, strict=True)]
    for x in range(0, pos + 3):
        # Blocks are disjoint and sorted, so ends are sorted: plain bisect is the oracle.
        assert run.first_touching(x) == bisect.bisect_right(ends, x), x
