"""The back-fill's verification: streamed folds equal to the row-at-a-time definition, and what they catch."""

from __future__ import annotations

import datetime as dt
import hashlib
import random

import pytest
import sqlalchemy as sa

from bqrepo import migrate
from bqrepo.backfill import backfill, load_mapping
from bqrepo.backfill.chunks import chunks
from bqrepo.backfill.reader import SourceReader, source_engine
from bqrepo.backfill.verify import DayCheck, verify
from bqrepo.checksum import SUM_SLICES, XOR_SLICE, Checksum
from bqrepo.engine import create_engine
from bqrepo.schema import metadata
from bqrepo.settings import Settings


def _hex_fold(texts: list[str]) -> tuple[int, ...]:
    """The checksum as its docstring defines it: slices of the hex digest, read as numbers."""
    xor, sums = 0, [0] * len(SUM_SLICES)
    for text in texts:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        start, digits = XOR_SLICE
        xor ^= int(digest[start - 1 : start - 1 + digits], 16)
        for index, (start, digits) in enumerate(SUM_SLICES):
            sums[index] += int(digest[start - 1 : start - 1 + digits], 16)
    return (len(texts), xor, *sums)


def test_checksum_fold_equals_the_hex_slices() -> None:
    rng = random.Random(3)
    texts = ["", "\x00", "ñandú 🚀", *(f"row {rng.random()}\x1f{i}" for i in range(2_000))]
    one_by_one, at_once = Checksum(), Checksum()
    for text in texts:
        one_by_one.add(text)
    at_once.add_all(texts[:7])
    at_once.add_all(texts[7:])
    assert one_by_one.values() == at_once.values() == _hex_fold(texts)
    assert one_by_one == at_once


@pytest.fixture
def migrated_duckdb(duckdb_settings: Settings) -> Settings:
    migrate.upgrade(duckdb_settings)
    return duckdb_settings


def _summary(days: list[DayCheck]) -> list[tuple[object, ...]]:
    return [
        (d.day, d.source_rows, d.rejected_rows, d.destination_rows, d.destination_ids,
         d.source_checksum.values(), d.destination_checksum.values())
        for d in days
    ]


def test_verification_during_the_run_equals_a_fresh_read_in_any_batch(legacy_postgres, migrated_duckdb, tmp_path):
    """The source side folded while writing, and re-read in batches of 7 or 10,000, give one report."""
    server, _ = legacy_postgres
    during = backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=tmp_path / "cp.json").verification
    assert during is not None and during.ok and during.source_rows > 300
    mapping = load_mapping()["events"]
    source, destination = source_engine(server.url), create_engine(migrated_duckdb)
    try:
        reader = SourceReader(source, mapping)
        low, high = reader.bounds()  # type: ignore[misc]
        plan = list(chunks(low, high + dt.timedelta(days=1), "month", timestamp=True))
        for batch in (7, 10_000):
            again = verify(reader, destination, mapping, plan, batch=batch)
            assert _summary(again.days) == _summary(during.days)
    finally:
        source.dispose()
        destination.dispose()


def test_verification_catches_a_doubled_row(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    assert backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint).verification.ok
    events = metadata.tables["events"]
    engine = create_engine(migrated_duckdb)
    try:
        with engine.begin() as connection:
            first = connection.execute(sa.select(events).order_by(events.c.mentioned_at).limit(1)).mappings().one()
            connection.execute(events.insert(), [dict(first)])
    finally:
        engine.dispose()
    report = backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint).verification
    (day,) = report.mismatches
    assert day.day == first["mentioned_at"].astimezone(dt.UTC).date()
    assert day.destination_rows == day.source_rows + 1 and day.destination_ids == day.source_rows
    assert day.source_checksum != day.destination_checksum
