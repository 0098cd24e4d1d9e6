"""``bqrepo ingest TABLE FILE``: validate every row of a file and write the good ones.

Rows that fail validation (or that the database rejects) are written, with
their position in the file and the reasons, to a JSON Lines file the command
names: one line per rejected row, listing every problem of that row (see
docs/cli.md); the good rows of the same batch are written regardless. The exit code
is 1 when any row was rejected, so a script notices.
"""

from __future__ import annotations

import gc
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.files import BadRecord, Record, count_records, detect_format, read_batches
from bqrepo.cli.render import console, err_console
from bqrepo.cli.state import state_of
from bqrepo.json_encoding import rejection_line

if TYPE_CHECKING:
    from bqrepo.engine import ConnectionLease
    from bqrepo.rows import Row, ValidRow
    from bqrepo.writers import WriteResult

__all__ = ["register"]


class _WriteBehind:
    """Writes one batch in a thread while the caller reads and validates the next.

    Why: reading and validating are Python work that holds the GIL; a
    DuckDB insert (and a BigQuery request) mostly runs without it, so on a
    second core the write of batch N hides behind the validation of batch
    N+1. One batch at a time is in flight: :meth:`submit` takes the next
    only once :meth:`result` has returned the previous one's outcome (or
    raised its error), so memory holds at most two batches and the caller
    sees outcomes in order.

    The thread also keeps ``lease``'s promise when batches stop coming: it
    gives the file back once the lease runs out, and at the end.
    """

    def __init__(self, write: Callable[[list[Row]], WriteResult], lease: ConnectionLease | None) -> None:
        self._write = write
        self._lease = lease
        self._jobs: queue.Queue[tuple[list[Row], Future[WriteResult]] | None] = queue.Queue()
        self._pending: Future[WriteResult] | None = None
        self._thread = threading.Thread(target=self._run, name="bqrepo-ingest-writes", daemon=True)
        self._thread.start()

    def submit(self, rows: list[Row]) -> None:
        if self._pending is not None:
            raise RuntimeError("the previous batch's result was not taken")
        self._pending = Future()
        self._jobs.put((rows, self._pending))

    def result(self) -> WriteResult | None:
        """The outcome of the batch in flight (``None`` when there is none); re-raises its error."""
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self._lease.remaining() if self._lease else None)
            except queue.Empty:  # the lease ran out while no batch came
                if self._lease is not None:
                    self._lease.release()
                continue
            if job is None:
                break
            rows, future = job
            try:
                future.set_result(self._write(rows))
            except BaseException as exc:  # handed to the caller, who raises it
                future.set_exception(exc)
        if self._lease is not None:
            self._lease.release()

    def __enter__(self) -> _WriteBehind:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        # A batch still being written is finished (and committed) first.
        self._jobs.put(None)
        self._thread.join()


def _rejected_path(path: Path) -> Path:
    """``events.2026-11.jsonl`` -> ``events.2026-11.rejected.jsonl``: one file per input."""
    return path.with_name(path.name.removesuffix(path.suffix) + ".rejected.jsonl")


#: Batches handled between two collections of the garbage collector's youngest generation.
_BATCHES_PER_COLLECTION = 20


def ingest(
    ctx: typer.Context,
    table: str = typer.Argument(
        ..., help="A declared table: events, entity_mentions, fred_indicators, un_comtrade, world_bank, "
        "or one of --metadata's."
    ),
    file: Path = typer.Argument(..., help="A .jsonl, .csv or .parquet file."),
    fmt: str | None = typer.Option(None, "--format", help="jsonl, csv or parquet. Default: from the suffix."),
    rejected: Path | None = typer.Option(None, help="Where rejected rows go. Default: FILE with its suffix replaced by .rejected.jsonl."),
    method: str = typer.Option("auto", help="BigQuery write method: auto, stream or load (DuckDB: bulk)."),
    batch_size: int = typer.Option(5_000, min=1, max=1_000_000, help="Rows validated and written per batch."),
) -> None:
    """Validate each row of FILE and append the valid ones to TABLE."""
    from bqrepo.backend import DuckDBBackend, backend_of
    from bqrepo.engine import ConnectionLease, create_engine
    from bqrepo.rows import collection_paused, row_type, validate_rows
    from bqrepo.writers import writer_for
    from bqrepo.writers.duckdb_bulk import DuckDBWriter

    target = state_of(ctx).table(table)
    if method not in ("auto", "stream", "load"):
        raise UserError(f"--method must be auto, stream or load, not {method!r}")
    if not file.is_file():
        raise UserError(f"no such file: {file}")
    fmt_name = detect_format(file, fmt)
    target_row_type = row_type(target)
    rejected_path = rejected or _rejected_path(file)
    if rejected_path.resolve() == file.resolve():
        raise UserError(f"--rejected {rejected_path} is the input file; name another file")
    if not rejected_path.parent.is_dir():
        raise UserError(f"no such directory for rejected rows: {rejected_path.parent}")
    # Rejections go to a temporary file renamed at the end: an earlier run's
    # file is replaced only by this run's, never lost to a run that fails.
    partial = rejected_path.with_name(rejected_path.name + ".partial")
    total = count_records(file, fmt_name)
    settings = state_of(ctx).settings()
    engine = create_engine(settings)
    written = rejected_count = duplicates = 0
    rejected_handle = None
    finished = False

    def reject(position: int, problems: Sequence[tuple[str | None, str]], record: Any) -> None:
        """One line for one rejected row: where it was, every (field, reason), the record."""
        nonlocal rejected_handle, rejected_count
        if rejected_handle is None:
            rejected_handle = partial.open("w", encoding="utf-8")
        rejected_handle.write(rejection_line({"position": position}, problems, "record", record) + "\n")
        rejected_count += 1

    try:
        lease = ConnectionLease(engine) if isinstance(backend_of(engine), DuckDBBackend) else None
        writer = DuckDBWriter(lease) if lease is not None else writer_for(engine, method)  # type: ignore[arg-type]
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeRemainingColumn(),
        )
        # The cyclic garbage collector is paused, but for one collection every
        # _BATCHES_PER_COLLECTION batches. Why: each batch's records, rows
        # and Arrow values are a few containers per row that stay alive while
        # it is handled, and the collector, run every 700 allocations,
        # traversed them again and again: measured, that cost more than
        # parsing the lines. Nothing the loop builds is a reference cycle;
        # the periodic collection frees any cycle made meanwhile.
        with collection_paused(), Progress(*columns, console=err_console) as progress, _WriteBehind(
            lambda rows: writer.write(target, rows), lease
        ) as behind:
            task = progress.add_task(f"{file.name} -> {table}", total=total)
            # The batch being written: its records, the validated rows sent, and its size.
            sent: tuple[list[Record], list[ValidRow], int] | None = None

            def settle() -> None:
                """Wait for the batch being written; count it and reject what the database refused."""
                nonlocal written, duplicates, sent
                result = behind.result()
                if sent is None:
                    return
                records, valid, size = sent
                sent = None
                if result is not None:
                    written += result.written
                    duplicates += result.duplicates
                    for rejection in result.rejected:
                        source = records[valid[rejection.index].index]
                        reject(source.position, rejection.problems, source.values)
                progress.advance(task, size)

            for number, batch in enumerate(read_batches(file, fmt_name, target, batch_size), 1):
                if number % _BATCHES_PER_COLLECTION == 0:
                    gc.collect(0)
                good: list[Record] = [item for item in batch if not isinstance(item, BadRecord)]
                # A record with a reading problem is validated without the bad
                # cells, so its rejection lists its other problems too.
                report = validate_rows(
                    target_row_type,
                    [
                        {k: v for k, v in record.values.items() if k not in dict(record.problems)}
                        if record.problems
                        else record.values
                        for record in good
                    ],
                )
                # The previous batch is settled before this one's rejections
                # are recorded: the rejected file reads in the order of the
                # input, and a write that fails stops the run as it did when
                # batches were written one after the other.
                settle()
                for item in batch:
                    if isinstance(item, BadRecord):
                        reject(item.position, [(None, item.reason)], item.text)
                errors = report.errors_by_row()
                for index, record in enumerate(good):
                    if record.problems or index in errors:
                        found = [(error.field, error.message) for error in errors.get(index, ())]
                        reject(record.position, [*record.problems, *found], record.values)
                valid = [row for row in report.valid if not good[row.index].problems]
                sent = (good, valid, len(batch))
                if valid:
                    behind.submit([row.row for row in valid])
            settle()
            progress.update(task, completed=total)  # blank lines are counted but hold no row
        finished = True
    finally:
        if rejected_handle is not None:
            rejected_handle.close()
            os.replace(partial, rejected_path)  # rows rejected before a failure are kept too
        elif finished:
            rejected_path.unlink(missing_ok=True)  # a stale file from an earlier run would mislead
        engine.dispose()
    copies = f" ({duplicates:,} identical copies of rows in the same batch sent once)" if duplicates else ""
    console.print(f"wrote {written:,} row(s) to {table} on {settings.describe()}{copies}")
    if rejected_count:
        err_console.print(
            f"[bold red]rejected {rejected_count:,} row(s)[/]; reasons and rows are in {rejected_path}",
            highlight=False,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(friendly(ingest))
