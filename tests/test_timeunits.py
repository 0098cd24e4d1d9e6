"""bqrepo.timeunits: calendar floors and boundaries, the partition a value lands in, clipping.

Floors are checked against DuckDB's ``date_trunc`` on UTC wall-clock values
(the arithmetic the engines do), partitions against the floors, and the
Python checksum fold against the SQL one on the BigQuery stand-in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, get_args

import duckdb
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from bqrepo import migrate
from bqrepo.checksum import Checksum, checksums
from bqrepo.engine import bigquery_client, create_engine
from bqrepo.settings import Settings
from bqrepo.timeunits import (
    FIRST_PARTITIONED_DAY,
    GRANULARITIES,
    LAST_PARTITIONED_DAY,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    UNPARTITIONED,
    TimeUnit,
    earlier,
    floor,
    following,
    later,
    partition_of,
)

UNITS: tuple[TimeUnit, ...] = get_args(TimeUnit)
DAY_UNITS = tuple(unit for unit in UNITS if unit != "HOUR")
ZONES = [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]

# Away from year 1 and 9999, where the next boundary does not exist.
days = st.dates(dt.date(1800, 1, 1), dt.date(2400, 12, 31))
instants = st.builds(
    lambda naive, zone: naive.replace(tzinfo=dt.UTC).astimezone(zone),
    st.datetimes(dt.datetime(1800, 1, 1), dt.datetime(2400, 12, 31)),
    st.sampled_from(ZONES),
)


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def _trunc(duck: duckdb.DuckDBPyConnection, unit: str, value: dt.date | dt.datetime) -> Any:
    """DuckDB's ``date_trunc`` of a date, or of an aware instant's UTC wall-clock time (back in UTC)."""
    if isinstance(value, dt.datetime):
        naive = value.astimezone(dt.UTC).replace(tzinfo=None)
        (found,) = duck.execute("SELECT date_trunc(?, CAST(? AS TIMESTAMP))", [unit.lower(), naive]).fetchone()  # type: ignore[misc]
        return found.replace(tzinfo=dt.UTC)
    (found,) = duck.execute("SELECT CAST(date_trunc(?, CAST(? AS DATE)) AS DATE)", [unit.lower(), value]).fetchone()  # type: ignore[misc]
    return found


@settings(max_examples=300, deadline=None)
@given(value=days, unit=st.sampled_from(DAY_UNITS))
def test_a_day_lies_in_its_unit(value: dt.date, unit: TimeUnit) -> None:
    start, end = floor(value, unit), following(value, unit)
    assert type(start) is type(end) is dt.date
    assert start <= value < end
    assert floor(start, unit) == start and floor(end, unit) == end  # both are boundaries
    assert floor(end - dt.timedelta(days=1), unit) == start  # and nothing lies between them


@settings(max_examples=300, deadline=None)
@given(value=instants, unit=st.sampled_from(UNITS))
def test_an_instant_lies_in_its_unit_in_utc(value: dt.datetime, unit: TimeUnit) -> None:
    start, end = floor(value, unit), following(value, unit)
    assert start.utcoffset() == end.utcoffset() == dt.timedelta(0)
    assert start <= value < end
    assert floor(start, unit) == start and floor(end, unit) == end
    assert floor(end - dt.timedelta(microseconds=1), unit) == start


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(days, instants), unit=st.sampled_from(UNITS))
def test_floor_is_what_duckdb_truncates_to(duck: duckdb.DuckDBPyConnection, value: Any, unit: TimeUnit) -> None:
    if unit == "HOUR" and not isinstance(value, dt.datetime):
        with pytest.raises(ValueError, match="no hours"):
            floor(value, unit)
        return
    assert floor(value, unit) == _trunc(duck, unit, value)


@settings(max_examples=200, deadline=None)
@given(first=st.one_of(days, instants), second=st.one_of(days, instants), granularity=st.sampled_from(GRANULARITIES))
def test_two_values_share_a_partition_when_duckdb_truncates_them_alike(
    duck: duckdb.DuckDBPyConnection, first: Any, second: Any, granularity: str
) -> None:
    # The partition of a value is the partition of its truncation; inside the
    # partitioned days two values share one exactly when they truncate alike.
    unit = "DAY" if granularity == "HOUR" and not isinstance(first, dt.datetime) else granularity
    truncated = _trunc(duck, unit, first)
    assert partition_of(truncated, granularity) == partition_of(first, granularity)
    if type(first) is not type(second) or partition_of(first, granularity) == UNPARTITIONED:
        return
    alike = truncated == _trunc(duck, unit, second)
    assert (partition_of(first, granularity) == partition_of(second, granularity)) == alike


def test_partitioned_days_are_1960_to_2159_in_utc() -> None:
    assert (FIRST_PARTITIONED_DAY, LAST_PARTITIONED_DAY) == (dt.date(1960, 1, 1), dt.date(2159, 12, 31))
    last_instant = dt.datetime(2159, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    for granularity in GRANULARITIES:
        assert partition_of(dt.date(1959, 12, 31), granularity) == UNPARTITIONED
        assert partition_of(dt.date(2160, 1, 1), granularity) == UNPARTITIONED
        assert partition_of(FIRST_PARTITIONED_DAY, granularity) != UNPARTITIONED
        assert partition_of(LAST_PARTITIONED_DAY, granularity) != UNPARTITIONED
        assert partition_of(last_instant, granularity) != UNPARTITIONED
        assert partition_of(last_instant + dt.timedelta(microseconds=1), granularity) == UNPARTITIONED
        # 01:00 at +02:00 is 23:00 UTC the day before: BigQuery partitions in UTC.
        assert partition_of(dt.datetime(1960, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))), granularity) == UNPARTITIONED
        assert partition_of(None, granularity) is None
    assert partition_of(dt.date(1960, 1, 1), "HOUR") == dt.date(1960, 1, 1)  # a DATE has no hours


def test_calendar_edges() -> None:
    assert following(dt.date(2023, 12, 15), "MONTH") == dt.date(2024, 1, 1)
    assert following(dt.date(2024, 11, 30), "QUARTER") == dt.date(2025, 1, 1)
    assert floor(dt.date(2023, 12, 31), "WEEK") == dt.date(2023, 12, 25)  # Sunday to Monday
    assert floor(dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), "MONTH") == dt.datetime(
        2024, 2, 1, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="naive"):
        floor(dt.datetime(2024, 1, 1), "DAY")


def test_earlier_and_later_clip_at_the_timestamp_range() -> None:
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert earlier(moment, dt.timedelta(days=1)) == dt.datetime(2023, 12, 31, tzinfo=dt.UTC)
    assert later(moment, dt.timedelta(days=1)) == dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    assert earlier(moment, dt.timedelta.max) == TIMESTAMP_MIN
    assert later(moment, dt.timedelta.max) == TIMESTAMP_MAX


def test_python_checksum_folds_like_the_sql_one(bigquery_settings: Settings) -> None:
    """The back-fill's fold (Python) and the rebuild's (SQL) give one value for one set of rows."""
    migrate.upgrade(bigquery_settings)
    dataset = bigquery_settings.bigquery_dataset
    client = bigquery_client(bigquery_settings)
    client.query(
        f"CREATE TABLE `{bigquery_settings.bigquery_project}.{dataset}.folded` AS "
        "SELECT i AS n, CONCAT('row ', CAST(i AS STRING)) AS s FROM UNNEST(GENERATE_ARRAY(1, 300)) AS i "
        "UNION ALL SELECT 7, 'row 7'"
    ).result()
    t = sa.table("folded", sa.column("n"), sa.column("s"), schema=dataset).alias("t")
    engine = create_engine(bigquery_settings)
    try:
        with engine.connect() as connection:
            in_sql = tuple(connection.execute(sa.select(*checksums(t))).one())
            texts = connection.execute(sa.select(sa.func.to_json_string(t.table_valued()))).scalars().all()
    finally:
        engine.dispose()
    folded = Checksum()
    for text in texts:
        folded.add(text)
    assert in_sql == folded.values() and folded.rows == 301
