"""Django system checks for bqrepo's settings: one error per bad or missing setting.

Why system checks rather than raising in ``ready()``: ``manage.py check``
(and every management command) then lists every problem at once, each with
an id a project can silence or grep for, and the process starts no network
connection to find them. The rules are bqrepo's own validators
(:mod:`bqrepo.settings`), applied to the values Django and the environment
give, so the checks and the library never disagree.

==============  ===========================================================
id              problem
==============  ===========================================================
``bqrepo.E001`` ``GCP_PROJECT_ID`` is not a Google Cloud project id
``bqrepo.E002`` ``BIGQUERY_DATASET`` is not a BigQuery dataset id
``bqrepo.E003`` ``BIGQUERY_LOCATION`` is not a BigQuery location
``bqrepo.E004`` ``BQREPO_URL`` is not a URL bqrepo can use
``bqrepo.E005`` ``BIGQUERY_EMULATOR_HOST`` is not ``host:port``
``bqrepo.E006`` BigQuery is chosen but the project or dataset is missing
``bqrepo.E007`` ``BQREPO_MAXIMUM_BYTES_BILLED`` is not a number of bytes (or ``none``)
``bqrepo.E008`` ``BQREPO_JOB_LABELS`` is not ``key=value,...`` under BigQuery's label rules
``bqrepo.W001`` ``DEBUG = False`` and nothing configured: the embedded DuckDB file
==============  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core import checks

from bqrepo.backend import backend_for
from bqrepo.errors import ConfigurationError
from bqrepo.settings import (
    configured_values,
    load_settings,
    validate_dataset_id,
    validate_emulator_host,
    validate_job_labels,
    validate_location,
    validate_maximum_bytes_billed,
    validate_project_id,
    validate_url,
)

__all__ = ["check_settings", "register"]

_PER_SETTING: list[tuple[str, str, Callable[[str], object]]] = [
    ("GCP_PROJECT_ID", "bqrepo.E001", validate_project_id),
    ("BIGQUERY_DATASET", "bqrepo.E002", validate_dataset_id),
    ("BIGQUERY_LOCATION", "bqrepo.E003", validate_location),
    ("BQREPO_URL", "bqrepo.E004", validate_url),
    ("BIGQUERY_EMULATOR_HOST", "bqrepo.E005", validate_emulator_host),
    ("BQREPO_MAXIMUM_BYTES_BILLED", "bqrepo.E007", validate_maximum_bytes_billed),
    ("BQREPO_JOB_LABELS", "bqrepo.E008", validate_job_labels),
]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Validate every bqrepo setting on its own, then their combination."""
    values = configured_values()
    problems: list[checks.CheckMessage] = []
    for key, check_id, validate in _PER_SETTING:
        if key in values:
            try:
                validate(values[key])
            except ConfigurationError as exc:
                problems.append(
                    checks.Error(str(exc), hint=f"fix {key} in settings.py or the environment", id=check_id)
                )
    if problems:
        return problems
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        return [checks.Error(str(exc), hint="set the missing setting named above", id="bqrepo.E006")]
    if backend_for(settings).embedded and "BQREPO_URL" not in values and not django_settings.DEBUG:
        problems.append(
            checks.Warning(
                f"DEBUG = False, and bqrepo uses the embedded default: {settings.describe()}",
                hint="set GCP_PROJECT_ID and BIGQUERY_DATASET for BigQuery, or BQREPO_URL=duckdb:///PATH "
                "to keep a DuckDB file on purpose",
                id="bqrepo.W001",
            )
        )
    return problems


def register() -> None:
    """Register :func:`check_settings` (idempotent: Django keeps a set)."""
    checks.register(check_settings, "bqrepo")
