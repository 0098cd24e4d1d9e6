"""Alembic environment for bqrepo: metadata from ``bqrepo.schema``, backend from settings.

The backend is whatever :func:`bqrepo.settings.load_settings` says (or the
``Settings`` the caller put in ``config.attributes``): the embedded DuckDB
file by default, BigQuery for ``BQREPO_URL=bigquery://PROJECT/DATASET``.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

# Importing the extension registers op.create_dataset(), op.set_clustering(),
# op.set_table_options(), op.change_partitioning() and the BigQuery comparator.
from bqrepo.alembic_ext import AUTOGENERATE_PLUGINS, ensure_dataset, include_name
from bqrepo.engine import create_engine
from bqrepo.schema import metadata
from bqrepo.settings import Settings, load_settings

config = context.config
if config.config_file_name is not None and not config.attributes.get("bqrepo_settings"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

settings: Settings = config.attributes.get("bqrepo_settings") or load_settings()

common: dict[str, Any] = dict(
    # A caller may compare against other metadata (the tests' changed copies do).
    target_metadata=config.attributes.get("bqrepo_metadata", metadata),
    compare_type=True,
    # Alembic's own comparisons, plus partitioning, clustering and options on BigQuery.
    autogenerate_plugins=AUTOGENERATE_PLUGINS,
    # Never propose dropping a staging table an interrupted change_partitioning left.
    include_name=include_name,
    bqrepo_settings=settings,
)


def run_migrations_offline() -> None:
    """Print the DDL. Builds the dialect from the URL; needs no credentials.

    The dataset's DDL is printed first: Alembic prints ``CREATE TABLE
    alembic_version`` before the first revision's ``op.create_dataset()``,
    and that table lives in the dataset. The op then prints nothing more.
    """
    context.configure(url=settings.sqlalchemy_url, literal_binds=True, **common)
    with context.begin_transaction():
        ensure_dataset(context.get_context().impl, settings)
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations. ``alembic_version`` lives in the dataset, so the dataset
    must exist before Alembic looks for that table; the first revision's
    ``op.create_dataset()`` makes the same call, idempotently, so that the
    offline DDL is complete too."""
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    """Make sure the dataset exists, then run the migrations on ``connection``."""
    ensure_dataset(connection, settings)
    context.configure(connection=connection, **common)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
