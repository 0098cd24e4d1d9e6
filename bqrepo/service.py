"""The service facade with the plan's shape, composed of the repositories.

A Django view or a Celery task depends on :class:`TimeSeriesService` (or on
one repository's ``Protocol``); tests build one over a DuckDB file or pass
fakes. :data:`default_service` is created lazily on first use, from
:func:`bqrepo.settings.load_settings`, so importing this module touches no
network and reads no credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bqrepo.engine import create_engine
from bqrepo.repositories import (
    EntityMentionQueries,
    EntityMentionRepository,
    EventQueries,
    EventRepository,
    RecentEvent,
    RiskBucket,
    TrendingEntity,
)
from bqrepo.repositories._common import aware
from bqrepo.rows import EntityMentionRow, EventRow, Row, validate_rows
from bqrepo.schema import entity_mentions, events
from bqrepo.settings import Settings, load_settings
from bqrepo.timeunits import earlier, utc_now
from bqrepo.writers import RejectedRow, Writer, WriteResult, writer_for

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
    """``insert_events``, ``get_recent_events``, ``get_entity_trending``, ``get_risk_trends``.

    It holds no logic of its own beyond defaults: it validates and writes
    through the writer, and reads through the repositories.
    """

    def __init__(
        self,
        events: EventQueries,
        mentions: EntityMentionQueries,
        writer: Writer,
    ) -> None:
        self.events = events
        self.mentions = mentions
        self.writer = writer

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> TimeSeriesService:
        """Build the engine, writer and repositories for ``settings`` (default: environment/Django).

        Connects to nothing: the engine and the writer share one BigQuery
        client built here, and the first query or write opens the first
        connection. A process can therefore build its service at start-up
        while BigQuery (or the stand-in) is unreachable; the first use then
        fails with an error naming what to fix.
        """
        engine = create_engine(settings or load_settings())
        writer = writer_for(engine)
        return cls(EventRepository(engine, writer), EntityMentionRepository(engine, writer), writer)

    def insert_events(self, records: Iterable[Mapping[str, Any] | EventRow]) -> WriteResult:
        """Validate and store events; rejected ones come back in the result."""
        return insert_records(self.writer, events, EventRow, records)

    def insert_entity_mentions(
        self, records: Iterable[Mapping[str, Any] | EntityMentionRow]
    ) -> WriteResult:
        """Validate and store entity mentions; rejected ones come back in the result."""
        return insert_records(self.writer, entity_mentions, EntityMentionRow, records)

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

    def get_entity_trending(self, metric: str = "mentions", limit: int = 20) -> Sequence[TrendingEntity]:
        """Entities ranked by decayed mention count or risk (7-day half-life)."""
        return self.mentions.trending(metric=metric, limit=limit)  # type: ignore[arg-type]

    def get_risk_trends(
        self, start_date: datetime, end_date: datetime, bucket_size: str | timedelta = "DAY"
    ) -> Sequence[RiskBucket]:
        """Average and maximum risk and event count per time bucket."""
        return self.events.risk_trends(start_date, end_date, bucket=bucket_size)


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
