"""The error tree: its shape, its builtin bases, and pickling with attributes."""

from __future__ import annotations

import pickle

import pytest

import aiolode
from aiolode import errors

TREE: dict[type[Exception], list[str]] = {
    errors.NotFoundError: [
        "ObjectNotFoundError",
        "DatasetNotFoundError",
        "VolumeNotFoundError",
        "SnapshotNotFoundError",
        "NoSnapshotsError",
        "RangeMissingError",
    ],
    errors.ConflictError: ["ObjectExistsError", "PreconditionFailedError", "SnapshotConflictError"],
    errors.InvalidInputError: [
        "InvalidKeyError",
        "InvalidRangeError",
        "SchemaViolationError",
        "OverlappingBlocksError",
    ],
    errors.UnsupportedError: [
        "UnsupportedOperationError",
        "CodecNotStreamableError",
        "PartitioningNotSupportedError",
        "DatasetsNotModeledError",
    ],
    errors.StorageError: ["TransientStorageError", "PermissionDeniedError"],
    errors.FormatError: [
        "ManifestFormatError",
        "UnsupportedFormatVersionError",
        "ChecksumMismatchError",
        "CorruptDataError",
    ],
}


@pytest.mark.parametrize("group", list(TREE), ids=lambda g: g.__name__)
def test_tree_shape(group: type[Exception]) -> None:
    assert issubclass(group, errors.AiolodeError)
    for name in TREE[group]:
        leaf = getattr(errors, name)
        assert issubclass(leaf, group), name
        assert getattr(aiolode, name) is leaf, f"{name} not re-exported at top level"


def test_builtin_bases() -> None:
    assert issubclass(errors.NotFoundError, LookupError)
    assert not issubclass(errors.NotFoundError, KeyError)
    assert issubclass(errors.InvalidInputError, ValueError)
    # str() is the message, unquoted (unlike KeyError)
    assert (
        str(errors.ObjectNotFoundError("object 'a' not found", key="a")) == "object 'a' not found"
    )


def _all_error_classes() -> list[type[errors.AiolodeError]]:
    out = []
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, errors.AiolodeError):
            out.append(obj)
    return out


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_pickles_with_attributes(cls: type[errors.AiolodeError]) -> None:
    err = cls("boom", key="k/1", dataset_id="ds", snapshot_id="s1", volume_id="v")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == "boom"
    assert (back.key, back.dataset_id, back.snapshot_id, back.volume_id) == ("k/1", "ds", "s1", "v")


def test_specific_attributes_pickle() -> None:
    cases: list[tuple[errors.AiolodeError, dict[str, object]]] = [
        (
            errors.RangeMissingError("gap", missing=[(0, 5), (10, 2)]),
            {"missing": [(0, 5), (10, 2)]},
        ),
        (errors.SnapshotConflictError("c", conflicting=["a", "b"]), {"conflicting": ["a", "b"]}),
        (errors.OverlappingBlocksError("o", ranges=[(1, 2)]), {"ranges": [(1, 2)]}),
        (
            errors.ChecksumMismatchError(
                "x", key="k", algorithm="sha256", expected="e", actual="a"
            ),
            {"algorithm": "sha256", "expected": "e", "actual": "a", "key": "k"},
        ),
        (errors.PreconditionFailedError("p", expected_etag='"1"'), {"expected_etag": '"1"'}),
        (
            errors.UnsupportedFormatVersionError("v", schema_name="s", format_version=9),
            {"schema_name": "s", "format_version": 9},
        ),
        (errors.ManifestFormatError("m", field="files[0].size"), {"field": "files[0].size"}),
        (errors.SchemaViolationError("s", field="ts"), {"field": "ts"}),
        (errors.InvalidInputError("i", field="size"), {"field": "size"}),
    ]
    for err, attrs in cases:
        back = pickle.loads(pickle.dumps(err))
        for name, value in attrs.items():
            assert getattr(back, name) == value, (type(err).__name__, name)


def test_chaining_is_preserved_when_raised() -> None:
    def fail() -> None:
        try:
            raise OSError(2, "No such file")
        except OSError as exc:
            raise errors.ObjectNotFoundError("missing", key="a") from exc

    with pytest.raises(errors.ObjectNotFoundError) as ei:
        fail()
    assert isinstance(ei.value.__cause__, OSError)


class _HugeLen:
    def __len__(self) -> int:
        return 2**62

    def __iter__(self) -> object:
        return iter(())


@pytest.mark.parametrize(
    ("cls", "name", "bad"),
    [
        (errors.RangeMissingError, "missing", 5),
        (errors.RangeMissingError, "missing", [(0, "5")]),
        (errors.RangeMissingError, "missing", [(0, 1, 2)]),
        (errors.RangeMissingError, "missing", "(0, 5)"),
        (errors.OverlappingBlocksError, "ranges", {(0, 1): 2}),
        (errors.OverlappingBlocksError, "ranges", [(True, 1)]),
        (errors.SnapshotConflictError, "conflicting", 5),
        (errors.SnapshotConflictError, "conflicting", "abc"),
        (errors.SnapshotConflictError, "conflicting", [None]),
    ],
)
def test_structured_attributes_are_checked(
    cls: type[errors.AiolodeError], name: str, bad: object
) -> None:
    """A structured attribute of the wrong type is InvalidInputError naming it
    (it was a bare TypeError, or a MemoryError for an iterable lying about its
    length), whatever the error being built."""
    with pytest.raises(errors.InvalidInputError) as info:
        cls("m", **{name: bad})  # type: ignore[arg-type]
    assert info.value.field == name
    assert f"{cls.__name__}.{name} must be a list of" in str(info.value)


def test_structured_attributes_take_any_iterable() -> None:
    assert errors.RangeMissingError("m", missing=iter([[0, 5]])).missing == [(0, 5)]
    assert errors.OverlappingBlocksError("m", ranges=_HugeLen()).ranges == []  # type: ignore[arg-type]
    assert errors.SnapshotConflictError("m", conflicting=("a",)).conflicting == ["a"]
    assert errors.SnapshotConflictError("m").conflicting == []
