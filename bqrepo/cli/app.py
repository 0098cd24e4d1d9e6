"""The Typer application: global options, then one module per command group."""

from __future__ import annotations

import logging

import typer

from bqrepo.cli import admin, backfill, demo, ingest, queries
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
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log bqrepo's INFO messages."),
) -> None:
    ctx.obj = State(url=url)
    DEBUG["enabled"] = debug
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


for module in (admin, ingest, queries, demo, backfill):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
