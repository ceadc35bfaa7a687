"""The checker process of the crash and race harnesses: verify + invariants, fresh.

``python -m harness._check <kind> <location> <spec.json>`` prints one JSON line
``{"violations": [...], ...}``. The spec names the datasets and volume to check
and what their writers acknowledged.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

import aiolode

from ._common import CONFIGS, all_snapshots, check_dataset, check_volume, make_dataset
from ._proc import open_location


async def main(kind: str, location: str, spec_path: str) -> dict[str, Any]:
    with open(spec_path) as f:  # noqa: ASYNC230 - a small file, before any concurrency
        spec = json.load(f)
    violations: list[str] = []
    snapshots: dict[str, int] = {}
    complete: dict[str, bool] = {}
    async with open_location(kind, location) as store:
        for ds in spec.get("datasets", []):
            cfg = next(c for c in CONFIGS if c.name == ds["config"])
            attempted = set(ds["attempted"]) if ds.get("attempted") is not None else None
            bad = await check_dataset(
                store, cfg, acked=ds["acked"], attempted=attempted, ds_id=ds["id"]
            )
            violations += [f"{ds['id']}: {b}" for b in bad]
            ds_obj = make_dataset(store, cfg, ds_id=ds["id"])
            snapshots[ds["id"]] = len(await all_snapshots(ds_obj))
        for vol in spec.get("volumes", []):
            acked = [(sid, [tuple(b) for b in blocks]) for sid, blocks in vol["acked"]]
            bad = await check_volume(
                store,
                total=vol["total"],
                acked=acked,
                vol_id=vol["id"],  # type: ignore[arg-type]
            )
            violations += [f"{vol['id']}: {b}" for b in bad]
            v = aiolode.Volume(vol["id"], store, vol["total"], checksum=aiolode.SHA256())
            snapshots[vol["id"]] = len([s async for s in v.snapshots()])
            try:
                complete[vol["id"]] = (await v.latest()).is_complete
            except aiolode.NoSnapshotsError:
                complete[vol["id"]] = False
    return {"violations": violations, "snapshots": snapshots, "complete": complete}


if __name__ == "__main__":
    out = anyio.run(main, *sys.argv[1:4])
    print(json.dumps(out))
    sys.exit(1 if out["violations"] else 0)
