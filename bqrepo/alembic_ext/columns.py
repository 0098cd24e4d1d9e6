"""Adding, dropping and altering columns on BigQuery: what the dialect gets wrong.

sqlalchemy-bigquery's Alembic impl compiles ``ALTER TABLE ... ADD COLUMN``,
``DROP COLUMN``, ``SET DATA TYPE`` and ``DROP NOT NULL`` correctly, and puts a
column comment inline as ``OPTIONS(description=...)``. This module replaces
that impl (same ``__dialect__``, so Alembic picks this one) to fix the rest:

* **Re-runnable.** BigQuery DDL is not transactional, so a revision
  interrupted after its first ``ADD COLUMN`` fails on the second run with
  "column already exists". Here ``ADD COLUMN`` is ``ADD COLUMN IF NOT
  EXISTS`` and ``DROP COLUMN`` is ``DROP COLUMN IF EXISTS`` unless the
  migration says otherwise.
* **REQUIRED columns.** BigQuery cannot add a ``REQUIRED`` (NOT NULL) column
  to an existing table, empty or not, and cannot make a column ``REQUIRED``
  later. Rather than sending DDL that fails half-way through a revision,
  ``add_column(nullable=False)`` and ``alter_column(nullable=False)`` fail
  before anything runs, saying what to do instead.
* **Partition and clustering columns.** BigQuery refuses to drop them (the
  local stand-in does not), so ``drop_column`` checks the live table first
  and says which operation to run before it.
* **Labels of new tables.** sqlalchemy-bigquery drops labels from
  ``CREATE TABLE``, so ``create_table`` follows it with ``ALTER TABLE ... SET
  OPTIONS(labels=[...])`` for the labels declared in
  ``info["bigquery_labels"]``; otherwise the next autogenerate would propose
  them. The same statement runs online and is printed offline.
* **Imports.** Types from ``sqlalchemy_bigquery`` (``STRUCT``) were rendered
  into migrations as ``sqlalchemy_bigquery._struct.STRUCT(a=String())``
  with no import and unqualified field types; they render as
  ``sqlalchemy_bigquery.STRUCT(a=sa.String())`` with ``import sqlalchemy_bigquery``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic.autogenerate import render
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Column, Table
from sqlalchemy.types import TypeEngine
from sqlalchemy_bigquery import STRUCT
from sqlalchemy_bigquery.base import SqlalchemyBigqueryImpl

from bqrepo.alembic_ext import live
from bqrepo.alembic_ext.options import SetTableOptions
from bqrepo.backend import BigQueryBackend, bigquery_id, require_backend
from bqrepo.table_options import SchemaError, TableOptions, check_labels

__all__ = ["BigQueryImpl"]


class BigQueryImpl(SqlalchemyBigqueryImpl):
    """sqlalchemy-bigquery's Alembic impl: safe, re-runnable column changes, labelled new tables."""

    __dialect__ = "bigquery"

    def create_table(self, table: Table, **kw: Any) -> None:
        """Create ``table``, then set the labels its metadata declares.

        Labels are set after the ``CREATE TABLE``, which cannot carry them; with
        ``if_not_exists=True`` on an existing table they are set all the same,
        so a re-run converges on the declared set.
        """
        labels = TableOptions.of(table).labels
        check_labels(table.name, labels)
        super().create_table(table, **kw)
        if labels:
            self.execute(SetTableOptions(table.name, {"labels": labels}, table.schema))

    def add_column(
        self,
        table_name: str,
        column: Column[Any],
        *,
        schema: str | None = None,
        if_not_exists: bool | None = None,
        **kw: Any,
    ) -> None:
        """``ADD COLUMN IF NOT EXISTS`` unless told otherwise; a NOT NULL column is
        refused before anything runs, since BigQuery cannot add a REQUIRED one."""
        if not column.nullable:
            raise SchemaError(
                f"table {table_name!r}: cannot add column {column.name!r} as NOT NULL: "
                "BigQuery adds columns as NULLABLE only and cannot make a column REQUIRED "
                "later. Declare it nullable=True (and have the writers fill it), or create "
                "a new table with the column and copy the data into it."
            )
        super().add_column(
            table_name,
            column,
            schema=schema,
            if_not_exists=True if if_not_exists is None else if_not_exists,
            **kw,
        )

    def drop_column(
        self,
        table_name: str,
        column: Column[Any],
        *,
        schema: str | None = None,
        if_exists: bool | None = None,
        **kw: Any,
    ) -> None:
        """``DROP COLUMN IF EXISTS`` unless told otherwise. Online, dropping a
        partition or clustering column is refused first, naming the operation to
        run before it: BigQuery would fail mid-revision (the stand-in drops it)."""
        if not self.as_sql:
            self._refuse_dropping_a_key_column(table_name, column.name, schema)
        super().drop_column(
            table_name,
            column,
            schema=schema,
            if_exists=True if if_exists is None else if_exists,
            **kw,
        )

    def alter_column(
        self,
        table_name: str,
        column_name: str,
        *,
        nullable: bool | None = None,
        existing_nullable: bool | None = None,
        **kw: Any,
    ) -> None:
        """Refuse making a column NOT NULL (BigQuery cannot); pass the rest on."""
        if nullable is False:
            if existing_nullable is not False:
                raise SchemaError(
                    f"table {table_name!r}: cannot make column {column_name!r} NOT NULL: "
                    "BigQuery cannot turn a NULLABLE column into a REQUIRED one. Keep it "
                    "nullable=True in the metadata, or copy the data into a new table."
                )
            nullable = None  # already REQUIRED; BigQuery has no SET NOT NULL to repeat
        super().alter_column(
            table_name, column_name, nullable=nullable, existing_nullable=existing_nullable, **kw
        )

    def render_type(
        self, type_obj: TypeEngine[Any], autogen_context: AutogenContext
    ) -> str | Literal[False]:
        """Render ``STRUCT`` importably; ``False`` leaves other types to Alembic."""
        if isinstance(type_obj, STRUCT):
            autogen_context.imports.add("import sqlalchemy_bigquery")
            fields = ", ".join(
                f"({name!r}, {render._repr_type(sub, autogen_context)})"
                for name, sub in type_obj._STRUCT_fields
            )
            return f"sqlalchemy_bigquery.STRUCT({fields})"
        return False

    def _refuse_dropping_a_key_column(
        self, table_name: str, column_name: str, schema: str | None
    ) -> None:
        assert self.connection is not None
        project, dataset = live.dataset_of(self.context_opts, self.dialect, schema)
        client = require_backend(self.connection, BigQueryBackend).client
        table = live.get_table_or_none(client, bigquery_id(project, dataset, table_name))
        if table is None:
            return
        partitioning = table.time_partitioning
        if partitioning is not None and partitioning.field == column_name:
            raise SchemaError(
                f"table {table_name!r}: cannot drop column {column_name!r}, the table is "
                "partitioned by it; run op.change_partitioning() first"
            )
        if column_name in (table.clustering_fields or ()):
            raise SchemaError(
                f"table {table_name!r}: cannot drop column {column_name!r}, the table is "
                "clustered by it; run op.set_clustering() first"
            )
