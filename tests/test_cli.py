"""The ``bqrepo`` console script, through its real entry point and Typer's runner."""

from __future__ import annotations

import datetime as dt
import json
import socket
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bqrepo import migrate
from bqrepo.cli import app
from bqrepo.engine import create_engine
from bqrepo.repositories import EntityMentionRepository, EventRepository, FredRepository
from bqrepo.settings import Settings

BQREPO = str(Path(sys.executable).with_name("bqrepo"))
SETTINGS_VARS = ("BQREPO_URL", "BQREPO_DUCKDB_PATH", "BIGQUERY_EMULATOR_HOST", "GCP_PROJECT_ID", "BIGQUERY_DATASET")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env["COLUMNS"] = "120"
    return env | extra


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BQREPO, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


def invoke(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    env = {key: "" for key in SETTINGS_VARS} | {"BQREPO_DUCKDB_PATH": settings.duckdb_path, "COLUMNS": "120"}
    return CliRunner().invoke(app, list(args), env=env)


def assert_user_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    output = result.output if hasattr(result, "output") else result.stdout + result.stderr
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 1, output
    assert "Traceback" not in output and "error:" in output, output
    for fragment in fragments:
        assert fragment in output, output


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``bqrepo demo`` run once, with no configuration, in an empty directory."""
    directory = tmp_path_factory.mktemp("demo")
    result = run("demo", cwd=directory, timeout=180)
    return directory, result


@pytest.fixture
def demo_settings(demo_dir) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(duckdb_path=str(demo_dir[0] / "bqrepo.duckdb"))


def test_demo_with_no_configuration(demo_dir):
    directory, result = demo_dir
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (directory / "bqrepo.duckdb").is_file()
    for expected in ("1. migrate", "2. sample", "Trending entities", "Daily risk", "Latest FRED values", "Latest World Bank values"):
        assert expected in out, out
    assert "statsmodels macrodata" in out  # the real series, not the generated fallback
    assert any(block in out for block in "▁▂▃▄▅▆▇█")
    for series in ("GDPC1", "CPIAUCSL", "UNRATE"):
        assert series in out
    # the most recent burst (chevron, days 110-116 of 120) leads the trending table
    first = next(line for line in out.splitlines() if line.startswith("│  1 │"))
    assert first.split("│")[2].strip() == "chevron", out


def test_demo_is_not_loaded_twice(demo_dir, demo_settings):
    directory, _ = demo_dir
    engine = create_engine(demo_settings)
    now = dt.datetime.now(dt.UTC)
    before = EventRepository(engine).risk_trends(now - dt.timedelta(days=200), now + dt.timedelta(days=1), bucket="MONTH")
    engine.dispose()
    again = run("demo", cwd=directory, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "already loaded" in again.stdout
    engine = create_engine(demo_settings)
    after = EventRepository(engine).risk_trends(now - dt.timedelta(days=200), now + dt.timedelta(days=1), bucket="MONTH")
    engine.dispose()
    # Exact but for the averages' floating-point summation order, which DuckDB's threads
    # vary now that de-duplication runs as a real window (docs/queries.md).
    assert [(b.bucket_start, b.max_risk, b.event_count) for b in before] == [
        (b.bucket_start, b.max_risk, b.event_count) for b in after
    ]
    assert [b.avg_risk for b in after] == [pytest.approx(b.avg_risk, rel=1e-12) for b in before]


def test_real_macro_data_is_loaded(demo_settings):
    engine = create_engine(demo_settings)
    points = FredRepository(engine).series("UNRATE", dt.date(2009, 1, 1), dt.date(2010, 1, 1))
    engine.dispose()
    # statsmodels macrodata: US unemployment 2009Q1-Q3
    assert [(p.date, p.value) for p in points] == [
        (dt.date(2009, 1, 1), 8.1),
        (dt.date(2009, 4, 1), 9.2),
        (dt.date(2009, 7, 1), 9.6),
    ]


def test_info_shows_tables_counts_and_revision(demo_dir):
    directory, _ = demo_dir
    result = run("info", cwd=directory)
    assert result.returncode == 0, result.stderr
    for expected in ("duckdb", "0001", "events", "mentioned_at by DAY", "event_type, source_name", "world_bank", "date by YEAR"):
        assert expected in result.stdout, result.stdout
    data = json.loads(run("info", "--json", cwd=directory).stdout)
    rows = {t["name"]: t["rows"] for t in data["tables"]}
    assert rows["fred_indicators"] == 1015 and rows["events"] > 5000
    assert data["alembic_revision"] == "0001"


def test_info_before_anything_exists(tmp_path):
    result = run("info", cwd=tmp_path)
    assert result.returncode == 0 and "no database file yet" in result.stdout
    assert not (tmp_path / "bqrepo.duckdb").exists()


def test_migrate_works_from_any_directory(tmp_path):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    result = run("migrate", cwd=elsewhere, env=clean_env(BQREPO_DUCKDB_PATH=str(tmp_path / "db.duckdb")))
    assert result.returncode == 0, result.stderr
    assert "revision 0001" in result.stdout
    assert migrate.current_revision(Settings(duckdb_path=str(tmp_path / "db.duckdb"))) == "0001"


def test_url_option_wins_over_the_environment(tmp_path):
    target = tmp_path / "chosen.duckdb"
    result = run("--url", f"duckdb:///{target}", "migrate", cwd=tmp_path, env=clean_env(BQREPO_DUCKDB_PATH=str(tmp_path / "env.duckdb")))
    assert result.returncode == 0, result.stderr
    assert target.is_file() and not (tmp_path / "env.duckdb").exists()


def test_query_commands_match_the_repositories(demo_settings):
    engine = create_engine(demo_settings)
    as_of = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        trending = EntityMentionRepository(engine).trending("risk", limit=5, as_of=as_of)
        start = as_of - dt.timedelta(days=10)
        buckets = EventRepository(engine).risk_trends(start, as_of, bucket="DAY")
        recent = EventRepository(engine).recent(start, as_of, event_type="energy", limit=7)
        latest = FredRepository(engine).latest()
    finally:
        engine.dispose()
    iso = as_of.isoformat()
    got = json.loads(invoke(demo_settings, "trending", "--metric", "risk", "--limit", "5", "--as-of", iso, "--json").stdout)
    assert [(t["entity_id"], t["mentions"]) for t in got] == [(t.entity_id, t.mentions) for t in trending]
    assert [t["score"] for t in got] == pytest.approx([t.score for t in trending], rel=1e-12)

    got = json.loads(invoke(demo_settings, "risk-trends", "--since", start.isoformat(), "--until", iso, "--json").stdout)
    assert [(dt.datetime.fromisoformat(b["bucket_start"]), b["event_count"]) for b in got] == [
        (b.bucket_start, b.event_count) for b in buckets
    ]

    got = json.loads(
        invoke(demo_settings, "recent", "--since", start.isoformat(), "--until", iso, "--event-type", "energy", "--limit", "7", "--json").stdout
    )
    assert [e["id"] for e in got] == [e.id for e in recent] and len(got) == 7

    got = json.loads(invoke(demo_settings, "series", "--json").stdout)
    assert [(v["series_id"], v["value"]) for v in got] == [(v.series_id, v.value) for v in latest]

    table = invoke(demo_settings, "risk-trends", "--since", start.isoformat(), "--until", iso)
    assert table.exit_code == 0 and "avg risk" in table.stdout and "events" in table.stdout
    series = invoke(demo_settings, "series", "GDPC1", "--since", "2008-01-01")
    assert series.exit_code == 0 and "2009-07-01" in series.stdout and "12,990.34" in series.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["recent", "--since", "yesterday-ish"], ["--since", "not a date"]),
        (["recent", "--since", "2024-03-02", "--until", "2024-03-01"], ["must be before"]),
        (["trending", "--metric", "clicks"], ["--metric must be"]),
        (["risk-trends", "--bucket", "fortnight"], ["fortnight"]),
        (["series", "--since", "2024-13-01"], ["not a valid date", "month must be in 1..12"]),
        (["ingest", "no_such_table", "x.jsonl"], ["no table 'no_such_table'"]),
        (["ingest", "events", "does-not-exist.jsonl"], ["no such file"]),
        (["migrate", "nosuch"], ["nosuch"]),
        (["backfill", "--from", "mysql://u:pw@h/db", "--table", "events"], ["reads PostgreSQL"]),
        (["backfill", "--from", "postgresql://u:pw@h/db", "--table", "events", "--since", "2024-02-30"], ["not a valid date", "day is out of range for month"]),
    ],
)
def test_user_mistakes_are_one_clear_line(demo_settings, args, fragments):
    assert_user_error(invoke(demo_settings, *args), *fragments)


def test_bad_settings_and_unreachable_databases(tmp_path):
    assert_user_error(run("info", cwd=tmp_path, env=clean_env(GCP_PROJECT_ID="Bad_Project")), "GCP_PROJECT_ID")
    assert_user_error(run("--url", "ftp://nowhere", "info", cwd=tmp_path), "BQREPO_URL")
    for memory in ("duckdb://", "duckdb:///:memory:"):
        assert_user_error(run("--url", memory, "migrate", cwd=tmp_path), "in-memory DuckDB")
    assert_user_error(run("--url", "duckdb:////no/such/dir/x.duckdb", "migrate", cwd=tmp_path))
    # a stand-in that is not running fails at once, not after the client's 600 s of retries
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    stopped = clean_env(BQREPO_URL="bigquery://test-project/ds", BIGQUERY_EMULATOR_HOST=closed)
    for command in ("info", "migrate", "recent"):
        assert_user_error(run(command, cwd=tmp_path, env=stopped), f"BIGQUERY_EMULATOR_HOST={closed}")
    # the demo never fills a BigQuery dataset unless asked to
    assert_user_error(run("demo", cwd=tmp_path, env=stopped), "--yes")
    # a DuckDB file that exists but was never migrated
    (tmp_path / "empty").mkdir()
    engine = create_engine(Settings(duckdb_path=str(tmp_path / "empty" / "x.duckdb")))
    engine.connect().close()
    engine.dispose()
    assert_user_error(
        run("--url", f"duckdb:///{tmp_path / 'empty' / 'x.duckdb'}", "recent", cwd=tmp_path), "bqrepo migrate"
    )


@pytest.fixture
def migrated(duckdb_settings: Settings) -> Settings:
    migrate.upgrade(duckdb_settings)
    return duckdb_settings


GOOD_EVENT = {"id": "e1", "title": "ok", "mentioned_at": "2024-03-01T10:00:00+00:00", "risk_score": 12.5, "metadata": {"a": [1]}}


def _events(settings: Settings) -> list:
    engine = create_engine(settings)
    try:
        return EventRepository(engine).recent(
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC), limit=1000
        )
    finally:
        engine.dispose()


def test_ingest_jsonl_writes_good_rows_and_names_bad_ones(migrated, tmp_path):
    lines = [
        json.dumps(GOOD_EVENT),
        json.dumps({**GOOD_EVENT, "id": "e2", "mentioned_at": "2024-03-01T10:00:00"}),  # naive
        "{not json",
        json.dumps({**GOOD_EVENT, "id": "e3", "risk_score": "NaN"}),
        "",
        json.dumps({**GOOD_EVENT, "id": "e4", "title": "Robert'); DROP TABLE events;--"}),
        json.dumps({**GOOD_EVENT, "id": "e5", "colour": "red"}),
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = invoke(migrated, "ingest", "events", str(source))
    assert result.exit_code == 1, result.output
    rejected_file = tmp_path / "events.rejected.jsonl"
    assert str(rejected_file) in " ".join(result.output.split()).replace(" ", "") or "events.rejected.jsonl" in result.output
    assert "wrote 2 row(s)" in result.output
    rejected = [json.loads(line) for line in rejected_file.read_text().splitlines()]
    by_line = {r["position"]: r for r in rejected}
    assert sorted(by_line) == [2, 3, 4, 7]
    assert by_line[2]["errors"][0]["field"] == "mentioned_at" and "naive" in by_line[2]["errors"][0]["reason"]
    assert "not valid JSON" in by_line[3]["errors"][0]["reason"]
    assert by_line[4]["errors"][0]["field"] == "risk_score"
    assert by_line[7]["errors"][0]["field"] == "colour"
    # the back-fill's shape: field/reason of the first problem, then every {field, reason}
    assert list(by_line[2]) == ["position", "field", "reason", "errors", "record"]
    assert (by_line[2]["field"], by_line[2]["reason"]) == (by_line[2]["errors"][0]["field"], by_line[2]["errors"][0]["reason"])
    stored = {e.id: e for e in _events(migrated)}
    assert set(stored) == {"e1", "e4"}
    assert stored["e4"].title == "Robert'); DROP TABLE events;--" and stored["e1"].metadata == {"a": [1]}


def test_ingest_keeps_its_input_and_one_rejected_file_per_input(migrated, tmp_path):
    bad = json.dumps({**GOOD_EVENT, "id": "bad", "mentioned_at": "2024-03-01T10:00:00"})
    # a file of fixed rejections, ingested again: its own name must not be the default output
    fixed = tmp_path / "fixed.rejected.jsonl"
    fixed.write_text(json.dumps(GOOD_EVENT) + "\n" + bad + "\n")
    result = invoke(migrated, "ingest", "events", str(fixed))
    assert result.exit_code == 1 and fixed.exists()
    assert (tmp_path / "fixed.rejected.rejected.jsonl").exists()
    assert_user_error(invoke(migrated, "ingest", "events", str(fixed), "--rejected", str(fixed)), "is the input file")
    assert fixed.read_text().count("\n") == 2
    assert_user_error(
        invoke(migrated, "ingest", "events", str(fixed), "--rejected", str(tmp_path / "no" / "x.jsonl")),
        "no such directory",
    )
    # two monthly files keep their own rejections
    for month in ("2026-11", "2026-12"):
        (tmp_path / f"events.{month}.jsonl").write_text(bad.replace('"bad"', f'"bad-{month}"') + "\n")
        assert invoke(migrated, "ingest", "events", str(tmp_path / f"events.{month}.jsonl")).exit_code == 1
    for month in ("2026-11", "2026-12"):
        [entry] = (tmp_path / f"events.{month}.rejected.jsonl").read_text().splitlines()
        assert json.loads(entry)["record"]["id"] == f"bad-{month}"
    # a clean run removes the stale rejections of an earlier one
    (tmp_path / "events.2026-11.jsonl").write_text(json.dumps(GOOD_EVENT) + "\n")
    assert invoke(migrated, "ingest", "events", str(tmp_path / "events.2026-11.jsonl")).exit_code == 0
    assert not (tmp_path / "events.2026-11.rejected.jsonl").exists()


def test_ingest_reads_a_byte_order_mark_and_writes_strict_json(migrated, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    excel = tmp_path / "mentions.csv"
    excel.write_bytes("entity_id,mentioned_at\npdvsa,2024-03-01T10:00:00Z\n".encode("utf-8-sig"))
    result = invoke(migrated, "ingest", "entity_mentions", str(excel))
    assert result.exit_code == 0 and "wrote 1 row(s)" in result.output

    parquet = tmp_path / "fred.parquet"
    pq.write_table(pa.table({"series_id": ["X"], "date": [dt.date(2024, 1, 1)], "value": [float("nan")]}), parquet)
    assert invoke(migrated, "ingest", "fred_indicators", str(parquet)).exit_code == 1
    [line] = (tmp_path / "fred.rejected.jsonl").read_text().splitlines()
    entry = json.loads(line, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    assert entry["record"]["value"] == "NaN" and entry["errors"][0]["field"] == "value"


def test_ingest_csv_and_parquet(migrated, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = tmp_path / "mentions.csv"
    csv_file.write_text(
        "entity_id,event_id,mentioned_at,context\n"
        "pdvsa,e1,2024-03-01T10:00:00Z,\"a, quoted\"\n"
        ",e1,2024-03-01T10:00:00Z,missing entity\n"
        "opec,,2024-03-02T00:00:00+01:00,\n"
    )
    result = invoke(migrated, "ingest", "entity_mentions", str(csv_file), "--rejected", str(tmp_path / "bad.jsonl"))
    assert result.exit_code == 1
    (bad,) = [json.loads(line) for line in (tmp_path / "bad.jsonl").read_text().splitlines()]
    assert bad["position"] == 3 and bad["errors"][0]["field"] == "entity_id"

    table = pa.table(
        {
            "series_id": ["UNRATE", "UNRATE", None],
            "date": [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)],
            "value": [3.7, 3.9, 4.0],
            "ingested_at": pa.array([dt.datetime(2024, 3, 5, tzinfo=dt.UTC)] * 3, type=pa.timestamp("us", tz="UTC")),
        }
    )
    parquet = tmp_path / "fred.parquet"
    pq.write_table(table, parquet)
    result = invoke(migrated, "ingest", "fred_indicators", str(parquet))
    assert result.exit_code == 1 and "wrote 2 row(s)" in result.output
    engine = create_engine(migrated)
    points = FredRepository(engine).series("UNRATE", dt.date(2024, 1, 1), dt.date(2025, 1, 1))
    engine.dispose()
    assert [(p.date, p.value) for p in points] == [(dt.date(2024, 1, 1), 3.7), (dt.date(2024, 2, 1), 3.9)]

    clean = tmp_path / "clean.parquet"
    pq.write_table(table.slice(0, 2), clean)
    again = invoke(migrated, "ingest", "fred_indicators", str(clean))
    assert again.exit_code == 0 and "wrote 2 row(s)" in again.output
    assert not (tmp_path / "clean.rejected.jsonl").exists()

    not_parquet = tmp_path / "broken.parquet"
    not_parquet.write_text("hello")
    assert_user_error(invoke(migrated, "ingest", "fred_indicators", str(not_parquet)), "Parquet")
    assert_user_error(invoke(migrated, "ingest", "fred_indicators", str(tmp_path / "mentions.csv"), "--format", "xml"), "--format")


def _strict_lines(path: Path) -> list[dict]:
    return [
        json.loads(line, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
        for line in path.read_text("utf-8").splitlines()
    ]


def test_ingest_rejects_hostile_rows_one_line_each_and_writes_the_rest(migrated, tmp_path):
    deep_text = '{"id": "deep-text", "mentioned_at": "2024-03-01T10:00:00Z", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    lines = [
        json.dumps(GOOD_EVENT),
        json.dumps({**GOOD_EVENT, "id": "late", "mentioned_at": "9999-12-31T23:00:00-05:00"}),
        json.dumps({**GOOD_EVENT, "id": "early", "mentioned_at": "0001-01-01T00:00:00+05:00"}),
        deep_text,
        json.dumps({**GOOD_EVENT, "id": "deep", "metadata": json.loads('{"a": ' * 300 + "1" + "}" * 300)}),
        json.dumps({**GOOD_EVENT, "id": "huge", "metadata": {"n": 2**70}}),
        '{"id": "bigint-text", "mentioned_at": "2024-03-01T10:00:00Z", "risk_score": ' + "9" * 5000 + "}",
        json.dumps({**GOOD_EVENT, "id": "", "risk_score": "NaN", "title": "\ud800"}),
        json.dumps({**GOOD_EVENT, "id": "e9"}),
    ]
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = invoke(migrated, "ingest", "events", str(source))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "wrote 2 row(s)" in result.output and "rejected 7 row(s)" in result.output
    rejected = {entry["position"]: entry for entry in _strict_lines(tmp_path / "events.rejected.jsonl")}
    assert sorted(rejected) == [2, 3, 4, 5, 6, 7, 8]
    for position in (2, 3):
        [error] = rejected[position]["errors"]
        assert error["field"] == "mentioned_at" and "outside the timestamp range" in error["reason"]
    assert "nested too deep" in rejected[4]["errors"][0]["reason"]
    assert rejected[5]["errors"] == [{"field": "metadata", "reason": rejected[5]["errors"][0]["reason"]}]
    assert "nested more than 200 levels" in rejected[5]["errors"][0]["reason"]
    assert "64-bit range" in rejected[6]["errors"][0]["reason"]
    assert "4300 digits" in rejected[7]["errors"][0]["reason"]
    assert sorted(error["field"] for error in rejected[8]["errors"]) == ["id", "risk_score", "title"]
    assert rejected[8]["record"]["title"] == "\\ud800"  # the lone surrogate, shown as its escape
    assert {e.id for e in _events(migrated)} == {"e1", "e9"}


def test_a_csv_cell_that_is_not_json_names_its_field_and_keeps_the_record(migrated, tmp_path):
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "id,title,mentioned_at,risk_score,metadata\n"
        'c1,fine,2024-03-01T10:00:00Z,1.5,"{""a"": 1}"\n'
        "c2,broken metadata,2024-03-01T10:00:00Z,2.5,{not json\n"
        "c3,two problems,2024-03-01T10:00:00Z,NaN,[1\n"
    )
    result = invoke(migrated, "ingest", "events", str(csv_file))
    assert result.exit_code == 1 and "wrote 1 row(s)" in result.output and "rejected 2 row(s)" in result.output
    first, second = _strict_lines(tmp_path / "events.rejected.jsonl")
    assert first["position"] == 3 and [e["field"] for e in first["errors"]] == ["metadata"]
    assert "not valid JSON" in first["errors"][0]["reason"]
    assert first["record"] == {
        "id": "c2", "title": "broken metadata", "mentioned_at": "2024-03-01T10:00:00Z",
        "risk_score": "2.5", "metadata": "{not json",
    }
    assert second["position"] == 4 and [e["field"] for e in second["errors"]] == ["metadata", "risk_score"]
    assert {e.id: e.metadata for e in _events(migrated)} == {"c1": {"a": 1}}


@pytest.mark.bigquery
def test_info_on_a_dataset_that_does_not_exist_yet(bigquery_settings, tmp_path):
    env = clean_env(
        BQREPO_URL=bigquery_settings.url or "",
        BIGQUERY_EMULATOR_HOST=bigquery_settings.emulator_host or "",
        GCP_PROJECT_ID=bigquery_settings.project_id,
    )
    result = run("info", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "revision  none (run `bqrepo migrate`)" in result.stdout, result.stdout
    data = json.loads(run("info", "--json", cwd=tmp_path, env=env).stdout)
    assert data["pending_rebuilds"] == [] and data["alembic_revision"] is None
    assert not any(table["exists"] for table in data["tables"])


@pytest.mark.bigquery
def test_info_and_ingest_on_the_standin(bigquery_settings, tmp_path):
    env = clean_env(
        BQREPO_URL=bigquery_settings.url or "",
        BIGQUERY_EMULATOR_HOST=bigquery_settings.emulator_host or "",
        GCP_PROJECT_ID=bigquery_settings.project_id,
    )
    assert run("migrate", cwd=tmp_path, env=env).returncode == 0
    source = tmp_path / "events.jsonl"
    source.write_text("\n".join(json.dumps({**GOOD_EVENT, "id": f"e{i}"}) for i in range(5)) + "\n")
    ingested = run("ingest", "events", str(source), "--method", "load", cwd=tmp_path, env=env)
    assert ingested.returncode == 0, ingested.stderr
    info = run("info", "--json", cwd=tmp_path, env=env)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["backend"] == "bigquery" and data["dataset"] == bigquery_settings.dataset
    tables = {t["name"]: t for t in data["tables"]}
    assert tables["events"]["partitioning"] == "mentioned_at by DAY"
    assert tables["events"]["clustering"] == ["event_type", "source_name"]
    assert tables["events"]["require_partition_filter"] is True
    assert tables["events"]["rows"] == 5
    assert tables["world_bank"]["partitioning"] == "date by YEAR"
    assert data["pending_rebuilds"] == []
    recent = run("recent", "--since", "2024-03-01", "--until", "2024-03-02", "--json", cwd=tmp_path, env=env)
    assert sorted(e["id"] for e in json.loads(recent.stdout)) == [f"e{i}" for i in range(5)]
    # Streamed: an identical line twice is sent once and said so (issue 9 part 2).
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(json.dumps({**GOOD_EVENT, "id": "e-twice"}) for _ in range(2)) + "\n")
    streamed = run("ingest", "events", str(twice), "--method", "stream", cwd=tmp_path, env=env)
    assert streamed.returncode == 0, streamed.stderr
    assert "wrote 1 row(s)" in streamed.stdout and "(1 identical copies" in " ".join(streamed.stdout.split())


def test_demo_falls_back_to_generated_fred_series(monkeypatch):
    """Without statsmodels the demo still has FRED-shaped data, and says it is generated."""
    from bqrepo import sample_data
    from bqrepo.rows import FredObservation, validate_rows

    monkeypatch.setattr(sample_data, "macrodata_csv", lambda: None)
    sample = sample_data.fred_observations()
    assert sample.source.startswith("generated")
    assert {r["series_id"] for r in sample.records} == {"GDPC1", "CPIAUCSL", "UNRATE", "TB3MS", "M1SL"}
    assert validate_rows(FredObservation, sample.records).ok


def test_python_dash_m_runs_the_cli_and_empty_results_say_so(migrated, tmp_path):
    import sys

    help_text = subprocess.run([sys.executable, "-m", "bqrepo.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "ingest" in help_text.stdout
    result = invoke(migrated, "series", "NO-SUCH-SERIES")
    assert result.exit_code == 0 and "(no rows)" in result.output


def test_table_commands_serve_any_declared_table(demo_settings):
    """``bqrepo table ...`` answers as the generic repository does, and names the option at fault."""
    from bqrepo.repositories import TimeSeriesRepository
    from bqrepo.schema import fred_indicators

    engine = create_engine(demo_settings)
    try:
        expected = TimeSeriesRepository(engine, fred_indicators).latest(columns=["value"])
    finally:
        engine.dispose()
    got = json.loads(invoke(demo_settings, "table", "latest", "fred_indicators", "--column", "value", "--json").stdout)
    assert [(v["series_id"], v["date"], v["value"]) for v in got] == [
        (v["series_id"], v["date"].isoformat(), v["value"]) for v in expected
    ]
    yearly = invoke(demo_settings, "table", "buckets", "fred_indicators", "--value", "value", "--bucket", "YEAR",
                    "--where", "series_id=GDPC1", "--since", "2008-01-01", "--until", "2010-01-01")
    assert yearly.exit_code == 0 and "2008-01-01" in yearly.stdout and "2009-01-01" in yearly.stdout
    for args, fragments in [
        (["table", "latest", "no_such_table"], ["no table 'no_such_table'", "fred_indicators"]),
        (["table", "rows", "events", "--where", "nope=1"], ["--where", "nope"]),
        (["table", "rows", "events", "--where", "nope"], ["--where", "not COLUMN=VALUE"]),
        (["table", "series", "world_bank", "--key", "indicator_id=x"], ["--key", "country_code"]),
        (["table", "buckets", "events", "--bucket", "fortnight"], ["--bucket", "fortnight"]),
        (["table", "ranking", "fred_indicators", "--key", "series_id"], ["DATE"]),
        (["--metadata", "no_such_module:metadata", "table", "latest", "events"], ["--metadata", "no_such_module"]),
        (["--metadata", "bqrepo.schema:events", "ingest", "events", "x.jsonl"], ["--metadata", "not a sqlalchemy MetaData"]),
    ]:
        assert_user_error(invoke(demo_settings, *args), *fragments)
