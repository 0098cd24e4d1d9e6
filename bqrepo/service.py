"""The service facade with the plan's shape, composed of the repositories.

A Django view or a Celery task depends on :class:`TimeSeriesService` (or on
one repository's ``Protocol``); tests build one over a DuckDB file or pass
fakes. :data:`default_service` is created lazily on first use, from
:func:`bqrepo.settings.load_settings`, so importing this module touches no
network and reads no credentials.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from bqrepo import schema
from bqrepo.constructs import BucketSpec
from bqrepo.engine import create_engine
from bqrepo.errors import InvalidArgumentError
from bqrepo.repositories import (
    ComtradeQueries,
    ComtradeRepository,
    ComtradeTotal,
    EntityMentionQueries,
    EntityMentionRepository,
    EventQueries,
    EventRepository,
    FredQueries,
    FredRepository,
    IndicatorValue,
    LatestValue,
    RecentEvent,
    RiskBucket,
    SeriesPoint,
    TrendingEntity,
    WorldBankQueries,
    WorldBankRepository,
)
from bqrepo.repositories._common import aware
from bqrepo.repositories.economic import ALL_HISTORY
from bqrepo.repositories.entity_mentions import Metric
from bqrepo.repositories.timeseries import TimeSeriesRepository
from bqrepo.rows import (
    ComtradeObservation,
    EntityMentionRow,
    EventRow,
    FredObservation,
    Row,
    WorldBankObservation,
    row_type,
    validate_rows,
)
from bqrepo.metadata_loader import load_metadata
from bqrepo.settings import Settings, load_settings
from bqrepo.timeseries import declaration
from bqrepo.timeunits import earlier, utc_now
from bqrepo.writers import RejectedRow, Writer, WriteResult, writer_for

_R = TypeVar("_R")
_V = TypeVar("_V")

__all__ = ["TimeSeriesService", "default_service", "get_default_service", "insert_records"]


def insert_records(
    writer: Writer,
    table: sa.Table,
    row_type: type[Row],
    records: Iterable[Mapping[str, Any] | Row],
) -> WriteResult:
    """Validate ``records`` and write the valid ones; every rejected record comes back.

    Rejections, from validation or from the database, carry the record's
    index in ``records``, so a caller can retry or report exactly those.
    """
    batch = list(records)
    report = validate_rows(row_type, batch)
    result = WriteResult()
    for index, errors in report.errors_by_row().items():
        result.rejected.append(RejectedRow.from_errors(_as_dict(batch[index]), errors))
    if report.valid:
        written = writer.write(table, [valid.row for valid in report.valid])
        original = [valid.index for valid in report.valid]
        result.written += written.written
        result.duplicates += written.duplicates
        result.requests += written.requests
        for rejected in written.rejected:
            result.rejected.append(
                RejectedRow(
                    index=original[rejected.index],
                    row=rejected.row,
                    reason=rejected.reason,
                    field=rejected.field,
                    retryable=rejected.retryable,
                    record=rejected.record,
                    problems=rejected.problems,
                )
            )
    result.rejected.sort(key=lambda r: r.index)
    return result


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Row):
        return value.model_dump()
    return dict(value) if isinstance(value, Mapping) else {"record": repr(value)}


class TimeSeriesService:
    """Every table's reads and writes, with the repositories' own parameter names.

    It holds no logic of its own beyond defaults: it validates and writes
    through the writer, and reads through the repositories, so each method
    takes exactly the parameters of the repository method it calls
    (``start``, ``end``, ``bucket``, ``as_of``, ``half_life``, ...). The
    five shipped tables have typed methods; any other declared table is
    reached with :meth:`insert` and :meth:`table`.

    ``start_date``, ``end_date`` and ``bucket_size`` of the first release's
    ``get_risk_trends`` still work, with a ``DeprecationWarning``.
    """

    def __init__(
        self,
        events: EventQueries,
        mentions: EntityMentionQueries,
        writer: Writer,
        *,
        fred: FredQueries | None = None,
        world_bank: WorldBankQueries | None = None,
        comtrade: ComtradeQueries | None = None,
        engine: sa.Engine | None = None,
        metadata: sa.MetaData | None = None,
    ) -> None:
        self.events = events
        self.mentions = mentions
        self.writer = writer
        self._fred = fred
        self._world_bank = world_bank
        self._comtrade = comtrade
        self.engine = engine
        self.metadata = metadata if metadata is not None else schema.metadata
        self._tables: dict[str, TimeSeriesRepository] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, metadata: sa.MetaData | None = None
    ) -> TimeSeriesService:
        """Build the engine, writer and repositories for ``settings`` (default: environment/Django).

        ``metadata`` holds the tables :meth:`table` and :meth:`insert` can
        reach by name besides the shipped five (default: the one
        ``BQREPO_METADATA`` names, else bqrepo's own).

        Connects to nothing: the engine and the writer share one BigQuery
        client built here, and the first query or write opens the first
        connection. A process can therefore build its service at start-up
        while BigQuery (or the stand-in) is unreachable; the first use then
        fails with an error naming what to fix.
        """
        settings = settings or load_settings()
        if metadata is None:
            metadata = load_metadata(settings.metadata)
        engine = create_engine(settings)
        writer = writer_for(engine)
        return cls(
            EventRepository(engine, writer),
            EntityMentionRepository(engine, writer),
            writer,
            fred=FredRepository(engine, writer),
            world_bank=WorldBankRepository(engine, writer),
            comtrade=ComtradeRepository(engine, writer),
            engine=engine,
            metadata=metadata,
        )

    # --- any declared table ---------------------------------------------------

    def _resolve(self, table: sa.Table | str) -> sa.Table:
        if isinstance(table, sa.Table):
            declaration(table)  # a clear SchemaError for an undeclared table
            return table
        for metadata in (self.metadata, schema.metadata):
            found = metadata.tables.get(table) if isinstance(table, str) else None
            if found is not None:
                declaration(found)
                return found
        names = sorted({*self.metadata.tables, *schema.metadata.tables})
        raise InvalidArgumentError("table", f"no declared table {table!r}; tables are {', '.join(names)}")

    def insert(self, table: sa.Table | str, records: Iterable[Mapping[str, Any] | Row]) -> WriteResult:
        """Validate ``records`` as rows of ``table`` (a declared table or its name) and store the valid ones."""
        resolved = self._resolve(table)
        return insert_records(self.writer, resolved, row_type(resolved), records)

    def table(self, table: sa.Table | str) -> TimeSeriesRepository:
        """The generic repository of ``table``: rows, buckets, ranking, latest, series."""
        resolved = self._resolve(table)
        repository = self._tables.get(resolved.name)
        if repository is None or repository.table is not resolved:
            if self.engine is None:
                raise InvalidArgumentError(
                    "table", "this service was built without an engine; build it with from_settings()"
                )
            repository = TimeSeriesRepository(self.engine, resolved, self.writer)
            self._tables[resolved.name] = repository
        return repository

    # --- writes of the shipped tables -----------------------------------------

    def insert_events(self, records: Iterable[Mapping[str, Any] | EventRow]) -> WriteResult:
        """Validate and store events; rejected ones come back in the result."""
        return self.insert(schema.events, records)

    def insert_entity_mentions(self, records: Iterable[Mapping[str, Any] | EntityMentionRow]) -> WriteResult:
        """Validate and store entity mentions; rejected ones come back in the result."""
        return self.insert(schema.entity_mentions, records)

    def insert_fred_observations(self, records: Iterable[Mapping[str, Any] | FredObservation]) -> WriteResult:
        """Validate and store FRED observations; a re-polled value replaces the old one on read."""
        return self.insert(schema.fred_indicators, records)

    def insert_comtrade_observations(
        self, records: Iterable[Mapping[str, Any] | ComtradeObservation]
    ) -> WriteResult:
        """Validate and store UN Comtrade trade values."""
        return self.insert(schema.un_comtrade, records)

    def insert_world_bank_observations(
        self, records: Iterable[Mapping[str, Any] | WorldBankObservation]
    ) -> WriteResult:
        """Validate and store World Bank indicator values."""
        return self.insert(schema.world_bank, records)

    # --- reads of the shipped tables ------------------------------------------

    def get_recent_events(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        event_type: str | None = None,
        source_name: str | None = None,
        limit: int = 100,
    ) -> Sequence[RecentEvent]:
        """Newest events in ``[start, end)``; defaults to the last 7 days (clipped at 0001-01-01)."""
        end = utc_now() if end is None else aware("end", end)
        start = earlier(end, timedelta(days=7)) if start is None else start
        return self.events.recent(start, end, event_type=event_type, source_name=source_name, limit=limit)

    def get_entity_trending(
        self,
        metric: Metric = "mentions",
        limit: int = 20,
        half_life: timedelta = timedelta(days=7),
        as_of: datetime | None = None,
        cutoff: timedelta | None = None,
    ) -> Sequence[TrendingEntity]:
        """Entities ranked by decayed mention count or risk (default half-life 7 days, as of now)."""
        return self.mentions.trending(metric=metric, limit=limit, half_life=half_life, as_of=as_of, cutoff=cutoff)

    def get_risk_trends(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket: str | timedelta | BucketSpec = "DAY",
        event_type: str | None = None,
        fill_gaps: bool = False,
        *,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        bucket_size: str | timedelta | None = None,
    ) -> Sequence[RiskBucket]:
        """Average and maximum risk and event count per time bucket (see ``EventRepository.risk_trends``)."""
        start = _renamed("start_date", start_date, "start", start)
        end = _renamed("end_date", end_date, "end", end)
        if bucket_size is not None:
            warnings.warn("bucket_size is deprecated; use bucket", DeprecationWarning, stacklevel=2)
            bucket = bucket_size
        if start is None or end is None:
            raise InvalidArgumentError("start" if start is None else "end", "is required")
        return self.events.risk_trends(start, end, bucket=bucket, event_type=event_type, fill_gaps=fill_gaps)

    def get_fred_series(self, series_id: str, start: date, end: date) -> Sequence[SeriesPoint]:
        """One FRED series with ``start <= date < end``, oldest first."""
        return self._economic("fred", self._fred).series(series_id, start, end)

    def get_fred_latest(
        self, series_ids: Iterable[str] | None = None, since: date = ALL_HISTORY
    ) -> Sequence[LatestValue]:
        """The newest observation of each FRED series (or of ``series_ids``)."""
        return self._economic("fred", self._fred).latest(series_ids, since)

    def get_world_bank_series(
        self, indicator_id: str, country_code: str, start: date, end: date
    ) -> Sequence[SeriesPoint]:
        """One World Bank indicator for one country with ``start <= date < end``, oldest first."""
        return self._economic("world_bank", self._world_bank).series(indicator_id, country_code, start, end)

    def get_world_bank_latest(
        self,
        indicator_ids: Iterable[str] | None = None,
        country_codes: Iterable[str] | None = None,
        since: date = ALL_HISTORY,
    ) -> Sequence[IndicatorValue]:
        """The newest World Bank observation per indicator and country."""
        return self._economic("world_bank", self._world_bank).latest(indicator_ids, country_codes, since)

    def get_comtrade_totals(
        self,
        start: date,
        end: date,
        commodity_codes: Iterable[str] | None = None,
        reporter_code: str | None = None,
        trade_flow: str | None = None,
    ) -> Sequence[ComtradeTotal]:
        """UN Comtrade trade value per period, commodity and flow."""
        return self._economic("comtrade", self._comtrade).totals(
            start, end, commodity_codes=commodity_codes, reporter_code=reporter_code, trade_flow=trade_flow
        )

    @staticmethod
    def _economic(name: str, repository: _R | None) -> _R:
        if repository is None:
            raise InvalidArgumentError(name, f"this service was built without a {name} repository")
        return repository


def _renamed(old: str, old_value: _V | None, new: str, new_value: _V | None) -> _V | None:
    """``new_value``, or the first release's ``old`` parameter with a DeprecationWarning."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise InvalidArgumentError(old, f"pass either {new} or the deprecated {old}, not both")
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)
    return old_value


_default: TimeSeriesService | None = None
_default_lock = threading.Lock()


def get_default_service() -> TimeSeriesService:
    """The process-wide service, built on first call from the configured settings.

    One per process, shared by :data:`default_service` and the Django
    integration; threads racing on the first call build one engine, not two.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = TimeSeriesService.from_settings()
    return _default


class _DefaultService(TimeSeriesService):
    """A :class:`TimeSeriesService` whose parts are built on first use.

    ``__init__`` builds nothing; the first read of ``events``, ``mentions``
    or ``writer`` (through any method) builds :func:`get_default_service`.
    """

    def __init__(self) -> None:  # deliberately builds nothing
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(get_default_service(), name)

    def __repr__(self) -> str:
        return "<bqrepo default service (created on first use)>"


default_service: TimeSeriesService = _DefaultService()
"""Module-level default instance; nothing is created until it is used."""
