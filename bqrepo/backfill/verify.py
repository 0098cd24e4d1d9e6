"""Compare source and destination day by day: row counts and a value checksum.

Why a checksum computed in Python rather than SQL aggregates: PostgreSQL,
DuckDB and BigQuery disagree on hash functions, float summation order and
JSON text, so no SQL expression gives the same number on both sides. Here
each row, once converted to the target's types (the source side goes through
the same row types as the back-fill), is rendered canonically (UTC ISO
timestamps, ``repr`` of floats, JSON with sorted keys), and a day's rows
are folded by :class:`bqrepo.checksum.Checksum`: the count, XOR and sums of
slices of each row's SHA-256 that the partition rebuild computes in SQL.
For a DuckDB destination both sides fold in DuckDB instead
(:mod:`bqrepo.backfill.sql_fold`: the same engine and statement on both
sides, so the text agrees by construction, several times faster); the
Python fold remains for BigQuery.
The fold does not depend on row order, and a changed value, a missing row or
a duplicated one all change it. (The rebuild's SQL form cannot serve here:
it hashes ``TO_JSON_STRING(row)``, which PostgreSQL does not have and whose
text differs between engines.)

Both sides are streamed a batch at a time and folded into per-day counters
(and, on the destination, each day's distinct ids), so memory does not grow
with the table: the issue measured 2.4 GB for a million rows when a 31-day
window of rows was held. The source side of the chunks a run writes is folded
from the rows it validated for writing (:class:`SourceTally`), so a fresh
back-fill reads and validates the source once; chunks done by earlier runs
are read and validated again.

Counts are raw: a destination day with a duplicated row fails verification
even though read-side de-duplication would hide it from queries, because the
back-fill promises exactness (see :mod:`bqrepo.backfill.checkpoint`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from pydantic_core import from_json
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles

from bqrepo.backfill.chunks import Bound, Chunk, covered, merge
from bqrepo.backfill.mapping import TableMapping
from bqrepo.backfill.reader import SourceReader, prefetched
from bqrepo.backfill.sql_fold import DayFold, SourceFolder, day_folds, fold_statement, folds_in_sql
from bqrepo.checksum import Checksum
from bqrepo.rows import ValidationReport, row_type, validate_rows

__all__ = ["DayCheck", "SourceTally", "VerificationReport", "row_text", "verify"]


# Built once: json.dumps builds an encoder per call for any non-default option.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
        return _JSON.encode(value)
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


# --------------------------------------------------------------------------
# Folding rows into days, a batch at a time
# --------------------------------------------------------------------------


class _EpochMicros(sa.sql.expression.FunctionElement[int]):
    """A TIMESTAMP as integer microseconds since 1970-01-01 UTC.

    Why: the DuckDB driver builds each timestamp it returns through pytz
    (about 10 us a value, a fifth of reading a destination row); an integer
    costs nothing to fetch and :func:`_formatter` renders it as the
    datetime's text. On other dialects the timestamp itself is selected.
    """

    type = sa.BigInteger()
    inherit_cache = True


@compiles(_EpochMicros)
def _epoch_micros_plain(element: _EpochMicros, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_EpochMicros, "duckdb")
def _epoch_micros_duckdb(element: _EpochMicros, compiler: Any, **kw: Any) -> str:
    return f"epoch_us(CAST({compiler.process(element.clauses, **kw)} AS TIMESTAMPTZ))"


@compiles(_EpochMicros, "bigquery")
def _epoch_micros_bigquery(element: _EpochMicros, compiler: Any, **kw: Any) -> str:
    return f"UNIX_MICROS({compiler.process(element.clauses, **kw)})"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = _EPOCH.date()
_MICROS_PER_DAY = 86_400_000_000


def _destination_day(value: Any) -> dt.date:
    """The UTC day of a partition value as selected from the destination (epoch microseconds or not)."""
    if type(value) is int:
        return _EPOCH_DAY + dt.timedelta(days=value // _MICROS_PER_DAY)
    return _day(value)


def _formatter(column: sa.Column[Any], *, json_text: bool) -> Callable[[Any], str]:
    """``_canonical`` for one column's values: the expected type first, the general case for the rest.

    Chosen once per column; the general :func:`_canonical` stays the one
    definition of the text (every fast path returns exactly what it would).
    """
    kind = column.type
    if isinstance(kind, sa.JSON):
        if json_text:  # DuckDB hands JSON back as text: parse, then render canonically
            # pydantic-core's parser: the values json.loads gives, several times faster
            return lambda value: _canonical(from_json(value) if isinstance(value, (str, bytes)) else value)
        return _canonical
    if isinstance(kind, sa.String):
        return lambda value: value if type(value) is str else _canonical(value)
    if isinstance(kind, sa.Float):
        return lambda value: repr(value) if type(value) is float else _canonical(value)
    if isinstance(kind, sa.TIMESTAMP):
        utc = dt.UTC

        def stamp(value: Any) -> str:
            if type(value) is int:  # epoch microseconds (_EpochMicros): the same instant's text
                return (_EPOCH + dt.timedelta(microseconds=value)).isoformat(timespec="microseconds")
            if type(value) is dt.datetime:
                return value.astimezone(utc).isoformat(timespec="microseconds")
            return _canonical(value)

        return stamp
    return _canonical


class _Fold:
    """Per-day counts and checksums of one side's rows, folded a batch at a time.

    Nothing of a row outlives its batch (only per-day counters, and on the
    destination side each day's distinct ids), so a verification's memory
    does not grow with the table.
    """

    def __init__(self, mapping: TableMapping, *, in_sql: bool = False) -> None:
        target = mapping.target
        # Unmapped columns hold the row types' defaults (created_at or ingested_at =
        # the time of writing), which differ between the write and this check.
        self.columns = [str(c.name) for c in target.c if c.name in mapping.columns or c.name == "id"]
        self.partition = str(mapping.partition_column)
        self.row_type = row_type(target)
        formatters = {str(c.name): _formatter(c, json_text=False) for c in target.c}
        self._source_formatters = [formatters[name] for name in self.columns]
        self.days: dict[dt.date, DayCheck] = {}
        # DuckDB destinations: the source side folds in DuckDB too (see sql_fold).
        self.in_sql = in_sql
        self._folder = (
            SourceFolder([target.c[name] for name in self.columns], target.c[self.partition]) if in_sql else None
        )

        self._pending: list[Future[list[DayFold]]] = []

    def settle(self, keep: int = 0) -> None:
        """Merge the SQL folds still running into :attr:`days`, waiting until at most ``keep`` run."""
        while len(self._pending) > keep:
            for day, rows, _, xor, sums in self._pending.pop(0).result():
                check = self.check(day)
                check.source_rows += rows
                check.source_checksum.merge(rows, xor, sums)

    def close(self) -> None:
        """Release the in-memory DuckDB of an SQL fold."""
        self._pending.clear()
        if self._folder is not None:
            self._folder.close()

    def check(self, day: dt.date) -> DayCheck:
        found = self.days.get(day)
        if found is None:
            found = self.days[day] = DayCheck(day)
        return found

    def add_source(self, records: Sequence[Mapping[str, Any]], validation: ValidationReport) -> None:
        """Fold one batch of source records and their validation (rejected rows are counted, not summed)."""
        partition = self.partition
        for index in {error.index for error in validation.errors}:
            check = self.check(_day(records[index][partition]))
            check.rejected_rows += 1
            if self._folder is not None:
                check.source_rows += 1
        if self._folder is not None:
            self._pending.append(self._folder.submit(validation.rows))
            # At most one batch in flight: memory holds one more Arrow table, not a growing queue.
            self.settle(keep=1)
            return
        for record in records:
            self.check(_day(record[partition])).source_rows += 1
        texts: dict[dt.date, list[str]] = {}
        named = list(zip(self.columns, self._source_formatters))
        for valid in validation.valid:
            row = valid.row
            text = "\x1f".join([render(getattr(row, name)) for name, render in named])
            texts.setdefault(_day(getattr(row, partition)), []).append(text)
        for day, day_texts in texts.items():
            self.check(day).source_checksum.add_all(day_texts)

    def read_source(self, records: Iterable[dict[str, Any]], batch: int) -> None:
        """Validate and fold ``records`` ``batch`` at a time, as the back-fill validates them."""
        def batches() -> Iterator[list[dict[str, Any]]]:
            iterator = iter(records)
            while chunk := list(islice(iterator, batch)):
                yield chunk

        for chunk in prefetched(batches()):
            self.add_source(chunk, validate_rows(self.row_type, chunk))
        self.settle()


class SourceTally:
    """The source side of a verification, gathered while the back-fill writes.

    The runner validates every source row to write it; folding those same
    rows here spares the verification a second read and a second validation
    of every chunk this run wrote. Chunks done by earlier runs are read again
    by :func:`verify`.
    """

    def __init__(self, mapping: TableMapping, destination: Engine | None = None) -> None:
        self._fold = _Fold(mapping, in_sql=destination is not None and folds_in_sql(destination))
        self.chunks: list[Chunk] = []

    @property
    def in_sql(self) -> bool:
        """Whether rows are folded in DuckDB (for a DuckDB destination: :mod:`~bqrepo.backfill.sql_fold`)."""
        return self._fold.in_sql

    def close(self) -> None:
        """Release what the fold holds; the folded days stay readable."""
        self._fold.close()

    def add(self, records: Sequence[Mapping[str, Any]], validation: ValidationReport) -> None:
        """Fold one validated batch of a chunk being written."""
        self._fold.add_source(records, validation)

    def chunk_done(self, chunk: Chunk) -> None:
        """Every row of ``chunk`` was folded: its days need no second read."""
        self.chunks.append(chunk)

    def days_in(self, window: Chunk) -> Iterator[DayCheck]:
        """Copies of the folded days inside ``window``, their destination side still empty."""
        self._fold.settle()
        start, end = _day(window.start), _day(window.end)
        for day, check in self._fold.days.items():
            if start <= day < end:
                yield replace(check, destination_checksum=Checksum())


def _selected(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """How the verification selects a destination column (see :class:`_EpochMicros` and :func:`verify`)."""
    if isinstance(column.type, sa.JSON):
        # As text without a result processor: with NullType, the DuckDB dialect
        # picks sa.JSON from the cursor's type code and json.loads every value.
        return sa.type_coerce(column, sa.Text()).label(column.name)
    if isinstance(column.type, sa.TIMESTAMP):
        return _EpochMicros(column).label(column.name)
    return column


def verify(
    reader: SourceReader,
    destination: Engine,
    mapping: TableMapping,
    chunk_list: list[Chunk],
    *,
    window_days: int = 31,
    tally: SourceTally | None = None,
    batch: int = 10_000,
) -> VerificationReport:
    """Read both sides over ``chunk_list`` and compare them day by day.

    Both sides are streamed ``batch`` rows at a time and folded into per-day
    counters, so memory holds one batch, not the window. The source side of
    chunks in ``tally`` (those a run just wrote) is taken from it. Chunks are
    partition-aligned, so a day lies in one chunk and the two sources never
    share a day.
    """
    in_sql = folds_in_sql(destination)
    if tally is not None and tally.in_sql != in_sql:
        raise ValueError("the tally was folded for another kind of destination")
    fold = _Fold(mapping, in_sql=in_sql)
    try:
        return _verify(reader, destination, mapping, chunk_list, fold, window_days, tally, batch)
    finally:
        fold.close()


def _verify(
    reader: SourceReader,
    destination: Engine,
    mapping: TableMapping,
    chunk_list: list[Chunk],
    fold: _Fold,
    window_days: int,
    tally: SourceTally | None,
    batch: int,
) -> VerificationReport:
    target = mapping.target
    known = merge(tally.chunks) if tally is not None else []
    partition = target.c[mapping.partition_column]
    in_range = sa.and_(
        partition >= sa.bindparam("start", type_=partition.type),
        partition < sa.bindparam("end", type_=partition.type),
    )
    # JSON is read as text and parsed here: the BigQuery driver hands back parsed
    # values, DuckDB's text, and sa.JSON would parse BigQuery's a second time.
    by_name = {str(c.name): c for c in target.c}
    dest_statement = sa.select(*(_selected(by_name[name]) for name in fold.columns)).where(in_range)
    fold_destination = fold_statement(
        target, [by_name[name] for name in fold.columns], partition, distinct_ids=True, where=in_range
    )
    dest_formatters = [_formatter(by_name[name], json_text=True) for name in fold.columns]
    at_partition = fold.columns.index(fold.partition)
    at_id = fold.columns.index("id")
    report = VerificationReport(target.name)
    for window in _windows(chunk_list, window_days):
        fold.days = {}
        for chunk in chunk_list:
            if not (window.start <= chunk.start and chunk.end <= window.end):
                continue
            if covered(chunk, known):
                continue
            fold.read_source(reader.iter_records(chunk.start, chunk.end), batch)
        if tally is not None:
            fold.days.update((check.day, check) for check in tally.days_in(window))
        if fold.in_sql:
            with destination.connect() as connection:
                found = connection.execute(fold_destination, {"start": window.start, "end": window.end}).all()
            for day, count, distinct, xor, sums in day_folds(found, distinct_ids=True):
                check = fold.check(day)
                check.destination_rows = count
                check.destination_ids = distinct or 0
                check.destination_checksum.merge(count, xor, sums)
            report.days.extend(fold.days[key] for key in sorted(fold.days))
            continue
        ids: dict[dt.date, set[Any]] = {}
        with destination.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=batch).execute(
                dest_statement, {"start": window.start, "end": window.end}
            )
            for rows in result.partitions():
                texts: dict[dt.date, list[str]] = {}
                for row in rows:
                    day = _destination_day(row[at_partition])
                    texts.setdefault(day, []).append(
                        "\x1f".join([render(value) for render, value in zip(dest_formatters, row)])
                    )
                    day_ids = ids.get(day)
                    if day_ids is None:
                        day_ids = ids[day] = set()
                    day_ids.add(row[at_id])
                for day, day_texts in texts.items():
                    check = fold.check(day)
                    check.destination_rows += len(day_texts)
                    check.destination_checksum.add_all(day_texts)
        for day, id_set in ids.items():
            fold.days[day].destination_ids = len(id_set)
        report.days.extend(fold.days[key] for key in sorted(fold.days))
    return report
