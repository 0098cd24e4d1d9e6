"""BigQuery table options carried on SQLAlchemy ``Table`` objects.

sqlalchemy-bigquery reads ``bigquery_*`` dialect options when it compiles
``CREATE TABLE`` but checks almost nothing: a clustering column that does not
exist only fails when BigQuery rejects the DDL, and labels are silently
dropped (bqrepo keeps them in ``table.info["bigquery_labels"]``). This module
is the single place that reads those options back as a typed
:class:`TableOptions` and validates them, so that a mistake in the schema
fails at import time with the table and column named, and so that the
Alembic extension can compare metadata with a live table
(:meth:`TableOptions.from_bigquery`) and validate an operation before it
touches anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from google.cloud.bigquery import TimePartitioning

from bqrepo.errors import SchemaError
from bqrepo.labels import MAX_LABELS, label_problem
from bqrepo.timeunits import FIRST_PARTITIONED_DAY, GRANULARITIES, LAST_PARTITIONED_DAY

__all__ = [
    "FIRST_PARTITIONED_DAY",
    "LAST_PARTITIONED_DAY",
    "MAX_CLUSTERING_FIELDS",
    "MAX_PARTITIONS",
    "MAX_PARTITIONS_MODIFIED_PER_JOB",
    "PartitionLimitWarning",
    "SchemaError",
    "TableOptions",
    "check_clustering",
    "check_labels",
    "check_partitioning",
    "check_table_options",
]

MAX_CLUSTERING_FIELDS = 4
MAX_PARTITIONS = 10_000
#: BigQuery lets one job (a load, an INSERT ... SELECT) modify at most 4,000 partitions.
MAX_PARTITIONS_MODIFIED_PER_JOB = 4_000
_MS_PER_DAY = 86_400_000
_TIMESTAMP_GRANULARITIES: set[str] = set(GRANULARITIES)
# sqlalchemy-bigquery raises ValueError for DAY/HOUR on a DATE column
# (googleapis/python-bigquery-sqlalchemy#1162), so only these are allowed.
_DATE_GRANULARITIES = {"MONTH", "YEAR"}
_GRANULARITIES_BY_TYPE = {"TIMESTAMP": _TIMESTAMP_GRANULARITIES, "DATE": _DATE_GRANULARITIES}
# Why a granularity or type BigQuery itself accepts is refused, for the error message.
_DATE_BY_DAY_REASON = (
    "BigQuery accepts it, but sqlalchemy-bigquery 1.17 cannot compile CREATE TABLE for it "
    "(googleapis/python-bigquery-sqlalchemy#1162), so the metadata could not declare the "
    "table and every autogenerate would propose changing it back. Partition by MONTH or "
    "YEAR, or partition a TIMESTAMP column by DAY"
)
_DATETIME_REASON = (
    "DATETIME is a wall-clock time without a time zone; bqrepo stores instants as "
    "TIMESTAMP (sa.TIMESTAMP(timezone=True)), and change_partitioning copies by DATE or "
    "TIMESTAMP bounds only"
)
# https://cloud.google.com/bigquery/docs/labels-intro#requirements


class PartitionLimitWarning(UserWarning):
    """The data present would need more partitions than BigQuery allows per table."""


@dataclass(frozen=True)
class TableOptions:
    """The BigQuery-only properties of one table, as declared or as live."""

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
        return cls(
            partition_field=partitioning.field if partitioning else None,
            partition_type=(partitioning.type_ or "DAY") if partitioning else None,
            partition_expiration_days=_days(partitioning.expiration_ms if partitioning else None),
            clustering_fields=tuple(opts.get("clustering_fields") or ()),
            require_partition_filter=bool(opts.get("require_partition_filter")),
            description=opts.get("description") or table.comment or None,
            labels=dict(table.info.get("bigquery_labels", {})),
        )

    @classmethod
    def from_bigquery(cls, table: Any) -> TableOptions:
        """Read a live ``google.cloud.bigquery.Table`` (from ``client.get_table``)."""
        partitioning: TimePartitioning | None = table.time_partitioning
        return cls(
            partition_field=partitioning.field if partitioning else None,
            partition_type=(partitioning.type_ or "DAY") if partitioning else None,
            partition_expiration_days=_days(partitioning.expiration_ms if partitioning else None),
            clustering_fields=tuple(table.clustering_fields or ()),
            require_partition_filter=bool(table.require_partition_filter),
            description=table.description or None,
            labels=dict(table.labels or {}),
        )

    @property
    def time_partitioning(self) -> TimePartitioning | None:
        """The partitioning as the client library spells it (``None``: unpartitioned)."""
        if self.partition_type is None:
            return None
        expiration = self.partition_expiration_days
        return TimePartitioning(
            field=self.partition_field,
            type_=self.partition_type,
            expiration_ms=round(expiration * _MS_PER_DAY) if expiration is not None else None,
        )


def _days(expiration_ms: int | str | None) -> float | None:
    return int(expiration_ms) / _MS_PER_DAY if expiration_ms is not None else None


def check_partitioning(
    table_name: str, field_name: str | None, granularity: str, field_type: str | None
) -> None:
    """Check that column ``field_name`` of BigQuery type ``field_type`` can be
    partitioned by ``granularity``. ``field_type`` is ``None`` when the column
    does not exist; ``field_name`` is ``None`` for ingestion-time partitioning."""
    if field_name is None:
        return
    if field_type is None:
        raise SchemaError(f"table {table_name!r}: partition column {field_name!r} does not exist")
    allowed = _GRANULARITIES_BY_TYPE.get(field_type.upper())
    if allowed is None:
        reason = f": {_DATETIME_REASON}" if field_type.upper() == "DATETIME" else ""
        raise SchemaError(
            f"table {table_name!r}: partition column {field_name!r} must be TIMESTAMP or "
            f"DATE, not {field_type}{reason}"
        )
    if granularity not in allowed:
        if field_type.upper() == "DATE" and granularity == "DAY":
            reason = f": {_DATE_BY_DAY_REASON}"
        else:
            reason = f"; use one of {sorted(allowed)}"
        raise SchemaError(
            f"table {table_name!r}: partition column {field_name!r} of type {field_type} "
            f"cannot be partitioned by {granularity}{reason}"
        )


def check_clustering(table_name: str, fields: Iterable[str], columns: Iterable[str]) -> None:
    """At most four clustering columns, each an existing column."""
    fields = list(fields)
    if len(fields) > MAX_CLUSTERING_FIELDS:
        raise SchemaError(
            f"table {table_name!r}: {len(fields)} clustering columns {fields}; "
            f"BigQuery allows at most {MAX_CLUSTERING_FIELDS}"
        )
    existing = set(columns)
    for column_name in fields:
        if column_name not in existing:
            raise SchemaError(
                f"table {table_name!r}: clustering column {column_name!r} does not exist"
            )


def check_labels(table_name: str, labels: Mapping[str, str]) -> None:
    """BigQuery's label rules (:mod:`bqrepo.labels`): lowercase keys and values, at most 63 characters, 64 labels."""
    if len(labels) > MAX_LABELS:
        raise SchemaError(f"table {table_name!r}: {len(labels)} labels; BigQuery allows {MAX_LABELS}")
    for key, value in labels.items():
        problem = label_problem(key, value)
        if problem is not None:
            raise SchemaError(f"table {table_name!r}: {problem}")


def _bigquery_type_name(column_type: sa.types.TypeEngine[Any]) -> str:
    """The BigQuery type a partition column compiles to, as far as partitioning cares."""
    if isinstance(column_type, sa.TIMESTAMP):
        return "TIMESTAMP"
    if isinstance(column_type, sa.Date) and not isinstance(column_type, sa.DateTime):
        return "DATE"
    return str(column_type)


def check_table_options(table: sa.Table) -> TableOptions:
    """Validate ``table``'s BigQuery options and return them.

    Raises :class:`SchemaError` naming the table and the offending column when
    a partition or clustering column does not exist, has a type that cannot
    carry the requested granularity, when there are more than four
    clustering columns, or when a label breaks BigQuery's rules.
    """
    options = TableOptions.of(table)
    name = table.name
    if options.partition_field is not None:
        column = table.c.get(options.partition_field)
        check_partitioning(
            name,
            options.partition_field,
            options.partition_type or "DAY",
            _bigquery_type_name(column.type) if column is not None else None,
        )
        assert column is not None
        if column.nullable:
            raise SchemaError(
                f"table {name!r}: partition column {column.name!r} must be NOT NULL"
            )
    if options.require_partition_filter and options.partition_field is None:
        raise SchemaError(f"table {name!r}: require_partition_filter needs a partition column")
    if options.partition_expiration_days is not None and options.partition_expiration_days <= 0:
        raise SchemaError(f"table {name!r}: partition expiration must be positive")
    check_clustering(name, options.clustering_fields, (c.name for c in table.columns))
    check_labels(name, options.labels)
    return options
