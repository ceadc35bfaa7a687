"""The Hypothesis strategies produce what they promise."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiolode import AiolodeError, InvalidInputError, InvalidKeyError, MemoryStore
from aiolode._keys import validate_key, validate_prefix
from aiolode.layout import HiveLayout, stringify_partition_value, validate_dataset_id
from aiolode.manifest._metadata import check_metadata, freeze
from aiolode.store import Store
from aiolode.testing import FaultInjectingStore, Rule, SimulatedCrash
from aiolode.testing import strategies as ast

FAST = settings(max_examples=60, deadline=None)
MANIFEST: dict[str, Any] = {
    "schema_name": "aiolode.dataset.manifest",
    "format_version": 1,
    "snapshot_id": "0000000000000001-0000",
    "parent_id": None,
    "metadata": {"k": [1, 2.5, "x"]},
    "files": [{"key": "d/part-0.jsonl", "size": 10, "checksum": None}],
}


@FAST
@given(ast.keys())
def test_keys_are_valid(key: str) -> None:
    assert validate_key(key) == key
    assert len(key.encode("utf-8")) <= 1024


@FAST
@given(ast.prefixes())
def test_prefixes_are_valid(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@FAST
@given(ast.bad_keys())
def test_bad_keys_are_refused(key: object) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


@FAST
@given(ast.dataset_ids())
def test_dataset_ids_are_valid(dataset_id: str) -> None:
    assert validate_dataset_id(dataset_id) == dataset_id


@FAST
@given(ast.bad_ids())
def test_bad_ids_are_refused_by_datasets_and_volumes(bad: object) -> None:
    from aiolode.volume import Volume

    with pytest.raises(InvalidKeyError):
        validate_dataset_id(bad)
    with pytest.raises(InvalidKeyError):
        Volume(bad, MemoryStore(), 10)  # type: ignore[arg-type]


@FAST
@given(st.dictionaries(st.sampled_from(["a", "b_2", "zone"]), ast.partition_values(), min_size=1))
def test_partition_values_are_supported_and_round_trip(values: dict[str, Any]) -> None:
    text = {k: stringify_partition_value(k, v) for k, v in values.items()}
    layout = HiveLayout(*text)
    path = layout.partition_path(text)
    assert layout.parse_partition_path(path) == text
    # No value can add, remove or escape a path segment.
    assert path.count("/") == len(text)
    assert all(seg not in (".", "..", "") for seg in path.rstrip("/").split("/"))


@FAST
@given(ast.json_metadata())
def test_json_metadata_round_trips(meta: dict[str, Any]) -> None:
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta
    # Read back frozen: mappings refuse mutation, lists come back as tuples.
    assert check_metadata(meta) == freeze(meta)


@FAST
@given(ast.bad_metadata())
def test_bad_metadata_is_refused(meta: object) -> None:
    with pytest.raises(InvalidInputError):
        check_metadata(meta)


@FAST
@given(st.data(), st.binary(max_size=300))
def test_corruptions_always_differ(data: st.DataObject, original: bytes) -> None:
    damaged = data.draw(ast.corruptions(original))
    assert isinstance(damaged, bytes)
    assert damaged != original


@FAST
@given(st.data())
def test_mutated_documents_differ_and_stay_json(data: st.DataObject) -> None:
    doc = data.draw(ast.mutated_documents(MANIFEST))
    assert doc != MANIFEST
    json.dumps(doc, allow_nan=False)
    assert MANIFEST["files"][0]["size"] == 10  # the original is never modified


@pytest.fixture(params=["memory", "fs"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """A fresh store per example (Hypothesis reuses the fixture across examples)."""
    counter = iter(range(10**9))

    def make() -> Store:
        if request.param == "memory":
            return MemoryStore()
        from aiolode.store import FileStore

        root = tmp_path / str(next(counter))
        root.mkdir()
        return FileStore(root)

    return make


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=ast.keys(), payload=st.binary(max_size=64))
async def test_valid_keys_round_trip_through_stores(
    store_factory: Any, key: str, payload: bytes
) -> None:
    async with store_factory() as store:
        await store.put(key, payload)
        assert await store.get(key) == payload
        assert [i.key async for i in store.list()] == [key]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=ast.bad_keys())
async def test_bad_keys_never_reach_a_store(store_factory: Any, key: object) -> None:
    async with store_factory() as store:
        with pytest.raises(InvalidKeyError):
            await store.put(key, b"x")
        assert [i async for i in store.list()] == []


async def _workload(store: Store) -> None:
    for i in range(4):
        await store.put(f"w/{i}", bytes([i]) * 100, mode="overwrite")
        assert len(await store.get(f"w/{i}")) <= 100
        await store.get_range(f"w/{i}", 10, 20)
        [c async for c in store.iter_bytes(f"w/{i}", chunk_size=30)]
    [i async for i in store.list("w/")]
    await store.delete("w/0")


@settings(max_examples=60, deadline=None)
@given(rules=ast.fault_rules(max_nth=25), seed=st.integers(0, 2**32))
async def test_fault_rules_make_valid_schedules(rules: list[Rule], seed: int) -> None:
    assert 1 <= len(rules) <= 3
    inner = MemoryStore()
    store = FaultInjectingStore(inner, rules, seed=seed)
    # Only typed errors, or the simulated crash, may escape.
    with contextlib.suppress(AiolodeError, SimulatedCrash):
        await _workload(store)
    assert sum(len(e.fired) for e in store.log) <= len(rules)  # each rule fires at most once
    for key in [i.key async for i in inner.list()]:
        data = await inner.get(key)
        assert data == data[:1] * 100  # every stored object is whole: faults never tear
