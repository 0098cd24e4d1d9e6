"""Small helpers shared by the repositories: typed bound parameters and argument checks.

Why checks here and not in the database: every public argument is checked
at the repository boundary, before anything is sent, so a bad value comes
back as one :class:`~bqrepo.errors.InvalidArgumentError` that names the
argument and the accepted range, the same on DuckDB and BigQuery, never as a
driver's error or a Python ``OverflowError`` from date arithmetic. The
ranges are BigQuery's (the stricter engine), so every accepted value runs on
both engines:

* TIMESTAMP: 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999 UTC, which
  is also the range of Python's ``datetime``, so arithmetic on an accepted
  value is clipped at these bounds, never overflowed;
* INT64 for counts (``limit``);
* STRING: valid UTF-8 (a lone surrogate, which Python makes of a non-UTF-8
  byte on a command line, cannot be sent to either engine) without NUL.

Plain ``if`` checks rather than pydantic's ``validate_call``: they cost well
under a microsecond per argument, keep the signatures (and so the
``Protocol`` classes) untouched, and let each message say the accepted range
in the argument's own terms.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement

from bqrepo.errors import InvalidArgumentError

TIMESTAMP = sa.TIMESTAMP(timezone=True)

INT64_MAX = 2**63 - 1

_TIMESTAMP_RANGE = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


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
    """``value`` in UTC, within BigQuery's TIMESTAMP range; naive datetimes are refused rather than guessed."""
    if not isinstance(value, datetime):
        raise InvalidArgumentError(name, f"must be an aware datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            name, f"{value!r} is a naive datetime; pass an aware one, e.g. datetime.now(UTC)"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before the first TIMESTAMP
        raise InvalidArgumentError(
            name, f"{value.isoformat()} is outside the TIMESTAMP range {_TIMESTAMP_RANGE}"
        ) from None


def positive_timedelta(name: str, value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidArgumentError(name, f"must be a positive timedelta, got {value!r}")
    return value


def plain_date(name: str, value: date) -> date:
    """A ``datetime.date`` (Python's range, 0001-01-01 to 9999-12-31, is BigQuery's DATE range)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidArgumentError(name, f"must be a datetime.date, got {type(value).__name__}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(name, f"must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidArgumentError(name, f"{value!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            name,
            f"{value!r} is not valid Unicode text (a lone surrogate at position {exc.start}, "
            "e.g. from a non-UTF-8 byte on a command line)",
        ) from None
    return value


def text(name: str, value: str) -> str:
    """A string both engines can bind: valid UTF-8, no NUL."""
    return _text(name, value)


def optional_text(name: str, value: str | None) -> str | None:
    return None if value is None else _text(name, value)


def text_list(name: str, values: Any) -> list[str]:
    """A list of strings; a bare string is refused (it would be read as its characters)."""
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise InvalidArgumentError(name, f"must be a list of str, got {type(values).__name__}")
    return [_text(f"{name}[{index}]", item) for index, item in enumerate(values)]


def positive_int(name: str, value: int) -> int:
    """An INT64 of at least 1 (DuckDB's LIMIT refuses 2**63, BigQuery's any non-INT64)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= INT64_MAX:
        raise InvalidArgumentError(name, f"must be an int from 1 to 2**63-1, got {value!r}")
    return value
