"""The service offers every table's reads and writes, with the repositories' parameter names."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from google.cloud.bigquery import TimePartitioning

from bqrepo import migrate
from bqrepo.engine import create_engine
from bqrepo.errors import InvalidArgumentError, SchemaError
from bqrepo.repositories import ComtradeTotal, IndicatorValue, LatestValue, SeriesPoint
from bqrepo.service import TimeSeriesService
from bqrepo.settings import Settings
from bqrepo.timeseries import time_series

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _forecasts() -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = time_series(
        sa.Table(
            "forecasts",
            metadata,
            sa.Column("id", sa.String, nullable=False),
            sa.Column("series_id", sa.String, nullable=False),
            sa.Column("forecast_date", sa.Date, nullable=False),
            sa.Column("value", sa.Double),
            sa.Column("generated_at", sa.TIMESTAMP(timezone=True)),
            bigquery_time_partitioning=TimePartitioning(field="forecast_date", type_="MONTH"),
        ),
        time="forecast_date",
        key=("series_id", "forecast_date"),
        version="generated_at",
    )
    return metadata, table


@pytest.fixture
def service(duckdb_settings: Settings) -> TimeSeriesService:
    migrate.upgrade(duckdb_settings)
    metadata, _ = _forecasts()
    engine = create_engine(duckdb_settings)
    metadata.create_all(engine)
    engine.dispose()
    return TimeSeriesService.from_settings(duckdb_settings, metadata=metadata)


def test_economic_tables_through_the_service(service: TimeSeriesService) -> None:
    fred = service.insert_fred_observations(
        [
            {"series_id": "GDP", "date": date(2026, 1, 1), "value": 1.0},
            {"series_id": "GDP", "date": date(2026, 4, 1), "value": 2.0},
            {"series_id": "GDP", "date": date(2026, 7, 1), "value": float("inf")},
        ]
    )
    assert fred.written == 2 and [(r.index, r.field) for r in fred.rejected] == [(2, "value")]
    assert service.get_fred_series("GDP", date(2026, 1, 1), date(2027, 1, 1)) == [
        SeriesPoint(date(2026, 1, 1), 1.0),
        SeriesPoint(date(2026, 4, 1), 2.0),
    ]
    assert service.get_fred_latest() == [LatestValue("GDP", date(2026, 4, 1), 2.0)]

    assert service.insert_world_bank_observations(
        [{"indicator_id": "NY.GDP", "country_code": "VE", "date": date(2020, 1, 1), "value": 5.0}]
    ).ok
    assert service.get_world_bank_series("NY.GDP", "VE", date(2000, 1, 1), date(2030, 1, 1)) == [
        SeriesPoint(date(2020, 1, 1), 5.0)
    ]
    assert service.get_world_bank_latest(country_codes=["VE"]) == [
        IndicatorValue("NY.GDP", "VE", date(2020, 1, 1), 5.0)
    ]

    assert service.insert_comtrade_observations(
        [
            {"period": date(2026, 1, 1), "reporter_code": "VE", "commodity_code": "27",
             "trade_flow": "X", "value_usd": 10.0},
            {"period": date(2026, 1, 1), "reporter_code": "CO", "commodity_code": "27",
             "trade_flow": "X", "value_usd": 5.0},
        ]
    ).ok
    assert service.get_comtrade_totals(date(2026, 1, 1), date(2026, 2, 1)) == [
        ComtradeTotal(date(2026, 1, 1), "27", "X", 15.0, 2)
    ]


def test_reads_take_the_repositories_parameter_names(service: TimeSeriesService) -> None:
    assert service.insert_events(
        [{"id": "e1", "event_type": "protest", "risk_score": 0.5, "mentioned_at": NOW - timedelta(hours=1)}]
    ).ok
    assert service.insert_entity_mentions(
        [{"entity_id": "chevron", "event_id": "e1", "mentioned_at": NOW - timedelta(days=7)}]
    ).ok
    buckets = service.get_risk_trends(
        start=NOW - timedelta(days=2), end=NOW, bucket="DAY", event_type="protest", fill_gaps=True
    )
    assert [(b.bucket_start.day, b.event_count) for b in buckets] == [(18, 0), (19, 0), (20, 1)]
    trending = service.get_entity_trending(as_of=NOW, half_life=timedelta(days=7))
    assert [(t.entity_id, round(t.score, 9)) for t in trending] == [("chevron", 0.5)]
    # Outside the half-life's 10x window when the cutoff is shorter: nothing.
    assert service.get_entity_trending(as_of=NOW, cutoff=timedelta(days=1)) == []


def test_first_release_names_still_work_with_a_warning(service: TimeSeriesService) -> None:
    assert service.insert_events([{"id": "e1", "risk_score": 0.5, "mentioned_at": NOW - timedelta(hours=1)}]).ok
    with pytest.warns(DeprecationWarning, match="bucket_size is deprecated; use bucket"):
        old = service.get_risk_trends(NOW - timedelta(days=1), NOW, bucket_size="DAY")
    with pytest.warns(DeprecationWarning, match="start_date is deprecated; use start"):
        named = service.get_risk_trends(start_date=NOW - timedelta(days=1), end_date=NOW)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = service.get_risk_trends(NOW - timedelta(days=1), NOW, bucket="DAY")
    assert old == named == new and new[0].event_count == 1
    with pytest.raises(InvalidArgumentError, match="start_date: pass either start or the deprecated"):
        service.get_risk_trends(NOW, NOW, start_date=NOW)
    with pytest.raises(InvalidArgumentError, match="start: is required"):
        service.get_risk_trends(end=NOW)


def test_any_declared_table_by_name(service: TimeSeriesService) -> None:
    result = service.insert(
        "forecasts",
        [
            {"series_id": "gdp", "forecast_date": "2026-01-15", "value": 1.0, "generated_at": NOW},
            {"series_id": "gdp", "forecast_date": "2026-01-15", "value": 1.5,
             "generated_at": NOW + timedelta(hours=1)},
            {"series_id": "", "forecast_date": "2026-01-15", "value": 1.0, "generated_at": NOW},
        ],
    )
    assert result.written == 2 and [(r.index, r.field) for r in result.rejected] == [(2, "series_id")]
    forecasts = service.table("forecasts")
    assert service.table("forecasts") is forecasts
    assert forecasts.latest(columns=["value"]) == [
        {"series_id": "gdp", "forecast_date": date(2026, 1, 15), "value": 1.5}
    ]
    # The shipped tables are reachable the same way.
    assert service.table("events").table.name == "events"


def test_unknown_or_undeclared_tables_are_refused(service: TimeSeriesService) -> None:
    with pytest.raises(InvalidArgumentError, match="no declared table 'nope'; tables are .*forecasts"):
        service.insert("nope", [])
    plain = sa.Table("plain", sa.MetaData(), sa.Column("id", sa.String, nullable=False))
    with pytest.raises(SchemaError, match="'plain' is not declared as a time series"):
        service.table(plain)
