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

from bqrepo.cost import CostGuard, guarded, run_statement
from bqrepo.repositories._common import optional_equals, optional_text, plain_date, text, text_list
from bqrepo.repositories.results import ComtradeTotal, IndicatorValue, LatestValue, SeriesPoint
from bqrepo.repositories.timeseries import (
    ALL_HISTORY,
    TimeSeriesRepository,
    deduplicated,
    in_list,
    latest_statement,
    series_statement,
    time_range,
)
from bqrepo.schema import fred_indicators, un_comtrade, world_bank
from bqrepo.timeseries import declaration

__all__ = [
    "ALL_HISTORY",
    "ComtradeQueries",
    "ComtradeRepository",
    "FredQueries",
    "FredRepository",
    "WorldBankQueries",
    "WorldBankRepository",
]

_VALUE = ("value",)


# --- FRED -----------------------------------------------------------------------


class FredQueries(Protocol):
    def series(self, series_id: str, start: date, end: date) -> list[SeriesPoint]: ...

    def latest(self, series_ids: Iterable[str] | None = None, since: date = ALL_HISTORY) -> list[LatestValue]: ...


class FredRepository:
    """Read access to ``fred_indicators``: a typed face over :class:`TimeSeriesRepository`."""

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {
            "series": series_statement(fred_indicators, _VALUE),
            "latest": latest_statement(fred_indicators, _VALUE),
            "latest_selected": latest_statement(fred_indicators, _VALUE, ("series_id",)),
        }
    )
    """``series``: series_id, start, end. ``latest``: since. ``latest_selected``: since, series_ids (ARRAY<STRING>)."""

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
        self.cost = CostGuard("fred_repository", fred_indicators.name, maximum_bytes_billed=maximum_bytes_billed, labels=labels)
        self._fred = TimeSeriesRepository(engine, fred_indicators)

    @guarded
    def series(self, series_id: str, start: date, end: date) -> list[SeriesPoint]:
        """Observations of ``series_id`` with ``start <= date < end``, oldest first."""
        key = {"series_id": text("series_id", series_id)}
        rows = self._fred.series(key, plain_date("start", start), plain_date("end", end), _VALUE)
        return [SeriesPoint(row["date"], row["value"]) for row in rows]

    @guarded
    def latest(self, series_ids: Iterable[str] | None = None, since: date = ALL_HISTORY) -> list[LatestValue]:
        """The newest observation (``date >= since``) of each series, or of ``series_ids``; by series id."""
        since = plain_date("since", since)
        series = None if series_ids is None else {"series_id": text_list("series_ids", series_ids)}
        rows = self._fred.latest(since=since, series=series, columns=_VALUE)
        return [LatestValue(row["series_id"], row["date"], row["value"]) for row in rows]


# --- World Bank -----------------------------------------------------------------


class WorldBankQueries(Protocol):
    def series(self, indicator_id: str, country_code: str, start: date, end: date) -> list[SeriesPoint]: ...

    def latest(
        self,
        indicator_ids: Iterable[str] | None = None,
        country_codes: Iterable[str] | None = None,
        since: date = ALL_HISTORY,
    ) -> list[IndicatorValue]: ...


class WorldBankRepository:
    """Read access to ``world_bank``; a series is one indicator for one country (a face over the generic repository)."""

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {
            "series": series_statement(world_bank, _VALUE),
            "latest": latest_statement(world_bank, _VALUE),
            "latest_indicators": latest_statement(world_bank, _VALUE, ("indicator_id",)),
            "latest_countries": latest_statement(world_bank, _VALUE, ("country_code",)),
            "latest_indicators_countries": latest_statement(world_bank, _VALUE, ("indicator_id", "country_code")),
        }
    )

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
        self.cost = CostGuard("world_bank_repository", world_bank.name, maximum_bytes_billed=maximum_bytes_billed, labels=labels)
        self._world_bank = TimeSeriesRepository(engine, world_bank)

    @guarded
    def series(self, indicator_id: str, country_code: str, start: date, end: date) -> list[SeriesPoint]:
        """Observations of one indicator for one country with ``start <= date < end``, oldest first."""
        key = {"indicator_id": text("indicator_id", indicator_id), "country_code": text("country_code", country_code)}
        rows = self._world_bank.series(key, plain_date("start", start), plain_date("end", end), _VALUE)
        return [SeriesPoint(row["date"], row["value"]) for row in rows]

    @guarded
    def latest(
        self,
        indicator_ids: Iterable[str] | None = None,
        country_codes: Iterable[str] | None = None,
        since: date = ALL_HISTORY,
    ) -> list[IndicatorValue]:
        """The newest observation (``date >= since``) per indicator and country, optionally restricted."""
        since = plain_date("since", since)
        series: dict[str, list[str]] = {}
        for column, argument, values in (
            ("indicator_id", "indicator_ids", indicator_ids),
            ("country_code", "country_codes", country_codes),
        ):
            if values is not None:
                series[column] = text_list(argument, values)
        rows = self._world_bank.latest(since=since, series=series, columns=_VALUE)
        return [IndicatorValue(row["indicator_id"], row["country_code"], row["date"], row["value"]) for row in rows]


# --- UN Comtrade ----------------------------------------------------------------


def _build_comtrade_totals(selected: bool) -> sa.Select[Any]:
    """Totals over reporters: the generic de-duplicated range, grouped by period, commodity and flow.

    Every filter is on a key column of derived ids, so it goes inside the
    de-duplication (:func:`~bqrepo.repositories.timeseries.shared_by_versions`).
    """
    spec = declaration(un_comtrade)
    t = un_comtrade
    where = sa.and_(
        time_range(spec),
        optional_equals(t.c.reporter_code, "reporter_code"),
        optional_equals(t.c.trade_flow, "trade_flow"),
    )
    if selected:
        where = sa.and_(where, in_list(t.c.commodity_code, "commodity_codes"))
    latest = deduplicated(spec, where, ["period", "commodity_code", "trade_flow", "value_usd"])
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
        self.cost = CostGuard("comtrade_repository", un_comtrade.name, maximum_bytes_billed=maximum_bytes_billed, labels=labels)

    @guarded
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
        rows = run_statement(self.engine, self.statements[name], params, self.cost, "totals")
        return [
            ComtradeTotal(row["period"], row["commodity_code"], row["trade_flow"], row["value_usd"], int(row["records"]))
            for row in rows.dicts()
        ]
