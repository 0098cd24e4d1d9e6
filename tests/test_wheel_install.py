"""bqrepo installed from its wheel, used from a project of the user's, outside this checkout.

The issue's "done when": build the wheel, install it into a fresh virtual
environment, and in a temporary project declare a table, ``bqrepo init``,
``alembic revision --autogenerate``, ``alembic upgrade head``; ``bqrepo
migrate`` runs from the wheel's own scripts (``bqrepo/_migrations``) into
the same database.

How the environment is made, and why. bqrepo itself must come from the
wheel, never from the checkout: the test asserts ``bqrepo.__file__`` is in
the new environment and the checkout is not on ``sys.path``. Its
dependencies (SQLAlchemy, DuckDB, google-cloud-bigquery, ...) are the ones
already installed for the tests, so the test needs no network and stays
fast: the new environment gets a ``.pth`` file naming the running
interpreter's site-packages, and the wheel is installed with ``--no-deps``.
Not ``venv --system-site-packages``: that would make the base interpreter's
site-packages a site directory, whose ``.pth`` files run, and when the tests
run from a system-wide editable install one of them puts the checkout on
``sys.path``. A path named in a ``.pth`` file is added as it is, without
running the ``.pth`` files inside it, so the editable install of the test
environment stays inert. The wheel is built with ``pip wheel
--no-build-isolation`` on hatchling from the ``test`` extra (offline too).
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bqrepo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARS = (
    "BQREPO_URL",
    "BQREPO_DUCKDB_PATH",
    "BIGQUERY_EMULATOR_HOST",
    "GCP_PROJECT_ID",
    "BIGQUERY_DATASET",
    "BQREPO_METADATA",
    "DJANGO_SETTINGS_MODULE",
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
)

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
        sa.Column("generated_at", sa.TIMESTAMP(timezone=True)),
        bigquery_time_partitioning=TimePartitioning(field="forecast_date", type_="MONTH"),
        bigquery_clustering_fields=["series_id"],
    ),
    time="forecast_date",
    key=("series_id", "forecast_date", "horizon", "model_name"),
    version="generated_at",
    series=("series_id",),
)
'''

# Run by the new environment's interpreter, in the project: where everything came from.
PROBE = """
import json, sys
import bqrepo, forecasting.schema
from bqrepo.migrate import migrations_dir
from bqrepo.engine import create_engine
from bqrepo.settings import load_settings
import sqlalchemy as sa

engine = create_engine(load_settings())
try:
    with engine.connect() as connection:
        def versions(name):
            table = sa.table(name, sa.column("version_num"))
            return list(connection.execute(sa.select(table.c.version_num)).scalars())
        tables = sorted(sa.inspect(connection).get_table_names())
        found = {"app": versions("alembic_version_app"), "bqrepo": versions("alembic_version")}
finally:
    engine.dispose()
print(json.dumps({
    "bqrepo": bqrepo.__file__,
    "user_package": forecasting.schema.__file__,
    "migrations": str(migrations_dir()),
    "sys_path": sys.path,
    "tables": tables,
    "versions": found,
}))
"""


@dataclass(frozen=True)
class Installed:
    """A fresh virtual environment holding bqrepo from the wheel."""

    venv: Path
    python: Path
    bqrepo: Path
    site_packages: Path

    def run(self, project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """A command of the new environment in ``project``, with no trace of this checkout in its environment."""
        base = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
        result = subprocess.run(
            list(args), cwd=project, env=base | env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel from this checkout and install it, alone, into a new environment."""
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-q", "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    (wheel,) = dist.glob("bqrepo-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    # The dependencies: the test interpreter's site-packages, after the venv's own.
    Path(purelib, "test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", str(wheel)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    yield Installed(venv=venv, python=python, bqrepo=venv / "bin" / "bqrepo", site_packages=Path(purelib))


def user_project(tmp_path: Path) -> Path:
    project = tmp_path / "forecast-service"
    (project / "forecasting").mkdir(parents=True)
    (project / "forecasting" / "__init__.py").write_text("")
    (project / "forecasting" / "schema.py").write_text(FORECASTS)
    return project


@dataclass(frozen=True)
class Found:
    """What the new environment's interpreter reports from inside the project."""

    bqrepo: Path
    user_package: Path
    migrations: Path
    sys_path: list[Path]
    tables: set[str]
    versions: dict[str, list[str]]
    revision: str


def migrate_both(installed: Installed, project: Path, env: dict[str, str]) -> Found:
    """``bqrepo migrate`` (shipped tables), then init, autogenerate and upgrade the user's tables."""
    installed.run(project, str(installed.bqrepo), "migrate", env=env)
    installed.run(project, str(installed.bqrepo), "init", "--metadata", "forecasting.schema:metadata", env=env)
    installed.run(project, str(installed.python), "-m", "alembic", "revision", "--autogenerate", "-m", "forecasts", env=env)
    (revision,) = (project / "migrations" / "versions").glob("*_forecasts.py")
    source = revision.read_text()
    assert "op.create_dataset()" in source and "op.create_table('forecasts'," in source
    assert "drop_table" not in source.split("def downgrade", 1)[0]
    installed.run(project, str(installed.python), "-m", "alembic", "upgrade", "head", env=env)
    probe = json.loads(installed.run(project, str(installed.python), "-c", PROBE, env=env).stdout.splitlines()[-1])
    return Found(
        bqrepo=Path(probe["bqrepo"]).resolve(),
        user_package=Path(probe["user_package"]).resolve(),
        migrations=Path(probe["migrations"]).resolve(),
        sys_path=[Path(entry).resolve() for entry in probe["sys_path"] if entry],
        tables=set(probe["tables"]),
        versions=probe["versions"],
        revision=revision.name.split("_", 1)[0],
    )


def assert_came_from_the_wheel(installed: Installed, project: Path, found: Found) -> None:
    package = installed.site_packages.resolve() / "bqrepo"
    assert found.bqrepo == package / "__init__.py"
    assert found.migrations == package / "_migrations"
    assert found.user_package.is_relative_to(project.resolve())
    assert ROOT not in found.sys_path, found.sys_path
    # `alembic revision` wrote into the project, never into the installed package.
    assert sorted(p.name for p in (package / "_migrations" / "versions").glob("*.py")) == ["0001_initial.py"]
    assert {"forecasts", "events", "alembic_version", "alembic_version_app"} <= found.tables
    assert found.versions == {"app": [found.revision], "bqrepo": ["0001"]}


# Through the service, in the new environment: a batch of forecasts, then what reads return.
SERVICE = """
import json, sys
from bqrepo.json_encoding import report_json
from bqrepo.service import TimeSeriesService
import datetime as dt

service = TimeSeriesService.from_settings()   # the tables: BQREPO_METADATA
result = service.insert("forecasts", json.loads(sys.argv[1]))
assert result.ok, result.rejected
forecasts = service.table("forecasts")
print(report_json({
    "written": result.written,
    "latest": forecasts.latest(columns=["value"]),
    "monthly": forecasts.buckets(dt.date(2026, 1, 1), dt.date(2026, 4, 1), "MONTH", value="value",
                                 aggregates=["sum", "count"]),
}))
"""


def forecast(series: str, day: str, value: float, generated: str, **extra: object) -> dict[str, object]:
    return {"series_id": series, "forecast_date": day, "horizon": 1, "value": value, "lower": value - 1,
            "upper": value + 1, "model_name": "arima", "generated_at": generated, **extra}


def use_forecasts(installed: Installed, project: Path, env: dict[str, str]) -> None:
    """Ingest with the CLI and the service, read latest-per-series and monthly buckets, add a column, ingest again."""
    bqrepo, python = str(installed.bqrepo), str(installed.python)
    by_cli = [
        forecast("gdp", "2026-01-15", 1.0, "2026-01-01T00:00:00Z"),
        forecast("gdp", "2026-02-15", 2.0, "2026-01-01T00:00:00Z"),
        forecast("gdp", "2026-03-10", 3.0, "2026-01-01T00:00:00Z"),
        forecast("cpi", "2026-01-20", 10.0, "2026-01-01T00:00:00Z"),
        forecast("cpi", "2026-02-20", 20.0, "2026-01-01T00:00:00Z"),
    ]
    (project / "forecasts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in by_cli))
    out = installed.run(project, bqrepo, "--metadata", "forecasting.schema:metadata", "ingest", "forecasts",
                        "forecasts.jsonl", env=env).stdout
    assert "5" in out, out
    # The service: a revision of gdp's March value (newer generated_at) and a new series.
    by_service = [
        forecast("gdp", "2026-03-10", 3.5, "2026-02-01T00:00:00Z"),
        forecast("oil", "2026-03-01", 70.0, "2026-02-01T00:00:00Z"),
    ]
    with_tables = env | {"BQREPO_METADATA": "forecasting.schema:metadata"}
    answer = json.loads(installed.run(project, python, "-c", SERVICE, json.dumps(by_service), env=with_tables).stdout)
    assert answer["written"] == 2
    assert answer["latest"] == [
        {"series_id": "cpi", "forecast_date": "2026-02-20", "value": 20.0},
        {"series_id": "gdp", "forecast_date": "2026-03-10", "value": 3.5},
        {"series_id": "oil", "forecast_date": "2026-03-01", "value": 70.0},
    ]
    assert [(b["bucket_start"], b["sum"], b["count"]) for b in answer["monthly"]] == [
        ("2026-01-01", 11.0, 2), ("2026-02-01", 22.0, 2), ("2026-03-01", 73.5, 2)
    ]
    # The same reads from the command line.
    latest = json.loads(installed.run(project, bqrepo, "table", "latest", "forecasts", "--column", "value", "--json",
                                      env=with_tables).stdout)
    assert latest == answer["latest"]
    monthly = json.loads(installed.run(
        project, bqrepo, "table", "buckets", "forecasts", "--bucket", "MONTH", "--value", "value",
        "--aggregate", "sum", "--aggregate", "count", "--since", "2026-01-01", "--until", "2026-04-01", "--json",
        env=with_tables).stdout)
    assert monthly == answer["monthly"]

    # A new column: a second autogenerated revision holds just that, and the next ingest carries it.
    schema = project / "forecasting" / "schema.py"
    schema.write_text(schema.read_text().replace(
        '        sa.Column("generated_at", sa.TIMESTAMP(timezone=True)),\n',
        '        sa.Column("generated_at", sa.TIMESTAMP(timezone=True)),\n        sa.Column("scenario", sa.String),\n',
    ))
    installed.run(project, python, "-m", "alembic", "revision", "--autogenerate", "-m", "scenario", env=env)
    (second,) = (project / "migrations" / "versions").glob("*_scenario.py")
    upgrade_ops = second.read_text().split("def upgrade", 1)[1].split("def downgrade", 1)[0]
    assert "op.add_column('forecasts', sa.Column('scenario'" in upgrade_ops, upgrade_ops
    assert "create_table" not in upgrade_ops and "drop" not in upgrade_ops, upgrade_ops
    installed.run(project, python, "-m", "alembic", "upgrade", "head", env=env)
    (project / "scenario.jsonl").write_text(
        json.dumps(forecast("gdp", "2026-04-10", 4.0, "2026-03-01T00:00:00Z", scenario="high")) + "\n"
    )
    installed.run(project, bqrepo, "ingest", "forecasts", "scenario.jsonl", env=with_tables)
    rows = json.loads(installed.run(project, bqrepo, "table", "rows", "forecasts", "--since", "2026-04-01",
                                    "--until", "2026-05-01", "--json", env=with_tables).stdout)
    assert [(row["series_id"], row["value"], row["scenario"]) for row in rows] == [("gdp", 4.0, "high")]


def test_wheel_install_duckdb(installed: Installed, tmp_path: Path) -> None:
    project = user_project(tmp_path)
    env = {"BQREPO_DUCKDB_PATH": str(tmp_path / "forecasts.duckdb")}
    found = migrate_both(installed, project, env)
    assert_came_from_the_wheel(installed, project, found)
    use_forecasts(installed, project, env)


@pytest.mark.bigquery
def test_wheel_install_standin(installed: Installed, tmp_path: Path, bigquery_settings: Settings) -> None:
    project = user_project(tmp_path)
    env = {
        "BQREPO_URL": bigquery_settings.url or "",
        "BIGQUERY_EMULATOR_HOST": bigquery_settings.emulator_host or "",
        "GCP_PROJECT_ID": bigquery_settings.project_id or "",
    }
    found = migrate_both(installed, project, env)
    assert_came_from_the_wheel(installed, project, found)
    use_forecasts(installed, project, env)
