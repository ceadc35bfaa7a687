"""What both checks share about a history: which records a listing holds, the
log's own objects (the hint and the low-water mark), and the one linear chain
the records must form.

The record keys come from :mod:`aiolode.manifest._ids`. The pointer documents
are spelled here from the format (``docs/spec/volume-v1.md``, "The log"): the
check reads them the way a stranger would, not through the history layer it
checks.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from ..errors import AiolodeError
from ._objects import doc_problem, fetch_docs
from ._report import ProblemKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ..store import Store
    from ._report import Findings

__all__ = ("WINDOW", "Chain", "fetch_window", "low_water_mark", "records_in", "windows")

#: Records (roots) fetched and held at once: bounds memory on long histories.
WINDOW = 256
#: The low-water mark document: ``{"schema_name": LWM_SCHEMA, "format_version": 1,
#: "owner": <id>, "seq": <n>}`` at ``<log prefix>_lwm.json``.
LWM_SCHEMA = "aiolode.log.lwm"


def records_in(listing: Mapping[str, int], prefix: str, width: int) -> dict[int, str]:
    """The log records in ``listing``: sequence number -> key (``<prefix><seq:0{width}d>.json``)."""
    pattern = re.compile(rf"(\d{{{width}}})\.json")
    out: dict[int, str] = {}
    for key in listing:
        if key.startswith(prefix):
            m = pattern.fullmatch(key, len(prefix))
            if m is not None and int(m.group(1)) > 0:
                out[int(m.group(1))] = key
    return out


def windows(first: int, last: int) -> Iterator[list[int]]:
    """``first..last`` in consecutive runs of at most :data:`WINDOW` numbers."""
    for start in range(first, last + 1, WINDOW):
        yield list(range(start, min(start + WINDOW, last + 1)))


async def fetch_window(
    store: Store, seqs: list[int], keys: Mapping[int, str]
) -> dict[int, bytes | AiolodeError]:
    """Fetch the records of the sequence numbers in ``seqs`` that have a key."""
    present = [s for s in seqs if s in keys]
    return dict(zip(present, await fetch_docs(store, [keys[s] for s in present]), strict=True))


def _lwm_seq(raw: bytes, owner_id: str) -> int | str:
    """The sequence number a low-water mark names, or why it names none."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not JSON ({exc})"
    if not isinstance(doc, dict) or doc.get("schema_name") != LWM_SCHEMA:
        return f"not an {LWM_SCHEMA!r} document"
    if doc.get("format_version") != 1:
        return f"unknown format version {doc.get('format_version')!r}"
    if doc.get("owner") != owner_id:
        return f"belongs to {doc.get('owner')!r}"
    seq = doc.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return f"names no sequence number ({seq!r})"
    return seq


async def low_water_mark(
    store: Store,
    findings: Findings,
    listing: Mapping[str, int],
    key: str,
    owner_id: str,
    last_seq: int,
) -> int:
    """The oldest retained record (1 when the log has no low-water mark).

    Records below it were expired and may have been collected: they are not
    gaps. An unusable mark is reported (readers of a collected log would take
    it for an empty one) and counts as 1. Cost: one ``get`` when it exists.
    """
    findings.referenced.add(key)
    if key not in listing:
        return 1
    (raw,) = await fetch_docs(store, [key])
    if isinstance(raw, AiolodeError):
        doc_problem(findings, key, raw, "low-water mark", None)
        return 1
    seq = _lwm_seq(raw, owner_id)
    if isinstance(seq, str):
        findings.add(
            ProblemKind.INVALID_RECORD, f"low-water mark {key!r} is unusable: {seq}", key=key
        )
        return 1
    if last_seq and seq > last_seq:
        findings.add(
            ProblemKind.BROKEN_CHAIN,
            f"low-water mark {key!r} names record {seq}, past the newest record ({last_seq}): "
            "readers would see no history",
            key=key,
        )
        return 1
    return seq


@attrs.define
class Chain:
    """Follows a history snapshot by snapshot: parents, times, gaps.

    ``linked`` says whether the previous snapshot is known: after a gap or an
    unreadable record (already reported) the next parent cannot be checked,
    and at a low-water mark above 1 the first parent was expired.
    """

    linked: bool = True
    prev_id: str | None = None
    prev_time: datetime | None = None

    def broken(self) -> None:
        """The previous record is unreadable (already reported)."""
        self.linked = False

    def gap(self, findings: Findings, what: str, key: str, snapshot_id: str, last: int) -> None:
        """Report a missing record below the newest one (``last``)."""
        findings.add(
            ProblemKind.BROKEN_CHAIN,
            f"{what} {key!r} is missing but record {last} exists (a gap)",
            key=key,
            snap=snapshot_id,
        )
        self.linked = False

    def follow(
        self,
        findings: Findings,
        key: str,
        snapshot_id: str,
        parent_id: str | None,
        created_at: datetime,
    ) -> None:
        """Report a snapshot that does not continue the chain; then it is the last one."""
        if self.linked and parent_id != self.prev_id:
            findings.add(
                ProblemKind.BROKEN_CHAIN,
                f"snapshot {snapshot_id} has parent {parent_id!r}, expected {self.prev_id!r}",
                key=key,
                snap=snapshot_id,
            )
        if self.prev_time is not None and created_at < self.prev_time:
            findings.add(
                ProblemKind.BROKEN_CHAIN,
                f"snapshot {snapshot_id} was created at {created_at.isoformat()}, before "
                f"its predecessor ({self.prev_time.isoformat()})",
                key=key,
                snap=snapshot_id,
            )
        self.linked, self.prev_id, self.prev_time = True, snapshot_id, created_at
