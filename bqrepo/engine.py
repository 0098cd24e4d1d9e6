"""What every bqrepo engine does, whatever its backend, and :func:`create_engine`.

Engines are built by the settings' :class:`~bqrepo.backend.Backend`
(:mod:`bqrepo.backend` holds every engine-specific choice); nothing here
runs at import time, and nothing connects before the first query. The
backend is logged once, on the first real connection, so it is never a
surprise which database a process is talking to.

Errors are translated here, in one place, for every statement an engine
runs: a missing table becomes :class:`~bqrepo.errors.NotMigratedError`
("run `bqrepo migrate`"), a failure a retry can cure becomes
:class:`~bqrepo.errors.TransientError` (chained to the driver's error).
Writers that call the BigQuery client directly use :func:`backend_errors`
and :func:`log_job`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, util
from sqlalchemy.engine import Engine

from bqrepo.endpoint import parse_endpoint
from bqrepo.errors import (
    BqrepoError,
    BytesBilledLimitError,
    NotMigratedError,
    TransientError,
    is_transient,
)
from bqrepo.redact import display_host, redact_text
from bqrepo.settings import ConfigurationError, Settings, load_settings

__all__ = [
    "DUCKDB_LEASE",
    "DUCKDB_LEASE_GAP",
    "DUCKDB_LOCK_WAIT",
    "ConnectionLease",
    "PREPARED",
    "backend_errors",
    "bigquery_client",
    "check_emulator_reachable",
    "client_of",
    "create_engine",
    "log_job",
    "prepare_own_statements",
    "watch",
]

log = logging.getLogger("bqrepo")
job_log = logging.getLogger("bqrepo.jobs")

#: Seconds a DuckDB connection waits for another process to release the file.
#: Other processes hold it for one statement at a time (``NullPool``), so a
#: wait this long means one of them keeps a connection open.
DUCKDB_LOCK_WAIT = 30.0

#: Seconds a writer may keep the DuckDB file across transactions (a
#: :class:`ConnectionLease`) before it gives the file back. Another process
#: then waits at most this long plus one statement, well within its
#: :data:`DUCKDB_LOCK_WAIT`, while the writer pays the file's open and
#: closing checkpoint about once a second instead of once a transaction.
DUCKDB_LEASE = 1.0

#: Seconds a lease leaves the file free after giving it back, before it opens
#: it again: a process waiting for the file retries every 1-37 ms
#: (``bqrepo.backend``), so this is long enough for one to get in.
DUCKDB_LEASE_GAP = 0.05


class ConnectionLease:
    """One connection kept across short transactions, given back within :data:`DUCKDB_LEASE` s of holding.

    Why: a DuckDB engine opens the file per checkout (``NullPool``) so that
    other processes get it between statements, and the close checkpoints;
    a bulk writer that checks out per batch spends more on that than on its
    inserts. A lease keeps one connection while the batches come, commits
    each (a crash loses at most the transaction in progress, as before), and
    closes the file once it has held it for ``seconds``: after the
    transaction that ran past that point, or, when idle, as soon as the
    holder calls :meth:`release` (:meth:`remaining` says when). It then
    leaves the file free for ``gap`` seconds before opening it again.

    Use it as a context manager (the file is given back at the end) from one
    thread at a time. Any engine works; only DuckDB's has a file to share.
    """

    def __init__(self, engine: Engine, seconds: float = DUCKDB_LEASE, gap: float = DUCKDB_LEASE_GAP) -> None:
        self.engine = engine
        self.seconds = seconds
        self.gap = gap
        self._connection: sa.Connection | None = None
        self._since = 0.0  # monotonic time the held connection was opened
        self._released = float("-inf")  # monotonic time the last one was closed

    def remaining(self) -> float | None:
        """Seconds left before the held file must be given back (0 when overdue); ``None`` when none is held."""
        if self._connection is None:
            return None
        return max(0.0, self._since + self.seconds - time.monotonic())

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A transaction on the leased connection, committed when the block ends, rolled back if it raises.

        A failed transaction also gives the file back (the next one opens
        it afresh); so does one that ends after the lease ran out.
        """
        if self.remaining() == 0.0:
            self.release()
        connection = self._connection or self._open()
        try:
            with connection.begin():
                yield connection
        except BaseException:
            self.release()
            raise
        if self.remaining() == 0.0:
            self.release()

    def release(self) -> None:
        """Give the file back now (nothing happens when none is held)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            finally:
                self._released = time.monotonic()

    def _open(self) -> sa.Connection:
        wait = self._released + self.gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._connection = self.engine.connect()
        self._since = time.monotonic()
        return self._connection

    def __enter__(self) -> ConnectionLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


#: Execution options for bqrepo's own statements: their compiled form is kept
#: per (statement, dialect) and reused, on every engine (see
#: :func:`prepare_own_statements` for the BigQuery dialect, which caches nothing
#: by itself). Pass as ``connection.execute(statement, params, execution_options=PREPARED)``.
PREPARED: Mapping[str, Any] = MappingProxyType({"compiled_cache": util.LRUCache(1000)})


def prepare_own_statements(engine: Engine) -> None:
    """Compile bqrepo's statements once per dialect on an engine whose dialect caches nothing.

    Why: sqlalchemy-bigquery sets ``supports_statement_cache = False``, so
    SQLAlchemy compiles every statement on every execution (0.4-0.6 ms for
    a repository query). It does so because two of its compile steps read
    bound *values*: a LIKE with a custom ESCAPE rewrites the value, and a
    ``Decimal`` fixes a NUMERIC parameter's precision. bqrepo's statements
    have neither (every value is a typed ``bindparam`` without a value, bound
    at execution), so their compiled form does not depend on values and is
    reused through :data:`PREPARED`. The engine's own cache stays off
    (``query_cache_size=0``, set by the backend): any other statement run on
    it, a user's or Alembic's, is compiled per execution as before.
    """
    if engine._compiled_cache is not None:
        raise ValueError("the engine caches every statement; build it with query_cache_size=0")
    # SQLAlchemy reads this memoized flag before it consults an execution's
    # compiled_cache; the dialect class keeps saying False.
    engine.dialect._supports_statement_cache = True


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


def check_emulator_reachable(settings: Settings) -> None:
    """Fail in seconds, with the setting named, when the stand-in is not listening.

    Without this a stopped stand-in looks like a hang: the google client
    retries a refused connection for up to 600 s before it gives up. Engines
    run it on their first connection; code that uses a backend's client
    directly calls it first. Does nothing without ``BIGQUERY_EMULATOR_HOST``.
    """
    host = settings.emulator_host
    if not host:
        return
    endpoint = parse_endpoint(host)
    address = (endpoint.hostname or "localhost", endpoint.port or (443 if endpoint.scheme == "https" else 80))
    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as exc:
        # display_host: the variable may carry user:password@, which is never echoed.
        raise ConfigurationError(
            f"cannot reach the BigQuery stand-in at BIGQUERY_EMULATOR_HOST={display_host(host)} "
            f"({exc.strerror or exc}); start it or unset the variable"
        ) from None


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
        refused = _bytes_billed(cause, where)
        if refused is not None:
            return refused
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


# BigQuery's words when a job would bill more than its maximum_bytes_billed:
# "Query exceeded limit for bytes billed: 1000. 10485760 or higher required."
_BYTES_BILLED = re.compile(r"limit for bytes billed: (\d+)\. (\d+) or higher required")


def _bytes_billed(cause: BaseException, where: str) -> BytesBilledLimitError | None:
    """:class:`BytesBilledLimitError` for BigQuery's ``bytesBilledLimitExceeded``, else ``None``.

    Checked before anything else: the client reports this refusal as a 500,
    which would otherwise read as transient.
    """
    reasons = {error.get("reason") for error in getattr(cause, "errors", None) or [] if isinstance(error, dict)}
    found = _BYTES_BILLED.search(str(cause))
    if "bytesBilledLimitExceeded" not in reasons and found is None:
        return None
    limit, estimate = (int(found.group(1)), int(found.group(2))) if found else (None, None)
    return BytesBilledLimitError(estimate, limit, where)


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


def watch(engine: Engine, description: str) -> None:
    """Give ``engine`` what every bqrepo engine has, whatever its backend.

    Its errors become bqrepo's (:class:`~bqrepo.errors.NotMigratedError`,
    :class:`~bqrepo.errors.TransientError`), and its first connection logs
    ``description`` (once per process).
    """

    def translate(context: sa.engine.ExceptionContext) -> BqrepoError | None:
        return _error_for(context.original_exception, description)

    event.listen(engine, "handle_error", translate)
    event.listen(engine, "connect", lambda *_: _announce(description), once=True)


# The three functions below hand over to bqrepo.backend, which builds on this
# module (hence the imports inside them); they keep the public names that
# code and tests import from here.


def create_engine(settings: Settings | None = None, **kwargs: Any) -> Engine:
    """An engine for ``settings`` (default: :func:`load_settings`); it does not connect.

    Built by the settings' :class:`~bqrepo.backend.Backend`, which stays
    reachable from the engine (:func:`~bqrepo.backend.backend_of`). Keyword
    arguments go to :func:`sqlalchemy.create_engine`, except
    ``duckdb_lock_wait``: the seconds a DuckDB connection waits for another
    process to release the file (default :data:`DUCKDB_LOCK_WAIT`).
    """
    from bqrepo.backend import backend_for

    return backend_for(settings or load_settings()).create_engine(**kwargs)


def bigquery_client(settings: Settings) -> Any:
    """A new ``google.cloud.bigquery.Client`` for ``settings`` (see :attr:`BigQueryBackend.client`)."""
    from bqrepo.backend import BigQueryBackend

    return BigQueryBackend(settings).client


def client_of(bind: sa.Engine | sa.Connection) -> Any:
    """The ``google.cloud.bigquery.Client`` of a BigQuery engine (or one of its connections).

    The same client the engine's connections use, built once by
    :func:`create_engine`; asking for it never connects. Writers and
    migrations use it for what SQL cannot do well: load jobs, streaming
    inserts and dataset or table metadata calls.
    """
    from bqrepo.backend import BigQueryBackend, require_backend

    return require_backend(bind, BigQueryBackend).client


_announced: set[str] = set()


def _announce(description: str) -> None:
    """Log the backend at INFO once per process, however many engines reach it.

    A command such as ``bqrepo migrate`` builds several short-lived engines
    for the same backend; one line says where the data goes.
    """
    if description not in _announced:
        _announced.add(description)
        log.info("bqrepo backend: %s", description)
