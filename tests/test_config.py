"""Issue 11: building a service never connects, clear errors for a missing
migration and for transient failures, a Celery task that retries, and logging."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bqrepo.engine import create_engine
from bqrepo.errors import NotMigratedError, TransientError
from bqrepo.migrate import upgrade
from bqrepo.rows import EventRow
from bqrepo.schema import events
from bqrepo.service import TimeSeriesService
from bqrepo.settings import ConfigurationError, Settings
from bqrepo.testing.faults import INSERT_ALL, POST, FaultProxy
from bqrepo.writers import writer_for

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_building_the_service_connects_to_nothing() -> None:
    """Issue 11.3: construction with the network refused succeeds; only use connects."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used while building')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from bqrepo.service import TimeSeriesService\n"
        "from bqrepo.settings import Settings\n"
        "s = TimeSeriesService.from_settings(Settings(project_id='some-project', dataset='ds', "
        "emulator_host='127.0.0.1:9'))\n"
        "print(type(s.writer).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AutoBigQueryWriter"


def test_an_unreachable_backend_fails_at_the_first_query_with_a_clear_error() -> None:
    host = f"127.0.0.1:{_closed_port()}"
    service = TimeSeriesService.from_settings(
        Settings(project_id="some-project", dataset="ds", emulator_host=host)
    )
    with pytest.raises(ConfigurationError, match=f"cannot reach the BigQuery stand-in at BIGQUERY_EMULATOR_HOST={host}"):
        service.get_recent_events(NOW - timedelta(days=1), NOW)


def test_a_file_never_migrated_says_run_bqrepo_migrate(duckdb_settings: Settings) -> None:
    service = TimeSeriesService.from_settings(duckdb_settings)
    with pytest.raises(NotMigratedError, match=r"table events does not exist in DuckDB file .*run `bqrepo migrate`"):
        service.get_recent_events(NOW - timedelta(days=1), NOW)
    with pytest.raises(NotMigratedError, match="run `bqrepo migrate`"):
        service.insert_events([{"title": "t", "mentioned_at": NOW}])


def test_a_bigquery_dataset_never_migrated_says_run_bqrepo_migrate(bigquery_settings: Settings) -> None:
    service = TimeSeriesService.from_settings(bigquery_settings)
    with pytest.raises(NotMigratedError, match="run `bqrepo migrate`"):
        service.get_entity_trending()


def test_celery_task_retries_a_transient_failure_then_succeeds(
    faulty_bigquery: FaultProxy, faulty_settings: Settings
) -> None:
    """Issue 11.4: the README's task shape, run eagerly, against the stand-in through the proxy.

    503 with a reason the client does not retry itself escapes the client at
    once (as ``ServiceUnavailable`` does in production); bqrepo raises it as
    TransientError, which the task's ``autoretry_for`` names.
    """
    from celery import Celery

    upgrade(faulty_settings)
    service = TimeSeriesService.from_settings(faulty_settings)
    app = Celery("bqrepo_test", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    attempts: list[int] = []

    @app.task(bind=True, autoretry_for=(TransientError,), max_retries=3, default_retry_delay=0)
    def ingest(self, batch: list[dict[str, object]]) -> int:  # type: ignore[no-untyped-def]
        attempts.append(self.request.retries)
        return service.insert_events(batch).written

    faulty_bigquery.fail(POST, INSERT_ALL, status=503, reason="unavailable", times=2)
    batch = [{"title": "Blackout in Zulia", "mentioned_at": NOW, "risk_score": 0.5}]
    assert ingest.apply(args=[batch]).get() == 1
    assert attempts == [0, 1, 2]
    sent = [r for r in faulty_bigquery.requests if r.path.endswith("/insertAll")]
    assert [r.fault for r in sent] == ["fail", "fail", None]
    assert [e.title for e in service.get_recent_events(NOW - timedelta(days=1), NOW + timedelta(hours=1))] == [
        "Blackout in Zulia"
    ]


def test_each_bigquery_job_is_logged_once_at_info(
    bigquery_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade(bigquery_settings)
    service = TimeSeriesService.from_settings(bigquery_settings)
    load = writer_for(service.events.engine, "load")
    with caplog.at_level(logging.INFO, logger="bqrepo.jobs"):
        service.get_risk_trends(NOW - timedelta(days=2), NOW)
        load.write(events, [EventRow.model_validate({"title": "t", "mentioned_at": NOW})])
    jobs = [r.getMessage() for r in caplog.records if r.name == "bqrepo.jobs"]
    assert [line.split(" job ")[0] for line in jobs] == ["BigQuery query", "BigQuery load"], jobs
    for line in jobs:
        assert re.fullmatch(
            r"BigQuery \w+ job \S+ in US: \S+ bytes processed, \S+ bytes billed, cache hit \S+", line
        ), line


def _cli(*args: str, cwd: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BQREPO_URL", "GCP_PROJECT_ID", "BIGQUERY_DATASET")}
    return subprocess.run(
        [sys.executable, "-m", "bqrepo.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_verbose_logs_the_backend_once_and_no_alembic_plugin_lines(tmp_path: Path) -> None:
    """Issue 11.5: ``bqrepo -v migrate`` / ``-v info`` build several engines; one backend line."""
    for command in ("migrate", "info"):
        result = _cli("-v", command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("bqrepo backend: DuckDB file bqrepo.duckdb") == 1, result.stderr
        assert "alembic.runtime.plugins" not in result.stderr
        # the migration steps are still reported
        assert ("Running upgrade  -> 0001" in result.stderr) == (command == "migrate")


def test_version(tmp_path: Path) -> None:
    import bqrepo

    result = _cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"bqrepo {bqrepo.__version__}"


def test_two_processes_share_one_duckdb_file(tmp_path: Path) -> None:
    """Issue 11.4: two real processes insert and read at once; nothing lost, no driver error.

    CI runs 2 x 100 operations; benchmarks/duckdb_processes.py runs 2 x 1,000.
    """
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "duckdb_processes.py"
    result = subprocess.run(
        [sys.executable, str(script), "--ops", "100", "--file", str(tmp_path / "shared.duckdb")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    assert report["written"] == report["stored"] == 100


def test_a_file_held_open_by_another_process_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        engine = create_engine(Settings(duckdb_path=str(path)), duckdb_lock_wait=0.5)
        with pytest.raises(TransientError, match=rf"held by another process \(PID {holder.pid}, .*\) for more than 0.5 s: stop that process"):
            engine.connect()
    finally:
        holder.communicate("")
