"""Dataset permissions and locations through a BigQuery that enforces them (issue 9, part 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.api_core.exceptions import Forbidden
from google.cloud import bigquery

from bqrepo import migrate
from bqrepo.engine import create_engine
from bqrepo.errors import ConfigurationError
from bqrepo.settings import Settings
from bqrepo.testing.faults import DATASET_GET, DATASETS_INSERT, GET, POST, FaultProxy
from bqrepo.testing.standin import LocalBigQuery

pytestmark = pytest.mark.bigquery

WRONG_LOCATION = r"is in location EU, but BIGQUERY_LOCATION=US.*Set BIGQUERY_LOCATION=EU"


def make_dataset(standin: LocalBigQuery, settings: Settings, location: str = "US") -> None:
    """Create the dataset behind the proxy's back, as Terraform would have."""
    dataset = bigquery.Dataset(f"{settings.bigquery_project}.{settings.bigquery_dataset}")
    dataset.location = location
    standin.client().create_dataset(dataset)


def test_migration_needs_no_create_permission_on_an_existing_dataset(
    standin: LocalBigQuery, faulty_bigquery: FaultProxy, faulty_settings: Settings
) -> None:
    make_dataset(standin, faulty_settings)
    faulty_bigquery.fail(POST, DATASETS_INSERT, status=403, reason="accessDenied", times=None,
                         message="Access Denied: User does not have bigquery.datasets.create permission")
    migrate.upgrade(faulty_settings)
    assert migrate.current_revision(faulty_settings) is not None
    assert faulty_bigquery.recorded(POST, DATASETS_INSERT) == []
    assert faulty_bigquery.recorded(GET, DATASET_GET)


def test_a_missing_dataset_without_create_permission_is_the_403(
    faulty_bigquery: FaultProxy, faulty_settings: Settings
) -> None:
    faulty_bigquery.fail(POST, DATASETS_INSERT, status=403, reason="accessDenied", times=None)
    with pytest.raises(Forbidden, match="Access Denied"):
        migrate.upgrade(faulty_settings)


def test_a_dataset_in_another_location_is_refused_at_the_first_connection(
    standin: LocalBigQuery, faulty_bigquery: FaultProxy, faulty_settings: Settings
) -> None:
    make_dataset(standin, faulty_settings)
    faulty_bigquery.dataset_locations[f"{faulty_settings.bigquery_project}.{faulty_settings.bigquery_dataset}"] = "EU"
    engine = create_engine(faulty_settings)
    try:
        with pytest.raises(ConfigurationError, match=WRONG_LOCATION):
            engine.connect()
        with pytest.raises(ConfigurationError, match=WRONG_LOCATION):  # checked until it passes
            engine.connect()
    finally:
        engine.dispose()
    with pytest.raises(ConfigurationError, match=WRONG_LOCATION):
        migrate.upgrade(faulty_settings)
    in_eu = Settings(**{**faulty_settings.__dict__, "location": "EU"})
    engine = create_engine(in_eu)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.select(sa.literal(1))).scalar_one() == 1
    finally:
        engine.dispose()


def test_info_names_both_locations_and_the_setting(
    standin: LocalBigQuery, faulty_bigquery: FaultProxy, faulty_settings: Settings, tmp_path: Path
) -> None:
    make_dataset(standin, faulty_settings)
    faulty_bigquery.dataset_locations[f"{faulty_settings.bigquery_project}.{faulty_settings.bigquery_dataset}"] = "EU"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQREPO_", "BIGQUERY_", "GCP_"))}
    env |= {
        "GCP_PROJECT_ID": faulty_settings.bigquery_project,
        "BIGQUERY_DATASET": faulty_settings.bigquery_dataset,
        "BIGQUERY_EMULATOR_HOST": faulty_bigquery.host,
        "BIGQUERY_LOCATION": "US",
        "BQREPO_URL": str(faulty_settings.url),
        "COLUMNS": "200",
    }
    result = subprocess.run([sys.executable, "-m", "bqrepo.cli", "info"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "is in location EU, but BIGQUERY_LOCATION=US" in " ".join(output.split()), output
    assert "Set BIGQUERY_LOCATION=EU" in " ".join(output.split()), output


def test_the_location_check_costs_one_lookup_per_engine(
    standin: LocalBigQuery, faulty_bigquery: FaultProxy, faulty_settings: Settings
) -> None:
    make_dataset(standin, faulty_settings)
    engine = create_engine(faulty_settings, pool_size=1)
    try:
        for _ in range(3):
            with engine.connect() as connection:
                connection.execute(sa.select(sa.literal(1)))
    finally:
        engine.dispose()
    assert len(faulty_bigquery.recorded(GET, DATASET_GET)) == 1


def test_an_account_that_cannot_read_the_dataset_still_connects(
    standin: LocalBigQuery, faulty_bigquery: FaultProxy, faulty_settings: Settings
) -> None:
    make_dataset(standin, faulty_settings)
    faulty_bigquery.fail(GET, DATASET_GET, status=403, reason="accessDenied", times=None)
    engine = create_engine(faulty_settings)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.select(sa.literal(1))).scalar_one() == 1
    finally:
        engine.dispose()
    assert [r.fault for r in faulty_bigquery.recorded(GET, DATASET_GET)] == ["fail"]
