"""Golden BigQuery SQL and typed parameters for every repository method.

Each method's statement is compiled with :func:`bqrepo.compile.compile_bigquery`
using the parameters the method binds, compared with ``tests/golden/<name>.sql``
and parsed by sqlglot's BigQuery dialect. To accept an intended change, run
with ``BQREPO_UPDATE_GOLDEN=1`` and review the diff of the golden files.

The last test runs one compiled query through the plain
``google.cloud.bigquery`` client on the stand-in, proving the SQL and
parameters a user sees in their own unit tests are runnable as they are.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from google.cloud import bigquery

from bqrepo.compile import CompiledQuery, compile_bigquery
from bqrepo.constructs import BucketSpec
from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.repositories import (
    ComtradeRepository,
    EntityMentionRepository,
    EventRepository,
    FredRepository,
    WorldBankRepository,
)
from bqrepo.repositories.events import risk_trends_statement
from bqrepo.settings import Settings

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2024, 3, 1, tzinfo=UTC)
T1 = datetime(2024, 3, 8, tzinfo=UTC)
INJECTION = "x'; DROP TABLE events; --"

# name -> (statement, parameters as the method binds them, expected BigQuery types)
CASES: dict[str, tuple[sa.Select[Any], dict[str, Any], dict[str, str]]] = {
    "events_recent": (
        EventRepository.statements["recent"],
        {"start": T0, "end": T1, "event_type": INJECTION, "source_name": None, "limit": 100},
        {"start": "TIMESTAMP", "end": "TIMESTAMP", "event_type": "STRING", "source_name": "STRING", "limit": "INT64"},
    ),
    **{
        f"events_risk_trends_{suffix}": (
            risk_trends_statement(BucketSpec.parse(bucket)),
            {"start": T0, "end": T1, "event_type": None},
            {"start": "TIMESTAMP", "end": "TIMESTAMP", "event_type": "STRING"},
        )
        for suffix, bucket in [("day", "DAY"), ("6_hours", "6 hours"), ("15_minutes", "15 minutes"), ("week", "WEEK"), ("month", "MONTH")]
    },
    "entity_mentions_trending_mentions": (
        EntityMentionRepository.statements["trending_mentions"],
        {"as_of": T1, "window_start": T0, "half_life_seconds": 604800.0, "limit": 20},
        {"as_of": "TIMESTAMP", "window_start": "TIMESTAMP", "half_life_seconds": "FLOAT64", "limit": "INT64"},
    ),
    "entity_mentions_trending_risk": (
        EntityMentionRepository.statements["trending_risk"],
        {
            "as_of": T1,
            "window_start": T0,
            "half_life_seconds": 604800.0,
            "limit": 20,
            "events_start": datetime(2024, 2, 29, tzinfo=UTC),
            "events_end": datetime(2024, 3, 9, tzinfo=UTC),
        },
        {
            "as_of": "TIMESTAMP",
            "window_start": "TIMESTAMP",
            "half_life_seconds": "FLOAT64",
            "limit": "INT64",
            "events_start": "TIMESTAMP",
            "events_end": "TIMESTAMP",
        },
    ),
    "fred_series": (
        FredRepository.statements["series"],
        {"series_id": "GDP", "start": date(2020, 1, 1), "end": date(2024, 1, 1)},
        {"series_id": "STRING", "start": "DATE", "end": "DATE"},
    ),
    "fred_latest": (FredRepository.statements["latest"], {"since": date(1, 1, 1)}, {"since": "DATE"}),
    "fred_latest_selected": (
        FredRepository.statements["latest_selected"],
        {"since": date(2019, 1, 1), "series_ids": ["GDP", INJECTION]},
        {"since": "DATE", "series_ids": "ARRAY<STRING>"},
    ),
    "world_bank_series": (
        WorldBankRepository.statements["series"],
        {"indicator_id": "NY.GDP.MKTP.CD", "country_code": "VEN", "start": date(2000, 1, 1), "end": date(2024, 1, 1)},
        {"indicator_id": "STRING", "country_code": "STRING", "start": "DATE", "end": "DATE"},
    ),
    "world_bank_latest": (WorldBankRepository.statements["latest"], {"since": date(1, 1, 1)}, {"since": "DATE"}),
    "world_bank_latest_indicators": (
        WorldBankRepository.statements["latest_indicators"],
        {"since": date(1, 1, 1), "indicator_ids": ["NY.GDP.MKTP.CD"]},
        {"since": "DATE", "indicator_ids": "ARRAY<STRING>"},
    ),
    "world_bank_latest_countries": (
        WorldBankRepository.statements["latest_countries"],
        {"since": date(1, 1, 1), "country_codes": ["VEN", "COL"]},
        {"since": "DATE", "country_codes": "ARRAY<STRING>"},
    ),
    "world_bank_latest_indicators_countries": (
        WorldBankRepository.statements["latest_indicators_countries"],
        {"since": date(1, 1, 1), "indicator_ids": ["NY.GDP.MKTP.CD"], "country_codes": ["VEN"]},
        {"since": "DATE", "indicator_ids": "ARRAY<STRING>", "country_codes": "ARRAY<STRING>"},
    ),
    "comtrade_totals": (
        ComtradeRepository.statements["totals"],
        {"start": date(2022, 1, 1), "end": date(2023, 1, 1), "reporter_code": "862", "trade_flow": None},
        {"start": "DATE", "end": "DATE", "reporter_code": "STRING", "trade_flow": "STRING"},
    ),
    "comtrade_totals_selected": (
        ComtradeRepository.statements["totals_selected"],
        {
            "start": date(2022, 1, 1),
            "end": date(2023, 1, 1),
            "reporter_code": None,
            "trade_flow": "X",
            "commodity_codes": ["2709", "27"],
        },
        {"start": "DATE", "end": "DATE", "reporter_code": "STRING", "trade_flow": "STRING", "commodity_codes": "ARRAY<STRING>"},
    ),
}


def test_every_exposed_statement_has_a_golden_case() -> None:
    covered = {id(statement) for statement, _params, _types in CASES.values()}
    for repository in (EventRepository, EntityMentionRepository, FredRepository, WorldBankRepository, ComtradeRepository):
        for name, statement in repository.statements.items():
            assert id(statement) in covered, f"{repository.__name__}.statements[{name!r}]"


@pytest.mark.parametrize("name", list(CASES))
def test_golden_sql(name: str) -> None:
    statement, params, types = CASES[name]
    compiled = compile_bigquery(statement, **params)
    path = GOLDEN / f"{name}.sql"
    if os.environ.get("BQREPO_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(compiled.sql + "\n")
    assert compiled.sql + "\n" == path.read_text()
    parsed = sqlglot.parse_one(compiled.sql, read="bigquery")
    assert {p.name for p in parsed.find_all(sqlglot.exp.Parameter)} == set(types)
    assert {key: type_ for key, (type_, _value) in compiled.parameters.items()} == types
    assert {key: value for key, (_type, value) in compiled.parameters.items()} == params
    # Values travel as parameters, never as SQL text.
    assert INJECTION not in compiled.sql and "DROP" not in compiled.sql
    assert "CURRENT_TIMESTAMP" not in compiled.sql.upper()


def test_query_parameters_are_google_cloud_bigquery_objects() -> None:
    statement, params, _types = CASES["fred_latest_selected"]
    compiled = compile_bigquery(statement, **params)
    by_name = {p.name: p for p in compiled.query_parameters()}
    assert by_name["since"] == bigquery.ScalarQueryParameter("since", "DATE", date(2019, 1, 1))
    assert by_name["series_ids"] == bigquery.ArrayQueryParameter("series_ids", "STRING", ["GDP", INJECTION])
    statement, params, _types = CASES["events_recent"]
    by_name = {p.name: p for p in compile_bigquery(statement, **params).query_parameters()}
    assert by_name["source_name"] == bigquery.ScalarQueryParameter("source_name", "STRING", None)
    assert by_name["start"] == bigquery.ScalarQueryParameter("start", "TIMESTAMP", T0)


def test_missing_parameter_is_named() -> None:
    with pytest.raises(sa.exc.InvalidRequestError, match="'limit'"):
        compile_bigquery(EventRepository.statements["recent"], start=T0, end=T1, event_type=None, source_name=None)


def test_compiled_query_is_frozen() -> None:
    compiled = compile_bigquery(FredRepository.statements["latest"], since=date(1, 1, 1))
    assert isinstance(compiled, CompiledQuery)
    with pytest.raises(AttributeError):
        compiled.sql = "SELECT 1"  # type: ignore[misc]


@pytest.mark.bigquery
def test_compiled_sql_runs_with_the_plain_client(bigquery_settings: Settings) -> None:
    upgrade(bigquery_settings)
    engine = create_engine(bigquery_settings)
    from bqrepo.engine import bigquery_client

    client = bigquery_client(bigquery_settings)
    table = f"{bigquery_settings.bigquery_project}.{bigquery_settings.bigquery_dataset}.events"
    rows = [
        {"id": "a", "mentioned_at": "2024-03-02T10:00:00+00:00", "event_type": INJECTION, "risk_score": 2.0},
        {"id": "b", "mentioned_at": "2024-03-03T10:00:00+00:00", "event_type": "other", "risk_score": 4.0},
        {"id": "a", "mentioned_at": "2024-03-02T10:00:00+00:00", "event_type": INJECTION, "risk_score": 2.0},
    ]
    assert client.insert_rows_json(table, rows) == []
    statement, params, _types = CASES["events_recent"]
    compiled = compile_bigquery(statement, **params)
    job = client.query(compiled.sql, job_config=bigquery.QueryJobConfig(query_parameters=compiled.query_parameters()))
    plain = [(row["id"], row["event_type"]) for row in job.result()]
    assert plain == [("a", INJECTION)]
    through_repository = EventRepository(engine).recent(T0, T1, event_type=INJECTION)
    assert [(e.id, e.event_type) for e in through_repository] == plain
    engine.dispose()
