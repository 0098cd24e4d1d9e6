"""Django integration: the service built from ``django.conf.settings``, checked at start-up.

Add ``"bqrepo.contrib.django"`` to ``INSTALLED_APPS``: Django then finds
:class:`~bqrepo.contrib.django.apps.BqrepoConfig` (label ``bqrepo``) in the
``apps`` submodule, whose ``ready()`` registers the system checks of
:mod:`bqrepo.contrib.django.checks`, so ``manage.py check`` (and
``runserver``, ``migrate``...) report a bad or missing setting by name,
without touching the network. Call :func:`get_service` in views and Celery
tasks, or inject it. Settings (``GCP_PROJECT_ID``, ``BIGQUERY_DATASET``,
``BIGQUERY_LOCATION``, ``BQREPO_URL``, ``BIGQUERY_EMULATOR_HOST``,
``BQREPO_DUCKDB_PATH``) come from Django settings; the environment
overrides them.
"""

from __future__ import annotations

from bqrepo.service import TimeSeriesService, get_default_service

__all__ = ["get_service"]


def get_service() -> TimeSeriesService:
    """The service for this process, built from Django settings on first call.

    The same instance as :func:`bqrepo.service.get_default_service` (settings
    read Django's when it is configured), so a process holds one engine.
    Building it does not connect: the first query or write does.
    """
    return get_default_service()
