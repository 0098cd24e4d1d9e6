"""The engines bqrepo runs on, one object each: every engine-specific choice lives here.

Why: which database a process talks to used to be asked of the dialect's
name in ten modules, and each answer had to agree with the others. Now the
settings build one :class:`Backend` (:func:`backend_for`), the way ibis
gives each engine one ``Backend``. It creates the engine, owns the BigQuery
client that the engine and the writers share, names tables
(:func:`bigquery_id`), picks the writer, checks the dataset, and tells
``bqrepo info`` and ``bqrepo demo`` what they need to know. Callers ask it
what it can do (:attr:`Backend.embedded`, :attr:`Backend.dataset_path`...),
never which one it is.

Code that only has an engine or a connection finds its backend with
:func:`backend_of`: :meth:`Backend.create_engine` files the backend under
the engine's dialect object, which the engine, its connections, its
``execution_options()`` copies and Alembic's migration context all share.

Building a backend connects to nothing and reads no credentials; the
BigQuery client is built on first use (at the latest by the engine).
"""

from __future__ import annotations

import abc
import functools
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, util
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import NullPool

from bqrepo.endpoint import parse_endpoint
from bqrepo.engine import (
    DUCKDB_LOCK_WAIT,
    PREPARED,
    backend_errors,
    check_emulator_reachable,
    log_job,
    prepare_own_statements,
    watch,
)
from bqrepo.errors import ConfigurationError, TransientError
from bqrepo.settings import Settings, load_settings

if TYPE_CHECKING:
    from bqrepo.cost import Fetched, QueryJob
    from bqrepo.writers.bigquery_target import BigQueryTarget
    from bqrepo.writers.factory import Method
    from bqrepo.writers.result import Writer

__all__ = [
    "Backend",
    "BigQueryBackend",
    "DuckDBBackend",
    "Inventory",
    "TableInfo",
    "backend_for",
    "backend_kind",
    "backend_of",
    "bigquery_id",
    "require_backend",
    "runner_of",
]

B = TypeVar("B", bound="Backend")

# The backend of each engine bqrepo built, by the engine's dialect object.
# Weak: a disposed and forgotten engine takes its backend (and client) along.
_backends: weakref.WeakKeyDictionary[Dialect, Backend] = weakref.WeakKeyDictionary()


def bigquery_id(project: str, dataset: str, table: str | None = None) -> str:
    """``project.dataset`` or ``project.dataset.table``, as google-cloud-bigquery's calls want them.

    The one place such an id is spelled out.
    """
    return f"{project}.{dataset}" if table is None else f"{project}.{dataset}.{table}"


@dataclass(frozen=True)
class TableInfo:
    """One table as the backend reports it (declared options on DuckDB)."""

    name: str
    exists: bool
    partitioning: str | None
    clustering: list[str]
    require_partition_filter: bool
    rows: int | None


@dataclass(frozen=True)
class Inventory:
    """What ``bqrepo info`` shows of a backend, the alembic revision aside."""

    #: Where the tables live and what to know about it, as JSON fields
    #: (project, dataset, location and pending rebuilds; or the file and a note).
    facts: dict[str, Any]
    #: Label and value lines for the terminal, beyond the backend's description.
    lines: list[tuple[str, str]]
    tables: list[TableInfo]
    #: Where the partitioning and clustering shown come from.
    options_source: str
    #: Whether there can be an ``alembic_version`` to read (not in a missing file or dataset).
    migrated: bool


class Backend(abc.ABC):
    """One engine bqrepo runs on, built from :class:`~bqrepo.settings.Settings`.

    Subclasses answer the questions below; code elsewhere asks them instead
    of comparing dialect names.
    """

    #: ``Settings.backend`` and the SQLAlchemy dialect's name.
    name: ClassVar[str]
    #: How messages name it.
    title: ClassVar[str]
    #: The data is a file on this machine: nobody else's, nothing billed.
    #: ``bqrepo demo`` fills it without asking; Django warns when production uses it.
    embedded: ClassVar[bool]
    #: Tables carry partitioning, clustering and options that migrations change through an API.
    has_table_options: ClassVar[bool]
    #: Bulk writes are load jobs, which BigQuery limits per table per day.
    load_job_quota: ClassVar[bool]
    #: Queries are billed by bytes scanned and can be priced first (a dry run), see :mod:`bqrepo.cost`.
    estimates_bytes: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        """A one-line, secret-free description, for logs and ``bqrepo info``."""
        return self.settings.describe()

    def create_engine(self, **kwargs: Any) -> Engine:
        """A new engine on this backend; it does not connect. ``kwargs`` go to SQLAlchemy.

        The engine translates its errors into bqrepo's and logs the backend
        on its first connection (:func:`bqrepo.engine.watch`), and
        :func:`backend_of` finds this backend from it.
        """
        engine = self._engine(kwargs)
        watch(engine, self.describe())
        _backends[engine.dialect] = self
        return engine

    def run_query(
        self, connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any], job: QueryJob
    ) -> Fetched:
        """Run a repository statement as ``job`` (:mod:`bqrepo.cost`) and fetch its rows.

        Here: plainly, for an engine that bills nothing per query.
        """
        from bqrepo.cost import fetch

        return fetch(connection, statement, params)

    def dry_run(
        self, connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any], job: QueryJob
    ) -> int | None:
        """The bytes ``statement`` would process, without running it; ``None``: this engine has no estimate."""
        return None

    @abc.abstractmethod
    def _engine(self, kwargs: dict[str, Any]) -> Engine:
        """The engine, with this backend's own connection arguments and listeners."""

    def writer(
        self, bind: sa.Engine | sa.Connection, method: Method = "auto", *, load_threshold: int | None = None
    ) -> Writer:
        """The writer for ``bind`` (an engine or connection of this backend); see :func:`~bqrepo.writers.writer_for`."""
        if method not in ("auto", "stream", "load"):
            raise ValueError(f"method must be 'auto', 'stream' or 'load', not {method!r}")
        return self._writer(bind, method, load_threshold)

    @abc.abstractmethod
    def _writer(self, bind: sa.Engine | sa.Connection, method: Method, load_threshold: int | None) -> Writer:
        """The writer ``method`` names on this backend."""

    @property
    @abc.abstractmethod
    def dataset_path(self) -> tuple[str, str] | None:
        """``(project, dataset)`` the tables live in; ``None`` where tables need no dataset (DuckDB)."""

    @abc.abstractmethod
    def inventory(self, tables: Sequence[sa.Table]) -> Inventory:
        """What ``bqrepo info`` shows of ``tables``: where they are and what they look like."""


class DuckDBBackend(Backend):
    """The embedded default: one DuckDB file, opened per checkout.

    The file is opened per checkout and closed on release (``NullPool``):
    DuckDB lets one process at a time hold the file, so a pooled connection
    would lock out every other process (a Celery worker next to
    ``runserver``, ``bqrepo recent`` while the app runs) for good. A
    connection that finds the file locked waits, boundedly, for the other
    process to finish its statement.
    """

    name = "duckdb"
    title = "DuckDB"
    embedded = True
    has_table_options = False
    load_job_quota = False

    @property
    def path(self) -> Path:
        """The database file."""
        return Path(self.settings.sqlalchemy_url.database or "")

    @property
    def dataset_path(self) -> None:
        return None

    def _engine(self, kwargs: dict[str, Any]) -> Engine:
        lock_wait = kwargs.pop("duckdb_lock_wait", DUCKDB_LOCK_WAIT)
        kwargs.setdefault("poolclass", NullPool)
        if kwargs["poolclass"] is NullPool:
            # The pool's rollback-on-return is for a connection that is reused;
            # this one is closed next, and closing rolls back whatever is open.
            # Without this, a checkout that began no transaction (a read, see
            # run_query) pays for a rollback DuckDB refuses with an exception.
            kwargs.setdefault("pool_reset_on_return", None)
        engine = sa.create_engine(self.settings.sqlalchemy_url, **kwargs)
        event.listen(engine, "connect", _duckdb_utc)
        event.listen(engine, "do_connect", _duckdb_connect_waiting(str(self.path), lock_wait))
        return engine

    def run_query(
        self, connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any], job: QueryJob
    ) -> Fetched:
        """Run a repository statement on the driver connection itself, outside a transaction.

        Why not ``connection.execute``: on a ~1k-row table the statement takes
        a few ms and SQLAlchemy's path around it added about half as much again:
        a BEGIN and a ROLLBACK (statements of their own for DuckDB), the
        execution context, a ``Row`` per row. A read needs no transaction of
        ours: DuckDB runs a lone statement in its own. The SQL is SQLAlchemy's,
        compiled once per dialect; values are bound per call as SQLAlchemy binds
        them (:meth:`~sqlalchemy.sql.compiler.SQLCompiler.construct_expanded_state`,
        which also expands IN lists), and errors are translated as the engine's
        are. A statement someone watches (``echo``, a ``before_cursor_execute``
        or ``after_cursor_execute`` listener) goes through SQLAlchemy instead.
        Results with many TIMESTAMPTZ values are fetched as numpy arrays
        (:func:`_columnar_timestamps`), whose values are the driver's but for
        the timestamps' ``tzinfo``, ``datetime.UTC`` instead of pytz's UTC.
        """
        from bqrepo.cost import Fetched, fetch

        engine = connection.engine
        dispatch: Any = engine.dispatch
        if engine.echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute:
            return fetch(connection, statement, params, **PREPARED)
        dialect = connection.dialect
        state = _compiled(dialect, statement).construct_expanded_state(params, escape_names=False)
        values, processors = state.parameters, state.processors
        bound = [processors[key](values[key]) if key in processors else values[key] for key in state.positiontup or ()]
        error = dialect.loaded_dbapi.Error
        with backend_errors(self.describe()):
            try:
                driver: Any = connection.connection.driver_connection
                result = driver.execute(state.statement, bound)
                description = result.description
                keys = tuple(column[0] for column in description)
                rows = None
                timestamps = _columnar_timestamps(description)
                if timestamps and _timestamps_fetched.get(state.statement, _COLUMNAR_FROM) >= _COLUMNAR_FROM:
                    rows = _columnar_rows(result.fetchnumpy())
                    if rows is None:  # a timestamp Python cannot hold: the driver's own rows
                        result = driver.execute(state.statement, bound)
                if rows is None:
                    rows = result.fetchall()
                if timestamps:
                    _timestamps_fetched[state.statement] = timestamps * len(rows)
                return Fetched(keys, rows)
            except error as exc:  # as SQLAlchemy would raise it, with the SQL; then translated
                raise sa.exc.DBAPIError.instance(state.statement, bound, exc, error, dialect=dialect) from exc

    def _writer(self, bind: sa.Engine | sa.Connection, method: Method, load_threshold: int | None) -> Writer:
        # Every method: they name BigQuery mechanisms, and code that asks for
        # "load" for a back-fill runs unchanged on the embedded default.
        from bqrepo.writers.duckdb_bulk import DuckDBWriter

        return DuckDBWriter(bind)

    def inventory(self, tables: Sequence[sa.Table]) -> Inventory:
        facts: dict[str, Any] = {"file": str(self.path)}
        source = "declared; DuckDB ignores them"
        if not self.path.exists():
            facts["note"] = "no database file yet: run `bqrepo migrate` or `bqrepo demo`"
            return Inventory(facts, [], [], source, migrated=False)
        return Inventory(facts, [], self._tables(tables), source, migrated=True)

    def _tables(self, tables: Sequence[sa.Table]) -> list[TableInfo]:
        from bqrepo.table_options import TableOptions

        engine = self.create_engine()
        try:
            with engine.connect() as connection:
                existing = set(sa.inspect(connection).get_table_names())
                out = []
                for table in tables:
                    options = TableOptions.of(table)
                    partitioning = (
                        f"{options.partition_field} by {options.partition_type}" if options.partition_field else None
                    )
                    rows = None
                    if table.name in existing:
                        rows = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    out.append(
                        TableInfo(
                            table.name,
                            table.name in existing,
                            partitioning,
                            list(options.clustering_fields),
                            options.require_partition_filter,
                            rows,
                        )
                    )
                return out
        finally:
            engine.dispose()


class BigQueryBackend(Backend):
    """A BigQuery dataset (or the local stand-in, with ``BIGQUERY_EMULATOR_HOST``).

    One ``google.cloud.bigquery.Client`` per backend (:attr:`client`), handed
    to the dialect and used by the writers and migrations for what SQL cannot
    do well: load jobs, streaming inserts, dataset and table metadata.
    """

    name = "bigquery"
    title = "BigQuery"
    embedded = False
    has_table_options = True
    load_job_quota = True
    estimates_bytes = True

    def _job_config(self, job: QueryJob) -> Any:
        """``job`` as a QueryJobConfig, which sqlalchemy-bigquery takes from the ``job_config``
        execution option. A new one per execution: the DB-API writes the parameters into it.
        The client's default config (the default dataset) is merged in by the client."""
        config = _observed_config_class()(labels=dict(job.labels), dry_run=job.dry_run)
        if job.maximum_bytes_billed is not None:
            config.maximum_bytes_billed = job.maximum_bytes_billed
        return config

    def run_query(
        self, connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any], job: QueryJob
    ) -> Fetched:
        """Run ``statement`` as a job with ``job``'s limit and labels."""
        from bqrepo.cost import fetch

        return fetch(connection, statement, params, **PREPARED, job_config=self._job_config(job))

    def dry_run(
        self, connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any], job: QueryJob
    ) -> int | None:
        """BigQuery's ``totalBytesProcessed`` for ``statement`` with these parameters: a dry run, free.

        It goes through the same DB-API path as a real run (same SQL, same
        parameters); the client hands the finished job to the config
        (:func:`_job_logging_client_class`), which is where the bytes are read.
        """
        config = self._job_config(job)
        connection.execute(statement, params, execution_options={**PREPARED, "job_config": config})
        finished = config._bqrepo_job
        if finished is None:
            raise RuntimeError("the BigQuery client did not report the dry-run job (not bqrepo's client?)")
        return int(finished.total_bytes_processed or 0)

    @property
    def project(self) -> str:
        return self.settings.bigquery_project

    @property
    def dataset(self) -> str:
        return self.settings.bigquery_dataset

    @property
    def dataset_path(self) -> tuple[str, str]:
        return self.project, self.dataset

    @property
    def dataset_id(self) -> str:
        """``project.dataset``."""
        return bigquery_id(self.project, self.dataset)

    def table_id(self, table: str | sa.Table, schema: str | None = None) -> str:
        """``project.dataset.table``; a table's ``schema`` (or ``schema``) names another dataset."""
        if isinstance(table, sa.Table):
            return bigquery_id(self.project, table.schema or schema or self.dataset, table.name)
        return bigquery_id(self.project, schema or self.dataset, table)

    @functools.cached_property
    def client(self) -> Any:
        """The ``google.cloud.bigquery.Client``, built on first use.

        With ``BIGQUERY_EMULATOR_HOST`` set it talks to that endpoint with
        anonymous credentials (the local stand-in); otherwise credentials come
        from Application Default Credentials, resolved by the client itself.
        Unqualified table names resolve in the configured dataset, as they do
        when sqlalchemy-bigquery builds its own client from the URL.
        """
        from google.cloud import bigquery

        options: dict[str, Any] = {}
        if self.settings.emulator_host:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            options = {
                "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
                "client_options": ClientOptions(api_endpoint=parse_endpoint(self.settings.emulator_host).url),
            }
        return _job_logging_client_class()(
            project=self.project,
            location=self.settings.location,
            default_query_job_config=bigquery.QueryJobConfig(default_dataset=self.dataset_id),
            **options,
        )

    @property
    def target(self) -> BigQueryTarget:
        """The client and default dataset the BigQuery writers send rows to."""
        from bqrepo.writers.bigquery_target import BigQueryTarget

        return BigQueryTarget(client=self.client, project=self.project, dataset=self.dataset)

    def _engine(self, kwargs: dict[str, Any]) -> Engine:
        # The BigQuery Storage API is off: the stand-in does not offer it, and
        # result sets here are small.
        kwargs.pop("duckdb_lock_wait", None)
        url = self.settings.sqlalchemy_url.update_query_dict({"user_supplied_client": "true"})
        kwargs.setdefault("connect_args", {}).update({"client": self.client, "prefer_bqstorage_client": False})
        kwargs.setdefault("location", self.settings.location)
        # Statements are compiled per execution, as the dialect asks, but for
        # bqrepo's own (bqrepo.engine.PREPARED): see prepare_own_statements.
        kwargs["query_cache_size"] = 0
        engine = sa.create_engine(url, **kwargs)
        prepare_own_statements(engine)
        if self.settings.emulator_host:
            event.listen(engine, "connect", lambda *_: check_emulator_reachable(self.settings), once=True)
        event.listen(engine, "connect", self._location_check())
        return engine

    def _writer(self, bind: sa.Engine | sa.Connection, method: Method, load_threshold: int | None) -> Writer:
        from bqrepo.writers.bigquery_load import BigQueryLoadWriter
        from bqrepo.writers.bigquery_stream import BigQueryStreamWriter
        from bqrepo.writers.factory import LOAD_THRESHOLD, AutoBigQueryWriter

        target = self.target
        if method == "stream":
            return BigQueryStreamWriter(target)
        if method == "load":
            return BigQueryLoadWriter(target)
        return AutoBigQueryWriter(
            BigQueryStreamWriter(target),
            BigQueryLoadWriter(target),
            LOAD_THRESHOLD if load_threshold is None else load_threshold,
        )

    def live_dataset(self) -> Any:
        """The dataset (``None`` when it does not exist yet), checked for its location.

        BigQuery runs a job in the location the client names
        (``BIGQUERY_LOCATION``), and a dataset lives in exactly one location
        that can never change. When the two differ every job fails with "Not
        found: Dataset P:D was not found in location US", which reads like a
        missing dataset: this raises one :class:`~bqrepo.errors.ConfigurationError`
        naming both locations and the setting instead. Needs only
        ``bigquery.datasets.get`` (which dataViewer and dataEditor grant).
        """
        from google.api_core.exceptions import NotFound

        location = self.settings.location
        try:
            dataset = self.client.get_dataset(self.dataset_id)
        except NotFound:
            return None
        actual = dataset.location
        if actual and actual.lower() != location.lower():
            raise ConfigurationError(
                f"BigQuery dataset {self.dataset_id} is in location {actual}, but BIGQUERY_LOCATION="
                f"{location}: every job would fail with 'Not found: Dataset "
                f"{self.project}:{self.dataset} was not found in location "
                f"{location}'. Set BIGQUERY_LOCATION={actual} (a dataset's location cannot change)."
            )
        return dataset

    def _location_check(self) -> Callable[[Any, Any], None]:
        """A ``connect`` listener: :meth:`live_dataset` on new connections until it
        passes once, then nothing (one ``datasets.get`` per engine). Until it
        passes, every connection attempt raises the error. An account that
        may not read the dataset's metadata (403) is not checked.
        """
        passed = threading.Event()

        def check(_dbapi_connection: Any, _record: Any) -> None:
            from google.api_core.exceptions import Forbidden

            if passed.is_set():
                return
            try:
                self.live_dataset()
            except Forbidden:
                # Access granted on tables only, not on the dataset: nothing to check
                # with, and no reason to refuse queries the account may run.
                pass
            passed.set()

        return check

    def inventory(self, tables: Sequence[sa.Table]) -> Inventory:
        """Each of ``tables`` as BigQuery reports it, and the unfinished change_partitioning rebuilds.

        A dataset that does not exist yet has neither tables nor rebuilds
        (``bqrepo migrate`` creates it).
        """
        from google.api_core.exceptions import NotFound

        from bqrepo.alembic_ext.rebuild import pending_rebuilds

        facts: dict[str, Any] = {"project": self.project, "dataset": self.dataset, "location": self.settings.location}
        lines = [("project", self.project), ("dataset", f"{self.dataset} ({self.settings.location})")]
        source = "as reported by BigQuery"
        check_emulator_reachable(self.settings)
        if self.live_dataset() is None:
            missing = [TableInfo(table.name, False, None, [], False, None) for table in tables]
            return Inventory(facts | {"pending_rebuilds": []}, lines, missing, source, migrated=False)
        found: list[TableInfo] = []
        for table in tables:
            try:
                live = self.client.get_table(self.table_id(table.name))
            except NotFound:
                found.append(TableInfo(table.name, False, None, [], False, None))
                continue
            partitioning = None
            if live.time_partitioning is not None:
                partitioning = f"{live.time_partitioning.field or '_PARTITIONTIME'} by {live.time_partitioning.type_}"
            found.append(
                TableInfo(
                    table.name,
                    True,
                    partitioning,
                    list(live.clustering_fields or []),
                    bool(live.require_partition_filter),
                    live.num_rows,
                )
            )
        rebuilds = [pending.describe() for pending in pending_rebuilds(self.client, self.project, self.dataset)]
        facts["pending_rebuilds"] = rebuilds
        return Inventory(facts, lines, found, source, migrated=any(t.exists for t in found))


# Settings.backend names the class; the names are also the dialects'.
_KINDS: dict[str, type[Backend]] = {kind.name: kind for kind in (DuckDBBackend, BigQueryBackend)}


def backend_for(settings: Settings | None = None) -> Backend:
    """The backend ``settings`` (default: :func:`~bqrepo.settings.load_settings`) configure.

    A new object each call, cheap, connecting to nothing: build one per
    engine (:meth:`Backend.create_engine`), and reach it from the engine
    with :func:`backend_of`.
    """
    settings = settings or load_settings()
    return _KINDS[settings.backend](settings)


def backend_of(bind: sa.Engine | sa.Connection) -> Backend:
    """The backend of an engine built by :meth:`Backend.create_engine` (or one of its connections)."""
    backend = _backends.get(bind.dialect)
    if backend is None:
        raise TypeError(
            f"this {bind.dialect.name} engine was not built by bqrepo.engine.create_engine, which "
            "gives each engine its backend (BigQuery client, table ids, writers); build it there"
        )
    return backend


def require_backend(bind: sa.Engine | sa.Connection, kind: type[B]) -> B:
    """:func:`backend_of`, refusing any backend but a ``kind``: for code that works on one only."""
    backend = backend_of(bind)
    if not isinstance(backend, kind):
        raise TypeError(f"not a {kind.title} engine or connection: {backend.name}")
    return backend


def runner_of(bind: sa.Engine | sa.Connection) -> Backend | None:
    """The backend that runs repository statements on ``bind`` (:mod:`bqrepo.cost`); ``None``: run them plainly.

    An engine bqrepo did not build has no settings to take a limit and labels
    from. That is harmless where queries are not billed (a plain DuckDB
    engine, or SQLite in a test), but a BigQuery engine would run unguarded:
    it is refused, as :func:`backend_of` refuses it.
    """
    backend = _backends.get(bind.dialect)
    if backend is None and _KINDS.get(bind.dialect.name, DuckDBBackend).estimates_bytes:
        return backend_of(bind)
    return backend


def backend_kind(dialect: Dialect) -> type[Backend] | None:
    """The kind of backend behind ``dialect``, ``None`` for one bqrepo does not run on.

    The registered backend's class when bqrepo built the engine; otherwise
    the class named like the dialect, because Alembic's offline ``--sql``
    run builds its dialect from the URL, without an engine, and its
    operations still need to know what the backend can do.
    """
    backend = _backends.get(dialect)
    return type(backend) if backend is not None else _KINDS.get(dialect.name)


@functools.cache
def _job_logging_client_class() -> type[Any]:
    """``bigquery.Client`` that logs every query job of the SQL path once, when it finishes.

    Queries go through ``query()`` rather than the ``jobs.query`` shortcut,
    because only a job reports bytes billed and cache hits (and the shortcut
    may run without a job id to log). The load writer logs its own jobs with
    :func:`~bqrepo.engine.log_job` once it has waited for them: a
    done-callback here would start a second thread polling each job.
    """
    from google.cloud import bigquery

    class JobLoggingClient(bigquery.Client):
        def query_and_wait(self, query: str, **kwargs: Any) -> Any:
            config = kwargs.get("job_config")
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
            if isinstance(config, _observed_config_class()):
                config._bqrepo_job = job
            if not job.dry_run:  # a dry run is free and has no job id: nothing to log
                log_job(job)
            return rows

    return JobLoggingClient


@functools.cache
def _observed_config_class() -> type[Any]:
    """``QueryJobConfig`` that receives its finished job (``_bqrepo_job``) from the client above.

    How a dry run's bytes reach bqrepo: the DB-API cursor keeps the job to
    itself, but passes the config it was given through to the client.
    """
    from google.cloud import bigquery

    class ObservedQueryJobConfig(bigquery.QueryJobConfig):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._bqrepo_job: Any = None

    return ObservedQueryJobConfig


# Repository statements compiled once per DuckDB dialect (run_query); bounded,
# since a user may build a repository per table or per option.
_compiled_statements: weakref.WeakKeyDictionary[Dialect, Any] = weakref.WeakKeyDictionary()


def _compiled(dialect: Dialect, statement: sa.Executable) -> Any:
    """``statement`` compiled for ``dialect``, from the cache (its compiled form depends on no value)."""
    cache = _compiled_statements.get(dialect)
    if cache is None:
        cache = _compiled_statements.setdefault(dialect, util.LRUCache(1000))
    compiled = cache.get(statement)
    if compiled is None:
        compiled = cache[statement] = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    return compiled


_TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
#: DuckDB result types whose numpy form gives back the values ``fetchall`` gives
#: (DATE, DECIMAL and HUGEINT do not: they come back as datetimes or floats).
_COLUMNAR_TYPES = frozenset({"VARCHAR", "JSON", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", _TIMESTAMPTZ})


#: Timestamps in a result from which numpy's fetch pays for its fixed cost (~140 us, against
#: ~1.5 us a timestamp saved): measured on 2 cores with duckdb 1.5 (benchmarks/results/queries_small.md).
_COLUMNAR_FROM = 32
# TIMESTAMPTZ values the last result of each SQL text held, to choose its next fetch
# (only a guess at the next result's size: either fetch gives the same values).
_timestamps_fetched: util.LRUCache[str, int] = util.LRUCache(1000)


def _columnar_timestamps(description: Sequence[Any]) -> int:
    """TIMESTAMPTZ columns of a result that may be fetched through numpy (:func:`_columnar_rows`), else 0.

    Why: the driver's ``fetchall`` makes each TIMESTAMPTZ value a datetime
    localized with pytz, about 2 us a value, more than the rest of a small
    query's Python work; its numpy form is one array per column. Only for
    results of the types above, with unique names; only once the statement's
    previous result had :data:`_COLUMNAR_FROM` timestamps (or on its first run),
    since numpy's own fixed cost is higher than a few values' localizing.
    """
    types = [str(column[1]) for column in description]
    if len({column[0] for column in description}) != len(types) or not all(kind in _COLUMNAR_TYPES for kind in types):
        return 0
    return types.count(_TIMESTAMPTZ)


# The instants a Python datetime can hold (and BigQuery's TIMESTAMP range).
_FIRST_INSTANT = "0001-01-01T00:00:00"
_LAST_INSTANT = "9999-12-31T23:59:59.999999"


def _columnar_rows(arrays: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
    """Rows from ``fetchnumpy``'s arrays, TIMESTAMPTZ as datetimes in ``datetime.UTC``; ``None`` if one cannot be.

    The arrays hold UTC instants (datetime64) and NULL as masked entries.
    A value outside 0001-01-01 to 9999-12-31 (DuckDB's ``infinity``, a
    year 10000) has no ``datetime``: the caller then fetches the driver's
    own rows instead. (``MaskedArray.tolist`` would do the masking, at
    twice the cost of the plain array's and a list of the masked places.)
    """
    import numpy

    columns = []
    for array in arrays.values():
        mask = numpy.ma.getmask(array)
        data = array if mask is numpy.ma.nomask else array.data
        masked = [] if mask is numpy.ma.nomask else numpy.flatnonzero(mask).tolist()
        if data.dtype.kind == "M":
            data = data.astype("datetime64[us]", copy=False)
            held = numpy.delete(data, masked) if masked else data
            if held.size and (held.min() < numpy.datetime64(_FIRST_INSTANT) or held.max() > numpy.datetime64(_LAST_INSTANT)):
                return None
            values = data.tolist()
            for index in masked:
                values[index] = None
            values = [value if value is None else value.replace(tzinfo=UTC) for value in values]
        else:
            values = data.tolist()
            for index in masked:
                values[index] = None
        columns.append(values)
    return list(zip(*columns))


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
