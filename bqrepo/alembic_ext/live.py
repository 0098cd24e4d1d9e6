"""How the extension's operations find and read the live BigQuery table they change.

Every operation in this package works the same way: on a non-BigQuery
backend it does nothing (DuckDB has no partitioning, clustering or table
options); offline (``--sql``) it prints DDL, or a comment saying that the
step needs the API; online it reads the live table through
google-cloud-bigquery, validates, then changes it. The helpers for those
three cases live here so each operation module stays about its operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Dialect

from bqrepo.backend import BigQueryBackend, backend_for, backend_kind, bigquery_id, require_backend

__all__ = ["client", "dataset_of", "get_table_or_none", "is_bigquery", "is_offline", "say", "table_id"]


def is_bigquery(context: MigrationContext) -> bool:
    """Whether the migration's tables carry partitioning, clustering and options (BigQuery), online or offline."""
    kind = backend_kind(context.dialect)
    return kind is not None and kind.has_table_options


def is_offline(context: MigrationContext) -> bool:
    """Whether Alembic prints SQL (``--sql``) instead of running it."""
    return bool(context.as_sql)


def dataset_of(
    opts: Mapping[str, Any], dialect: Dialect, schema: str | None = None
) -> tuple[str, str]:
    """``(project, dataset)`` the migration's tables live in.

    ``opts`` are the migration context's options, ``dialect`` its dialect.
    ``schema`` (an operation's ``schema=``) names another dataset of the same
    project. Otherwise the dataset comes from the settings ``env.py`` hands
    over, or from the dialect (which read it from the ``bigquery://`` URL).
    """
    settings = opts.get("bqrepo_settings")
    configured = backend_for(settings).dataset_path if settings is not None else None
    project: str | None
    dataset: str | None
    if configured is not None:
        project, dataset = configured
    else:
        project = getattr(dialect, "project_id", None)
        dataset = getattr(dialect, "dataset_id", None)
    if schema is not None:
        dataset = schema
    if not project or not dataset:
        raise ValueError(
            "cannot tell which BigQuery project and dataset this migration changes: use a "
            "bigquery://PROJECT/DATASET URL"
        )
    return project, dataset


def table_id(context: MigrationContext, table_name: str, schema: str | None = None) -> str:
    """``project.dataset.table``, as google-cloud-bigquery's table calls want it."""
    return bigquery_id(*dataset_of(context.opts, context.dialect, schema), table_name)


def client(operations: Operations) -> Any:
    """The ``google.cloud.bigquery.Client`` behind the migration's connection."""
    connection = operations.migration_context.connection
    if connection is None:
        raise TypeError("no live connection (offline --sql run?): the BigQuery API needs one")
    return require_backend(connection, BigQueryBackend).client


def get_table_or_none(bq_client: Any, table_ref: str) -> Any:
    """``client.get_table``, or ``None`` when the table does not exist."""
    from google.api_core.exceptions import NotFound

    try:
        return bq_client.get_table(table_ref)
    except NotFound:
        return None


def say(context: MigrationContext, *lines: str) -> None:
    """Print SQL comment lines into the offline output."""
    context.impl.static_output("\n".join(f"-- {line}" for line in lines))
