"""The verification's DuckDB folds (bqrepo.backfill.sql_fold) and the read-ahead thread (reader.prefetched)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bqrepo import migrate
from bqrepo.backfill import backfill
from bqrepo.backfill.reader import prefetched
from bqrepo.backfill.sql_fold import SourceFolder, day_folds, fold_statement
from bqrepo.engine import create_engine
from bqrepo.rows import row_type, validate_rows
from bqrepo.schema import metadata
from bqrepo.settings import Settings
from bqrepo.writers.duckdb_bulk import DuckDBWriter

EVENTS = metadata.tables["events"]
FOLDED = [c for c in EVENTS.c if c.name not in ("ingested_at",)]


@pytest.fixture
def migrated_duckdb(duckdb_settings: Settings) -> Settings:
    migrate.upgrade(duckdb_settings)
    return duckdb_settings


def _events() -> list[dict[str, object]]:
    """Values whose text differs between engines or is easy to get wrong: floats, JSON, old instants, NULLs."""
    base = dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    floats = [0.1, 1e16, 1e-7, -0.0, 123456789.125, 2.0**60, None, 5e-324]
    return [
        {
            "id": f"e{i}",
            "title": ["", None, "ñandú 🚀", "a\x1fb"][i % 4],
            "risk_score": floats[i % len(floats)],
            "mentioned_at": base + dt.timedelta(hours=7 * i, microseconds=i),
            "created_at": None if i % 3 else base,
            "metadata": [None, {"b": 1, "a": [1, 2.5, 1e16, "x"]}, {"ü": {"n": None, "t": True}}, {}][i % 4],
        }
        for i in range(24)
    ]


def test_source_fold_equals_the_destination_fold_of_the_same_rows(migrated_duckdb):
    rows = validate_rows(row_type(EVENTS), _events()).rows
    assert len(rows) == 24
    engine = create_engine(migrated_duckdb)
    folder = SourceFolder(FOLDED, EVENTS.c.mentioned_at)
    try:
        DuckDBWriter(engine).write(EVENTS, rows)
        with engine.connect() as connection:
            stored = connection.execute(fold_statement(EVENTS, FOLDED, EVENTS.c.mentioned_at, distinct_ids=True)).all()
        destination = sorted(day_folds(stored, distinct_ids=True))
        source = sorted(folder.fold(rows[:10]) + folder.fold(rows[10:]))
    finally:
        folder.close()
        engine.dispose()
    assert [d[0] for d in destination] == [dt.date(1969, 12, 31), *(dt.date(1970, 1, n) for n in range(1, 8))]
    # Batches fold separately; a day split over two batches merges by count, XOR and sums.
    merged: dict[dt.date, tuple[int, int, list[int]]] = {}
    for day, count, _, xor, sums in source:
        old = merged.get(day, (0, 0, [0] * len(sums)))
        merged[day] = (old[0] + count, old[1] ^ xor, [a + b for a, b in zip(old[2], sums)])
    assert {day: (count, xor, list(sums)) for day, count, _, xor, sums in destination} == merged
    assert all(ids == count for _, count, ids, _, _ in destination)


def test_null_and_empty_text_fold_differently():
    rows = validate_rows(row_type(EVENTS), _events()[:1]).rows
    other = rows[0].model_copy(update={"title": None if rows[0].title == "" else ""})  # type: ignore[attr-defined]
    folder = SourceFolder(FOLDED, EVENTS.c.mentioned_at)
    try:
        assert folder.fold(rows)[0][3:] != folder.fold([other])[0][3:]
    finally:
        folder.close()


@pytest.mark.parametrize(
    "column, value",
    [("title", "changed"), ("risk_score", 0.30000000000000004), ("metadata", '{"changed": 1}'), ("mentioned_at", None)],
)
def test_verification_in_duckdb_catches_a_changed_value(legacy_postgres, migrated_duckdb, tmp_path, column, value):
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    assert backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint).verification.ok
    engine = create_engine(migrated_duckdb)
    try:
        with engine.begin() as connection:
            first = connection.execute(sa.select(EVENTS).order_by(EVENTS.c.mentioned_at).limit(1)).mappings().one()
            if column == "mentioned_at":  # one microsecond later, the same day
                value = first["mentioned_at"] + dt.timedelta(microseconds=1)
            connection.execute(EVENTS.update().where(EVENTS.c.id == first["id"]).values({column: value}))
    finally:
        engine.dispose()
    report = backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint).verification
    (day,) = report.mismatches
    assert day.day == first["mentioned_at"].astimezone(dt.UTC).date()
    assert day.destination_rows == day.source_rows and day.destination_ids == day.source_rows
    assert day.source_checksum != day.destination_checksum


def test_prefetched_keeps_order_and_raises_the_readers_failure_in_place():
    def items() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("the source went away")

    seen = []
    with pytest.raises(RuntimeError, match="went away"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetched_stops_and_closes_the_reader_when_the_consumer_stops():
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    for item in prefetched(items(), depth=2):
        if item == 3:
            break
    assert closed.is_set()  # closed before the loop's exit returned, in the producer's thread
