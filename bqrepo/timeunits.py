"""Time and partition arithmetic, in one place.

Why one module: the schema checks, the load writer, the back-fill's chunks,
the partition rebuild and the time buckets all ask the same few questions
(which granularities BigQuery partitions by, which days it partitions at all,
which partition a value lands in, where a calendar day, week, month, quarter
or year starts and where the next one does). Answered once here, they cannot
drift apart; the SQL side of the same arithmetic is
:mod:`bqrepo.constructs`.

Conventions, the ones BigQuery uses: instants are UTC, a week starts on
Monday (ISO 8601), fixed-width buckets count from :data:`EPOCH`, and
time-unit partitioning puts values before :data:`FIRST_PARTITIONED_DAY` or
after :data:`LAST_PARTITIONED_DAY` into :data:`UNPARTITIONED`. The
``TIMESTAMP`` range is Python's ``datetime`` range, so :func:`earlier` and
:func:`later` clip at its ends instead of overflowing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable
from typing import Literal, TypeVar, get_args

__all__ = [
    "CALENDAR_UNITS",
    "EPOCH",
    "FIRST_PARTITIONED_DAY",
    "FIXED_UNIT_SECONDS",
    "GRANULARITIES",
    "LAST_PARTITIONED_DAY",
    "TIMESTAMP_MAX",
    "TIMESTAMP_MIN",
    "UNPARTITIONED",
    "CalendarUnit",
    "Granularity",
    "TimeUnit",
    "earlier",
    "floor",
    "floor_seconds",
    "following",
    "later",
    "partition_of",
    "utc_now",
]

Granularity = Literal["HOUR", "DAY", "MONTH", "YEAR"]
"""The granularities of BigQuery time-unit partitioning."""
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)

TimeUnit = Literal["HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"]
"""Every unit :func:`floor` and :func:`following` know."""
CalendarUnit = Literal["WEEK", "MONTH", "QUARTER", "YEAR"]
"""The units whose length varies or that do not count from the epoch: no fixed width."""
CALENDAR_UNITS: tuple[CalendarUnit, ...] = get_args(CalendarUnit)
#: Units of a fixed width, in seconds (a UTC day has no leap seconds).
FIXED_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
"""The origin of every fixed-width bucket, on every engine."""
TIMESTAMP_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
"""BigQuery's (and Python's) smallest TIMESTAMP: 0001-01-01 00:00:00 UTC."""
TIMESTAMP_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)
"""BigQuery's (and Python's) largest TIMESTAMP: 9999-12-31 23:59:59.999999 UTC."""

#: Time-unit partitioning stores values before or after these days in ``__UNPARTITIONED__``.
FIRST_PARTITIONED_DAY = dt.date(1960, 1, 1)
LAST_PARTITIONED_DAY = dt.date(2159, 12, 31)
UNPARTITIONED = "__UNPARTITIONED__"
"""BigQuery's name for the partition of the values outside the partitioned days."""

_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}

When = TypeVar("When", dt.date, dt.datetime)


def utc_now() -> dt.datetime:
    """The current instant, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def earlier(moment: dt.datetime, span: dt.timedelta) -> dt.datetime:
    """``moment - span``, clipped at :data:`TIMESTAMP_MIN` (nothing is stored before it)."""
    return moment - span if moment - TIMESTAMP_MIN > span else TIMESTAMP_MIN


def later(moment: dt.datetime, span: dt.timedelta) -> dt.datetime:
    """``moment + span``, clipped at :data:`TIMESTAMP_MAX` (nothing is stored after it)."""
    return moment + span if TIMESTAMP_MAX - moment > span else TIMESTAMP_MAX


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment!r} is naive; pass an aware datetime")
    return moment.astimezone(dt.UTC)


def floor_seconds(moment: dt.datetime, seconds: int) -> dt.datetime:
    """The start of the ``seconds``-wide bucket holding ``moment`` (aware), counted from :data:`EPOCH`."""
    width = seconds * 1_000_000
    micros = (_utc(moment) - EPOCH) // dt.timedelta(microseconds=1)
    return EPOCH + dt.timedelta(microseconds=micros - micros % width)


def floor(value: When, unit: TimeUnit) -> When:
    """The start of the ``unit`` holding ``value``: a date for a date, a UTC datetime for an aware datetime.

    A date has no hours, so ``HOUR`` is refused for one; a naive datetime is
    refused rather than guessed to be UTC.
    """
    if isinstance(value, dt.datetime):
        moment = _utc(value)
        if unit == "HOUR":
            return moment.replace(minute=0, second=0, microsecond=0)
        start = _floor_day(moment.date(), unit)
        return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    if unit == "HOUR":
        raise ValueError(f"{value!r} is a date: it has no hours")
    return _floor_day(value, unit)


def _floor_day(day: dt.date, unit: TimeUnit) -> dt.date:
    if unit == "DAY":
        return day
    if unit == "WEEK":
        return day - dt.timedelta(days=day.weekday())
    if unit == "MONTH":
        return day.replace(day=1)
    if unit == "QUARTER":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if unit == "YEAR":
        return day.replace(month=1, day=1)
    raise ValueError(f"unknown time unit {unit!r}; use one of {get_args(TimeUnit)}")


def following(value: When, unit: TimeUnit) -> When:
    """The start of the ``unit`` after the one holding ``value`` (:func:`floor`'s next boundary)."""
    start = floor(value, unit)
    if unit == "HOUR":
        return start + dt.timedelta(hours=1)
    if unit == "DAY":
        return start + dt.timedelta(days=1)
    if unit == "WEEK":
        return start + dt.timedelta(days=7)
    index = start.year * 12 + start.month - 1 + _MONTHS[unit]
    return start.replace(year=index // 12, month=index % 12 + 1)


def partition_of(value: dt.date | dt.datetime | None, granularity: str) -> Hashable:
    """The BigQuery time-unit partition that ``value`` lands in, as a hashable key.

    The key is the day for ``DAY``, ``(day, hour)`` for ``HOUR`` (a DATE has
    none: its day), ``(year, month)`` for ``MONTH`` and the year for
    ``YEAR``; :data:`UNPARTITIONED` outside the partitioned days and ``None``
    for NULL (BigQuery's ``__NULL__``). Timestamps are taken in UTC, the
    time zone of BigQuery's partition boundaries; a naive one is read as UTC,
    as BigQuery reads a timestamp without an offset.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    day = value.date() if isinstance(value, dt.datetime) else value
    if not FIRST_PARTITIONED_DAY <= day <= LAST_PARTITIONED_DAY:
        return UNPARTITIONED
    if granularity == "HOUR" and isinstance(value, dt.datetime):
        return (day, value.hour)
    if granularity == "MONTH":
        return (day.year, day.month)
    if granularity == "YEAR":
        return day.year
    return day
