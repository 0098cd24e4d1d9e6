"""A user's own tables in a user's own project: ``bqrepo init``, autogenerate, upgrade.

Everything runs the way a user runs it: ``bqrepo`` and ``python -m alembic``
as subprocesses in a project directory outside the repository, with the
backend given as environment variables. The project declares one table,
``forecasts``, partitioned by month and clustered; bqrepo's own five tables
(``bqrepo migrate``) live in the same DuckDB file or BigQuery dataset, each
history with its own version table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from bqrepo import schema
from bqrepo.engine import bigquery_client, create_engine
from bqrepo.errors import ConfigurationError
from bqrepo.metadata_loader import configured_location, load_metadata, load_time_series, parse_location
from bqrepo.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARS = (
    "BQREPO_URL",
    "BQREPO_DUCKDB_PATH",
    "BIGQUERY_EMULATOR_HOST",
    "GCP_PROJECT_ID",
    "BIGQUERY_DATASET",
    "BQREPO_METADATA",
    "DJANGO_SETTINGS_MODULE",
)
BQREPO_TABLES = sorted(schema.metadata.tables)

FORECASTS = '''
import sqlalchemy as sa
from google.cloud.bigquery import TimePartitioning

from bqrepo.timeseries import time_series

metadata = sa.MetaData()

forecasts = time_series(
    sa.Table(
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
        sa.Column("generated_at", sa.TIMESTAMP(timezone=True)),{extra}
        bigquery_time_partitioning=TimePartitioning(field="forecast_date", type_="MONTH"),
        bigquery_clustering_fields=["series_id"],
    ),
    time="forecast_date",
    key=("series_id", "forecast_date", "horizon", "model_name"),
    version="generated_at",
    series=("series_id",),
)
'''
NOTE_COLUMN = '\n        sa.Column("note", sa.String),'


def write_package(project: Path, *, with_note: bool = False) -> None:
    """The user's package ``forecasting`` with ``forecasting.schema:metadata``."""
    package = project / "forecasting"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "schema.py").write_text(FORECASTS.format(extra=NOTE_COLUMN if with_note else ""))


def backend_env(settings: Settings) -> dict[str, str]:
    """The environment a user would export for ``settings``."""
    if settings.backend == "duckdb":
        return {"BQREPO_DUCKDB_PATH": settings.duckdb_path}
    return {
        "BQREPO_URL": settings.url or "",
        "BIGQUERY_EMULATOR_HOST": settings.emulator_host or "",
        "GCP_PROJECT_ID": settings.project_id or "",
    }


def run(project: Path, *args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` in ``project``, importing the project's package and this checkout's bqrepo."""
    base = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
    base["PYTHONPATH"] = os.pathsep.join([str(project), str(ROOT)])
    base["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=project, env=base | env, capture_output=True, text=True, timeout=180
    )
    if check:
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def code_of(source: str, function: str) -> list[str]:
    """The statements of ``function`` in a revision file, without comments and docstring."""
    body = source.split(f"def {function}() -> None:\n", 1)[1].split("\ndef ", 1)[0]
    lines = [line.strip() for line in body.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", '"""'))]


def autogenerate(project: Path, message: str, env: dict[str, str]) -> str:
    """``alembic revision --autogenerate -m message``; the new revision's source."""
    before = set((project / "migrations" / "versions").glob("*.py"))
    run(project, "alembic", "revision", "--autogenerate", "-m", message, env=env)
    (created,) = set((project / "migrations" / "versions").glob("*.py")) - before
    return created.read_text()


def table_names(settings: Settings) -> set[str]:
    if settings.backend == "duckdb":
        engine = create_engine(settings)
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    client = bigquery_client(settings)
    return {t.table_id for t in client.list_tables(f"{settings.bigquery_project}.{settings.bigquery_dataset}")}


def versions(settings: Settings, table: str) -> list[str]:
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            version_table = sa.table(table, sa.column("version_num"))
            return list(connection.execute(sa.select(version_table.c.version_num)).scalars())
    finally:
        engine.dispose()


def column_names(settings: Settings, table: str) -> list[str]:
    if settings.backend == "duckdb":
        engine = create_engine(settings)
        try:
            return [c["name"] for c in sa.inspect(engine).get_columns(table)]
        finally:
            engine.dispose()
    live = bigquery_client(settings).get_table(f"{settings.bigquery_project}.{settings.bigquery_dataset}.{table}")
    return [field.name for field in live.schema]


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Each test runs on a fresh DuckDB file and on a fresh dataset of the stand-in."""
    if request.param == "duckdb":
        return Settings(duckdb_path=str(tmp_path / "shared.duckdb"))
    settings: Settings = request.getfixturevalue("bigquery_settings")
    return settings


def test_init_autogenerate_upgrade_next_to_bqrepos_own_tables(tmp_path: Path, backend: Settings) -> None:
    """The whole path: init, first revision, upgrade, a new column, second revision, upgrade.

    ``bqrepo migrate`` runs into the same database first: the user's
    autogenerate must see neither bqrepo's five tables nor its version table.
    """
    project = tmp_path / "project"
    write_package(project)
    env = backend_env(backend)
    run(project, "bqrepo.cli", "migrate", env=env)

    out = run(project, "bqrepo.cli", "init", "--metadata", "forecasting.schema:metadata", env=env).stdout
    assert "tables of forecasting.schema:metadata: forecasts" in out
    assert "version table: alembic_version_app" in out
    assert (project / "migrations" / "env.py").is_file() and (project / "migrations" / "versions").is_dir()
    assert "bqrepo_metadata = forecasting.schema:metadata" in (project / "alembic.ini").read_text()

    first = autogenerate(project, "create forecasts", env)
    upgrade = code_of(first, "upgrade")
    assert upgrade[0] == "op.create_dataset()"
    assert upgrade[1] == "op.create_table('forecasts',"
    assert "bigquery_time_partitioning=TimePartitioning(field='forecast_date',type_='MONTH')," in upgrade
    assert "bigquery_clustering_fields=['series_id']," in upgrade
    assert "if_not_exists=True" in upgrade
    assert "sa.Column('horizon', sa.Integer(), nullable=False)," in upgrade
    assert "from google.cloud.bigquery import TimePartitioning" in first
    # The declaration (table.info) describes how to serve the table, not its DDL.
    assert "info=" not in first
    assert not [line for line in upgrade if "drop_table" in line or "remove" in line]
    assert code_of(first, "downgrade") == ["op.drop_table('forecasts', if_exists=True)"]

    run(project, "alembic", "upgrade", "head", env=env)
    assert table_names(backend) >= {*BQREPO_TABLES, "forecasts", "alembic_version", "alembic_version_app"}
    if backend.backend == "bigquery":
        live = bigquery_client(backend).get_table(
            f"{backend.bigquery_project}.{backend.bigquery_dataset}.forecasts"
        )
        assert (live.time_partitioning.field, live.time_partitioning.type_) == ("forecast_date", "MONTH")
        assert live.clustering_fields == ["series_id"]
    # Nothing left to do: `alembic check` fails when autogenerate would emit anything.
    run(project, "alembic", "check", env=env)

    write_package(project, with_note=True)
    second = autogenerate(project, "add note", env)
    assert code_of(second, "upgrade") == ["op.add_column('forecasts', sa.Column('note', sa.String(), nullable=True))"]
    assert code_of(second, "downgrade") == ["op.drop_column('forecasts', 'note')"]
    run(project, "alembic", "upgrade", "head", env=env)
    assert column_names(backend, "forecasts")[-1] == "note"
    run(project, "alembic", "check", env=env)
    # bqrepo's own history is untouched, and its autogenerate ignores the user's table.
    assert versions(backend, "alembic_version") == ["0001"]
    assert set(table_names(backend)) >= set(BQREPO_TABLES)


def test_the_two_version_tables_coexist(tmp_path: Path, backend: Settings) -> None:
    """Each history moves on its own: the user's downgrade leaves bqrepo's tables and
    revision alone, and ``bqrepo migrate`` after the user's upgrade changes nothing of theirs."""
    project = tmp_path / "project"
    write_package(project)
    env = backend_env(backend)
    run(project, "bqrepo.cli", "init", "--metadata", "forecasting.schema:metadata", env=env)
    autogenerate(project, "create forecasts", env)
    run(project, "alembic", "upgrade", "head", env=env)
    (head,) = versions(backend, "alembic_version_app")
    assert "alembic_version" not in table_names(backend)

    run(project, "bqrepo.cli", "migrate", env=env)
    assert versions(backend, "alembic_version") == ["0001"]
    assert versions(backend, "alembic_version_app") == [head]

    run(project, "alembic", "downgrade", "base", env=env)
    assert versions(backend, "alembic_version_app") == []
    assert versions(backend, "alembic_version") == ["0001"]
    names = table_names(backend)
    assert "forecasts" not in names and names >= set(BQREPO_TABLES)

    run(project, "alembic", "upgrade", "head", env=env)
    assert versions(backend, "alembic_version_app") == [head]
    assert "forecasts" in table_names(backend)


def test_offline_sql_of_a_user_project(tmp_path: Path) -> None:
    """``alembic upgrade head --sql`` prints the dataset, the project's version table and
    the partitioned, clustered table without any credential."""
    project = tmp_path / "project"
    write_package(project)
    duckdb = {"BQREPO_DUCKDB_PATH": str(tmp_path / "autogen.duckdb")}
    run(project, "bqrepo.cli", "init", "--metadata", "forecasting.schema:metadata", env=duckdb)
    autogenerate(project, "create forecasts", duckdb)
    offline = {
        "BQREPO_URL": "bigquery://my-project/analytics",
        "HOME": "/nonexistent",
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/credentials.json",
        "NO_GCE_CHECK": "True",
    }
    sql = run(project, "alembic", "upgrade", "head", "--sql", env=offline).stdout
    assert sql.count("CREATE SCHEMA IF NOT EXISTS `my-project`.`analytics` OPTIONS(location='US');") == 1
    assert sql.index("CREATE SCHEMA") < sql.index("CREATE TABLE `alembic_version_app`")
    assert "CREATE TABLE IF NOT EXISTS `forecasts`" in sql
    assert "PARTITION BY DATE_TRUNC(forecast_date, MONTH)\nCLUSTER BY series_id;" in sql
    assert "INSERT INTO `alembic_version_app`" in sql
    assert "`alembic_version`" not in sql


def test_init_never_overwrites_and_writes_nothing_on_a_bad_location(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_package(project)
    env = {"BQREPO_DUCKDB_PATH": str(tmp_path / "db.duckdb")}
    cases = {
        "forecasting.schema:nope": "module 'forecasting.schema' has no attribute 'nope'",
        "forecasting.missing:metadata": "module 'forecasting.missing' cannot be imported",
        "forecasting.schema:forecasts": "is a sqlalchemy.sql.schema.Table, not a sqlalchemy MetaData",
        "forecasting.schema": "is not a metadata location: use package.module:attribute",
        "bqrepo.schema:metadata": "bqrepo's own tables are migrated by `bqrepo migrate`",
    }
    for location, message in cases.items():
        result = run(project, "bqrepo.cli", "init", "--metadata", location, env=env, check=False)
        assert result.returncode == 1, result.stdout
        assert message in " ".join(result.stderr.split()), result.stderr
        assert sorted(p.name for p in project.iterdir()) == ["forecasting"]
    # Without --metadata nor BQREPO_METADATA there is nothing to migrate.
    result = run(project, "bqrepo.cli", "init", env=env, check=False)
    assert result.returncode == 1 and "pass --metadata" in result.stderr

    # The global option and the setting work too; a second init refuses, changing nothing.
    run(project, "bqrepo.cli", "--metadata", "forecasting.schema:metadata", "init", env=env)
    ini = (project / "alembic.ini").read_text()
    again = run(project, "bqrepo.cli", "init", env=env | {"BQREPO_METADATA": "forecasting.schema:metadata"}, check=False)
    assert again.returncode == 1
    assert "alembic.ini, migrations already exist; bqrepo init never overwrites" in " ".join(again.stderr.split())
    assert (project / "alembic.ini").read_text() == ini

    # Another directory, named by the setting.
    elsewhere = tmp_path / "elsewhere"
    write_package(elsewhere)
    run(project, "bqrepo.cli", "init", str(elsewhere), env=env | {"BQREPO_METADATA": "forecasting.schema:metadata"})
    assert (elsewhere / "alembic.ini").is_file()


def test_env_refuses_bqrepos_own_version_table_and_tables(tmp_path: Path) -> None:
    """A project's history must not share ``alembic_version`` nor migrate bqrepo's tables."""
    project = tmp_path / "project"
    write_package(project)
    env = {"BQREPO_DUCKDB_PATH": str(tmp_path / "db.duckdb")}
    run(project, "bqrepo.cli", "init", "--metadata", "forecasting.schema:metadata", env=env)
    ini = project / "alembic.ini"
    original = ini.read_text()

    ini.write_text(original.replace("bqrepo_version_table = alembic_version_app", "bqrepo_version_table = alembic_version"))
    result = run(project, "alembic", "upgrade", "head", env=env, check=False)
    assert result.returncode != 0
    assert "bqrepo_version_table='alembic_version': name a table" in result.stderr

    # Empty option: BQREPO_METADATA decides; unset, that is bqrepo's own tables, refused.
    ini.write_text(original.replace("bqrepo_metadata = forecasting.schema:metadata", "bqrepo_metadata ="))
    result = run(project, "alembic", "upgrade", "head", env=env, check=False)
    assert result.returncode != 0
    assert "BQREPO_METADATA=bqrepo.schema:metadata names bqrepo's own tables" in result.stderr
    run(project, "alembic", "upgrade", "head", env=env | {"BQREPO_METADATA": "forecasting.schema:metadata"})
    assert versions(Settings(duckdb_path=env["BQREPO_DUCKDB_PATH"]), "alembic_version_app") == []


# ---------------------------------------------------------------- the loader


def test_metadata_location_parsing_and_precedence() -> None:
    assert parse_location("myapp.models:Base.metadata") == ("myapp.models", "Base.metadata")
    for bad in ("myapp", "myapp:", ":metadata", "my app:metadata", "myapp.:x", "a:b:c"):
        with pytest.raises(ConfigurationError, match=r"--metadata=.* is not a metadata location"):
            parse_location(bad, source="--metadata")
    assert configured_location(None, {}) == "bqrepo.schema:metadata"
    assert configured_location(None, {"BQREPO_METADATA": "a.b:m"}) == "a.b:m"
    assert configured_location("c:m", {"BQREPO_METADATA": "a.b:m"}) == "c:m"
    assert load_settings({"BQREPO_METADATA": "a.b:m"}).metadata == "a.b:m"
    assert load_settings({}).metadata == "bqrepo.schema:metadata"


def test_load_metadata_finds_dotted_attributes_and_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "declarative_models.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from sqlalchemy.orm import DeclarativeBase

            class Base(DeclarativeBase):
                pass

            plain = sa.Table("plain", Base.metadata, sa.Column("id", sa.String, nullable=False))
            """
        )
    )
    (tmp_path / "broken_models.py").write_text("import sqlalchemy as sa\nmetadata = sa.MetaData()\n1 / 0\n")
    metadata = load_metadata("declarative_models:Base.metadata", search_path=tmp_path)
    assert sorted(metadata.tables) == ["plain"]
    with pytest.raises(ConfigurationError, match=r"declares no time series \(plain\)"):
        load_time_series("declarative_models:Base.metadata", search_path=tmp_path)
    with pytest.raises(ConfigurationError, match="importing 'broken_models' failed: ZeroDivisionError") as caught:
        load_metadata("broken_models:metadata", source="--metadata", search_path=tmp_path)
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert [t.name for t in load_time_series("bqrepo.schema:metadata")] == [
        t.name for t in schema.metadata.tables.values()
    ]


def test_a_dependency_missing_inside_the_users_module_is_named(tmp_path: Path) -> None:
    (tmp_path / "needs_more.py").write_text("import not_installed_anywhere\n")
    with pytest.raises(ConfigurationError, match="importing 'needs_more' failed: ModuleNotFoundError: No module named 'not_installed_anywhere'"):
        load_metadata("needs_more:metadata", search_path=tmp_path)
