"""Generic queries over any declared time-series table (:mod:`bqrepo.timeseries`).

:class:`TimeSeriesRepository` serves a user's own table from its declaration
alone: the time column bounds every query, the version column picks the
newest copy of each id, the series columns name one series. The five
built-in repositories are thin typed faces over the same statement builders.

Every read goes through :func:`~bqrepo.repositories._dedup.latest_versions`
with the time range as a filter on the *bare* time (partition) column in the
innermost SELECT, so BigQuery prunes partitions before the window function.
An equality filter goes inside too only when every version of an id
necessarily shares the column's value (:func:`shared_by_versions`: a key
column of a table whose ids are derived from the key); any other filter is
applied to the de-duplicated rows, so an older version never answers for a
newer one that no longer matches (see the ``_dedup`` docstring).

Statements are built once per (table, shape) and cached (``lru_cache``):
the shape is what changes the SQL (which columns are filtered, the bucket
width, the aggregates), never a value, which always travels as a bound
parameter. Column names come from the table's own ``Column`` objects after
validation, never from caller text formatted into SQL.

Why dicts for :meth:`TimeSeriesRepository.rows`, ``latest`` and ``series``:
their columns are the user's, so a result class would have to be generated
per table at run time, which type checkers cannot see; a dict with
normalised values (aware UTC datetimes, parsed JSON) is as precise and
needs no generated code. Buckets and rankings have a fixed shape and come
back as frozen dataclasses (:class:`TimeBucket`, :class:`RankedValue`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bqrepo.constructs import BucketSpec, first_per_group, seconds_between, time_bucket
from bqrepo.cost import CostGuard, Fetched, guarded, run_statement
from bqrepo.errors import InvalidArgumentError
from bqrepo.repositories._common import (
    TIMESTAMP,
    aware,
    date_param,
    half_open,
    optional_equals,
    optional_text,
    plain_date,
    positive_int,
    positive_timedelta,
    text,
    text_list,
    timestamp_param,
)
from bqrepo.repositories._dedup import latest_versions
from bqrepo.repositories.results import json_value, utc
from bqrepo.timeseries import TimeSeries, declaration
from bqrepo.timeunits import TIMESTAMP_MAX, TIMESTAMP_MIN, earlier, utc_now

__all__ = [
    "AGGREGATES",
    "ALL_HISTORY",
    "CUTOFF_HALF_LIVES",
    "MAX_BUCKET_SECONDS",
    "MAX_FILLED_BUCKETS",
    "Aggregate",
    "RankedValue",
    "TimeBucket",
    "TimeSeriesQueries",
    "TimeSeriesRepository",
    "bucket_spec",
    "bucket_starts",
    "buckets_statement",
    "decay_window",
    "decayed",
    "deduplicated",
    "equals_param",
    "first_bucket",
    "in_list",
    "latest_statement",
    "list_param",
    "newest_per",
    "ranked",
    "ranking_statement",
    "rows_statement",
    "series_statement",
    "shared_by_versions",
    "time_param",
    "time_range",
]

Aggregate = Literal["avg", "max", "min", "sum", "count"]
AGGREGATES: tuple[Aggregate, ...] = ("avg", "max", "min", "sum", "count")

ALL_HISTORY = date(1, 1, 1)
"""The default ``since`` of a DATE table: BigQuery's smallest DATE."""

CUTOFF_HALF_LIVES = 10
"""Default ranking window in half-lives: older rows weigh less than 2**-10 (about 0.001)."""

MAX_FILLED_BUCKETS = 100_000
"""``fill_gaps`` refuses ranges with more buckets than this (a typo like "1 second" over a year)."""

MAX_BUCKET_SECONDS = (TIMESTAMP_MAX - TIMESTAMP_MIN) // timedelta(seconds=1) + 1
"""The widest fixed bucket: the whole TIMESTAMP range (about 10,000 years).

Wider buckets mean nothing, and this bound keeps the SQL's arithmetic in
range: BigQuery's INTERVAL allows 87,840,000 hours, DuckDB's epoch
arithmetic counts microseconds in an INT64.
"""

_STATEMENT_PARAMS = frozenset({"start", "end", "limit", "since", "as_of", "window_start", "half_life_seconds"})
_CACHE_SIZE = 256


# --- results -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeBucket:
    """Aggregates of the rows in ``[bucket_start, next bucket start)``.

    ``bucket_start`` is an aware UTC ``datetime``, or a ``date`` on a table
    whose time column is a DATE. An aggregate that was not asked for is
    ``None``; a gap-filled bucket has ``count == 0`` (when counted) and
    ``None`` for the rest, like TimescaleDB's ``time_bucket_gapfill``.
    """

    bucket_start: datetime | date
    avg: float | None = None
    max: float | None = None
    min: float | None = None
    sum: float | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class RankedValue:
    """One value of the ranked column, its decayed score and the number of rows scored."""

    value: Any
    score: float
    count: int


# --- building blocks -----------------------------------------------------------


def time_param(spec: TimeSeries, name: str) -> sa.BindParameter[Any]:
    """A parameter typed like the time column: DATE or TIMESTAMP."""
    return date_param(name) if spec.is_date else timestamp_param(name)


def time_range(spec: TimeSeries, lower: str = "start", upper: str = "end") -> sa.ColumnElement[bool]:
    """``:lower <= time < :upper`` on the bare time column: the shape BigQuery prunes with."""
    return half_open(spec.time_column, time_param(spec, lower), time_param(spec, upper))


def shared_by_versions(spec: TimeSeries, column: str) -> bool:
    """Whether every version of an id has the same ``column`` value, so a filter on it may go inside.

    True for key columns of a table whose ids are derived from the key (an
    economic series id). A table with given ids (an event's Django primary
    key) may revise any column under the same id, its key columns included.
    """
    return spec.ids == "derived" and column in spec.key


def deduplicated(
    spec: TimeSeries, where: sa.ColumnElement[bool], columns: Sequence[str] | None = None, *, name: str | None = None
) -> sa.Subquery:
    """The newest version of each id among rows matching ``where`` (which must hold the time range)."""
    return latest_versions(spec.table, where, spec.newest_first(), columns=columns, name=name)


def in_list(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` for a list parameter: ``IN UNNEST(@name)`` on BigQuery."""
    return column.in_(sa.bindparam(name, type_=sa.String(), expanding=True))


def equals_param(column: str) -> str:
    """The parameter name of an equality filter on ``column``: the column's name unless a statement uses it."""
    return f"where_{column}" if column in _STATEMENT_PARAMS or not column.isidentifier() else column


def list_param(column: str) -> str:
    """The parameter name of an ``IN`` filter on ``column``: the name plus "s" (``series_ids``)."""
    name = f"{column}s"
    return f"where_{name}" if name in _STATEMENT_PARAMS or not name.isidentifier() else name


def _in_table_order(spec: TimeSeries, names: Iterable[str]) -> list[str]:
    wanted = set(names)
    return [column.name for column in spec.table.columns if column.name in wanted]


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _split(spec: TimeSeries, columns: Sequence[str]) -> tuple[list[str], list[str]]:
    """``columns`` split into those filtered inside the de-duplication and those filtered on its result."""
    inside = [column for column in columns if shared_by_versions(spec, column)]
    return inside, [column for column in columns if column not in inside]


def _tiebreak(spec: TimeSeries) -> bool:
    """Whether rows of one series can share a time, so the id breaks ties.

    They can when the key has more than the series and time columns (one
    forecast per horizon), and when ids are given (two ids may carry the
    same key values).
    """
    return spec.ids == "given" or not set(spec.key) <= {*spec.series, spec.time}


def _read(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A column as selected: JSON read untyped (drivers disagree on text vs parsed; :func:`json_value` normalises)."""
    if isinstance(column.type, sa.JSON):
        return sa.type_coerce(column, sa.types.NullType()).label(column.key)
    return column


@lru_cache(maxsize=_CACHE_SIZE)
def rows_statement(table: sa.Table, where: tuple[str, ...] = (), newest_first: bool = True) -> sa.Select[Any]:
    """Rows with ``:start <= time < :end``, filtered on ``where`` columns, newest (or oldest) first, by id.

    Parameters: ``start``, ``end``, ``limit``, and one STRING-or-NULL per
    ``where`` column (:func:`equals_param`; NULL means "no filter").
    """
    spec = declaration(table)
    inside, outside = _split(spec, where)
    condition = sa.and_(
        time_range(spec), *(optional_equals(table.c[column], equals_param(column)) for column in inside)
    )
    latest = deduplicated(spec, condition)
    plain = [latest.c[c.name] for c in table.columns if not isinstance(c.type, sa.JSON)]
    documents = [_read(latest.c[c.name]) for c in table.columns if isinstance(c.type, sa.JSON)]
    time = latest.c[spec.time]
    statement = sa.select(*plain, *documents)
    for column in outside:
        statement = statement.where(optional_equals(latest.c[column], equals_param(column)))
    return statement.order_by(time.desc() if newest_first else time.asc(), latest.c.id).limit(
        sa.bindparam("limit", type_=sa.Integer())
    )


def _aggregate(name: str, value: sa.ColumnElement[Any] | None) -> sa.ColumnElement[Any]:
    if name == "count":
        return sa.func.count()
    assert value is not None
    if name == "avg":
        return sa.func.avg(value)
    if name == "max":
        return sa.func.max(value)
    if name == "min":
        return sa.func.min(value)
    return sa.func.sum(value)


@lru_cache(maxsize=_CACHE_SIZE)
def buckets_statement(
    table: sa.Table,
    bucket: BucketSpec,
    value: str | None,
    aggregates: tuple[tuple[Aggregate, str], ...],
    where: tuple[str, ...] = (),
) -> sa.Select[Any]:
    """Aggregates of ``value`` per bucket of the time column, oldest bucket first.

    ``aggregates`` pairs each aggregate with its result label. The width is
    part of the SQL (BigQuery's ``TIMESTAMP_BUCKET`` takes an INTERVAL
    literal), rendered from the validated :class:`BucketSpec`. A DATE is
    bucketed as midnight UTC of that day. Parameters: ``start``, ``end``,
    one per ``where`` column.
    """
    spec = declaration(table)
    inside, outside = _split(spec, where)
    condition = sa.and_(
        time_range(spec), *(optional_equals(table.c[column], equals_param(column)) for column in inside)
    )
    read = _unique([spec.time, *outside, *([value] if value is not None else [])])
    latest = deduplicated(spec, condition, read)
    moment: sa.ColumnElement[Any] = latest.c[spec.time]
    if spec.is_date:
        moment = sa.cast(moment, TIMESTAMP)
    bucket_start = time_bucket(moment, bucket).label("bucket_start")
    measured = latest.c[value] if value is not None else None
    statement = sa.select(bucket_start, *(_aggregate(name, measured).label(label) for name, label in aggregates))
    for column in outside:
        statement = statement.where(optional_equals(latest.c[column], equals_param(column)))
    return statement.group_by(bucket_start).order_by(bucket_start)


def decayed(spec: TimeSeries, columns: Sequence[str]) -> tuple[sa.Subquery, sa.ColumnElement[float]]:
    """Rows with ``:window_start <= time <= :as_of`` and each row's decay ``exp(-ln 2 * age / half_life)``.

    The decay is 1 at ``as_of`` and 1/2 one half-life earlier. Parameters:
    ``as_of``, ``window_start`` (TIMESTAMP), ``half_life_seconds`` (FLOAT64).
    """
    as_of = timestamp_param("as_of")
    rows = deduplicated(
        spec,
        sa.and_(spec.time_column >= timestamp_param("window_start"), spec.time_column <= as_of),
        columns,
    )
    decay = sa.func.exp(
        -sa.func.ln(sa.literal_column("2"))
        * seconds_between(as_of, rows.c[spec.time])
        / sa.bindparam("half_life_seconds", type_=sa.Double())
    )
    return rows, decay


def ranked(
    source: sa.FromClause, key: sa.ColumnElement[Any], score: sa.ColumnElement[Any], count_label: str
) -> sa.Select[Any]:
    """``key``, its ``score`` and row count, highest score first (ties by key), at most ``:limit``."""
    score_column = score.label("score")
    return (
        sa.select(key, score_column, sa.func.count().label(count_label))
        .select_from(source)
        .group_by(key)
        .order_by(score_column.desc(), key)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


@lru_cache(maxsize=_CACHE_SIZE)
def ranking_statement(table: sa.Table, key: str, weight: str | None = None) -> sa.Select[Any]:
    """Decayed score per ``key`` value: sum(decay), or sum(decay * weight) with NULL weights adding 0."""
    spec = declaration(table)
    rows, decay = decayed(spec, _in_table_order(spec, [key, spec.time, *([weight] if weight else [])]))
    score: sa.ColumnElement[Any]
    if weight is None:
        score = sa.func.sum(decay)
    else:
        score = sa.func.coalesce(sa.func.sum(decay * rows.c[weight]), sa.literal_column("0.0", sa.Double()))
    return ranked(rows, rows.c[key], score, "count")


def newest_per(
    latest: sa.Subquery, keys: Sequence[str], value_columns: Sequence[str], time: str, tiebreak: str | None = None
) -> sa.Select[Any]:
    """The row with the greatest ``time`` per ``keys`` of an already de-duplicated subquery, by keys.

    Without ``tiebreak`` the time is unique per keys and ``ROW_NUMBER() ...
    = 1`` picks the row. With one (rows of a series may share a time), the
    smallest ``tiebreak`` among the newest rows wins, found with MAX and MIN
    windows rather than ``ROW_NUMBER() OVER (ORDER BY time DESC, id) = 1``:
    DuckDB 1.5's ``top_n_window_elimination`` (embedded and inside the
    stand-in) rewrites the latter into an aggregate that was seen to ignore
    the second sort key, returning a different row from run to run.

    Either way the ranked rows are a :class:`~bqrepo.constructs.FirstPerGroup`:
    DuckDB runs them as one ``arg_min`` per series over ``row(-time, tiebreak)``
    (the windows cost it a sort of every row); the enclosing filter is
    the same on every engine.
    """
    outputs = [*keys, *value_columns]
    if tiebreak is None:
        rank = (
            sa.func.row_number()
            .over(partition_by=[latest.c[key] for key in keys], order_by=latest.c[time].desc())
            .label("_date_rank")
        )
        ranked_rows = first_per_group(
            sa.select(*(latest.c[name] for name in outputs), rank),
            "ranked",
            source=latest,
            where=None,
            partition_by=[latest.c[key] for key in keys],
            order_by=[latest.c[time].desc()],
            first_row={"_date_rank": sa.literal_column("1", sa.Integer())},
        )
        chosen: list[sa.ColumnElement[bool]] = [ranked_rows.c._date_rank == sa.literal_column("1", sa.Integer())]
    else:
        newest = sa.func.max(latest.c[time]).over(partition_by=[latest.c[key] for key in keys])
        first = sa.func.min(latest.c[tiebreak]).over(partition_by=[*(latest.c[key] for key in keys), latest.c[time]])
        ranked_rows = first_per_group(
            sa.select(
                *(latest.c[name] for name in _unique([*outputs, tiebreak])),
                newest.label("_newest_time"),
                first.label("_first_of_time"),
            ),
            "ranked",
            source=latest,
            where=None,
            partition_by=[latest.c[key] for key in keys],
            order_by=[latest.c[time].desc(), latest.c[tiebreak].asc()],
            first_row={"_newest_time": time, "_first_of_time": tiebreak},
        )
        chosen = [
            ranked_rows.c[time] == ranked_rows.c._newest_time,
            ranked_rows.c[tiebreak] == ranked_rows.c._first_of_time,
        ]
    return (
        sa.select(*(ranked_rows.c[name] for name in outputs))
        .where(*chosen)
        .order_by(*(ranked_rows.c[key] for key in keys))
    )


@lru_cache(maxsize=_CACHE_SIZE)
def latest_statement(table: sa.Table, columns: tuple[str, ...], filters: tuple[str, ...] = ()) -> sa.Select[Any]:
    """The newest row (greatest time, then smallest id) per series with ``time >= :since``, by series.

    ``filters`` are series columns restricted to a list (:func:`list_param`,
    ``IN UNNEST`` on BigQuery). Parameters: ``since``, one list per filter.
    """
    spec = declaration(table)
    inside, outside = _split(spec, filters)
    where = sa.and_(
        spec.time_column >= time_param(spec, "since"),
        *(in_list(table.c[column], list_param(column)) for column in inside),
    )
    tiebreak = "id" if _tiebreak(spec) else None
    values = [spec.time, *columns]
    read = _unique([*spec.series, *values, *outside, *([tiebreak] if tiebreak else [])])
    latest = deduplicated(spec, where, read)
    if outside:
        latest = (
            sa.select(*(latest.c[name] for name in read))
            .where(*(in_list(latest.c[column], list_param(column)) for column in outside))
            .subquery(f"filtered_{table.name}")
        )
    return newest_per(latest, spec.series, values, spec.time, tiebreak)


@lru_cache(maxsize=_CACHE_SIZE)
def series_statement(table: sa.Table, columns: tuple[str, ...]) -> sa.Select[Any]:
    """One series' rows with ``:start <= time < :end``, oldest first (then by id when times repeat).

    Parameters: ``start``, ``end``, one STRING per series column (:func:`equals_param`).
    """
    spec = declaration(table)
    inside, outside = _split(spec, spec.series)

    def equals(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
        return column == sa.bindparam(equals_param(name), type_=sa.String())

    tiebreak = _tiebreak(spec)
    values = [spec.time, *columns]
    read = _unique([*values, *outside, *(["id"] if tiebreak else [])])
    latest = deduplicated(spec, sa.and_(time_range(spec), *(equals(table.c[c], c) for c in inside)), read)
    statement = sa.select(*(latest.c[name] for name in values))
    for column in outside:
        statement = statement.where(equals(latest.c[column], column))
    order = [latest.c[spec.time], *([latest.c.id] if tiebreak else [])]
    return statement.order_by(*order)


# --- argument checks -----------------------------------------------------------


def bucket_spec(bucket: str | timedelta | BucketSpec) -> BucketSpec:
    """``bucket`` parsed and bounded, or :class:`InvalidArgumentError` naming it."""
    try:
        spec = BucketSpec.parse(bucket)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError("bucket", str(exc)) from None
    if spec.seconds is not None and spec.seconds > MAX_BUCKET_SECONDS:
        raise InvalidArgumentError(
            "bucket",
            f"{bucket!r} is wider than the TIMESTAMP range; a fixed bucket is 1 to {MAX_BUCKET_SECONDS:,} seconds",
        )
    return spec


def first_bucket(spec: BucketSpec, start: datetime) -> datetime:
    """The start of the bucket holding ``start``, which must itself be a TIMESTAMP."""
    try:
        return spec.floor(start)
    except OverflowError:
        raise InvalidArgumentError(
            "start",
            f"the {spec} bucket holding {start.isoformat()} begins before 0001-01-01, the first TIMESTAMP; "
            "start later or use a narrower bucket",
        ) from None


def bucket_starts(spec: BucketSpec, first: datetime, end: datetime) -> list[datetime]:
    """Every bucket start from ``first`` up to the last one before ``end``.

    The bucket after one that reaches past 9999-12-31 has no start a
    TIMESTAMP can hold (Python says OverflowError or ValueError): the list ends there.
    """
    starts: list[datetime] = []
    moment = first
    while moment < end:
        if len(starts) >= MAX_FILLED_BUCKETS:
            raise InvalidArgumentError(
                "fill_gaps",
                f"would return more than {MAX_FILLED_BUCKETS:,} buckets of {spec} "
                f"from {first.isoformat()} to {end.isoformat()}; use a wider bucket or a shorter range",
            )
        starts.append(moment)
        try:
            moment = spec.following(moment)
        except (OverflowError, ValueError):
            break
    return starts


def decay_window(
    half_life: timedelta, as_of: datetime | None, cutoff: timedelta | None
) -> tuple[datetime, datetime]:
    """``(as_of, window_start)`` of a decayed ranking, checked; ``as_of`` defaults to now.

    The default window is :data:`CUTOFF_HALF_LIVES` half-lives, clipped at
    0001-01-01; an explicit ``cutoff`` reaching before it is refused.
    """
    positive_timedelta("half_life", half_life)
    now = utc_now() if as_of is None else aware("as_of", as_of)
    if cutoff is None:
        try:
            return now, earlier(now, half_life * CUTOFF_HALF_LIVES)
        except OverflowError:  # ten half-lives exceed timedelta.max: all of history
            return now, TIMESTAMP_MIN
    positive_timedelta("cutoff", cutoff)
    if cutoff > now - TIMESTAMP_MIN:
        raise InvalidArgumentError(
            "cutoff",
            f"{cutoff} reaches before 0001-01-01, the first TIMESTAMP; "
            f"at most {(now - TIMESTAMP_MIN).days:,} days for as_of={now.isoformat()}",
        )
    return now, now - cutoff


def _instant(moment: date | datetime) -> datetime:
    """A DATE as midnight UTC, the instant the SQL buckets it as; a datetime as it is."""
    if isinstance(moment, datetime):
        return moment
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _is_number(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, (sa.Integer, sa.Numeric, sa.Float))


# --- the repository --------------------------------------------------------------


class TimeSeriesQueries(Protocol):
    """What a service needs from any declared time-series table; :class:`TimeSeriesRepository` implements it."""

    def rows(
        self,
        start: date | datetime,
        end: date | datetime,
        *,
        where: Mapping[str, str | None] | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]: ...

    def buckets(
        self,
        start: date | datetime,
        end: date | datetime,
        bucket: str | timedelta | BucketSpec = "DAY",
        *,
        value: str | None = None,
        aggregates: Sequence[Aggregate] = AGGREGATES,
        where: Mapping[str, str | None] | None = None,
        fill_gaps: bool = False,
    ) -> list[TimeBucket]: ...

    def ranking(
        self,
        key: str,
        *,
        weight: str | None = None,
        half_life: timedelta = timedelta(days=7),
        as_of: datetime | None = None,
        cutoff: timedelta | None = None,
        limit: int = 20,
    ) -> list[RankedValue]: ...

    def latest(
        self,
        *,
        since: date | datetime | None = None,
        series: Mapping[str, Iterable[str]] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]: ...

    def series(
        self,
        key: Mapping[str, str],
        start: date | datetime,
        end: date | datetime,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]: ...


class TimeSeriesRepository:
    """Read access to any table declared with :func:`bqrepo.timeseries.time_series`.

    Time ranges are half-open, ``start <= time < end``: ``datetime.date``
    values on a DATE time column, aware datetimes on a TIMESTAMP one. Every
    query reads the newest version of each id, so ingesting the same rows
    again changes no result.
    """

    def __init__(
        self,
        engine: Engine,
        table: sa.Table,
        writer: Any = None,
        *,
        maximum_bytes_billed: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.spec = declaration(table)
        self.writer = writer
        #: The bytes limit and labels of this repository's jobs (:mod:`bqrepo.cost`);
        #: ``maximum_bytes_billed=None`` takes ``BQREPO_MAXIMUM_BYTES_BILLED``.
        self.cost = CostGuard(
            "time_series_repository", table.name, maximum_bytes_billed=maximum_bytes_billed, labels=labels
        )

    @property
    def statements(self) -> Mapping[str, sa.Select[Any]]:
        """The default shape of each statement, for users' own compile tests (others via the ``*_statement`` builders)."""
        spec = self.spec
        found = {
            "rows": rows_statement(self.table),
            "buckets": buckets_statement(self.table, BucketSpec.parse("DAY"), None, (("count", "count"),)),
            "latest": latest_statement(self.table, tuple(self._value_columns())),
            "series": series_statement(self.table, tuple(self._value_columns())),
        }
        if not spec.is_date:
            found["ranking"] = ranking_statement(self.table, spec.series[0] if spec.series else spec.key[0])
        return MappingProxyType(found)

    # --- argument checks ---

    def _time(self, name: str, value: date | datetime) -> Any:
        if self.spec.is_date:
            return plain_date(name, value)
        return aware(name, value)  # type: ignore[arg-type]

    def _column(self, argument: str, name: Any) -> sa.Column[Any]:
        if not isinstance(name, str) or name not in self.table.c:
            raise InvalidArgumentError(
                argument, f"{name!r} is not a column of {self.table.name!r} (columns: {', '.join(self.table.c.keys())})"
            )
        return self.table.c[name]

    def _string_column(self, argument: str, name: str) -> None:
        """Filter values travel as STRING parameters: a column of another type cannot be compared to one."""
        if not isinstance(self._column(argument, name).type, sa.String):
            raise InvalidArgumentError(argument, f"column {name!r} is not a STRING column; only those can be filtered")

    def _filters(self, where: Mapping[str, str | None] | None) -> dict[str, str | None]:
        """Equality filters: STRING columns only, values as STRING or None (no filter)."""
        if where is None:
            return {}
        if not isinstance(where, Mapping):
            raise InvalidArgumentError("where", f"must be a mapping of column to str or None, got {type(where).__name__}")
        checked: dict[str, str | None] = {}
        for name, value in where.items():
            self._string_column("where", name)
            checked[name] = optional_text(f"where[{name!r}]", value)
        return checked

    def _value_columns(self) -> list[str]:
        hidden = {"id", self.spec.time, self.spec.version, *self.spec.series}
        return [column.name for column in self.table.columns if column.name not in hidden]

    def _columns(self, columns: Sequence[str] | None) -> tuple[str, ...]:
        if columns is None:
            return tuple(self._value_columns())
        if isinstance(columns, str) or not isinstance(columns, Sequence):
            raise InvalidArgumentError("columns", f"must be a list of column names, got {type(columns).__name__}")
        taken = {self.spec.time, *self.spec.series}
        for name in columns:
            self._column("columns", name)
            if name in taken:
                raise InvalidArgumentError("columns", f"{name!r} is returned anyway (time or series column)")
        return tuple(_unique(columns))

    def _dicts(self, fetched: Fetched) -> list[dict[str, Any]]:
        """``fetched`` rows as dicts, datetimes aware in UTC and JSON parsed."""
        return self._converted(fetched).dicts()

    def _converted(self, fetched: Fetched) -> Fetched:
        """``fetched`` with datetimes aware in UTC and JSON parsed.

        The conversion of each column is looked up once per result, not per
        value: on a small table this loop is most of a call's Python time.
        """
        rows, keys = fetched.rows, fetched.keys
        converters = [(index, converter) for index, key in enumerate(keys) if (converter := self._converter(key))]
        if not rows or not converters:
            return fetched
        found = []
        for row in rows:
            values = list(row)
            for index, converter in converters:
                values[index] = converter(values[index])
            found.append(tuple(values))
        return Fetched(keys, found)

    def _converter(self, name: str) -> Callable[[Any], Any] | None:
        column = self.table.c.get(name)
        if column is None:
            return None
        if isinstance(column.type, sa.DateTime):
            return utc
        if isinstance(column.type, sa.JSON):
            return json_value
        return None

    # --- queries ---

    @guarded
    def rows(
        self,
        start: date | datetime,
        end: date | datetime,
        *,
        where: Mapping[str, str | None] | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        """Rows with ``start <= time < end``, newest first (or oldest), ties by id, at most ``limit``.

        ``where`` maps STRING columns to a value they must equal (``None``:
        no filter on that column). Datetimes come back aware in UTC, JSON parsed.
        """
        return self.row_values(start, end, where=where, limit=limit, newest_first=newest_first).dicts()

    def row_values(
        self,
        start: date | datetime,
        end: date | datetime,
        *,
        where: Mapping[str, str | None] | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> Fetched:
        """:meth:`rows` as tuples with their column names, for a result class built positionally."""
        params: dict[str, Any] = {"start": self._time("start", start), "end": self._time("end", end)}
        filters = self._filters(where)
        params.update({equals_param(name): value for name, value in filters.items()})
        params["limit"] = positive_int("limit", limit)
        if not isinstance(newest_first, bool):
            raise InvalidArgumentError("newest_first", f"must be a bool, got {type(newest_first).__name__}")
        statement = rows_statement(self.table, tuple(filters), newest_first)
        return self._converted(run_statement(self.engine, statement, params, self.cost, "rows"))

    @guarded
    def buckets(
        self,
        start: date | datetime,
        end: date | datetime,
        bucket: str | timedelta | BucketSpec = "DAY",
        *,
        value: str | None = None,
        aggregates: Sequence[Aggregate] = AGGREGATES,
        where: Mapping[str, str | None] | None = None,
        fill_gaps: bool = False,
    ) -> list[TimeBucket]:
        """``aggregates`` of ``value`` per bucket of rows with ``start <= time < end``, oldest bucket first.

        Buckets are aligned to the epoch (fixed widths) or to UTC calendar
        units (:mod:`bqrepo.constructs`), not to ``start``. ``value=None``
        allows only ``count``. With ``fill_gaps`` every bucket overlapping
        the range is returned, empty ones with ``count=0`` and ``None`` for
        the rest. On a DATE table widths are whole days or calendar units
        and ``bucket_start`` is a ``date``.
        """
        if isinstance(aggregates, str) or not isinstance(aggregates, Sequence) or not aggregates:
            raise InvalidArgumentError("aggregates", f"must be a non-empty list of {AGGREGATES}, got {aggregates!r}")
        for name in aggregates:
            if name not in AGGREGATES:
                raise InvalidArgumentError("aggregates", f"{name!r} is not one of {AGGREGATES}")
        if value is None:
            if set(aggregates) != {"count"}:
                raise InvalidArgumentError("value", "is required for aggregates other than 'count'")
        elif not _is_number(self._column("value", value)):
            raise InvalidArgumentError("value", f"column {value!r} is not numeric")
        chosen = tuple((name, name) for name in _unique(aggregates))
        found = self.aggregate_buckets(
            start, end, bucket, value=value, aggregates=chosen, where=where, fill_gaps=fill_gaps  # type: ignore[arg-type]
        )
        return [TimeBucket(**row) for row in found]

    @guarded
    def aggregate_buckets(
        self,
        start: date | datetime,
        end: date | datetime,
        bucket: str | timedelta | BucketSpec,
        *,
        value: str | None,
        aggregates: tuple[tuple[Aggregate, str], ...],
        where: Mapping[str, str | None] | None,
        fill_gaps: bool,
    ) -> list[dict[str, Any]]:
        """:meth:`buckets` with result labels of the caller's choice (the typed faces' SQL names).

        Each row is a dict of ``bucket_start`` and the labels; the gaps are
        filled in Python from the same bucket arithmetic
        (:meth:`BucketSpec.floor`), since empty buckets carry no data worth
        a query. Aggregates are checked by :meth:`buckets`.
        """
        keys = ("bucket_start", *(label for _name, label in aggregates))
        rows = self.bucket_rows(start, end, bucket, value=value, aggregates=aggregates, where=where, fill_gaps=fill_gaps)
        return [dict(zip(keys, row)) for row in rows]

    def bucket_rows(
        self,
        start: date | datetime,
        end: date | datetime,
        bucket: str | timedelta | BucketSpec,
        *,
        value: str | None,
        aggregates: tuple[tuple[Aggregate, str], ...],
        where: Mapping[str, str | None] | None,
        fill_gaps: bool,
    ) -> list[tuple[Any, ...]]:
        """:meth:`aggregate_buckets` as tuples ``(bucket_start, *aggregates)``, for a result class built positionally."""
        spec = bucket_spec(bucket)
        start, end = self._time("start", start), self._time("end", end)
        filters = self._filters(where)
        if not isinstance(fill_gaps, bool):
            raise InvalidArgumentError("fill_gaps", f"must be a bool, got {type(fill_gaps).__name__}")
        if self.spec.is_date and spec.seconds is not None and spec.seconds % 86400:
            raise InvalidArgumentError("bucket", f"{bucket!r} is finer than a day; {self.table.name!r} holds dates")
        if start >= end:
            return []
        moment_start, moment_end = _instant(start), _instant(end)
        first = first_bucket(spec, moment_start)
        expected = bucket_starts(spec, first, moment_end) if fill_gaps else []
        params: dict[str, Any] = {"start": start, "end": end}
        params.update({equals_param(name): text for name, text in filters.items()})
        statement = buckets_statement(self.table, spec, value, aggregates, tuple(filters))
        rows = run_statement(self.engine, statement, params, self.cost, "buckets")
        counts = [index for index, (name, _label) in enumerate(aggregates, 1) if name == "count"]
        averages = [index for index, (name, _label) in enumerate(aggregates, 1) if name == "avg"]
        found: list[tuple[Any, ...]] = []
        for row in rows:
            item = list(row)
            item[0] = utc(item[0])
            for index in counts:
                item[index] = int(item[index])
            for index in averages:
                if item[index] is not None:
                    item[index] = float(item[index])
            found.append(tuple(item))
        if fill_gaps:
            by_start = {item[0]: item for item in found}
            if unexpected := by_start.keys() - set(expected):
                # The SQL and the Python bucket arithmetic disagree: a bug, never data to drop.
                raise RuntimeError(f"buckets returned starts {sorted(unexpected)} that {spec} does not predict")
            empty = tuple(0 if name == "count" else None for name, _label in aggregates)
            found = [by_start.get(moment) or (moment, *empty) for moment in expected]
        if self.spec.is_date:
            found = [(item[0].date(), *item[1:]) for item in found]
        return found

    @guarded
    def ranking(
        self,
        key: str,
        *,
        weight: str | None = None,
        half_life: timedelta = timedelta(days=7),
        as_of: datetime | None = None,
        cutoff: timedelta | None = None,
        limit: int = 20,
    ) -> list[RankedValue]:
        """The ``limit`` values of ``key`` with the highest decayed score, highest first (ties by value).

        score = sum over rows of exp(-ln 2 * (as_of - time) / half_life),
        each term multiplied by the row's ``weight`` column when given (a
        NULL weight adds nothing). Rows with ``as_of - cutoff <= time <=
        as_of`` are scanned (default: 10 half-lives); ``as_of`` defaults to
        now and is always a parameter, so results are reproducible.

        TIMESTAMP time columns only: a DATE has no time of day, so an age in
        seconds would depend on a convention (midnight of which zone?) the
        data does not carry; rank daily data with :meth:`buckets` instead.
        """
        if self.spec.is_date:
            raise InvalidArgumentError(
                "key", f"ranking needs a TIMESTAMP time column; {self.table.name!r}.{self.spec.time} is a DATE"
            )
        if isinstance(self._column("key", key).type, sa.JSON):
            raise InvalidArgumentError("key", f"column {key!r} is JSON, which cannot be grouped")
        if weight is not None and not _is_number(self._column("weight", weight)):
            raise InvalidArgumentError("weight", f"column {weight!r} is not numeric")
        now, window_start = decay_window(half_life, as_of, cutoff)
        params = {
            "as_of": now,
            "window_start": window_start,
            "half_life_seconds": half_life.total_seconds(),
            "limit": positive_int("limit", limit),
        }
        rows = run_statement(self.engine, ranking_statement(self.table, key, weight), params, self.cost, "ranking")
        return [RankedValue(value, float(score), int(count)) for value, score, count in rows]

    @guarded
    def latest(
        self,
        *,
        since: date | datetime | None = None,
        series: Mapping[str, Iterable[str]] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The newest row (``time >= since``) of each series, by series; ties in time go to the smallest id.

        ``series`` restricts series columns to lists of values (an empty
        list matches nothing). Each dict holds the series columns, the time
        column and ``columns`` (default: every column but id, version,
        time and series).
        """
        if since is None:
            since = ALL_HISTORY if self.spec.is_date else TIMESTAMP_MIN
        params: dict[str, Any] = {"since": self._time("since", since)}
        chosen = self._columns(columns)
        filters: dict[str, list[str]] = {}
        if series is not None:
            if not isinstance(series, Mapping):
                raise InvalidArgumentError("series", f"must be a mapping of series column to values, got {type(series).__name__}")
            for name, values in series.items():
                if name not in self.spec.series:
                    raise InvalidArgumentError(
                        "series", f"{name!r} is not a series column of {self.table.name!r} ({', '.join(self.spec.series)})"
                    )
                self._string_column("series", name)
                filters[name] = text_list(f"series[{name!r}]", values)
        if any(not values for values in filters.values()):
            return []
        ordered = tuple(name for name in self.spec.series if name in filters)
        params.update({list_param(name): filters[name] for name in ordered})
        statement = latest_statement(self.table, chosen, ordered)
        return self._dicts(run_statement(self.engine, statement, params, self.cost, "latest"))

    @guarded
    def series(
        self,
        key: Mapping[str, str],
        start: date | datetime,
        end: date | datetime,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """One series' rows with ``start <= time < end``, oldest first (ties by id).

        ``key`` gives a value for every series column. Each dict holds the
        time column and ``columns`` (default as in :meth:`latest`).
        """
        if not isinstance(key, Mapping) or set(key) != set(self.spec.series):
            raise InvalidArgumentError(
                "key", f"must map exactly the series columns ({', '.join(self.spec.series)}) to values, got {key!r}"
            )
        for name in self.spec.series:
            self._string_column("key", name)
        params: dict[str, Any] = {equals_param(name): text(f"key[{name!r}]", key[name]) for name in self.spec.series}
        params["start"] = self._time("start", start)
        params["end"] = self._time("end", end)
        chosen = self._columns(columns)
        return self._dicts(run_statement(self.engine, series_statement(self.table, chosen), params, self.cost, "series"))

