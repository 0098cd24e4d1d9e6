"""Portable SQL constructs: time buckets and timestamp differences.

Why constructs: BigQuery, DuckDB and PostgreSQL disagree on exactly the
defaults that decide a time-series answer. ``TIMESTAMP_BUCKET`` counts from
1950-01-01, DuckDB's ``time_bucket`` from 2000-01-03; BigQuery weeks start on
Sunday, DuckDB's on Monday; DuckDB's ``date_diff`` counts boundaries crossed
while BigQuery's ``TIMESTAMP_DIFF`` measures elapsed time. Each construct here
fixes those choices once, with one compile function per dialect
(``sqlalchemy.ext.compiler``), so a repository states *what* it wants and every
engine computes the same boundaries:

* fixed-width buckets count from the Unix epoch, 1970-01-01 00:00:00 UTC;
* calendar buckets are UTC, and a week starts on Monday (ISO 8601);
* seconds between two timestamps keep microsecond precision.

Other dialects fail to compile with a :class:`~sqlalchemy.exc.CompileError`
that names the construct, never with SQL that silently means something else.

:class:`BucketSpec` is also the Python side of the same arithmetic
(:meth:`BucketSpec.floor`, :meth:`BucketSpec.following`, both from
:mod:`bqrepo.timeunits`), used to fill empty buckets without another query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, roles
from sqlalchemy.sql import coercions
from sqlalchemy.sql.visitors import InternalTraversal

from bqrepo import timeunits
from bqrepo.timeunits import CALENDAR_UNITS, EPOCH, FIXED_UNIT_SECONDS, CalendarUnit

__all__ = [
    "EPOCH",
    "BucketSpec",
    "CalendarBucket",
    "FixedBucket",
    "SecondsBetween",
    "seconds_between",
    "time_bucket",
]

_SPEC_RE = re.compile(r"^\s*(?:(\d+)\s*)?([A-Za-z]+?)S?\s*$", re.IGNORECASE)
_TIMESTAMP = sa.TIMESTAMP(timezone=True)


@dataclass(frozen=True)
class BucketSpec:
    """A validated bucket width: ``seconds`` for fixed widths, ``unit`` for calendar ones.

    Build it with :meth:`parse`; exactly one of the two fields is set. It is
    hashable, so repositories key their prepared statements on it.
    """

    seconds: int | None = None
    unit: CalendarUnit | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.unit is None):
            raise ValueError("BucketSpec needs exactly one of seconds or unit")
        if self.seconds is not None and (
            not isinstance(self.seconds, int) or isinstance(self.seconds, bool) or self.seconds <= 0
        ):
            raise ValueError(f"bucket width must be a positive whole number of seconds, got {self.seconds!r}")
        if self.unit is not None and self.unit not in CALENDAR_UNITS:
            raise ValueError(f"calendar bucket unit must be one of {CALENDAR_UNITS}, got {self.unit!r}")

    @classmethod
    def parse(cls, bucket: str | timedelta | BucketSpec) -> BucketSpec:
        """Normalise ``"DAY"``, ``"6 hours"``, ``"15 minutes"``, a ``timedelta``, ``"WEEK"``, ``"MONTH"``...

        Fixed widths ("SECOND", "MINUTE", "HOUR", "DAY", with an optional
        count, or a timedelta of whole seconds) become a number of seconds;
        "WEEK", "MONTH", "QUARTER" and "YEAR" (count 1 only) are calendar
        units. "2 weeks" is refused rather than guessed: a fixed 14-day width
        counted from the epoch (a Thursday) would not start on Mondays.
        """
        if isinstance(bucket, BucketSpec):
            return bucket
        if isinstance(bucket, timedelta):
            if bucket <= timedelta(0) or bucket.microseconds:
                raise ValueError(f"bucket timedelta must be a positive whole number of seconds, got {bucket!r}")
            return cls(seconds=bucket.days * 86400 + bucket.seconds)
        if not isinstance(bucket, str):
            raise TypeError(f"bucket must be a str, timedelta or BucketSpec, got {type(bucket).__name__}")
        match = _SPEC_RE.fullmatch(bucket)
        if match is None:
            raise ValueError(f"bucket {bucket!r} is not understood: use e.g. 'DAY', '6 hours', 'WEEK', 'MONTH'")
        count = int(match.group(1) or 1)
        unit = match.group(2).upper()
        if unit in FIXED_UNIT_SECONDS:
            if count <= 0:
                raise ValueError(f"bucket {bucket!r} must have a positive width")
            return cls(seconds=count * FIXED_UNIT_SECONDS[unit])
        if unit in CALENDAR_UNITS:
            if count != 1:
                raise ValueError(
                    f"bucket {bucket!r}: calendar units take no count; use a fixed width such as '14 days'"
                )
            return cls(unit=unit)
        raise ValueError(
            f"bucket {bucket!r} has unknown unit {match.group(2)!r}: use SECOND, MINUTE, HOUR, DAY, "
            "WEEK, MONTH, QUARTER or YEAR"
        )

    def floor(self, moment: datetime) -> datetime:
        """The start of the bucket holding ``moment`` (aware), in UTC: what the SQL computes."""
        if self.seconds is not None:
            return timeunits.floor_seconds(moment, self.seconds)
        assert self.unit is not None
        return timeunits.floor(moment, self.unit)

    def following(self, start: datetime) -> datetime:
        """The start of the bucket after the one starting at ``start``."""
        if self.seconds is not None:
            return start + timedelta(seconds=self.seconds)
        assert self.unit is not None
        return timeunits.following(start, self.unit)

    def __str__(self) -> str:
        if self.unit is not None:
            return self.unit
        return f"{self.seconds} seconds"


class _TimestampExpression(ColumnElement[datetime]):
    """Base for constructs that wrap one timestamp expression.

    ``_traverse_internals`` lists the validated literal attributes too, so the
    statement cache tells "6 hours" from "1 day".
    """

    inherit_cache = True
    type = _TIMESTAMP

    timestamp: ColumnElement[Any]

    @property
    def _from_objects(self) -> list[Any]:
        return self.timestamp._from_objects


def _expression(value: Any) -> ColumnElement[Any]:
    expression: ColumnElement[Any] = coercions.expect(roles.ExpressionElementRole, value, type_=_TIMESTAMP)
    return expression


class FixedBucket(_TimestampExpression):
    """Start of the fixed-width bucket holding ``timestamp``, counted from :data:`EPOCH`."""

    inherit_cache = True
    _traverse_internals = [
        ("timestamp", InternalTraversal.dp_clauseelement),
        ("seconds", InternalTraversal.dp_plain_obj),
    ]

    seconds: int

    def __init__(self, timestamp: Any, seconds: int) -> None:
        self.timestamp = _expression(timestamp)
        BucketSpec(seconds=seconds)  # validates: a positive whole number of seconds
        self.seconds = seconds


class CalendarBucket(_TimestampExpression):
    """Start of the UTC calendar week (Monday), month, quarter or year holding ``timestamp``."""

    inherit_cache = True
    _traverse_internals = [
        ("timestamp", InternalTraversal.dp_clauseelement),
        ("unit", InternalTraversal.dp_plain_obj),
    ]

    unit: CalendarUnit

    def __init__(self, timestamp: Any, unit: CalendarUnit) -> None:
        self.timestamp = _expression(timestamp)
        BucketSpec(unit=unit)  # validates: one of WEEK, MONTH, QUARTER, YEAR
        self.unit = unit


class SecondsBetween(ColumnElement[float]):
    """``later - earlier`` in seconds, as a float with microsecond precision.

    Elapsed time, not boundaries crossed: 23:59:59.9 to 00:00:00.1 is 0.2 s.
    """

    inherit_cache = True
    type = sa.Double()
    _traverse_internals = [
        ("later", InternalTraversal.dp_clauseelement),
        ("earlier", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, later: Any, earlier: Any) -> None:
        self.later = _expression(later)
        self.earlier = _expression(earlier)

    @property
    def _from_objects(self) -> list[Any]:
        return [*self.later._from_objects, *self.earlier._from_objects]


def time_bucket(timestamp: Any, bucket: str | timedelta | BucketSpec) -> ColumnElement[datetime]:
    """The bucket start of ``timestamp`` for a fixed width or a calendar unit (see :class:`BucketSpec`)."""
    spec = BucketSpec.parse(bucket)
    if spec.seconds is not None:
        return FixedBucket(timestamp, spec.seconds)
    assert spec.unit is not None
    return CalendarBucket(timestamp, spec.unit)


def seconds_between(later: Any, earlier: Any) -> SecondsBetween:
    """``later - earlier`` in seconds (float, microsecond precision) on every engine."""
    return SecondsBetween(later, earlier)


# --- compile functions -----------------------------------------------------------


def _unsupported(element: ColumnElement[Any], compiler: Any, **_kw: Any) -> str:
    raise CompileError(
        f"{type(element).__name__} has no compile function for the {compiler.dialect.name!r} "
        "dialect; bqrepo supports bigquery, duckdb and postgresql"
    )


for _construct in (FixedBucket, CalendarBucket, SecondsBetween):
    compiles(_construct)(_unsupported)


def _interval_literal(seconds: int) -> str:
    """``INTERVAL n UNIT`` in the largest of HOUR, MINUTE, SECOND that divides ``seconds``.

    Days are written as hours: a BigQuery INTERVAL's DAY part is a calendar
    day, and an hour count says "fixed width" unambiguously. ``seconds`` is a
    validated positive int, never user text.
    """
    for unit, size in (("HOUR", 3600), ("MINUTE", 60), ("SECOND", 1)):
        if seconds % size == 0:
            return f"INTERVAL {seconds // size} {unit}"
    raise AssertionError("unreachable: SECOND divides every int")


@compiles(FixedBucket, "bigquery")
def _fixed_bucket_bigquery(element: FixedBucket, compiler: Any, **kw: Any) -> str:
    timestamp = compiler.process(element.timestamp, **kw)
    interval = _interval_literal(int(element.seconds))
    return f"TIMESTAMP_BUCKET({timestamp}, {interval}, TIMESTAMP '1970-01-01 00:00:00+00')"


@compiles(FixedBucket, "duckdb")
def _fixed_bucket_duckdb(element: FixedBucket, compiler: Any, **kw: Any) -> str:
    # Integer epoch arithmetic: exact, zone-free, and about 70x faster than
    # time_bucket(INTERVAL 1 DAY, timestamptz), which takes a calendar path.
    # ((x % w) + w) % w floors negative (pre-1970) timestamps too.
    # make_timestamptz(micros) rather than TIMESTAMPTZ '1970-01-01' + INTERVAL:
    # the addition goes through the time-zone calendar, 3x the whole bucket.
    micros = f"epoch_us(CAST({compiler.process(element.timestamp, **kw)} AS TIMESTAMPTZ))"
    width = int(element.seconds) * 1_000_000
    return f"make_timestamptz({micros} - ((({micros} % {width}) + {width}) % {width}))"


@compiles(FixedBucket, "postgresql")
def _fixed_bucket_postgresql(element: FixedBucket, compiler: Any, **kw: Any) -> str:
    timestamp = compiler.process(element.timestamp, **kw)
    return (
        f"date_bin(INTERVAL '{int(element.seconds)} seconds', {timestamp}, "
        "TIMESTAMPTZ '1970-01-01 00:00:00+00')"
    )


_BIGQUERY_UNITS = {"WEEK": "WEEK(MONDAY)", "MONTH": "MONTH", "QUARTER": "QUARTER", "YEAR": "YEAR"}


def _calendar_unit(element: CalendarBucket) -> str:
    unit = element.unit
    if unit not in CALENDAR_UNITS:  # re-checked: it is rendered into SQL
        raise CompileError(f"invalid calendar unit {unit!r}")
    return unit


@compiles(CalendarBucket, "bigquery")
def _calendar_bucket_bigquery(element: CalendarBucket, compiler: Any, **kw: Any) -> str:
    timestamp = compiler.process(element.timestamp, **kw)
    return f"TIMESTAMP_TRUNC({timestamp}, {_BIGQUERY_UNITS[_calendar_unit(element)]}, 'UTC')"


@compiles(CalendarBucket, "duckdb")
def _calendar_bucket_duckdb(element: CalendarBucket, compiler: Any, **kw: Any) -> str:
    # Truncate the UTC wall-clock time, whatever the session's TimeZone: the
    # instant as epoch microseconds, read as a zone-less TIMESTAMP (UTC wall
    # clock), truncated there and turned back into an instant. About 7x
    # faster than date_trunc on a TIMESTAMPTZ, which goes through the
    # time-zone calendar (and 5x faster than a plain date_trunc in UTC).
    timestamp = compiler.process(element.timestamp, **kw)
    unit = _calendar_unit(element).lower()
    return (
        f"make_timestamptz(epoch_us(date_trunc('{unit}', "
        f"make_timestamp(epoch_us(CAST({timestamp} AS TIMESTAMPTZ))))))"
    )


@compiles(CalendarBucket, "postgresql")
def _calendar_bucket_postgresql(element: CalendarBucket, compiler: Any, **kw: Any) -> str:
    timestamp = compiler.process(element.timestamp, **kw)
    unit = _calendar_unit(element).lower()
    return f"(date_trunc('{unit}', ({timestamp}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


@compiles(SecondsBetween, "bigquery")
def _seconds_between_bigquery(element: SecondsBetween, compiler: Any, **kw: Any) -> str:
    later = compiler.process(element.later, **kw)
    earlier = compiler.process(element.earlier, **kw)
    return f"(TIMESTAMP_DIFF({later}, {earlier}, MICROSECOND) / 1000000)"


@compiles(SecondsBetween, "duckdb")
def _seconds_between_duckdb(element: SecondsBetween, compiler: Any, **kw: Any) -> str:
    # epoch_us difference, not date_diff: date_diff counts boundaries crossed.
    later = compiler.process(element.later, **kw)
    earlier = compiler.process(element.earlier, **kw)
    return (
        f"((epoch_us(CAST({later} AS TIMESTAMPTZ)) - epoch_us(CAST({earlier} AS TIMESTAMPTZ)))"
        " / 1000000)"
    )


@compiles(SecondsBetween, "postgresql")
def _seconds_between_postgresql(element: SecondsBetween, compiler: Any, **kw: Any) -> str:
    later = compiler.process(element.later, **kw)
    earlier = compiler.process(element.earlier, **kw)
    return f"CAST(EXTRACT(EPOCH FROM ({later}) - ({earlier})) AS DOUBLE PRECISION)"
