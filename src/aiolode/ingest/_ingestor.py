"""Ingestor: producers emit records through a policy; the ingestor batches and commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import anyio
import anyio.lowlevel

from .._validate import check_int, check_number, safe_repr
from ..codecs import JSONL
from ..dataset import Dataset
from ..errors import InvalidInputError, UnsupportedOperationError
from ._artifacts import ArtifactRef, artifact_index, check_artifact_args, store_artifact
from ._engine import Engine, Item, Limits, Ticket, Waiter
from ._policy import Buffered, Strict
from ._progress import RunProgress, configured_layout, run_progress
from ._records import RecordMaker
from ._run import Run

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from anyio.abc import TaskGroup

    from ._stats import Drop, IngestStats

__all__ = ("Ingestor",)

_DEFAULT_CLOSE_TIMEOUT = 60.0


def _limits(policy: Strict | Buffered) -> Limits:
    if isinstance(policy, Strict):
        return Limits(
            # One batch in flight and one filling: backpressure beyond that.
            cap_rows=2 * policy.max_batch_rows,
            cap_bytes=2 * policy.max_batch_bytes,
            batch_rows=policy.max_batch_rows,
            batch_bytes=policy.max_batch_bytes,
            delay=policy.max_delay,
            on_full="block",
            durable=True,
        )
    return Limits(
        cap_rows=policy.max_buffer_rows,
        cap_bytes=policy.max_buffer_bytes,
        batch_rows=policy.flush_rows,
        batch_bytes=policy.flush_bytes,
        delay=policy.flush_interval,
        on_full=policy.on_full,
        durable=False,
    )


@final
class Ingestor:
    """Emit records into a dataset through an ingestion policy, with run lineage.

    ::

        ds = aiolode.quarry_dataset("crawl", store)
        run = aiolode.Run("crawl-2026-11-30", source="shop", category="product")
        async with aiolode.Ingestor(ds, policy=aiolode.Buffered(), run=run) as ing:
            await ing.emit({"url": url, "status": 200}, event_type="item")
        print(ing.stats)   # emitted == written + dropped

    Every record written carries ``run_id``, ``seq`` (its position in the run:
    a total order) and ``event_type`` — plus ``source`` and ``category`` when
    the run has them, and ``day`` (UTC, from the event time) when the layout
    partitions by it. Every snapshot the ingestor commits carries, in
    ``metadata["ingest"]``: the run's lineage (``run``), the policy's name and
    parameters (``policy``), the batch key (``batch``), its ``rows``,
    ``seq_first``/``seq_last``, and the drops counted so far (``drops``: total,
    by reason, by event type). A run's records are committed in ``seq`` order.

    Use it as an async context manager (in one task). Leaving the block —
    cleanly, by an exception, or by cancellation — flushes every held record
    within ``close_timeout`` seconds (shielded from the cancellation), and
    counts what could not be written (``dropped_by_reason["deadline"]``): the
    buffer is never discarded silently.

    Parameters
    ----------
    dataset
        A records dataset (with a codec). Its layout's partition keys may
        include ``run_id``, ``event_type``, ``day``, ``source`` and ``category``
        (filled by the ingestor) and any field the records carry.
    policy
        :class:`~aiolode.Strict` (default) or :class:`~aiolode.Buffered`.
    run
        The run's lineage (default: :meth:`Run.new`).
    time_field
        A record field holding the event time (aware datetime, date or ISO
        8601 text), from which ``day`` is derived; without it, ``emit``'s
        ``event_time`` or the time of the emit.
    resume
        Continue the run: number records on from the highest ``seq`` it
        committed (:func:`~aiolode.ingest.run_progress`, read at open; see
        :attr:`progress`), and let ``emit_artifact`` return artifacts the run
        already stored by name instead of storing them again.
    artifacts
        The raw dataset artifacts go to (default: ``"<dataset id>.artifacts"``
        in the same store).
    on_drop
        Called (synchronously, must not block) with a :class:`~aiolode.ingest.Drop`
        for every dropped record, e.g. to spill it elsewhere. Its exceptions
        are logged and ignored.
    close_timeout
        Seconds the flush at exit (and :meth:`aclose` by default) may take.
    max_artifact_uploads
        Artifacts stored concurrently (each holds a few chunks in memory).

    Raises
    ------
    InvalidInputError
        An argument has the wrong type or value.

    Notes
    -----
    Cost: opening reads the dataset's descriptor (one ``get`` and the log's
    end, as the first write would); with ``resume``, also the run's progress
    (one ``get`` per commit record). Each batch is one ``write`` (see
    ``docs/cost.md``): with group commit, ``Strict`` producers share a commit
    per round trip; ``Buffered`` commits ``flush_rows`` records per snapshot.
    A commit whose outcome the store would not tell is looked up by its batch
    key (``latest()`` + one ``get`` per record committed since) before it is
    retried. Memory: the policy's capacity, plus one encoded batch.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        policy: Strict | Buffered | None = None,
        run: Run | None = None,
        time_field: str | None = None,
        resume: bool = False,
        artifacts: Dataset | None = None,
        on_drop: Callable[[Drop], object] | None = None,
        close_timeout: float = _DEFAULT_CLOSE_TIMEOUT,
        max_artifact_uploads: int = 4,
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise InvalidInputError(f"dataset must be an aiolode.Dataset, not {safe_repr(dataset)}")
        if policy is None:
            policy = Strict()
        if not isinstance(policy, Strict | Buffered):
            raise InvalidInputError(f"policy must be Strict or Buffered, not {safe_repr(policy)}")
        if run is None:
            run = Run.new()
        if not isinstance(run, Run):
            raise InvalidInputError(f"run must be an aiolode.Run, not {safe_repr(run)}")
        if time_field is not None and (not isinstance(time_field, str) or not time_field):
            raise InvalidInputError(
                f"time_field must be a field name or None, not {safe_repr(time_field)}"
            )
        if not isinstance(resume, bool):
            raise InvalidInputError(f"resume must be a bool, not {safe_repr(resume)}")
        if artifacts is not None and not isinstance(artifacts, Dataset):
            raise InvalidInputError(
                f"artifacts must be an aiolode.Dataset, not {safe_repr(artifacts)}"
            )
        if on_drop is not None and not callable(on_drop):
            raise InvalidInputError(f"on_drop must be callable, not {safe_repr(on_drop)}")
        self._close_timeout = check_number("close_timeout", close_timeout)
        check_int("max_artifact_uploads", max_artifact_uploads)
        self._ds = dataset
        self._policy = policy
        self._run = run
        self._time_field = time_field
        self._resume = resume
        self._artifacts_given = artifacts
        self._artifacts: Dataset | None = None
        self._artifact_slots = anyio.CapacityLimiter(max_artifact_uploads)
        self._artifact_index: dict[str, ArtifactRef] | None = None
        self._artifact_lock = anyio.Lock()
        self._on_drop = on_drop
        self._engine: Engine | None = None
        self._maker: RecordMaker | None = None
        self._progress: RunProgress | None = None
        self._tg: TaskGroup | None = None
        # Shielded: a cancellation of the block must not stop the writer before
        # the exit's flush; only the close deadline cancels it (explicitly).
        self._writer_scope = anyio.CancelScope(shield=True)
        self._state = "new"  # new -> open -> closed

    # ---------------------------------------------------------------- views
    @property
    def dataset(self) -> Dataset:
        """The dataset records are written to."""
        return self._ds

    @property
    def policy(self) -> Strict | Buffered:
        """The ingestion policy."""
        return self._policy

    @property
    def run(self) -> Run:
        """The run's lineage."""
        return self._run

    @property
    def progress(self) -> RunProgress | None:
        """With ``resume=True``: what the run had committed when this ingestor
        opened (``None`` otherwise)."""
        return self._progress

    @property
    def stats(self) -> IngestStats:
        """The counters now (``emitted == written + dropped + in_doubt + pending``)."""
        if self._engine is None:
            from ._stats import Counters

            return Counters().snapshot(0, 0)
        e = self._engine
        return e.counters.snapshot(e.held_rows, e.held_bytes)

    def __repr__(self) -> str:
        return (
            f"Ingestor({self._ds.id!r}, policy={self._policy!r}, run={self._run.run_id!r}, "
            f"state={self._state!r})"
        )

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Ingestor:
        """Open: resolve the dataset's configuration (and the run's progress with
        ``resume``), then start the writer.

        Raises
        ------
        InvalidInputError
            The dataset is raw (no codec), or the ingestor was already entered.
        ConfigMismatchError, StorageError, FormatError
            The dataset cannot be opened for writing.
        """
        if self._state != "new":
            raise InvalidInputError("an Ingestor can be entered once")
        layout = await configured_layout(self._ds)
        codec = self._ds.codec
        if codec is None:
            raise InvalidInputError(
                f"dataset {self._ds.id!r} is raw (codec=None); the ingestor writes records: "
                "use a dataset with a codec (artifacts go to a raw companion dataset)",
                dataset_id=self._ds.id,
            )
        first_seq = 1
        if self._resume:
            self._progress = await run_progress(self._ds, self._run.run_id)
            first_seq = self._progress.last_seq + 1
        self._maker = RecordMaker(
            self._run,
            layout,
            time_field=self._time_field,
            lines=isinstance(codec, JSONL),
        )
        self._engine = Engine(
            self._ds,
            layout,
            self._run,
            self._policy.describe(),
            _limits(self._policy),
            first_seq=first_seq,
            on_drop=self._on_drop,
            streaming=codec.streaming,
        )
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._writer)
        self._state = "open"
        return self

    async def _writer(self) -> None:
        assert self._engine is not None
        with self._writer_scope:
            await self._engine.run()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Flush (shielded, within ``close_timeout``), count what was not written,
        stop the writer. The block's own exception propagates unchanged.

        Raises
        ------
        BaseException
            Only the block's own exception or cancellation.
        """
        tg = self._tg
        if tg is None:
            return False
        with anyio.CancelScope(shield=True):
            await self._shutdown(self._close_timeout)
        self._tg = None
        if exc is None or isinstance(exc, Exception):
            # The writer has ended: the group has nothing left to wait for. Its
            # exit must not see the block's error (it would wrap it in a group).
            await tg.__aexit__(None, None, None)
            return False
        return bool(await tg.__aexit__(exc_type, exc, tb))

    async def aclose(self, *, deadline: float | None = None) -> IngestStats:
        """Stop accepting records, commit everything held, and stop the writer.

        Records still held when ``deadline`` seconds have passed are counted as
        dropped (reason ``"deadline"``; a commit already at its commit point is
        waited for — the store's own timeouts bound it). Calling it again
        returns the final stats. Cancelling ``aclose`` does not lose the buffer:
        the writer keeps draining, and leaving the ``async with`` block finishes
        the job.

        Parameters
        ----------
        deadline
            Seconds to wait for the flush (default: the ingestor's ``close_timeout``).

        Returns
        -------
        IngestStats
            The final counters (``pending == 0``).

        Raises
        ------
        InvalidInputError
            ``deadline`` is not a finite number >= 0.
        UnsupportedOperationError
            The ingestor was never entered.
        """
        timeout = self._close_timeout if deadline is None else check_number("deadline", deadline)
        if self._state == "new":
            raise UnsupportedOperationError("the ingestor was never entered (use async with)")
        await self._shutdown(timeout)
        return self.stats

    async def _shutdown(self, seconds: float) -> None:
        engine = self._engine
        assert engine is not None
        self._state = "closed"
        engine.close()
        with anyio.move_on_after(seconds):
            await engine.done.wait()
        if not engine.done.is_set():
            # Past the deadline: stop the writer; it counts what it leaves behind.
            self._writer_scope.cancel()
            with anyio.CancelScope(shield=True):
                await engine.done.wait()

    # ------------------------------------------------------------- producing
    def _open_engine(self) -> tuple[Engine, RecordMaker]:
        if self._state != "open" or self._engine is None or self._maker is None:
            raise UnsupportedOperationError(
                "the ingestor is not open (enter it with async with; it was closed?)",
                dataset_id=self._ds.id,
            )
        return self._engine, self._maker

    async def emit(
        self, record: Any, *, event_type: str = "event", event_time: Any = None
    ) -> int | None:
        """Emit one record.

        ``Strict``: returns once the record is committed (durable). ``Buffered``:
        returns at once while the buffer has room; when it is full,
        ``on_full="block"`` waits for room (first come, first served) and the
        drop policies return at once, dropping a record (counted).

        A ``Strict`` emit cancelled while it waits for the commit does not
        withdraw its record: it is committed (or counted) like the others. An
        emit cancelled while it waits for room is withdrawn (never emitted).

        Parameters
        ----------
        record
            A mapping; the written record is a copy with the lineage fields
            (the caller may reuse its mapping at once).
        event_type
            The record's event type (a partition key in Quarry's layout).
        event_time
            When the event happened (aware datetime, date or ISO 8601 text):
            gives ``day``; default: the ``time_field`` of the record, else now.

        Returns
        -------
        int or None
            The record's ``seq``, or ``None`` when it was dropped (Buffered,
            ``on_full="drop_newest"``).

        Raises
        ------
        InvalidInputError
            Not a mapping; a bad ``event_type`` or event time; a field the
            ingestor sets (``run_id``, ``seq``, ``event_type``, ``source``,
            ``category``, ``day``) holds another value; a partition field is missing.
        SchemaViolationError
            A value the codec cannot hold (JSON Lines: not JSON), or a
            partition value of an unsupported type (nothing was emitted).
        UnsupportedOperationError
            The ingestor is not open.
        AiolodeError
            ``Strict`` only: the record could not be written — the codec
            refused it alone (:class:`SchemaViolationError`), or a permanent
            store error (:class:`PermissionDeniedError`,
            :class:`DatasetNotFoundError`...); it is counted as dropped.
        """
        engine, maker = self._open_engine()
        rec, nbytes = maker.make(record, event_type, event_time)
        if engine.limits.durable:
            await anyio.lowlevel.checkpoint_if_cancelled()
            engine, _ = self._open_engine()
            ticket = Ticket()
            got = engine.offer(Item(rec, nbytes, event_type, ticket))
            seq = await engine.wait_admitted(got) if isinstance(got, Waiter) else got
            await engine.wait_durable(ticket)
            return seq
        # A real checkpoint, so a producer emitting in a tight loop lets the
        # writer run (trio's rule: an async call always is one).
        await anyio.lowlevel.checkpoint()
        engine, _ = self._open_engine()
        got = engine.offer(Item(rec, nbytes, event_type, None))
        if isinstance(got, Waiter):
            return await engine.wait_admitted(got)
        return got

    async def flush(self) -> None:
        """Commit everything emitted so far (whatever the thresholds) and wait
        until each of those records is written or counted as dropped.

        Raises
        ------
        UnsupportedOperationError
            The ingestor is not open.
        """
        engine, _ = self._open_engine()
        target = engine.request_flush()
        while not engine.resolved_through(target) and not engine.done.is_set():
            await engine.wait_progress()

    # ------------------------------------------------------------- artifacts
    def _artifacts_ready(self) -> Dataset | None:
        # A method, not an attribute test: other tasks set it while we wait.
        return self._artifacts

    async def _artifact_dataset(self) -> Dataset:
        if self._artifacts is not None:
            return self._artifacts
        async with self._artifact_lock:
            ready = self._artifacts_ready()
            if ready is not None:
                return ready  # another task opened it while we waited
            ads = self._artifacts_given
            if ads is None:
                ads = Dataset(f"{self._ds.id}.artifacts", self._ds.store)
            await configured_layout(ads)
            if ads.codec is not None:
                raise InvalidInputError(
                    f"artifacts dataset {ads.id!r} has a codec; artifacts need a raw dataset",
                    dataset_id=ads.id,
                )
            if self._resume:
                self._artifact_index = await artifact_index(ads, self._run.run_id)
            self._artifacts = ads
            return ads

    async def emit_artifact(
        self, name: str, data: Any, *, content_type: str = "application/octet-stream"
    ) -> ArtifactRef:
        """Store a large binary payload in the companion raw dataset; put the
        returned reference (:meth:`ArtifactRef.to_record`) in the item records
        that use it.

        Durable on return whatever the policy (a record must never reference a
        missing blob). ``data`` is bytes (one put) or an async iterable of bytes
        (streamed: memory stays at a few chunks; S3 multipart). At most
        ``max_artifact_uploads`` run at once; more wait. With ``resume=True``,
        an artifact the run already stored under ``name`` is returned as it is
        (``data`` is not consumed).

        Cost: one ``write`` / ``stream_write`` of the companion dataset
        (concurrent calls share commits); its first call opens that dataset
        (one ``get``; with ``resume``, one ``get`` per commit record).

        Raises
        ------
        InvalidInputError
            Bad ``name``, ``content_type`` or ``data``; the artifacts dataset
            has a codec.
        UnsupportedOperationError
            The ingestor is not open.
        SnapshotConflictError, StorageError
            The artifact could not be stored (nothing references it).
        """
        check_artifact_args(name, content_type)
        engine, _ = self._open_engine()
        ads = await self._artifact_dataset()
        index = self._artifact_index
        if index is not None and name in index:
            return index[name]
        meta: dict[str, Any] = {"ingest": {"run": self._run.describe()}}
        async with self._artifact_slots:
            ref = await store_artifact(ads, name, data, content_type, meta)
        engine.counters.artifacts += 1
        engine.counters.artifact_bytes += ref.size
        if index is not None:
            index[name] = ref
        return ref
