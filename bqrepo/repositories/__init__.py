"""Repositories: the narrow, typed read interface a service depends on.

Each repository is built from an ``Engine`` (and, for writes, a writer),
exposes its prepared statements as ``statements`` for compile tests, and
returns frozen dataclasses from :mod:`bqrepo.repositories.results`. Each has
a ``typing.Protocol`` (``EventQueries``, ...) for services to depend on, so a
test can pass an in-memory fake. See docs/queries.md.

:class:`TimeSeriesRepository` serves any declared table (docs/generic-repository.md);
the five named repositories are typed faces over its statement builders.
"""

from bqrepo.repositories.economic import (
    ComtradeQueries,
    ComtradeRepository,
    FredQueries,
    FredRepository,
    WorldBankQueries,
    WorldBankRepository,
)
from bqrepo.repositories.entity_mentions import EntityMentionQueries, EntityMentionRepository
from bqrepo.repositories.events import EventQueries, EventRepository
from bqrepo.repositories.results import (
    ComtradeTotal,
    IndicatorValue,
    LatestValue,
    RecentEvent,
    RiskBucket,
    SeriesPoint,
    TrendingEntity,
)
from bqrepo.repositories.timeseries import RankedValue, TimeBucket, TimeSeriesQueries, TimeSeriesRepository

__all__ = [
    "ComtradeQueries",
    "ComtradeRepository",
    "ComtradeTotal",
    "EntityMentionQueries",
    "EntityMentionRepository",
    "EventQueries",
    "EventRepository",
    "FredQueries",
    "FredRepository",
    "IndicatorValue",
    "LatestValue",
    "RankedValue",
    "RecentEvent",
    "RiskBucket",
    "SeriesPoint",
    "TimeBucket",
    "TimeSeriesQueries",
    "TimeSeriesRepository",
    "TrendingEntity",
    "WorldBankQueries",
    "WorldBankRepository",
]
