"""Create the SQLAlchemy engine for the configured backend.

Nothing here runs at import time. :func:`create_engine` builds an engine
lazily (SQLAlchemy engines do not connect until first use) and logs the
backend once, on the first real connection, so it is never a surprise which
database a process is talking to.
"""

from __future__ import annotations

import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bqrepo.bigquery_checks import location_check
from bqrepo.settings import ConfigurationError, Settings, load_settings

__all__ = ["bigquery_client", "check_emulator_reachable", "client_of", "create_engine"]

log = logging.getLogger("bqrepo")


def bigquery_client(settings: Settings) -> Any:
    """A ``google.cloud.bigquery.Client`` for ``settings``.

    With ``BIGQUERY_EMULATOR_HOST`` set it talks to that endpoint with
    anonymous credentials (the local stand-in); otherwise credentials come
    from Application Default Credentials, resolved by the client itself.
    """
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    # Unqualified table names resolve in the configured dataset, as they do
    # when sqlalchemy-bigquery builds its own client from the URL.
    job_config = bigquery.QueryJobConfig(
        default_dataset=f"{settings.bigquery_project}.{settings.bigquery_dataset}"
    )
    if settings.emulator_host:
        from google.auth.credentials import AnonymousCredentials

        host = settings.emulator_host
        endpoint = host if "://" in host else f"http://{host}"
        return bigquery.Client(
            project=settings.bigquery_project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
            location=settings.location,
            default_query_job_config=job_config,
        )
    return bigquery.Client(
        project=settings.bigquery_project,
        location=settings.location,
        default_query_job_config=job_config,
    )


def client_of(connection: sa.engine.Connection) -> Any:
    """The ``google.cloud.bigquery.Client`` behind a BigQuery SQLAlchemy connection.

    Writers and migrations use it for what SQL cannot do well: load jobs,
    streaming inserts and dataset or table metadata calls.
    """
    if connection.dialect.name != "bigquery":
        raise TypeError(f"not a BigQuery connection: {connection.dialect.name}")
    return connection.connection.driver_connection._client


def check_emulator_reachable(settings: Settings) -> None:
    """Fail in seconds, with the setting named, when the stand-in is not listening.

    Without this a stopped stand-in looks like a hang: the google client
    retries a refused connection for up to 600 s before it gives up. Engines
    run it on their first connection; code that uses :func:`bigquery_client`
    directly calls it first. Does nothing without ``BIGQUERY_EMULATOR_HOST``.
    """
    host = settings.emulator_host
    if not host:
        return
    parts = urlsplit(host if "://" in host else f"http://{host}")
    address = (parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 80))
    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot reach the BigQuery stand-in at BIGQUERY_EMULATOR_HOST={host} "
            f"({exc.strerror or exc}); start it or unset the variable"
        ) from None


def _duckdb_utc(dbapi_connection: Any, _record: Any) -> None:
    """Make DuckDB's TIMESTAMPTZ arithmetic, truncation and results UTC, as BigQuery's are.

    DuckDB otherwise uses the machine's time zone for ``date_trunc`` on
    TIMESTAMPTZ and for the datetimes it returns.
    """
    dbapi_connection.execute("SET TimeZone = 'UTC'")


def create_engine(settings: Settings | None = None, **kwargs: Any) -> Engine:
    """An engine for ``settings`` (default: :func:`load_settings`).

    BigQuery engines get a client built by :func:`bigquery_client`, so the
    emulator and real BigQuery share one code path; the BigQuery Storage API
    is disabled because the stand-in does not offer it and result sets here
    are small.
    """
    settings = settings or load_settings()
    url = settings.sqlalchemy_url
    if settings.backend == "bigquery":
        client = bigquery_client(settings)
        url = url.update_query_dict({"user_supplied_client": "true"})
        connect_args = {"client": client, "prefer_bqstorage_client": False}
        kwargs.setdefault("connect_args", {}).update(connect_args)
        kwargs.setdefault("location", settings.location)
    engine = sa.create_engine(url, **kwargs)
    if settings.backend == "duckdb":
        event.listen(engine, "connect", _duckdb_utc)
    elif settings.emulator_host:
        event.listen(engine, "connect", lambda *_: check_emulator_reachable(settings), once=True)
    if settings.backend == "bigquery":
        event.listen(engine, "connect", location_check(settings))
    description = settings.describe()
    event.listen(
        engine,
        "connect",
        lambda *_: log.info("bqrepo backend: %s", description),
        once=True,
    )
    return engine
