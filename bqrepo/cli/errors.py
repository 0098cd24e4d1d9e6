"""Turn user mistakes into one clear line and a non-zero exit, never a traceback.

A user mistake is anything the person at the terminal can fix: a bad
setting, file, table name or date, a database that is unreachable or not
migrated. That is exactly: bqrepo's own errors (:class:`bqrepo.errors.BqrepoError`),
the database drivers', Google's API and auth errors, alembic's
``CommandError``, and a missing or unreadable file the user named.

Anything else is a bug in bqrepo, even a ``ValueError`` or an ``OSError``:
it is shown with its traceback and a request to report it, never dressed
up as a one-line user mistake. ``--debug`` shows the traceback for user
mistakes too. Every line printed passes through
:func:`bqrepo.redact.redact_text`, so a URL's password never reaches the terminal.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
import typer
from rich.markup import escape

from bqrepo.cli.render import err_console
from bqrepo.errors import BqrepoError
from bqrepo.redact import redact_text

__all__ = ["BUG_REPORT", "UserError", "describe", "friendly"]

F = TypeVar("F", bound=Callable[..., Any])

DEBUG = {"enabled": False}


BUG_REPORT = "this is a bug in bqrepo, not a mistake of yours: please report it with the traceback above"


class UserError(BqrepoError):
    """A mistake the user can fix on the command line; the message says how."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from alembic.util import CommandError
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    return (
        BqrepoError,
        sa.exc.DBAPIError,
        google_errors.GoogleAPIError,
        auth_errors.GoogleAuthError,
        CommandError,  # alembic: an unknown revision given to `bqrepo migrate`
        # A file the user named (an ingest input, a --mapping, a --checkpoint):
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
        UnicodeDecodeError,  # an input file that is not UTF-8 text
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


def _silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null: the pipe is gone, and unflushed output has nowhere to go."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


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
            err_console.print(f"[bold red]error:[/] {escape(redact_text(describe(exc)))}", highlight=False)
            raise typer.Exit(1) from None
        except BrokenPipeError:
            # The reader went away (`bqrepo migrate --sql | head`): stop quietly,
            # like any Unix tool, and keep Python's final flush from complaining.
            _silence_stdout()
            raise typer.Exit(1) from None
        except Exception:
            if DEBUG["enabled"]:
                raise
            err_console.print(redact_text(traceback.format_exc()), highlight=False, markup=False, end="", soft_wrap=True)
            err_console.print(f"[bold red]bug:[/] {BUG_REPORT}", highlight=False, soft_wrap=True)
            raise typer.Exit(70) from None  # EX_SOFTWARE

    return wrapper  # type: ignore[return-value]
