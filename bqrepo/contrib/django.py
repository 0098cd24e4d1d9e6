"""Django integration: build the service from ``django.conf.settings``.

Add ``"bqrepo.contrib.django"`` to ``INSTALLED_APPS`` to have settings
validated at start-up (no network), and call :func:`get_service` in views
and Celery tasks, or inject it. Settings (``BQREPO_URL``, ``GCP_PROJECT_ID``,
``BIGQUERY_DATASET``, ``BIGQUERY_LOCATION``) come from Django settings; the
environment overrides them.
"""

from __future__ import annotations

from functools import cache

from django.apps import AppConfig

from bqrepo.service import TimeSeriesService
from bqrepo.settings import load_settings

__all__ = ["BqrepoConfig", "get_service"]


class BqrepoConfig(AppConfig):
    """Validates bqrepo's settings when Django starts, so a typo fails at deploy time."""

    name = "bqrepo.contrib.django"
    label = "bqrepo"
    default = True

    def ready(self) -> None:
        load_settings()


@cache
def get_service() -> TimeSeriesService:
    """The service for this process, built from Django settings on first call."""
    return TimeSeriesService.from_settings(load_settings())
