"""``bqrepo info`` and ``bqrepo migrate``: what is where, and bring it to head."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer

from bqrepo.cli.errors import friendly
from bqrepo.cli.render import console, print_json, table_of
from bqrepo.cli.state import state_of
from bqrepo.settings import Settings

__all__ = ["TableInfo", "register"]


@dataclass(frozen=True)
class TableInfo:
    """One table as the backend reports it (declared options on DuckDB)."""

    name: str
    exists: bool
    partitioning: str | None
    clustering: list[str]
    require_partition_filter: bool
    rows: int | None


def _declared(table: sa.Table) -> tuple[str | None, list[str], bool]:
    from bqrepo.table_options import TableOptions

    options = TableOptions.of(table)
    partitioning = f"{options.partition_field} by {options.partition_type}" if options.partition_field else None
    return partitioning, list(options.clustering_fields), options.require_partition_filter


def _duckdb_tables(settings: Settings) -> list[TableInfo]:
    from bqrepo.engine import create_engine
    from bqrepo.schema import metadata

    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            existing = set(sa.inspect(connection).get_table_names())
            out = []
            for table in metadata.sorted_tables:
                partitioning, clustering, required = _declared(table)
                rows = None
                if table.name in existing:
                    rows = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                out.append(TableInfo(table.name, table.name in existing, partitioning, clustering, required, rows))
            return out
    finally:
        engine.dispose()


def _bigquery_tables(settings: Settings) -> tuple[list[TableInfo], list[str]]:
    """Each declared table as BigQuery reports it, and the unfinished change_partitioning rebuilds.

    One client for both; a dataset that does not exist yet has neither
    tables nor rebuilds (``bqrepo migrate`` creates it).
    """
    from google.api_core.exceptions import NotFound

    from bqrepo.alembic_ext.rebuild import pending_rebuilds
    from bqrepo.bigquery_checks import check_dataset_location
    from bqrepo.engine import bigquery_client, check_emulator_reachable
    from bqrepo.schema import metadata

    check_emulator_reachable(settings)
    client = bigquery_client(settings)
    if check_dataset_location(client, settings) is None:
        return [TableInfo(table.name, False, None, [], False, None) for table in metadata.sorted_tables], []
    out = []
    for table in metadata.sorted_tables:
        try:
            live = client.get_table(f"{settings.bigquery_project}.{settings.bigquery_dataset}.{table.name}")
        except NotFound:
            out.append(TableInfo(table.name, False, None, [], False, None))
            continue
        partitioning = None
        if live.time_partitioning is not None:
            partitioning = f"{live.time_partitioning.field or '_PARTITIONTIME'} by {live.time_partitioning.type_}"
        out.append(
            TableInfo(
                table.name,
                True,
                partitioning,
                list(live.clustering_fields or []),
                bool(live.require_partition_filter),
                live.num_rows,
            )
        )
    rebuilds = pending_rebuilds(client, settings.bigquery_project, settings.bigquery_dataset)
    return out, [pending.describe() for pending in rebuilds]


def info(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show the backend, its project and dataset, each table and the alembic revision."""
    from bqrepo.migrate import current_revision

    settings = state_of(ctx).settings()
    summary: dict[str, Any] = {"backend": settings.backend, "description": settings.describe()}
    if settings.backend == "bigquery":
        summary |= {"project": settings.bigquery_project, "dataset": settings.bigquery_dataset, "location": settings.location}
        tables, summary["pending_rebuilds"] = _bigquery_tables(settings)
        revision = current_revision(settings) if any(t.exists for t in tables) else None
    else:
        path = Path(settings.sqlalchemy_url.database or "")
        summary["file"] = str(path)
        if not path.exists():
            tables, revision = [], None
            summary["note"] = "no database file yet: run `bqrepo migrate` or `bqrepo demo`"
        else:
            tables = _duckdb_tables(settings)
            revision = current_revision(settings)
    summary["alembic_revision"] = revision
    if as_json:
        print_json(summary | {"tables": tables})
        return
    console.print(f"[bold]backend[/]   {settings.backend}: {settings.describe()}")
    if settings.backend == "bigquery":
        console.print(f"[bold]project[/]   {settings.bigquery_project}")
        console.print(f"[bold]dataset[/]   {settings.bigquery_dataset} ({settings.location})")
    console.print(f"[bold]revision[/]  {revision or 'none (run `bqrepo migrate`)'}")
    if "note" in summary:
        console.print(summary["note"])
    for line in summary.get("pending_rebuilds", []):
        console.print(f"[bold red]{line}[/]", highlight=False)
    if tables:
        source = "as reported by BigQuery" if settings.backend == "bigquery" else "declared; DuckDB ignores them"
        console.print(
            table_of(
                f"Tables (partitioning and clustering {source})",
                ["table", "partitioning", "clustering", "partition filter", "rows"],
                (
                    [
                        t.name,
                        t.partitioning if t.exists else "missing",
                        ", ".join(t.clustering) or None,
                        "required" if t.require_partition_filter else "optional",
                        t.rows,
                    ]
                    for t in tables
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
