"""A table declared by a user, not one of the five: its row type, ids and writers.

The row type is derived from the table (``bqrepo.rows.row_type``), so these
tests declare their own tables in their own ``MetaData``: a ``forecasts``
table with INTEGER, BOOLEAN and a JSON column not named ``metadata``, a copy
of ``fred_indicators`` with a column added, and rules. Writes go through
DuckDB and through the BigQuery stream and load writers on the stand-in,
and are read back value for value.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from google.cloud.bigquery import TimePartitioning
from pydantic import field_validator

from bqrepo import schema
from bqrepo.alembic_ext.dataset import ensure_dataset
from bqrepo.engine import create_engine
from bqrepo.errors import SchemaError
from bqrepo.rows import (
    ROW_TYPES,
    EventRow,
    FredObservation,
    Row,
    natural_id,
    row_type,
    validate_rows,
)
from bqrepo.settings import Settings
from bqrepo.timeseries import declaration, time_series
from bqrepo.writers import BigQueryLoadWriter, BigQueryStreamWriter, DuckDBWriter, Writer

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
BIG = 2**62 + 1  # not exact as a float: a JSON double would round it


def forecasts_table(metadata: sa.MetaData, *, rules: type[Any] | None = None) -> sa.Table:
    table = sa.Table(
        "forecasts",
        metadata,
        sa.Column("id", sa.String, nullable=False),
        sa.Column("series_id", sa.String, nullable=False),
        sa.Column("forecast_date", sa.Date, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("lower", sa.Double),
        sa.Column("upper", sa.Double),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("draws", sa.BigInteger),
        sa.Column("published", sa.Boolean),
        sa.Column("params", sa.JSON),
        sa.Column("generated_at", sa.TIMESTAMP(timezone=True), default=schema.utc_now),
        comment="Model forecasts per series, date and horizon",
        bigquery_time_partitioning=TimePartitioning(field="forecast_date", type_="MONTH"),
        bigquery_clustering_fields=["series_id"],
    )
    return time_series(
        table,
        time="forecast_date",
        key=("series_id", "forecast_date", "horizon", "model_name"),
        version="generated_at",
        rules=rules,
    )


@pytest.fixture
def forecasts() -> sa.Table:
    return forecasts_table(sa.MetaData())


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "series_id": "UNRATE",
        "forecast_date": dt.date(2024, 6, 1),
        "horizon": 3,
        "value": 4.25,
        "lower": 3.5,
        "upper": 5.0,
        "model_name": "arima",
    }
    return {**base, **changes}


def errors_of(row_type_: type[Row], records: list[dict[str, Any]]) -> dict[tuple[int, str | None], str]:
    report = validate_rows(row_type_, records)
    return {(error.index, error.field): error.message for error in report.errors}


# --- the derived row type -----------------------------------------------------------


def test_the_row_type_mirrors_the_table(forecasts: sa.Table) -> None:
    forecast = row_type(forecasts)
    assert forecast.__name__ == "ForecastsRow"
    assert forecast.__doc__ == "Model forecasts per series, date and horizon"
    assert forecast.__table__ is forecasts
    assert forecast.natural_key_fields == ("series_id", "forecast_date", "horizon", "model_name")
    assert forecast.id_must_match_key
    # id last: its validator reads the key fields validated before it
    assert list(forecast.model_fields) == [c.name for c in forecasts.columns if c.name != "id"] + ["id"]
    required = {name for name, info in forecast.model_fields.items() if info.is_required()}
    assert required == {"series_id", "forecast_date", "horizon", "model_name"}
    assert row_type(forecasts) is forecast  # built once per table


def test_the_five_tables_keep_their_names_and_types() -> None:
    assert {name: t.__name__ for name, t in ROW_TYPES.items()} == {
        "events": "EventRow",
        "entity_mentions": "EntityMentionRow",
        "fred_indicators": "FredObservation",
        "un_comtrade": "ComtradeObservation",
        "world_bank": "WorldBankObservation",
    }
    assert EventRow is row_type(schema.events) is ROW_TYPES["events"]
    assert not EventRow.id_must_match_key and FredObservation.id_must_match_key


def test_values_are_parsed_and_defaults_applied(forecasts: sa.Table) -> None:
    before = dt.datetime.now(UTC)
    row = row_type(forecasts).model_validate(
        record(horizon="12", forecast_date="2024-06-01", value="1.5", published="true", params={"p": [1, 2]})
    )
    assert (row.horizon, row.forecast_date, row.value, row.published) == (  # type: ignore[attr-defined]
        12,
        dt.date(2024, 6, 1),
        1.5,
        True,
    )
    assert before <= row.generated_at <= dt.datetime.now(UTC)  # type: ignore[attr-defined]
    assert row.to_bigquery_row()["params"] == '{"p":[1,2]}'


def test_validation_errors_name_the_row_and_the_field(forecasts: sa.Table) -> None:
    errors = errors_of(
        row_type(forecasts),
        [
            record(),
            record(horizon="three", value=math.nan),
            {k: v for k, v in record().items() if k != "model_name"},
            record(model_name="", generated_at=dt.datetime(2024, 1, 1)),
            record(horizon=2**31, draws=2**63),
            record(params={"deep": {"x": math.inf}}, colour="red"),
            record(params=[1, 2], published="maybe"),
        ],
    )
    assert set(errors) == {
        (1, "horizon"),
        (1, "value"),
        (2, "model_name"),
        (3, "model_name"),
        (3, "generated_at"),
        (4, "horizon"),
        (4, "draws"),
        (5, "params"),
        (5, "colour"),
        (6, "params"),
        (6, "published"),
    }
    assert errors[(2, "model_name")] == "Field required"
    assert "naive datetime" in errors[(3, "generated_at")]
    # INTEGER is 32-bit on DuckDB: refused for every engine, so a row valid on one is valid on all
    assert errors[(4, "horizon")] == (
        "integer of 32 bits is outside Integer's 32-bit range (-2147483648 to 2147483647); "
        "declare the column BigInteger for 64-bit integers"
    )
    assert errors[(4, "draws")].startswith("integer of 64 bits is outside BigInteger's 64-bit range")
    # the JSON checks name the column, whatever it is called
    assert errors[(5, "params")].startswith("params.deep.x: inf is not a finite number")
    assert errors[(6, "params")] == "params must be a JSON object (a dict with string keys)"
    assert errors[(5, "colour")] == "Extra inputs are not permitted"


# --- ids ----------------------------------------------------------------------------


def test_derived_ids_are_deterministic_and_follow_the_key(forecasts: sa.Table) -> None:
    forecast = row_type(forecasts)
    first = forecast.model_validate(record())
    # the same forecast generated again, with other values: the same id
    again = forecast.model_validate(record(value=9.0, generated_at=T0))
    assert first.id == again.id and uuid.UUID(first.id).version == 5
    assert first.id == natural_id("forecasts", "UNRATE", dt.date(2024, 6, 1), 3, "arima")
    changes = {"series_id": "GDP", "forecast_date": dt.date(2024, 7, 1), "horizon": 4, "model_name": "ets"}
    for name, value in changes.items():
        assert forecast.model_validate(record(**{name: value})).id != first.id, name
    # a horizon given as text is the same key once parsed
    assert forecast.model_validate(record(horizon="3")).id == first.id
    assert forecast.model_validate(record(id=first.id)).id == first.id
    errors = errors_of(forecast, [record(id=str(uuid.uuid4()))])
    assert list(errors) == [(0, "id")]
    assert "does not match the id derived from the natural key" in errors[(0, "id")]


def test_natural_id_encodes_numbers_and_booleans_canonically() -> None:
    assert natural_id("t", 1) != natural_id("t", "1")
    assert natural_id("t", True) != natural_id("t", 1)
    assert natural_id("t", 0.0) == natural_id("t", -0.0)
    assert natural_id("t", 1.5) == str(uuid.uuid5(uuid.UUID("5b0f7e55-8d0c-4a53-9f0e-6f1f2b6c7a11"), '["t",1.5]'))


# --- rules ----------------------------------------------------------------------------


class ForecastRules(Row):
    """Horizons count periods ahead; a band has its lower bound below its upper one."""

    @field_validator("horizon", check_fields=False)
    @classmethod
    def _ahead(cls, value: int) -> int:
        if value < 0:
            raise ValueError("horizon must be >= 0 (periods ahead)")
        return value


class RiskRules(Row):
    @field_validator("risk_score", check_fields=False)
    @classmethod
    def _non_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("risk_score must be >= 0")
        return value


def test_rules_reject_a_bad_row_naming_the_field() -> None:
    forecast = row_type(forecasts_table(sa.MetaData(), rules=ForecastRules))
    assert issubclass(forecast, ForecastRules)
    assert errors_of(forecast, [record(), record(horizon=-1)]) == {
        (1, "horizon"): "horizon must be >= 0 (periods ahead)"
    }
    # rules on a copy of events: the derived type keeps every other check too
    events = schema.events.to_metadata(sa.MetaData())
    time_series(events, time="mentioned_at", key=declaration(schema.events).key, ids="given", rules=RiskRules)
    errors = errors_of(row_type(events), [{"mentioned_at": T0, "risk_score": -0.5}, {"mentioned_at": T0, "risk_score": 0.5}])
    assert errors == {(0, "risk_score"): "risk_score must be >= 0"}


def test_rules_that_could_not_work_are_refused() -> None:
    class NotARow:
        pass

    class Misspelt(Row):
        @field_validator("horizn", check_fields=False)
        @classmethod
        def _check(cls, value: Any) -> Any:
            return value

    class WithFields(Row):
        horizon: int = 0

    for rules, message in [
        (NotARow, "must be a subclass of bqrepo.rows.Row"),
        (Misspelt, "validates ['horizn'], which are not columns"),
        (WithFields, "declares field(s) ['horizon']"),
    ]:
        with pytest.raises(SchemaError, match=r"table 'forecasts': rules") as caught:
            row_type(forecasts_table(sa.MetaData(), rules=rules))
        assert message in str(caught.value)


# --- schema errors ----------------------------------------------------------------------


def _table(*columns: sa.Column[Any], **options: Any) -> sa.Table:
    return sa.Table("t", sa.MetaData(), *columns, **options)


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String, nullable=False)


def _day(nullable: bool = False) -> sa.Column[dt.date]:
    return sa.Column("day", sa.Date, nullable=nullable)


@pytest.mark.parametrize(
    ("columns", "options", "declared", "message"),
    [
        ([_id(), _day()], {}, {"time": "when", "key": ["day"]}, "time column 'when' is not a column of the table (columns: id, day)"),
        ([_id(), _day()], {}, {"time": "day", "key": ["day", "kind"]}, "key column 'kind' is not a column"),
        ([_id(), _day()], {}, {"time": "day", "key": ["day"], "version": "v"}, "version column 'v' is not a column"),
        ([_id(), _day()], {}, {"time": "day", "key": ["day"], "series": ["s"]}, "series column 's' is not a column"),
        ([_id(), _day(nullable=True)], {}, {"time": "day", "key": ["day"]}, "time column 'day' must be NOT NULL"),
        (
            [_id(), _day(), sa.Column("other", sa.Date, nullable=False)],
            {"bigquery_time_partitioning": TimePartitioning(field="other", type_="MONTH")},
            {"time": "day", "key": ["day"]},
            "time column 'day' must be the partition column ('other')",
        ),
        ([_day()], {}, {"time": "day", "key": ["day"]}, "a time series needs an 'id' column"),
        ([sa.Column("id", sa.String), _day()], {}, {"time": "day", "key": ["day"]}, "a time series needs an 'id' column"),
        ([sa.Column("id", sa.Integer, nullable=False), _day()], {}, {"time": "day", "key": ["day"]}, "needs an 'id' column of type String"),
        (
            [_id(), sa.Column("at", sa.DateTime(timezone=True), nullable=False)],
            {},
            {"time": "at", "key": ["at"]},
            "must be TIMESTAMP(timezone=True)",
        ),
        ([_id(), _day(), sa.Column("doc", sa.JSON)], {}, {"time": "day", "key": ["day", "doc"]}, "key column 'doc' is JSON"),
        ([_id(), _day()], {}, {"time": "day", "key": ["id"]}, "key column 'id' cannot identify itself"),
        ([_id(), _day()], {}, {"time": "day", "key": []}, "key must name at least one column"),
        ([_id(), _day()], {}, {"time": "day", "key": ["day"], "ids": "mine"}, "ids must be 'given' or 'derived'"),
    ],
)
def test_declarations_bqrepo_cannot_serve_are_refused(
    columns: list[sa.Column[Any]], options: dict[str, Any], declared: dict[str, Any], message: str
) -> None:
    table = _table(*columns, **options)
    with pytest.raises(SchemaError, match=r"^table 't': ") as caught:
        time_series(table, **declared)
    assert message in str(caught.value)
    assert not table.info  # nothing declared


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (sa.Column("amount", sa.Numeric), "column 'amount' has type Numeric()"),
        (sa.Column("local", sa.DateTime), "column 'local' has type DateTime()"),
        (sa.Column("blob", sa.LargeBinary), "column 'blob' has type LargeBinary()"),
        (sa.Column("at", sa.TIMESTAMP(timezone=True), default=sa.func.now()), "column 'at' has a SQL default"),
    ],
)
def test_columns_rows_cannot_carry_are_refused(column: sa.Column[Any], message: str) -> None:
    table = time_series(_table(_id(), _day(), column), time="day", key=["day"])
    with pytest.raises(SchemaError, match=r"^table 't': ") as caught:
        row_type(table)
    assert message in str(caught.value)


def test_an_undeclared_table_has_no_row_type() -> None:
    with pytest.raises(SchemaError, match="is not declared as a time series"):
        row_type(_table(_id(), _day()))


def test_declaring_again_gives_a_new_row_type(forecasts: sa.Table) -> None:
    first = row_type(forecasts)
    time_series(forecasts, time="forecast_date", key=("series_id", "forecast_date"), row_name="Forecast")
    second = row_type(forecasts)
    assert second is not first and second.__name__ == "Forecast"
    assert second.natural_key_fields == ("series_id", "forecast_date")


# --- a column added to a copy of fred_indicators -------------------------------------------


def fred_with_vintage(metadata: sa.MetaData) -> sa.Table:
    copy = schema.fred_indicators.to_metadata(metadata)
    copy.append_column(sa.Column("vintage", sa.Date, comment="Release the value comes from"))
    return time_series(copy, time="date", key=("series_id", "date"), version="ingested_at", row_name="FredVintage")


def test_a_copy_carries_its_own_declaration() -> None:
    copy = schema.fred_indicators.to_metadata(sa.MetaData())
    assert declaration(copy).table is copy  # to_metadata copied the original's info
    assert declaration(schema.fred_indicators).table is schema.fred_indicators
    assert row_type(copy) is not FredObservation
    assert row_type(copy).model_validate({"series_id": "GDP", "date": "2024-01-01"}).id == (
        FredObservation(series_id="GDP", date=dt.date(2024, 1, 1)).id
    )


def test_a_column_added_to_the_table_is_a_field_of_its_rows() -> None:
    fred = row_type(fred_with_vintage(sa.MetaData()))
    row = fred.model_validate({"series_id": "GDP", "date": "2024-01-01", "vintage": "2024-02-15"})
    assert row.vintage == dt.date(2024, 2, 15)  # type: ignore[attr-defined]
    assert row.to_bigquery_row()["vintage"] == "2024-02-15"
    # the same natural key, so the same id as the five-table type gives
    assert row.id == FredObservation(series_id="GDP", date=dt.date(2024, 1, 1)).id
    # the original table's type still refuses the field
    assert "vintage" in {error.field for error in validate_rows(FredObservation, [{"series_id": "GDP", "date": "2024-01-01", "vintage": "2024-02-15"}]).errors}


# --- writers ----------------------------------------------------------------------------


def forecast_rows(table: sa.Table) -> list[Row]:
    forecast = row_type(table)
    prefix = uuid.uuid4().hex[:6]  # tests sharing a dataset must not share ids
    return [
        forecast.model_validate(
            record(
                series_id=f"{prefix}-{'GDP' if i % 2 else 'UNRATE'}",
                forecast_date=dt.date(2020 + i % 5, 1 + i % 12, 1),
                horizon=2**31 - 1 if i == 7 else i,
                draws=BIG if i % 2 else -(2**63),
                value=None if i % 4 == 0 else i / 3,
                lower=-1e-300 if i % 3 == 0 else None,
                upper=1.7976931348623157e308,
                model_name="arima \u2603 x'); DROP TABLE forecasts; --",
                published=None if i % 3 == 0 else bool(i % 2),
                params=None if i % 5 == 0 else {"order": [i, 1, 0], "note": "\u2603", "big": BIG},
                generated_at=T0 + dt.timedelta(microseconds=i),
            )
        )
        for i in range(24)
    ]


def vintage_rows(table: sa.Table) -> list[Row]:
    fred = row_type(table)
    prefix = uuid.uuid4().hex[:6]
    return [
        fred.model_validate(
            {"series_id": f"{prefix}-GDP", "date": dt.date(2023, month, 1), "value": month / 7, "vintage": dt.date(2024, month, 2)}
        )
        for month in range(1, 13)
    ]


def read_back(engine: sa.Engine, table: sa.Table, rows: list[Row]) -> list[dict[str, Any]]:
    """The stored rows with ``rows``' ids, JSON parsed here (DuckDB returns text, BigQuery values)."""
    columns = [
        sa.type_coerce(column, sa.types.NullType()).label(column.name) if isinstance(column.type, sa.JSON) else column
        for column in table.columns
    ]
    statement = sa.select(*columns).where(table.c.id.in_(sorted(row.id for row in rows if row.id)))
    with engine.connect() as connection:
        found = [dict(row) for row in connection.execute(statement).mappings()]
    for row in found:
        for column in table.columns:
            if isinstance(column.type, sa.JSON) and isinstance(row[column.name], str):
                row[column.name] = json.loads(row[column.name])
    return sorted(found, key=lambda row: row["id"])


def expected(rows: list[Row]) -> list[dict[str, Any]]:
    return sorted((row.to_db_row() for row in rows), key=lambda row: row["id"])


def write_and_compare(engine: sa.Engine, writer: Writer, table: sa.Table, rows: list[Row]) -> None:
    result = writer.write(table, rows)
    assert result.ok and result.written == len(rows), result.rejected[:1]
    assert read_back(engine, table, rows) == expected(rows)


@pytest.fixture
def duckdb_tables(duckdb_settings: Settings) -> Iterator[tuple[sa.Engine, sa.Table, sa.Table]]:
    metadata = sa.MetaData()
    tables = forecasts_table(metadata), fred_with_vintage(metadata)
    engine = create_engine(duckdb_settings)
    metadata.create_all(engine)
    yield engine, *tables
    engine.dispose()


def test_duckdb_writes_any_declared_table(duckdb_tables: tuple[sa.Engine, sa.Table, sa.Table]) -> None:
    engine, forecasts, fred = duckdb_tables
    writer = DuckDBWriter(engine)
    write_and_compare(engine, writer, forecasts, forecast_rows(forecasts))
    write_and_compare(engine, writer, fred, vintage_rows(fred))
    # a row of the original table lacks the new column: refused, not written with a hole
    with pytest.raises(TypeError, match=r"row 0: a FredObservation has the columns .* build rows with"):
        writer.write(fred, [FredObservation(series_id="GDP", date=dt.date(2024, 1, 1))])


@pytest.fixture(scope="module")
def bigquery_tables(standin: Any) -> Iterator[tuple[sa.Engine, sa.Table, sa.Table]]:
    """A dataset on the stand-in holding the test's own tables, made with ``create_all``."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    settings = Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=standin.host,
    )
    metadata = sa.MetaData()
    tables = forecasts_table(metadata), fred_with_vintage(metadata)
    engine = create_engine(settings)
    with engine.connect() as connection:
        ensure_dataset(connection, settings)
    metadata.create_all(engine)
    yield engine, *tables
    engine.dispose()


@pytest.mark.bigquery
@pytest.mark.parametrize("method", ["stream", "load"])
def test_bigquery_writers_write_any_declared_table(
    bigquery_tables: tuple[sa.Engine, sa.Table, sa.Table], method: str
) -> None:
    engine, forecasts, fred = bigquery_tables
    writer: Writer = (BigQueryStreamWriter if method == "stream" else BigQueryLoadWriter).for_bind(engine)
    write_and_compare(engine, writer, forecasts, forecast_rows(forecasts))
    write_and_compare(engine, writer, fred, vintage_rows(fred))


def test_integers_stream_as_strings_and_load_as_numbers(forecasts: sa.Table) -> None:
    row = row_type(forecasts).model_validate(record(draws=BIG))
    # insertAll reads JSON numbers as doubles; the client's own insert_rows sends strings too
    assert (row.to_bigquery_row()["horizon"], row.to_bigquery_row()["draws"]) == ("3", str(BIG))
    assert row.to_bigquery_row(for_load_job=True)["draws"] == BIG


def test_python_side_defaults_become_field_defaults_and_are_validated() -> None:
    table = time_series(
        _table(
            _id(),
            _day(),
            sa.Column("source", sa.String, nullable=False, default="model"),
            sa.Column("checked_at", sa.TIMESTAMP(timezone=True), default=lambda: dt.datetime(2024, 1, 1)),
        ),
        time="day",
        key=["day", "source"],
    )
    t = row_type(table)
    assert not t.model_fields["source"].is_required()
    errors = errors_of(t, [{"day": "2024-01-01"}, {"day": "2024-01-01", "checked_at": T0}])
    # the default's naive datetime is reported on its field, never stored
    assert list(errors) == [(0, "checked_at")] and "naive datetime" in errors[(0, "checked_at")]
    row = t.model_validate({"day": "2024-01-01", "checked_at": T0})
    assert row.source == "model"  # type: ignore[attr-defined]
    assert row.id == natural_id("t", dt.date(2024, 1, 1), "model")
