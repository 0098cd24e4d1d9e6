"""Autogenerate: compare each table's BigQuery options with the live table.

Alembic's own comparison stops at columns, and sqlalchemy-bigquery never
compares dialect options. This Alembic plugin (``bqrepo.alembic_ext``; env.py
enables it next to Alembic's own ``alembic.autogenerate.*``) reads every table
that exists on both sides through google-cloud-bigquery's ``get_table``,
turns both into :class:`~bqrepo.table_options.TableOptions`, and emits:

* ``change_partitioning`` when the partition column or granularity differ
  (expiration and the wanted require_partition_filter travel with it);
* ``set_clustering`` when the clustering columns differ;
* ``set_table_options`` for require_partition_filter, partition expiration
  (when the partitioning itself is unchanged), description and labels.

It owns the table description on BigQuery: Alembic's built-in table comment
comparison is switched off there, so a description is proposed once, and
cleared through the API (the DDL path, ``SET OPTIONS(description=NULL)``,
is not understood by the local stand-in). On any other backend nothing is
compared: DuckDB has none of these properties.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate.api import AutogenContext
from alembic.operations.ops import ModifyTableOps
from alembic.runtime.plugins import Plugin
from alembic.util import PriorityDispatchResult

from bqrepo.alembic_ext import live
from bqrepo.alembic_ext.clustering import SetClusteringOp
from bqrepo.alembic_ext.options import SetTableOptionsOp
from bqrepo.alembic_ext.partitioning import ChangePartitioningOp
from bqrepo.alembic_ext.rebuild import partition_spec
from bqrepo.backend import BigQueryBackend, require_backend
from bqrepo.table_options import TableOptions

__all__ = ["PLUGIN_NAME", "compare_table_options", "setup"]

log = logging.getLogger("bqrepo.alembic_ext")

PLUGIN_NAME = "bqrepo.alembic_ext"


def compare_table_options(
    autogen_context: AutogenContext,
    modify_table_ops: ModifyTableOps,
    schema: str | None,
    table_name: str,
    conn_table: sa.Table | None,
    metadata_table: sa.Table | None,
) -> PriorityDispatchResult:
    """Append the operations that make the live table match ``metadata_table``."""
    connection = autogen_context.connection
    if conn_table is None or metadata_table is None or connection is None:
        return PriorityDispatchResult.CONTINUE
    context = autogen_context.migration_context
    live_table = live.get_table_or_none(
        require_backend(connection, BigQueryBackend).client, live.table_id(context, table_name, schema)
    )
    if live_table is None:
        return PriorityDispatchResult.CONTINUE
    found = TableOptions.from_bigquery(live_table)
    wanted = TableOptions.of(metadata_table)
    ops = modify_table_ops.ops

    repartition = partition_spec(found.time_partitioning) != partition_spec(wanted.time_partitioning)
    if repartition:
        ops.append(
            ChangePartitioningOp(
                table_name,
                wanted.time_partitioning,
                existing=found.time_partitioning,
                # Carried so that a re-run after a hard kill cannot lose it.
                require_partition_filter=wanted.require_partition_filter,
                schema=schema,
            )
        )
        log.info("Detected partitioning change on %r", table_name)
    if found.clustering_fields != wanted.clustering_fields:
        ops.append(
            SetClusteringOp(
                table_name, wanted.clustering_fields, existing=found.clustering_fields, schema=schema
            )
        )
        log.info("Detected clustering change on %r", table_name)
    compared = ["require_partition_filter", "description", "labels"]
    if not repartition:
        compared.append("partition_expiration_days")
    changed = [name for name in compared if getattr(found, name) != getattr(wanted, name)]
    if changed:
        ops.append(
            SetTableOptionsOp(
                table_name,
                {name: getattr(wanted, name) for name in changed},
                existing={name: getattr(found, name) for name in changed},
                schema=schema,
            )
        )
        log.info("Detected option changes %s on %r", changed, table_name)
    return PriorityDispatchResult.CONTINUE


def _leave_table_comments_to_us(
    autogen_context: AutogenContext, *args: Any
) -> PriorityDispatchResult:
    """Stop Alembic's table comment comparison: ``description`` is compared above."""
    return PriorityDispatchResult.STOP


def setup(plugin: Plugin) -> None:
    """Register the comparators (called once, by ``Plugin.setup_plugin_from_module``)."""
    plugin.add_autogenerate_comparator(
        compare_table_options, "table", "bqrepo_options", qualifier="bigquery"
    )
    plugin.add_autogenerate_comparator(
        _leave_table_comments_to_us, "table", "comments", qualifier="bigquery"
    )
