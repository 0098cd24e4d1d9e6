"""Shared fixtures: the local BigQuery stand-in (once per session) and backends.

A test that needs the stand-in fails, never skips, when it cannot start.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bqrepo.settings import Settings
from bqrepo.testing.faults import FaultProxy
from bqrepo.testing.standin import LocalBigQuery, StandinError


@pytest.fixture(scope="session")
def standin() -> Iterator[LocalBigQuery]:
    """One local-bigquery server for the whole test session."""
    server = LocalBigQuery()
    try:
        server.start()
    except StandinError as exc:
        pytest.fail(f"the local BigQuery stand-in could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def bigquery_settings(standin: LocalBigQuery) -> Settings:
    """Settings for a fresh, uniquely named dataset on the stand-in."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    return Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=standin.host,
    )


@pytest.fixture
def faulty_bigquery(standin: LocalBigQuery) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session stand-in, fresh for each test.

    Script it (``faulty_bigquery.fail(...)``, ``.drop_response(...)``, ...)
    and point clients at ``faulty_bigquery.host``; ``faulty_settings`` does.
    The RNG is seeded, so probabilistic faults repeat from run to run.
    """
    with FaultProxy(standin.endpoint, seed=9) as proxy:
        yield proxy


@pytest.fixture
def faulty_settings(faulty_bigquery: FaultProxy, standin: LocalBigQuery) -> Settings:
    """Settings for a fresh dataset on the stand-in, reached through ``faulty_bigquery``."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    return Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=faulty_bigquery.host,
    )


@pytest.fixture
def duckdb_settings(tmp_path: Path) -> Settings:
    """Settings for a fresh DuckDB file in a temporary directory."""
    return Settings(duckdb_path=str(tmp_path / "bqrepo.duckdb"))


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may skip silently: any skip fails the run."""
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nCI forbids skipped tests; skipped: {_skipped}")


# --- PostgreSQL source for the back-fill tests (issue 5) --------------------


@pytest.fixture(scope="session")
def legacy_postgres():  # type: ignore[no-untyped-def]
    """A real PostgreSQL 15 on 127.0.0.1 with the Django-like schema and data.

    Fails (never skips) when PostgreSQL cannot start; yields (server, row counts).
    """
    from bqrepo.testing.django_source import load_sample
    from bqrepo.testing.postgres import LocalPostgres, PostgresError

    server = LocalPostgres()
    try:
        server.start()
    except PostgresError as exc:
        pytest.fail(f"PostgreSQL 15 could not start: {exc}", pytrace=False)
    try:
        counts = load_sample(server.url)
        yield server, counts
    finally:
        server.stop()
