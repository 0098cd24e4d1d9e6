"""``op.create_dataset()``: create the BigQuery dataset when it is missing.

Online it looks the dataset up first (``datasets.get``) and, only when it
is missing, creates it the way ``bq mk --dataset --location=LOCATION
PROJECT:DATASET`` does; so an interrupted upgrade can be re-run, and a
service account without ``bigquery.datasets.create`` can migrate a dataset
made by someone else. A dataset in another location than
``BIGQUERY_LOCATION`` is refused with a
:class:`~bqrepo.errors.ConfigurationError` naming both. Offline (``--sql``) it prints the
equivalent idempotent DDL, ``CREATE SCHEMA IF NOT EXISTS ... OPTIONS(location=...)``. The
project, dataset and location come from the :class:`~bqrepo.settings.Settings`
that ``env.py`` hands to the migration context, so a revision never hard-codes
them. On DuckDB there is no dataset (tables live in the file), so the
operation does nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement

from bqrepo.backend import BigQueryBackend, backend_for, require_backend
from bqrepo.settings import Settings, validate_location

__all__ = ["CreateDataset", "CreateDatasetOp", "ensure_dataset"]

class CreateDataset(ExecutableDDLElement):
    """``CREATE SCHEMA IF NOT EXISTS `project`.`dataset` OPTIONS(location=...)``."""

    def __init__(self, project: str, dataset: str, location: str) -> None:
        validate_location(location)
        self.project = project
        self.dataset = dataset
        self.location = location


@compiles(CreateDataset, "bigquery")
def _compile_create_dataset(element: CreateDataset, compiler: Any, **kw: Any) -> str:
    quote = compiler.preparer.quote_identifier
    location = compiler.sql_compiler.render_literal_value(element.location, sa.String())
    return (
        f"CREATE SCHEMA IF NOT EXISTS {quote(element.project)}.{quote(element.dataset)} "
        f"OPTIONS(location={location})"
    )


def ensure_dataset(bind: sa.engine.Connection | Any, settings: Settings) -> None:
    """Create the configured dataset if missing; a no-op off BigQuery.

    ``bind`` is a connection, or Alembic's ``impl`` (anything with
    ``execute`` and ``dialect``). Online, the dataset is created through the
    API exactly as ``bq mk --dataset --location=...`` does; offline
    (``--sql``) the equivalent DDL is printed instead, once per run: env.py
    prints it before Alembic's ``CREATE TABLE alembic_version`` (which would
    fail in a missing dataset), and the first revision's
    ``op.create_dataset()`` then has nothing to add.
    """
    path = backend_for(settings).dataset_path
    if path is None:
        return
    element = CreateDataset(*path, settings.location)
    if not isinstance(bind, sa.engine.Connection) and getattr(bind, "as_sql", False):
        # ``memo`` is Alembic's per-run scratch space on the impl.
        printed: set[tuple[str, str]] = bind.memo.setdefault("bqrepo_datasets_printed", set())
        if (element.project, element.dataset) not in printed:
            printed.add((element.project, element.dataset))
            bind.execute(element)
        return
    from google.cloud import bigquery

    connection = bind if isinstance(bind, sa.engine.Connection) else bind.connection
    backend = require_backend(connection, BigQueryBackend)
    # Look first: creating needs bigquery.datasets.create even when the dataset
    # exists, which a least-privilege account (dataEditor on a dataset made by
    # Terraform) lacks. The look-up also refuses a dataset in another location.
    if backend.live_dataset() is not None:
        return
    dataset = bigquery.Dataset(backend.dataset_id)
    dataset.location = backend.settings.location
    backend.client.create_dataset(dataset, exists_ok=True)  # exists_ok: a concurrent migration


@Operations.register_operation("create_dataset")
class CreateDatasetOp(MigrateOperation):
    """Create the dataset the tables live in.

    It has no reverse on purpose: dropping the dataset would also drop
    ``alembic_version``, which Alembic still writes to after the last
    downgrade step. ``downgrade base`` removes the tables and keeps the dataset.
    """

    @classmethod
    def create_dataset(cls, operations: Operations) -> None:
        """Create the configured dataset if it does not exist."""
        operations.invoke(cls())


@Operations.implementation_for(CreateDatasetOp)
def _create_dataset(operations: Operations, operation: CreateDatasetOp) -> None:
    context = operations.migration_context
    settings: Settings = context.opts["bqrepo_settings"]
    ensure_dataset(context.impl, settings)


@renderers.dispatch_for(CreateDatasetOp)
def _render_create_dataset(autogen_context: AutogenContext, op: CreateDatasetOp) -> str:
    return "op.create_dataset()"
