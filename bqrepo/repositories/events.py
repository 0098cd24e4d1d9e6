"""Queries over ``events``: the newest events and risk per time bucket."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.constructs import BucketSpec, time_bucket
from bqrepo.errors import InvalidArgumentError
from bqrepo.repositories._common import (
    aware,
    half_open,
    optional_equals,
    optional_text,
    positive_int,
    timestamp_param,
)
from bqrepo.repositories._dedup import latest_versions
from bqrepo.repositories.results import RecentEvent, RiskBucket, json_value, utc
from bqrepo.schema import events
from bqrepo.timeunits import TIMESTAMP_MAX, TIMESTAMP_MIN

__all__ = [
    "MAX_BUCKET_SECONDS",
    "MAX_FILLED_BUCKETS",
    "EventQueries",
    "EventRepository",
    "recent_statement",
    "risk_trends_statement",
]

MAX_FILLED_BUCKETS = 100_000
"""``fill_gaps`` refuses ranges with more buckets than this (a typo like "1 second" over a year)."""

MAX_BUCKET_SECONDS = (TIMESTAMP_MAX - TIMESTAMP_MIN) // timedelta(seconds=1) + 1
"""The widest fixed bucket: the whole TIMESTAMP range (about 10,000 years).

Wider buckets mean nothing, and this bound keeps the SQL's arithmetic in
range: BigQuery's INTERVAL allows 87,840,000 hours, DuckDB's epoch
arithmetic counts microseconds in an INT64.
"""


def _bucket_spec(bucket: str | timedelta | BucketSpec) -> BucketSpec:
    """``bucket`` parsed and bounded, or :class:`InvalidArgumentError` naming it."""
    try:
        spec = BucketSpec.parse(bucket)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError("bucket", str(exc)) from None
    if spec.seconds is not None and spec.seconds > MAX_BUCKET_SECONDS:
        raise InvalidArgumentError(
            "bucket",
            f"{bucket!r} is wider than the TIMESTAMP range; a fixed bucket is 1 to {MAX_BUCKET_SECONDS:,} seconds",
        )
    return spec


def _first_bucket(spec: BucketSpec, start: datetime) -> datetime:
    """The start of the bucket holding ``start``, which must itself be a TIMESTAMP."""
    try:
        return spec.floor(start)
    except OverflowError:
        raise InvalidArgumentError(
            "start",
            f"the {spec} bucket holding {start.isoformat()} begins before 0001-01-01, the first TIMESTAMP; "
            "start later or use a narrower bucket",
        ) from None


def _events_in_range(columns: list[str] | None = None) -> sa.Subquery:
    """The newest version of each event with ``:start <= mentioned_at < :end``."""
    return latest_versions(
        events,
        half_open(events.c.mentioned_at, timestamp_param("start"), timestamp_param("end")),
        [events.c.created_at.desc().nulls_last()],
        columns=columns,
    )


def _build_recent() -> sa.Select[Any]:
    latest = _events_in_range()
    columns = [latest.c[column.name] for column in events.c if column.name != "metadata"]
    # The JSON column is read untyped: drivers disagree on whether they hand
    # back text or parsed values, and results.json_value normalises both.
    metadata = sa.type_coerce(latest.c.metadata, sa.types.NullType()).label("metadata")
    return (
        sa.select(*columns, metadata)
        .where(optional_equals(latest.c.event_type, "event_type"))
        .where(optional_equals(latest.c.source_name, "source_name"))
        .order_by(latest.c.mentioned_at.desc(), latest.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


recent_statement: sa.Select[Any] = _build_recent()
"""Parameters: ``start``, ``end`` (TIMESTAMP), ``event_type``, ``source_name`` (STRING or NULL), ``limit``."""


@lru_cache(maxsize=64)
def risk_trends_statement(bucket: BucketSpec) -> sa.Select[Any]:
    """The risk-per-bucket statement for one bucket width, built once per width.

    The width is part of the SQL (BigQuery's ``TIMESTAMP_BUCKET`` takes an
    INTERVAL literal), rendered from the validated :class:`BucketSpec`, never
    from caller text. Parameters: ``start``, ``end``, ``event_type``.
    """
    latest = _events_in_range(["mentioned_at", "event_type", "risk_score"])
    bucket_start = time_bucket(latest.c.mentioned_at, bucket).label("bucket_start")
    return (
        sa.select(
            bucket_start,
            sa.func.avg(latest.c.risk_score).label("avg_risk"),
            sa.func.max(latest.c.risk_score).label("max_risk"),
            sa.func.count().label("event_count"),
        )
        .where(optional_equals(latest.c.event_type, "event_type"))
        .group_by(bucket_start)
        .order_by(bucket_start)
    )


class EventQueries(Protocol):
    """What a service needs from the events store; :class:`EventRepository` implements it."""

    def recent(
        self,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
        source_name: str | None = None,
        limit: int = 100,
    ) -> list[RecentEvent]: ...

    def risk_trends(
        self,
        start: datetime,
        end: datetime,
        bucket: str | timedelta | BucketSpec = "DAY",
        event_type: str | None = None,
        fill_gaps: bool = False,
    ) -> list[RiskBucket]: ...


class EventRepository:
    """Read access to ``events`` (writes arrive through the injected ``writer``).

    Time ranges are half-open, ``start <= mentioned_at < end``, with aware
    datetimes. Every query reads the newest version of each event id, so
    ingesting the same events again changes no result.
    """

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {
            "recent": recent_statement,
            "risk_trends": risk_trends_statement(BucketSpec.parse("DAY")),
        }
    )
    """The prepared statements, for users' own compile tests; other bucket widths via :func:`risk_trends_statement`."""

    def __init__(self, engine: Engine, writer: Any = None) -> None:
        self.engine = engine
        self.writer = writer

    def recent(
        self,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
        source_name: str | None = None,
        limit: int = 100,
    ) -> list[RecentEvent]:
        """Events with ``start <= mentioned_at < end``, newest first (ties by id), at most ``limit``."""
        params = {
            "start": aware("start", start),
            "end": aware("end", end),
            "event_type": optional_text("event_type", event_type),
            "source_name": optional_text("source_name", source_name),
            "limit": positive_int("limit", limit),
        }
        with self.engine.connect() as connection:
            rows = connection.execute(recent_statement, params).mappings().all()
        return [
            RecentEvent(
                **{
                    **row,
                    "mentioned_at": utc(row["mentioned_at"]),
                    "created_at": utc(row["created_at"]),
                    "metadata": json_value(row["metadata"]),
                }
            )
            for row in rows
        ]

    def risk_trends(
        self,
        start: datetime,
        end: datetime,
        bucket: str | timedelta | BucketSpec = "DAY",
        event_type: str | None = None,
        fill_gaps: bool = False,
    ) -> list[RiskBucket]:
        """Average and maximum risk and the event count per bucket, oldest bucket first.

        Events with ``start <= mentioned_at < end`` are counted; buckets are
        aligned to the epoch (fixed widths) or to UTC calendar units, not to
        ``start``, so the first and last bucket may be partial. With
        ``fill_gaps`` every bucket that overlaps ``[start, end)`` is returned,
        empty ones as ``RiskBucket(start, None, None, 0)``, like TimescaleDB's
        ``time_bucket_gapfill``; the gaps are filled in Python from the same
        bucket arithmetic (:meth:`BucketSpec.floor`), since empty buckets
        carry no data worth a query.
        """
        spec = _bucket_spec(bucket)
        start, end = aware("start", start), aware("end", end)
        params = {"start": start, "end": end, "event_type": optional_text("event_type", event_type)}
        if not isinstance(fill_gaps, bool):
            raise InvalidArgumentError("fill_gaps", f"must be a bool, got {type(fill_gaps).__name__}")
        if start >= end:
            return []
        first = _first_bucket(spec, start)
        if fill_gaps:
            expected = _bucket_starts(spec, first, end)
        with self.engine.connect() as connection:
            rows = connection.execute(risk_trends_statement(spec), params).all()
        found = [
            RiskBucket(
                bucket_start=utc(row.bucket_start),  # type: ignore[arg-type]
                avg_risk=row.avg_risk,
                max_risk=row.max_risk,
                event_count=int(row.event_count),
            )
            for row in rows
        ]
        if not fill_gaps:
            return found
        by_start = {item.bucket_start: item for item in found}
        if unexpected := by_start.keys() - set(expected):
            # The SQL and the Python bucket arithmetic disagree: a bug, never data to drop.
            raise RuntimeError(
                f"risk_trends returned buckets {sorted(unexpected)} that {spec} does not predict"
            )
        return [by_start.get(moment, RiskBucket(moment, None, None, 0)) for moment in expected]


def _bucket_starts(spec: BucketSpec, first: datetime, end: datetime) -> list[datetime]:
    """Every bucket start from ``first`` up to the last one before ``end``.

    The bucket after one that reaches past 9999-12-31 has no start a
    TIMESTAMP can hold (Python says OverflowError or ValueError): the list ends there.
    """
    starts: list[datetime] = []
    moment = first
    while moment < end:
        if len(starts) >= MAX_FILLED_BUCKETS:
            raise InvalidArgumentError(
                "fill_gaps",
                f"would return more than {MAX_FILLED_BUCKETS:,} buckets of {spec} "
                f"from {first.isoformat()} to {end.isoformat()}; use a wider bucket or a shorter range",
            )
        starts.append(moment)
        try:
            moment = spec.following(moment)
        except (OverflowError, ValueError):
            break
    return starts
