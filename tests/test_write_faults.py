"""Writes and the back-fill through a BigQuery that misbehaves (issue 9, part 3).

A lost answer to ``jobs.insert`` is not a failure (the rows are stored once),
a job BigQuery fails for its own reasons is retried under a new job id and
never comes back as rejected rows, and the back-fill never marks a chunk
done whose rows were not stored.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.api_core.retry import Retry

from bqrepo import migrate, schema
from bqrepo.backfill import backfill
from bqrepo.engine import create_engine
from bqrepo.errors import TransientError
from bqrepo.rows import EventRow
from bqrepo.settings import Settings
from bqrepo.testing.faults import INSERT_ALL, JOBS_INSERT, POST, PUT, FaultProxy, is_load_job
from bqrepo.testing.standin import LocalBigQuery
from bqrepo.repositories import EventRepository
from bqrepo.writers import BigQueryLoadWriter, BigQueryStreamWriter, writer_for

pytestmark = pytest.mark.bigquery

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
#: Short backoff for tests: the default waits up to 10 minutes.
FAST = Retry(initial=0.05, maximum=0.2, multiplier=2.0, timeout=3.0)
UPLOADS = "^/upload/"


@pytest.fixture(scope="module")
def migrated(standin: LocalBigQuery) -> Settings:
    """One migrated dataset for the module (a migration takes ~10 s); tests use their own ids."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    settings = Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=standin.host,
    )
    migrate.upgrade(settings)
    return settings


@pytest.fixture
def engine(migrated: Settings, faulty_bigquery: FaultProxy) -> Iterator[sa.Engine]:
    """The module's dataset, reached through this test's proxy."""
    through = Settings(
        project_id=migrated.project_id,
        dataset=migrated.dataset,
        url=migrated.url,
        emulator_host=faulty_bigquery.host,
    )
    engine = create_engine(through)
    yield engine
    engine.dispose()


def events(n: int, days: int = 5, kind: str = "protest") -> list[EventRow]:
    prefix = uuid.uuid4().hex[:8]
    return [
        EventRow(  # type: ignore[call-arg]  # the id derives from source_url
            title=f"event {i}",
            source_url=f"https://news.example/{prefix}/{i}",
            event_type=kind,
            risk_score=i / 7,
            mentioned_at=T0 + dt.timedelta(days=i % days, seconds=i),
            created_at=T0,
        )
        for i in range(n)
    ]


def stored_ids(engine: sa.Engine, rows: Sequence[EventRow]) -> Counter[str]:
    """How many raw copies of each of ``rows``' ids the table holds."""
    table = schema.events
    statement = sa.select(table.c.id).where(
        table.c.id.in_(sorted({row.id for row in rows})),
        table.c.mentioned_at >= dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    )
    with engine.connect() as connection:
        return Counter(connection.execute(statement).scalars())


def job_ids(proxy: FaultProxy) -> list[str]:
    return [r.body["jobReference"]["jobId"] for r in proxy.recorded(POST, UPLOADS)]


def test_a_lost_answer_to_jobs_insert_loads_each_row_once(
    engine: sa.Engine, faulty_bigquery: FaultProxy
) -> None:
    """The client re-sends the upload with the same job id and gets 409: wait for that job."""
    rows = events(40)
    faulty_bigquery.drop_response(POST, JOBS_INSERT, when=is_load_job)
    result = BigQueryLoadWriter.for_bind(engine, job_retry=FAST).write(schema.events, rows)
    assert (result.written, result.rejected) == (40, [])
    assert [r.status for r in faulty_bigquery.recorded(POST, UPLOADS)] == [200, 409]
    assert len(set(job_ids(faulty_bigquery))) == 1
    assert job_ids(faulty_bigquery)[0].startswith("bqrepo_load_")
    assert stored_ids(engine, rows) == {row.id: 1 for row in rows}


def test_a_lost_answer_to_the_last_chunk_of_a_resumable_upload_loads_once(
    engine: sa.Engine, faulty_bigquery: FaultProxy
) -> None:
    """Over 5 MB the client uploads in a session; the retried last chunk finds it closed."""
    rows = [row.model_copy(update={"content": "c" * 400}) for row in events(10_000)]
    faulty_bigquery.drop_response(PUT, UPLOADS)
    result = BigQueryLoadWriter.for_bind(engine, job_retry=FAST).write(schema.events, rows)
    assert (result.written, result.rejected) == (10_000, [])
    puts = faulty_bigquery.recorded(PUT, UPLOADS)
    assert [p.fault for p in puts][:1] == ["drop"] and len(puts) >= 2
    assert stored_ids(engine, rows) == {row.id: 1 for row in rows}


def test_cli_ingest_by_load_jobs_with_lost_answers_stores_each_row_once(
    engine: sa.Engine, migrated: Settings, faulty_bigquery: FaultProxy, tmp_path: Path
) -> None:
    """``bqrepo ingest --method load``: a lost answer on every other batch, each row once."""
    rows = events(3_000)
    source = tmp_path / "events.jsonl"
    source.write_text("".join(
        json.dumps({"title": r.title, "source_url": r.source_url, "mentioned_at": r.mentioned_at.isoformat()}) + "\n"
        for r in rows
    ))
    faulty_bigquery.drop_response(POST, JOBS_INSERT, when=is_load_job, times=None, probability=0.5)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQREPO_", "BIGQUERY_", "GCP_"))}
    env |= {"BQREPO_URL": migrated.url or "", "BIGQUERY_EMULATOR_HOST": faulty_bigquery.host,
            "GCP_PROJECT_ID": migrated.bigquery_project}
    done = subprocess.run(
        [sys.executable, "-m", "bqrepo.cli", "ingest", "events", str(source), "--method", "load",
         "--batch-size", "500"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drop" in faulty_bigquery.faults()
    assert stored_ids(engine, rows) == {row.id: 1 for row in rows}


@pytest.mark.parametrize("reason", ["backendError", "internalError", "rateLimitExceeded"])
def test_a_transiently_failed_job_is_run_again_under_a_new_id(
    engine: sa.Engine, faulty_bigquery: FaultProxy, reason: str
) -> None:
    rows = events(30)
    faulty_bigquery.fail_job(reason=reason, times=2)
    result = BigQueryLoadWriter.for_bind(engine, job_retry=FAST).write(schema.events, rows)
    assert (result.written, result.rejected) == (30, [])
    assert faulty_bigquery.faults() == ["fail_job", "fail_job"]
    assert len(set(job_ids(faulty_bigquery))) == 3
    assert stored_ids(engine, rows) == {row.id: 1 for row in rows}


def test_transient_failures_that_outlast_the_retry_raise_transient_error(
    engine: sa.Engine, faulty_bigquery: FaultProxy
) -> None:
    rows = events(10)
    faulty_bigquery.fail_job(reason="backendError", times=None)
    writer = BigQueryLoadWriter.for_bind(engine, job_retry=FAST)
    with pytest.raises(TransientError, match="backendError.*none of its 10 rows were stored.*write the batch again later"):
        writer.write(schema.events, rows)
    assert len(job_ids(faulty_bigquery)) >= 3
    assert stored_ids(engine, rows) == {}


def test_quota_exceeded_is_not_waited_for(engine: sa.Engine, faulty_bigquery: FaultProxy) -> None:
    rows = events(10)
    faulty_bigquery.fail_job(reason="quotaExceeded", times=None)
    writer = BigQueryLoadWriter.for_bind(engine, job_retry=FAST)
    with pytest.raises(TransientError, match="quotaExceeded.*wait at least 10 minutes"):
        writer.write(schema.events, rows)
    assert len(job_ids(faulty_bigquery)) == 1
    assert stored_ids(engine, rows) == {}


def test_rows_bigquery_refuses_are_still_rejected(engine: sa.Engine, faulty_bigquery: FaultProxy) -> None:
    """A job failing because of the data is not retried: its rows come back rejected."""
    rows = events(3)
    faulty_bigquery.fail_job(reason="invalid", message="JSON parsing error in row starting at position 0")
    result = BigQueryLoadWriter.for_bind(engine, job_retry=FAST).write(schema.events, rows)
    assert result.written == 0 and len(result.rejected) == 3
    assert "JSON parsing error" in result.rejected[0].reason
    assert len(job_ids(faulty_bigquery)) == 1


def test_load_jobs_through_ten_percent_faults_store_each_row_once(
    engine: sa.Engine, faulty_bigquery: FaultProxy
) -> None:
    """Lost answers, resets, failed jobs and 503s on 10% of requests: each row once."""
    rows = events(12_000, days=30)
    faulty_bigquery.misbehave(0.1)
    writer = BigQueryLoadWriter.for_bind(engine, job_retry=Retry(initial=0.05, maximum=0.5, timeout=60))
    writer.max_job_bytes = 60_000  # ~50 jobs, so that faults happen
    written = sum(writer.write(schema.events, rows[i : i + 2_000]).written for i in range(0, 12_000, 2_000))
    assert written == 12_000
    assert len(faulty_bigquery.faults()) >= 10, faulty_bigquery.faults()
    assert stored_ids(engine, rows) == {row.id: 1 for row in rows}


def test_a_stream_writer_from_writer_for_raises_transient_error_for_persistent_503s(
    engine: sa.Engine, faulty_bigquery: FaultProxy
) -> None:
    """Not only the ``auto`` writer translates: the back-fill and ``ingest --method`` use these."""
    writer = writer_for(engine, "stream")
    assert isinstance(writer, BigQueryStreamWriter)
    writer.retry = FAST
    faulty_bigquery.fail(POST, INSERT_ALL, status=503, times=None)
    with pytest.raises(TransientError, match=r"writing events to \S+\.events: .*\(transient: retry later\)"):
        writer.write(schema.events, events(3))


def test_streaming_through_ten_percent_faults_answers_exactly(
    engine: sa.Engine, faulty_bigquery: FaultProxy
) -> None:
    """Queries de-duplicate what BigQuery's best-effort insertId de-duplication leaves."""
    kind = f"k{uuid.uuid4().hex[:8]}"
    rows = events(6_000, days=6, kind=kind)
    faulty_bigquery.misbehave(0.1)
    result = BigQueryStreamWriter.for_bind(engine).write(schema.events, rows)
    assert (result.written, result.rejected) == (6_000, [])
    raw = stored_ids(engine, rows)
    assert raw.keys() == {row.id for row in rows}
    duplicates = sum(raw.values()) - len(raw)
    assert duplicates > 0  # the de-duplication misses happened, and are counted here
    trends = EventRepository(engine).risk_trends(T0, T0 + dt.timedelta(days=6), event_type=kind)
    by_day: dict[dt.datetime, list[float]] = {}
    for row in rows:
        day = row.mentioned_at.replace(hour=0, minute=0, second=0, microsecond=0)
        by_day.setdefault(day, []).append(row.risk_score)  # type: ignore[arg-type]
    assert [(t.bucket_start, t.event_count, t.max_risk) for t in trends] == [
        (day, len(risks), max(risks)) for day, risks in sorted(by_day.items())
    ]
    for got, (_, risks) in zip(trends, sorted(by_day.items()), strict=True):
        assert got.avg_risk == pytest.approx(sum(risks) / len(risks), rel=1e-12)
    assert "dedup_miss" in faulty_bigquery.faults()


# --- the back-fill --------------------------------------------------------------------------


def test_backfill_stops_on_a_retryable_failure_and_resumes_exactly(  # type: ignore[no-untyped-def]
    legacy_postgres, migrated: Settings, faulty_bigquery: FaultProxy, tmp_path: Path
) -> None:
    server, _ = legacy_postgres
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    settings = Settings(
        project_id=migrated.project_id,
        dataset=dataset,
        url=f"bigquery://{migrated.project_id}/{dataset}",
        emulator_host=faulty_bigquery.host,
    )
    migrate.upgrade(settings)
    since, until = dt.date(2024, 3, 1), dt.date(2024, 3, 6)
    checkpoint = tmp_path / "cp.json"
    faulty_bigquery.fail_job(reason="backendError", times=1)
    faulty_bigquery.fail_job(reason="quotaExceeded", times=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQREPO_", "BIGQUERY_", "GCP_"))}
    env |= {"BQREPO_URL": settings.url or "", "BIGQUERY_EMULATOR_HOST": settings.emulator_host or "",
            "GCP_PROJECT_ID": settings.bigquery_project, "BIGQUERY_DATASET": settings.bigquery_dataset,
            "COLUMNS": "300"}
    stopped = subprocess.run(
        [sys.executable, "-m", "bqrepo.cli", "backfill", "--from", server.url, "--table", "events",
         "--since", str(since), "--until", str(until), "--checkpoint", str(checkpoint)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    output = " ".join((stopped.stdout + stopped.stderr).split())
    assert stopped.returncode == 1 and "Traceback" not in output, output
    assert "stopped at chunk 2024-03-01" in output and "quotaExceeded" in output, output
    assert "run the same command again" in output, output
    assert faulty_bigquery.faults() == ["fail_job", "fail_job"]
    state = json.loads(checkpoint.read_text())
    assert not state["completed"] and len(state["in_flight"]) == 1
    result = backfill(server.url, "events", settings=settings, since=since, until=until,
                      checkpoint_file=checkpoint)
    assert result.verification is not None and result.verification.ok, result.verification
    assert result.rows_rejected == 0
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            table = schema.events
            ids = connection.execute(
                sa.select(table.c.id).where(table.c.mentioned_at >= dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
            ).scalars().all()
    finally:
        engine.dispose()
    assert len(ids) == len(set(ids)) > 0
