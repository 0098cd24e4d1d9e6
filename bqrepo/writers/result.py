"""What every writer returns, and the one-method protocol writers implement.

A write never loses a row silently: every row of the batch is either counted
in :attr:`WriteResult.written`, counted in :attr:`WriteResult.duplicates`
(an identical copy of another row of the same batch, which the streaming
writer sends once), or listed in :attr:`WriteResult.rejected` with its index
in the batch, its data and the reason:
``written + duplicates + len(rejected) == len(rows)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa

from bqrepo.rows import Row, RowError

__all__ = ["RejectedRow", "WriteResult", "Writer", "check_rows"]


@dataclass(frozen=True)
class RejectedRow:
    """A row the database did not store.

    ``index`` is the row's position in the batch passed to ``write``; ``row``
    is the data as it was sent (its shape depends on the writer: the
    insertAll JSON, a load-job line, DuckDB values, or the caller's record
    when validation refused it); ``field`` names the column when the database
    said which. ``retryable`` is true when the rejection was not about the
    row itself (a stopped or timed-out request), so sending the same row
    again can succeed. ``record`` is the validated row, the same whichever
    writer ran, ready to write again; it is None only when validation
    rejected the record.

    ``problems`` lists every ``(field, reason)`` found on the row: a record
    with three bad fields is *one* rejected row carrying three problems.
    ``field`` and ``reason`` are those of the first problem (what a caller
    written before ``problems`` existed reads); a rejection built with only
    ``field`` and ``reason`` gets them as its single problem.
    """

    index: int
    row: dict[str, Any]
    reason: str
    field: str | None = None
    retryable: bool = False
    record: Row | None = None
    problems: tuple[tuple[str | None, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.problems:
            object.__setattr__(self, "problems", ((self.field, self.reason),))

    @classmethod
    def from_errors(cls, row: dict[str, Any], errors: Sequence[RowError]) -> RejectedRow:
        """One rejection for one record's validation errors (all of the same ``index``)."""
        first = errors[0]
        return cls(
            index=first.index,
            row=row,
            reason=first.message,
            field=first.field,
            problems=tuple((error.field, error.message) for error in errors),
        )


@dataclass
class WriteResult:
    """Outcome of one ``Writer.write`` call.

    ``written`` is the number of rows the table gained. ``duplicates``
    counts rows of the batch identical in every column to an earlier row of
    it: the streaming writer sends such a row once, since BigQuery would drop
    the copy anyway (same insertId), and counts the copies here rather than
    as written. ``rejected`` holds one entry per rejected row (never one per problem).
    ``requests`` counts the round trips made (streaming requests,
    load jobs, or statements), which shows how a batch was chunked.
    """

    written: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    requests: int = 0
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        """True when every row of the batch was stored."""
        return not self.rejected

    def with_records(self, rows: Sequence[Row]) -> WriteResult:
        """Fill each rejection's ``record`` from ``rows``, the batch its index points into."""
        self.rejected = [
            rejected if rejected.record is not None else replace(rejected, record=rows[rejected.index])
            for rejected in self.rejected
        ]
        return self

    def merge(self, other: WriteResult) -> None:
        """Add another chunk's outcome to this one."""
        self.written += other.written
        self.rejected.extend(other.rejected)
        self.requests += other.requests
        self.duplicates += other.duplicates


@runtime_checkable
class Writer(Protocol):
    """Stores validated rows in one table. Implementations: one per mechanism."""

    def write(self, table: sa.Table, rows: Sequence[Row]) -> WriteResult:
        """Append ``rows`` to ``table``; report every row not stored."""
        ...


def check_rows(table: sa.Table, rows: Sequence[Row]) -> None:
    """Refuse a batch that is not made of ``table``'s row type.

    A wrong type is a programming error, not bad data: it raises instead of
    becoming a rejected row. A row of another ``Table`` object of the same
    name (a copy, another MetaData) is accepted when its columns are the
    same; one built for a version of the table with other columns is not,
    since writers send each row's fields, column by column.
    """
    checked: set[type[Any]] = set()  # each row type once, not each row
    for index, row in enumerate(rows):
        kind = type(row)
        if kind in checked:
            continue
        if not isinstance(row, Row) or row.__table__.name != table.name:
            raise TypeError(
                f"row {index}: expected a row for table {table.name!r}, got {type(row).__name__}"
            )
        if row.__table__ is not table and row.__table__.columns.keys() != table.columns.keys():
            raise TypeError(
                f"row {index}: a {kind.__name__} has the columns {row.__table__.columns.keys()}, "
                f"table {table.name!r} has {table.columns.keys()}; build rows with "
                "bqrepo.rows.row_type(table)"
            )
        checked.add(kind)
