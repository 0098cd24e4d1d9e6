"""Declaring a time-series table: what bqrepo needs to know beyond the columns.

A table is a SQLAlchemy ``Table`` with its ``bigquery_*`` options. To serve
it (row types, writers, the generic repository, the CLI, migrations) bqrepo
needs four more facts, declared once with :func:`time_series` and kept in
``table.info["bqrepo"]``, so they travel with the table wherever SQLAlchemy
and Alembic take it:

* ``time``: the column a time range filters. On a partitioned table it must
  be the partition column, so every range query prunes partitions.
* ``key``: the columns that identify one observation. A row without an id
  gets a uuid5 of the table name and these values (:func:`bqrepo.rows.natural_id`),
  so the same observation polled twice has the same id and read-side
  de-duplication collapses the copies. Their order is part of the id.
* ``version``: the column that orders versions of one id; the newest wins
  on read. ``None`` when copies of an id are identical (then any copy is kept).
* ``series``: the columns that name one series ("latest value per series",
  "one series"); by default the key without the time column.

``ids`` says whether a caller may give an id of its own (``"given"``, e.g.
an event's Django primary key) or an id must equal the derived one
(``"derived"``, economic observations).

Per-table validation rules ride along as ``rules``: a subclass of
:class:`bqrepo.rows.Row` with pydantic validators (``check_fields=False``),
used as the base of the derived row type.

Why ``table.info`` and not a registry: a user's metadata is imported by
their own code, by Alembic's ``env.py`` and by the CLI, in any order; the
declaration must come with the ``Table`` object, not with an import side
effect elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from bqrepo.errors import SchemaError

__all__ = ["IdPolicy", "TimeSeries", "declaration", "declared_tables", "is_declared", "time_series"]

IdPolicy = Literal["given", "derived"]

_INFO_KEY = "bqrepo"


@dataclass(frozen=True)
class TimeSeries:
    """The bqrepo facts of one table (see the module docstring)."""

    table: sa.Table
    time: str
    key: tuple[str, ...]
    version: str | None
    series: tuple[str, ...]
    ids: IdPolicy
    rules: type[Any] | None = None
    row_name: str | None = None

    @property
    def time_column(self) -> sa.Column[Any]:
        return self.table.c[self.time]

    @property
    def is_date(self) -> bool:
        """Whether the time column is a DATE (else a TIMESTAMP)."""
        return not isinstance(self.time_column.type, sa.DateTime)

    def newest_first(self) -> list[sa.ColumnElement[Any]]:
        """The de-duplication order: newest ``version`` first (NULLs last), else by time."""
        if self.version is None:
            return [self.time_column.desc()]
        return [self.table.c[self.version].desc().nulls_last()]


def time_series(
    table: sa.Table,
    *,
    time: str,
    key: Sequence[str],
    version: str | None = None,
    series: Sequence[str] | None = None,
    ids: IdPolicy = "derived",
    rules: type[Any] | None = None,
    row_name: str | None = None,
) -> sa.Table:
    """Declare ``table`` a time series bqrepo serves; returns the table.

    Raises :class:`~bqrepo.errors.SchemaError` naming the table and column
    for a declaration bqrepo could not serve correctly: a missing column, a
    time column that is not DATE or TIMESTAMP or not the partition column,
    a nullable time column, no STRING ``id`` column.
    """
    name = table.name
    columns = {column.name: column for column in table.columns}

    def column(role: str, column_name: str) -> sa.Column[Any]:
        if not isinstance(column_name, str) or column_name not in columns:
            raise SchemaError(
                f"table {name!r}: {role} column {column_name!r} is not a column of the table "
                f"(columns: {', '.join(columns)})"
            )
        return columns[column_name]

    id_column = columns.get("id")
    if id_column is None or not isinstance(id_column.type, sa.String) or id_column.nullable:
        raise SchemaError(
            f"table {name!r}: a time series needs an 'id' column of type String, NOT NULL "
            "(the row id that read-side de-duplication keys on)"
        )
    time_column = column("time", time)
    if not isinstance(time_column.type, (sa.Date, sa.DateTime)):
        raise SchemaError(f"table {name!r}: time column {time!r} must be a Date or a TIMESTAMP(timezone=True)")
    if isinstance(time_column.type, sa.DateTime) and not (
        isinstance(time_column.type, sa.TIMESTAMP) and time_column.type.timezone
    ):
        raise SchemaError(
            f"table {name!r}: time column {time!r} must be TIMESTAMP(timezone=True), a UTC instant; "
            "a DateTime without time zone is BigQuery DATETIME, a wall-clock time"
        )
    if time_column.nullable:
        raise SchemaError(f"table {name!r}: time column {time!r} must be NOT NULL (nullable=False)")
    partitioning = table.dialect_options["bigquery"].get("time_partitioning")
    field = getattr(partitioning, "field", None)
    if partitioning is not None and field != time:
        raise SchemaError(
            f"table {name!r}: time column {time!r} must be the partition column ({field!r}), "
            "so that every time range prunes partitions"
        )
    key_columns = tuple(key) if not isinstance(key, str) else (key,)
    if not key_columns:
        raise SchemaError(f"table {name!r}: key must name at least one column")
    for key_column in key_columns:
        if key_column == "id":
            raise SchemaError(f"table {name!r}: key column 'id' cannot identify itself")
        if isinstance(column("key", key_column).type, sa.JSON):
            raise SchemaError(
                f"table {name!r}: key column {key_column!r} is JSON; a key part must be a single value "
                "(string, number, boolean, date or timestamp)"
            )
    if version is not None:
        version_column = column("version", version)
        if not isinstance(version_column.type, (sa.Date, sa.DateTime, sa.Integer)):
            raise SchemaError(f"table {name!r}: version column {version!r} must be a TIMESTAMP, Date or Integer")
    if series is None:
        series_columns = tuple(part for part in key_columns if part != time)
    else:
        series_columns = tuple(series) if not isinstance(series, str) else (series,)
        for series_column in series_columns:
            column("series", series_column)
    if ids not in ("given", "derived"):
        raise SchemaError(f"table {name!r}: ids must be 'given' or 'derived', not {ids!r}")
    table.info[_INFO_KEY] = TimeSeries(
        table=table,
        time=time,
        key=key_columns,
        version=version,
        series=series_columns,
        ids=ids,
        rules=rules,
        row_name=row_name,
    )
    return table


def is_declared(table: sa.Table) -> bool:
    return isinstance(table.info.get(_INFO_KEY), TimeSeries)


def declaration(table: sa.Table) -> TimeSeries:
    """The declaration of ``table``, or :class:`SchemaError` saying how to declare it.

    A copy of a declared table (``Table.to_metadata``, which copies ``info``)
    carries its original's declaration; it is declared again here with the
    same facts, checked against the copy's own columns, so the declaration
    returned always describes ``table`` itself.
    """
    found = table.info.get(_INFO_KEY)
    if not isinstance(found, TimeSeries):
        raise SchemaError(
            f"table {table.name!r} is not declared as a time series; declare it with "
            "bqrepo.timeseries.time_series(table, time=..., key=...)"
        )
    if found.table is not table:
        time_series(
            table,
            time=found.time,
            key=found.key,
            version=found.version,
            series=found.series,
            ids=found.ids,
            rules=found.rules,
            row_name=found.row_name,
        )
        redeclared: TimeSeries = table.info[_INFO_KEY]
        return redeclared
    return found


def declared_tables(metadata: sa.MetaData | Iterable[sa.Table]) -> list[sa.Table]:
    """The declared tables of ``metadata``, in its order."""
    tables = metadata.tables.values() if isinstance(metadata, sa.MetaData) else metadata
    return [table for table in tables if is_declared(table)]
