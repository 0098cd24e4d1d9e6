"""DuckDB's read path (bqrepo.backend.DuckDBBackend.run_query): the driver's values, without a transaction.

Repository statements on DuckDB skip SQLAlchemy's execution (and its BEGIN and
ROLLBACK) and fetch TIMESTAMPTZ results through numpy. These tests hold that
path to what SQLAlchemy and the driver's ``fetchall`` give, on a real file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bqrepo.cost import CostGuard, run_statement
from bqrepo.engine import create_engine
from bqrepo.errors import NotMigratedError
from bqrepo.migrate import upgrade
from bqrepo.repositories import EventRepository
from bqrepo.schema import events
from bqrepo.settings import Settings

metadata = sa.MetaData()
samples = sa.Table(
    "samples",
    metadata,
    sa.Column("s", sa.String),
    sa.Column("i", sa.BigInteger),
    sa.Column("n", sa.Integer),
    sa.Column("d", sa.Double),
    sa.Column("b", sa.Boolean),
    sa.Column("t", sa.TIMESTAMP(timezone=True)),
    sa.Column("j", sa.JSON),
)
EDGE_ROWS = [
    ("a", 2**62, 3, 1.5, True, "2020-01-01 00:00:00.000001+00", '{"a": [1, 2.5, null]}'),
    (None, None, None, None, None, None, None),
    ("c", -1, 0, float("nan"), False, "0001-01-01 00:00:00+00", "[]"),
    ("é\n'", 0, None, -0.0, None, "9999-12-31 23:59:59.999999+00", None),
]
GUARD = CostGuard("test")


@pytest.fixture
def engine(duckdb_settings: Settings) -> Iterator[sa.Engine]:
    engine = create_engine(duckdb_settings)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _fill(engine: sa.Engine, rows: list[tuple[Any, ...]]) -> None:
    with engine.begin() as connection:
        for row in rows:
            connection.exec_driver_sql(
                "INSERT INTO samples VALUES ($1, $2, $3, $4, $5, CAST($6 AS TIMESTAMPTZ), CAST($7 AS JSON))", row
            )


def _driver_rows(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    """What the driver's own ``fetchall`` gives (no SQLAlchemy result processing)."""
    with engine.connect() as connection:
        driver: Any = connection.connection.driver_connection
        return list(driver.execute(sql).fetchall())


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and math.isnan(left):
        return isinstance(right, float) and math.isnan(right)
    return type(left) is type(right) or isinstance(left, datetime) and isinstance(right, datetime)


def test_columnar_fetch_gives_the_drivers_values(engine: sa.Engine) -> None:
    _fill(engine, EDGE_ROWS)
    statement = sa.select(samples).order_by(samples.c.s.nulls_last(), samples.c.i)
    found = run_statement(engine, statement, {}, GUARD, "samples")
    expected = _driver_rows(engine, str(statement.compile(engine)))
    assert found.keys == ("s", "i", "n", "d", "b", "t", "j")
    assert len(found) == len(expected) == 4
    for got, want in zip(found, expected):
        assert all(_same(g, w) for g, w in zip(got, want)), (got, want)
        assert [g for g in got if not isinstance(g, float)] == [w for w in want if not isinstance(w, float)]
        assert all(value.tzinfo is UTC for value in got if isinstance(value, datetime))
    # A result this small is fetched as the driver's tuples next time (numpy's fixed cost): the same values.
    again = run_statement(engine, statement, {}, GUARD, "samples")
    for got, want in zip(again, found):
        assert all(_same(g, w) for g, w in zip(got, want)), (got, want)
        assert [g for g in got if not isinstance(g, float)] == [w for w in want if not isinstance(w, float)]


@pytest.mark.parametrize("instant", ["infinity", "-infinity", "10000-01-01 00:00:00+00"])
def test_an_instant_python_cannot_hold_comes_back_as_the_driver_gives_it(engine: sa.Engine, instant: str) -> None:
    _fill(engine, [("x", 1, 1, 1.0, True, instant, None)])
    statement = sa.select(samples.c.s, samples.c.t)
    expected = _driver_rows(engine, "SELECT s, t FROM samples")
    assert run_statement(engine, statement, {}, GUARD, "samples").rows == expected


def test_a_read_begins_no_transaction_and_a_watched_one_goes_through_sqlalchemy(duckdb_settings: Settings) -> None:
    upgrade(duckdb_settings)
    engine = create_engine(duckdb_settings)
    repo = EventRepository(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    begun: list[object] = []
    sa.event.listen(engine, "begin", begun.append)
    assert repo.recent(now - timedelta(days=1), now) == []
    assert begun == []
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    assert repo.recent(now - timedelta(days=1), now) == []
    assert len(seen) == 1 and "FROM events" in seen[0]
    engine.dispose()


def test_errors_are_translated_as_sqlalchemys_are(duckdb_settings: Settings, engine: sa.Engine) -> None:
    with pytest.raises(NotMigratedError, match="table events does not exist"):
        run_statement(engine, sa.select(events.c.id), {}, GUARD, "recent")
    broken = sa.select(sa.func.no_such_function(samples.c.i))
    with pytest.raises(sa.exc.DBAPIError, match="no_such_function") as raised:
        run_statement(engine, broken, {}, GUARD, "samples")
    assert "no_such_function" in str(raised.value.statement)
    with pytest.raises(sa.exc.InvalidRequestError, match="'wanted'"):
        run_statement(engine, sa.select(samples).where(samples.c.s == sa.bindparam("wanted")), {}, GUARD, "samples")


def test_an_uncommitted_write_is_still_rolled_back_when_the_connection_closes(engine: sa.Engine) -> None:
    """The NullPool engine resets nothing on return (the connection is closed next): closing must roll back."""
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("BEGIN TRANSACTION")
    cursor.execute("INSERT INTO samples (s) VALUES ('uncommitted')")
    raw.close()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM samples").scalar_one() == 0
