"""The Typer application: global options, then one module per command group."""

from __future__ import annotations

import logging

import typer

from bqrepo import __version__
from bqrepo.cli import admin, backfill, demo, ingest, project, queries, tables
from bqrepo.cli.errors import DEBUG
from bqrepo.cli.state import State

__all__ = ["app", "main"]

app = typer.Typer(
    name="bqrepo",
    help="bqrepo: typed time-series tables on BigQuery, with an embedded DuckDB default.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"bqrepo {__version__}")
        raise typer.Exit()


def _log_verbosely() -> None:
    """bqrepo's INFO lines (backend, BigQuery jobs) and Alembic's "Running upgrade" lines.

    Only those: the root logger stays at WARNING, so libraries' INFO chatter
    (``alembic.runtime.plugins`` lists every plugin on each migration) stays out.
    """
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for name in ("bqrepo", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.INFO)


@app.callback()
def _global(
    ctx: typer.Context,
    url: str | None = typer.Option(
        None,
        "--url",
        help="Backend URL (overrides BQREPO_URL): bigquery://PROJECT/DATASET or duckdb:///PATH. "
        "Unset: the embedded DuckDB file.",
        show_default=False,
    ),
    metadata: str | None = typer.Option(
        None,
        "--metadata",
        metavar="MODULE:ATTR",
        help="Your tables: the sqlalchemy MetaData at package.module:attribute (overrides "
        "BQREPO_METADATA). Unset: bqrepo's own tables.",
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log the backend, each BigQuery job and each migration step."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = State(url=url, metadata=metadata)
    DEBUG["enabled"] = debug
    if verbose:
        _log_verbosely()


for module in (admin, project, ingest, queries, tables, demo, backfill):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
