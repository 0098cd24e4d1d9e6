"""The app Django builds for ``"bqrepo.contrib.django"`` in ``INSTALLED_APPS``.

It lives in ``apps.py`` because Django honours ``default = True`` only for
an ``AppConfig`` in the ``apps`` submodule; anywhere else Django builds a
plain ``AppConfig`` and ``ready()`` never runs.
"""

from __future__ import annotations

from django.apps import AppConfig


class BqrepoConfig(AppConfig):
    """Registers bqrepo's system checks, so a typo in a setting fails ``manage.py check``."""

    name = "bqrepo.contrib.django"
    label = "bqrepo"
    verbose_name = "bqrepo"
    default = True

    def ready(self) -> None:
        from bqrepo.contrib.django import checks

        checks.register()
