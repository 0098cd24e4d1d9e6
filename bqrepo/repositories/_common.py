"""Small helpers shared by the repositories: typed bound parameters and argument checks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement

TIMESTAMP = sa.TIMESTAMP(timezone=True)


def timestamp_param(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=TIMESTAMP)


def date_param(name: str) -> sa.BindParameter[date]:
    return sa.bindparam(name, type_=sa.Date())


def half_open(column: sa.Column[Any], start: sa.BindParameter[Any], end: sa.BindParameter[Any]) -> ColumnElement[bool]:
    """``start <= column < end`` on the bare column, the shape BigQuery prunes partitions with."""
    return sa.and_(column >= start, column < end)


def optional_equals(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = :name`` unless ``:name`` is NULL: one prepared statement for "filter" and "no filter".

    The CAST gives DuckDB a type for the parameter when it stands alone.
    """
    param = sa.bindparam(name, type_=sa.String())
    return sa.or_(sa.cast(param, sa.String()).is_(None), column == param)


def aware(name: str, value: datetime) -> datetime:
    """``value`` in UTC; naive datetimes are refused rather than guessed."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value!r} is a naive datetime; pass an aware one, e.g. datetime.now(UTC)")
    return value.astimezone(UTC)


def plain_date(name: str, value: date) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime.date, got {type(value).__name__}")
    return value


def optional_text(name: str, value: str | None) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def text_list(name: str, values: Any) -> list[str]:
    """A list of strings; a bare string is refused (it would be read as its characters)."""
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of str, got {type(values).__name__}")
    items = list(values)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(item).__name__}")
    return items


def positive_int(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
