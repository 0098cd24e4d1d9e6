"""Schema evolution on the BigQuery stand-in: change the metadata, autogenerate,
upgrade, check the live table and the data, downgrade, check again.

Each scenario copies the migration scripts into a temporary directory, points
``env.py`` at a changed copy of ``bqrepo.schema.metadata`` and lets Alembic
autogenerate revision 0002 from the difference with the live dataset.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations
from google.cloud import bigquery
from google.cloud.bigquery import TimePartitioning

from bqrepo import migrate, schema
from bqrepo.alembic_ext import AUTOGENERATE_PLUGINS, partitioning
from bqrepo.alembic_ext.partitioning import STAGING_SUFFIX
from bqrepo.engine import bigquery_client, create_engine
from bqrepo.settings import Settings
from bqrepo.table_options import PartitionLimitWarning, SchemaError

pytestmark = pytest.mark.bigquery

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- helpers


def changed_metadata(
    change: Callable[[sa.MetaData], None] | None = None,
    **table_kwargs: dict[str, Any],
) -> sa.MetaData:
    """A copy of bqrepo's metadata, with ``table_kwargs[name]`` replacing dialect
    options of that table and ``change`` applied afterwards."""
    metadata = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        kwargs = {**table.kwargs, **table_kwargs.get(table.name, {})}
        sa.Table(
            table.name,
            metadata,
            *(c._copy() for c in table.columns),
            comment=table.comment,
            info=dict(table.info),
            **kwargs,
        )
    if change is not None:
        change(metadata)
    return metadata


def scenario_config(tmp_path: Path, settings: Settings, metadata: sa.MetaData) -> Config:
    """Alembic config on a private copy of the scripts, comparing against ``metadata``."""
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    config = Config(output_buffer=io.StringIO())
    config.set_main_option("script_location", str(scripts))
    config.attributes["bqrepo_settings"] = settings
    config.attributes["bqrepo_metadata"] = metadata
    return config


def autogenerate(config: Config) -> str:
    """``alembic revision --autogenerate`` as revision 0002; returns its source."""
    script = command.revision(config, message="scenario", autogenerate=True, rev_id="0002")
    assert script is not None
    return Path(script.path).read_text()


def code_of(source: str, function: str) -> list[str]:
    """The statements of ``function`` in a revision file, without comments and docstring."""
    body = source.split(f"def {function}() -> None:\n", 1)[1].split("\ndef ", 1)[0]
    lines = [line.strip() for line in body.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", '"""'))]


def table_ref(settings: Settings, name: str) -> str:
    return f"{settings.bigquery_project}.{settings.bigquery_dataset}.{name}"


def query(client: bigquery.Client, sql: str, **params: tuple[str, Any]) -> list[Any]:
    """Run ``sql`` with ``params`` given as ``name=(BigQuery type, value)``."""
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(k, *v) for k, v in params.items()]
    )
    return list(client.query(sql, job_config=config).result())


EVENT_DAYS = 30
FRED_MONTHS = 12 * 40  # 1950 .. 1989: 40 YEAR partitions, some before 1960


def load_data(client: bigquery.Client, settings: Settings) -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    events = [
        {
            "id": f"e{i}",
            "title": f"event {i}",
            "source_name": ("reuters", "ap", "efe")[i % 3],
            "event_type": ("protest", "election")[i % 2],
            "severity": ("low", "high")[i % 2],
            "risk_score": i * 0.5,
            "mentioned_at": (start + dt.timedelta(hours=7 * i)).isoformat(),
            "metadata": '{"k": %d}' % i,
        }
        for i in range(EVENT_DAYS * 24 // 7)
    ]
    fred = [
        {
            "id": f"f{i}",
            "series_id": ("GDP", "CPI", "UNRATE")[i % 3],
            "date": dt.date(1950 + i // 12, i % 12 + 1, 1).isoformat(),
            "value": i * 1.25,
            "units": "pct",
        }
        for i in range(FRED_MONTHS)
    ]
    for name, rows in (("events", events), ("fred_indicators", fred)):
        assert client.insert_rows_json(table_ref(settings, name), rows) == []


def data_summary(client: bigquery.Client, settings: Settings) -> dict[str, tuple[Any, ...]]:
    """Row count, value sum and a row fingerprint checksum per table, read with
    partition filters so tables requiring one can be read."""
    dataset = f"`{settings.bigquery_project}.{settings.bigquery_dataset}`"
    events = query(
        client,
        f"SELECT COUNT(*), SUM(risk_score), BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(t))) "
        f"FROM {dataset}.events t WHERE mentioned_at >= @since",
        since=("TIMESTAMP", dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)),
    )[0]
    fred = query(
        client,
        f"SELECT COUNT(*), SUM(value), BIT_XOR(FARM_FINGERPRINT(TO_JSON_STRING(t))) "
        f"FROM {dataset}.fred_indicators t WHERE date >= @since",
        since=("DATE", dt.date(1900, 1, 1)),
    )[0]
    return {"events": tuple(events), "fred_indicators": tuple(fred)}


@pytest.fixture
def loaded(bigquery_settings: Settings) -> tuple[Settings, bigquery.Client, dict[str, Any]]:
    """The stand-in dataset at revision 0001 with rows in events and fred_indicators."""
    migrate.upgrade(bigquery_settings)
    client = bigquery_client(bigquery_settings)
    load_data(client, bigquery_settings)
    summary = data_summary(client, bigquery_settings)
    assert summary["events"][0] == EVENT_DAYS * 24 // 7
    assert summary["fred_indicators"][0] == FRED_MONTHS
    return bigquery_settings, client, summary


def run_scenario(
    tmp_path: Path, loaded: tuple[Settings, bigquery.Client, dict[str, Any]], metadata: sa.MetaData
) -> tuple[str, Callable[[], None], Callable[[], None]]:
    """Autogenerate against ``metadata``; return the revision source and upgrade/downgrade."""
    settings, _, _ = loaded
    config = scenario_config(tmp_path, settings, metadata)
    source = autogenerate(config)
    return (
        source,
        lambda: command.upgrade(config, "head"),
        lambda: command.downgrade(config, "0001"),
    )


def assert_no_further_changes(settings: Settings, metadata: sa.MetaData) -> None:
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "autogenerate_plugins": AUTOGENERATE_PLUGINS},
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


# ---------------------------------------------------------------- scenarios


def test_matching_database_autogenerates_an_empty_migration(tmp_path, bigquery_settings) -> None:
    migrate.upgrade(bigquery_settings)
    source = autogenerate(scenario_config(tmp_path, bigquery_settings, schema.metadata))
    assert code_of(source, "upgrade") == ["pass"]
    assert code_of(source, "downgrade") == ["pass"]
    assert_no_further_changes(bigquery_settings, schema.metadata)


def test_recluster_events(tmp_path, loaded) -> None:
    settings, client, before = loaded
    metadata = changed_metadata(events={"bigquery_clustering_fields": ["severity", "event_type"]})
    source, upgrade, downgrade = run_scenario(tmp_path, loaded, metadata)
    assert (
        "op.set_clustering('events', ['severity', 'event_type'], "
        "existing=['event_type', 'source_name'])" in source
    )
    assert (
        "op.set_clustering('events', ['event_type', 'source_name'], "
        "existing=['severity', 'event_type'])" in source
    )

    upgrade()
    assert client.get_table(table_ref(settings, "events")).clustering_fields == ["severity", "event_type"]
    assert data_summary(client, settings) == before
    assert_no_further_changes(settings, metadata)

    downgrade()
    assert client.get_table(table_ref(settings, "events")).clustering_fields == ["event_type", "source_name"]
    assert data_summary(client, settings) == before


def test_add_a_column(tmp_path, loaded) -> None:
    settings, client, before = loaded

    def add_language(metadata: sa.MetaData) -> None:
        metadata.tables["events"].append_column(
            sa.Column("language", sa.String)
        )

    metadata = changed_metadata(add_language)
    source, upgrade, downgrade = run_scenario(tmp_path, loaded, metadata)
    assert "op.add_column('events', sa.Column('language', sa.String(), nullable=True))" in source
    assert "op.drop_column('events', 'language')" in source

    upgrade()
    fields = {f.name: f for f in client.get_table(table_ref(settings, "events")).schema}
    assert (fields["language"].field_type, fields["language"].mode) == ("STRING", "NULLABLE")
    assert data_summary(client, settings) == before_with_null_column(client, settings, before)
    assert_no_further_changes(settings, metadata)

    # BigQuery DDL is not transactional: the same step run again must not fail.
    upgrade_sql_again(settings)

    downgrade()
    assert "language" not in {f.name for f in client.get_table(table_ref(settings, "events")).schema}
    assert data_summary(client, settings) == before


def before_with_null_column(client: bigquery.Client, settings: Settings, before: dict) -> dict:
    """A new NULL column changes each row's JSON fingerprint, not counts or sums."""
    after = data_summary(client, settings)
    assert after["events"][:2] == before["events"][:2]
    assert after["fred_indicators"] == before["fred_indicators"]
    return after


def upgrade_sql_again(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            operations = Operations(MigrationContext.configure(connection))
            operations.add_column("events", sa.Column("language", sa.String))
            operations.drop_column("events", "no_such_column")
    finally:
        engine.dispose()


def test_adding_a_required_column_fails_clearly_before_any_change(tmp_path, loaded) -> None:
    settings, client, before = loaded

    def add_required(metadata: sa.MetaData) -> None:
        metadata.tables["events"].append_column(sa.Column("language", sa.String, nullable=False))

    source, upgrade, _ = run_scenario(tmp_path, loaded, changed_metadata(add_required))
    assert "sa.Column('language', sa.String(), nullable=False)" in source
    with pytest.raises(SchemaError, match="cannot add column 'language' as NOT NULL: BigQuery"):
        upgrade()
    assert "language" not in {f.name for f in client.get_table(table_ref(settings, "events")).schema}
    assert migrate.current_revision(settings) == "0001"
    assert data_summary(client, settings) == before


def test_change_partition_granularity_of_fred_indicators(tmp_path, loaded) -> None:
    settings, client, before = loaded
    metadata = changed_metadata(
        fred_indicators={"bigquery_time_partitioning": TimePartitioning(field="date", type_="YEAR")}
    )
    source, upgrade, downgrade = run_scenario(tmp_path, loaded, metadata)
    assert "from google.cloud.bigquery import TimePartitioning" in source
    assert source.count("import TimePartitioning") == 1
    assert (
        "op.change_partitioning('fred_indicators', TimePartitioning(field='date', type_='YEAR'), "
        "existing=TimePartitioning(field='date', type_='MONTH'), require_partition_filter=False)"
        in source
    )
    ref = table_ref(settings, "fred_indicators")
    original = client.get_table(ref)

    upgrade()
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.time_partitioning.type_) == ("date", "YEAR")
    assert table.clustering_fields == original.clustering_fields
    assert table.description == original.description
    assert [(f.name, f.field_type, f.mode, f.description) for f in table.schema] == [
        (f.name, f.field_type, f.mode, f.description) for f in original.schema
    ]
    assert data_summary(client, settings) == before
    assert staging_tables(client, settings) == []
    assert_no_further_changes(settings, metadata)

    downgrade()
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.time_partitioning.type_) == ("date", "MONTH")
    assert data_summary(client, settings) == before
    assert staging_tables(client, settings) == []


def test_a_new_labelled_table_autogenerates_empty_after_upgrade(tmp_path, loaded) -> None:
    """CREATE TABLE cannot carry labels: op.create_table sets them right after,
    so the next autogenerate finds nothing to do."""
    settings, client, _ = loaded

    def add_table(metadata: sa.MetaData) -> None:
        sa.Table(
            "labelled",
            metadata,
            sa.Column("id", sa.String, nullable=False),
            sa.Column("at", sa.TIMESTAMP(timezone=True), nullable=False),
            bigquery_time_partitioning=TimePartitioning(field="at", type_="DAY"),
            info={"bigquery_labels": {"team": "data", "tier": "gold"}},
        )

    metadata = changed_metadata(add_table)
    source, upgrade, downgrade = run_scenario(tmp_path, loaded, metadata)
    assert "info={'bigquery_labels': {'team': 'data', 'tier': 'gold'}}" in source

    upgrade()
    assert client.get_table(table_ref(settings, "labelled")).labels == {"team": "data", "tier": "gold"}
    assert_no_further_changes(settings, metadata)

    downgrade()
    dataset = f"{settings.bigquery_project}.{settings.bigquery_dataset}"
    assert "labelled" not in {t.table_id for t in client.list_tables(dataset)}


def test_autogenerate_never_proposes_dropping_a_staging_table(tmp_path, bigquery_settings, caplog) -> None:
    """After an interrupted change_partitioning the staging table may hold the
    only copy of the rows: autogenerate leaves it alone and says why."""
    settings = bigquery_settings
    migrate.upgrade(settings)
    client = bigquery_client(settings)
    name = "fred_indicators" + STAGING_SUFFIX
    staging = bigquery.Table(
        table_ref(settings, name), schema=client.get_table(table_ref(settings, "fred_indicators")).schema
    )
    client.create_table(staging)
    row = {"id": "f1", "series_id": "GDP", "date": "1999-01-01", "value": 1.5}
    assert client.insert_rows_json(table_ref(settings, name), [row]) == []
    caplog.set_level("WARNING", logger="bqrepo.alembic_ext")

    source = autogenerate(scenario_config(tmp_path, settings, schema.metadata))
    assert code_of(source, "upgrade") == ["pass"]
    assert code_of(source, "downgrade") == ["pass"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        f"table {name!r} is left over from an interrupted change_partitioning of "
        "'fred_indicators'" in message
        for message in warned
    ), warned
    assert client.get_table(table_ref(settings, name)).num_rows == 1


def test_toggle_require_partition_filter(tmp_path, loaded) -> None:
    settings, client, before = loaded
    metadata = changed_metadata(events={"bigquery_require_partition_filter": False})
    source, upgrade, downgrade = run_scenario(tmp_path, loaded, metadata)
    assert (
        "op.set_table_options('events', require_partition_filter=False, "
        "existing={'require_partition_filter': True})" in source
    )
    unfiltered = f"SELECT COUNT(*) FROM `{table_ref(settings, 'events')}`"

    upgrade()
    assert client.get_table(table_ref(settings, "events")).require_partition_filter is False
    assert query(client, unfiltered)[0][0] == before["events"][0]
    assert data_summary(client, settings) == before
    assert_no_further_changes(settings, metadata)

    downgrade()
    assert client.get_table(table_ref(settings, "events")).require_partition_filter is True
    with pytest.raises(Exception, match="without a filter over column"):
        query(client, unfiltered)
    assert data_summary(client, settings) == before


def test_labels_description_and_partition_expiration(tmp_path, loaded) -> None:
    settings, client, before = loaded

    def label(metadata: sa.MetaData) -> None:
        metadata.tables["world_bank"].info["bigquery_labels"] = {"team": "data", "tier": "gold"}
        metadata.tables["world_bank"].comment = "World Bank indicators (annual)"

    metadata = changed_metadata(
        label,
        world_bank={
            "bigquery_time_partitioning": TimePartitioning(
                field="date", type_="YEAR", expiration_ms=400 * 86_400_000
            )
        },
    )
    source, upgrade, downgrade = run_scenario(tmp_path, loaded, metadata)
    assert "op.set_table_options('world_bank', description='World Bank indicators (annual)', " in source
    assert "labels={'team': 'data', 'tier': 'gold'}, partition_expiration_days=400.0, existing=" in source
    assert "create_table_comment" not in source
    ref = table_ref(settings, "world_bank")

    upgrade()
    table = client.get_table(ref)
    assert table.labels == {"team": "data", "tier": "gold"}
    assert table.description == "World Bank indicators (annual)"
    assert table.time_partitioning.expiration_ms == 400 * 86_400_000
    assert_no_further_changes(settings, metadata)

    downgrade()
    table = client.get_table(ref)
    assert table.labels == {}
    assert table.description == "World Bank indicator observations"
    assert table.time_partitioning.expiration_ms is None
    assert data_summary(client, settings) == before


# ---------------------------------------------------------------- operations driven directly


def staging_tables(client: bigquery.Client, settings: Settings) -> list[str]:
    dataset = f"{settings.bigquery_project}.{settings.bigquery_dataset}"
    return [t.table_id for t in client.list_tables(dataset) if t.table_id.endswith(STAGING_SUFFIX)]


def run_ops(settings: Settings, body: Callable[[Operations], None]) -> None:
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            body(Operations(MigrationContext.configure(connection, opts={"bqrepo_settings": settings})))
    finally:
        engine.dispose()


YEARLY = TimePartitioning(field="date", type_="YEAR")


def test_repartition_copies_in_chunks_of_at_most_n_partitions(loaded, caplog) -> None:
    settings, client, before = loaded
    caplog.set_level("INFO", logger="bqrepo.alembic_ext")
    run_ops(settings, lambda op: op.change_partitioning("fred_indicators", YEARLY, max_partitions_per_job=14))
    copied = [r.getMessage() for r in caplog.records if "copied (" in r.getMessage()]
    # 40 yearly partitions in chunks of 14: 3 chunks, copied there and back.
    assert len(copied) == 6
    assert "chunk [0001-01-01, 1964-01-01) copied (168 rows)" in copied[0]
    assert data_summary(client, settings) == before
    assert client.get_table(table_ref(settings, "fred_indicators")).time_partitioning.type_ == "YEAR"


@pytest.mark.parametrize("crash_at", [2, 5])
def test_interrupted_repartition_completes_when_run_again(loaded, monkeypatch, crash_at) -> None:
    """Crash in the middle of the copy into the staging table (2nd of 3 chunks) or
    of the copy back after the old table was dropped (5th): running again finishes."""
    settings, client, before = loaded
    original = partitioning._Repartition._copy_chunk
    calls = {"n": 0}

    def crashing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(partitioning._Repartition, "_copy_chunk", crashing)
    change = lambda op: op.change_partitioning("fred_indicators", YEARLY, max_partitions_per_job=14)  # noqa: E731
    with pytest.raises(KeyboardInterrupt):
        run_ops(settings, change)
    assert staging_tables(client, settings) == ["fred_indicators" + STAGING_SUFFIX]
    monkeypatch.setattr(partitioning._Repartition, "_copy_chunk", original)

    run_ops(settings, change)
    assert staging_tables(client, settings) == []
    table = client.get_table(table_ref(settings, "fred_indicators"))
    assert table.time_partitioning.type_ == "YEAR"
    assert data_summary(client, settings) == before
    # And once more: nothing left to do, nothing changes.
    run_ops(settings, change)
    assert data_summary(client, settings) == before


# A child process that changes events' partitioning to created_at and is
# SIGKILLed right after the old table's require_partition_filter was switched
# off: nothing gets the chance to restore it.
_KILLED_AFTER_RELAXING = """
import os, signal, sys
from alembic.migration import MigrationContext
from alembic.operations import Operations
from google.cloud.bigquery import TimePartitioning
from bqrepo.alembic_ext import partitioning
from bqrepo.engine import create_engine
from bqrepo.settings import Settings

project, dataset, url, host, *wanted = sys.argv[1:]
settings = Settings(project_id=project, dataset=dataset, url=url, emulator_host=host)
kwargs = {"require_partition_filter": wanted[0] == "True"} if wanted else {}
partitioning._Repartition._validate = lambda self, source: os.kill(os.getpid(), signal.SIGKILL)
with create_engine(settings).connect() as connection:
    op = Operations(MigrationContext.configure(connection, opts={"bqrepo_settings": settings}))
    op.change_partitioning("events", TimePartitioning(field="created_at", type_="DAY"), **kwargs)
"""


@pytest.mark.parametrize("wanted", [None, True], ids=["default", "carried-in-op"])
def test_killed_repartition_keeps_require_partition_filter_when_run_again(
    loaded, monkeypatch, wanted
) -> None:
    """events requires a partition filter. A run killed after switching that off
    on the old table, and then a run interrupted in its copy, leave the old
    table requiring it again; the run that completes rebuilds it requiring it."""
    settings, client, before = loaded
    ref = table_ref(settings, "events")
    args = [settings.bigquery_project, settings.bigquery_dataset, settings.url, settings.emulator_host]
    kwargs = {} if wanted is None else {"require_partition_filter": wanted}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_RELAXING, *args, *(str(v) for v in kwargs.values())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.require_partition_filter) == ("mentioned_at", False)
    assert staging_tables(client, settings) == []

    by_created = TimePartitioning(field="created_at", type_="DAY")
    change = lambda op: op.change_partitioning("events", by_created, **kwargs)  # noqa: E731
    original = partitioning._Repartition._copy_chunk

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(partitioning._Repartition, "_copy_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ops(settings, change)
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.require_partition_filter) == ("mentioned_at", True)
    assert table.labels == {}
    monkeypatch.setattr(partitioning._Repartition, "_copy_chunk", original)

    run_ops(settings, change)
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.require_partition_filter) == ("created_at", True)
    assert table.labels == {}
    assert staging_tables(client, settings) == []
    nulls = query(client, f"SELECT COUNT(*), SUM(risk_score) FROM `{ref}` WHERE created_at IS NULL")
    assert tuple(nulls[0]) == before["events"][:2]


def test_repartition_warns_before_exceeding_10000_partitions(bigquery_settings) -> None:
    migrate.upgrade(bigquery_settings)
    client = bigquery_client(bigquery_settings)
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    rows = [
        {"id": f"e{i}", "mentioned_at": (start + dt.timedelta(hours=i)).isoformat()}
        for i in range(10_001)
    ]
    for i in range(0, len(rows), 2_500):
        assert client.insert_rows_json(table_ref(bigquery_settings, "events"), rows[i : i + 2_500]) == []
    hourly = TimePartitioning(field="mentioned_at", type_="HOUR")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartitionLimitWarning)
        with pytest.raises(PartitionLimitWarning, match="need 10001 partitions by HOUR"):
            run_ops(bigquery_settings, lambda op: op.change_partitioning("events", hourly))
    # The warning came before anything was created.
    assert staging_tables(client, bigquery_settings) == []
    assert client.get_table(table_ref(bigquery_settings, "events")).time_partitioning.type_ == "DAY"


INVALID_OPERATIONS = [
    (
        lambda op: op.change_partitioning(
            "fred_indicators", TimePartitioning(field="series_id", type_="MONTH")
        ),
        "partition column 'series_id' must be TIMESTAMP or DATE, not STRING",
    ),
    (
        lambda op: op.change_partitioning(
            "fred_indicators", TimePartitioning(field="nope", type_="YEAR")
        ),
        "partition column 'nope' does not exist",
    ),
    (
        lambda op: op.change_partitioning(
            "fred_indicators", TimePartitioning(field="date", type_="DAY")
        ),
        "partition column 'date' of type DATE cannot be partitioned by DAY: BigQuery accepts "
        "it, but sqlalchemy-bigquery 1.17 cannot compile CREATE TABLE for it "
        "(googleapis/python-bigquery-sqlalchemy#1162)",
    ),
    (
        lambda op: op.set_clustering("events", ["event_type", "nope"]),
        "clustering column 'nope' does not exist",
    ),
    (
        lambda op: op.set_clustering("events", ["id", "title", "content", "severity", "location"]),
        "5 clustering columns",
    ),
    (
        lambda op: op.set_table_options("entity_mentions", labels={"Team": "x"}),
        "label key 'Team' must start with a lowercase letter",
    ),
    (
        lambda op: op.drop_column("events", "event_type"),
        "cannot drop column 'event_type', the table is clustered by it",
    ),
    (
        lambda op: op.drop_column("fred_indicators", "date"),
        "cannot drop column 'date', the table is partitioned by it",
    ),
    (
        lambda op: op.alter_column("events", "title", nullable=False),
        "cannot make column 'title' NOT NULL",
    ),
]


def test_invalid_operations_fail_before_changing_anything(bigquery_settings) -> None:
    migrate.upgrade(bigquery_settings)
    client = bigquery_client(bigquery_settings)
    names = ("events", "fred_indicators", "entity_mentions")
    snapshot = {n: client.get_table(table_ref(bigquery_settings, n)).to_api_repr() for n in names}
    for body, message in INVALID_OPERATIONS:
        with pytest.raises(SchemaError, match=re.escape(message)):
            run_ops(bigquery_settings, body)
    for name, before in snapshot.items():
        after = client.get_table(table_ref(bigquery_settings, name)).to_api_repr()
        for key in ("schema", "timePartitioning", "clustering", "requirePartitionFilter", "labels"):
            assert after.get(key) == before.get(key), (name, key)
    assert staging_tables(client, bigquery_settings) == []


def test_operations_do_nothing_on_duckdb(duckdb_settings) -> None:
    migrate.upgrade(duckdb_settings)
    engine = create_engine(duckdb_settings)
    try:
        with engine.connect() as connection:
            op = Operations(MigrationContext.configure(connection))
            op.set_clustering("events", ["severity"], existing=["event_type", "source_name"])
            op.set_table_options("events", require_partition_filter=False)
            op.change_partitioning("fred_indicators", YEARLY)
            assert sa.inspect(connection).get_table_names() == sorted(
                [*schema.metadata.tables, "alembic_version"]
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------- offline --sql


def test_offline_sql_prints_ddl_or_says_the_api_is_needed(tmp_path, loaded) -> None:
    settings, client, before = loaded

    def change(metadata: sa.MetaData) -> None:
        metadata.tables["events"].append_column(sa.Column("language", sa.String, comment="ISO code"))
        metadata.tables["world_bank"].info["bigquery_labels"] = {"team": "data"}

    metadata = changed_metadata(
        change,
        events={"bigquery_clustering_fields": ["severity"], "bigquery_require_partition_filter": False},
        fred_indicators={"bigquery_time_partitioning": YEARLY},
    )
    config = scenario_config(tmp_path, settings, metadata)
    autogenerate(config)
    buffer = config.output_buffer
    command.upgrade(config, "0001:0002", sql=True)
    sql = buffer.getvalue()

    assert (
        "ALTER TABLE `events` ADD COLUMN IF NOT EXISTS `language` STRING "
        "OPTIONS(description='ISO code');" in sql
    )
    assert "ALTER TABLE `events` SET OPTIONS(require_partition_filter=false);" in sql
    assert "ALTER TABLE `world_bank` SET OPTIONS(labels=[('team', 'data')]);" in sql
    assert "-- bqrepo: set_clustering('events', ['severity']) needs the BigQuery API" in sql
    assert (
        f"--   bq update --clustering_fields=severity "
        f"{settings.bigquery_project}:{settings.bigquery_dataset}.events" in sql
    )
    # The rebuild as DDL, never a comment followed by UPDATE alembic_version alone (issue 9 part 6).
    rebuild = [
        "ALTER TABLE `fred_indicators` SET OPTIONS(require_partition_filter=false);",
        "CREATE TABLE `fred_indicators__bqrepo_repartition` LIKE `fred_indicators` "
        "PARTITION BY DATE_TRUNC(`date`, YEAR) CLUSTER BY `series_id` "
        "OPTIONS(require_partition_filter=false, partition_expiration_days=NULL);",
        "INSERT INTO `fred_indicators__bqrepo_repartition` SELECT * FROM `fred_indicators`;",
        "DROP TABLE `fred_indicators`;",
        "CREATE TABLE `fred_indicators` LIKE `fred_indicators__bqrepo_repartition` PARTITION BY DATE_TRUNC(`date`, YEAR) "
        "CLUSTER BY `series_id` "
        "OPTIONS(require_partition_filter=false, partition_expiration_days=NULL);",
        "INSERT INTO `fred_indicators` SELECT * FROM `fred_indicators__bqrepo_repartition`;",
        "DROP TABLE `fred_indicators__bqrepo_repartition`;",
    ]
    positions = [sql.find(statement) for statement in rebuild]
    assert -1 not in positions and positions == sorted(positions), sql
    assert positions[-1] < sql.index("UPDATE `alembic_version`")
    assert "more than 4,000 partitions by YEAR" in sql and "can be acknowledged and then lost" in sql
    statements = [s for s in sql.split(";") if s.strip()]
    for statement in statements:
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        if body.strip():
            sqlglot.parse_one(body, read="bigquery")
    # The printed option DDL does what the API path does, on the stand-in too.
    default = bigquery.QueryJobConfig(default_dataset=f"{settings.bigquery_project}.{settings.bigquery_dataset}")
    for statement in statements:
        if "SET OPTIONS" in statement:
            client.query(statement.strip(), job_config=default).result()
    assert client.get_table(table_ref(settings, "events")).require_partition_filter is False
    assert client.get_table(table_ref(settings, "world_bank")).labels == {"team": "data"}
    # And the printed rebuild, applied as printed, rebuilds with every row and column kept.
    original = client.get_table(table_ref(settings, "fred_indicators"))
    for statement in rebuild:
        client.query(statement.rstrip(";"), job_config=default).result()
    table = client.get_table(table_ref(settings, "fred_indicators"))
    assert (table.time_partitioning.field, table.time_partitioning.type_) == ("date", "YEAR")
    assert table.clustering_fields == original.clustering_fields
    # BigQuery's LIKE copies column modes and descriptions; the stand-in's copies names and types only.
    assert [(f.name, f.field_type) for f in table.schema] == [(f.name, f.field_type) for f in original.schema]
    assert data_summary(client, settings)["fred_indicators"] == before["fred_indicators"]
    assert staging_tables(client, settings) == []


def test_repartition_on_another_column_of_a_table_requiring_a_partition_filter(loaded) -> None:
    """events requires a partition filter; moving its partitioning to created_at
    (NULL in every row: the NULL chunk) and back keeps the rows and the requirement."""
    settings, client, before = loaded
    ref = table_ref(settings, "events")
    by_created = TimePartitioning(field="created_at", type_="DAY")
    run_ops(settings, lambda op: op.change_partitioning("events", by_created))
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.require_partition_filter) == ("created_at", True)
    nulls = query(client, f"SELECT COUNT(*), SUM(risk_score) FROM `{ref}` WHERE created_at IS NULL")
    assert tuple(nulls[0]) == before["events"][:2]

    by_mentioned = TimePartitioning(field="mentioned_at", type_="DAY")
    run_ops(settings, lambda op: op.change_partitioning("events", by_mentioned))
    table = client.get_table(ref)
    assert (table.time_partitioning.field, table.require_partition_filter) == ("mentioned_at", True)
    assert data_summary(client, settings) == before
    assert staging_tables(client, settings) == []


# ---------------------------------------------------------------- issue 9, part 6


def test_repartition_of_200000_rows_verifies_without_overflow(bigquery_settings) -> None:
    """The old checksum summed 64-bit fingerprints into BIGNUMERIC, which overflows the
    stand-in's DECIMAL(38, 18) at ~1,000 rows ("Overflow in HUGEINT addition")."""
    migrate.upgrade(bigquery_settings)
    client = bigquery_client(bigquery_settings)
    rows = 200_000
    query(  # generated by the server: 200,000 rows over 50 years of months
        client,
        f"INSERT INTO `{table_ref(bigquery_settings, 'fred_indicators')}` (id, series_id, date, value, units) "
        "SELECT CONCAT('f', CAST(i AS STRING)), CONCAT('S', CAST(MOD(i, 277) AS STRING)), "
        "DATE_ADD(DATE '1970-01-01', INTERVAL MOD(i, 600) MONTH), i * 0.25, 'pct' "
        "FROM UNNEST(GENERATE_ARRAY(1, @rows)) AS i",
        rows=("INT64", rows),
    )
    # data_summary's FARM_FINGERPRINT runs in Python on the stand-in (a minute here): SHA256 is native.
    summary = (
        "SELECT COUNT(*), SUM(value), COUNT(DISTINCT id), "
        "BIT_XOR(CAST(CONCAT('0x', SUBSTR(TO_HEX(SHA256(TO_JSON_STRING(t))), 50, 15)) AS INT64)) "
        f"FROM `{table_ref(bigquery_settings, 'fred_indicators')}` t WHERE date >= @since"
    )
    since = ("DATE", dt.date(1900, 1, 1))
    before = tuple(query(client, summary, since=since)[0])
    assert before[0] == before[2] == rows
    run_ops(bigquery_settings, lambda op: op.change_partitioning("fred_indicators", YEARLY))
    assert tuple(query(client, summary, since=since)[0]) == before
    assert client.get_table(table_ref(bigquery_settings, "fred_indicators")).time_partitioning.type_ == "YEAR"


def test_repartition_checksums_see_a_changed_value_and_a_duplicated_row(bigquery_settings) -> None:
    """Compared with the original rows: one value changed; one row doubled and another
    missing (same count); two rows doubled (BIT_XOR alone cannot see it)."""
    migrate.upgrade(bigquery_settings)
    client = bigquery_client(bigquery_settings)
    dataset = f"{bigquery_settings.bigquery_project}.{bigquery_settings.bigquery_dataset}"
    original = "SELECT i AS n, CAST(i AS STRING) AS s FROM UNNEST(GENERATE_ARRAY(1, 1000)) AS i"
    variants = {
        "original": original,
        "changed": original.replace("CAST(i AS STRING)", "IF(i = 500, 'x', CAST(i AS STRING))"),
        "swapped": original.replace("1, 1000", "1, 999") + " UNION ALL SELECT 1, '1'",
        "doubled": original + " UNION ALL SELECT 1, '1' UNION ALL SELECT 1, '1'",
    }
    stats = {}
    for name, select in variants.items():
        query(client, f"CREATE TABLE `{dataset}.{name}` AS {select}")
        t = sa.table(name, sa.column("n"), sa.column("s"), schema=bigquery_settings.bigquery_dataset).alias("t")
        engine = create_engine(bigquery_settings)
        try:
            with engine.connect() as connection:
                stats[name] = tuple(connection.execute(sa.select(*partitioning.checksums(t))).one())
        finally:
            engine.dispose()
    assert stats["original"][0] == stats["changed"][0] == stats["swapped"][0] == 1_000
    for name in ("changed", "swapped", "doubled"):
        assert stats[name] != stats["original"], name
    assert stats["doubled"][1] == stats["original"][1]  # XOR blind to a doubled pair; the sums are not


def test_no_pending_rebuilds_in_a_dataset_that_does_not_exist(bigquery_settings: Settings) -> None:
    client = bigquery_client(bigquery_settings)
    assert partitioning.pending_rebuilds(client, bigquery_settings.bigquery_project, bigquery_settings.bigquery_dataset) == []


REBUILD_STEPS = ("creating", "copying into", "dropping the old", "re-creating", "copying back", "dropping fred")


def test_a_rebuild_failing_after_each_step_finishes_when_run_again(loaded, monkeypatch) -> None:
    """A failure after each step in turn: each run resumes from what the last one left,
    the pending rebuild is listed meanwhile, and the rows survive every state."""
    settings, client, before = loaded
    change = lambda op: op.change_partitioning("fred_indicators", YEARLY, max_partitions_per_job=14)  # noqa: E731
    original = partitioning._Repartition._after_step
    for step in REBUILD_STEPS:

        def failing(self, done: str, step: str = step) -> None:
            original(self, done)
            if done.startswith(step):
                raise RuntimeError(f"injected after {done}")

        monkeypatch.setattr(partitioning._Repartition, "_after_step", failing)
        with pytest.raises(RuntimeError, match=f"injected after {step}") as failure:
            run_ops(settings, change)
        assert any("Run the migration again" in note for note in failure.value.__notes__)
        pending = partitioning.pending_rebuilds(client, settings.bigquery_project, settings.bigquery_dataset)
        if step == "dropping fred":
            assert pending == []
        else:
            [rebuild] = pending
            assert rebuild.table == "fred_indicators"
            assert rebuild.table_exists == (step not in ("dropping the old",))
            assert "Run `bqrepo migrate` again" in rebuild.describe()
    monkeypatch.setattr(partitioning._Repartition, "_after_step", original)
    run_ops(settings, change)
    assert staging_tables(client, settings) == []
    assert client.get_table(table_ref(settings, "fred_indicators")).time_partitioning.type_ == "YEAR"
    assert data_summary(client, settings) == before


def test_info_shows_a_stopped_rebuild_and_migrate_finishes_it_with_a_caution(tmp_path, loaded, monkeypatch) -> None:
    """Through the CLI: the revision's other operation is applied, alembic_version is
    unchanged and `bqrepo info` names the pending rebuild; `bqrepo migrate` finishes it
    and prints the streaming caution."""
    from typer.testing import CliRunner

    from bqrepo.cli.app import app

    settings, client, before = loaded

    def change(metadata: sa.MetaData) -> None:
        metadata.tables["events"].info["bigquery_labels"] = {"team": "data"}  # an operation before the rebuild

    config = scenario_config(tmp_path, settings, changed_metadata(change, fred_indicators={"bigquery_time_partitioning": YEARLY}))
    autogenerate(config)
    monkeypatch.setattr(migrate, "migrations_dir", lambda: Path(config.get_main_option("script_location")))
    env = {"BQREPO_URL": settings.url or "", "BIGQUERY_EMULATOR_HOST": settings.emulator_host or "", "BQREPO_DUCKDB_PATH": ""}
    original = partitioning._Repartition._after_step

    def failing(self, done: str) -> None:
        original(self, done)
        if done.startswith("dropping the old"):
            raise RuntimeError("injected")

    monkeypatch.setattr(partitioning._Repartition, "_after_step", failing)
    failed = CliRunner().invoke(app, ["migrate"], env=env)
    assert failed.exit_code != 0
    info = subprocess.run(
        [sys.executable, "-m", "bqrepo.cli", "info"], capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert info.returncode == 0, info.stderr
    assert "0001" in info.stdout
    assert "pending rebuild of 'fred_indicators'" in " ".join(info.stdout.split())
    assert client.get_table(table_ref(settings, "events")).labels == {"team": "data"}
    assert migrate.current_revision(settings) == "0001"

    monkeypatch.setattr(partitioning._Repartition, "_after_step", original)
    done = CliRunner().invoke(app, ["migrate"], env=env)
    assert done.exit_code == 0, done.output
    output = " ".join(done.output.split())
    assert "caution:" in output and "'fred_indicators' was re-created" in output and "lost" in output
    assert migrate.current_revision(settings) == "0002"
    assert staging_tables(client, settings) == []
    assert data_summary(client, settings) == before
