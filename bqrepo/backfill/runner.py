"""Run a back-fill: read chunks, convert through the row types, write, checkpoint, verify.

The runner reports progress through a small :class:`Progress` protocol so
that the core never imports the CLI; ``bqrepo backfill`` renders it with a
rich progress bar. ``after_write`` is a documented hook called after a
chunk's write and before its checkpoint commit: the tests use it to simulate
a crash at the worst moment, and operators can use it for their own
instrumentation.

Why the plan counts load jobs: BigQuery allows 1,500 load jobs per table per
day, and one write is one load job (the load writer packs up to 4,000
partitions into a job). A chunk is written in writes of at most
``rows_per_write`` rows, which bounds memory, so a run takes
``sum(ceil(rows of chunk / rows_per_write))`` jobs. The default mapping
chunks daily tables by month, so six years of events is 72 chunks and, below
``rows_per_write`` rows a month, 72 load jobs. The plan is reported before
anything is written (:meth:`Progress.started`), with a warning above
:data:`JOB_BUDGET`.

A chunk is committed only when every row was stored or refused for a
reason of its own (a bad value). When rows were not stored for a reason a
retry can cure (BigQuery failed the load job even after the writer's
backoff, the load-job quota is used up, the network or BigQuery failed a
request), the writer raises :class:`~bqrepo.errors.TransientError`, the run
stops with it, the chunk stays in flight, and the next run resumes there,
writing only the ids still missing. (The writers used here, load jobs and
DuckDB's, never return a row marked ``retryable``: a load job is atomic, so
a transient failure stores none of its rows and raises.)
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.backend import backend_of
from bqrepo.backfill.checkpoint import Checkpoint
from bqrepo.backfill.chunks import Chunk, chunks, covered, merge, next_boundary
from bqrepo.backfill.mapping import TableMapping
from bqrepo.backfill.reader import SourceReader, prefetched
from bqrepo.backfill.verify import SourceTally, VerificationReport, verify
from bqrepo.errors import InvalidArgumentError, TransientError
from bqrepo.json_encoding import rejection_line
from bqrepo.rows import Row, row_type, validate_rows

__all__ = ["JOB_BUDGET", "ROWS_PER_WRITE", "BackfillResult", "Plan", "Progress", "plan_backfill", "run_backfill"]

#: Rows held in memory and sent per write (one load job on BigQuery).
ROWS_PER_WRITE = 100_000
#: Source records validated at a time (then only their rows are kept).
VALIDATE_BATCH = 10_000
#: Load jobs per table one run should stay under: BigQuery's 1,500 per table
#: per day are shared with live ingestion and with other runs that day.
JOB_BUDGET = 500


class Progress(Protocol):
    """What a back-fill tells its caller while it runs.

    ``planned_writes`` is an upper bound on the writes (load jobs on
    BigQuery) the run will make; a reconciled chunk may need fewer.
    ``warnings`` (a plan over :data:`JOB_BUDGET` load jobs) come before the
    first write, while stopping the run still costs nothing.
    """

    def started(
        self,
        *,
        total_rows: int,
        total_chunks: int,
        done_rows: int,
        done_chunks: int,
        planned_writes: int,
        warnings: Sequence[str],
    ) -> None:
        """Called once, before anything is written; ``warnings`` are also in :attr:`BackfillResult.notes`."""

    def chunk_done(self, chunk: Chunk, rows: int) -> None: ...

    def verifying(self) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What a run will do: its chunks, those still to write, and their row counts and writes."""

    chunks: list[Chunk]
    todo: list[Chunk]
    rows: list[int]  # source rows of each chunk of ``todo``
    done_rows: int  # source rows of the chunks already completed
    rows_per_write: int

    @property
    def writes(self) -> int:
        """At most this many writes (load jobs on BigQuery): a non-empty chunk takes one per ``rows_per_write`` rows."""
        return sum(math.ceil(count / self.rows_per_write) for count in self.rows)


def plan_backfill(
    reader: SourceReader,
    mapping: TableMapping,
    checkpoint: Checkpoint,
    since: dt.date,
    until: dt.date,
    *,
    rows_per_write: int = ROWS_PER_WRITE,
) -> Plan:
    """Cut ``[since, until)`` into ``mapping.chunk`` chunks and count what is left to write.

    One count query per chunk still to write (empty chunks cost no job), and
    one per run of consecutive completed chunks: completed chunks may have
    other bounds than the planned ones.
    """
    if rows_per_write < 1:
        raise ValueError("rows_per_write must be positive")
    chunk_list = list(chunks(since, until, mapping.chunk, timestamp=mapping.timestamp))
    completed = merge(checkpoint.completed)
    todo = [chunk for chunk in chunk_list if not covered(chunk, completed)]
    skipped = merge(chunk for chunk in chunk_list if covered(chunk, completed))
    return Plan(
        chunks=chunk_list,
        todo=todo,
        rows=[reader.count(chunk.start, chunk.end) for chunk in todo],
        done_rows=sum(reader.count(run.start, run.end) for run in skipped),
        rows_per_write=rows_per_write,
    )


def _batches(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(records, size)):
        yield batch


class _Silent:
    def started(self, **_: Any) -> None:
        pass

    def chunk_done(self, chunk: Chunk, rows: int) -> None:
        pass

    def verifying(self) -> None:
        pass


@dataclass
class BackfillResult:
    """What one run did; ``verification`` is None when verification was skipped."""

    table: str
    since: dt.date
    until: dt.date
    chunks_total: int
    chunks_written: int
    chunks_skipped: int
    rows_written: int
    rows_rejected: int
    rows_reconciled: int
    rejected_file: Path | None
    seconds: float
    writes_planned: int = 0
    writes: int = 0
    verification: VerificationReport | None = None
    notes: list[str] = field(default_factory=list)


def _rejection(table: str, chunk: Chunk, source_row: Any, problems: Sequence[tuple[str | None, str]]) -> str:
    """One rejected row's line in the rejected file (the shape ``bqrepo ingest`` writes too)."""
    return rejection_line({"table": table, "chunk": chunk.key}, problems, "source_row", source_row)


def _write_rejections(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


def _stopped(table: str, chunk: Chunk, why: str) -> str:
    """The message of a run stopped by a retryable failure: what, where, and what to do."""
    return (
        f"back-fill of {table} stopped at chunk {chunk.key}: {why}\n"
        "Nothing is lost and nothing was marked done: run the same command again "
        "(after 10+ minutes for a quota); it resumes from this chunk and writes only the "
        "rows still missing."
    )


def _writer(destination: Engine) -> Any:
    from bqrepo.writers import writer_for

    return writer_for(destination, method="load")  # load jobs on BigQuery; DuckDB has one writer


def run_backfill(
    reader: SourceReader,
    destination: Engine,
    mapping: TableMapping,
    checkpoint: Checkpoint,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    rejected_file: Path,
    progress: Progress | None = None,
    verify_after: bool = True,
    pause: float = 0.0,
    after_write: Callable[[Chunk], None] | None = None,
    rows_per_write: int = ROWS_PER_WRITE,
) -> BackfillResult:
    """Back-fill ``mapping.target`` over ``[since, until)`` (default: all the source holds).

    Resumable, and the range may change between runs. The plan is compared
    with ``checkpoint`` by interval, because edge chunks are clipped to each
    run's range and so the same partitions get different keys:

    - a planned chunk lying inside completed chunks is skipped;
    - one that overlaps a completed or in-flight chunk (whatever its bounds)
      is reconciled: only the ids missing from its range in the destination
      are written, so rows written before are never written twice;
    - any other chunk holds nothing from this back-fill and is written whole.

    ``pause`` seconds between chunks spare a busy source database. A chunk
    is read through a server-side cursor and written ``rows_per_write`` rows
    at a time, so memory holds at most that many rows; it is committed to
    the checkpoint once all its rows are written.
    """
    progress = progress or _Silent()
    begun = time.monotonic()
    table = mapping.target
    target_row_type = row_type(table)
    notes: list[str] = []
    given_until = until
    if since is None or until is None:
        bounds = reader.bounds()
        if bounds is None:
            notes.append(f"{mapping.source_name} is empty")
            bounds = (dt.date.today(), dt.date.today())
        since = since or bounds[0]
        until = until or next_boundary(bounds[1], "day")
    if until <= since:
        if given_until is None:  # never name an --until the user did not give
            raise InvalidArgumentError(
                "since", f"{since} is after the newest row of {mapping.source_name} ({until}): nothing to copy"
            )
        raise InvalidArgumentError("until", f"{until} must be after since ({since})")
    plan = plan_backfill(reader, mapping, checkpoint, since, until, rows_per_write=rows_per_write)
    chunk_list, todo = plan.chunks, plan.todo
    warnings: list[str] = []
    if plan.writes > JOB_BUDGET and backend_of(destination).load_job_quota:
        warnings.append(
            f"planned {plan.writes:,} load jobs, over {JOB_BUDGET:,}: BigQuery allows 1,500 per table "
            "per day; use a coarser chunk in the mapping or split the run with --until across days"
        )
    notes += warnings
    progress.started(
        total_rows=plan.done_rows + sum(plan.rows),
        total_chunks=len(chunk_list),
        done_rows=plan.done_rows,
        done_chunks=len(chunk_list) - len(todo),
        planned_writes=plan.writes,
        warnings=warnings,
    )
    # Chunks written by this run never overlap each other, so earlier work is read once.
    earlier = merge([*checkpoint.completed, *checkpoint.in_flight])

    writer: Any = _writer(destination) if todo else None
    partition = table.c[mapping.partition_column]
    ids_statement = sa.select(table.c.id).where(
        partition >= sa.bindparam("start", type_=partition.type),
        partition < sa.bindparam("end", type_=partition.type),
    )
    written = rejected = reconciled = writes = 0
    # The rows validated for writing are folded for the verification as they pass.
    tally = SourceTally(mapping, destination) if verify_after else None
    for position, chunk in enumerate(todo):
        if pause and position:
            time.sleep(pause)
        present: set[str] = set()
        if any(chunk.overlaps(part) for part in earlier):
            # Some of this range may be written already (another run's bounds, or a kill
            # between write and commit): keep what landed, write only what is missing.
            with destination.connect() as connection:
                present = set(connection.execute(ids_statement, {"start": chunk.start, "end": chunk.end}).scalars())
        checkpoint.begin(chunk)
        chunk_written = chunk_present = chunk_records = 0
        rejections: list[str] = []
        pending: list[Row] = []

        def write(rows: Sequence[Row]) -> None:
            nonlocal writes, chunk_written
            try:
                result = writer.write(table, rows)
            except TransientError as exc:
                raise TransientError(_stopped(table.name, chunk, str(exc))) from exc
            writes += result.requests  # load jobs: a write over 4,000 partitions or the job-size bound takes several
            chunk_written += result.written
            rejections.extend(_rejection(table.name, chunk, r.row, r.problems) for r in result.rejected)

        # Records are validated VALIDATE_BATCH at a time and dropped: memory holds
        # the validated rows of one write, not also the records they came from.
        batches = _batches(reader.iter_records(chunk.start, chunk.end), min(VALIDATE_BATCH, rows_per_write))
        for records in prefetched(batches):
            chunk_records += len(records)
            validation = validate_rows(target_row_type, records)
            if tally is not None:
                tally.add(records, validation)
            rejections.extend(
                _rejection(table.name, chunk, records[index], [(e.field, e.message) for e in errors])
                for index, errors in validation.errors_by_row().items()
            )
            rows: list[Row] = [row for row in validation.rows if row.id not in present]  # type: ignore[attr-defined]
            chunk_present += len(validation.rows) - len(rows)
            pending.extend(rows)
            while len(pending) >= rows_per_write:
                write(pending[:rows_per_write])
                del pending[:rows_per_write]
        if pending:
            write(pending)
        if after_write is not None:
            after_write(chunk)
        if rejections:
            _write_rejections(rejected_file, rejections)
        checkpoint.commit(chunk, chunk_written + chunk_present)
        if tally is not None:
            tally.chunk_done(chunk)
        written += chunk_written
        reconciled += chunk_present
        rejected += len(rejections)
        progress.chunk_done(chunk, chunk_records)

    outcome = BackfillResult(
        table=table.name,
        since=since,
        until=until,
        chunks_total=len(chunk_list),
        chunks_written=len(todo),
        chunks_skipped=len(chunk_list) - len(todo),
        rows_written=written,
        rows_rejected=rejected,
        rows_reconciled=reconciled,
        rejected_file=rejected_file if rejected else None,
        seconds=0.0,
        writes_planned=plan.writes,
        writes=writes,
        notes=notes,
    )
    if verify_after and chunk_list:
        progress.verifying()
        outcome.verification = verify(reader, destination, mapping, chunk_list, tally=tally)
    if tally is not None:
        tally.close()
    outcome.seconds = time.monotonic() - begun
    return outcome
