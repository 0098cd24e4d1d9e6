"""Queries over ``entity_mentions``: entities trending by decayed mentions or risk."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.cost import CostGuard, guarded, run_statement
from bqrepo.errors import InvalidArgumentError
from bqrepo.repositories._common import positive_int
from bqrepo.timeunits import earlier, later
from bqrepo.repositories.results import TrendingEntity
from bqrepo.repositories.timeseries import CUTOFF_HALF_LIVES, decay_window, decayed, deduplicated, ranked, time_range
from bqrepo.schema import entity_mentions, events
from bqrepo.timeseries import declaration

__all__ = [
    "CUTOFF_HALF_LIVES",
    "EntityMentionQueries",
    "EntityMentionRepository",
    "Metric",
    "trending_statements",
]

Metric = Literal["mentions", "risk"]


def _build_trending(metric: Metric) -> sa.Select[Any]:
    """The generic decayed ranking by ``entity_id``; "risk" weighs each mention by its event's risk score."""
    mentions, weight = decayed(declaration(entity_mentions), ["entity_id", "event_id", "mentioned_at"])
    source: sa.FromClause = mentions
    score: sa.ColumnElement[Any]
    if metric == "mentions":
        score = sa.func.sum(weight)
    else:
        latest_events = deduplicated(
            declaration(events), time_range(declaration(events), "events_start", "events_end"), ["id", "risk_score"]
        )
        source = mentions.outerjoin(latest_events, latest_events.c.id == mentions.c.event_id)
        # A mention whose event is unknown (or has no risk score) adds no risk.
        score = sa.func.coalesce(sa.func.sum(weight * latest_events.c.risk_score), sa.literal_column("0.0", sa.Double()))
    return ranked(source, mentions.c.entity_id, score, "mentions")


trending_statements: Mapping[Metric, sa.Select[Any]] = MappingProxyType(
    {"mentions": _build_trending("mentions"), "risk": _build_trending("risk")}
)
"""Parameters: ``as_of``, ``window_start`` (TIMESTAMP), ``half_life_seconds`` (FLOAT64), ``limit``;
"risk" also ``events_start``, ``events_end``."""


class EntityMentionQueries(Protocol):
    """What a service needs from the mentions store; :class:`EntityMentionRepository` implements it."""

    def trending(
        self,
        metric: Metric = "mentions",
        limit: int = 20,
        half_life: timedelta = timedelta(days=7),
        as_of: datetime | None = None,
        cutoff: timedelta | None = None,
    ) -> list[TrendingEntity]: ...


class EntityMentionRepository:
    """Read access to ``entity_mentions``.

    ``event_margin`` widens the events scan of ``metric="risk"``: a mention's
    event is looked up among events with ``mentioned_at`` in
    ``[as_of - cutoff - event_margin, as_of + event_margin)``. Events table
    requires a partition filter, and a mention is extracted from its event,
    so the two timestamps are close; a mention whose event lies outside the
    margin counts as a mention but adds no risk. Any non-negative margin is
    accepted: the scan is clipped to the TIMESTAMP range.
    """

    statements: ClassVar[Mapping[str, sa.Select[Any]]] = MappingProxyType(
        {f"trending_{metric}": statement for metric, statement in trending_statements.items()}
    )

    def __init__(
        self,
        engine: Engine,
        writer: Any = None,
        *,
        event_margin: timedelta = timedelta(days=1),
        maximum_bytes_billed: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(event_margin, timedelta) or event_margin < timedelta(0):
            raise InvalidArgumentError("event_margin", f"must be a timedelta of at least 0, got {event_margin!r}")
        self.engine = engine
        self.writer = writer
        self.event_margin = event_margin
        #: Bytes limit and labels of this repository's jobs (:mod:`bqrepo.cost`).
        self.cost = CostGuard(
            "entity_mention_repository", entity_mentions.name, maximum_bytes_billed=maximum_bytes_billed, labels=labels
        )

    @guarded
    def trending(
        self,
        metric: Metric = "mentions",
        limit: int = 20,
        half_life: timedelta = timedelta(days=7),
        as_of: datetime | None = None,
        cutoff: timedelta | None = None,
    ) -> list[TrendingEntity]:
        """The ``limit`` entities with the highest decayed score, highest first (ties by entity id).

        score = sum over mentions of exp(-ln 2 * (as_of - mentioned_at) / half_life),
        each term multiplied by the event's ``risk_score`` for ``metric="risk"``.
        Only mentions with ``as_of - cutoff <= mentioned_at <= as_of`` are
        scanned (default cutoff: 10 half-lives), so the cost follows the
        window, not the table. ``as_of`` defaults to now and is always sent as
        a parameter (never CURRENT_TIMESTAMP), so results are reproducible and
        cacheable.

        Any positive ``half_life`` is accepted; the default window is clipped
        at 0001-01-01, the first TIMESTAMP. An explicit ``cutoff`` reaching
        before it is refused.
        """
        if not isinstance(metric, str) or metric not in trending_statements:
            raise InvalidArgumentError("metric", f"must be 'mentions' or 'risk', got {metric!r}")
        now, window_start = decay_window(half_life, as_of, cutoff)
        params: dict[str, Any] = {
            "as_of": now,
            "window_start": window_start,
            "half_life_seconds": half_life.total_seconds(),
            "limit": positive_int("limit", limit),
        }
        if metric == "risk":
            params["events_start"] = earlier(window_start, self.event_margin)
            params["events_end"] = later(now, self.event_margin)
        rows = run_statement(self.engine, trending_statements[metric], params, self.cost, "trending")
        return [TrendingEntity(entity, float(score), int(mentions)) for entity, score, mentions in rows]
