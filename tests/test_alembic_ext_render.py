"""Rendering of the extension's operations into migration files, their
reverses, and the offline DDL they compile to. No database needed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
import sqlalchemy_bigquery
from alembic import util as alembic_util
from alembic.autogenerate import render
from alembic.autogenerate.api import AutogenContext
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops
from google.cloud.bigquery import PartitionRange, RangePartitioning, TimePartitioning
from mako.template import Template

from bqrepo import schema
from bqrepo.alembic_ext import (
    BigQueryImpl,
    ChangePartitioningOp,
    SetClusteringOp,
    SetTableOptionsOp,
)
from bqrepo.table_options import SchemaError


def autogen_context() -> AutogenContext:
    context = MigrationContext.configure(
        dialect_name="bigquery",
        opts={"sqlalchemy_module_prefix": "sa.", "alembic_module_prefix": "op.", "user_module_prefix": None},
    )
    return AutogenContext(context)


def rendered(op: ops.MigrateOperation) -> tuple[str, set[str]]:
    context = autogen_context()
    text = render.render_op_text(context, op)
    return text, set(context.imports)


def test_set_clustering_renders_and_reverses() -> None:
    op = SetClusteringOp("events", ["severity"], existing=["event_type", "source_name"])
    assert rendered(op) == (
        "op.set_clustering('events', ['severity'], existing=['event_type', 'source_name'])",
        set(),
    )
    assert rendered(op.reverse())[0] == (
        "op.set_clustering('events', ['event_type', 'source_name'], existing=['severity'])"
    )


def test_set_table_options_renders_and_reverses() -> None:
    op = SetTableOptionsOp(
        "world_bank",
        {"labels": {"team": "data"}, "partition_expiration_days": 30, "description": ""},
        existing={"labels": {}, "partition_expiration_days": None, "description": "old"},
    )
    assert rendered(op) == (
        "op.set_table_options('world_bank', labels={'team': 'data'}, "
        "partition_expiration_days=30.0, description=None, existing={'labels': {}, "
        "'partition_expiration_days': None, 'description': 'old'})",
        set(),
    )
    back = op.reverse()
    assert back.options == {"labels": {}, "partition_expiration_days": None, "description": "old"}


def test_change_partitioning_renders_with_its_import() -> None:
    op = ChangePartitioningOp(
        "fred_indicators",
        TimePartitioning(field="date", type_="YEAR", expiration_ms=86_400_000),
        existing=TimePartitioning(field="date", type_="MONTH"),
    )
    assert rendered(op) == (
        "op.change_partitioning('fred_indicators', TimePartitioning(field='date', type_='YEAR', "
        "expiration_ms=86400000), existing=TimePartitioning(field='date', type_='MONTH'))",
        {"from google.cloud.bigquery import TimePartitioning"},
    )
    assert rendered(op.reverse())[0].startswith(
        "op.change_partitioning('fred_indicators', TimePartitioning(field='date', type_='MONTH'), "
    )


def test_change_partitioning_carries_the_wanted_partition_filter() -> None:
    """The value the rebuilt table gets is in the op, so a re-run cannot lose it;
    the reverse keeps the table's (its set_table_options is reversed first)."""
    op = ChangePartitioningOp(
        "events",
        TimePartitioning(field="created_at", type_="DAY"),
        existing=TimePartitioning(field="mentioned_at", type_="DAY"),
        require_partition_filter=True,
    )
    assert rendered(op)[0] == (
        "op.change_partitioning('events', TimePartitioning(field='created_at', type_='DAY'), "
        "existing=TimePartitioning(field='mentioned_at', type_='DAY'), "
        "require_partition_filter=True)"
    )
    assert op.reverse().require_partition_filter is None
    with pytest.raises(SchemaError, match="table 'events': require_partition_filter needs a partitioned"):
        ChangePartitioningOp("events", None, require_partition_filter=True)


@pytest.mark.parametrize(
    "op",
    [
        SetClusteringOp("events", ["severity"]),
        SetTableOptionsOp("events", {"require_partition_filter": False}),
        ChangePartitioningOp("events", TimePartitioning(field="mentioned_at", type_="HOUR")),
    ],
)
def test_an_operation_without_existing_cannot_be_reversed(op) -> None:
    with pytest.raises(ValueError, match="cannot be reversed"):
        op.reverse()


def test_struct_columns_render_with_their_import() -> None:
    """Alembic renders sqlalchemy_bigquery types by module path with no import;
    the BigQuery impl renders them importably."""
    context = autogen_context()
    assert isinstance(context.migration_context.impl, BigQueryImpl)
    struct = sqlalchemy_bigquery.STRUCT(code=sa.String, rank=sqlalchemy_bigquery.STRUCT(n=sa.Integer))
    text = render._repr_type(struct, context)
    assert text == (
        "sqlalchemy_bigquery.STRUCT(('code', sa.String()), "
        "('rank', sqlalchemy_bigquery.STRUCT(('n', sa.Integer()))))"
    )
    assert "import sqlalchemy_bigquery" in context.imports
    namespace = {"sa": sa, "sqlalchemy_bigquery": sqlalchemy_bigquery}
    rebuilt = eval(text, namespace)  # noqa: S307  the rendered text must be valid Python
    assert rebuilt.get_col_spec() == struct.get_col_spec()


def offline(*calls, metadata: sa.MetaData | None = None) -> str:
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="bigquery",
        opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True, "target_metadata": metadata},
    )
    context.dialect.project_id, context.dialect.dataset_id = "my-project", "analytics"
    operations = Operations(context)
    for call in calls:
        call(operations)
    return buffer.getvalue()


def with_op_proxy(function: Any) -> Any:
    """Run a revision's ``upgrade``/``downgrade`` (which use ``alembic.op``) on ``operations``."""

    def call(operations: Operations) -> None:
        with Operations.context(operations.migration_context):
            function()

    return call


SCRIPT_TEMPLATE = Path(__file__).resolve().parents[1] / "migrations" / "script.py.mako"


def revision_source(upgrade_ops: ops.UpgradeOps) -> str:
    """The revision file ``alembic revision --autogenerate`` writes for ``upgrade_ops``."""
    script = ops.MigrationScript("0002", upgrade_ops, upgrade_ops.reverse())
    template_args: dict[str, Any] = {}
    render._render_python_into_templatevars(autogen_context(), script, template_args)
    return Template(filename=str(SCRIPT_TEMPLATE)).render_unicode(
        up_revision="0002",
        down_revision="0001",
        branch_labels=None,
        depends_on=None,
        create_date="2026-01-01",
        message="partitioned tables",
        comma=alembic_util.format_as_comma,
        **template_args,
    )


def test_the_script_template_imports_the_partitioning_it_renders() -> None:
    """Autogenerate renders ``bigquery_range_partitioning`` and
    ``bigquery_time_partitioning`` as constructor calls without imports; the
    template adds them, and the revision runs."""
    metadata = sa.MetaData()
    by_year = sa.Table(
        "by_year",
        metadata,
        # The dialect range-partitions INTEGER columns only, not sa.Integer.
        sa.Column("year", sa.INTEGER, nullable=False),
        bigquery_range_partitioning=RangePartitioning(
            field="year", range_=PartitionRange(start=1900, end=2200, interval=1)
        ),
    )
    by_day = sa.Table(
        "by_day",
        metadata,
        sa.Column("ts", sa.TIMESTAMP(timezone=True), nullable=False),
        bigquery_time_partitioning=TimePartitioning(field="ts", type_="DAY"),
    )
    source = revision_source(
        ops.UpgradeOps([ops.CreateTableOp.from_table(by_year), ops.CreateTableOp.from_table(by_day)])
    )
    assert "RangePartitioning(field='year', range_=PartitionRange(" in source
    assert "from google.cloud.bigquery import PartitionRange, RangePartitioning, TimePartitioning\n" in source
    assert source.count("import PartitionRange") == 1

    revision: dict[str, Any] = {}
    exec(compile(source, "0002_partitioned_tables.py", "exec"), revision)  # noqa: S102
    sql = offline(with_op_proxy(revision["upgrade"]), with_op_proxy(revision["downgrade"]))
    assert "PARTITION BY RANGE_BUCKET(year, GENERATE_ARRAY(1900, 2200, 1))" in sql
    assert "PARTITION BY TIMESTAMP_TRUNC(ts, DAY)" in sql
    assert "DROP TABLE `by_year`" in sql


def test_the_script_template_imports_each_class_once() -> None:
    """change_partitioning's renderer imports TimePartitioning itself."""
    op = ChangePartitioningOp(
        "fred_indicators",
        TimePartitioning(field="date", type_="YEAR"),
        existing=TimePartitioning(field="date", type_="MONTH"),
    )
    source = revision_source(ops.UpgradeOps([ops.ModifyTableOps("fred_indicators", [op])]))
    assert source.count("import TimePartitioning") == 1
    exec(compile(source, "0002_partitioned_tables.py", "exec"), {})  # noqa: S102


def test_offline_create_table_sets_its_labels() -> None:
    """sqlalchemy-bigquery drops labels from CREATE TABLE; the impl sets them after it."""
    sql = offline(
        lambda op: op.create_table(
            "labelled",
            sa.Column("id", sa.String),
            info={"bigquery_labels": {"team": "data", "env": "prod"}},
            if_not_exists=True,
        ),
        lambda op: op.create_table("plain", sa.Column("id", sa.String)),
    )
    assert sql == (
        "CREATE TABLE IF NOT EXISTS `labelled` (\n    `id` STRING\n);\n\n"
        "ALTER TABLE `labelled` SET OPTIONS(labels=[('env', 'prod'), ('team', 'data')]);\n\n"
        "CREATE TABLE `plain` (\n    `id` STRING\n);\n\n"
    )
    with pytest.raises(SchemaError, match="table 'bad': label key 'Team'"):
        offline(lambda op: op.create_table("bad", sa.Column("id", sa.String), info={"bigquery_labels": {"Team": "x"}}))


def test_offline_set_table_options_is_ddl() -> None:
    sql = offline(
        lambda op: op.set_table_options(
            "events",
            require_partition_filter=True,
            partition_expiration_days=90,
            description="it's news",
            labels={"team": "data", "env": "prod"},
        ),
        lambda op: op.set_table_options("events", description=None, labels={}),
    )
    assert sql.splitlines()[0] == (
        "ALTER TABLE `events` SET OPTIONS(require_partition_filter=true, "
        "partition_expiration_days=90.0, description=\"it's news\", "
        "labels=[('env', 'prod'), ('team', 'data')]);"
    )
    assert "ALTER TABLE `events` SET OPTIONS(description=NULL, labels=NULL);" in sql
    for statement in filter(str.strip, sql.split(";")):
        sqlglot.parse_one(statement, read="bigquery")


def test_offline_api_only_operations_say_so() -> None:
    sql = offline(lambda op: op.set_clustering("events", ["severity", "event_type"]))
    assert sql == (
        "-- bqrepo: set_clustering('events', ['severity', 'event_type']) needs the BigQuery API: "
        "no DDL statement changes clustering.\n"
        "-- Run this revision online (alembic upgrade without --sql), or run:\n"
        "--   bq update --clustering_fields=severity,event_type my-project:analytics.events\n\n"
    )


def test_offline_change_partitioning_is_ddl_or_refused() -> None:
    """Issue 9 part 6: never a comment followed by ``UPDATE alembic_version`` alone."""
    yearly = TimePartitioning(field="date", type_="YEAR")
    with pytest.raises(SchemaError, match=r"offline \(--sql\): change_partitioning\('fred_indicators'.*target metadata"):
        offline(lambda op: op.change_partitioning("fred_indicators", yearly))
    with pytest.raises(SchemaError, match="cannot drop partitioning"):
        offline(lambda op: op.change_partitioning("fred_indicators", None), metadata=schema.metadata)
    hourly = TimePartitioning(field="mentioned_at", type_="HOUR")
    sql = offline(
        lambda op: op.change_partitioning("fred_indicators", yearly, existing=TimePartitioning(field="date", type_="MONTH")),
        lambda op: op.change_partitioning("events", hourly, require_partition_filter=True),
        metadata=schema.metadata,
    )
    statements = [
        "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
        for statement in sql.split(";")
    ]
    statements = [statement for statement in statements if statement]
    assert statements == [
        "ALTER TABLE `fred_indicators` SET OPTIONS(require_partition_filter=false)",
        "CREATE TABLE `fred_indicators__bqrepo_repartition` LIKE `fred_indicators` PARTITION BY DATE_TRUNC(`date`, YEAR) "
        "CLUSTER BY `series_id` OPTIONS(require_partition_filter=false, partition_expiration_days=NULL)",
        "INSERT INTO `fred_indicators__bqrepo_repartition` SELECT * FROM `fred_indicators`",
        "DROP TABLE `fred_indicators`",
        "CREATE TABLE `fred_indicators` LIKE `fred_indicators__bqrepo_repartition` PARTITION BY DATE_TRUNC(`date`, YEAR) "
        "CLUSTER BY `series_id` OPTIONS(require_partition_filter=false, partition_expiration_days=NULL)",
        "INSERT INTO `fred_indicators` SELECT * FROM `fred_indicators__bqrepo_repartition`",
        "DROP TABLE `fred_indicators__bqrepo_repartition`",
        "ALTER TABLE `events` SET OPTIONS(require_partition_filter=false)",
        "CREATE TABLE `events__bqrepo_repartition` LIKE `events` PARTITION BY TIMESTAMP_TRUNC(`mentioned_at`, HOUR) "
        "CLUSTER BY `event_type`, `source_name` OPTIONS(require_partition_filter=false, partition_expiration_days=NULL)",
        "INSERT INTO `events__bqrepo_repartition` SELECT * FROM `events`",
        "DROP TABLE `events`",
        "CREATE TABLE `events` LIKE `events__bqrepo_repartition` PARTITION BY TIMESTAMP_TRUNC(`mentioned_at`, HOUR) "
        "CLUSTER BY `event_type`, `source_name` OPTIONS(require_partition_filter=true, partition_expiration_days=NULL)",
        "INSERT INTO `events` SELECT * FROM `events__bqrepo_repartition`",
        "DROP TABLE `events__bqrepo_repartition`",
    ]
    for statement in statements:
        sqlglot.parse_one(statement, read="bigquery")
    assert "neither chunked nor verified" in sql and "more than 4,000 partitions by HOUR" in sql


def test_offline_columns_are_rerunnable_and_never_required() -> None:
    sql = offline(
        lambda op: op.add_column("events", sa.Column("language", sa.String, comment="ISO code")),
        lambda op: op.drop_column("events", "language"),
    )
    assert "ALTER TABLE `events` ADD COLUMN IF NOT EXISTS `language` STRING OPTIONS(description='ISO code');" in sql
    assert "ALTER TABLE `events` DROP COLUMN IF EXISTS `language`;" in sql
    with pytest.raises(SchemaError, match="cannot add column 'n' as NOT NULL"):
        offline(lambda op: op.add_column("events", sa.Column("n", sa.Integer, nullable=False)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SetClusteringOp("t", ["a", "b", "c", "d", "e"]), None),
        (lambda: SetTableOptionsOp("t", {"partition_expiration_days": 0}), "partition expiration must be positive"),
        (lambda: SetTableOptionsOp("t", {"labels": {"k": "UPPER"}}), "label 'k' value 'UPPER'"),
        (lambda: SetTableOptionsOp("t", {"colour": "red"}), "unknown options ['colour']"),
        (lambda: ChangePartitioningOp("t", TimePartitioning(field="d", type_="WEEK")), "unknown granularity 'WEEK'"),
        (lambda: ChangePartitioningOp("t", None, max_partitions_per_job=5000), "max_partitions_per_job must be 1..4000"),
    ],
)
def test_operation_arguments_are_checked(make, message) -> None:
    if message is None:
        # too many clustering columns is caught when the op runs, offline too
        with pytest.raises(SchemaError, match="5 clustering columns"):
            offline(lambda op: op.invoke(make()))
        return
    with pytest.raises((SchemaError, TypeError, ValueError), match=message.replace("[", r"\[").replace("]", r"\]")):
        make()
