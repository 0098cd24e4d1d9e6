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

__all__ = ["MAX_FILLED_BUCKETS", "EventQueries", "EventRepository", "recent_statement", "risk_trends_statement"]

MAX_FILLED_BUCKETS = 100_000
"""``fill_gaps`` refuses ranges with more buckets than this (a typo like "1 second" over a year)."""


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
        spec = BucketSpec.parse(bucket)
        params = {
            "start": aware("start", start),
            "end": aware("end", end),
            "event_type": optional_text("event_type", event_type),
        }
        if params["start"] >= params["end"]:
            return []
        if fill_gaps:
            expected = _bucket_starts(spec, params["start"], params["end"])
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


def _bucket_starts(spec: BucketSpec, start: datetime, end: datetime) -> list[datetime]:
    """Every bucket start from the bucket holding ``start`` up to the last one before ``end``."""
    starts: list[datetime] = []
    moment = spec.floor(start)
    while moment < end:
        if len(starts) >= MAX_FILLED_BUCKETS:
            raise ValueError(
                f"fill_gaps would return more than {MAX_FILLED_BUCKETS:,} buckets of {spec} "
                f"between {start.isoformat()} and {end.isoformat()}; use a wider bucket or a shorter range"
            )
        starts.append(moment)
        moment = spec.following(moment)
    return starts
