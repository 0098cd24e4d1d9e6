"""``bqrepo backfill``: copy a table from the old PostgreSQL/TimescaleDB database.

Shows a progress bar (rows, rows per second, ETA), then the verification
report. The source URL's password is never printed: every message uses
:func:`bqrepo.redact.redact_url`. Exit code 1 when verification fails, 130
after Ctrl-C (the same command resumes from the checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.render import console, err_console, table_of
from bqrepo.cli.state import parse_day, state_of

__all__ = ["register"]


class _RowsPerSecond(TransferSpeedColumn):
    """rows/s instead of bytes/s."""

    def render(self, task) -> Text:  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


class _RichProgress:
    """The runner's :class:`bqrepo.backfill.Progress`, drawn by rich.

    The run's header is printed when the run starts, not before: a mistake
    found while checking the arguments (an unknown ``--table``, a bad
    mapping, an unreachable source) is then the only line printed.
    """

    def __init__(self, progress: Progress, table: str, header: str) -> None:
        self.progress = progress
        self.table = table
        self.header = header
        self.task: TaskID | None = None
        self.warned: list[str] = []

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
        self.progress.console.print(self.header, highlight=False, markup=False)
        self.progress.console.print(
            f"plan: {total_chunks:,} chunk(s), {total_chunks - done_chunks:,} to write, "
            f"at most {planned_writes:,} load job(s)/write(s)",
            highlight=False,
        )
        for warning in warnings:  # before the first write, while stopping costs nothing
            self.progress.console.print(f"warning: {warning}", highlight=False, markup=False)
        self.warned = list(warnings)
        self.chunks = (done_chunks, total_chunks)
        self.task = self.progress.add_task(self._label(), total=max(total_rows, 1), completed=done_rows)

    def _label(self) -> str:
        done, total = self.chunks
        return f"{self.table} chunk {done}/{total}"

    def chunk_done(self, chunk, rows: int) -> None:  # type: ignore[no-untyped-def]
        self.chunks = (self.chunks[0] + 1, self.chunks[1])
        assert self.task is not None
        self.progress.update(self.task, advance=rows, description=self._label())

    def verifying(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=f"{self.table} verifying")


def backfill(
    ctx: typer.Context,
    source: str = typer.Option(..., "--from", help="The old database: postgresql://USER:PASSWORD@HOST:PORT/DB."),
    table: str = typer.Option(..., "--table", help="Declared table to fill (a section of the mapping; yours with --metadata)."),
    since: str | None = typer.Option(None, help="First day (YYYY-MM-DD). Default: the oldest row in the source."),
    until: str | None = typer.Option(None, help="End day, exclusive. Default: the day after the newest row."),
    mapping: Path | None = typer.Option(None, help="Column mapping (TOML). Default: the Django mapping shipped with bqrepo."),
    checkpoint: Path | None = typer.Option(None, help="Progress file. Default: ./bqrepo-backfill-TABLE.checkpoint.json."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare per-day counts and checksums at the end."),
    pause: float = typer.Option(0.0, min=0.0, help="Seconds to wait between chunks, to spare a busy source."),
) -> None:
    """Copy TABLE from PostgreSQL/TimescaleDB in partition-aligned chunks; resumable; verified."""
    from bqrepo.backfill import backfill as run, default_checkpoint
    from bqrepo.redact import redact_url

    first = parse_day(since, "--since") if since else None
    end = parse_day(until, "--until") if until else None
    if first and end and first >= end:
        raise UserError(f"--since ({first}) must be before --until ({end})")
    settings = state_of(ctx).settings()
    header = f"back-fill {table}: {redact_url(source)} -> {settings.describe()}"
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=err_console) as progress:
            drawn = _RichProgress(progress, table, header)
            result = run(
                source,
                table,
                settings=settings,
                since=first,
                until=end,
                mapping_file=mapping,
                checkpoint_file=checkpoint,
                progress=drawn,
                verify=verify,
                pause=pause,
                tables=state_of(ctx).tables().values(),
            )
    except KeyboardInterrupt:
        # The checkpoint protocol makes any moment safe to stop at: say so.
        path = checkpoint or default_checkpoint(table)
        err_console.print(
            f"interrupted: the progress so far is kept in {path}; "
            "run the same command again to resume where it stopped",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(130) from None
    for note in result.notes:
        if note not in drawn.warned:  # printed when the run started
            console.print(f"note: {note}")
    console.print(
        f"{table}: {result.since} to {result.until} (exclusive), {result.chunks_total} chunk(s): "
        f"{result.chunks_written} written, {result.chunks_skipped} already done; "
        f"{result.rows_written:,} row(s) written in {result.seconds:.1f} s"
        + (f"; {result.rows_reconciled:,} already present from an earlier run" if result.rows_reconciled else "")
    )
    if result.rows_rejected:
        console.print(f"[bold red]{result.rows_rejected:,} row(s) rejected[/]; see {result.rejected_file}")
    report = result.verification
    if report is None:
        return
    mismatches = report.mismatches
    console.print(
        table_of(
            f"Verification of {table}: per day, source vs destination",
            ["days", "matching", "source rows", "rejected", "destination rows", "result"],
            [[len(report.days), len(report.days) - len(mismatches), report.source_rows, report.rejected_rows,
              report.destination_rows, "OK" if report.ok else "MISMATCH"]],
            right=["days", "matching", "source rows", "rejected", "destination rows"],
        )
    )
    if mismatches:
        console.print(
            table_of(
                "Mismatched days" + (f" (first 30 of {len(mismatches)})" if len(mismatches) > 30 else ""),
                ["day", "source", "rejected", "destination", "distinct ids", "checksum"],
                (
                    [d.day, d.source_rows, d.rejected_rows, d.destination_rows, d.destination_ids,
                     "equal" if d.source_checksum == d.destination_checksum else "differs"]
                    for d in mismatches[:30]
                ),
                right=["source", "rejected", "destination", "distinct ids"],
            )
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(friendly(backfill))
