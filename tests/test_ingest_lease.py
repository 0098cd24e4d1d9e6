"""The DuckDB write lease (``bqrepo.engine.ConnectionLease``) and the ingest that writes behind its reading.

A lease keeps one connection across transactions, commits each, and gives the
file back within its seconds of holding, so another process gets in; the
ingest writes batch N in a thread while it validates batch N+1, and must still
name every rejected row, in input order, and store every good one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bqrepo import migrate, schema
from bqrepo.cli.app import app
from bqrepo.engine import ConnectionLease, create_engine
from bqrepo.rows import EventRow
from bqrepo.settings import Settings
from bqrepo.writers.duckdb_bulk import DuckDBWriter

SETTINGS_VARS = ("BQREPO_URL", "GCP_PROJECT_ID", "BIGQUERY_DATASET", "BIGQUERY_EMULATOR_HOST", "BIGQUERY_LOCATION")


@pytest.fixture
def migrated(duckdb_settings: Settings) -> Settings:
    migrate.upgrade(duckdb_settings)
    return duckdb_settings


def _event(number: int) -> EventRow:
    return EventRow(id=f"e{number}", title="t", mentioned_at="2024-03-01T10:00:00+00:00")


def _count(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(schema.events)).scalar_one())
    finally:
        engine.dispose()


def test_a_lease_keeps_one_connection_commits_each_write_and_renews_after_its_seconds(migrated: Settings) -> None:
    engine = create_engine(migrated)
    opened: list[object] = []
    sa.event.listen(engine, "connect", lambda connection, _record: opened.append(connection))
    try:
        with ConnectionLease(engine, seconds=0.5, gap=0.0) as lease:
            writer = DuckDBWriter(lease)
            for number in range(3):
                assert writer.write(schema.events, [_event(number)]).written == 1
            assert len(opened) == 1 and lease.remaining() is not None
            with pytest.raises(RuntimeError, match="boom"), lease.begin() as connection:
                connection.execute(sa.insert(schema.events), [_event(99).to_db_row()])
                raise RuntimeError("boom")
            assert lease.remaining() is None  # a failed transaction gives the file back, rolled back
            writer.write(schema.events, [_event(3)])
            assert len(opened) == 2
            time.sleep(0.6)  # overdue: given back before the next transaction, which opens the file again
            writer.write(schema.events, [_event(4)])
            assert len(opened) == 3
            time.sleep(0.6)
            with lease.begin() as connection:
                connection.execute(sa.insert(schema.events), [_event(5).to_db_row()])
                time.sleep(0.01)
            assert len(opened) == 4 and lease.remaining() is not None
            lease.seconds = 0.0  # a transaction that ends after the lease ran out gives the file back
            writer.write(schema.events, [_event(6)])
            assert lease.remaining() is None
        assert lease.remaining() is None
    finally:
        engine.dispose()
    assert _count(migrated) == 7


WAITER = """
import sys, time
from bqrepo.engine import create_engine
from bqrepo.settings import Settings
import sqlalchemy as sa
engine = create_engine(Settings(duckdb_path=sys.argv[1]), duckdb_lock_wait=10)
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
with engine.connect() as connection:
    connection.execute(sa.text("SELECT 1"))
print(f"{time.monotonic() - start:.3f}", flush=True)
"""


def test_another_process_gets_the_file_while_a_lease_writes_without_pause(migrated: Settings) -> None:
    waiter = subprocess.Popen(
        [sys.executable, "-c", WAITER, migrated.duckdb_path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert waiter.stdin is not None and waiter.stdout is not None
    engine = create_engine(migrated)
    try:
        assert waiter.stdout.readline().strip() == "ready"
        with ConnectionLease(engine, seconds=0.3) as lease:
            writer = DuckDBWriter(lease)
            writer.write(schema.events, [_event(0)])  # the file is held from here on
            waiter.stdin.write("go\n")
            waiter.stdin.flush()
            deadline = time.monotonic() + 4
            number = 1
            while time.monotonic() < deadline:  # one transaction after another, no pause
                writer.write(schema.events, [_event(number)])
                number += 1
        waited = float(waiter.communicate(timeout=30)[0].strip())
    finally:
        engine.dispose()
        waiter.kill()
    assert waiter.returncode == 0
    # at most the lease plus a statement, with room for a loaded machine; far under the 10 s it may wait
    assert waited < 2.5


def test_ingest_in_small_batches_names_every_bad_row_in_order_and_stores_the_rest(migrated: Settings, tmp_path: Path) -> None:
    lines = []
    bad = set()
    for number in range(1, 41):
        record = {"id": f"e{number}", "title": "t", "mentioned_at": "2024-03-01T10:00:00+00:00"}
        if number % 7 == 0:
            record["mentioned_at"] = "2024-03-01T10:00:00"  # naive: rejected
            bad.add(number)
        lines.append("{broken" if number == 12 else json.dumps(record))
    bad.add(12)
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    env = {key: "" for key in SETTINGS_VARS} | {"BQREPO_DUCKDB_PATH": migrated.duckdb_path, "COLUMNS": "120"}
    result = CliRunner().invoke(app, ["ingest", "events", str(source), "--batch-size", "3"], env=env)
    assert result.exit_code == 1, result.output
    assert f"wrote {40 - len(bad)} row(s)" in result.output
    rejected = [json.loads(line) for line in (tmp_path / "events.rejected.jsonl").read_text().splitlines()]
    assert [entry["position"] for entry in rejected] == sorted(bad)
    assert all(entry["field"] == "mentioned_at" for entry in rejected if entry["position"] != 12)
    assert _count(migrated) == 40 - len(bad)
