"""How results look: rich tables on a terminal, JSON with ``--json``, sparklines."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from bqrepo.json_encoding import report_json

__all__ = ["console", "err_console", "print_json", "sparkline", "table_of"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None]) -> str:
    """Unicode block sparkline; missing values are blanks, a flat series is mid-height."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    span = high - low
    out = []
    for value in values:
        if value is None:
            out.append(" ")
        elif span == 0:
            out.append(_BLOCKS[3])
        else:
            out.append(_BLOCKS[min(7, int((value - low) / span * 7 + 0.5))])
    return "".join(out)


def print_json(value: Any) -> None:
    """Results as JSON on stdout, in bqrepo's one encoding (:mod:`bqrepo.json_encoding`)."""
    sys.stdout.write(report_json(value, indent=2) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    """One value as table text."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) >= 1e6 else f"{value:,.2f}"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def table_of(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Iterable[str] = ()) -> Table:
    """A rich table; columns named in ``right`` are right-aligned (numbers)."""
    right = set(right)
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    if not table.rows:
        # An empty grid looks like a failure; say that nothing matched.
        table.caption = "(no rows)"
    return table
