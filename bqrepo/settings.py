"""One settings object for bqrepo, read from the environment and Django.

Why one object: the backend in use must never be a surprise, so every
component (engine, migrations, CLI, Django integration) derives its
configuration from the same :class:`Settings` value.

Credentials are deliberately absent. Against real BigQuery they come from
Google Application Default Credentials (``gcloud auth application-default
login`` on a laptop, the attached service account in production); against
the local stand-in they are anonymous. A key path or secret never lives here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url

from bqrepo.errors import ConfigurationError
from bqrepo.redact import display_host

__all__ = [
    "DEFAULT_DUCKDB_FILE",
    "ConfigurationError",
    "Settings",
    "load_settings",
    "validate_dataset_id",
    "validate_location",
    "validate_project_id",
]

DEFAULT_DUCKDB_FILE = "bqrepo.duckdb"
"""The embedded database used when ``BQREPO_URL`` is unset, in the working directory."""

# https://cloud.google.com/resource-manager/docs/creating-managing-projects:
# 6-30 chars, lowercase letters, digits, hyphens; starts with a letter, does
# not end with a hyphen. Domain-scoped projects ("example.com:proj") also exist.
# Every pattern is used with fullmatch: "$" alone would accept a trailing newline.
_PROJECT_RE = re.compile(r"(?:[a-z][a-z0-9.-]{0,62}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
# https://cloud.google.com/bigquery/docs/datasets#dataset-naming:
# letters, digits and underscores, at most 1,024 characters.
_DATASET_RE = re.compile(r"[A-Za-z0-9_]{1,1024}")
_LOCATION_RE = re.compile(r"[A-Za-z0-9-]{1,64}")

Backend = Literal["duckdb", "bigquery"]


def validate_project_id(value: str, *, setting: str = "GCP_PROJECT_ID") -> str:
    """Return ``value`` if it is a valid Google Cloud project id, else raise."""
    if not _PROJECT_RE.fullmatch(value or ""):
        raise ConfigurationError(
            f"{setting}={value!r} is not a valid Google Cloud project id: use 6-30 "
            "lowercase letters, digits or hyphens, starting with a letter"
        )
    return value


def validate_dataset_id(value: str, *, setting: str = "BIGQUERY_DATASET") -> str:
    """Return ``value`` if it is a valid BigQuery dataset id, else raise."""
    if not _DATASET_RE.fullmatch(value or ""):
        raise ConfigurationError(
            f"{setting}={value!r} is not a valid BigQuery dataset id: use letters, "
            "digits and underscores only (at most 1,024)"
        )
    return value


def validate_location(value: str) -> str:
    """Return ``value`` if it can be a BigQuery location (US, EU, europe-west1), else raise."""
    if not _LOCATION_RE.fullmatch(value or ""):
        raise ConfigurationError(
            f"BIGQUERY_LOCATION={value!r} is not a BigQuery location such as US, EU "
            "or europe-west1"
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Where bqrepo's tables live and how to reach them.

    ``url`` is ``None`` for the embedded DuckDB default; otherwise a
    SQLAlchemy URL, ``bigquery://PROJECT/DATASET`` for BigQuery.
    """

    project_id: str = "venezuelawatch-dev"
    dataset: str = "venezuelawatch_analytics"
    location: str = "US"
    url: str | None = None
    emulator_host: str | None = None
    duckdb_path: str = DEFAULT_DUCKDB_FILE

    def __post_init__(self) -> None:
        validate_project_id(self.project_id)
        validate_dataset_id(self.dataset)
        validate_location(self.location)
        if self.url is not None:
            parsed = self._parsed_url()
            if parsed.drivername == "bigquery":
                validate_project_id(parsed.host or "", setting="BQREPO_URL project")
                validate_dataset_id(parsed.database or "", setting="BQREPO_URL dataset")
            elif not parsed.drivername.startswith("duckdb"):
                raise ConfigurationError(
                    f"BQREPO_URL uses {parsed.drivername!r}; bqrepo supports "
                    "bigquery://PROJECT/DATASET or duckdb:///PATH"
                )
            elif parsed.database in (None, "", ":memory:"):
                # Each pooled connection would get its own empty database:
                # migrations and writes would vanish between statements.
                raise ConfigurationError(
                    "BQREPO_URL names an in-memory DuckDB, which forgets everything between "
                    "connections; give a file: duckdb:///relative.duckdb or duckdb:////absolute.duckdb"
                )

    def _parsed_url(self) -> URL:
        try:
            return make_url(self.url or "")
        except Exception as exc:  # sqlalchemy raises ArgumentError
            raise ConfigurationError(f"BQREPO_URL is not a valid URL: {exc}") from None

    @property
    def backend(self) -> Backend:
        """``"bigquery"`` or ``"duckdb"``: which engine the repositories run on."""
        if self.url is not None and self._parsed_url().drivername == "bigquery":
            return "bigquery"
        return "duckdb"

    @property
    def sqlalchemy_url(self) -> URL:
        """The URL the engine is created from (the DuckDB file when unset)."""
        if self.url is None:
            return URL.create("duckdb", database=str(Path(self.duckdb_path)))
        return self._parsed_url()

    @property
    def bigquery_project(self) -> str:
        """The project the tables live in: the URL's, else ``GCP_PROJECT_ID``."""
        if self.backend == "bigquery":
            return self._parsed_url().host or self.project_id
        return self.project_id

    @property
    def bigquery_dataset(self) -> str:
        """The dataset the tables live in: the URL's, else ``BIGQUERY_DATASET``."""
        if self.backend == "bigquery":
            return self._parsed_url().database or self.dataset
        return self.dataset

    def describe(self) -> str:
        """A one-line, secret-free description of the backend, for logs and ``info``."""
        if self.backend == "bigquery":
            where = f"BigQuery {self.bigquery_project}.{self.bigquery_dataset} ({self.location})"
            if self.emulator_host:
                where += f" via emulator at {display_host(self.emulator_host)}"
            return where
        return f"DuckDB file {self.sqlalchemy_url.database}"

    def with_url(self, url: str | None) -> Settings:
        """A copy pointing at another backend (tests and the CLI use this)."""
        return replace(self, url=url)


_ENV_KEYS = {
    "project_id": "GCP_PROJECT_ID",
    "dataset": "BIGQUERY_DATASET",
    "location": "BIGQUERY_LOCATION",
    "url": "BQREPO_URL",
    "emulator_host": "BIGQUERY_EMULATOR_HOST",
    "duckdb_path": "BQREPO_DUCKDB_PATH",
}


def _django_settings() -> Mapping[str, object]:
    """Django's settings when Django is installed *and* configured, else ``{}``.

    Imported lazily so that bqrepo never requires Django.
    """
    try:
        from django.conf import settings as django_settings  # type: ignore[import-not-found]
    except ImportError:
        return {}
    if not django_settings.configured:
        return {}
    return {
        key: getattr(django_settings, key)
        for key in _ENV_KEYS.values()
        if hasattr(django_settings, key)
    }


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from Django settings, then the environment.

    The environment wins over Django so that an operator can redirect a
    deployed app (for example to the stand-in) without editing code. Empty
    values count as unset.
    """
    env = os.environ if environ is None else environ
    sources: list[Mapping[str, object]] = [_django_settings(), env]
    values: dict[str, str] = {}
    for field, key in _ENV_KEYS.items():
        for source in sources:
            raw = source.get(key)
            if raw not in (None, ""):
                values[field] = str(raw)
    return Settings(**values)
