"""Django integration: build the service from ``django.conf.settings``.

Add ``"bqrepo.contrib.django"`` to ``INSTALLED_APPS`` to have settings
validated at start-up (no network), and call :func:`get_service` in views
and Celery tasks, or inject it. Settings (``BQREPO_URL``, ``GCP_PROJECT_ID``,
``BIGQUERY_DATASET``, ``BIGQUERY_LOCATION``) come from Django settings; the
environment overrides them.
"""

from __future__ import annotations

from django.apps import AppConfig

from bqrepo.service import TimeSeriesService, get_default_service
from bqrepo.settings import load_settings

__all__ = ["BqrepoConfig", "get_service"]


class BqrepoConfig(AppConfig):
    """Validates bqrepo's settings when Django starts, so a typo fails at deploy time."""

    name = "bqrepo.contrib.django"
    label = "bqrepo"
    default = True

    def ready(self) -> None:
        load_settings()


def get_service() -> TimeSeriesService:
    """The service for this process, built from Django settings on first call.

    The same instance as :func:`bqrepo.service.get_default_service` (settings
    read Django's when it is configured), so a process holds one engine.
    """
    return get_default_service()
