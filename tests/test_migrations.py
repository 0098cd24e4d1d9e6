"""``alembic upgrade``/``downgrade`` on DuckDB and on the BigQuery stand-in, and offline DDL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlglot
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.cloud import bigquery

from bqrepo import migrate, schema
from bqrepo.engine import bigquery_client, create_engine
from bqrepo.settings import Settings
from bqrepo.table_options import TableOptions

ROOT = Path(__file__).resolve().parents[1]
TABLES = sorted(schema.metadata.tables)


def duckdb_tables(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_duckdb_upgrade_downgrade_upgrade(duckdb_settings: Settings) -> None:
    migrate.upgrade(duckdb_settings)
    assert duckdb_tables(duckdb_settings) == {*TABLES, "alembic_version"}
    assert migrate.current_revision(duckdb_settings) == "0001"
    migrate.downgrade(duckdb_settings)
    assert duckdb_tables(duckdb_settings) == {"alembic_version"}
    assert migrate.current_revision(duckdb_settings) is None
    migrate.upgrade(duckdb_settings)
    assert duckdb_tables(duckdb_settings) >= set(TABLES)


def test_duckdb_autogenerate_after_upgrade_is_empty(duckdb_settings: Settings) -> None:
    migrate.upgrade(duckdb_settings)
    engine = create_engine(duckdb_settings)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_duckdb_autogenerate_sees_a_real_difference(duckdb_settings: Settings) -> None:
    """The empty-diff check above can fail: a missing column is detected."""
    migrate.upgrade(duckdb_settings)
    engine = create_engine(duckdb_settings)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE events DROP COLUMN severity")
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    finally:
        engine.dispose()
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "severity")]


def bigquery_type(column: sa.Column) -> str:
    return {
        sa.String: "STRING",
        sa.Double: "FLOAT",
        sa.TIMESTAMP: "TIMESTAMP",
        sa.Date: "DATE",
        sa.JSON: "JSON",
    }[next(t for t in (sa.TIMESTAMP, sa.Double, sa.Date, sa.JSON, sa.String) if isinstance(column.type, t))]


def assert_tables_match_metadata(client: bigquery.Client, settings: Settings) -> None:
    for name in TABLES:
        table = client.get_table(f"{settings.bigquery_project}.{settings.bigquery_dataset}.{name}")
        expected = TableOptions.of(schema.metadata.tables[name])
        assert table.time_partitioning is not None, name
        assert table.time_partitioning.field == expected.partition_field
        assert table.time_partitioning.type_ == expected.partition_type
        assert tuple(table.clustering_fields or ()) == expected.clustering_fields
        assert bool(table.require_partition_filter) == expected.require_partition_filter
        assert [(f.name, f.field_type, f.mode) for f in table.schema] == [
            (c.name, bigquery_type(c), "NULLABLE" if c.nullable else "REQUIRED")
            for c in schema.metadata.tables[name].columns
        ]


def bq_table_names(client: bigquery.Client, settings: Settings) -> set[str]:
    return {t.table_id for t in client.list_tables(f"{settings.bigquery_project}.{settings.bigquery_dataset}")}


@pytest.mark.bigquery
def test_bigquery_upgrade_downgrade_upgrade(bigquery_settings: Settings) -> None:
    client = bigquery_client(bigquery_settings)
    migrate.upgrade(bigquery_settings)
    dataset = client.get_dataset(f"{bigquery_settings.bigquery_project}.{bigquery_settings.bigquery_dataset}")
    assert dataset.location == "US"
    assert bq_table_names(client, bigquery_settings) == {*TABLES, "alembic_version"}
    assert_tables_match_metadata(client, bigquery_settings)
    assert migrate.current_revision(bigquery_settings) == "0001"

    migrate.downgrade(bigquery_settings)
    assert bq_table_names(client, bigquery_settings) == {"alembic_version"}
    assert migrate.current_revision(bigquery_settings) is None

    migrate.upgrade(bigquery_settings)
    assert_tables_match_metadata(client, bigquery_settings)


@pytest.mark.bigquery
def test_bigquery_dataset_location_is_configurable(standin, bigquery_settings: Settings) -> None:
    from dataclasses import replace

    settings = replace(bigquery_settings, location="EU")
    migrate.upgrade(settings)
    client = bigquery_client(settings)
    assert client.get_dataset(f"{settings.bigquery_project}.{settings.bigquery_dataset}").location == "EU"


@pytest.mark.bigquery
def test_bigquery_interrupted_upgrade_completes_when_rerun(bigquery_settings: Settings) -> None:
    """Simulate a crash after the dataset and two tables were created, before
    alembic_version was stamped: running the upgrade again completes it."""
    engine = create_engine(bigquery_settings)
    try:
        with engine.connect() as connection:
            from bqrepo.alembic_ext import ensure_dataset

            ensure_dataset(connection, bigquery_settings)
            schema.events.create(connection)
            schema.world_bank.create(connection)
    finally:
        engine.dispose()
    migrate.upgrade(bigquery_settings)
    client = bigquery_client(bigquery_settings)
    assert bq_table_names(client, bigquery_settings) == {*TABLES, "alembic_version"}
    assert migrate.current_revision(bigquery_settings) == "0001"


def offline_sql(url: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
        "BQREPO_URL": url,
        # Make sure no credential of any kind is reachable.
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/credentials.json",
        "NO_GCE_CHECK": "True",
    }
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_offline_sql_prints_complete_bigquery_ddl() -> None:
    sql = offline_sql("bigquery://my-project/analytics")
    assert "CREATE SCHEMA IF NOT EXISTS `my-project`.`analytics` OPTIONS(location='US');" in sql
    # The dataset comes first, once: every table, alembic_version too, lives in it.
    assert sql.count("CREATE SCHEMA") == 1
    assert sql.index("CREATE SCHEMA") < sql.index("CREATE TABLE `alembic_version`")
    assert sql.index("CREATE SCHEMA") < sql.index("CREATE TABLE")
    for name in TABLES:
        assert f"CREATE TABLE IF NOT EXISTS `{name}`" in sql
    assert sql.count("PARTITION BY") == 5
    assert sql.count("CLUSTER BY") == 5
    assert sql.count("require_partition_filter=true") == 2
    assert "INSERT INTO `alembic_version` (`version_num`) VALUES ('0001');" in sql
    statements = [s for s in sql.split(";") if s.strip() and not s.strip().startswith("--")]
    for statement in statements:
        body = "\n".join(l for l in statement.splitlines() if not l.startswith("--"))
        sqlglot.parse_one(body, read="bigquery")


def test_offline_sql_rejects_a_bad_dataset_name() -> None:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "BQREPO_URL": "bigquery://my-project/bad-name"}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "BQREPO_URL dataset='bad-name' is not a valid BigQuery dataset id" in result.stderr
