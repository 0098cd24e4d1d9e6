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

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url

from bqrepo.endpoint import parse_endpoint
from bqrepo.errors import ConfigurationError
from bqrepo.labels import MAX_LABELS, label_problem
from bqrepo.redact import display_host, redact_url

__all__ = [
    "DEFAULT_DUCKDB_FILE",
    "DEFAULT_MAXIMUM_BYTES_BILLED",
    "DEFAULT_METADATA",
    "RESERVED_LABEL_PREFIX",
    "ConfigurationError",
    "Settings",
    "load_settings",
    "configured_values",
    "validate_dataset_id",
    "validate_emulator_host",
    "validate_job_labels",
    "validate_location",
    "validate_maximum_bytes_billed",
    "validate_project_id",
    "validate_url",
]

DEFAULT_DUCKDB_FILE = "bqrepo.duckdb"
"""The embedded database used when ``BQREPO_URL`` is unset, in the working directory."""

DEFAULT_METADATA = "bqrepo.schema:metadata"
"""The tables the CLI serves when ``BQREPO_METADATA`` is unset: bqrepo's own five."""

DEFAULT_MAXIMUM_BYTES_BILLED = 10 * 2**30
"""10 GiB: the bytes one BigQuery query may bill unless ``BQREPO_MAXIMUM_BYTES_BILLED`` says otherwise.

Why this much: every repository query reads a time window of partitions,
and 10 GiB is a month of a table that grows by about 300 MB a day (a million
300-byte events), so ordinary queries pass; what it stops is the accident,
a window of years or a table scanned whole, which on a multi-terabyte table
costs dollars per call. At on-demand prices ($6.25 per TiB in 2026) a query
at the limit costs about 6 cents. ``none`` lifts bqrepo's limit (the
project's own default, if any, then applies).
"""

RESERVED_LABEL_PREFIX = "bqrepo_"
"""Job label keys bqrepo sets itself (``bqrepo_repository``, ``bqrepo_method``, ``bqrepo_table``)."""

#: Labels bqrepo puts on every query job (see :mod:`bqrepo.cost`); the rest of BigQuery's 64 are the user's.
_RESERVED_LABELS = 3

_BYTE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}
_BYTES_RE = re.compile(r"\s*(\d[\d_]*)\s*([a-zA-Z]*)\s*")

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


def validate_url(value: str) -> URL:
    """The parsed ``BQREPO_URL`` if bqrepo can use it, else raise naming what is wrong.

    A ``bigquery://`` URL may leave out its project and dataset (the
    settings supply them); what it names must be valid identifiers.
    """
    try:
        parsed = make_url(value)
    except Exception as exc:  # sqlalchemy raises ArgumentError
        raise ConfigurationError(f"BQREPO_URL is not a valid URL: {exc}") from None
    if parsed.drivername == "bigquery":
        if parsed.query:
            _refuse_url_options(sorted(parsed.query))
        if parsed.host:
            validate_project_id(parsed.host, setting="BQREPO_URL project")
        if parsed.database:
            validate_dataset_id(parsed.database, setting="BQREPO_URL dataset")
    elif not parsed.drivername.startswith("duckdb"):
        raise ConfigurationError(
            f"BQREPO_URL uses {parsed.drivername!r}; bqrepo supports "
            "bigquery://PROJECT/DATASET or duckdb:///PATH"
        )
    elif parsed.database in (None, "", ":memory:"):
        # Each connection would get its own empty database: migrations and
        # writes would vanish between statements.
        raise ConfigurationError(
            "BQREPO_URL names an in-memory DuckDB, which forgets everything between "
            "connections; give a file: duckdb:///relative.duckdb or duckdb:////absolute.duckdb"
        )
    return parsed


# What to set instead of an option sqlalchemy-bigquery reads from its URL.
_URL_OPTION_SETTINGS = {
    "maximum_bytes_billed": "BQREPO_MAXIMUM_BYTES_BILLED",
    "location": "BIGQUERY_LOCATION",
    "credentials_path": "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)",
    "credentials_base64": "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)",
}


def _refuse_url_options(names: list[str]) -> None:
    """Refuse the options of a ``bigquery://`` URL, naming the setting that does each.

    Why refuse rather than honour: sqlalchemy-bigquery reads them into the
    client *it* builds, and bqrepo builds its own (one client shared by the
    engine and the writers), so before this they were accepted and silently
    ignored, a ``maximum_bytes_billed=1`` included. Each has one place in
    bqrepo's settings instead. Only the names are echoed: a value may be a
    credential.
    """
    hints = [f"{name}: use {_URL_OPTION_SETTINGS[name]}" for name in names if name in _URL_OPTION_SETTINGS]
    unknown = [name for name in names if name not in _URL_OPTION_SETTINGS]
    if unknown:
        hints.append(f"{', '.join(unknown)}: not supported")
    raise ConfigurationError(
        f"BQREPO_URL: bqrepo reads no options from a bigquery:// URL (it builds its own client, so they "
        f"would be ignored); remove {', '.join(names)} ({'; '.join(hints)})"
    )


def validate_emulator_host(value: str) -> str:
    """Return ``value`` if it is ``host:port`` (or ``http://host:port``), else raise.

    User information is refused, and not echoed: the stand-in never needs
    credentials, and a password here would travel into every endpoint URL
    and from there into google-api-core's error texts.
    """
    endpoint = parse_endpoint(value)
    if endpoint.has_userinfo:
        raise ConfigurationError(
            f"BIGQUERY_EMULATOR_HOST must be host:port such as {display_host(value) or '127.0.0.1:9050'}; "
            "it carries a user/password, which the stand-in never needs"
        )
    if endpoint.scheme not in ("http", "https") or not endpoint.hostname or endpoint.port is None:
        raise ConfigurationError(
            f"BIGQUERY_EMULATOR_HOST={display_host(value)!r} is not host:port such as 127.0.0.1:9050"
        )
    return value


def validate_maximum_bytes_billed(value: str | int | None) -> int | None:
    """Bytes as ``BQREPO_MAXIMUM_BYTES_BILLED`` takes them: ``10737418240``, ``10GiB``, ``500 MB`` or ``none``.

    ``None`` (``none``) means no limit of bqrepo's. Anything else must be a
    whole number of at least 1 byte: BigQuery reads an absent limit as the
    project's default, so 0 could only be misread.
    """
    setting = "BQREPO_MAXIMUM_BYTES_BILLED"
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lower() == "none":
        return None
    else:
        match = _BYTES_RE.fullmatch(value) if isinstance(value, str) else None
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _BYTE_UNITS:
            raise ConfigurationError(
                f"{setting}={value!r} is not a number of bytes: give e.g. 10737418240, 10GiB, 500MB or none"
            )
        number = int(match.group(1).replace("_", "")) * _BYTE_UNITS[unit]
    if not 1 <= number < 2**63:
        raise ConfigurationError(f"{setting}={value!r}: the limit must be from 1 byte to 2**63-1 bytes, or none")
    return number


def validate_job_labels(value: str | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``BQREPO_JOB_LABELS`` (``"team=risk,env=prod"`` or a mapping) as sorted pairs, checked by BigQuery's label rules.

    Keys starting with ``bqrepo_`` are bqrepo's own and refused, as are more
    labels than BigQuery leaves beside bqrepo's three.
    """
    setting = "BQREPO_JOB_LABELS"
    pairs: dict[str, str] = {}
    if isinstance(value, Mapping):
        pairs = dict(value)
    else:
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, text = item.strip().partition("=")
            if not sep:
                raise ConfigurationError(f"{setting}: {item.strip()!r} is not KEY=VALUE (give e.g. team=risk,env=prod)")
            if key in pairs:
                raise ConfigurationError(f"{setting}: label {key!r} is given twice")
            pairs[key] = text
    return tuple(sorted(check_job_labels(pairs, setting).items()))


def check_job_labels(labels: Mapping[str, str], where: str) -> dict[str, str]:
    """``labels`` if they may join bqrepo's own on a query job, else :class:`ConfigurationError` naming ``where``."""
    allowed = MAX_LABELS - _RESERVED_LABELS
    if len(labels) > allowed:
        raise ConfigurationError(f"{where}: {len(labels)} labels; BigQuery allows {MAX_LABELS}, {allowed} beside bqrepo's own")
    for key, text in labels.items():
        problem = label_problem(key, text)
        if problem is not None:
            raise ConfigurationError(f"{where}: {problem}")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ConfigurationError(f"{where}: label key {key!r} starts with {RESERVED_LABEL_PREFIX!r}, which bqrepo's own labels use")
    return dict(labels)


@dataclass(frozen=True)
class Settings:
    """Where bqrepo's tables live and how to reach them.

    The backend is chosen explicitly, never by falling back:

    * ``url`` set: that URL (``bigquery://PROJECT/DATASET``, ``duckdb:///PATH``).
      A ``bigquery://`` URL missing its project or dataset takes them from
      ``project_id``/``dataset`` (``GCP_PROJECT_ID``/``BIGQUERY_DATASET``).
    * else ``project_id`` or ``dataset`` set: BigQuery ``project_id.dataset``.
    * else: the embedded DuckDB file ``duckdb_path``.

    A BigQuery choice that cannot name both a project and a dataset (from
    the URL, the settings or, for the project, Application Default
    Credentials) raises :class:`ConfigurationError` naming what to add.
    """

    project_id: str | None = None
    dataset: str | None = None
    location: str = "US"
    url: str | None = None
    emulator_host: str | None = None
    duckdb_path: str = DEFAULT_DUCKDB_FILE
    #: Where the tables are declared, ``"package.module:attribute"`` naming a
    #: ``sqlalchemy.MetaData``; imported by :mod:`bqrepo.metadata_loader`, not here,
    #: so that settings never import application code.
    metadata: str = DEFAULT_METADATA
    #: The bytes a BigQuery query may bill before BigQuery refuses it
    #: (``maximum_bytes_billed`` of every query job; ``None``: no limit of bqrepo's).
    maximum_bytes_billed: int | None = DEFAULT_MAXIMUM_BYTES_BILLED
    #: Labels put on every query job beside bqrepo's own (sorted pairs; a mapping is accepted and sorted).
    job_labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Normalised in place (frozen): the settings stay hashable, which _bigquery_target's cache needs.
        object.__setattr__(self, "maximum_bytes_billed", validate_maximum_bytes_billed(self.maximum_bytes_billed))
        labels = self.job_labels if isinstance(self.job_labels, Mapping) else dict(self.job_labels)
        object.__setattr__(self, "job_labels", validate_job_labels(labels))
        if self.project_id is not None:
            validate_project_id(self.project_id)
        if self.dataset is not None:
            validate_dataset_id(self.dataset)
        validate_location(self.location)
        if self.url is not None:
            validate_url(self.url)
        if self.emulator_host is not None:
            validate_emulator_host(self.emulator_host)
        if self.backend == "bigquery":
            _bigquery_target(self)  # now: a half-configured BigQuery fails here, naming the setting

    def _parsed_url(self) -> URL:
        return validate_url(self.url or "")

    @property
    def _target(self) -> tuple[str, str] | None:
        """``(project, dataset)`` on BigQuery (resolved once per value), ``None`` on DuckDB."""
        return _bigquery_target(self) if self.backend == "bigquery" else None

    def _resolve_bigquery(self) -> tuple[str, str]:
        """``(project, dataset)``: the URL's, else the settings', else (project) ADC's."""
        parsed = self._parsed_url() if self.url is not None else None
        dataset = (parsed.database if parsed else None) or self.dataset
        if not dataset:
            if parsed is not None:
                raise ConfigurationError(
                    f"BQREPO_URL (or --url) {redact_url(self.url or '')}: the URL names no dataset; use "
                    "bigquery://PROJECT/DATASET or set BIGQUERY_DATASET"
                )
            raise ConfigurationError(
                f"GCP_PROJECT_ID={self.project_id} selects BigQuery but no dataset is named: "
                "set BIGQUERY_DATASET (or unset GCP_PROJECT_ID for the embedded DuckDB default)"
            )
        project = (parsed.host if parsed else None) or self.project_id
        if not project:
            project = self._adc_project(dataset)
        return project, dataset

    def _adc_project(self, dataset: str) -> str:
        """The project Application Default Credentials name, or a ConfigurationError.

        Never consulted for the stand-in, whose project must be named: ADC
        would name a real project.
        """
        missing = (
            f"BIGQUERY_DATASET={dataset} selects BigQuery but no project is named: set GCP_PROJECT_ID"
        )
        if self.emulator_host:
            raise ConfigurationError(f"{missing} (the stand-in's project)")
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            _credentials, project = google.auth.default()
        except DefaultCredentialsError:
            project = None
        if not project:
            raise ConfigurationError(
                f"{missing}, or give Application Default Credentials a project "
                "(gcloud config set project ...)"
            )
        return validate_project_id(str(project), setting="the Application Default Credentials project")

    @property
    def backend(self) -> Backend:
        """``"bigquery"`` or ``"duckdb"``: which engine the repositories run on."""
        if self.url is not None:
            return "bigquery" if self._parsed_url().drivername == "bigquery" else "duckdb"
        if self.project_id is not None or self.dataset is not None:
            return "bigquery"
        return "duckdb"

    @property
    def sqlalchemy_url(self) -> URL:
        """The URL the engine is created from: always complete (``bigquery://P/D``, ``duckdb:///F``)."""
        if self._target is not None:
            project, dataset = self._target
            return URL.create("bigquery", host=project, database=dataset)
        if self.url is None:
            return URL.create("duckdb", database=str(Path(self.duckdb_path)))
        return self._parsed_url()

    @property
    def bigquery_project(self) -> str:
        """The BigQuery project the tables live in (raises on a DuckDB backend)."""
        return self._bigquery()[0]

    @property
    def bigquery_dataset(self) -> str:
        """The BigQuery dataset the tables live in (raises on a DuckDB backend)."""
        return self._bigquery()[1]

    def _bigquery(self) -> tuple[str, str]:
        if self._target is None:
            raise ConfigurationError(
                f"{self.describe()} is not BigQuery: set GCP_PROJECT_ID and BIGQUERY_DATASET "
                "or BQREPO_URL=bigquery://PROJECT/DATASET"
            )
        return self._target

    def describe(self) -> str:
        """A one-line, secret-free description of the backend, for logs and ``info``."""
        if self._target is not None:
            where = f"BigQuery {self._target[0]}.{self._target[1]} ({self.location})"
            if self.emulator_host:
                where += f" via emulator at {display_host(self.emulator_host)}"
            return where
        return f"DuckDB file {self.sqlalchemy_url.database}"


@functools.lru_cache(maxsize=64)
def _bigquery_target(settings: Settings) -> tuple[str, str]:
    """Cached: resolving may ask Application Default Credentials for the project."""
    return settings._resolve_bigquery()


_ENV_KEYS = {
    "project_id": "GCP_PROJECT_ID",
    "dataset": "BIGQUERY_DATASET",
    "location": "BIGQUERY_LOCATION",
    "url": "BQREPO_URL",
    "emulator_host": "BIGQUERY_EMULATOR_HOST",
    "duckdb_path": "BQREPO_DUCKDB_PATH",
    "metadata": "BQREPO_METADATA",
    "maximum_bytes_billed": "BQREPO_MAXIMUM_BYTES_BILLED",
    "job_labels": "BQREPO_JOB_LABELS",
}

# Settings that are not plain strings, parsed from their text.
_PARSERS: dict[str, Callable[[str], object]] = {
    "maximum_bytes_billed": validate_maximum_bytes_billed,
    "job_labels": validate_job_labels,
}


def _django_settings() -> Mapping[str, object]:
    """Django's settings when Django is installed *and* configured, else ``{}``.

    Imported lazily so that bqrepo never requires Django.
    """
    try:
        from django.conf import settings as django_settings
    except ImportError:
        return {}
    if not django_settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        # Outside a Django process (the CLI) a project's settings module still
        # counts when DJANGO_SETTINGS_MODULE names it.
        return {}
    try:
        return {
            key: getattr(django_settings, key)
            for key in _ENV_KEYS.values()
            if hasattr(django_settings, key)
        }
    except ImportError as exc:
        raise ConfigurationError(
            f"DJANGO_SETTINGS_MODULE={os.environ.get('DJANGO_SETTINGS_MODULE')} cannot be imported: {exc}"
        ) from None


def configured_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings given explicitly, by name (``GCP_PROJECT_ID``...): Django's, then the environment's.

    The environment wins over Django so that an operator can redirect a
    deployed app (for example to the stand-in) without editing code. Empty
    values count as unset. The Django system checks validate these one by one.
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for source in (_django_settings(), env):
        for key in _ENV_KEYS.values():
            raw = source.get(key)
            if isinstance(raw, Mapping):  # BQREPO_JOB_LABELS given as a dict in Django's settings
                raw = ",".join(f"{name}={text}" for name, text in raw.items())
            if raw not in (None, ""):
                values[key] = str(raw)
    return values


def load_settings(environ: Mapping[str, str] | None = None, *, url: str | None = None) -> Settings:
    """Build :class:`Settings` from :func:`configured_values` (Django, then the environment).

    ``url`` (the CLI's ``--url``) replaces ``BQREPO_URL`` before anything is
    resolved, so it overrides a half-configured environment too.
    """
    values = configured_values(environ)
    if url:
        values["BQREPO_URL"] = url
    given = {name: values[key] for name, key in _ENV_KEYS.items() if key in values}
    return Settings(**{name: _PARSERS[name](text) if name in _PARSERS else text for name, text in given.items()})  # type: ignore[arg-type]
