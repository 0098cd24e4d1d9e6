"""Turn user mistakes into one clear line and a non-zero exit, never a traceback.

A user mistake is anything the person at the terminal can fix: a bad
setting, file, table name or date, a database that is unreachable or not
migrated. Programming errors still raise with their traceback (and
``--debug`` shows the traceback for user mistakes too).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
import typer
from rich.markup import escape

from bqrepo.cli.render import err_console

__all__ = ["UserError", "friendly"]

F = TypeVar("F", bound=Callable[..., Any])

DEBUG = {"enabled": False}


class UserError(Exception):
    """A mistake the user can fix; the message says how."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from alembic.util import CommandError
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    from bqrepo.backfill import SourceError
    from bqrepo.errors import BqrepoError
    from bqrepo.rows import RowValidationError
    from bqrepo.settings import ConfigurationError

    return (
        UserError,
        BqrepoError,  # TransientError included: its message says when and how to run again
        ConfigurationError,
        SourceError,
        RowValidationError,
        OSError,
        ValueError,
        sa.exc.DBAPIError,
        sa.exc.ArgumentError,
        google_errors.GoogleAPIError,
        auth_errors.GoogleAuthError,
        CommandError,  # alembic: an unknown revision given to `bqrepo migrate`
    )


def describe(exc: BaseException) -> str:
    """One or two lines saying what went wrong and, when we know, what to do."""
    if isinstance(exc, sa.exc.DBAPIError):
        message = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        lowered = message.lower()
        if "does not exist" in lowered or "not found: table" in lowered:
            return f"{message}\nhint: run `bqrepo migrate` first"
        return message
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    try:
        from google.auth import exceptions as auth_errors

        if isinstance(exc, auth_errors.DefaultCredentialsError):
            return (
                "no Google credentials found: run `gcloud auth application-default login`, "
                "or set BIGQUERY_EMULATOR_HOST for the local stand-in"
            )
    except ImportError:  # pragma: no cover - google-auth is a dependency
        pass
    text = str(exc).strip()
    if hasattr(exc, "message") and not text:
        text = str(exc.message)
    return text or type(exc).__name__


def friendly(command: F) -> F:
    """Decorate a command: user mistakes become ``error: ...`` and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except _user_errors() as exc:
            if DEBUG["enabled"]:
                raise
            err_console.print(f"[bold red]error:[/] {escape(describe(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
