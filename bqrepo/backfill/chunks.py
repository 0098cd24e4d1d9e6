"""The timeline of a back-fill, cut into half-open chunks aligned to partitions.

Why aligned: a chunk that covers whole partitions is written by one load job
touching only those partitions, resumes cleanly (a chunk is either done or
not) and is verified with a range filter BigQuery can prune. Boundaries are
UTC midnights (TIMESTAMP targets) or dates (DATE targets), so they match
BigQuery's partition boundaries exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from bqrepo.backfill.mapping import ChunkUnit

__all__ = ["Chunk", "Bound", "chunks", "floor_to", "next_boundary"]

Bound = dt.datetime | dt.date


@dataclass(frozen=True, order=True)
class Chunk:
    """``[start, end)`` on the partition column; ``key`` names it in checkpoints."""

    start: Bound
    end: Bound

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


def floor_to(value: dt.date, unit: ChunkUnit) -> dt.date:
    """The first day of ``value``'s day, month or year."""
    if unit == "year":
        return dt.date(value.year, 1, 1)
    if unit == "month":
        return dt.date(value.year, value.month, 1)
    return value


def next_boundary(value: dt.date, unit: ChunkUnit) -> dt.date:
    """The first day of the next day, month or year after ``value``'s."""
    start = floor_to(value, unit)
    if unit == "year":
        return dt.date(start.year + 1, 1, 1)
    if unit == "month":
        return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + dt.timedelta(days=1)


def _as_bound(day: dt.date, timestamp: bool) -> Bound:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) if timestamp else day


def chunks(since: dt.date, until: dt.date, unit: ChunkUnit, *, timestamp: bool) -> Iterator[Chunk]:
    """Chunks covering ``[since, until)``, cut at ``unit`` boundaries.

    The first and last chunks are clipped to the range, so a back-fill of a
    few days of a yearly-chunked table reads only those days.
    """
    if until <= since:
        return
    day = since
    while day < until:
        end = min(next_boundary(day, unit), until)
        yield Chunk(_as_bound(day, timestamp), _as_bound(end, timestamp))
        day = end
