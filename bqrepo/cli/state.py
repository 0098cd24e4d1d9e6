"""What every command shares: the settings (global ``--url``, ``--metadata``) and argument parsing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import sqlalchemy as sa
import typer

from bqrepo.cli.errors import UserError
from bqrepo.settings import Settings, load_settings
from bqrepo.timeunits import floor, utc_now

__all__ = ["State", "parse_day", "parse_when", "state_of"]


@dataclass
class State:
    """Global options; settings are resolved on first use so ``--help`` never fails."""

    url: str | None = None
    metadata: str | None = None
    _settings: Settings | None = None
    _tables: dict[str, sa.Table] | None = None

    def settings(self) -> Settings:
        """``load_settings()`` (Django, then the environment), with ``--url`` on top."""
        if self._settings is None:
            self._settings = load_settings(url=self.url)
        return self._settings

    def metadata_location(self) -> str:
        """``--metadata``, else ``BQREPO_METADATA``, else bqrepo's own tables.

        Read without the backend settings: naming tables must not need a database.
        """
        from bqrepo.metadata_loader import configured_location

        return configured_location(self.metadata)

    def tables(self) -> dict[str, sa.Table]:
        """The declared tables the commands serve, by name: those of :meth:`metadata_location`.

        The working directory is searched first, so ``--metadata myapp.schema:metadata``
        works from the project directory with a console script.
        """
        if self._tables is None:
            from bqrepo.metadata_loader import load_time_series

            source = "--metadata" if self.metadata else "BQREPO_METADATA"
            found = load_time_series(self.metadata_location(), source=source, search_path=Path.cwd())
            self._tables = {table.name: table for table in found}
        return self._tables

    def table(self, name: str) -> sa.Table:
        """The declared table ``name``, or a UserError listing the tables there are."""
        tables = self.tables()
        if name not in tables:
            raise UserError(
                f"no table {name!r} in {self.metadata_location()}; tables are {', '.join(tables)}"
            )
        return tables[name]


def state_of(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def parse_when(text: str, option: str) -> dt.datetime:
    """An instant from ISO 8601 (date or datetime), ``now`` or ``today``.

    Without an offset the value is taken as UTC: on a command line that is
    the least surprising reading (the library itself refuses naive values).
    """
    value = text.strip().lower()
    if value == "now":
        return utc_now()
    if value == "today":
        return floor(utc_now(), "DAY")
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        _refuse(option, text, exc, "a date or time; use ISO 8601 such as 2024-03-01 or 2024-03-01T12:00:00+00:00, or now/today")
    try:
        return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00
        raise UserError(f"{option}: {text!r} is outside the supported range, 0001-01-01 to 9999-12-31 UTC") from None


def _refuse(option: str, text: str, exc: ValueError, expected: str) -> NoReturn:
    """Say whether ``text`` has the wrong format or names a day that does not exist (2026-02-30)."""
    if str(exc).startswith("Invalid isoformat string"):
        raise UserError(f"{option}: {text!r} is not {expected}") from None
    raise UserError(f"{option}: {text!r} is not a valid date: {exc}") from None


def parse_day(text: str, option: str) -> dt.date:
    """A calendar date from ISO 8601 (``2024-03-01``) or ``today``."""
    if text.strip().lower() == "today":
        return utc_now().date()
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        _refuse(option, text, exc, "a date; use YYYY-MM-DD")
