"""``bqrepo init``: migrations for the user's own tables, in the user's project."""

from __future__ import annotations

from pathlib import Path

import typer

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.render import console
from bqrepo.cli.state import state_of
from bqrepo.settings import DEFAULT_METADATA

__all__ = ["register"]


def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        Path("."), metavar="DIRECTORY", help="The project directory (created if missing).", show_default="."
    ),
    metadata: str | None = typer.Option(
        None,
        "--metadata",
        metavar="MODULE:ATTR",
        help="Your tables' sqlalchemy MetaData, importable from DIRECTORY (overrides the global "
        "--metadata and BQREPO_METADATA).",
        show_default=False,
    ),
) -> None:
    """Write alembic.ini and migrations/ for your own tables into DIRECTORY (never overwrites).

    Then `alembic revision --autogenerate -m "create tables"` and `alembic upgrade head`
    in DIRECTORY create them, on the backend bqrepo's settings name. bqrepo's own tables
    stay with `bqrepo migrate`; both keep their own version table in one dataset.
    """
    from bqrepo.project import init_project
    from bqrepo.timeseries import declared_tables

    state = state_of(ctx)
    location = metadata or state.metadata_location()
    if location == DEFAULT_METADATA:
        raise UserError(
            "bqrepo init sets up migrations for your own tables: pass --metadata package.module:attribute "
            "naming the sqlalchemy MetaData they are declared in (or set BQREPO_METADATA); "
            "bqrepo's own tables are migrated by `bqrepo migrate`"
        )
    source = "--metadata" if metadata or state.metadata else "BQREPO_METADATA"
    done = init_project(directory, location, source=source)
    for path in done.written:
        console.print(f"created {path}{'/' if path.is_dir() else ''}", highlight=False)
    names = sorted(done.metadata.tables)
    series = {table.name for table in declared_tables(done.metadata)}
    listed = ", ".join(f"{name}{'' if name in series else ' (not a declared time series)'}" for name in names)
    console.print(f"tables of {location}: {listed or 'none yet'}", highlight=False)
    console.print(f"version table: {done.version_table} (bqrepo's own tables use alembic_version)", highlight=False)
    where = "" if directory.resolve() == Path.cwd() else f"cd {directory} && "
    console.print(
        f'next: {where}alembic revision --autogenerate -m "create tables" && alembic upgrade head',
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(friendly(init))
