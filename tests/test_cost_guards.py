"""Cost guards: a bytes limit, labels and dry runs on every repository query (issue 13).

The stand-in keeps job labels but ignores ``maximumBytesBilled`` and prices
every dry run at 0 bytes. So the BigQuery tests run through the fault proxy:
it records every job request, which proves what bqrepo *sends* for every
repository method, and it answers the way BigQuery would (a non-zero dry-run
estimate, the ``bytesBilledLimitExceeded`` refusal), which proves what
bqrepo makes of the answers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bqrepo.cli import app
from bqrepo.cost import estimate, query_options
from bqrepo.engine import create_engine
from bqrepo.errors import (
    BytesBilledLimitError,
    ConfigurationError,
    InvalidArgumentError,
    is_transient,
)
from bqrepo.migrate import upgrade
from bqrepo.repositories import (
    ComtradeRepository,
    EntityMentionRepository,
    EventRepository,
    FredRepository,
    TimeSeriesRepository,
    WorldBankRepository,
)
from bqrepo.schema import events, fred_indicators
from bqrepo.settings import DEFAULT_MAXIMUM_BYTES_BILLED, Settings, load_settings
from bqrepo.testing.faults import (
    JOBS_INSERT,
    POST,
    FaultProxy,
    RecordedRequest,
    billed_bytes,
    is_query_job,
)
from bqrepo.testing.standin import LocalBigQuery

T1 = datetime(2024, 3, 8, tzinfo=UTC)
T0 = T1 - timedelta(days=7)
D0, D1 = date(2020, 1, 1), date(2024, 1, 1)
LIMIT = 123_456_789

# --- settings ---------------------------------------------------------------------------------


def test_the_default_limit_and_its_spellings() -> None:
    assert Settings().maximum_bytes_billed == DEFAULT_MAXIMUM_BYTES_BILLED == 10 * 2**30
    for text, expected in [("1000", 1000), ("10GiB", 10 * 2**30), ("500 MB", 500 * 10**6), ("1_000", 1000), ("none", None)]:
        assert load_settings({"BQREPO_MAXIMUM_BYTES_BILLED": text}).maximum_bytes_billed == expected, text
    for bad in ("lots", "0", "-5", "10 parsecs", "1.5GB", str(2**63)):
        with pytest.raises(ConfigurationError, match="BQREPO_MAXIMUM_BYTES_BILLED"):
            load_settings({"BQREPO_MAXIMUM_BYTES_BILLED": bad})


def test_job_labels_follow_bigquerys_rules() -> None:
    settings = load_settings({"BQREPO_JOB_LABELS": "team=risk, env=prod"})
    assert settings.job_labels == (("env", "prod"), ("team", "risk"))
    assert Settings(job_labels={"team": "risk"}).job_labels == (("team", "risk"),)  # type: ignore[arg-type]
    for bad, fragment in [
        ("Team=risk", "must start with a lowercase letter"),
        ("team=Risk", "value 'Risk'"),
        ("team", "is not KEY=VALUE"),
        ("team=a,team=b", "given twice"),
        ("bqrepo_method=x", "bqrepo's own labels"),
        (",".join(f"k{i}=v" for i in range(62)), "beside bqrepo's own"),
    ]:
        with pytest.raises(ConfigurationError, match=fragment) as refused:
            load_settings({"BQREPO_JOB_LABELS": bad})
        assert "BQREPO_JOB_LABELS" in str(refused.value)


def test_bigquery_url_options_are_refused_not_ignored() -> None:
    """sqlalchemy-bigquery reads them into a client bqrepo never uses: before, they vanished."""
    with pytest.raises(ConfigurationError, match="maximum_bytes_billed: use BQREPO_MAXIMUM_BYTES_BILLED"):
        load_settings({"BQREPO_URL": "bigquery://my-project/d?maximum_bytes_billed=1"})
    with pytest.raises(ConfigurationError, match="priority: not supported") as refused:
        load_settings({"BQREPO_URL": "bigquery://my-project/d?credentials_base64=c2VjcmV0&priority=BATCH"})
    assert "c2VjcmV0" not in str(refused.value)
    assert load_settings({"BQREPO_URL": "bigquery://my-project/d"}).bigquery_dataset == "d"


def test_repository_limits_and_labels_are_checked_when_built() -> None:
    engine = sa.create_engine("sqlite://")
    with pytest.raises(InvalidArgumentError, match="maximum_bytes_billed"):
        EventRepository(engine, maximum_bytes_billed=0)
    with pytest.raises(InvalidArgumentError, match="labels"):
        FredRepository(engine, labels={"Bad": "x"})
    with pytest.raises(InvalidArgumentError, match="maximum_bytes_billed"), query_options(maximum_bytes_billed=True):  # type: ignore[arg-type]
        pass


# --- DuckDB: no estimate, said so ---------------------------------------------------------------


def test_duckdb_has_no_estimate_and_runs_nothing(duckdb_settings: Settings) -> None:
    """Not migrated: a statement that ran would fail, so nothing runs; the estimate is None, never 0."""
    engine = create_engine(duckdb_settings)
    try:
        found = estimate(EntityMentionRepository(engine).trending, "risk", as_of=T1)
        assert found.available is False and found.total_bytes_processed is None
        assert [(s.repository, s.method, s.bytes_processed) for s in found.statements] == [
            ("entity_mention_repository", "trending", None)
        ]
        assert "DuckDB gives no byte estimate" in found.describe()
        with pytest.raises(InvalidArgumentError, match="limit"):
            estimate(EventRepository(engine).recent, T0, T1, limit=0)
        nothing = estimate(FredRepository(engine).latest, [])  # sends no statement: still no estimate, not 0
        assert nothing.statements == [] and nothing.total_bytes_processed is None
        assert not Path(duckdb_settings.duckdb_path).exists()  # not even a connection was opened
    finally:
        engine.dispose()


def test_cli_dry_run_on_duckdb_says_there_is_no_estimate(duckdb_settings: Settings) -> None:
    env = {"BQREPO_URL": "", "GCP_PROJECT_ID": "", "BIGQUERY_DATASET": "", "BQREPO_DUCKDB_PATH": duckdb_settings.duckdb_path,
           "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["recent", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "DuckDB gives no byte estimate" in result.output and "nothing was run" in result.output
    result = CliRunner().invoke(app, ["table", "latest", "fred_indicators", "--dry-run", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["total_bytes_processed"] is None


# --- BigQuery, through the proxy ------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied(standin: LocalBigQuery) -> Iterator[tuple[FaultProxy, Settings, sa.Engine]]:
    """One migrated dataset reached through one proxy for the module (migrating costs seconds),
    with a limit and user labels in the settings."""
    with FaultProxy(standin.endpoint, seed=13) as proxy:
        dataset = f"t_{uuid.uuid4().hex[:12]}"
        settings = Settings(
            project_id=standin.project,
            dataset=dataset,
            url=f"bigquery://{standin.project}/{dataset}",
            emulator_host=proxy.host,
            maximum_bytes_billed=LIMIT,
            job_labels=(("team", "risk"),),
        )
        upgrade(settings)
        engine = create_engine(settings)
        yield proxy, settings, engine
        engine.dispose()


@pytest.fixture
def guarded(proxied: tuple[FaultProxy, Settings, sa.Engine]) -> tuple[Settings, sa.Engine]:
    proxied[0].clear()  # no rule of an earlier test applies
    return proxied[1], proxied[2]


@pytest.fixture
def faulty_bigquery(proxied: tuple[FaultProxy, Settings, sa.Engine]) -> FaultProxy:
    """The module's proxy (this module's own, in place of conftest's per-test one)."""
    return proxied[0]


def _generic(table: sa.Table) -> Callable[[sa.Engine], TimeSeriesRepository]:
    return lambda engine: TimeSeriesRepository(engine, table)


# Every public repository method: (repository label, method label, table label, the call).
CALLS: list[tuple[str, str, str, Callable[[sa.Engine], Callable[[], object]]]] = [
    ("event_repository", "recent", "events", lambda e: lambda: EventRepository(e).recent(T0, T1, event_type="x")),
    ("event_repository", "risk_trends", "events", lambda e: lambda: EventRepository(e).risk_trends(T0, T1, "6 hours", fill_gaps=True)),
    ("entity_mention_repository", "trending", "entity_mentions", lambda e: lambda: EntityMentionRepository(e).trending(as_of=T1)),
    ("entity_mention_repository", "trending", "entity_mentions", lambda e: lambda: EntityMentionRepository(e).trending("risk", as_of=T1)),
    ("fred_repository", "series", "fred_indicators", lambda e: lambda: FredRepository(e).series("UNRATE", D0, D1)),
    ("fred_repository", "latest", "fred_indicators", lambda e: lambda: FredRepository(e).latest(["UNRATE"])),
    ("world_bank_repository", "series", "world_bank", lambda e: lambda: WorldBankRepository(e).series("NY.GDP", "FR", D0, D1)),
    ("world_bank_repository", "latest", "world_bank", lambda e: lambda: WorldBankRepository(e).latest(country_codes=["FR"])),
    ("comtrade_repository", "totals", "un_comtrade", lambda e: lambda: ComtradeRepository(e).totals(D0, D1, ["27"])),
    ("time_series_repository", "rows", "events", lambda e: lambda: _generic(events)(e).rows(T0, T1, where={"source_name": "x"})),
    ("time_series_repository", "buckets", "events", lambda e: lambda: _generic(events)(e).buckets(T0, T1, value="risk_score")),
    ("time_series_repository", "ranking", "events", lambda e: lambda: _generic(events)(e).ranking("event_type", as_of=T1)),
    ("time_series_repository", "latest", "fred_indicators", lambda e: lambda: _generic(fred_indicators)(e).latest()),
    ("time_series_repository", "series", "fred_indicators", lambda e: lambda: _generic(fred_indicators)(e).series({"series_id": "UNRATE"}, D0, D1)),
    ("time_series_repository", "aggregate_buckets", "events", lambda e: lambda: _generic(events)(e).aggregate_buckets(
        T0, T1, "DAY", value=None, aggregates=(("count", "n"),), where=None, fill_gaps=False)),
]


def _jobs_since(proxy: FaultProxy, mark: int) -> list[dict[str, Any]]:
    """The query job configurations sent (``jobs.insert``) after the ``mark``-th recorded request."""
    later = proxy.requests[mark:]
    return [r.body["configuration"] for r in later if r.method == POST and re.search(JOBS_INSERT, r.path) and is_query_job(r)]


def test_every_method_sends_its_limit_labels_and_dry_run(guarded: tuple[Settings, sa.Engine], faulty_bigquery: FaultProxy) -> None:
    _settings, engine = guarded
    covered = set()
    for repository, method, table, call in CALLS:
        for dry in (False, True):
            mark = len(faulty_bigquery.requests)
            if dry:
                found = estimate(call(engine))
                assert found.available and found.total_bytes_processed == 0  # the stand-in's price
            else:
                call(engine)()
            jobs = _jobs_since(faulty_bigquery, mark)
            assert jobs, (repository, method)
            for job in jobs:
                assert job["query"].get("maximumBytesBilled") == str(LIMIT), (repository, method, job)
                assert bool(job.get("dryRun")) is dry, (repository, method, job)
                assert job["labels"] == {
                    "bqrepo_repository": repository, "bqrepo_method": method, "bqrepo_table": table, "team": "risk",
                }, (repository, method)
        covered.add((repository, method))
    public = {
        (repository.cost.repository, name)
        for repository in (
            EventRepository(engine), EntityMentionRepository(engine), FredRepository(engine), WorldBankRepository(engine),
            ComtradeRepository(engine), TimeSeriesRepository(engine, events),
        )
        for name in dir(repository)
        if not name.startswith("_") and callable(getattr(type(repository), name, None)) and hasattr(getattr(repository, name), "__wrapped__")
    }
    assert public == covered  # every guarded method is walked


def test_a_repository_and_a_call_override_the_setting(guarded: tuple[Settings, sa.Engine], faulty_bigquery: FaultProxy) -> None:
    _settings, engine = guarded
    events_repository = EventRepository(engine, maximum_bytes_billed=5_000_000_000, labels={"feature": "dashboard"})
    mark = len(faulty_bigquery.requests)
    events_repository.recent(T0, T1)
    with query_options(maximum_bytes_billed=7_000_000_000, labels={"report": "weekly", "team": "ops"}):
        events_repository.recent(T0, T1)
        with query_options(labels={"nested": "yes"}):
            events_repository.recent(T0, T1)
    first, second, third = _jobs_since(faulty_bigquery, mark)
    assert first["query"]["maximumBytesBilled"] == "5000000000"
    assert first["labels"]["feature"] == "dashboard" and first["labels"]["team"] == "risk"
    assert second["query"]["maximumBytesBilled"] == third["query"]["maximumBytesBilled"] == "7000000000"
    assert second["labels"] | {"nested": "yes"} == third["labels"]
    assert {k: second["labels"][k] for k in ("feature", "report", "team")} == {"feature": "dashboard", "report": "weekly", "team": "ops"}


def test_a_query_over_the_limit_raises_bqrepos_error(guarded: tuple[Settings, sa.Engine], faulty_bigquery: FaultProxy) -> None:
    """BigQuery refuses before running; bqrepo names the estimate, the limit and the method."""
    _settings, engine = guarded
    faulty_bigquery.bill_queries(50 * 2**20)
    with pytest.raises(BytesBilledLimitError) as refused:
        EventRepository(engine, maximum_bytes_billed=1000).recent(T0, T1)
    error = refused.value
    assert (error.estimate, error.limit) == (billed_bytes(50 * 2**20), 1000) == (52_428_800, 1000)
    assert "event_repository.recent" in str(error) and "52,428,800" in str(error) and "1,000 bytes" in str(error)
    assert not is_transient(error)
    google_error = _google_cause(error)
    assert google_error.errors[0]["reason"] == "bytesBilledLimitExceeded"  # type: ignore[attr-defined]
    assert not is_transient(google_error)  # though the client maps the reason to a 500
    refusals = [r for r in faulty_bigquery.recorded(POST, JOBS_INSERT) if r.fault == "bill"]
    assert refusals and all(not _forwarded(r) for r in refusals)
    # BigQuery's smallest bill is 10 MiB: a limit just under it fails even for a tiny query.
    faulty_bigquery.clear()
    faulty_bigquery.bill_queries(1)
    with pytest.raises(BytesBilledLimitError, match="10,485,760 bytes"):
        FredRepository(engine, maximum_bytes_billed=10 * 2**20 - 1).latest()
    assert FredRepository(engine, maximum_bytes_billed=10 * 2**20).latest() == []


def _google_cause(error: BaseException) -> BaseException:
    """The google-api-core exception under bqrepo's error (through SQLAlchemy's and the DB-API's wrappers)."""
    from google.api_core.exceptions import GoogleAPICallError

    item: Any = error
    while item is not None and not isinstance(item, GoogleAPICallError):
        item = item.__cause__ or getattr(item, "orig", None) or (item.args[0] if item.args else None)
        if not isinstance(item, BaseException):
            item = None
    assert item is not None, error
    return item


def _forwarded(request: RecordedRequest) -> bool:
    return request.status is None


def test_a_dry_run_returns_bigquerys_estimate(guarded: tuple[Settings, sa.Engine], faulty_bigquery: FaultProxy) -> None:
    _settings, engine = guarded
    faulty_bigquery.bill_queries(987_654_321)
    found = estimate(EntityMentionRepository(engine, maximum_bytes_billed=1000).trending, "risk", as_of=T1)
    # A dry run is never refused over the limit (it is free) and reports what the job would process.
    assert found.total_bytes_processed == 987_654_321
    assert [(s.method, s.bytes_processed) for s in found.statements] == [("trending", 987_654_321)]
    assert "987,654,321 bytes" in found.describe()
    two = estimate(lambda: [FredRepository(engine).series(s, D0, D1) for s in ("A", "B")])
    assert two.total_bytes_processed == 2 * 987_654_321 and len(two.statements) == 2


def test_cli_dry_run_prints_bigquerys_estimate(guarded: tuple[Settings, sa.Engine], faulty_bigquery: FaultProxy) -> None:
    settings, _engine = guarded
    faulty_bigquery.bill_queries(4_242_424_242)
    env = {"BQREPO_URL": settings.url or "", "BIGQUERY_EMULATOR_HOST": settings.emulator_host or "", "COLUMNS": "200",
           "BQREPO_JOB_LABELS": "team=cli"}
    for args in (["risk-trends", "--dry-run"], ["trending", "--dry-run"], ["series", "UNRATE", "--dry-run"],
                 ["recent", "--dry-run"], ["table", "buckets", "events", "--dry-run"]):
        mark = len(faulty_bigquery.requests)
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        assert "BigQuery would process 4,242,424,242 bytes" in result.output, (args, result.output)
        jobs = _jobs_since(faulty_bigquery, mark)
        assert jobs and all(job.get("dryRun") and job["labels"]["team"] == "cli" for job in jobs), args
    result = CliRunner().invoke(app, ["table", "rows", "events", "--dry-run", "--json"], env=env)
    assert json.loads(result.output)["total_bytes_processed"] == 4_242_424_242


def test_an_unguarded_bigquery_engine_is_refused() -> None:
    """A BigQuery engine bqrepo did not build has no settings to take a limit from: refused, not run unguarded."""
    foreign = sa.create_engine("bigquery://my-project/d?user_supplied_client=true")
    with pytest.raises(TypeError, match="not built by bqrepo.engine.create_engine"):
        EventRepository(foreign).recent(T0, T1)
