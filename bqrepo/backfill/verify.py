"""Compare source and destination day by day: row counts and a value checksum.

Why a checksum computed in Python rather than SQL aggregates: PostgreSQL,
DuckDB and BigQuery disagree on hash functions, float summation order and
JSON text, so no SQL expression gives the same number on both sides. Here
each row, once converted to the target's types (the source side goes through
the same row types as the back-fill), is rendered canonically (UTC ISO
timestamps, ``repr`` of floats, JSON with sorted keys), and a day's rows
are folded by :class:`bqrepo.checksum.Checksum`: the count, XOR and sums of
slices of each row's SHA-256 that the partition rebuild computes in SQL.
The fold does not depend on row order, and a changed value, a missing row or
a duplicated one all change it. (The rebuild's SQL form cannot serve here:
it hashes ``TO_JSON_STRING(row)``, which PostgreSQL does not have and whose
text differs between engines.)

Counts are raw: a destination day with a duplicated row fails verification
even though read-side de-duplication would hide it from queries, because the
back-fill promises exactness (see :mod:`bqrepo.backfill.checkpoint`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.backfill.chunks import Bound, Chunk
from bqrepo.backfill.mapping import TableMapping
from bqrepo.backfill.reader import SourceReader
from bqrepo.checksum import Checksum
from bqrepo.rows import row_type, validate_rows

__all__ = ["DayCheck", "VerificationReport", "row_text", "verify"]


def _canonical(value: Any) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, str):
        return value
    return repr(value)


def row_text(row: Mapping[str, Any], columns: Iterable[str]) -> str:
    """One row's canonical text, column order fixed by ``columns``: what its checksum hashes."""
    return "\x1f".join(_canonical(row[name]) for name in columns)


@dataclass
class DayCheck:
    """One day of one table: what the source has and what the destination holds."""

    day: dt.date
    source_rows: int = 0
    rejected_rows: int = 0
    destination_rows: int = 0
    destination_ids: int = 0
    source_checksum: Checksum = field(default_factory=Checksum)
    destination_checksum: Checksum = field(default_factory=Checksum)

    @property
    def ok(self) -> bool:
        expected = self.source_rows - self.rejected_rows
        return (
            self.destination_rows == expected
            and self.destination_ids == expected
            and self.source_checksum == self.destination_checksum
        )


@dataclass
class VerificationReport:
    """Every day in the range that has rows on either side."""

    table: str
    days: list[DayCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(day.ok for day in self.days)

    @property
    def mismatches(self) -> list[DayCheck]:
        return [day for day in self.days if not day.ok]

    @property
    def source_rows(self) -> int:
        return sum(day.source_rows for day in self.days)

    @property
    def destination_rows(self) -> int:
        return sum(day.destination_rows for day in self.days)

    @property
    def rejected_rows(self) -> int:
        return sum(day.rejected_rows for day in self.days)


def _day(value: Any) -> dt.date:
    return value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value


def _days(start: Bound, end: Bound) -> int:
    """Whole days from ``start`` to ``end``, two dates or two datetimes (a mix cannot be subtracted)."""
    if isinstance(start, dt.datetime) and isinstance(end, dt.datetime):
        return (end - start).days
    if not isinstance(start, dt.datetime) and not isinstance(end, dt.datetime):
        return (end - start).days
    raise TypeError(f"cannot subtract {type(start).__name__} from {type(end).__name__}: {start!r}, {end!r}")


def _windows(chunk_list: list[Chunk], max_days: int) -> Iterator[Chunk]:
    """Consecutive chunks merged into windows of at most ``max_days`` (or one chunk)."""
    current: Chunk | None = None
    for chunk in chunk_list:
        if current is not None and current.end == chunk.start and _days(current.start, chunk.end) <= max_days:
            current = Chunk(current.start, chunk.end)
            continue
        if current is not None:
            yield current
        current = chunk
    if current is not None:
        yield current


def verify(
    reader: SourceReader,
    destination: Engine,
    mapping: TableMapping,
    chunk_list: list[Chunk],
    *,
    window_days: int = 31,
) -> VerificationReport:
    """Read both sides over ``chunk_list`` and compare them day by day."""
    target = mapping.target
    target_row_type = row_type(target)
    # Unmapped columns hold the row types' defaults (created_at or ingested_at =
    # the time of writing), which differ between the write and this check.
    columns = [c.name for c in target.c if c.name in mapping.columns or c.name == "id"]
    partition = target.c[mapping.partition_column]
    # JSON is read untyped and parsed here: the BigQuery driver hands back parsed
    # values, DuckDB's text, and sa.JSON would parse BigQuery's a second time.
    selected = [
        sa.type_coerce(c, sa.types.NullType()).label(c.name) if isinstance(c.type, sa.JSON) else c for c in target.c
    ]
    json_columns = [c.name for c in target.c if isinstance(c.type, sa.JSON)]
    dest_statement = sa.select(*selected).where(
        partition >= sa.bindparam("start", type_=partition.type),
        partition < sa.bindparam("end", type_=partition.type),
    )
    report = VerificationReport(target.name)
    for window in _windows(chunk_list, window_days):
        days: dict[dt.date, DayCheck] = {}
        ids: dict[dt.date, set[str]] = {}

        def check(day: dt.date) -> DayCheck:
            return days.setdefault(day, DayCheck(day))

        records = list(reader.iter_records(window.start, window.end))
        validation = validate_rows(target_row_type, records)
        for index in {error.index for error in validation.errors}:
            check(_day(records[index][mapping.partition_column])).rejected_rows += 1
        for record in records:
            check(_day(record[mapping.partition_column])).source_rows += 1
        for valid in validation.valid:
            values = valid.row.to_db_row()
            day = check(_day(values[partition.name]))
            day.source_checksum.add(row_text(values, columns))

        with destination.connect() as connection:
            result = connection.execute(dest_statement, {"start": window.start, "end": window.end})
            for mapping_row in result.mappings():
                row = dict(mapping_row)
                for name in json_columns:
                    if isinstance(row[name], (str, bytes)):
                        row[name] = json.loads(row[name])
                day = check(_day(row[partition.name]))
                day.destination_rows += 1
                ids.setdefault(day.day, set()).add(row["id"])
                day.destination_checksum.add(row_text(row, columns))
        for day_value, id_set in ids.items():
            days[day_value].destination_ids = len(id_set)
        report.days.extend(days[key] for key in sorted(days))
    return report
