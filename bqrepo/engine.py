"""Create the SQLAlchemy engine for the configured backend.

Nothing here runs at import time, and nothing connects before the first
query: :func:`create_engine` builds the BigQuery client once, hands it to
the dialect (``connect_args``) and keeps it for the writers
(:func:`client_of`), so no code has to open a connection to find the client.
The backend is logged once, on the first real connection, so it is never a
surprise which database a process is talking to.

Errors are translated here, in one place, for every statement an engine
runs: a missing table becomes :class:`~bqrepo.errors.NotMigratedError`
("run `bqrepo migrate`"), a failure a retry can cure becomes
:class:`~bqrepo.errors.TransientError` (chained to the driver's error).

The embedded DuckDB file is opened per checkout and closed on release
(``NullPool``): DuckDB lets one process at a time hold the file, so a
pooled connection would lock out every other process (a Celery worker next
to ``runserver``, ``bqrepo recent`` while the app runs) for good. A
connection that finds the file locked waits, boundedly, for the other
process to finish its statement.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import socket
import time
import weakref
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bqrepo.bigquery_checks import location_check
from bqrepo.errors import BqrepoError, NotMigratedError, TransientError, is_transient
from bqrepo.redact import display_host, redact_text
from bqrepo.settings import ConfigurationError, Settings, load_settings

__all__ = [
    "DUCKDB_LOCK_WAIT",
    "backend_errors",
    "bigquery_client",
    "check_emulator_reachable",
    "client_of",
    "create_engine",
    "log_job",
]

log = logging.getLogger("bqrepo")
job_log = logging.getLogger("bqrepo.jobs")

#: Seconds a DuckDB connection waits for another process to release the file.
#: Other processes hold it for one statement at a time (``NullPool``), so a
#: wait this long means one of them keeps a connection open.
DUCKDB_LOCK_WAIT = 30.0

# The client behind each BigQuery engine, for writers and metadata calls.
_clients: weakref.WeakKeyDictionary[Engine, Any] = weakref.WeakKeyDictionary()


def log_job(job: Any) -> None:
    """One INFO line (logger ``bqrepo.jobs``) per finished BigQuery job: what it cost and where it ran."""
    job_log.info(
        "BigQuery %s job %s in %s: %s bytes processed, %s bytes billed, cache hit %s",
        getattr(job, "job_type", "query"),
        job.job_id,
        job.location,
        getattr(job, "total_bytes_processed", None),
        getattr(job, "total_bytes_billed", None),
        getattr(job, "cache_hit", None),
    )


def _logging_client_class() -> type[Any]:
    """``bigquery.Client`` that logs every query job of the SQL path once, when it finishes.

    Queries go through ``query()`` rather than the ``jobs.query`` shortcut,
    because only a job reports bytes billed and cache hits (and the shortcut
    may run without a job id to log). The load writer logs its own jobs with
    :func:`log_job` once it has waited for them: a done-callback here would
    start a second thread polling each job.
    """
    from google.cloud import bigquery

    class JobLoggingClient(bigquery.Client):
        def query_and_wait(self, query: str, **kwargs: Any) -> Any:
            result_args: dict[str, Any] = {
                name: kwargs.pop(name)
                for name in ("page_size", "max_results", "wait_timeout")
                if name in kwargs
            }
            if "wait_timeout" in result_args:
                result_args["timeout"] = result_args.pop("wait_timeout")
            if "api_timeout" in kwargs:
                kwargs["timeout"] = kwargs.pop("api_timeout")
            job = self.query(query, **kwargs)
            rows = job.result(**result_args)
            log_job(job)
            return rows

    return JobLoggingClient


def bigquery_client(settings: Settings) -> Any:
    """A ``google.cloud.bigquery.Client`` for ``settings``.

    With ``BIGQUERY_EMULATOR_HOST`` set it talks to that endpoint with
    anonymous credentials (the local stand-in); otherwise credentials come
    from Application Default Credentials, resolved by the client itself.
    """
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    client_class = _logging_client_class()
    # Unqualified table names resolve in the configured dataset, as they do
    # when sqlalchemy-bigquery builds its own client from the URL.
    job_config = bigquery.QueryJobConfig(
        default_dataset=f"{settings.bigquery_project}.{settings.bigquery_dataset}"
    )
    if settings.emulator_host:
        from google.auth.credentials import AnonymousCredentials

        host = settings.emulator_host
        endpoint = host if "://" in host else f"http://{host}"
        return client_class(
            project=settings.bigquery_project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=endpoint),
            location=settings.location,
            default_query_job_config=job_config,
        )
    return client_class(
        project=settings.bigquery_project,
        location=settings.location,
        default_query_job_config=job_config,
    )


def client_of(bind: sa.Engine | sa.Connection) -> Any:
    """The ``google.cloud.bigquery.Client`` of a BigQuery engine (or one of its connections).

    The same client the engine's connections use, built once by
    :func:`create_engine`; asking for it never connects. Writers and
    migrations use it for what SQL cannot do well: load jobs, streaming
    inserts and dataset or table metadata calls.
    """
    if bind.dialect.name != "bigquery":
        raise TypeError(f"not a BigQuery engine or connection: {bind.dialect.name}")
    try:
        return _clients[bind.engine]
    except KeyError:
        raise TypeError(
            "this BigQuery engine was not built by bqrepo.engine.create_engine, which "
            "keeps its client; build it there"
        ) from None


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
        # display_host: the variable may carry user:password@, which is never echoed.
        raise ConfigurationError(
            f"cannot reach the BigQuery stand-in at BIGQUERY_EMULATOR_HOST={display_host(host)} "
            f"({exc.strerror or exc}); start it or unset the variable"
        ) from None


def _duckdb_utc(dbapi_connection: Any, _record: Any) -> None:
    """Make DuckDB's TIMESTAMPTZ arithmetic, truncation and results UTC, as BigQuery's are.

    DuckDB otherwise uses the machine's time zone for ``date_trunc`` on
    TIMESTAMPTZ and for the datetimes it returns.
    """
    dbapi_connection.execute("SET TimeZone = 'UTC'")


# DuckDB names the holder as "held in /usr/bin/python3 (PID 123)", or only
# "held in PID 0" when it cannot tell (the holder is closing the file).
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?:(?P<program>.*?) \()?PID (?P<pid>\d+)")


def _duckdb_connect_waiting(path: str, wait: float) -> Any:
    """A ``do_connect`` hook: open the DuckDB file, waiting up to ``wait`` s for its lock.

    Another process holds the file only while it runs a statement, so a
    short randomized back-off gets in; after ``wait`` seconds the error
    names the process that holds it and what to do.
    """

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = time.monotonic() + wait
        pause = 0.002
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except Exception as exc:
                if "Could not set lock" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    holder = _LOCK_HOLDER.search(str(exc))
                    who = f"PID {holder['pid']}, {holder['program'] or 'program unknown'}" if holder else "unknown"
                    raise TransientError(
                        f"the DuckDB file {path} is held by another process "
                        f"({who}) for more than {wait:g} s: "
                        "stop that process or make it close its connection; for several "
                        "long-running processes use BigQuery (GCP_PROJECT_ID and BIGQUERY_DATASET)"
                    ) from exc
                time.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 0.025)

    return connect


def _error_for(exc: BaseException, where: str) -> BqrepoError | None:
    """bqrepo's error for a driver or google-api-core failure, or ``None`` to let it pass.

    Looks through the chain (``DBAPIError.orig``, google's DB-API wrapping
    the client's exception in ``args[0]``, ``__cause__``) for the cause.
    """
    seen: list[BaseException] = []
    pending: list[Any] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        if isinstance(item, BqrepoError):
            return None
        pending += [getattr(item, "orig", None), item.__cause__, *item.args[:1]]
    for cause in seen:
        # redacted: google-api-core quotes the request URL, and a URL may carry credentials
        text = redact_text(str(cause).splitlines()[0]) if str(cause) else type(cause).__name__
        missing = re.search(r"Table with name (\w+) does not exist|Not found: Table ([\w:.-]+)", text)
        if missing:
            table = missing.group(1) or missing.group(2)
            return NotMigratedError(f"table {table} does not exist in {where}: run `bqrepo migrate`")
        if "Not found: Dataset" in text:
            return NotMigratedError(
                f"{text.split(';')[0]} ({where}): run `bqrepo migrate`, which creates it "
                "(if it exists, BIGQUERY_LOCATION must name its location)"
            )
        if not isinstance(cause, sa.exc.SQLAlchemyError) and is_transient(cause):
            return TransientError(f"{where}: {text} (transient: retry later)")
    return None


@contextlib.contextmanager
def backend_errors(where: str) -> Iterator[None]:
    """Raise bqrepo's errors for what the backend's client raises inside the block.

    Engines do this for every statement; writers that call the BigQuery
    client directly wrap their calls in this.
    """
    try:
        yield
    except Exception as exc:
        translated = _error_for(exc, where)
        if translated is None:
            raise
        raise translated from exc


def create_engine(settings: Settings | None = None, **kwargs: Any) -> Engine:
    """An engine for ``settings`` (default: :func:`load_settings`); it does not connect.

    BigQuery engines get a client built by :func:`bigquery_client`, so the
    emulator and real BigQuery share one code path; the BigQuery Storage API
    is disabled because the stand-in does not offer it and result sets here
    are small. DuckDB engines open the file per checkout (see the module
    docstring); ``duckdb_lock_wait`` bounds the wait for another process.
    """
    settings = settings or load_settings()
    url = settings.sqlalchemy_url
    lock_wait = kwargs.pop("duckdb_lock_wait", DUCKDB_LOCK_WAIT)
    client = None
    if settings.backend == "bigquery":
        client = bigquery_client(settings)
        url = url.update_query_dict({"user_supplied_client": "true"})
        connect_args = {"client": client, "prefer_bqstorage_client": False}
        kwargs.setdefault("connect_args", {}).update(connect_args)
        kwargs.setdefault("location", settings.location)
    else:
        kwargs.setdefault("poolclass", NullPool)
    engine = sa.create_engine(url, **kwargs)
    description = settings.describe()
    if client is not None:
        _clients[engine] = client
        if settings.emulator_host:
            event.listen(engine, "connect", lambda *_: check_emulator_reachable(settings), once=True)
        event.listen(engine, "connect", location_check(settings, client))
    else:
        event.listen(engine, "connect", _duckdb_utc)
        event.listen(engine, "do_connect", _duckdb_connect_waiting(str(url.database), lock_wait))

    def translate(context: sa.engine.ExceptionContext) -> BqrepoError | None:
        return _error_for(context.original_exception, description)

    event.listen(engine, "handle_error", translate)
    event.listen(engine, "connect", lambda *_: _announce(description), once=True)
    return engine


_announced: set[str] = set()


def _announce(description: str) -> None:
    """Log the backend at INFO once per process, however many engines reach it.

    A command such as ``bqrepo migrate`` builds several short-lived engines
    for the same backend; one line says where the data goes.
    """
    if description not in _announced:
        _announced.add(description)
        log.info("bqrepo backend: %s", description)
