"""Queries over ``events``: the newest events and risk per time bucket."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.constructs import BucketSpec
from bqrepo.cost import CostGuard, guarded
from bqrepo.errors import InvalidArgumentError
from bqrepo.repositories._common import aware, optional_text, positive_int
from bqrepo.repositories.results import RecentEvent, RiskBucket
from bqrepo.repositories.timeseries import (
    MAX_BUCKET_SECONDS,
    MAX_FILLED_BUCKETS,
    Aggregate,
    TimeSeriesRepository,
    bucket_spec,
    buckets_statement,
    rows_statement,
)
from bqrepo.schema import events

__all__ = [
    "MAX_BUCKET_SECONDS",
    "MAX_FILLED_BUCKETS",
    "EventQueries",
    "EventRepository",
    "recent_statement",
    "risk_trends_statement",
]

_FILTERS = ("event_type", "source_name")
_RISK: tuple[tuple[Aggregate, str], ...] = (("avg", "avg_risk"), ("max", "max_risk"), ("count", "event_count"))

_RECENT_FIELDS = tuple(field.name for field in dataclasses.fields(RecentEvent))

recent_statement: sa.Select[Any] = rows_statement(events, _FILTERS)
"""Parameters: ``start``, ``end`` (TIMESTAMP), ``event_type``, ``source_name`` (STRING or NULL), ``limit``.

The generic rows statement (:func:`bqrepo.repositories.timeseries.rows_statement`):
both filters apply to the de-duplicated events, since an event's id is given
and a newer version may change any column.
"""


def risk_trends_statement(bucket: BucketSpec) -> sa.Select[Any]:
    """The risk-per-bucket statement for one bucket width, built once per width (the generic buckets statement).

    The width is part of the SQL (BigQuery's ``TIMESTAMP_BUCKET`` takes an
    INTERVAL literal), rendered from the validated :class:`BucketSpec`, never
    from caller text. Parameters: ``start``, ``end``, ``event_type``.
    """
    return buckets_statement(events, bucket, "risk_score", _RISK, ("event_type",))


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

    def __init__(
        self,
        engine: Engine,
        writer: Any = None,
        *,
        maximum_bytes_billed: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.writer = writer
        #: Bytes limit and labels of this repository's jobs (:mod:`bqrepo.cost`).
        self.cost = CostGuard("event_repository", events.name, maximum_bytes_billed=maximum_bytes_billed, labels=labels)
        self._events = TimeSeriesRepository(engine, events)

    @guarded
    def recent(
        self,
        start: datetime,
        end: datetime,
        event_type: str | None = None,
        source_name: str | None = None,
        limit: int = 100,
    ) -> list[RecentEvent]:
        """Events with ``start <= mentioned_at < end``, newest first (ties by id), at most ``limit``."""
        start, end = aware("start", start), aware("end", end)
        where = {"event_type": optional_text("event_type", event_type), "source_name": optional_text("source_name", source_name)}
        found = self._events.row_values(start, end, where=where, limit=positive_int("limit", limit))
        if found.keys == _RECENT_FIELDS:  # the columns in the fields' order: no dict per row
            return [RecentEvent(*row) for row in found]
        return [RecentEvent(**row) for row in found.dicts()]

    @guarded
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
        ``time_bucket_gapfill`` (see :meth:`TimeSeriesRepository.buckets`).
        """
        spec = bucket_spec(bucket)
        start, end = aware("start", start), aware("end", end)
        where = {"event_type": optional_text("event_type", event_type)}
        if not isinstance(fill_gaps, bool):
            raise InvalidArgumentError("fill_gaps", f"must be a bool, got {type(fill_gaps).__name__}")
        rows = self._events.bucket_rows(
            start, end, spec, value="risk_score", aggregates=_RISK, where=where, fill_gaps=fill_gaps
        )
        return [RiskBucket(*row) for row in rows]
