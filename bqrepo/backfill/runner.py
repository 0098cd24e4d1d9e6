"""Run a back-fill: read chunks, convert through the row types, write, checkpoint, verify.

The runner reports progress through a small :class:`Progress` protocol so
that the core never imports the CLI; ``bqrepo backfill`` renders it with a
rich progress bar. ``after_write`` is a documented hook called after a
chunk's write and before its checkpoint commit: the tests use it to simulate
a crash at the worst moment, and operators can use it for their own
instrumentation.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.backfill.checkpoint import Checkpoint
from bqrepo.backfill.chunks import Chunk, chunks, covered, merge, next_boundary
from bqrepo.backfill.mapping import TableMapping
from bqrepo.backfill.reader import SourceReader
from bqrepo.backfill.verify import VerificationReport, verify
from bqrepo.json_encoding import report_json
from bqrepo.rows import ROW_TYPES, Row, validate_rows

__all__ = ["BackfillResult", "Progress", "run_backfill"]


class Progress(Protocol):
    """What a back-fill tells its caller while it runs."""

    def started(self, *, total_rows: int, total_chunks: int, done_rows: int, done_chunks: int) -> None: ...

    def chunk_done(self, chunk: Chunk, rows: int) -> None: ...

    def verifying(self) -> None: ...


class _Silent:
    def started(self, **_: int) -> None:
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
    verification: VerificationReport | None = None
    notes: list[str] = field(default_factory=list)


def _rejection(chunk: Chunk, source_row: Any, problems: Sequence[tuple[str | None, str]]) -> dict[str, Any]:
    """One rejected row's line: ``field``/``reason`` of its first problem, and all of them."""
    return {
        "chunk": chunk.key,
        "source_row": source_row,
        "field": problems[0][0],
        "reason": problems[0][1],
        "errors": [{"field": name, "reason": reason} for name, reason in problems],
    }


def _write_rejections(path: Path, table: str, rejections: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for rejection in rejections:
            handle.write(report_json({"table": table, **rejection}) + "\n")


def _writer(destination: Engine) -> Any:
    from bqrepo.writers import writer_for

    return writer_for(destination, method="load" if destination.dialect.name == "bigquery" else "auto")


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

    ``pause`` seconds between chunks spare a busy source database.
    """
    progress = progress or _Silent()
    begun = time.monotonic()
    table = mapping.target
    row_type = ROW_TYPES[table.name]
    notes: list[str] = []
    if since is None or until is None:
        bounds = reader.bounds()
        if bounds is None:
            notes.append(f"{mapping.source_name} is empty")
            bounds = (dt.date.today(), dt.date.today())
        since = since or bounds[0]
        until = until or next_boundary(bounds[1], "day")
    if until <= since:
        raise ValueError(f"--until ({until}) must be after --since ({since})")
    chunk_list = list(chunks(since, until, mapping.chunk, timestamp=mapping.timestamp))
    completed = merge(checkpoint.completed)
    todo = [chunk for chunk in chunk_list if not covered(chunk, completed)]
    # Chunks written by this run never overlap each other, so earlier work is read once.
    earlier = merge([*checkpoint.completed, *checkpoint.in_flight])
    # The progress bar's head start, counted in the source: skipped chunks may be covered
    # by completed chunks with other bounds (one query per run of consecutive chunks).
    skipped = merge(chunk for chunk in chunk_list if covered(chunk, completed))
    done_rows = sum(reader.count(run.start, run.end) for run in skipped)
    total_rows = reader.count(chunk_list[0].start, chunk_list[-1].end) if chunk_list else 0
    progress.started(
        total_rows=total_rows,
        total_chunks=len(chunk_list),
        done_rows=done_rows,
        done_chunks=len(chunk_list) - len(todo),
    )

    writer = _writer(destination) if todo else None
    partition = table.c[mapping.partition_column]
    ids_statement = sa.select(table.c.id).where(
        partition >= sa.bindparam("start", type_=partition.type),
        partition < sa.bindparam("end", type_=partition.type),
    )
    written = rejected = reconciled = 0
    for position, chunk in enumerate(todo):
        if pause and position:
            time.sleep(pause)
        records = reader.read(chunk)
        validation = validate_rows(row_type, records)
        rejections = [
            _rejection(chunk, records[index], [(e.field, e.message) for e in errors])
            for index, errors in validation.errors_by_row().items()
        ]
        rows: Sequence[Row] = validation.rows
        if any(chunk.overlaps(part) for part in earlier):
            # Some of this range may be written already (another run's bounds, or a kill
            # between write and commit): keep what landed, write only what is missing.
            with destination.connect() as connection:
                present = set(connection.execute(ids_statement, {"start": chunk.start, "end": chunk.end}).scalars())
            before = len(rows)
            rows = [row for row in rows if row.id not in present]  # type: ignore[attr-defined]
            reconciled += before - len(rows)
        checkpoint.begin(chunk)
        result = writer.write(table, rows) if rows else None
        chunk_written = result.written if result else 0
        if result is not None and result.rejected:
            rejections.extend(_rejection(chunk, r.row, r.problems) for r in result.rejected)
        if after_write is not None:
            after_write(chunk)
        if rejections:
            _write_rejections(rejected_file, table.name, rejections)
        checkpoint.commit(chunk, chunk_written + (len(validation.rows) - len(rows)))
        written += chunk_written
        rejected += len(rejections)
        progress.chunk_done(chunk, len(records))

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
        notes=notes,
    )
    if verify_after and chunk_list:
        progress.verifying()
        outcome.verification = verify(reader, destination, mapping, chunk_list)
    outcome.seconds = time.monotonic() - begun
    return outcome
