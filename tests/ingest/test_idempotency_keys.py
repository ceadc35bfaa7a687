"""Pins a Dataset idempotency-key bug met while deciding how the ingestor resolves lost acks.

``Dataset.write(..., idempotency_key=...)`` stores a marker under ``_log/_keys/``
before committing and ignores a failure to store it (``_put_marker`` suppresses
every error). A write whose markers could not be stored succeeds, and a retry
with the same key from a new Dataset object (a new process after a crash) finds
no marker, starts its key check at the current head — after the first commit —
and commits the same key twice. The ingestor therefore keeps resolving a batch
whose commit outcome is unknown by its batch key in ``metadata["ingest"]``
(:func:`aiolode.ingest.find_batch`), which depends on no marker.
"""

from __future__ import annotations

import pytest

import aiolode
from aiolode.testing import Fail, FaultInjectingStore, Rule


async def test_a_key_whose_marker_could_not_be_stored_is_not_committed_twice(
    memory: aiolode.MemoryStore,
) -> None:
    await aiolode.Dataset("k", memory, codec=aiolode.JSONL()).write([{"page": 0}])
    faulty = FaultInjectingStore(memory, [Rule(op="put", key="*/_keys/*", action=Fail())])
    ds = aiolode.Dataset("k", faulty, codec=aiolode.JSONL(), retry=aiolode.Retry(attempts=1))
    # Without its marker a retry elsewhere could not find the commit: the write
    # fails, commits nothing, and leaves no file behind.
    with pytest.raises(aiolode.StorageError):
        await ds.write([{"page": 42}], idempotency_key="crawl/page-42")
    assert [s.id async for s in aiolode.Dataset("k", memory).snapshots()][1:] == []
    # A new process retries the same write: it commits once.
    again = await aiolode.Dataset("k", memory, codec=aiolode.JSONL()).write(
        [{"page": 42}], idempotency_key="crawl/page-42"
    )
    retry = await aiolode.Dataset("k", memory).write(
        [{"page": 42}], idempotency_key="crawl/page-42"
    )
    assert retry.id == again.id
    assert (await aiolode.verify_dataset(memory, "k")).orphans == ()
    keys = [s.manifest.idempotency_key async for s in aiolode.Dataset("k", memory).snapshots()]
    assert keys.count("crawl/page-42") == 1
