"""``bqrepo ingest TABLE FILE``: validate every row of a file and write the good ones.

Rows that fail validation (or that the database rejects) are written, with
their position in the file and the reasons, to a JSON Lines file the command
names: one line per rejected row, listing every problem of that row (see
docs/cli.md); the good rows of the same batch are written regardless. The exit code
is 1 when any row was rejected, so a script notices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.files import BadRecord, Record, count_records, detect_format, read_batches
from bqrepo.cli.render import console, err_console
from bqrepo.cli.state import state_of
from bqrepo.json_encoding import rejection_line

__all__ = ["register"]


def _rejected_path(path: Path) -> Path:
    """``events.2026-11.jsonl`` -> ``events.2026-11.rejected.jsonl``: one file per input."""
    return path.with_name(path.name.removesuffix(path.suffix) + ".rejected.jsonl")


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
    from bqrepo.engine import create_engine
    from bqrepo.rows import row_type, validate_rows
    from bqrepo.writers import writer_for

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
        writer = writer_for(engine, method)  # type: ignore[arg-type]
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err_console) as progress:
            task = progress.add_task(f"{file.name} -> {table}", total=total)
            for batch in read_batches(file, fmt_name, target, batch_size):
                good: list[Record] = []
                for item in batch:
                    if isinstance(item, BadRecord):
                        reject(item.position, [(None, item.reason)], item.text)
                    else:
                        good.append(item)
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
                errors = report.errors_by_row()
                for index, record in enumerate(good):
                    if record.problems or index in errors:
                        found = [(error.field, error.message) for error in errors.get(index, ())]
                        reject(record.position, [*record.problems, *found], record.values)
                valid = [row for row in report.valid if not good[row.index].problems]
                if valid:
                    result = writer.write(target, [row.row for row in valid])
                    written += result.written
                    duplicates += result.duplicates
                    for rejection in result.rejected:
                        source = good[valid[rejection.index].index]
                        reject(source.position, rejection.problems, source.values)
                progress.advance(task, len(batch))
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
