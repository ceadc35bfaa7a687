"""Partition manifests (format v2): writing them before a commit, loading them after.

A partitioned snapshot's files are recorded in one small create-only
``aiolode.dataset.partition`` document per touched partition, under that
partition's prefix; the commit record lists a :class:`PartitionRef` summary
per partition. A partition manifest is trusted only through a committed
record naming its key, so the ones of aborted writes are harmless orphans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from .._concurrency import bounded_map
from .._history import put_unique, retrying
from .._retry import Retry
from ..errors import FormatError, ManifestFormatError, ObjectNotFoundError
from ..manifest._converter import decode, encode
from ..manifest._dataset import FileRef, Manifest, PartitionManifest, PartitionRef

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..layout import Layout
    from ..store import Store
    from ._write import FileSpec

__all__ = ["load_files", "load_partition", "with_files", "write_partition_manifests"]

#: Concurrent partition-manifest puts/gets of one call.
_CONCURRENCY = 16


def group_by_partition(
    files: Sequence[FileRef],
) -> list[tuple[Mapping[str, str], list[FileRef]]]:
    """``files`` grouped by partition values, in first-seen order."""
    groups: dict[tuple[tuple[str, str], ...], tuple[Mapping[str, str], list[FileRef]]] = {}
    for f in files:
        t = tuple(sorted(f.partition.items()))
        g = groups.get(t)
        if g is None:
            g = groups[t] = (f.partition, [])
        g[1].append(f)
    return list(groups.values())


async def write_partition_manifests(
    spec: FileSpec, token: str, files: Sequence[FileRef]
) -> list[PartitionRef]:
    """Put one partition manifest per partition of ``files`` (create-only,
    concurrently, transient errors retried like data files) and return their
    summaries, in first-seen order.

    Cost: one ``put`` per partition, concurrent (one round trip).

    Raises
    ------
    StorageError
        A put failed (the caller deletes the keys best-effort: see
        :func:`partition_manifest_keys`).
    """

    async def one(group: tuple[Mapping[str, str], list[FileRef]]) -> PartitionRef:
        values, group_files = group
        key = spec.layout.partition_manifest_key(spec.dataset_id, values, token)
        doc = PartitionManifest(
            dataset_id=spec.dataset_id, token=token, partition=values, files=group_files
        )
        # Keys are unique per write, so an "exists" after a transient error is
        # our own earlier put (put_unique's retry rule).
        await put_unique(spec.store, key, encode(doc), spec.retry)
        rows = [f.row_count for f in group_files]
        return PartitionRef(
            partition=values,
            key=key,
            file_count=len(group_files),
            row_count=None if any(r is None for r in rows) else sum(r or 0 for r in rows),
            size=sum(f.size for f in group_files),
        )

    return await bounded_map(one, group_by_partition(files), limit=_CONCURRENCY)


def partition_manifest_keys(
    layout: Layout, dataset_id: str, token: str, files: Sequence[FileRef]
) -> list[str]:
    """The keys :func:`write_partition_manifests` uses (for cleanup)."""
    return [
        layout.partition_manifest_key(dataset_id, values, token)
        for values, _ in group_by_partition(files)
    ]


async def load_partition(
    store: Store, manifest: Manifest, ref: PartitionRef, retry: Retry | None = None
) -> tuple[FileRef, ...]:
    """The files of one partition manifest a committed snapshot names.

    Cost: one ``get``.

    Raises
    ------
    ManifestFormatError
        The object is missing (a committed record names it) or does not match
        its summary (dataset, partition, file count).
    StorageError
        The store failed.
    """
    try:
        data = await retrying(retry or Retry(), lambda: store.get(ref.key))
    except ObjectNotFoundError as exc:
        raise ManifestFormatError(
            f"partition manifest {ref.key!r} of snapshot {manifest.snapshot_id} is missing",
            key=ref.key,
            dataset_id=manifest.dataset_id,
            snapshot_id=manifest.snapshot_id,
        ) from exc
    try:
        pm = decode(data, PartitionManifest, key=ref.key)
    except FormatError as exc:
        exc.dataset_id = exc.dataset_id or manifest.dataset_id
        exc.snapshot_id = exc.snapshot_id or manifest.snapshot_id
        raise
    rows = [f.row_count for f in pm.files]
    total_rows = None if any(r is None for r in rows) else sum(r or 0 for r in rows)
    # A partition manifest sits at <partition dir>_manifests/<token>.json and its
    # files in <partition dir>: a file elsewhere is damage, or another dataset's.
    root = ref.key.rsplit("_manifests/", 1)[0]
    if (
        # Named by its write's token: another snapshot's manifest of the same
        # partition (same counts, even) swapped in has another token.
        not pm.token
        or pm.token not in ref.key
        or pm.dataset_id != manifest.dataset_id
        or pm.partition != ref.partition
        or len(pm.files) != ref.file_count
        or any(f.partition != ref.partition for f in pm.files)
        or sum(f.size for f in pm.files) != ref.size
        or total_rows != ref.row_count
        or any(not f.key.startswith(root) for f in pm.files)
    ):
        raise ManifestFormatError(
            f"partition manifest {ref.key!r} does not match snapshot {manifest.snapshot_id}'s "
            f"summary (dataset {pm.dataset_id!r}, partition {dict(pm.partition)!r}, "
            f"{len(pm.files)} files, {sum(f.size for f in pm.files)} bytes, {total_rows} rows)",
            key=ref.key,
            dataset_id=manifest.dataset_id,
            snapshot_id=manifest.snapshot_id,
        )
    return pm.files


async def load_files(
    store: Store,
    manifest: Manifest,
    match: Callable[[Mapping[str, str]], bool] | None = None,
) -> tuple[FileRef, ...]:
    """The files of ``manifest`` in partitions ``match`` accepts (all if ``None``).

    Inline files (v1, unpartitioned) cost nothing; partition manifests cost one
    ``get`` each, for matching partitions only, concurrently.

    Raises
    ------
    ManifestFormatError, StorageError
        As for :func:`load_partition`.
    """
    if not manifest.partition_manifests:
        return tuple(f for f in manifest.files if match is None or match(f.partition))
    refs = [r for r in manifest.partition_manifests if match is None or match(r.partition)]
    parts = await bounded_map(
        lambda r: load_partition(store, manifest, r), refs, limit=_CONCURRENCY
    )
    return tuple(f for part in parts for f in part)


async def with_files(store: Store, manifest: Manifest) -> Manifest:
    """``manifest`` with :attr:`~Manifest.files` loaded (itself if already so).

    Cost: one ``get`` per partition manifest, concurrent (0 when inline).

    Raises
    ------
    ManifestFormatError, StorageError
        As for :func:`load_partition`.
    """
    if manifest.files_loaded:
        return manifest
    return attrs.evolve(manifest, files=await load_files(store, manifest))
