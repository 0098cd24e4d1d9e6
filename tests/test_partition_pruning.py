"""Every repository statement filters each partitioned table so that BigQuery can prune.

Each statement is compiled to BigQuery SQL and parsed with sqlglot. For every
reference to a partitioned table, the SELECT that reads it must have a WHERE
whose top-level AND terms compare the *bare* partition column (no function
around it) with a query parameter: a lower bound always, and an upper bound
too on tables with ``require_partition_filter``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from sqlalchemy.sql import visitors
from sqlglot import exp

from bqrepo.alembic_ext.dataset import ensure_dataset
from bqrepo.compile import bigquery_dialect, compile_bigquery
from bqrepo.constructs import BucketSpec
from bqrepo.engine import create_engine
from bqrepo.repositories import (
    ComtradeRepository,
    EntityMentionRepository,
    EventRepository,
    FredRepository,
    WorldBankRepository,
)
from bqrepo.repositories.events import risk_trends_statement
from bqrepo.schema import events, metadata
from bqrepo.settings import Settings

PARTITION_COLUMNS = {
    table.name: table.kwargs["bigquery_time_partitioning"].field for table in metadata.tables.values()
}
REQUIRE_FILTER = {table.name for table in metadata.tables.values() if table.kwargs.get("bigquery_require_partition_filter")}


def all_statements() -> dict[str, sa.Select[Any]]:
    statements: dict[str, sa.Select[Any]] = {}
    for repository in (EventRepository, EntityMentionRepository, FredRepository, WorldBankRepository, ComtradeRepository):
        for name, statement in repository.statements.items():
            statements[f"{repository.__name__}.{name}"] = statement
    for bucket in ("6 hours", "15 minutes", "WEEK", "MONTH", "QUARTER", "YEAR"):
        statements[f"risk_trends[{bucket}]"] = risk_trends_statement(BucketSpec.parse(bucket))
    return statements


STATEMENTS = all_statements()


def bigquery_sql(statement: sa.Select[Any]) -> str:
    names = statement.compile(dialect=bigquery_dialect()).params
    return compile_bigquery(statement, **dict.fromkeys(names)).sql


def _terms(where: exp.Where | None) -> list[exp.Expression]:
    if where is None:
        return []
    condition = where.this
    return list(condition.flatten()) if isinstance(condition, exp.And) else [condition]


def _bare_against_parameter(term: exp.Expression, column: str, kinds: tuple[type, ...]) -> bool:
    return (
        isinstance(term, kinds)
        and isinstance(term.this, exp.Column)
        and term.this.name == column
        and isinstance(term.expression, exp.Parameter)
    )


def pruning_problems(sql: str) -> list[str]:
    """What keeps BigQuery from pruning, per partitioned table reference (empty: all good)."""
    problems = []
    tree = sqlglot.parse_one(sql, read="bigquery")
    for table in tree.find_all(exp.Table):
        column = PARTITION_COLUMNS.get(table.name)
        if column is None:
            continue
        select = table.find_ancestor(exp.Select)
        terms = _terms(select.args.get("where") if select else None)
        if not any(_bare_against_parameter(t, column, (exp.GTE, exp.GT)) for t in terms):
            problems.append(f"{table.name}: no lower bound on bare {column}")
        if table.name in REQUIRE_FILTER and not any(_bare_against_parameter(t, column, (exp.LT, exp.LTE)) for t in terms):
            problems.append(f"{table.name}: no upper bound on bare {column}")
    return problems


def test_every_repository_is_walked() -> None:
    tables = set()
    for statement in STATEMENTS.values():
        tables |= {t.name for t in sqlglot.parse_one(bigquery_sql(statement), read="bigquery").find_all(exp.Table)}
    assert tables == set(PARTITION_COLUMNS)
    assert len(STATEMENTS) >= 20


@pytest.mark.parametrize("name", list(STATEMENTS))
def test_statement_prunes_partitions(name: str) -> None:
    assert pruning_problems(bigquery_sql(STATEMENTS[name])) == []


def test_the_check_can_fail() -> None:
    """A wrapped column, a missing bound, an OR, or no filter at all are each caught."""
    start = sa.bindparam("start", type_=events.c.mentioned_at.type)
    end = sa.bindparam("end", type_=events.c.mentioned_at.type)
    col = events.c.mentioned_at
    bad = {
        "wrapped": sa.select(events.c.id).where(sa.func.date(col) >= start, col < end),
        "lower only": sa.select(events.c.id).where(col >= start),
        "or": sa.select(events.c.id).where(sa.or_(col >= start, col < end)),
        "literal": sa.select(events.c.id).where(col >= sa.literal_column("TIMESTAMP '2024-01-01'"), col < end),
        "none": sa.select(events.c.id),
    }
    for name, statement in bad.items():
        assert pruning_problems(bigquery_sql(statement)), name
    assert pruning_problems(bigquery_sql(sa.select(events.c.id).where(col >= start, col < end))) == []


# --- the contract on the stand-in: every statement runs where every table requires a filter ---------

T0, T1 = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 8, tzinfo=UTC)
D0, D1 = date(2020, 1, 1), date(2024, 1, 1)
_LOWER = {"start", "since", "window_start", "events_start"}


def runnable_params(statement: sa.Select[Any]) -> dict[str, Any]:
    """A value for each parameter of ``statement``, by its type: a week, four years, "x"."""
    params: dict[str, Any] = {}
    lists = {e.key for e in visitors.iterate(statement) if isinstance(e, sa.BindParameter) and e.expanding}
    for name, bind in statement.compile(dialect=bigquery_dialect()).binds.items():
        kind = bind.type
        if isinstance(kind, sa.DateTime):
            params[name] = T0 if name in _LOWER else T1
        elif isinstance(kind, sa.Date):
            params[name] = D0 if name in _LOWER else D1
        elif isinstance(kind, sa.Integer):
            params[name] = 5
        elif isinstance(kind, (sa.Float, sa.Numeric)):
            params[name] = 3600.0
        else:
            params[name] = ["x"] if name in lists else "x"
    return params


def test_every_statement_runs_where_every_table_requires_a_partition_filter(standin: Any) -> None:
    """The economic tables do not require a filter in bqrepo's schema; here all five do, so the
    stand-in (which enforces it with BigQuery's message) proves each statement's filter is usable."""
    strict = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(strict).dialect_options["bigquery"]["require_partition_filter"] = True
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    settings = Settings(project_id=standin.project, dataset=dataset, url=f"bigquery://{standin.project}/{dataset}",
                        emulator_host=standin.host)
    engine = create_engine(settings)
    try:
        with engine.begin() as connection:
            ensure_dataset(connection, settings)
        strict.create_all(engine)
        with engine.connect() as connection:
            for statement in STATEMENTS.values():
                connection.execute(statement, runnable_params(statement)).all()
            for table in strict.sorted_tables:
                with pytest.raises(Exception, match="without a filter"):
                    connection.execute(sa.select(sa.func.count()).select_from(table)).all()
    finally:
        engine.dispose()
