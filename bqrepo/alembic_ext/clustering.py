"""``op.set_clustering()``: change a table's clustering columns in place.

BigQuery lets clustering change on an existing table (``tables.patch``);
the new order applies to data written from then on, and BigQuery's automatic
re-clustering gradually rewrites what is already there. No DDL statement can
do it, so online the operation patches the table through the API, and
offline (``--sql``) it prints a comment with the equivalent ``bq update``
command instead of pretending with SQL.

Before patching, the columns are checked against the live table: each must
exist, and there may be at most four.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations

from bqrepo.alembic_ext import live
from bqrepo.table_options import SchemaError, check_clustering

__all__ = ["SetClusteringOp"]

log = logging.getLogger("bqrepo.alembic_ext")


@Operations.register_operation("set_clustering")
class SetClusteringOp(MigrateOperation):
    """Set the clustering columns of ``table_name`` (empty: no clustering).

    ``existing`` is what the table had before; autogenerate always records
    it, and the downgrade needs it to put it back.
    """

    def __init__(
        self,
        table_name: str,
        fields: Sequence[str],
        *,
        existing: Sequence[str] | None = None,
        schema: str | None = None,
    ) -> None:
        self.table_name = table_name
        self.fields = tuple(fields)
        self.existing = tuple(existing) if existing is not None else None
        self.schema = schema

    @classmethod
    def set_clustering(
        cls,
        operations: Operations,
        table_name: str,
        fields: Sequence[str],
        *,
        existing: Sequence[str] | None = None,
        schema: str | None = None,
    ) -> None:
        """Cluster ``table_name`` by ``fields`` (at most 4 existing columns)."""
        operations.invoke(cls(table_name, fields, existing=existing, schema=schema))

    def reverse(self) -> SetClusteringOp:
        """The downgrade: cluster by ``existing`` again; fails when it was not recorded."""
        if self.existing is None:
            raise ValueError(
                f"set_clustering({self.table_name!r}) has no existing= clustering, so it "
                "cannot be reversed"
            )
        return SetClusteringOp(
            self.table_name, self.existing, existing=self.fields, schema=self.schema
        )

    def to_diff_tuple(self) -> tuple[str, str, tuple[str, ...] | None, tuple[str, ...]]:
        """``compare_metadata``'s view: the clustering columns, old and new."""
        return ("set_clustering", self.table_name, self.existing, self.fields)


@Operations.implementation_for(SetClusteringOp)
def _set_clustering(operations: Operations, operation: SetClusteringOp) -> None:
    context = operations.migration_context
    if not live.is_bigquery(context):
        return
    name = operation.table_name
    if live.is_offline(context):
        # Offline there is no live table: only the number of columns can be checked.
        check_clustering(name, operation.fields, operation.fields)
        project, dataset = live.dataset_of(context.opts, context.dialect, operation.schema)
        live.say(
            context,
            f"bqrepo: set_clustering({name!r}, {list(operation.fields)!r}) needs the BigQuery "
            "API: no DDL statement changes clustering.",
            "Run this revision online (alembic upgrade without --sql), or run:",
            f"  bq update --clustering_fields={','.join(operation.fields)} "
            f"{project}:{dataset}.{name}",
        )
        return
    client = live.client(operations)
    table = live.get_table_or_none(client, live.table_id(context, name, operation.schema))
    if table is None:
        raise SchemaError(f"table {name!r}: cannot set clustering, the table does not exist")
    check_clustering(name, operation.fields, (f.name for f in table.schema))
    table.clustering_fields = list(operation.fields) or None
    client.update_table(table, ["clustering_fields"])
    log.info("table %s: clustering set to %s", name, list(operation.fields))


@renderers.dispatch_for(SetClusteringOp)
def _render_set_clustering(autogen_context: AutogenContext, op: SetClusteringOp) -> str:
    args = [repr(op.table_name), repr(list(op.fields))]
    if op.existing is not None:
        args.append(f"existing={list(op.existing)!r}")
    if op.schema is not None:
        args.append(f"schema={op.schema!r}")
    return f"op.set_clustering({', '.join(args)})"
