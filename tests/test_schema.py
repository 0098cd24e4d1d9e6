"""The metadata compiles to the BigQuery DDL we mean, and rejects bad options."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
import sqlglot
from google.cloud.bigquery import TimePartitioning
from sqlalchemy.schema import CreateTable
from sqlalchemy_bigquery.base import BigQueryDialect

from bqrepo import schema
from bqrepo.table_options import SchemaError, TableOptions, check_table_options

DIALECT = BigQueryDialect()

# table -> (partition clause, clustering clause, OPTIONS content fragments)
EXPECTED = {
    "events": (
        "PARTITION BY TIMESTAMP_TRUNC(mentioned_at, DAY)",
        "CLUSTER BY event_type, source_name",
        "require_partition_filter=true",
    ),
    "entity_mentions": (
        "PARTITION BY TIMESTAMP_TRUNC(mentioned_at, DAY)",
        "CLUSTER BY entity_id",
        "require_partition_filter=true",
    ),
    "fred_indicators": ("PARTITION BY DATE_TRUNC(date, MONTH)", "CLUSTER BY series_id", None),
    "un_comtrade": ("PARTITION BY DATE_TRUNC(period, MONTH)", "CLUSTER BY commodity_code", None),
    "world_bank": ("PARTITION BY DATE_TRUNC(date, YEAR)", "CLUSTER BY indicator_id", None),
}

COLUMNS = {
    "events": {
        "id": "STRING NOT NULL", "title": "STRING", "content": "STRING", "source_url": "STRING",
        "source_name": "STRING", "event_type": "STRING", "location": "STRING",
        "risk_score": "FLOAT64", "severity": "STRING", "mentioned_at": "TIMESTAMP NOT NULL",
        "created_at": "TIMESTAMP", "metadata": "JSON",
    },
    "entity_mentions": {
        "id": "STRING NOT NULL", "entity_id": "STRING NOT NULL", "event_id": "STRING",
        "mentioned_at": "TIMESTAMP NOT NULL", "context": "STRING",
    },
    "fred_indicators": {
        "id": "STRING NOT NULL", "series_id": "STRING NOT NULL", "date": "DATE NOT NULL",
        "value": "FLOAT64", "series_name": "STRING", "units": "STRING", "ingested_at": "TIMESTAMP",
    },
    "un_comtrade": {
        "id": "STRING NOT NULL", "period": "DATE NOT NULL", "reporter_code": "STRING NOT NULL",
        "commodity_code": "STRING NOT NULL", "trade_flow": "STRING NOT NULL",
        "value_usd": "FLOAT64", "ingested_at": "TIMESTAMP",
    },
    "world_bank": {
        "id": "STRING NOT NULL", "indicator_id": "STRING NOT NULL", "date": "DATE NOT NULL",
        "value": "FLOAT64", "country_code": "STRING NOT NULL", "ingested_at": "TIMESTAMP",
    },
}


def ddl(table: sa.Table) -> str:
    return str(CreateTable(table).compile(dialect=DIALECT))


def test_metadata_has_the_five_tables() -> None:
    assert sorted(schema.metadata.tables) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ddl_partitioning_clustering_options(name: str) -> None:
    text = ddl(schema.metadata.tables[name])
    partition, cluster, option = EXPECTED[name]
    assert partition in text
    assert cluster in text
    if option:
        assert option in text
    else:
        assert "require_partition_filter" not in text


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_ddl_column_types_and_modes(name: str) -> None:
    text = ddl(schema.metadata.tables[name])
    found = {
        m.group(1): re.sub(r"\s+OPTIONS\(.*\)$", "", m.group(2)).strip()
        for m in re.finditer(r"^\s*`(\w+)` (.+?),?\s*$", text, re.M)
    }
    assert found == COLUMNS[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ddl_parses_as_bigquery(name: str) -> None:
    parsed = sqlglot.parse_one(ddl(schema.metadata.tables[name]), read="bigquery")
    assert parsed.find(sqlglot.exp.PartitionedByProperty) is not None
    assert parsed.find(sqlglot.exp.ClusterProperty) is not None


def test_options_round_trip() -> None:
    options = TableOptions.of(schema.events)
    assert options.partition_field == "mentioned_at"
    assert options.partition_type == "DAY"
    assert options.clustering_fields == ("event_type", "source_name")
    assert options.require_partition_filter is True


def _table(*columns: sa.Column, **kw: object) -> sa.Table:
    return sa.Table("bad", sa.MetaData(), *columns, **kw)


def ts(name: str = "ts") -> sa.Column:
    return sa.Column(name, sa.TIMESTAMP(timezone=True), nullable=False)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            lambda: _table(ts(), bigquery_time_partitioning=TimePartitioning(field="nope")),
            "table 'bad': partition column 'nope' does not exist",
        ),
        (
            lambda: _table(ts(), bigquery_clustering_fields=["ts", "missing"]),
            "table 'bad': clustering column 'missing' does not exist",
        ),
        (
            lambda: _table(
                *(sa.Column(c, sa.String) for c in "abcde"),
                bigquery_clustering_fields=list("abcde"),
            ),
            "table 'bad': 5 clustering columns",
        ),
        (
            lambda: _table(
                sa.Column("d", sa.Date, nullable=False),
                bigquery_time_partitioning=TimePartitioning(field="d", type_="DAY"),
            ),
            "partition column 'd' of type DATE cannot be partitioned by DAY: BigQuery accepts it, "
            "but sqlalchemy-bigquery 1.17 cannot compile CREATE TABLE for it "
            "(googleapis/python-bigquery-sqlalchemy#1162)",
        ),
        (
            lambda: _table(
                sa.Column("d", sa.Date, nullable=False),
                bigquery_time_partitioning=TimePartitioning(field="d", type_="HOUR"),
            ),
            "partition column 'd' of type DATE cannot be partitioned by HOUR; use one of "
            "['MONTH', 'YEAR']",
        ),
        (
            lambda: _table(
                sa.Column("dt", sa.DateTime, nullable=False),
                bigquery_time_partitioning=TimePartitioning(field="dt", type_="DAY"),
            ),
            "partition column 'dt' must be TIMESTAMP or DATE, not DATETIME: DATETIME is a "
            "wall-clock time without a time zone",
        ),
        (
            lambda: _table(
                sa.Column("ts", sa.TIMESTAMP(timezone=True)),
                bigquery_time_partitioning=TimePartitioning(field="ts"),
            ),
            "partition column 'ts' must be NOT NULL",
        ),
        (
            lambda: _table(
                sa.Column("s", sa.String, nullable=False),
                bigquery_time_partitioning=TimePartitioning(field="s"),
            ),
            "partition column 's' must be TIMESTAMP or DATE",
        ),
    ],
)
def test_bad_options_fail_with_table_and_column(table, message: str) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        check_table_options(table())


def test_bad_schema_fails_at_import(tmp_path, monkeypatch) -> None:
    """A module defining tables the way schema.py does fails when imported."""
    module = tmp_path / "bad_schema_module.py"
    module.write_text(
        "import sqlalchemy as sa\n"
        "from google.cloud.bigquery import TimePartitioning\n"
        "from bqrepo.table_options import check_table_options\n"
        "t = sa.Table('events', sa.MetaData(), sa.Column('x', sa.String),\n"
        "    bigquery_clustering_fields=['source'])\n"
        "check_table_options(t)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SchemaError, match="table 'events': clustering column 'source'"):
        __import__("bad_schema_module")
