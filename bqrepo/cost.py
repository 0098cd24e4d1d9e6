"""Cost guards for every query a repository sends: a bytes limit, labels, and dry runs.

BigQuery bills a query by the bytes it scans. Every repository statement
therefore goes to BigQuery as a job that carries

* ``maximum_bytes_billed``: BigQuery refuses, before running and without
  billing, a query that would bill more. The limit is the first of: the
  per-call :func:`query_options`, the repository's ``maximum_bytes_billed``
  constructor argument, the ``BQREPO_MAXIMUM_BYTES_BILLED`` setting
  (default :data:`~bqrepo.settings.DEFAULT_MAXIMUM_BYTES_BILLED`). Over it,
  bqrepo raises :class:`~bqrepo.errors.BytesBilledLimitError`, naming
  BigQuery's estimate and the limit.
* labels: ``bqrepo_repository``, ``bqrepo_method`` and ``bqrepo_table``
  (which code spent what, in the billing export), plus the user's from
  ``BQREPO_JOB_LABELS``, the repository's ``labels`` and :func:`query_options`.

and any repository call can be priced instead of run::

    found = estimate(events.recent, start, end, event_type="protest")
    found.total_bytes_processed   # BigQuery's dry-run estimate; None on DuckDB

Why :func:`estimate` (and the :func:`dry_run` block under it) rather than a
``dry_run=True`` argument on each method: a flag that changes the return
type needs two ``@overload`` s per method and per ``Protocol`` (a dozen
methods), and every fake a service test passes would have to grow them too.
``estimate(method, *args, **kwargs)`` is typed by ``ParamSpec``, so mypy
checks the arguments against the method's own signature, works for every
method at once (a user's subclass included), and prices a method that
sends several statements, or none, as a whole. The method runs as usual
with each statement dry-run: BigQuery checks and prices it and returns no
rows, so the method returns an empty result, which :func:`estimate` drops.

DuckDB bills nothing and has no estimate: there :attr:`Estimate.available`
is False and :attr:`Estimate.total_bytes_processed` is ``None``, never 0,
and nothing is executed. What is engine-specific (the job configuration,
reading a dry run's bytes) lives in :mod:`bqrepo.backend`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    ParamSpec,
    Protocol,
    TypeVar,
)

import sqlalchemy as sa

from bqrepo.errors import (
    BytesBilledLimitError,
    ConfigurationError,
    InvalidArgumentError,
)
from bqrepo.labels import MAX_LABELS
from bqrepo.settings import (
    DEFAULT_MAXIMUM_BYTES_BILLED,
    check_job_labels,
    validate_maximum_bytes_billed,
)

if TYPE_CHECKING:
    from bqrepo.backend import Backend

__all__ = [
    "CostGuard",
    "Estimate",
    "Fetched",
    "QueryJob",
    "StatementEstimate",
    "dry_run",
    "estimate",
    "fetch",
    "guarded",
    "query_options",
    "run_statement",
]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a statement returned: its rows as plain tuples, and their column names.

    Plain tuples rather than ``sa.Row``: the embedded engine's rows come
    straight from the driver (:meth:`bqrepo.backend.DuckDBBackend.run_query`),
    and a repository turns them into its own result types anyway. Values are
    as the driver or SQLAlchemy gives them (timestamps in UTC, with whichever
    ``tzinfo``; JSON as text or parsed): the repositories convert them.
    """

    keys: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        """Each row as a dict by column name."""
        keys = self.keys
        return [dict(zip(keys, row)) for row in self.rows]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound="Guarded")


@dataclass(frozen=True)
class QueryJob:
    """What one statement's BigQuery job carries besides its SQL: built by :func:`run_statement`."""

    repository: str
    method: str
    #: ``None``: no limit of bqrepo's (the project's default applies).
    maximum_bytes_billed: int | None
    #: Every label of the job, bqrepo's own included.
    labels: Mapping[str, str]
    dry_run: bool = False


@dataclass(frozen=True)
class StatementEstimate:
    """One statement a method would send, and the bytes BigQuery would process (``None``: no estimate)."""

    repository: str
    method: str
    bytes_processed: int | None


@dataclass
class Estimate:
    """What a repository call would scan, from dry runs of each statement it would send."""

    #: The backend's title ("BigQuery", "DuckDB").
    backend: str = ""
    #: Whether the backend prices queries at all; DuckDB does not.
    available: bool = True
    statements: list[StatementEstimate] = field(default_factory=list)

    @property
    def total_bytes_processed(self) -> int | None:
        """The sum over the statements; ``None`` when the backend has no estimate (never a silent 0)."""
        if not self.available:
            return None
        return sum(item.bytes_processed or 0 for item in self.statements)

    def describe(self) -> str:
        """One line for people: the bytes and statement count, or why there is no estimate."""
        if not self.available:
            return (
                f"{self.backend or 'this backend'} gives no byte estimate (it bills nothing per query); "
                f"{len(self.statements)} statement(s) not run"
            )
        total = self.total_bytes_processed or 0
        return f"{self.backend} would process {total:,} bytes ({_human(total)}) in {len(self.statements)} statement(s)"


def _human(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


@dataclass(frozen=True)
class _Options:
    """The innermost :func:`query_options` block's, merged with the blocks around it."""

    maximum_bytes_billed: int | None
    labels: Mapping[str, str]


_estimating: ContextVar[Estimate | None] = ContextVar("bqrepo_estimating", default=None)
_options: ContextVar[_Options | None] = ContextVar("bqrepo_query_options", default=None)
_outer: ContextVar[tuple[CostGuard, str] | None] = ContextVar("bqrepo_outer_call", default=None)


@contextlib.contextmanager
def dry_run() -> Iterator[Estimate]:
    """Inside the block, repository statements are priced instead of run; the :class:`Estimate` fills up.

    Methods return empty results inside it. Prefer :func:`estimate` for one call.
    """
    found = Estimate()
    token = _estimating.set(found)
    try:
        yield found
    finally:
        _estimating.reset(token)


def estimate(method: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> Estimate:
    """BigQuery's byte estimate of ``method(*args, **kwargs)``, a repository method, without running it.

    Arguments are checked as for a real call (a bad one raises the same
    :class:`~bqrepo.errors.InvalidArgumentError`).
    """
    with dry_run() as found:
        method(*args, **kwargs)
    if not found.statements:
        # Nothing would be sent (an empty list of ids): still say whether this backend estimates at all.
        engine = getattr(getattr(method, "__self__", None), "engine", None)
        if isinstance(engine, sa.Engine):
            from bqrepo.backend import runner_of

            backend = runner_of(engine)
            found.backend = backend.title if backend is not None else engine.dialect.name
            found.available = backend is not None and backend.estimates_bytes
    return found


@contextlib.contextmanager
def query_options(
    *, maximum_bytes_billed: int | None = None, labels: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Override the bytes limit and add labels for the repository calls inside the block.

    ``maximum_bytes_billed`` replaces the repository's and the setting's
    (``None``: keep theirs); ``labels`` join theirs, winning on a shared key.
    """
    limit = None if maximum_bytes_billed is None else _limit("maximum_bytes_billed", maximum_bytes_billed)
    outer = _options.get()
    if limit is None and outer is not None:
        limit = outer.maximum_bytes_billed
    merged = {**(outer.labels if outer else {}), **_labels("labels", labels)}
    token = _options.set(_Options(limit, merged))
    try:
        yield
    finally:
        _options.reset(token)


def _limit(argument: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgumentError(argument, f"must be an int number of bytes, got {type(value).__name__}")
    try:
        checked = validate_maximum_bytes_billed(value)
    except ConfigurationError:
        raise InvalidArgumentError(argument, f"must be from 1 to 2**63-1 bytes, got {value!r}") from None
    assert checked is not None
    return checked


def _labels(argument: str, labels: Mapping[str, str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError(argument, f"must be a mapping of str to str, got {type(labels).__name__}")
    try:
        return check_job_labels(labels, argument)
    except ConfigurationError as exc:
        raise InvalidArgumentError(argument, str(exc).removeprefix(f"{argument}: ")) from None


def _label_value(text: str) -> str:
    """``text`` as a label value: lowercase, other characters as ``_``, at most 63."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text.lower())[:63]


class CostGuard:
    """A repository's own bytes limit and labels, and its name in job labels.

    ``maximum_bytes_billed=None`` takes the setting's. Checked when the
    repository is built, so a bad value fails there, naming the argument.
    """

    def __init__(
        self,
        repository: str,
        table: str | None = None,
        *,
        maximum_bytes_billed: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.repository = _label_value(repository)
        self.table = None if table is None else _label_value(table)
        self.maximum_bytes_billed = (
            None if maximum_bytes_billed is None else _limit("maximum_bytes_billed", maximum_bytes_billed)
        )
        self.labels = _labels("labels", labels)

    def job(self, backend: Backend | None, method: str, dry: bool) -> QueryJob:
        """The job for ``method``'s statement: per-call options, then this guard's, then the settings'."""
        options = _options.get()
        settings = backend.settings if backend is not None else None
        limit: int | None
        if options is not None and options.maximum_bytes_billed is not None:
            limit = options.maximum_bytes_billed
        elif self.maximum_bytes_billed is not None:
            limit = self.maximum_bytes_billed
        else:
            limit = settings.maximum_bytes_billed if settings is not None else DEFAULT_MAXIMUM_BYTES_BILLED
        user = {**dict(settings.job_labels if settings is not None else ()), **self.labels}
        if options is not None:
            user.update(options.labels)
        own = {"bqrepo_repository": self.repository, "bqrepo_method": _label_value(method)}
        if self.table is not None:
            own["bqrepo_table"] = self.table
        if len(user) + len(own) > MAX_LABELS:
            raise InvalidArgumentError(
                "labels", f"{len(user)} user labels and {len(own)} of bqrepo's exceed BigQuery's {MAX_LABELS} per job"
            )
        return QueryJob(self.repository, own["bqrepo_method"], limit, {**user, **own}, dry)


class Guarded(Protocol):
    """What :func:`guarded` needs of a repository: its :class:`CostGuard`."""

    cost: CostGuard


def guarded(method: Callable[Concatenate[R, P], T]) -> Callable[Concatenate[R, P], T]:
    """Mark a public repository method: its statements are labelled with it, whoever sends them.

    A typed repository delegates to the generic one (``EventRepository.recent``
    runs ``TimeSeriesRepository.rows``); the outermost guarded call names the
    job and sets its limit, so billing shows ``recent``, not ``rows``.
    """

    @functools.wraps(method)
    def wrapper(self: R, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if _outer.get() is not None:
            return method(self, *args, **kwargs)
        token = _outer.set((self.cost, method.__name__))
        try:
            return method(self, *args, **kwargs)
        finally:
            _outer.reset(token)

    return wrapper


def run_statement(
    engine: sa.Engine, statement: sa.Executable, params: Mapping[str, Any], guard: CostGuard, method: str
) -> Fetched:
    """The one way repositories send a statement: with its job's limit and labels, or as a dry run.

    ``guard`` and ``method`` name the job unless a :func:`guarded` call
    encloses this one. Inside :func:`dry_run` the statement is priced, not
    run, and no rows come back. A refusal over the limit is raised as
    :class:`~bqrepo.errors.BytesBilledLimitError` naming the repository method.
    """
    from bqrepo.backend import runner_of

    backend = runner_of(engine)
    outer = _outer.get()
    if outer is not None:
        guard, method = outer
    collecting = _estimating.get()
    job = guard.job(backend, method, collecting is not None)
    if collecting is not None:
        collecting.backend = backend.title if backend is not None else engine.dialect.name
        found = None
        if backend is not None and backend.estimates_bytes:
            with engine.connect() as connection:
                found = backend.dry_run(connection, statement, params, job)
        else:  # nothing to ask: not even a connection (which would create a DuckDB file)
            collecting.available = False
        collecting.statements.append(StatementEstimate(job.repository, job.method, found))
        return Fetched((), [])
    with engine.connect() as connection:
        try:
            if backend is None:
                return fetch(connection, statement, params)
            return backend.run_query(connection, statement, params, job)
        except BytesBilledLimitError as exc:
            limit = exc.limit if exc.limit is not None else job.maximum_bytes_billed
            raise BytesBilledLimitError(exc.estimate, limit, f"{job.repository}.{job.method}") from exc


def fetch(
    connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any], **options: Any
) -> Fetched:
    """Run ``statement`` through SQLAlchemy (``options``: execution options) and keep its rows as tuples."""
    result = connection.execute(statement, params, execution_options=options)
    return Fetched(tuple(result.keys()), [tuple(row) for row in result])
