"""``op.change_partitioning()``: rebuild a table under a new time partitioning.

This module holds the operation, as Alembic sees it: the op class, the call
that runs it, and the renderer autogenerate writes it with. The rebuild
itself (chunked, verified, resumable copies through a staging table, and the
offline DDL) is :mod:`bqrepo.alembic_ext.rebuild`; its docstring says what
happens step by step and what to do when it stopped part-way.
"""

from __future__ import annotations

import warnings
from typing import Any

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations
from google.cloud.bigquery import TimePartitioning

from bqrepo.alembic_ext import live
from bqrepo.alembic_ext.rebuild import (
    STAGING_SUFFIX,
    PendingRebuild,
    RebuiltTableWarning,
    RepartitionError,
    include_name,
    offline_rebuild,
    partition_spec,
    pending_rebuilds,
    render_partitioning,
    streaming_caution,
)
from bqrepo.alembic_ext.rebuild import Repartition as _Repartition
from bqrepo.checksum import checksums
from bqrepo.table_options import MAX_PARTITIONS_MODIFIED_PER_JOB, SchemaError
from bqrepo.timeunits import GRANULARITIES

# The rebuild's names stay importable from here, where they were first.
__all__ = [
    "STAGING_SUFFIX",
    "UNKNOWN",
    "ChangePartitioningOp",
    "PendingRebuild",
    "RebuiltTableWarning",
    "RepartitionError",
    "checksums",
    "include_name",
    "pending_rebuilds",
]

# ``existing=...`` (the default): the old partitioning was not recorded, so
# the operation cannot be reversed. (Alembic re-creates the ``op.*`` proxy
# from the signature's reprs, so the marker must be a builtin.)
UNKNOWN: Any = ...


@Operations.register_operation("change_partitioning")
class ChangePartitioningOp(MigrateOperation):
    """Rebuild ``table_name`` partitioned by ``partitioning`` (``None``: unpartitioned).

    ``require_partition_filter`` is what the rebuilt table gets; autogenerate
    sets it from the metadata. ``None`` keeps the old table's.
    """

    def __init__(
        self,
        table_name: str,
        partitioning: TimePartitioning | None,
        *,
        existing: TimePartitioning | None = UNKNOWN,
        require_partition_filter: bool | None = None,
        max_partitions_per_job: int = MAX_PARTITIONS_MODIFIED_PER_JOB,
        schema: str | None = None,
    ) -> None:
        if partitioning is not None and (partitioning.type_ or "DAY") not in GRANULARITIES:
            raise SchemaError(
                f"table {table_name!r}: unknown granularity {partitioning.type_!r}; "
                f"use one of {sorted(GRANULARITIES)}"
            )
        if partitioning is None and require_partition_filter:
            raise SchemaError(
                f"table {table_name!r}: require_partition_filter needs a partitioned table"
            )
        if not 1 <= max_partitions_per_job <= MAX_PARTITIONS_MODIFIED_PER_JOB:
            raise ValueError(
                f"max_partitions_per_job must be 1..{MAX_PARTITIONS_MODIFIED_PER_JOB}, "
                f"not {max_partitions_per_job}"
            )
        self.table_name = table_name
        self.partitioning = partitioning
        self.existing = existing
        self.require_partition_filter = require_partition_filter
        self.max_partitions_per_job = max_partitions_per_job
        self.schema = schema

    @classmethod
    def change_partitioning(
        cls,
        operations: Operations,
        table_name: str,
        partitioning: TimePartitioning | None,
        *,
        existing: TimePartitioning | None = UNKNOWN,
        require_partition_filter: bool | None = None,
        max_partitions_per_job: int = MAX_PARTITIONS_MODIFIED_PER_JOB,
        schema: str | None = None,
    ) -> None:
        """Rebuild ``table_name`` under ``partitioning``, copying and verifying its rows.

        ``require_partition_filter``: what the rebuilt table gets (``None``: what
        the old table had before any attempt of this operation changed it).
        """
        operations.invoke(
            cls(
                table_name,
                partitioning,
                existing=existing,
                require_partition_filter=require_partition_filter,
                max_partitions_per_job=max_partitions_per_job,
                schema=schema,
            )
        )

    def reverse(self) -> ChangePartitioningOp:
        """The downgrade: rebuild under ``existing``, keeping the table's filter
        requirement. A ``set_table_options`` of the same revision that changed
        it is reversed first (Alembic reverses the order), so the rebuild keeps
        the old value."""
        if self.existing is UNKNOWN:
            raise ValueError(
                f"change_partitioning({self.table_name!r}) has no existing= partitioning, "
                "so it cannot be reversed"
            )
        return ChangePartitioningOp(
            self.table_name,
            self.existing,
            existing=self.partitioning,
            max_partitions_per_job=self.max_partitions_per_job,
            schema=self.schema,
        )

    def to_diff_tuple(self) -> tuple[str, str, Any, Any]:
        """``compare_metadata``'s view: partition column and granularity, old and new
        (``...`` when the old one was not recorded)."""
        return (
            "change_partitioning",
            self.table_name,
            _spec_or_unknown(self.existing),
            partition_spec(self.partitioning),
        )


def _spec_or_unknown(partitioning: Any) -> Any:
    return partitioning if partitioning is UNKNOWN else partition_spec(partitioning)


@Operations.implementation_for(ChangePartitioningOp)
def _change_partitioning(operations: Operations, operation: ChangePartitioningOp) -> None:
    context = operations.migration_context
    if not live.is_bigquery(context):
        return
    if live.is_offline(context):
        offline_rebuild(context, operation)
        return
    _Repartition(operations, operation).run()
    warnings.warn(streaming_caution(operation.table_name), RebuiltTableWarning, stacklevel=2)


@renderers.dispatch_for(ChangePartitioningOp)
def _render_change_partitioning(autogen_context: AutogenContext, op: ChangePartitioningOp) -> str:
    autogen_context.imports.add("from google.cloud.bigquery import TimePartitioning")
    args = [repr(op.table_name), render_partitioning(op.partitioning)]
    if op.existing is not UNKNOWN:
        args.append(f"existing={render_partitioning(op.existing)}")
    if op.require_partition_filter is not None:
        args.append(f"require_partition_filter={op.require_partition_filter!r}")
    if op.max_partitions_per_job != MAX_PARTITIONS_MODIFIED_PER_JOB:
        args.append(f"max_partitions_per_job={op.max_partitions_per_job!r}")
    if op.schema is not None:
        args.append(f"schema={op.schema!r}")
    return f"op.change_partitioning({', '.join(args)})"
