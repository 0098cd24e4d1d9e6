"""The portable constructs: bucket specs, compiled SQL per dialect, and identical answers on every engine.

Bucket starts and elapsed seconds are computed on DuckDB, on the BigQuery
stand-in and on PostgreSQL 15 for awkward timestamps (pre-1970, exact
boundaries, a microsecond either side, Sundays/Mondays, month ends) and
compared with plain Python arithmetic written here.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import CompileError

from bqrepo.compile import bigquery_dialect, compile_bigquery
from bqrepo.constructs import BucketSpec, CalendarBucket, FixedBucket, seconds_between, time_bucket
from bqrepo.engine import create_engine
from bqrepo.settings import Settings

TS = sa.TIMESTAMP(timezone=True)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- BucketSpec ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DAY", BucketSpec(seconds=86400)),
        ("day", BucketSpec(seconds=86400)),
        ("HOUR", BucketSpec(seconds=3600)),
        ("6 hours", BucketSpec(seconds=21600)),
        ("15 minutes", BucketSpec(seconds=900)),
        ("2 days", BucketSpec(seconds=172800)),
        ("90 seconds", BucketSpec(seconds=90)),
        (timedelta(hours=6), BucketSpec(seconds=21600)),
        (timedelta(days=1, seconds=1), BucketSpec(seconds=86401)),
        ("WEEK", BucketSpec(unit="WEEK")),
        ("1 week", BucketSpec(unit="WEEK")),
        ("month", BucketSpec(unit="MONTH")),
        ("QUARTER", BucketSpec(unit="QUARTER")),
        ("YEAR", BucketSpec(unit="YEAR")),
    ],
)
def test_bucket_spec_parse(text: Any, expected: BucketSpec) -> None:
    assert BucketSpec.parse(text) == expected
    assert BucketSpec.parse(expected) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fortnight", "unknown unit"),
        ("2 weeks", "calendar units take no count"),
        ("0 hours", "positive"),
        ("6 hours; DROP TABLE events", "not understood"),
        ("-1 day", "not understood"),
        (timedelta(0), "positive"),
        (timedelta(milliseconds=1500), "whole number of seconds"),
        (timedelta(hours=-1), "positive"),
    ],
)
def test_bucket_spec_rejects(text: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BucketSpec.parse(text)


def test_bucket_spec_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="str, timedelta or BucketSpec"):
        BucketSpec.parse(3600)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        BucketSpec()
    with pytest.raises(ValueError, match="calendar bucket unit"):
        BucketSpec(unit="DAY")  # type: ignore[arg-type]


def test_floor_and_following_in_python() -> None:
    sunday = datetime(2024, 3, 10, 23, 59, 59, 999999, tzinfo=UTC)
    assert BucketSpec.parse("WEEK").floor(sunday) == datetime(2024, 3, 4, tzinfo=UTC)
    assert BucketSpec.parse("6 hours").floor(sunday) == datetime(2024, 3, 10, 18, tzinfo=UTC)
    assert BucketSpec.parse("QUARTER").floor(sunday) == datetime(2024, 1, 1, tzinfo=UTC)
    assert BucketSpec.parse("MONTH").following(datetime(2024, 12, 1, tzinfo=UTC)) == datetime(2025, 1, 1, tzinfo=UTC)
    assert BucketSpec.parse("QUARTER").following(datetime(2024, 10, 1, tzinfo=UTC)) == datetime(2025, 1, 1, tzinfo=UTC)
    # Another zone is converted, not reinterpreted.
    caracas = datetime(2024, 3, 10, 22, 0, tzinfo=timezone_minus_4())
    assert BucketSpec.parse("DAY").floor(caracas) == datetime(2024, 3, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        BucketSpec.parse("DAY").floor(datetime(2024, 1, 1))


def timezone_minus_4() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=-4))


# --- compiled SQL ------------------------------------------------------------------------


def _sql(expression: Any, dialect: Any) -> str:
    return str(sa.select(expression.label("x")).compile(dialect=dialect))


def test_bigquery_sql() -> None:
    ts = sa.column("ts", TS)
    d = bigquery_dialect()
    assert "TIMESTAMP_BUCKET(`ts`, INTERVAL 6 HOUR, TIMESTAMP '1970-01-01 00:00:00+00')" in _sql(time_bucket(ts, "6 hours"), d)
    assert "INTERVAL 24 HOUR" in _sql(time_bucket(ts, "DAY"), d)
    assert "INTERVAL 15 MINUTE" in _sql(time_bucket(ts, "15 minutes"), d)
    assert "INTERVAL 90 SECOND" in _sql(time_bucket(ts, "90 seconds"), d)
    assert "TIMESTAMP_TRUNC(`ts`, WEEK(MONDAY), 'UTC')" in _sql(time_bucket(ts, "WEEK"), d)
    assert "TIMESTAMP_TRUNC(`ts`, MONTH, 'UTC')" in _sql(time_bucket(ts, "MONTH"), d)
    assert "(TIMESTAMP_DIFF(`ts`, `ts`, MICROSECOND) / 1000000)" in _sql(seconds_between(ts, ts), d)
    for bucket in ("6 hours", "WEEK", "YEAR"):
        sqlglot.parse_one(compile_bigquery(sa.select(time_bucket(ts, bucket))).sql, read="bigquery")


def test_duckdb_and_postgresql_sql() -> None:
    ts = sa.column("ts", TS)
    duck = sa.create_engine("duckdb:///:memory:").dialect
    assert "epoch_us(CAST(ts AS TIMESTAMPTZ)) % 21600000000" in _sql(time_bucket(ts, "6 hours"), duck)
    assert "date_trunc('week', make_timestamp(epoch_us(CAST(ts AS TIMESTAMPTZ))))" in _sql(time_bucket(ts, "WEEK"), duck)
    assert "epoch_us(CAST(ts AS TIMESTAMPTZ)) - epoch_us" in _sql(seconds_between(ts, ts), duck)
    pg = postgresql.dialect()
    assert "date_bin(INTERVAL '21600 seconds', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00')" in _sql(time_bucket(ts, "6 hours"), pg)
    assert "date_trunc('month', (ts) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'" in _sql(time_bucket(ts, "MONTH"), pg)


@pytest.mark.parametrize("construct", [FixedBucket(sa.column("ts", TS), 60), CalendarBucket(sa.column("ts", TS), "WEEK"), seconds_between(sa.column("a", TS), sa.column("b", TS))])
def test_other_dialects_fail_clearly(construct: Any) -> None:
    with pytest.raises(CompileError, match=f"{type(construct).__name__} has no compile function for the 'sqlite' dialect"):
        _sql(construct, sqlite.dialect())


def test_cache_key_tells_widths_apart() -> None:
    ts = sa.column("ts", TS)
    assert time_bucket(ts, "6 hours")._generate_cache_key() != time_bucket(ts, "DAY")._generate_cache_key()
    assert time_bucket(ts, "DAY")._generate_cache_key() == time_bucket(ts, "24 hours")._generate_cache_key()
    assert time_bucket(ts, "WEEK")._generate_cache_key() != time_bucket(ts, "MONTH")._generate_cache_key()


def test_from_objects_come_from_the_wrapped_column() -> None:
    table = sa.table("events", sa.column("mentioned_at", TS))
    assert "FROM `events`" in str(sa.select(time_bucket(table.c.mentioned_at, "DAY")).compile(dialect=bigquery_dialect()))


# --- the same answers on every engine ------------------------------------------------------

SPECS = ["DAY", "6 hours", "15 minutes", "90 seconds", "7 days", "WEEK", "MONTH", "QUARTER", "YEAR"]


def _moments() -> list[datetime]:
    rng = random.Random(7)
    exact = [
        datetime(2024, 3, 4, tzinfo=UTC),
        datetime(2024, 3, 10, 23, 45, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        datetime(1965, 7, 14, 10, 11, 12, 131415, tzinfo=UTC),
        EPOCH,
    ]
    moments = [m + timedelta(microseconds=d) for m in exact for d in (-1, 0, 1)]
    moments += [EPOCH + timedelta(microseconds=rng.randrange(-10**15, 2 * 10**15)) for _ in range(30)]
    return moments


MOMENTS = _moments()


def _python_bucket(moment: datetime, spec: str) -> datetime:
    """Independent of BucketSpec: integer microsecond floors and date arithmetic."""
    widths = {"DAY": 86400, "6 hours": 21600, "15 minutes": 900, "90 seconds": 90, "7 days": 604800}
    if spec in widths:
        micros = (moment - EPOCH) // timedelta(microseconds=1)
        width = widths[spec] * 10**6
        return EPOCH + timedelta(microseconds=micros // width * width)
    day = moment.date()
    if spec == "WEEK":
        day = day - timedelta(days=day.weekday())
    elif spec == "MONTH":
        day = day.replace(day=1)
    elif spec == "QUARTER":
        day = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    else:
        day = day.replace(month=1, day=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _bucket_query(spec: str) -> sa.Select[Any]:
    return sa.select(*(time_bucket(sa.bindparam(f"t{i}", type_=TS), spec).label(f"b{i}") for i in range(len(MOMENTS))))


PAIRS = [
    (datetime(2024, 1, 1, 0, 0, 0, 100000, tzinfo=UTC), datetime(2023, 12, 31, 23, 59, 59, 900000, tzinfo=UTC)),
    (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
    (datetime(2024, 3, 20, 9, 30, 0, 123456, tzinfo=UTC), datetime(2021, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)),
    (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)),
]


def _diff_query() -> sa.Select[Any]:
    return sa.select(
        *(
            seconds_between(sa.bindparam(f"a{i}", type_=TS), sa.bindparam(f"b{i}", type_=TS)).label(f"d{i}")
            for i in range(len(PAIRS))
        )
    )


def _check_engine(engine: sa.Engine) -> None:
    params = {f"t{i}": m for i, m in enumerate(MOMENTS)}
    with engine.connect() as connection:
        for spec in SPECS:
            row = connection.execute(_bucket_query(spec), params).one()
            got = [value.astimezone(UTC) for value in row]
            expected = [_python_bucket(m, spec) for m in MOMENTS]
            assert got == expected, spec
        pair_params = {f"a{i}": a for i, (a, _) in enumerate(PAIRS)} | {f"b{i}": b for i, (_, b) in enumerate(PAIRS)}
        row = connection.execute(_diff_query(), pair_params).one()
        assert list(row) == [(a - b) / timedelta(microseconds=1) / 1e6 for a, b in PAIRS]


def test_same_answers_on_duckdb(duckdb_settings: Settings) -> None:
    _check_engine(create_engine(duckdb_settings))


@pytest.mark.bigquery
def test_same_answers_on_the_bigquery_standin(bigquery_settings: Settings) -> None:
    from bqrepo.migrate import upgrade

    upgrade(bigquery_settings)  # creates the dataset the engine defaults to
    _check_engine(create_engine(bigquery_settings))


def test_same_answers_on_postgresql(legacy_postgres: Any) -> None:
    server, _counts = legacy_postgres
    engine = sa.create_engine(server.url)
    try:
        _check_engine(engine)
    finally:
        engine.dispose()


# --- FirstPerGroup ------------------------------------------------------------------------

_VERSIONS: dict[str, tuple[sa.types.TypeEngine[Any], list[Any]]] = {
    # Each list runs from the oldest version to the newest; None sorts before all of them.
    "integer": (sa.BigInteger(), [-(2**63), -1, 0, 2**63 - 1]),
    "date": (sa.Date(), [date(1, 1, 1), date(1969, 12, 31), date(1970, 1, 1), date(9999, 12, 31)]),
    "timestamp": (
        TS,
        [datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         EPOCH, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
    ),
}


@pytest.mark.parametrize("kind", list(_VERSIONS))
def test_first_per_group_on_duckdb_keeps_the_newest_non_null_version(kind: str, duckdb_settings: Settings) -> None:
    """The aggregate form (arg_min over a NULL-free key) picks what ``version DESC NULLS LAST`` picks,
    at the ends of each type's range and for ids whose only versions are NULL."""
    from bqrepo.repositories._dedup import latest_versions

    version_type, values = _VERSIONS[kind]
    table = sa.Table(
        "versions", sa.MetaData(),
        sa.Column("id", sa.String, nullable=False), sa.Column("at", sa.Integer, nullable=False),
        sa.Column("version", version_type), sa.Column("payload", sa.String),
    )
    rows = [{"id": "only-null", "version": None, "payload": "only-null"}]
    for index, value in enumerate(values):
        rows += [
            {"id": f"beats-null-{index}", "version": value, "payload": "newest"},
            {"id": f"beats-null-{index}", "version": None, "payload": "null"},
            {"id": f"beats-older-{index}", "version": value, "payload": "newest"},
            *({"id": f"beats-older-{index}", "version": older, "payload": "older"} for older in values[:index]),
        ]
    engine = create_engine(duckdb_settings)
    try:
        with engine.begin() as connection:
            table.create(connection)
            connection.execute(table.insert(), [{"at": 1, **row} for row in rows])
        latest = latest_versions(table, table.c.at >= sa.bindparam("since", type_=sa.Integer()), [table.c.version.desc().nulls_last()])
        statement = sa.select(latest.c.id, latest.c.payload)
        assert "arg_min" in str(statement.compile(dialect=engine.dialect))
        with engine.connect() as connection:
            found = dict(connection.execute(statement, {"since": 0}).all())
    finally:
        engine.dispose()
    expected = {row["id"]: "newest" for row in rows}
    expected["only-null"] = "only-null"
    assert found == expected


def test_first_per_group_keeps_the_window_where_no_null_free_key_exists() -> None:
    """A descending string key has no arithmetic reverse: DuckDB keeps the portable window form."""
    from bqrepo.repositories._dedup import latest_versions

    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.String, nullable=False), sa.Column("name", sa.String, nullable=False))
    latest = latest_versions(table, table.c.name >= sa.bindparam("low", type_=sa.String()), [table.c.name.desc()])
    duck = str(sa.select(latest.c.id).compile(dialect=sa.create_engine("duckdb:///:memory:").dialect))
    assert "row_number() OVER" in duck and "arg_min" not in duck
