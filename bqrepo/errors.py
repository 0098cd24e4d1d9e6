"""bqrepo's one exception hierarchy.

Why one root: a caller (a Celery task, a Django view, the CLI) must be able
to tell "bqrepo refused this, and said why" from "something is broken", the
way ``sqlalchemy.exc.SQLAlchemyError`` lets SQLAlchemy's users do. Every
error bqrepo raises on purpose derives from :class:`BqrepoError`; anything
else escaping bqrepo is a bug.

The second axis is *can it succeed if tried again*. :class:`TransientError`
marks failures of the infrastructure (a 5xx, a reset connection, a job that
BigQuery failed with ``backendError`` or ``rateLimitExceeded``, a DuckDB file
locked by another process for too long): retrying the same call later can
succeed, and writes are idempotent, so retrying is safe. Use it in Celery's
``autoretry_for``. :func:`is_transient` answers the same question for an
exception that did not come from bqrepo (a raw google-api-core error).

Classes that also derive from ``ValueError`` keep working for callers
written against the first release, which raised plain ``ValueError``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BqrepoError",
    "BytesBilledLimitError",
    "ConfigurationError",
    "InvalidArgumentError",
    "NotMigratedError",
    "PERMANENT_REASONS",
    "SchemaError",
    "TRANSIENT_REASONS",
    "TransientError",
    "is_transient",
]

#: BigQuery error reasons (``errors[].reason`` of a response, a job or a
#: streamed row) that say nothing about the request or the rows: the same
#: call can succeed later. ``stopped``: a streamed row not stored because
#: another row of its request failed. One list for the streaming writer, the
#: load writer and :func:`is_transient`. ``quotaExceeded`` is not here: it
#: passes too, but only after 10+ minutes, so callers treat it on its own.
TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "badGateway", "stopped", "timeout"}
)


class BqrepoError(Exception):
    """Root of every error bqrepo raises on purpose."""


class ConfigurationError(BqrepoError, ValueError):
    """A setting is missing, malformed or inconsistent. The message names the setting."""


class SchemaError(BqrepoError, ValueError):
    """A table declaration's BigQuery options are inconsistent. Names table and column."""


class InvalidArgumentError(BqrepoError, ValueError):
    """A public argument is out of range or of the wrong kind.

    ``argument`` names the parameter, and the message says what is accepted.
    Raised before anything reaches a database, so nothing has changed.
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(f"{argument}: {message}")


class BackendError(BqrepoError):
    """The database refused or failed an operation; the message says which and why."""


class NotMigratedError(BackendError):
    """A table bqrepo needs does not exist yet: run ``bqrepo migrate``."""


class BytesBilledLimitError(BackendError):
    """BigQuery refused a query that would bill more bytes than its ``maximum_bytes_billed``.

    Nothing ran and nothing was billed. ``estimate`` is what BigQuery said
    the query needs (its "N or higher required", bytes billed, so rounded
    up to at least 10 MiB), ``limit`` the limit the job carried; either is
    ``None`` when BigQuery's message did not say. Retrying cannot help:
    raise the limit (``BQREPO_MAXIMUM_BYTES_BILLED``, the repository's
    ``maximum_bytes_billed`` or :func:`bqrepo.cost.query_options`) or
    narrow the query, after pricing it with :func:`bqrepo.cost.estimate`.
    """

    def __init__(self, estimate: int | None, limit: int | None, where: str) -> None:
        self.estimate = estimate
        self.limit = limit
        self.where = where
        needed = f"{estimate:,} bytes" if estimate is not None else "more bytes (BigQuery did not say how many)"
        cap = f"{limit:,} bytes" if limit is not None else "the job's limit"
        super().__init__(
            f"{where}: BigQuery refused the query, which needs {needed} billed, over its maximum_bytes_billed "
            f"of {cap}; nothing ran or was billed. Raise BQREPO_MAXIMUM_BYTES_BILLED (or the repository's "
            "maximum_bytes_billed), or narrow the query; bqrepo.cost.estimate prices it without running"
        )


#: BigQuery error reasons that say the request itself is refused: retrying the
#: same call fails the same way, whatever HTTP status the client maps them to
#: (google-cloud-bigquery reports ``bytesBilledLimitExceeded`` as a 500).
PERMANENT_REASONS = frozenset({"bytesBilledLimitExceeded"})


class TransientError(BackendError):
    """A failure that retrying the same call later can cure (writes are idempotent)."""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a failure that a retry can cure.

    bqrepo's own :class:`TransientError`, plus what google-api-core treats as
    transient (429, 500, 502, 503, 504, connection errors), plus a
    ``google.api_core.exceptions.RetryError`` (the client gave up retrying a
    transient failure).
    """
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, BytesBilledLimitError) or _reasons(exc) & PERMANENT_REASONS:
        return False
    from google.api_core import exceptions as google_errors
    from google.api_core.retry import if_transient_error

    if isinstance(exc, google_errors.RetryError):
        return True
    if isinstance(exc, google_errors.Forbidden):
        # 403 rateLimitExceeded is BigQuery's way of saying "slow down".
        return bool(_reasons(exc) & TRANSIENT_REASONS)
    # The predicate matches Exception subclasses only; KeyboardInterrupt and co. are never transient.
    return isinstance(exc, Exception) and bool(if_transient_error(exc))


def _reasons(exc: BaseException) -> set[str]:
    """The ``reason`` of each of a google-api-core error's ``errors`` (empty for other exceptions)."""
    errors = getattr(exc, "errors", None) or []
    return {str(error.get("reason")) for error in errors if isinstance(error, dict)}
