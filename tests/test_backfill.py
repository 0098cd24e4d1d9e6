"""Back-fill from a real PostgreSQL 15 (Django-like schema) into DuckDB and the stand-in."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from bqrepo import migrate
from bqrepo.backfill import backfill, load_mapping
from bqrepo.engine import create_engine
from bqrepo.schema import metadata
from bqrepo.settings import ConfigurationError, Settings

SOURCE = {
    "events": ("core_event", "mentioned_at"),
    "entity_mentions": ("core_entitymention", "mentioned_at"),
    "fred_indicators": ("core_fredindicator", "date"),
    "un_comtrade": ("core_uncomtrade", "period"),
    "world_bank": ("core_worldbank", "date"),
}
BQREPO = str(Path(sys.executable).with_name("bqrepo"))


def _day(value: object) -> dt.date:
    return value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value  # type: ignore[union-attr,return-value]


def source_per_day(url: str, table: str) -> Counter[dt.date]:
    name, column = SOURCE[table]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            values = connection.execute(sa.select(sa.column(column)).select_from(sa.table(name))).scalars()
            return Counter(_day(v) for v in values)
    finally:
        engine.dispose()


def destination_rows(settings: Settings, table: str) -> list[dict]:
    target = metadata.tables[table]
    partition = target.c[SOURCE[table][1]]
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            far = dt.datetime(3000, 1, 1, tzinfo=dt.UTC) if isinstance(partition.type, sa.TIMESTAMP) else dt.date(3000, 1, 1)
            low = dt.datetime(1900, 1, 1, tzinfo=dt.UTC) if isinstance(partition.type, sa.TIMESTAMP) else dt.date(1900, 1, 1)
            # JSON untyped: BigQuery's driver parses it already, DuckDB's does not.
            columns = [sa.type_coerce(c, sa.types.NullType()).label(c.name) if c.name == "metadata" else c for c in target.c]
            statement = sa.select(*columns).where(partition >= low, partition < far)
            return [dict(r) for r in connection.execute(statement).mappings()]
    finally:
        engine.dispose()


def destination_per_day(settings: Settings, table: str) -> Counter[dt.date]:
    return Counter(_day(row[SOURCE[table][1]]) for row in destination_rows(settings, table))


@pytest.fixture
def migrated_duckdb(duckdb_settings: Settings) -> Settings:
    migrate.upgrade(duckdb_settings)
    return duckdb_settings


@pytest.mark.parametrize("table", list(SOURCE))
def test_backfill_into_duckdb_is_exact_and_verified(legacy_postgres, migrated_duckdb, tmp_path, table):
    server, _ = legacy_postgres
    result = backfill(server.url, table, settings=migrated_duckdb, checkpoint_file=tmp_path / "cp.json")
    assert result.verification is not None and result.verification.ok, result.verification.mismatches[:3]
    expected = source_per_day(server.url, table)
    assert destination_per_day(migrated_duckdb, table) == expected
    assert result.rows_written == sum(expected.values()) and result.rows_rejected == 0
    assert result.chunks_written == result.chunks_total >= 1  # the sample's 30 days of events are one monthly chunk
    rows = destination_rows(migrated_duckdb, table)
    assert len({row["id"] for row in rows}) == len(rows)


def test_backfilled_values_survive_exactly(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=tmp_path / "cp.json")
    backfill(server.url, "entity_mentions", settings=migrated_duckdb, checkpoint_file=tmp_path / "cp2.json")
    backfill(server.url, "un_comtrade", settings=migrated_duckdb, checkpoint_file=tmp_path / "cp3.json")
    events = {row["id"]: row for row in destination_rows(migrated_duckdb, "events")}
    midnight = events["00000000-0000-4000-8000-000000000000"]
    assert midnight["mentioned_at"] == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    last = events["00000000-0000-4000-8000-000000000001"]
    assert last["mentioned_at"] == dt.datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=dt.UTC)
    assert last["risk_score"] is None
    injected = events["00000000-0000-4000-8000-000000000002"]
    assert injected["title"] == "Robert'); DROP TABLE core_event;-- ñandú 🚀"
    metadata_value = injected["metadata"]
    if isinstance(metadata_value, str):
        metadata_value = json.loads(metadata_value)
    assert metadata_value == {"nested": {"list": [1, 2.5, None, "x"]}, "quote": 'it\'s "quoted"'}
    # Django's integer entity ids and mention ids arrive as strings.
    mention = destination_rows(migrated_duckdb, "entity_mentions")[0]
    assert mention["entity_id"].isdigit() and mention["id"].isdigit()
    # numeric(20, 2) trade values arrive as floats, ids derive from the natural key.
    from bqrepo.rows import natural_id

    trade = destination_rows(migrated_duckdb, "un_comtrade")[0]
    assert isinstance(trade["value_usd"], float)
    assert trade["id"] == natural_id(
        "un_comtrade", trade["period"], trade["reporter_code"], trade["commodity_code"], trade["trade_flow"]
    )


def test_since_until_limit_the_range(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    result = backfill(
        server.url,
        "events",
        settings=migrated_duckdb,
        since=dt.date(2024, 3, 5),
        until=dt.date(2024, 3, 8),
        checkpoint_file=tmp_path / "cp.json",
    )
    assert result.chunks_total == 1 and result.verification.ok  # the month chunk, clipped to the three days
    per_day = destination_per_day(migrated_duckdb, "events")
    assert set(per_day) == {dt.date(2024, 3, 5), dt.date(2024, 3, 6), dt.date(2024, 3, 7)}
    expected = source_per_day(server.url, "events")
    assert all(per_day[d] == expected[d] for d in per_day)


class Crash(RuntimeError):
    pass


def crash_on(n: int, seen: list | None = None):  # type: ignore[no-untyped-def]
    """An ``after_write`` hook that raises Crash on the n-th chunk; ``seen`` collects the chunks."""
    seen = [] if seen is None else seen

    def hook(chunk):  # type: ignore[no-untyped-def]
        seen.append(chunk)
        if len(seen) == n:
            raise Crash(chunk.key)

    return hook


def test_crash_between_write_and_checkpoint_resumes_exactly(legacy_postgres, migrated_duckdb, tmp_path):
    """The worst moment: chunk 6 is written but not recorded. Resume must not duplicate it."""
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    seen: list = []
    with pytest.raises(Crash):
        backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint, after_write=crash_on(6, seen),
                 mapping_file=_by_day(tmp_path, "events"))
    state = json.loads(checkpoint.read_text())
    assert len(state["completed"]) == 5 and state["in_flight"] == [seen[5].key]

    result = backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint,
                      mapping_file=_by_day(tmp_path, "events"))
    assert result.chunks_skipped == 5 and result.rows_reconciled > 0
    assert result.verification.ok
    assert destination_per_day(migrated_duckdb, "events") == source_per_day(server.url, "events")
    rows = destination_rows(migrated_duckdb, "events")
    assert len({row["id"] for row in rows}) == len(rows)


def test_crash_before_write_resumes_without_gaps(legacy_postgres, migrated_duckdb, tmp_path):
    """A failure inside a chunk's write leaves nothing of it; resume writes it whole."""
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    with pytest.raises(Crash):
        backfill(server.url, "fred_indicators", settings=migrated_duckdb, checkpoint_file=checkpoint, after_write=crash_on(3))
    result = backfill(server.url, "fred_indicators", settings=migrated_duckdb, checkpoint_file=checkpoint)
    assert result.verification.ok
    assert destination_per_day(migrated_duckdb, "fred_indicators") == source_per_day(server.url, "fred_indicators")


def test_sigkill_midway_then_resume_is_exact(legacy_postgres, migrated_duckdb, tmp_path):
    """A real ``bqrepo backfill`` process killed with SIGKILL after a few chunks, then resumed."""
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    env = {**os.environ, "BQREPO_DUCKDB_PATH": migrated_duckdb.duckdb_path}
    env.pop("BQREPO_URL", None)
    command = [BQREPO, "backfill", "--from", server.url, "--table", "entity_mentions", "--checkpoint", str(checkpoint),
               "--mapping", str(_by_day(tmp_path, "entity_mentions")), "--pause", "0.2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 60
    completed = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            completed = len(json.loads(checkpoint.read_text())["completed"])
        except (OSError, ValueError):
            completed = 0
        if completed >= 4:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    before = json.loads(checkpoint.read_text())
    assert 4 <= len(before["completed"]) < 30

    done = subprocess.run(command[:-2], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout and "already done" in done.stdout
    assert destination_per_day(migrated_duckdb, "entity_mentions") == source_per_day(server.url, "entity_mentions")
    rows = destination_rows(migrated_duckdb, "entity_mentions")
    assert len({row["id"] for row in rows}) == len(rows)


def test_verification_catches_a_deleted_day(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    assert backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint).verification.ok
    victim = dt.datetime(2024, 3, 10, tzinfo=dt.UTC)
    events = metadata.tables["events"]
    engine = create_engine(migrated_duckdb)
    with engine.begin() as connection:
        deleted = connection.execute(
            events.delete().where(events.c.mentioned_at >= victim, events.c.mentioned_at < victim + dt.timedelta(days=1))
        ).rowcount
    engine.dispose()
    assert deleted > 0
    # Every chunk is already done: this run only verifies.
    result = backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint)
    assert result.chunks_written == 0
    report = result.verification
    assert not report.ok
    assert [d.day for d in report.mismatches] == [victim.date()]
    (day,) = report.mismatches
    assert day.destination_rows == 0 and day.source_rows == deleted


def test_verification_catches_a_changed_value(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint)
    world_bank = metadata.tables["world_bank"]
    engine = create_engine(migrated_duckdb)
    with engine.begin() as connection:
        connection.execute(
            world_bank.update()
            .where(world_bank.c.date == dt.date(2000, 1, 1), world_bank.c.country_code == "VEN")
            .values(value=world_bank.c.value + 0.001)
        )
    engine.dispose()
    report = backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint).verification
    (day,) = report.mismatches
    assert day.day == dt.date(2000, 1, 1)
    assert day.destination_rows == day.source_rows and day.source_checksum != day.destination_checksum


def test_cli_reports_mismatch_and_never_prints_the_password(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    env = {**os.environ, "BQREPO_DUCKDB_PATH": migrated_duckdb.duckdb_path}
    env.pop("BQREPO_URL", None)
    command = [BQREPO, "backfill", "--from", server.url, "--table", "un_comtrade", "--checkpoint", str(tmp_path / "c.json")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "OK" in first.stdout and "rows/s" in first.stderr
    assert "load job(s)/write(s)" in first.stderr and "plan:" in first.stderr  # the plan, before writing
    assert server.password not in first.stdout + first.stderr
    assert "***" in first.stderr

    un_comtrade = metadata.tables["un_comtrade"]
    engine = create_engine(migrated_duckdb)
    with engine.begin() as connection:
        connection.execute(un_comtrade.delete().where(un_comtrade.c.period == dt.date(2021, 5, 1)))
    engine.dispose()
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1
    assert "MISMATCH" in second.stdout and "2021-05-01" in second.stdout

    wrong = server.url.replace(server.password, "not-the-password")
    bad = subprocess.run(
        [BQREPO, "backfill", "--from", wrong, "--table", "events", "--checkpoint", str(tmp_path / "w.json")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "password authentication failed" in bad.stderr
    assert "not-the-password" not in bad.stdout + bad.stderr


def test_unreachable_source_is_a_clear_error(migrated_duckdb, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "BQREPO_DUCKDB_PATH": migrated_duckdb.duckdb_path}
    out = subprocess.run(
        [BQREPO, "backfill", "--from", f"postgresql://u:s3cret@127.0.0.1:{port}/db", "--table", "events",
         "--checkpoint", str(tmp_path / "c.json")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "error:" in out.stderr and "s3cret" not in out.stdout + out.stderr


def _events_by_month(tmp_path: Path) -> Path:
    """A mapping with events read and written a month at a time (DAY partitions): the default's."""
    from importlib import resources

    text = resources.files("bqrepo.backfill").joinpath("default_mapping.toml").read_text("utf-8")
    assert load_mapping()["events"].chunk == "month"
    path = tmp_path / "events-by-month.toml"
    path.write_text(text)
    return path


def _by_day(tmp_path: Path, table: str) -> Path:
    """The default mapping with ``table`` (events or entity_mentions) chunked by day, the finest allowed.

    The resume tests want many small chunks of the sample's 30 days.
    """
    from importlib import resources

    text = resources.files("bqrepo.backfill").joinpath("default_mapping.toml").read_text("utf-8")
    source = SOURCE[table][0]
    daily = re.sub(rf'(source = "{source}"\n(?:#.*\n)*)chunk = "month"', r'\1chunk = "day"', text)
    assert daily != text
    path = tmp_path / f"{table}-by-day.toml"
    path.write_text(daily)
    return path


def _assert_exact(url: str, settings: Settings, table: str, until: dt.date | None) -> None:
    expected = {d: n for d, n in source_per_day(url, table).items() if until is None or d < until}
    assert destination_per_day(settings, table) == expected
    rows = destination_rows(settings, table)
    assert len({row["id"] for row in rows}) == len(rows)


@pytest.mark.parametrize(
    ("table", "by_month", "untils"),
    [
        # Year chunks: --until mid-year clips the last chunk; then a later --until, then none.
        ("fred_indicators", False, [dt.date(2008, 5, 1), dt.date(2009, 3, 1), None]),
        ("un_comtrade", False, [dt.date(2021, 6, 15), None]),
        # A daily table read by month: --until mid-month.
        ("events", True, [dt.date(2024, 3, 15), dt.date(2024, 3, 20), None]),
        # Daily chunks: no clipping, the plain case.
        ("entity_mentions", False, [dt.date(2024, 3, 15), None]),
    ],
)
def test_moving_until_later_writes_each_row_once(legacy_postgres, migrated_duckdb, tmp_path, table, by_month, untils):
    """Review 5, item 4: a later run with another --until re-plans the clipped edge chunk under a
    new key; it must be reconciled (only missing ids written), never rewritten."""
    server, _ = legacy_postgres
    mapping = _events_by_month(tmp_path) if by_month else _by_day(tmp_path, "entity_mentions") if table == "entity_mentions" else None
    checkpoint = tmp_path / "cp.json"
    written = 0
    for until in untils:
        result = backfill(server.url, table, settings=migrated_duckdb, until=until, mapping_file=mapping,
                          checkpoint_file=checkpoint)
        assert result.verification.ok, result.verification.mismatches[:3]
        _assert_exact(server.url, migrated_duckdb, table, until)
        written += result.rows_written
    assert written == sum(source_per_day(server.url, table).values())
    if by_month or table != "entity_mentions":
        assert result.rows_reconciled > 0  # the widened edge chunk held rows from the run before


@pytest.mark.parametrize(
    ("table", "by_month", "untils"),
    [
        ("fred_indicators", False, [None, dt.date(2009, 3, 1), dt.date(2008, 5, 1)]),
        ("events", True, [None, dt.date(2024, 3, 15)]),
    ],
)
def test_moving_until_earlier_writes_nothing(legacy_postgres, migrated_duckdb, tmp_path, table, by_month, untils):
    """After a wider run, a narrower range lies inside completed chunks: nothing is read or written."""
    server, _ = legacy_postgres
    mapping = _events_by_month(tmp_path) if by_month else None
    checkpoint = tmp_path / "cp.json"
    first, *later = untils
    backfill(server.url, table, settings=migrated_duckdb, until=first, mapping_file=mapping, checkpoint_file=checkpoint)
    for until in later:
        result = backfill(server.url, table, settings=migrated_duckdb, until=until, mapping_file=mapping,
                          checkpoint_file=checkpoint)
        assert result.chunks_written == result.rows_written == 0
        assert result.chunks_skipped == result.chunks_total
        assert result.verification.ok, result.verification.mismatches[:3]
        _assert_exact(server.url, migrated_duckdb, table, first)


def test_cli_moving_until_keeps_verification_ok(legacy_postgres, migrated_duckdb, tmp_path):
    """The review's reproduction through the real command: --until 2009-03-01, then none."""
    server, _ = legacy_postgres
    env = {**os.environ, "BQREPO_DUCKDB_PATH": migrated_duckdb.duckdb_path}
    env.pop("BQREPO_URL", None)
    command = [BQREPO, "backfill", "--from", server.url, "--table", "fred_indicators",
               "--checkpoint", str(tmp_path / "cp.json")]
    for extra in (["--until", "2009-03-01"], []):
        done = subprocess.run(command + extra, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "MISMATCH" not in done.stdout and "OK" in done.stdout
    assert "5 already present from an earlier run" in " ".join(done.stdout.split())  # 2009-01-01's rows
    _assert_exact(server.url, migrated_duckdb, "fred_indicators", None)


def test_a_chunk_left_in_flight_is_remembered_across_other_ranges(legacy_postgres, migrated_duckdb, tmp_path):
    """Killed after writing 1961 but before recording it; a run over another range must not
    forget that 1961 may have landed, so the next full run reconciles it."""
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    calls: list = []
    with pytest.raises(Crash):
        backfill(server.url, "fred_indicators", settings=migrated_duckdb, checkpoint_file=checkpoint,
                 after_write=crash_on(3, calls))
    backfill(server.url, "fred_indicators", settings=migrated_duckdb, checkpoint_file=checkpoint,
             since=dt.date(1990, 1, 1), verify=False)
    assert json.loads(checkpoint.read_text())["in_flight"] == [calls[2].key]
    result = backfill(server.url, "fred_indicators", settings=migrated_duckdb, checkpoint_file=checkpoint)
    assert result.rows_reconciled > 0 and result.verification.ok
    assert json.loads(checkpoint.read_text())["in_flight"] == []
    _assert_exact(server.url, migrated_duckdb, "fred_indicators", None)


def test_version_1_checkpoint_resumes(legacy_postgres, migrated_duckdb, tmp_path):
    """A file written before in-flight chunks became a list: one key (or null), version 1."""
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"

    def crash(chunk):  # type: ignore[no-untyped-def]
        raise Crash(chunk.key)

    with pytest.raises(Crash):
        backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint, after_write=crash)
    state = json.loads(checkpoint.read_text())
    (key,) = state["in_flight"]
    checkpoint.write_text(json.dumps(state | {"version": 1, "in_flight": key}))
    result = backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint)
    assert result.rows_reconciled > 0 and result.verification.ok
    assert json.loads(checkpoint.read_text())["version"] == 2
    _assert_exact(server.url, migrated_duckdb, "world_bank", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 3}, "has format version 3; this bqrepo reads versions 1, 2"),
        ({"completed": {"1990-01-01": 5}}, "damaged ('1990-01-01' is not a chunk key"),
        ({"completed": {"1990-01-01T00:00:00+00:00/1991-01-01T00:00:00+00:00": 5}}, "is not a chunk key"),
        ({"in_flight": "1990-01-01/1991-01-01"}, "damaged ('in_flight' is not a list)"),
        ({"completed": None}, "damaged ('completed' is not an object)"),
    ],
)
def test_unreadable_checkpoints_are_refused_clearly(legacy_postgres, migrated_duckdb, tmp_path, change, message):
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint,
             until=dt.date(1992, 1, 1), verify=False)
    checkpoint.write_text(json.dumps(json.loads(checkpoint.read_text()) | change))
    with pytest.raises(ConfigurationError, match=__import__("re").escape(message)):
        backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint)


def test_checkpoint_file_text_is_unchanged_by_the_shared_json_encoder(tmp_path):
    """Written with bqrepo.json_encoding now: byte for byte what json.dump(indent=1, sort_keys=True) wrote."""
    from bqrepo.backfill import Checkpoint, Chunk

    path = tmp_path / "cp.json"
    checkpoint = Checkpoint.open(path, table="events", source="postgresql://me@db:5432/app core_event",
                                 destination="bigquery p.d", timestamp=True)
    months = [dt.datetime(2024, m, 1, tzinfo=dt.timezone.utc) for m in (11, 12)] + [dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)]
    later, earlier = Chunk(months[1], months[2]), Chunk(months[0], months[1])
    for chunk, rows in ((later, 7), (earlier, 0)):
        checkpoint.begin(chunk)
        checkpoint.commit(chunk, rows)
    checkpoint.begin(Chunk(months[2], dt.datetime(2025, 2, 1, tzinfo=dt.timezone.utc)))
    text = path.read_text("utf-8")
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True)
    assert list(json.loads(text)["completed"]) == [earlier.key, later.key]


def test_chunk_intervals():
    from bqrepo.backfill.chunks import Chunk, covered, merge

    day = dt.date
    parts = [Chunk(day(2009, 1, 1), day(2009, 3, 1)), Chunk(day(2008, 1, 1), day(2009, 1, 1)),
             Chunk(day(2011, 1, 1), day(2012, 1, 1)), Chunk(day(2008, 6, 1), day(2008, 7, 1))]
    union = merge(parts)
    assert union == [Chunk(day(2008, 1, 1), day(2009, 3, 1)), Chunk(day(2011, 1, 1), day(2012, 1, 1))]
    assert covered(Chunk(day(2008, 5, 1), day(2009, 2, 1)), union)
    assert not covered(Chunk(day(2009, 1, 1), day(2010, 1, 1)), union)
    assert not covered(Chunk(day(2010, 1, 1), day(2011, 6, 1)), union)
    year = Chunk(day(2009, 1, 1), day(2010, 1, 1))
    assert year.overlaps(Chunk(day(2009, 1, 1), day(2009, 3, 1)))
    assert not year.overlaps(Chunk(day(2010, 1, 1), day(2011, 1, 1)))  # half-open: touching is not overlapping
    stamp = Chunk(dt.datetime(2024, 3, 1, tzinfo=dt.UTC), dt.datetime(2024, 3, 2, tzinfo=dt.UTC))
    assert Chunk.from_key(stamp.key, timestamp=True) == stamp
    assert Chunk.from_key(year.key, timestamp=False) == year
    for bad in ("2009-01-01", "2010-01-01/2009-01-01", "2009-01-01T00:00:00/2010-01-01T00:00:00"):
        with pytest.raises(ValueError, match="not a chunk key"):
            Chunk.from_key(bad, timestamp="T" in bad)


def test_checkpoint_of_another_destination_is_refused(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    backfill(server.url, "world_bank", settings=migrated_duckdb, checkpoint_file=checkpoint, verify=False)
    other = Settings(duckdb_path=str(tmp_path / "other.duckdb"))
    with pytest.raises(ConfigurationError, match="belongs to another back-fill"):
        backfill(server.url, "world_bank", settings=other, checkpoint_file=checkpoint)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[events]\nsource = "core_event; drop"\n[events.columns]\nid = "id"\nmentioned_at = "mentioned_at"\n',
         "not a valid PostgreSQL identifier"),
        ('[nope]\nsource = "x"\n', "no bqrepo table 'nope'"),
        ('[fred_indicators]\nsource = "f"\nchunk = "day"\n[fred_indicators.columns]\nseries_id = "s"\ndate = "d"\n',
         "chunk 'day' is not a whole number of fred_indicators's MONTH partitions"),
        ('[world_bank]\nsource = "w"\n[world_bank.columns]\nid = "id"\nindicator_id = "i"\ndate = "d"\ncountry_code = "c"\n',
         "do not map 'id' for world_bank"),
        ('[events]\nsource = "e"\n[events.columns]\nmentioned_at = "m"\n', "map 'id' to a stable key"),
        ('[events]\nsource = "e"\n[events.columns]\nid = "id"\n', "required column(s) not mapped: mentioned_at"),
        ('[events]\nsource = "e"\n[events.columns]\nid = "id"\nmentioned_at = "m"\nnot_a_column = "x"\n',
         "events has no column 'not_a_column'"),
        ("[events\n", "not valid TOML"),
    ],
)
def test_mapping_mistakes_are_named(tmp_path, toml, message):
    path = tmp_path / "mapping.toml"
    path.write_text(toml)
    with pytest.raises(ConfigurationError, match=r".*" + __import__("re").escape(message)):
        load_mapping(path)


def test_custom_mapping_reads_another_schema(legacy_postgres, migrated_duckdb, tmp_path):
    """A mapping for a renamed app: a view in another schema, fewer columns."""
    server, _ = legacy_postgres
    engine = sa.create_engine(server.url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA IF NOT EXISTS legacy_app"))
        connection.execute(sa.text(
            "CREATE OR REPLACE VIEW legacy_app.news AS SELECT id AS uid, title AS headline, mentioned_at AS ts FROM core_event"
        ))
    engine.dispose()
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[events]\nsource = "legacy_app.news"\nchunk = "month"\n'
        '[events.columns]\nid = "uid"\ntitle = "headline"\nmentioned_at = "ts"\n'
    )
    result = backfill(
        server.url, "events", settings=migrated_duckdb, mapping_file=mapping, checkpoint_file=tmp_path / "c.json",
        since=dt.date(2024, 2, 20), until=dt.date(2024, 4, 10),
    )
    assert result.verification.ok and result.chunks_total == 3  # Feb 20-29, March, April 1-9
    assert destination_per_day(migrated_duckdb, "events") == source_per_day(server.url, "events")


@pytest.mark.bigquery
@pytest.mark.parametrize("table", ["events", "fred_indicators"])
def test_backfill_into_the_standin(legacy_postgres, bigquery_settings, tmp_path, table):
    server, _ = legacy_postgres
    migrate.upgrade(bigquery_settings)
    since, until = (dt.date(2024, 3, 1), dt.date(2024, 3, 8)) if table == "events" else (dt.date(1990, 1, 1), dt.date(1995, 1, 1))
    checkpoint = tmp_path / "cp.json"
    mapping = _by_day(tmp_path, "events") if table == "events" else None  # seven chunks, not one
    with pytest.raises(Crash):
        backfill(server.url, table, settings=bigquery_settings, since=since, until=until,
                 checkpoint_file=checkpoint, after_write=crash_on(3), mapping_file=mapping)
    result = backfill(server.url, table, settings=bigquery_settings, since=since, until=until, checkpoint_file=checkpoint,
                      mapping_file=mapping)
    assert result.rows_reconciled > 0
    assert result.verification.ok, result.verification.mismatches
    expected = {d: n for d, n in source_per_day(server.url, table).items() if since <= d < until}
    assert destination_per_day(bigquery_settings, table) == expected


class _StopAtStart(Exception):
    pass


@pytest.mark.bigquery
def test_a_plan_over_the_load_job_budget_warns_before_anything_is_written(legacy_postgres, bigquery_settings, tmp_path):
    """The warning reaches Progress.started, while stopping the run still costs nothing."""
    server, _ = legacy_postgres
    heard: list[Sequence[str]] = []

    class Recorder:
        def started(self, *, warnings: Sequence[str], **_: int) -> None:
            heard.append(warnings)
            raise _StopAtStart

        def chunk_done(self, chunk, rows: int) -> None:  # type: ignore[no-untyped-def]
            raise AssertionError("nothing may be written before the warning")

        def verifying(self) -> None:
            raise AssertionError("unreachable")

    with pytest.raises(_StopAtStart):
        backfill(server.url, "events", settings=bigquery_settings, checkpoint_file=tmp_path / "cp.json",
                 progress=Recorder(), rows_per_write=1)
    [[warning]] = heard
    assert "load jobs, over 500: BigQuery allows 1,500 per table per day" in warning


@pytest.mark.bigquery
def test_moving_until_on_the_standin(legacy_postgres, bigquery_settings, tmp_path):
    """Load jobs: --until mid-year, then later (the clipped 1992 chunk is reconciled), then back."""
    server, _ = legacy_postgres
    migrate.upgrade(bigquery_settings)
    since = dt.date(1990, 1, 1)
    checkpoint = tmp_path / "cp.json"
    written = []
    for until in (dt.date(1992, 5, 1), dt.date(1995, 1, 1), dt.date(1992, 5, 1)):
        result = backfill(server.url, "fred_indicators", settings=bigquery_settings, since=since, until=until,
                          checkpoint_file=checkpoint)
        assert result.verification.ok, result.verification.mismatches
        written.append(result.rows_written)
    expected = {d: n for d, n in source_per_day(server.url, "fred_indicators").items() if since <= d < dt.date(1995, 1, 1)}
    assert destination_per_day(bigquery_settings, "fred_indicators") == expected
    assert sum(written) == sum(expected.values()) and written[2] == 0


# --- issue 9 part 4: within BigQuery's load-job quota ------------------------------------


@pytest.mark.parametrize("table", list(SOURCE))
def test_a_six_year_backfill_plans_under_100_load_jobs(legacy_postgres, tmp_path, table):
    """BigQuery allows 1,500 load jobs per table per day; daily chunks made six years 2,192 jobs."""
    from bqrepo.backfill import Checkpoint
    from bqrepo.backfill.reader import SourceReader, source_engine
    from bqrepo.backfill.runner import plan_backfill

    server, _ = legacy_postgres
    mapping = load_mapping()[table]
    checkpoint = Checkpoint.open(tmp_path / "cp.json", table=table, source="s", destination="d", timestamp=mapping.timestamp)
    engine = source_engine(server.url)
    try:
        plan = plan_backfill(SourceReader(engine, mapping), mapping, checkpoint, dt.date(2019, 1, 1), dt.date(2025, 1, 1))
    finally:
        engine.dispose()
    # Each chunk is at most one job while it holds under rows_per_write rows; the sample's chunks do.
    assert len(plan.chunks) < 100 and plan.writes <= len(plan.chunks)
    assert sum(plan.rows) == sum(n for d, n in source_per_day(server.url, table).items() if dt.date(2019, 1, 1) <= d < dt.date(2025, 1, 1))


def test_a_chunk_is_written_in_bounded_writes_as_planned(legacy_postgres, migrated_duckdb, tmp_path):
    """Memory holds rows_per_write rows: a month of events takes several writes, exactly as planned."""
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    with pytest.raises(Crash):
        backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint, rows_per_write=2_000,
                 after_write=crash_on(1))
    result = backfill(server.url, "events", settings=migrated_duckdb, checkpoint_file=checkpoint, rows_per_write=2_000)
    total = sum(source_per_day(server.url, "events").values())
    assert result.writes_planned >= -(-total // 2_000) and result.writes <= result.writes_planned
    assert result.rows_reconciled > 0 and result.rows_written + result.rows_reconciled == total
    assert result.verification.ok, result.verification.mismatches[:3]
    assert destination_per_day(migrated_duckdb, "events") == source_per_day(server.url, "events")


def test_rejected_rows_are_counted_once_and_written_as_strict_json(legacy_postgres, migrated_duckdb, tmp_path):
    server, _ = legacy_postgres
    engine = sa.create_engine(server.url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS hostile_event"))
            connection.execute(
                sa.text("CREATE TABLE hostile_event (id text, title text, risk_score double precision, mentioned_at timestamptz)")
            )
            connection.execute(
                sa.text(
                    "INSERT INTO hostile_event VALUES "
                    "('g1', 'good', 1.0, '2024-03-01 10:00+00'), "
                    "('', 'two problems', 'NaN', '2024-03-01 11:00+00'), "
                    "('inf', 'one problem', 'Infinity', '2024-03-02 11:00+00'), "
                    "('g2', 'good', NULL, '2024-03-02 12:00+00')"
                )
            )
    finally:
        engine.dispose()
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        '[events]\nsource = "hostile_event"\nchunk = "day"\n\n[events.columns]\n'
        'id = "id"\ntitle = "title"\nrisk_score = "risk_score"\nmentioned_at = "mentioned_at"\n'
    )
    result = backfill(
        server.url, "events", settings=migrated_duckdb, mapping_file=mapping,
        checkpoint_file=tmp_path / "cp.json", verify=False,
    )
    assert (result.rows_written, result.rows_rejected) == (2, 2)
    assert result.rejected_file is not None
    lines = [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
        for line in result.rejected_file.read_text("utf-8").splitlines()
    ]
    assert len(lines) == 2
    two, one = sorted(lines, key=lambda line: line["source_row"]["id"])
    assert two["source_row"]["risk_score"] == "NaN" and one["source_row"]["risk_score"] == "Infinity"
    assert sorted(error["field"] for error in two["errors"]) == ["id", "risk_score"]
    assert (two["field"], two["reason"]) == (two["errors"][0]["field"], two["errors"][0]["reason"])
    assert [error["field"] for error in one["errors"]] == ["risk_score"]
    assert {row["id"] for row in destination_rows(migrated_duckdb, "events")} == {"g1", "g2"}
