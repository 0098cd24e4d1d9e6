"""Writers on real engines: DuckDB files and the local BigQuery stand-in.

Every test reads back with a plain ``sa.select`` and compares with the rows
written, value for value (timestamps to the microsecond, floats exactly,
JSON metadata structurally).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from bqrepo import schema
from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.rows import (
    ComtradeObservation,
    EntityMentionRow,
    EventRow,
    FredObservation,
    Row,
    WorldBankObservation,
)
from bqrepo.settings import Settings
from bqrepo.table_options import TableOptions
from bqrepo.testing.standin import LocalBigQuery
from bqrepo.writers import (
    AutoBigQueryWriter,
    BigQueryLoadWriter,
    BigQueryStreamWriter,
    BigQueryTarget,
    DuckDBWriter,
    Writer,
    WriteResult,
    writer_for,
)
from bqrepo.repositories import EventRepository, FredRepository
from bqrepo.writers.bigquery_load import UNPARTITIONED, partition_key
from bqrepo.writers.bigquery_stream import insert_id

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
INJECTION = "x'); DROP TABLE events; -- \" `t` \\ %(p)s @p \n\u2603"
FLOATS = [0.1, 1 / 3, 1e-300, 1.7976931348623157e308, -2.5, 0.0, 123456789.123456789]


# --- generated data -------------------------------------------------------------------


def events(n: int, seed: int = 1, days: int = 40) -> list[EventRow]:
    rng = random.Random(seed)
    prefix = tag()  # ids derive from the URL: tests sharing a dataset must not share them
    return [
        EventRow(
            title=f"event {i} {INJECTION}" if i % 3 == 0 else f"event {i}",
            content=None if i % 4 == 0 else "c" * rng.randint(0, 200),
            source_url=f"https://news.example/{prefix}/{i}?q='1'",
            source_name=rng.choice(["reuters", "efe", None]),
            event_type=rng.choice(["protest", "sanction", "election"]),
            location=rng.choice(["Caracas", "Maracaibo", None]),
            risk_score=FLOATS[i % len(FLOATS)] if i % 5 else rng.random(),
            severity=rng.choice(["low", "high", None]),
            mentioned_at=T0
            + dt.timedelta(
                seconds=rng.randint(0, days * 86_400), microseconds=rng.randint(0, 999_999)
            ),
            created_at=T0 + dt.timedelta(days=days, microseconds=i),
            metadata=None
            if i % 6 == 0
            else {
                "i": i,
                "tags": ["a", INJECTION],
                "x": FLOATS[i % len(FLOATS)],
                "n": {"ok": True, "none": None},
            },
        )
        for i in range(n)
    ]


def mentions(n: int, seed: int = 2) -> list[EntityMentionRow]:
    rng = random.Random(seed)
    prefix = tag()
    return [
        EntityMentionRow(
            entity_id=f"{prefix}-entity-{rng.randint(1, 5)}",
            event_id=None if i % 7 == 0 else f"event-{i}",
            mentioned_at=T0 + dt.timedelta(seconds=rng.randint(0, 10 * 86_400), microseconds=i),
            context=INJECTION if i % 2 else "plain",
        )
        for i in range(n)
    ]


def tag() -> str:
    """A fresh prefix for natural keys: tests sharing a dataset must not share ids."""
    return uuid.uuid4().hex[:6]


def fred(start_year: int, end_year: int) -> list[FredObservation]:
    prefix = tag()
    return [
        FredObservation(
            series_id=f"{prefix}-UNRATE" if month % 2 else f"{prefix}-GDP",
            date=dt.date(year, month, 1),
            value=None if (year + month) % 11 == 0 else year + month / 100 + 0.001,
            series_name="Unemployment Rate",
            units="Percent",
            ingested_at=T0 + dt.timedelta(microseconds=month),
        )
        for year in range(start_year, end_year + 1)
        for month in range(1, 13)
    ]


def comtrade(n: int) -> list[ComtradeObservation]:
    prefix = tag()
    return [
        ComtradeObservation(
            period=dt.date(2015 + i % 8, 1 + i % 12, 1),
            reporter_code=f"{prefix}-862",
            commodity_code=f"27{i % 10:02d}",
            trade_flow="X" if i % 2 else "M",
            value_usd=None if i % 9 == 0 else FLOATS[i % len(FLOATS)] / 7,
        )
        for i in range(n)
    ]


def world_bank(n: int) -> list[WorldBankObservation]:
    prefix = tag()
    return [
        WorldBankObservation(
            indicator_id=f"{prefix}-NY.GDP.MKTP.CD",
            date=dt.date(1960 + i, 1, 1),
            value=FLOATS[i % len(FLOATS)],
            country_code="VEN" if i % 2 else "COL",
        )
        for i in range(n)
    ]


def sample() -> dict[sa.Table, list[Row]]:
    return {
        schema.events: list(events(60)),
        schema.entity_mentions: list(mentions(40)),
        schema.fred_indicators: list(fred(1955, 1962)),
        schema.un_comtrade: list(comtrade(30)),
        schema.world_bank: list(world_bank(20)),
    }


# --- reading back ----------------------------------------------------------------------


def read_back(engine: sa.Engine, table: sa.Table, batch: Sequence[Row]) -> list[dict[str, Any]]:
    """The stored rows whose id is one of ``batch``'s, as python values, sorted by id.

    Tests on the stand-in share one migrated dataset, so each reads back only
    the ids it wrote (rows it expects rejected included: they must be
    absent). JSON columns are selected without SQLAlchemy's JSON result
    processing (the BigQuery client already returns parsed values; DuckDB
    returns text), and parsed here.
    """
    columns = [
        sa.type_coerce(column, sa.String).label(column.name)
        if isinstance(column.type, sa.JSON)
        else column
        for column in table.columns
    ]
    ids = sorted({row.id for row in batch if row.id is not None})
    statement = sa.select(*columns).where(table.c.id.in_(ids))
    options = TableOptions.of(table)
    if options.require_partition_filter:
        since = dt.datetime(1900, 1, 1, tzinfo=UTC)
        statement = statement.where(table.c[options.partition_field] >= since)
    with engine.connect() as connection:
        found = [dict(row) for row in connection.execute(statement).mappings()]
    for row in found:
        for column in table.columns:
            if isinstance(column.type, sa.JSON) and isinstance(row[column.name], str):
                row[column.name] = json.loads(row[column.name])
    return sorted(found, key=lambda row: row["id"])


def expected(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return sorted((row.to_db_row() for row in rows), key=lambda row: row["id"])


# --- engines ---------------------------------------------------------------------------


@pytest.fixture
def duckdb_engine(duckdb_settings: Settings) -> Iterator[sa.Engine]:
    upgrade(duckdb_settings)
    engine = create_engine(duckdb_settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def bigquery_settings(standin: LocalBigQuery) -> Settings:
    """One migrated dataset for this module: a migration on the stand-in takes ~10 s.

    Tests stay independent by reading back only the ids they wrote.
    """
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    settings = Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=standin.host,
    )
    upgrade(settings)
    return settings


@pytest.fixture
def bigquery_engine(bigquery_settings: Settings) -> Iterator[sa.Engine]:
    engine = create_engine(bigquery_settings)
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[
        "duckdb",
        pytest.param("bigquery-stream", marks=pytest.mark.bigquery),
        pytest.param("bigquery-load", marks=pytest.mark.bigquery),
    ]
)
def engine_and_writer(request: pytest.FixtureRequest) -> tuple[sa.Engine, Writer]:
    if request.param == "duckdb":
        engine = request.getfixturevalue("duckdb_engine")
        return engine, writer_for(engine)
    engine = request.getfixturevalue("bigquery_engine")
    return engine, writer_for(engine, request.param.removeprefix("bigquery-"))  # type: ignore[arg-type]


# --- every writer --------------------------------------------------------------------


def test_every_table_round_trips_exactly(engine_and_writer: tuple[sa.Engine, Writer]) -> None:
    engine, writer = engine_and_writer
    for table, rows in sample().items():
        result = writer.write(table, rows)
        assert result == WriteResult(written=len(rows), rejected=[], requests=result.requests)
        assert result.ok and result.requests >= 1
        assert read_back(engine, table, rows) == expected(rows), table.name


def test_an_empty_batch_writes_nothing(engine_and_writer: tuple[sa.Engine, Writer]) -> None:
    _, writer = engine_and_writer
    assert writer.write(schema.events, []) == WriteResult()


def test_rows_of_another_table_are_refused(engine_and_writer: tuple[sa.Engine, Writer]) -> None:
    _, writer = engine_and_writer
    with pytest.raises(TypeError, match="row 1: expected a row for table 'events'"):
        writer.write(schema.events, [*events(1), *mentions(1)])


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)]
)
def test_the_same_batch_twice_stores_copies_sharing_ids(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """Append-only: duplicates are stored, with the same id, for reads to collapse."""
    engine = request.getfixturevalue(f"{backend}_engine")
    writer = writer_for(engine, "load")
    batch = events(25, seed=7)
    observations = fred(2020, 2021)
    for _ in range(2):
        assert writer.write(schema.events, batch).written == 25
        assert writer.write(schema.fred_indicators, observations).written == 24
    for table, rows in ((schema.events, batch), (schema.fred_indicators, observations)):
        stored = read_back(engine, table, rows)
        assert Counter(row["id"] for row in stored) == {row.id: 2 for row in rows}
        assert stored == sorted(expected(rows) * 2, key=lambda row: row["id"])


def test_a_revised_observation_keeps_its_id(duckdb_engine: sa.Engine) -> None:
    """Re-ingesting a revised value appends a row with the same id and a newer ingested_at."""
    writer = writer_for(duckdb_engine)
    first = FredObservation(series_id="GDP", date=dt.date(2024, 1, 1), value=1.0, ingested_at=T0)
    revised = FredObservation(
        series_id="GDP", date=dt.date(2024, 1, 1), value=1.5, ingested_at=T0 + dt.timedelta(days=30)
    )
    writer.write(schema.fred_indicators, [first])
    writer.write(schema.fred_indicators, [revised])
    stored = read_back(duckdb_engine, schema.fred_indicators, [first])
    assert {row["id"] for row in stored} == {first.id}
    assert max(stored, key=lambda row: row["ingested_at"])["value"] == 1.5


# --- DuckDB ----------------------------------------------------------------------------


def test_duckdb_returns_rows_missing_not_null_values(duckdb_engine: sa.Engine) -> None:
    good = events(3, seed=3)
    bypassed = EventRow.model_construct(id="no-time", mentioned_at=None, title=INJECTION)
    batch = [good[0], bypassed, good[1], good[2]]
    result = DuckDBWriter(duckdb_engine).write(schema.events, batch)
    assert result.written == 3 and not result.ok
    [rejected] = result.rejected
    assert (rejected.index, rejected.field) == (1, "mentioned_at")
    assert rejected.row["id"] == "no-time" and rejected.row["title"] == INJECTION
    assert rejected.record is bypassed
    assert "NOT NULL" in rejected.reason
    assert read_back(duckdb_engine, schema.events, batch) == expected(good)


def test_duckdb_writer_joins_the_callers_transaction(duckdb_engine: sa.Engine) -> None:
    batch = events(5, seed=4)
    with duckdb_engine.connect() as connection:
        connection.begin()
        assert DuckDBWriter(connection).write(schema.events, batch).written == 5
        connection.rollback()
    assert read_back(duckdb_engine, schema.events, batch) == []
    with duckdb_engine.connect() as connection:  # no transaction open: the writer commits
        DuckDBWriter(connection).write(schema.events, batch)
    assert read_back(duckdb_engine, schema.events, batch) == expected(batch)


def test_duckdb_writes_a_batch_in_one_statement(duckdb_engine: sa.Engine) -> None:
    statements: list[str] = []
    sa.event.listen(
        duckdb_engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    result = DuckDBWriter(duckdb_engine).write(schema.entity_mentions, mentions(2_000))
    assert (result.written, result.requests) == (2_000, 1)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "SELECT" in inserts[0]


# --- BigQuery streaming ----------------------------------------------------------------


@pytest.mark.bigquery
def test_streaming_chunks_by_rows(bigquery_engine: sa.Engine) -> None:
    writer = BigQueryStreamWriter.for_bind(bigquery_engine, max_rows_per_request=3)
    batch = events(10, seed=5)
    result = writer.write(schema.events, batch)
    assert (result.written, result.requests, result.rejected) == (10, 4, [])
    assert read_back(bigquery_engine, schema.events, batch) == expected(batch)


@pytest.mark.bigquery
def test_streaming_chunks_by_bytes(bigquery_engine: sa.Engine) -> None:
    batch = [
        EventRow(source_url=tag(), mentioned_at=T0 + dt.timedelta(hours=i), content="x" * 1_000) for i in range(10)
    ]
    row_bytes = len(json.dumps(batch[0].to_bigquery_row()))
    writer = BigQueryStreamWriter.for_bind(
        bigquery_engine, max_request_bytes=int(2.5 * row_bytes)
    )  # two rows per request
    result = writer.write(schema.events, batch)
    assert (result.written, result.requests, result.rejected) == (10, 5, [])
    assert read_back(bigquery_engine, schema.events, batch) == expected(batch)


@pytest.mark.bigquery
def test_streaming_returns_a_row_too_large_for_a_request_unsent(bigquery_engine: sa.Engine) -> None:
    small = events(4, seed=6)
    big = EventRow(source_url=tag(), mentioned_at=T0, content="y" * 6_000)
    writer = BigQueryStreamWriter.for_bind(bigquery_engine, max_request_bytes=5_000)
    result = writer.write(schema.events, [small[0], small[1], big, small[2], small[3]])
    assert result.written == 4
    [rejected] = result.rejected
    assert rejected.index == 2 and rejected.row["id"] == big.id and rejected.record is big
    assert "5,000-byte streaming request limit" in rejected.reason
    assert "load" in rejected.reason
    assert read_back(bigquery_engine, schema.events, [*small, big]) == expected(small)


@pytest.mark.bigquery
def test_streaming_returns_rows_bigquery_rejects_and_stores_the_rest(
    bigquery_engine: sa.Engine,
) -> None:
    """Validation bypassed on purpose: BigQuery's own per-row errors become RejectedRows."""
    good = events(6, seed=8)
    no_time = EventRow.model_construct(id="no-time", mentioned_at=None, title="x")
    not_a_float = EventRow.model_construct(id="not-a-float", mentioned_at=T0, risk_score="high")
    batch = [good[0], no_time, good[1], good[2], not_a_float, good[3], good[4], good[5]]
    writer = BigQueryStreamWriter.for_bind(bigquery_engine, max_rows_per_request=3)
    result = writer.write(schema.events, batch)
    assert result.written == 6 and result.requests == 3
    assert [(r.index, r.field, r.row["id"], r.retryable) for r in result.rejected] == [
        (1, "mentioned_at", "no-time", False),
        (4, "risk_score", "not-a-float", False),
    ]
    assert [r.record for r in result.rejected] == [no_time, not_a_float]
    assert "Missing required field: mentioned_at" in result.rejected[0].reason
    assert "Cannot convert value to float" in result.rejected[1].reason
    assert read_back(bigquery_engine, schema.events, batch) == expected(good)


@pytest.mark.bigquery
def test_streaming_sends_ids_as_insert_ids(bigquery_engine: sa.Engine) -> None:
    """A retried request within BigQuery's de-duplication window stores nothing twice."""
    writer = BigQueryStreamWriter.for_bind(bigquery_engine)
    batch = mentions(8, seed=9)
    assert writer.write(schema.entity_mentions, batch).written == 8
    assert (
        writer.write(schema.entity_mentions, batch).written == 8
    )  # accepted, dropped as duplicates
    assert read_back(bigquery_engine, schema.entity_mentions, batch) == expected(batch)


def revisions() -> dict[sa.Table, tuple[Row, Row]]:
    """For each table, a row and its revision: the same id, a newer version."""
    event, mention = events(1, seed=12)[0], mentions(1, seed=13)[0]
    fred_first, comtrade_first, world_bank_first = fred(2001, 2001)[0], comtrade(1)[0], world_bank(1)[0]
    later = dt.timedelta(days=1)
    return {
        schema.events: (event, event.model_copy(update={"risk_score": 0.99, "created_at": event.created_at + later})),
        schema.entity_mentions: (mention, mention.model_copy(update={"context": "revised context"})),
        schema.fred_indicators: (
            fred_first,
            fred_first.model_copy(update={"value": 2.0, "ingested_at": fred_first.ingested_at + later}),
        ),
        schema.un_comtrade: (
            comtrade_first,
            comtrade_first.model_copy(update={"value_usd": 2.0, "ingested_at": comtrade_first.ingested_at + later}),
        ),
        schema.world_bank: (
            world_bank_first,
            world_bank_first.model_copy(update={"value": 2.0, "ingested_at": world_bank_first.ingested_at + later}),
        ),
    }


def stored_count(engine: sa.Engine, table: sa.Table, batch: Sequence[Row]) -> int:
    return len(read_back(engine, table, batch))


@pytest.mark.bigquery
def test_streaming_keeps_a_revision_sent_seconds_later(bigquery_engine: sa.Engine) -> None:
    """Issue 9 part 2: with the id as insertId, BigQuery dropped the revision for a minute."""
    writer = BigQueryStreamWriter.for_bind(bigquery_engine)
    pairs = revisions()
    for table, (first, revised) in pairs.items():
        assert first.id == revised.id and first != revised
        assert writer.write(table, [first]) == WriteResult(written=1, requests=1)
    for table, (first, revised) in pairs.items():  # within 2 s of the first copies
        assert writer.write(table, [revised]) == WriteResult(written=1, requests=1), table.name
    for table, (first, revised) in pairs.items():
        assert read_back(bigquery_engine, table, [first]) == expected([first, revised]), table.name
    fred_first, fred_revised = pairs[schema.fred_indicators]
    assert isinstance(fred_revised, FredObservation)
    [latest] = FredRepository(bigquery_engine).latest([fred_revised.series_id])
    assert latest.value == 2.0
    event_first, event_revised = pairs[schema.events]
    assert isinstance(event_revised, EventRow)
    found = EventRepository(bigquery_engine).recent(
        event_revised.mentioned_at, event_revised.mentioned_at + dt.timedelta(microseconds=1)
    )
    assert [(item.id, item.risk_score) for item in found] == [(event_revised.id, 0.99)]


@pytest.mark.bigquery
def test_streaming_written_is_what_the_table_gained(bigquery_engine: sa.Engine) -> None:
    """Identical copies in one batch are sent once and counted apart; a revision is written."""
    writer = BigQueryStreamWriter.for_bind(bigquery_engine, max_rows_per_request=2)
    first, revised = revisions()[schema.fred_indicators]
    other = fred(2002, 2002)[0]
    batch = [first, first, revised, other, first.model_copy(), revised]
    result = writer.write(schema.fred_indicators, batch)
    assert (result.written, result.duplicates, result.rejected, result.requests) == (3, 3, [], 2)
    assert stored_count(bigquery_engine, schema.fred_indicators, batch) == 3
    assert read_back(bigquery_engine, schema.fred_indicators, batch) == expected([first, revised, other])


@pytest.mark.bigquery
def test_streaming_rejects_every_copy_of_a_rejected_row(bigquery_engine: sa.Engine) -> None:
    good = events(2, seed=14)
    bad = EventRow.model_construct(id=f"bad-{tag()}", mentioned_at=None, title="x")
    batch = [bad, good[0], bad, good[1], good[0]]
    result = BigQueryStreamWriter.for_bind(bigquery_engine, max_rows_per_request=1).write(schema.events, batch)
    assert (result.written, result.duplicates) == (2, 1)
    assert [(r.index, r.field, r.record) for r in result.rejected] == [(0, "mentioned_at", bad), (2, "mentioned_at", bad)]
    assert result.written + result.duplicates + len(result.rejected) == len(batch)
    assert read_back(bigquery_engine, schema.events, batch) == expected(good)


def test_insert_ids_identify_the_exact_content() -> None:
    first, revised = revisions()[schema.fred_indicators]
    assert insert_id(first.to_bigquery_row()) == insert_id(first.model_copy().to_bigquery_row())
    assert insert_id(first.to_bigquery_row()) != insert_id(revised.to_bigquery_row())
    assert len(insert_id(first.to_bigquery_row())) <= 128  # BigQuery's insertId limit


# --- BigQuery load jobs ------------------------------------------------------------------


def test_partition_keys() -> None:
    moment = dt.datetime(2024, 5, 17, 23, 59, 59, tzinfo=UTC)
    assert partition_key(moment, "DAY") == dt.date(2024, 5, 17)
    assert partition_key(moment, "HOUR") == (dt.date(2024, 5, 17), 23)
    assert partition_key(dt.date(2024, 5, 17), "MONTH") == (2024, 5)
    assert partition_key(dt.date(2024, 5, 17), "YEAR") == 2024
    assert partition_key(dt.date(1959, 12, 31), "MONTH") == UNPARTITIONED
    assert partition_key(dt.date(1960, 1, 1), "MONTH") == (1960, 1)
    assert partition_key(dt.date(2160, 1, 1), "YEAR") == UNPARTITIONED


@pytest.mark.bigquery
def test_load_jobs_are_chunked_by_partition(bigquery_engine: sa.Engine) -> None:
    observations = fred(1955, 1965)  # 60 months before 1960 share __UNPARTITIONED__
    partitions = {partition_key(row.date, "MONTH") for row in observations}
    assert len(partitions) == 1 + 6 * 12
    writer = BigQueryLoadWriter.for_bind(bigquery_engine, max_partitions_per_job=20)
    result = writer.write(schema.fred_indicators, observations)
    assert (result.written, result.requests, result.rejected) == (len(observations), 4, [])
    assert read_back(bigquery_engine, schema.fred_indicators, observations) == expected(
        observations
    )


@pytest.mark.bigquery
def test_load_jobs_span_daily_partitions(bigquery_engine: sa.Engine) -> None:
    batch = events(200, seed=10, days=12)
    days = {row.mentioned_at.date() for row in batch}
    assert len(days) == 12  # five days per job: three jobs
    writer = BigQueryLoadWriter.for_bind(bigquery_engine, max_partitions_per_job=5)
    result = writer.write(schema.events, batch)
    assert result.written == 200 and result.ok
    assert result.requests == 3
    assert read_back(bigquery_engine, schema.events, batch) == expected(batch)


@pytest.mark.bigquery
def test_a_failed_load_job_returns_all_its_rows(bigquery_engine: sa.Engine) -> None:
    day_one = [EventRow(source_url=tag(), mentioned_at=T0 + dt.timedelta(hours=i)) for i in range(3)]
    day_two = [EventRow(source_url=tag(), mentioned_at=T0 + dt.timedelta(days=1, hours=i)) for i in range(3)]
    broken = EventRow.model_construct(
        id="broken", mentioned_at=T0 + dt.timedelta(days=1, hours=5), risk_score="high"
    )
    batch = [day_one[0], day_two[0], broken, day_one[1], day_two[1], day_one[2], day_two[2]]
    writer = BigQueryLoadWriter.for_bind(bigquery_engine, max_partitions_per_job=1)
    result = writer.write(schema.events, batch)
    assert (result.written, result.requests) == (3, 2)
    assert sorted(r.index for r in result.rejected) == [1, 2, 4, 6]
    assert {r.row["id"] for r in result.rejected} == {"broken"} | {row.id for row in day_two}
    for rejected in result.rejected:
        assert rejected.record is batch[rejected.index]
        assert rejected.reason.startswith("load job ")
        assert "none of its rows stored" in rejected.reason
    assert read_back(bigquery_engine, schema.events, batch) == expected(day_one)


# --- choosing a writer ------------------------------------------------------------------


def test_duckdb_gets_the_bulk_writer_whatever_the_method(duckdb_engine: sa.Engine) -> None:
    for method in ("auto", "stream", "load"):
        assert isinstance(writer_for(duckdb_engine, method), DuckDBWriter)  # type: ignore[arg-type]
    with duckdb_engine.connect() as connection:
        assert isinstance(writer_for(connection), DuckDBWriter)


def test_writer_for_refuses_unknown_methods_and_dialects(duckdb_engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="method must be"):
        writer_for(duckdb_engine, "merge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no writer for the 'sqlite' dialect"):
        writer_for(sa.create_engine("sqlite://"))


@pytest.mark.bigquery
def test_writer_for_bigquery(bigquery_engine: sa.Engine, bigquery_settings: Settings) -> None:
    assert isinstance(writer_for(bigquery_engine, "stream"), BigQueryStreamWriter)
    assert isinstance(writer_for(bigquery_engine, "load"), BigQueryLoadWriter)
    auto = writer_for(bigquery_engine)
    assert isinstance(auto, AutoBigQueryWriter)
    target = BigQueryTarget.of(bigquery_engine)
    assert target.table_id(schema.events) == (
        f"{bigquery_settings.bigquery_project}.{bigquery_settings.bigquery_dataset}.events"
    )


@pytest.mark.bigquery
def test_auto_streams_small_batches_and_loads_large_ones(bigquery_engine: sa.Engine) -> None:
    """Told apart by behaviour: a streamed re-send is de-duplicated by insertId, a load is not."""
    small, large = mentions(3, seed=11), world_bank(6)
    auto = writer_for(bigquery_engine, load_threshold=5)
    for _ in range(2):
        auto.write(schema.entity_mentions, small)
        auto.write(schema.world_bank, large)
    assert read_back(bigquery_engine, schema.entity_mentions, small) == expected(small)
    assert read_back(bigquery_engine, schema.world_bank, large) == sorted(
        expected(large) * 2, key=lambda row: row["id"]
    )
