"""``bqrepo info`` and ``bqrepo migrate``: what is where, and bring it to head."""

from __future__ import annotations

import warnings
from typing import Any

import typer

from bqrepo.backend import TableInfo, backend_for
from bqrepo.cli.errors import friendly
from bqrepo.cli.render import console, print_json, table_of
from bqrepo.cli.state import state_of

__all__ = ["TableInfo", "register"]


def info(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show the backend, its project and dataset, each declared table (--metadata) and the alembic revision."""
    from bqrepo.migrate import current_revision

    settings = state_of(ctx).settings()
    backend = backend_for(settings)
    inventory = backend.inventory(list(state_of(ctx).tables().values()))
    revision = current_revision(settings) if inventory.migrated else None
    summary: dict[str, Any] = {"backend": backend.name, "description": backend.describe()} | inventory.facts
    summary["alembic_revision"] = revision
    if as_json:
        print_json(summary | {"tables": inventory.tables})
        return
    console.print(f"[bold]backend[/]   {backend.name}: {backend.describe()}")
    for label, value in inventory.lines:
        console.print(f"[bold]{label}[/]{' ' * (10 - len(label))}{value}")
    console.print(f"[bold]revision[/]  {revision or 'none (run `bqrepo migrate`)'}")
    if "note" in summary:
        console.print(summary["note"])
    for line in summary.get("pending_rebuilds", []):
        console.print(f"[bold red]{line}[/]", highlight=False)
    if inventory.tables:
        console.print(
            table_of(
                f"Tables (partitioning and clustering {inventory.options_source})",
                ["table", "partitioning", "clustering", "partition filter", "rows"],
                (
                    [
                        t.name,
                        t.partitioning if t.exists else "missing",
                        ", ".join(t.clustering) or None,
                        "required" if t.require_partition_filter else "optional",
                        t.rows,
                    ]
                    for t in inventory.tables
                ),
                right=["rows"],
            )
        )


def migrate(
    ctx: typer.Context,
    revision: str = typer.Argument("head", help="Target revision."),
    sql: bool = typer.Option(False, "--sql", help="Print the DDL instead of running it (no credentials needed)."),
) -> None:
    """Create or evolve the dataset and tables (alembic upgrade) from any directory."""
    from bqrepo import migrate as migrations

    from bqrepo.alembic_ext.rebuild import RebuiltTableWarning

    settings = state_of(ctx).settings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RebuiltTableWarning)
        migrations.upgrade(settings, revision, sql=sql)
    for warning in caught:
        if issubclass(warning.category, RebuiltTableWarning):
            console.print(f"[bold yellow]caution:[/] {warning.message}", highlight=False)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if not sql:
        console.print(f"{settings.describe()} is at revision {migrations.current_revision(settings)}")


def register(app: typer.Typer) -> None:
    app.command()(friendly(info))
    app.command()(friendly(migrate))
