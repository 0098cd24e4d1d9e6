"""BigQuery table options carried on SQLAlchemy ``Table`` objects.

sqlalchemy-bigquery reads ``bigquery_*`` dialect options when it compiles
``CREATE TABLE`` but checks almost nothing: a clustering column that does not
exist only fails when BigQuery rejects the DDL, and labels are silently
dropped. This module is the single place that reads those options back as a
typed :class:`TableOptions` and validates them, so that a mistake in the
schema fails at import time with the table and column named, and so that the
Alembic extension can compare metadata with a live table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from google.cloud.bigquery import TimePartitioning

__all__ = ["MAX_CLUSTERING_FIELDS", "SchemaError", "TableOptions", "check_table_options"]

MAX_CLUSTERING_FIELDS = 4
_TIMESTAMP_GRANULARITIES = {"HOUR", "DAY", "MONTH", "YEAR"}
# sqlalchemy-bigquery raises ValueError for DAY/HOUR on a DATE column
# (googleapis/python-bigquery-sqlalchemy#1162), so only these are allowed.
_DATE_GRANULARITIES = {"MONTH", "YEAR"}


class SchemaError(ValueError):
    """The schema's BigQuery options are inconsistent. Names table and column."""


@dataclass(frozen=True)
class TableOptions:
    """The BigQuery-only properties of one table, as declared in metadata."""

    partition_field: str | None = None
    partition_type: str | None = None
    partition_expiration_days: float | None = None
    clustering_fields: tuple[str, ...] = ()
    require_partition_filter: bool = False
    description: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, table: sa.Table) -> TableOptions:
        """Read the ``bigquery_*`` dialect options of ``table``."""
        opts = table.dialect_options["bigquery"]
        partitioning: TimePartitioning | None = opts.get("time_partitioning")
        expiration_ms = partitioning.expiration_ms if partitioning else None
        return cls(
            partition_field=partitioning.field if partitioning else None,
            partition_type=partitioning.type_ if partitioning else None,
            partition_expiration_days=(
                expiration_ms / 86_400_000 if expiration_ms is not None else None
            ),
            clustering_fields=tuple(opts.get("clustering_fields") or ()),
            require_partition_filter=bool(opts.get("require_partition_filter")),
            description=opts.get("description") or table.comment,
            labels=dict(table.info.get("bigquery_labels", {})),
        )


def check_table_options(table: sa.Table) -> TableOptions:
    """Validate ``table``'s BigQuery options and return them.

    Raises :class:`SchemaError` naming the table and the offending column when
    a partition or clustering column does not exist, has a type that cannot
    carry the requested granularity, or when there are more than four
    clustering columns.
    """
    options = TableOptions.of(table)
    name = table.name
    if options.partition_field is not None:
        column = table.c.get(options.partition_field)
        if column is None:
            raise SchemaError(
                f"table {name!r}: partition column {options.partition_field!r} does not exist"
            )
        granularity = options.partition_type or "DAY"
        if isinstance(column.type, sa.TIMESTAMP):
            allowed = _TIMESTAMP_GRANULARITIES
        elif isinstance(column.type, sa.Date):
            allowed = _DATE_GRANULARITIES
        else:
            raise SchemaError(
                f"table {name!r}: partition column {column.name!r} must be TIMESTAMP or "
                f"DATE, not {column.type}"
            )
        if granularity not in allowed:
            raise SchemaError(
                f"table {name!r}: partition column {column.name!r} of type {column.type} "
                f"cannot be partitioned by {granularity}; use one of {sorted(allowed)}"
            )
        if column.nullable:
            raise SchemaError(
                f"table {name!r}: partition column {column.name!r} must be NOT NULL"
            )
    if options.require_partition_filter and options.partition_field is None:
        raise SchemaError(f"table {name!r}: require_partition_filter needs a partition column")
    if len(options.clustering_fields) > MAX_CLUSTERING_FIELDS:
        raise SchemaError(
            f"table {name!r}: {len(options.clustering_fields)} clustering columns "
            f"{list(options.clustering_fields)}; BigQuery allows at most {MAX_CLUSTERING_FIELDS}"
        )
    for column_name in options.clustering_fields:
        if column_name not in table.c:
            raise SchemaError(
                f"table {name!r}: clustering column {column_name!r} does not exist"
            )
    return options
