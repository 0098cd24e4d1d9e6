"""Queries over ``entity_mentions``: entities trending by decayed mentions or risk."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.constructs import seconds_between
from bqrepo.errors import InvalidArgumentError
from bqrepo.repositories._common import (
    aware,
    half_open,
    positive_int,
    positive_timedelta,
    timestamp_param,
)
from bqrepo.repositories._dedup import latest_versions
from bqrepo.repositories.results import TrendingEntity
from bqrepo.schema import entity_mentions, events
from bqrepo.timeunits import TIMESTAMP_MIN, earlier, later, utc_now

__all__ = [
    "CUTOFF_HALF_LIVES",
    "EntityMentionQueries",
    "EntityMentionRepository",
    "Metric",
    "trending_statements",
]

Metric = Literal["mentions", "risk"]

CUTOFF_HALF_LIVES = 10
"""Default scan window in half-lives: older mentions weigh less than 2**-10 (about 0.001)."""


def _build_trending(metric: Metric) -> sa.Select[Any]:
    as_of = timestamp_param("as_of")
    mentions = latest_versions(
        entity_mentions,
        sa.and_(
            entity_mentions.c.mentioned_at >= timestamp_param("window_start"),
            entity_mentions.c.mentioned_at <= as_of,
        ),
        [entity_mentions.c.mentioned_at.desc()],
        columns=["entity_id", "event_id", "mentioned_at"],
    )
    # weight = exp(-ln 2 * age / half_life): 1 now, 1/2 one half-life ago.
    weight = sa.func.exp(
        -sa.func.ln(sa.literal_column("2"))
        * seconds_between(as_of, mentions.c.mentioned_at)
        / sa.bindparam("half_life_seconds", type_=sa.Double())
    )
    source: sa.FromClause = mentions
    score: sa.ColumnElement[Any]
    if metric == "mentions":
        score = sa.func.sum(weight)
    else:
        latest_events = latest_versions(
            events,
            half_open(events.c.mentioned_at, timestamp_param("events_start"), timestamp_param("events_end")),
            [events.c.created_at.desc().nulls_last()],
            columns=["id", "risk_score"],
        )
        source = mentions.outerjoin(latest_events, latest_events.c.id == mentions.c.event_id)
        # A mention whose event is unknown (or has no risk score) adds no risk.
        score = sa.func.coalesce(sa.func.sum(weight * latest_events.c.risk_score), sa.literal_column("0.0", sa.Double()))
    score_column = score.label("score")
    return (
        sa.select(mentions.c.entity_id, score_column, sa.func.count().label("mentions"))
        .select_from(source)
        .group_by(mentions.c.entity_id)
        .order_by(score_column.desc(), mentions.c.entity_id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


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

    def __init__(self, engine: Engine, writer: Any = None, *, event_margin: timedelta = timedelta(days=1)) -> None:
        if not isinstance(event_margin, timedelta) or event_margin < timedelta(0):
            raise InvalidArgumentError("event_margin", f"must be a timedelta of at least 0, got {event_margin!r}")
        self.engine = engine
        self.writer = writer
        self.event_margin = event_margin

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
        positive_timedelta("half_life", half_life)
        now = utc_now() if as_of is None else aware("as_of", as_of)
        if cutoff is None:
            try:
                window_start = earlier(now, half_life * CUTOFF_HALF_LIVES)
            except OverflowError:  # ten half-lives exceed timedelta.max: all of history
                window_start = TIMESTAMP_MIN
        else:
            positive_timedelta("cutoff", cutoff)
            if cutoff > now - TIMESTAMP_MIN:
                raise InvalidArgumentError(
                    "cutoff",
                    f"{cutoff} reaches before 0001-01-01, the first TIMESTAMP; "
                    f"at most {(now - TIMESTAMP_MIN).days:,} days for as_of={now.isoformat()}",
                )
            window_start = now - cutoff
        params: dict[str, Any] = {
            "as_of": now,
            "window_start": window_start,
            "half_life_seconds": half_life.total_seconds(),
            "limit": positive_int("limit", limit),
        }
        if metric == "risk":
            params["events_start"] = earlier(window_start, self.event_margin)
            params["events_end"] = later(now, self.event_margin)
        with self.engine.connect() as connection:
            rows = connection.execute(trending_statements[metric], params).all()
        return [TrendingEntity(row.entity_id, float(row.score), int(row.mentions)) for row in rows]
