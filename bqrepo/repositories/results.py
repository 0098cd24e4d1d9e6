"""Typed result rows returned by the repositories.

Frozen dataclasses: immutable, comparable, cheap, and free of any database
type, so a service or a test can build them by hand. Timestamps are aware UTC
``datetime`` values on every engine; dates are ``datetime.date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic_core import from_json

__all__ = [
    "ComtradeTotal",
    "IndicatorValue",
    "LatestValue",
    "RecentEvent",
    "RiskBucket",
    "SeriesPoint",
    "TrendingEntity",
]


def utc(value: datetime | None) -> datetime | None:
    """An engine's aware timestamp as a ``datetime`` in ``datetime.UTC`` (DuckDB returns pytz UTC)."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # what DuckDB's reads and BigQuery's client give
        return value
    if value.tzinfo is None:  # a TIMESTAMP column holds UTC instants
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def json_value(value: Any) -> Any:
    """A JSON column's value as Python data (drivers return text or parsed values).

    pydantic-core's parser: the same values as :func:`json.loads`, at about
    a third of the cost per value.
    """
    if isinstance(value, (str, bytes)):
        return from_json(value)
    return value


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """One event, as stored (its newest version)."""

    id: str
    title: str | None
    content: str | None
    source_url: str | None
    source_name: str | None
    event_type: str | None
    location: str | None
    risk_score: float | None
    severity: str | None
    mentioned_at: datetime
    created_at: datetime | None
    metadata: Any


@dataclass(frozen=True, slots=True)
class RiskBucket:
    """Risk of the events in ``[bucket_start, next bucket start)``.

    ``avg_risk``/``max_risk`` ignore events without a risk score and are
    ``None`` when the bucket has none (always so for gap-filled buckets);
    ``event_count`` counts every event.
    """

    bucket_start: datetime
    avg_risk: float | None
    max_risk: float | None
    event_count: int


@dataclass(frozen=True, slots=True)
class TrendingEntity:
    """An entity's decayed score and its number of mentions in the scanned window."""

    entity_id: str
    score: float
    mentions: int


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One observation of a series."""

    date: date
    value: float | None


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The newest observation of a FRED series."""

    series_id: str
    date: date
    value: float | None


@dataclass(frozen=True, slots=True)
class IndicatorValue:
    """The newest observation of a World Bank indicator for one country."""

    indicator_id: str
    country_code: str
    date: date
    value: float | None


@dataclass(frozen=True, slots=True)
class ComtradeTotal:
    """Total trade value of one commodity, flow and period, over the matching reporters."""

    period: date
    commodity_code: str
    trade_flow: str
    value_usd: float | None
    records: int
