"""The timeline of a back-fill, cut into half-open chunks aligned to partitions.

Why aligned: a chunk that covers whole partitions is written by one load job
touching only those partitions, resumes cleanly (a chunk is either done or
not) and is verified with a range filter BigQuery can prune. Boundaries are
UTC midnights (TIMESTAMP targets) or dates (DATE targets), so they match
BigQuery's partition boundaries exactly.

The first and last chunks are clipped to the requested range, so the same
partitions can be covered by chunks with different bounds in two runs (say
``--until`` moved). :func:`merge` and :func:`covered` let the runner compare a
plan with earlier work by interval, never by key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bqrepo import timeunits
from bqrepo.backfill.mapping import ChunkUnit

__all__ = ["Chunk", "Bound", "chunks", "covered", "floor_to", "merge", "next_boundary"]

Bound = dt.datetime | dt.date
# The mapping file's chunk units, as time units.
_TIME_UNITS: dict[ChunkUnit, timeunits.TimeUnit] = {"day": "DAY", "month": "MONTH", "year": "YEAR"}


def _parse_bound(text: str, timestamp: bool) -> Bound:
    """One bound of a key; TIMESTAMP bounds are UTC midnights, as :func:`chunks` makes them."""
    if not timestamp:
        return dt.date.fromisoformat(text)
    value = dt.datetime.fromisoformat(text)
    if value.utcoffset() != dt.timedelta(0):
        raise ValueError(f"{text!r} is not in UTC")
    return value


@dataclass(frozen=True, order=True)
class Chunk:
    """``[start, end)`` on the partition column; ``key`` names it in checkpoints."""

    start: Bound
    end: Bound

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @classmethod
    def from_key(cls, key: str, *, timestamp: bool) -> Chunk:
        """Parse a :attr:`key` back into its chunk; ValueError for anything else.

        ``timestamp`` says which kind of bound to expect (UTC midnights or
        dates), so a key can never produce a chunk that does not compare with
        the plan's chunks.
        """
        start, _, end = key.partition("/")
        try:
            chunk = cls(_parse_bound(start, timestamp), _parse_bound(end, timestamp))
        except ValueError:
            chunk = None
        if chunk is None or chunk.key != key or chunk.end <= chunk.start:
            kind = "UTC timestamps" if timestamp else "dates"
            raise ValueError(f"{key!r} is not a chunk key (START/END, {kind}, START before END)")
        return chunk

    def overlaps(self, other: Chunk) -> bool:
        """Whether the two half-open ranges share any instant."""
        return self.start < other.end and other.start < self.end


def floor_to(value: dt.date, unit: ChunkUnit) -> dt.date:
    """The first day of ``value``'s day, month or year (:func:`bqrepo.timeunits.floor`)."""
    return timeunits.floor(value, _TIME_UNITS[unit])


def next_boundary(value: dt.date, unit: ChunkUnit) -> dt.date:
    """The first day of the next day, month or year after ``value``'s (:func:`bqrepo.timeunits.following`)."""
    return timeunits.following(value, _TIME_UNITS[unit])


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


def merge(parts: Iterable[Chunk]) -> list[Chunk]:
    """The union of ``parts`` as sorted chunks that neither overlap nor touch."""
    union: list[Chunk] = []
    for part in sorted(parts):
        if union and part.start <= union[-1].end:
            if part.end > union[-1].end:
                union[-1] = Chunk(union[-1].start, part.end)
        else:
            union.append(part)
    return union


def covered(chunk: Chunk, union: list[Chunk]) -> bool:
    """Whether ``chunk`` lies inside ``union`` (as returned by :func:`merge`).

    The union's parts do not touch, so a covered chunk lies inside one part.
    """
    return any(part.start <= chunk.start and chunk.end <= part.end for part in union)
