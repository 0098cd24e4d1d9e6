"""Checks of the live BigQuery dataset against the settings, run before any job.

Why: BigQuery runs a job in the location the client names
(``BIGQUERY_LOCATION``), and a dataset lives in exactly one location that
can never change. When the two differ, every query, load and migration
fails with "Not found: Dataset P:D was not found in location US", which
reads like a missing dataset. Checking once, at the first connection and
in ``bqrepo info``, turns that into one message naming both locations and
the setting to change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bqrepo.errors import ConfigurationError
from bqrepo.settings import Settings

__all__ = ["check_dataset_location", "location_check"]


def check_dataset_location(client: Any, settings: Settings) -> Any:
    """The configured dataset (``None`` when it does not exist yet), checked for its location.

    Raises :class:`~bqrepo.errors.ConfigurationError` when the dataset exists
    in another location than ``settings.location``. Needs only
    ``bigquery.datasets.get`` (which dataViewer and dataEditor grant), so it
    also works for a least-privilege service account.
    """
    from google.api_core.exceptions import NotFound

    dataset_id = f"{settings.bigquery_project}.{settings.bigquery_dataset}"
    try:
        dataset = client.get_dataset(dataset_id)
    except NotFound:
        return None
    actual = dataset.location
    if actual and actual.lower() != settings.location.lower():
        raise ConfigurationError(
            f"BigQuery dataset {dataset_id} is in location {actual}, but BIGQUERY_LOCATION="
            f"{settings.location}: every job would fail with 'Not found: Dataset "
            f"{settings.bigquery_project}:{settings.bigquery_dataset} was not found in location "
            f"{settings.location}'. Set BIGQUERY_LOCATION={actual} (a dataset's location cannot change)."
        )
    return dataset


def location_check(settings: Settings) -> Callable[[Any, Any], None]:
    """A ``connect`` listener for a BigQuery engine: :func:`check_dataset_location`
    on new connections until it passes once, then nothing (one ``datasets.get``
    per engine). Until it passes, every connection attempt raises the error.
    An account that may not read the dataset's metadata (403) is not checked.
    """
    passed = threading.Event()

    def check(dbapi_connection: Any, _record: Any) -> None:
        from google.api_core.exceptions import Forbidden

        if passed.is_set():
            return
        try:
            check_dataset_location(dbapi_connection._client, settings)
        except Forbidden:
            # Access granted on tables only, not on the dataset: nothing to check
            # with, and no reason to refuse queries the account may run.
            pass
        passed.set()

    return check
