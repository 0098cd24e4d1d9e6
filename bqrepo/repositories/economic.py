"""Queries over the economic tables: FRED series, World Bank indicators, UN Comtrade totals.

Dates are half-open like timestamps elsewhere: ``start <= date < end``. An
economic row's id is derived from its natural key, and the newest
``ingested_at`` of an id wins, so re-polling is harmless and a revised
observation replaces the old value in every result.

"Latest value" queries take ``since``, a lower bound on the date column
(default: 0001-01-01, all of history). The economic tables do not require a
partition filter and are small and clustered on the series key; a caller
who knows a series' cadence passes e.g. ``since=date.today() - 5 years`` and
BigQuery then prunes every older partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.repositories._common import (
    date_param,
    half_open,
    optional_equals,
    optional_text,
    plain_date,
    text,
    text_list,
)
from bqrepo.repositories._dedup import latest_versions
from bqrepo.repositories.results import ComtradeTotal, IndicatorValue, LatestValue, SeriesPoint
from bqrepo.schema import fred_indicators, un_comtrade, world_bank

__all__ = [
    "ALL_HISTORY",
    "ComtradeQueries",
    "ComtradeRepository",
    "FredQueries",
    "FredRepository",
    "WorldBankQueries",
    "WorldBankRepository",
]

ALL_HISTORY = date(1, 1, 1)
"""The default ``since``: BigQuery's smallest DATE."""


def _newest_ingested(table: sa.Table) -> list[sa.ColumnElement[Any]]:
    return [table.c.ingested_at.desc().nulls_last()]


def _in_list(column: sa.Column[Any], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` for a list parameter: ``IN UNNEST(@name)`` on BigQuery."""
    return column.in_(sa.bindparam(name, type_=sa.String(), expanding=True))


def _range(column: sa.Column[Any]) -> sa.ColumnElement[bool]:
    return half_open(column, date_param("start"), date_param("end"))


def _newest_per(latest: sa.Subquery, keys: list[str], value_columns: list[str]) -> sa.Select[Any]:
    """The row with the greatest ``date`` per ``keys`` of an already de-duplicated subquery."""
    rank = (
        sa.func.row_number()
        .over(partition_by=[latest.c[key] for key in keys], order_by=latest.c.date.desc())
        .label("_date_rank")
    )
    ranked = sa.select(*(latest.c[name] for name in [*keys, *value_columns]), rank).subquery("ranked")
    return (
        sa.select(*(ranked.c[name] for name in [*keys, *value_columns]))
        .where(ranked.c._date_rank == sa.literal_column("1", sa.Integer()))
        .order_by(*(ranked.c[key] for key in keys))
    )


# --- FRED -----------------------------------------------------------------------


def _build_fred_series() -> sa.Select[Any]:
    t = fred_indicators
    latest = latest_versions(
        t, sa.and_(_range(t.c.date), t.c.series_id == sa.bindparam("series_id", type_=sa.String())),
        _newest_ingested(t),
        columns=["date", "value"],
    )
    return sa.select(latest.c.date, latest.c.value).order_by(latest.c.date)


def _build_fred_latest(selected: bool) -> sa.Select[Any]:
    t = fred_indicators
    where = t.c.date >= date_param("since")
    if selected:
        where = sa.and_(where, _in_list(t.c.series_id, "series_ids"))
    latest = latest_versions(t, where, _newest_ingested(t), columns=["series_id", "date", "value"])
    return _newest_per(latest, ["series_id"], ["date", "value"])


class FredQueries(Protocol):
    def series(self, series_id: str, start: date, end: date) -> list[SeriesPoint]: ...

    def latest(self, series_ids: Iterable[str] | None = None, since: date = ALL_HISTORY) -> list[LatestValue]: ...


class FredRepository:
    """Read access to ``fred_indicators``."""

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {
            "series": _build_fred_series(),
            "latest": _build_fred_latest(selected=False),
            "latest_selected": _build_fred_latest(selected=True),
        }
    )
    """``series``: series_id, start, end. ``latest``: since. ``latest_selected``: since, series_ids (ARRAY<STRING>)."""

    def __init__(self, engine: Engine, writer: Any = None) -> None:
        self.engine = engine
        self.writer = writer

    def series(self, series_id: str, start: date, end: date) -> list[SeriesPoint]:
        """Observations of ``series_id`` with ``start <= date < end``, oldest first."""
        params = {
            "series_id": text("series_id", series_id),
            "start": plain_date("start", start),
            "end": plain_date("end", end),
        }
        with self.engine.connect() as connection:
            rows = connection.execute(self.statements["series"], params).all()
        return [SeriesPoint(row.date, row.value) for row in rows]

    def latest(self, series_ids: Iterable[str] | None = None, since: date = ALL_HISTORY) -> list[LatestValue]:
        """The newest observation (``date >= since``) of each series, or of ``series_ids``; by series id."""
        params: dict[str, Any] = {"since": plain_date("since", since)}
        name = "latest"
        if series_ids is not None:
            params["series_ids"] = text_list("series_ids", series_ids)
            if not params["series_ids"]:
                return []
            name = "latest_selected"
        with self.engine.connect() as connection:
            rows = connection.execute(self.statements[name], params).all()
        return [LatestValue(row.series_id, row.date, row.value) for row in rows]


# --- World Bank -----------------------------------------------------------------


def _build_world_bank_series() -> sa.Select[Any]:
    t = world_bank
    latest = latest_versions(
        t,
        sa.and_(
            _range(t.c.date),
            t.c.indicator_id == sa.bindparam("indicator_id", type_=sa.String()),
            t.c.country_code == sa.bindparam("country_code", type_=sa.String()),
        ),
        _newest_ingested(t),
        columns=["date", "value"],
    )
    return sa.select(latest.c.date, latest.c.value).order_by(latest.c.date)


def _build_world_bank_latest(indicators: bool, countries: bool) -> sa.Select[Any]:
    t = world_bank
    where = t.c.date >= date_param("since")
    if indicators:
        where = sa.and_(where, _in_list(t.c.indicator_id, "indicator_ids"))
    if countries:
        where = sa.and_(where, _in_list(t.c.country_code, "country_codes"))
    latest = latest_versions(
        t, where, _newest_ingested(t), columns=["indicator_id", "country_code", "date", "value"]
    )
    return _newest_per(latest, ["indicator_id", "country_code"], ["date", "value"])


class WorldBankQueries(Protocol):
    def series(self, indicator_id: str, country_code: str, start: date, end: date) -> list[SeriesPoint]: ...

    def latest(
        self,
        indicator_ids: Iterable[str] | None = None,
        country_codes: Iterable[str] | None = None,
        since: date = ALL_HISTORY,
    ) -> list[IndicatorValue]: ...


class WorldBankRepository:
    """Read access to ``world_bank``; a series is one indicator for one country."""

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {
            "series": _build_world_bank_series(),
            "latest": _build_world_bank_latest(False, False),
            "latest_indicators": _build_world_bank_latest(True, False),
            "latest_countries": _build_world_bank_latest(False, True),
            "latest_indicators_countries": _build_world_bank_latest(True, True),
        }
    )

    def __init__(self, engine: Engine, writer: Any = None) -> None:
        self.engine = engine
        self.writer = writer

    def series(self, indicator_id: str, country_code: str, start: date, end: date) -> list[SeriesPoint]:
        """Observations of one indicator for one country with ``start <= date < end``, oldest first."""
        params = {
            "indicator_id": text("indicator_id", indicator_id),
            "country_code": text("country_code", country_code),
            "start": plain_date("start", start),
            "end": plain_date("end", end),
        }
        with self.engine.connect() as connection:
            rows = connection.execute(self.statements["series"], params).all()
        return [SeriesPoint(row.date, row.value) for row in rows]

    def latest(
        self,
        indicator_ids: Iterable[str] | None = None,
        country_codes: Iterable[str] | None = None,
        since: date = ALL_HISTORY,
    ) -> list[IndicatorValue]:
        """The newest observation (``date >= since``) per indicator and country, optionally restricted."""
        params: dict[str, Any] = {"since": plain_date("since", since)}
        for key, values in (("indicator_ids", indicator_ids), ("country_codes", country_codes)):
            if values is not None:
                params[key] = text_list(key, values)
                if not params[key]:
                    return []
        name = {
            (False, False): "latest",
            (True, False): "latest_indicators",
            (False, True): "latest_countries",
            (True, True): "latest_indicators_countries",
        }[("indicator_ids" in params, "country_codes" in params)]
        with self.engine.connect() as connection:
            rows = connection.execute(self.statements[name], params).all()
        return [IndicatorValue(row.indicator_id, row.country_code, row.date, row.value) for row in rows]


# --- UN Comtrade ----------------------------------------------------------------


def _build_comtrade_totals(selected: bool) -> sa.Select[Any]:
    t = un_comtrade
    where = sa.and_(
        _range(t.c.period),
        optional_equals(t.c.reporter_code, "reporter_code"),
        optional_equals(t.c.trade_flow, "trade_flow"),
    )
    if selected:
        where = sa.and_(where, _in_list(t.c.commodity_code, "commodity_codes"))
    latest = latest_versions(
        t, where, _newest_ingested(t), columns=["period", "commodity_code", "trade_flow", "value_usd"]
    )
    keys = [latest.c.period, latest.c.commodity_code, latest.c.trade_flow]
    return (
        sa.select(
            *keys,
            sa.func.sum(latest.c.value_usd).label("value_usd"),
            sa.func.count().label("records"),
        )
        .group_by(*keys)
        .order_by(*keys)
    )


class ComtradeQueries(Protocol):
    def totals(
        self,
        start: date,
        end: date,
        commodity_codes: Iterable[str] | None = None,
        reporter_code: str | None = None,
        trade_flow: str | None = None,
    ) -> list[ComtradeTotal]: ...


class ComtradeRepository:
    """Read access to ``un_comtrade``."""

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {"totals": _build_comtrade_totals(False), "totals_selected": _build_comtrade_totals(True)}
    )

    def __init__(self, engine: Engine, writer: Any = None) -> None:
        self.engine = engine
        self.writer = writer

    def totals(
        self,
        start: date,
        end: date,
        commodity_codes: Iterable[str] | None = None,
        reporter_code: str | None = None,
        trade_flow: str | None = None,
    ) -> list[ComtradeTotal]:
        """Trade value per period, commodity and flow with ``start <= period < end``.

        Summed over reporters (or only ``reporter_code``); imports and
        exports stay separate rows because their sum means nothing.
        ``records`` is the number of observations summed.
        """
        params: dict[str, Any] = {
            "start": plain_date("start", start),
            "end": plain_date("end", end),
            "reporter_code": optional_text("reporter_code", reporter_code),
            "trade_flow": optional_text("trade_flow", trade_flow),
        }
        name = "totals"
        if commodity_codes is not None:
            params["commodity_codes"] = text_list("commodity_codes", commodity_codes)
            if not params["commodity_codes"]:
                return []
            name = "totals_selected"
        with self.engine.connect() as connection:
            rows = connection.execute(self.statements[name], params).all()
        return [
            ComtradeTotal(row.period, row.commodity_code, row.trade_flow, row.value_usd, int(row.records))
            for row in rows
        ]
