"""Settings: defaults, environment, Django, validation; the engine: lazy and logged."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bqrepo.engine import create_engine
from bqrepo.settings import ConfigurationError, Settings, load_settings


def test_defaults_mean_embedded_duckdb_in_the_working_directory() -> None:
    settings = load_settings({})
    assert settings.backend == "duckdb"
    assert (settings.project_id, settings.dataset, settings.location) == (None, None, "US")
    assert str(settings.sqlalchemy_url) == "duckdb:///bqrepo.duckdb"
    assert settings.describe() == "DuckDB file bqrepo.duckdb"


def test_environment_selects_bigquery() -> None:
    settings = load_settings(
        {
            "BQREPO_URL": "bigquery://prod-project/analytics",
            "BIGQUERY_LOCATION": "EU",
            "BIGQUERY_EMULATOR_HOST": "",
        }
    )
    assert settings.backend == "bigquery"
    assert (settings.bigquery_project, settings.bigquery_dataset) == ("prod-project", "analytics")
    assert settings.emulator_host is None
    assert settings.describe() == "BigQuery prod-project.analytics (EU)"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GCP_PROJECT_ID": "Bad_Project"}, "GCP_PROJECT_ID='Bad_Project' is not a valid"),
        ({"BIGQUERY_DATASET": "my-dataset"}, "BIGQUERY_DATASET='my-dataset' is not a valid"),
        ({"BQREPO_URL": "bigquery://ok-project/bad;drop"}, "BQREPO_URL dataset='bad;drop'"),
        ({"BQREPO_URL": "bigquery://", "BIGQUERY_DATASET": "ds", "BIGQUERY_EMULATOR_HOST": "h:1"},
         "no project is named: set GCP_PROJECT_ID"),
        ({"BQREPO_URL": "postgresql://x/y"}, "BQREPO_URL uses 'postgresql'"),
        ({"BIGQUERY_LOCATION": "us'; DROP"}, "BIGQUERY_LOCATION=.* is not a BigQuery location"),
        ({"BQREPO_URL": "duckdb:///:memory:"}, "in-memory DuckDB"),
    ],
)
def test_invalid_names_fail_clearly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env)


def test_the_plans_settings_select_bigquery_never_a_file() -> None:
    """Issue 11.1: GCP_PROJECT_ID + BIGQUERY_DATASET, as the plan sets them, mean BigQuery."""
    settings = load_settings({"GCP_PROJECT_ID": "plan-project", "BIGQUERY_DATASET": "analytics"})
    assert settings.backend == "bigquery"
    assert str(settings.sqlalchemy_url) == "bigquery://plan-project/analytics"
    assert settings.describe() == "BigQuery plan-project.analytics (US)"
    # BQREPO_URL still overrides everything
    assert load_settings(
        {"GCP_PROJECT_ID": "plan-project", "BIGQUERY_DATASET": "x", "BQREPO_URL": "duckdb:///f.duckdb"}
    ).backend == "duckdb"


@pytest.mark.parametrize(
    ("env", "target"),
    [
        ({"BQREPO_URL": "bigquery://", "GCP_PROJECT_ID": "plan-project", "BIGQUERY_DATASET": "a"},
         "plan-project.a"),
        ({"BQREPO_URL": "bigquery://url-project", "BIGQUERY_DATASET": "a"}, "url-project.a"),
        ({"BQREPO_URL": "bigquery://url-project/b", "GCP_PROJECT_ID": "plan-project",
          "BIGQUERY_DATASET": "a"}, "url-project.b"),
    ],
)
def test_a_bigquery_url_takes_what_it_lacks_from_the_settings(env: dict[str, str], target: str) -> None:
    settings = load_settings(env)
    assert f"{settings.bigquery_project}.{settings.bigquery_dataset}" == target
    assert str(settings.sqlalchemy_url) == f"bigquery://{target.replace('.', '/')}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GCP_PROJECT_ID": "plan-project"}, "no dataset is named: set BIGQUERY_DATASET"),
        ({"BQREPO_URL": "bigquery://my-project"}, "the URL names no dataset"),
        ({"BIGQUERY_DATASET": "a", "BIGQUERY_EMULATOR_HOST": "127.0.0.1:9"},
         "no project is named: set GCP_PROJECT_ID"),
    ],
)
def test_half_configured_bigquery_refuses_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env)


def test_an_explicit_url_overrides_a_half_configured_environment() -> None:
    """The CLI's --url wins even where the environment alone would refuse."""
    assert load_settings({"GCP_PROJECT_ID": "plan-project"}, url="duckdb:///x.duckdb").backend == "duckdb"
    assert load_settings({"BIGQUERY_DATASET": "a"}, url="bigquery://url-project").describe() == (
        "BigQuery url-project.a (US)"
    )


def test_the_project_can_come_from_application_default_credentials(tmp_path: Path) -> None:
    """ADC names a project (here GOOGLE_CLOUD_PROJECT with user credentials): no GCP_PROJECT_ID needed."""
    credentials = tmp_path / "adc.json"
    credentials.write_text(json.dumps(
        {"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"}
    ))
    code = (
        "from bqrepo.settings import load_settings\n"
        "print(load_settings({'BIGQUERY_DATASET': 'a'}).describe())\n"
    )
    env = {**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(credentials), "GOOGLE_CLOUD_PROJECT": "adc-project"}
    for key in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR_HOST", "BQREPO_URL"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "BigQuery adc-project.a (US)"


def test_django_settings_are_read_and_environment_wins() -> None:
    """Run in a subprocess: configuring Django is process-global."""
    code = (
        "from django.conf import settings\n"
        "settings.configure(BIGQUERY_DATASET='from_django', GCP_PROJECT_ID='django-project')\n"
        "from bqrepo.settings import load_settings\n"
        "print(load_settings({}).dataset, load_settings({}).project_id,\n"
        "      load_settings({'BIGQUERY_DATASET': 'from_env'}).dataset)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from_django", "django-project", "from_env"]


def test_import_connects_to_nothing() -> None:
    """Importing every module with sockets disabled must succeed."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import bqrepo, bqrepo.schema, bqrepo.engine, bqrepo.migrate, bqrepo.alembic_ext\n"
        "from bqrepo.engine import create_engine\n"
        "from bqrepo.settings import Settings\n"
        "create_engine(Settings(url='bigquery://some-project/ds', emulator_host='127.0.0.1:9'))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_backend_is_logged_once_on_first_connection(
    duckdb_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(duckdb_settings)
    with caplog.at_level(logging.INFO, logger="bqrepo"):
        assert not caplog.records
        for _ in range(3):
            with engine.connect():
                pass
        engine.dispose()
        with engine.connect():
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == "bqrepo"]
    assert messages == [f"bqrepo backend: {duckdb_settings.describe()}"]


def test_duckdb_sessions_run_in_utc(duckdb_settings: Settings) -> None:
    engine = create_engine(duckdb_settings)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT current_setting('TimeZone')").scalar() == "UTC"
    finally:
        engine.dispose()
