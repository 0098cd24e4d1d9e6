"""``bqrepo ingest TABLE FILE``: validate every row of a file and write the good ones.

Rows that fail validation (or that the database rejects) are written, with
their position in the file and the reasons, to a JSON Lines file the command
names; the good rows of the same batch are written regardless. The exit code
is 1 when any row was rejected, so a script notices.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.files import BadRecord, Record, count_records, detect_format, read_batches
from bqrepo.cli.render import console, err_console, plain_json
from bqrepo.cli.state import state_of

__all__ = ["register"]


def _rejected_path(path: Path) -> Path:
    """``events.2026-11.jsonl`` -> ``events.2026-11.rejected.jsonl``: one file per input."""
    return path.with_name(path.name.removesuffix(path.suffix) + ".rejected.jsonl")


def ingest(
    ctx: typer.Context,
    table: str = typer.Argument(..., help="events, entity_mentions, fred_indicators, un_comtrade or world_bank."),
    file: Path = typer.Argument(..., help="A .jsonl, .csv or .parquet file."),
    fmt: str | None = typer.Option(None, "--format", help="jsonl, csv or parquet. Default: from the suffix."),
    rejected: Path | None = typer.Option(None, help="Where rejected rows go. Default: FILE with its suffix replaced by .rejected.jsonl."),
    method: str = typer.Option("auto", help="BigQuery write method: auto, stream or load (DuckDB: bulk)."),
    batch_size: int = typer.Option(5_000, min=1, max=1_000_000, help="Rows validated and written per batch."),
) -> None:
    """Validate each row of FILE and append the valid ones to TABLE."""
    from bqrepo.engine import create_engine
    from bqrepo.rows import ROW_TYPES, validate_rows
    from bqrepo.schema import metadata
    from bqrepo.writers import writer_for

    if table not in ROW_TYPES:
        raise UserError(f"no table {table!r}; tables are {', '.join(ROW_TYPES)}")
    if method not in ("auto", "stream", "load"):
        raise UserError(f"--method must be auto, stream or load, not {method!r}")
    if not file.is_file():
        raise UserError(f"no such file: {file}")
    fmt_name = detect_format(file, fmt)
    target = metadata.tables[table]
    row_type = ROW_TYPES[table]
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

    def reject(position: int, reasons: list[dict[str, Any]], record: Any) -> None:
        nonlocal rejected_handle, rejected_count
        if rejected_handle is None:
            rejected_handle = partial.open("w", encoding="utf-8")
        entry = plain_json({"position": position, "errors": reasons, "record": record})
        rejected_handle.write(json.dumps(entry, default=str, ensure_ascii=False, allow_nan=False) + "\n")
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
                        reject(item.position, [{"field": None, "message": item.reason}], item.text)
                    else:
                        good.append(item)
                report = validate_rows(row_type, [record.values for record in good])
                reasons: dict[int, list[dict[str, Any]]] = defaultdict(list)
                for error in report.errors:
                    reasons[error.index].append({"field": error.field, "message": error.message})
                for index in sorted(reasons):
                    reject(good[index].position, reasons[index], good[index].values)
                if report.valid:
                    result = writer.write(target, report.rows)
                    written += result.written
                    duplicates += result.duplicates
                    for rejection in result.rejected:
                        source = good[report.valid[rejection.index].index]
                        reject(source.position, [{"field": rejection.field, "message": rejection.reason}], source.values)
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
