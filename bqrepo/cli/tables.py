"""``bqrepo table rows | buckets | latest | series | ranking TABLE``: any declared table, from a shell.

The generic repository (:class:`~bqrepo.repositories.timeseries.TimeSeriesRepository`)
behind one command group, so a table a team declares in its own package
(``--metadata`` or ``BQREPO_METADATA``) is queried the way the shipped
tables are. Times are dates (``YYYY-MM-DD``) on a table whose time column is
a DATE, instants (ISO 8601, UTC without an offset) otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import typer

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.queries import DRY_RUN, JSON, parse_days, with_engine
from bqrepo.cli.render import console, print_json, table_of
from bqrepo.cli.state import parse_day, parse_when, state_of
from bqrepo.timeunits import utc_now

__all__ = ["register"]

# The generic repository's argument names, as the options a user typed.
_OPTIONS = {
    "start": "--since",
    "end": "--until",
    "since": "--since",
    "where": "--where",
    "series": "--series",
    "key": "--key",
    "bucket": "--bucket",
    "value": "--value",
    "aggregates": "--aggregate",
    "fill_gaps": "--fill-gaps",
    "columns": "--column",
    "weight": "--weight",
    "half_life": "--half-life",
    "as_of": "--as-of",
    "limit": "--limit",
}

TABLE = typer.Argument(..., help="A declared table (see `bqrepo info`; yours with --metadata).")
SINCE = typer.Option(None, "--since", help="Start, inclusive (YYYY-MM-DD, or ISO 8601 on a TIMESTAMP table).")
UNTIL = typer.Option(None, "--until", help="End, exclusive. Default: now (today on a DATE table).")
WHERE = typer.Option([], "--where", help="COLUMN=VALUE on a STRING column; repeatable.")

group = typer.Typer(
    name="table",
    help="Query any declared table: rows, buckets, latest, series, ranking.",
    no_args_is_help=True,
)


def _pairs(option: str, items: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=2"]`` as ``{"a": "1", "b": "2"}``; the column names are checked by the repository."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UserError(f"{option}: {item!r} is not COLUMN=VALUE")
        pairs[name] = value
    return pairs


def _is_date(table: sa.Table) -> bool:
    from bqrepo.timeseries import declaration

    return declaration(table).is_date


def _moment(table: sa.Table, text: str, option: str) -> dt.date | dt.datetime:
    return parse_day(text, option) if _is_date(table) else parse_when(text, option)


def _window(table: sa.Table, since: str | None, until: str | None, days: int) -> tuple[Any, Any]:
    """``[--since, --until)``; defaults: now (today) and ``days`` before it."""
    if _is_date(table):
        end_day = parse_day(until, "--until") if until else utc_now().date()
        start_day = parse_day(since, "--since") if since else end_day - dt.timedelta(days=days)
        if start_day >= end_day:
            raise UserError(f"--since ({start_day}) must be before --until ({end_day})")
        return start_day, end_day
    end = parse_when(until, "--until") if until else utc_now()
    start = parse_when(since, "--since") if since else end - dt.timedelta(days=days)
    if start >= end:
        raise UserError(f"--since ({start:%Y-%m-%d %H:%M}) must be before --until ({end:%Y-%m-%d %H:%M})")
    return start, end


def _repository(ctx: typer.Context, engine: Any, name: str) -> Any:
    from bqrepo.repositories.timeseries import TimeSeriesRepository

    return TimeSeriesRepository(engine, state_of(ctx).table(name))


def _print_dicts(title: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    columns = list(rows[0]) if rows else []
    console.print(table_of(title, columns, ([row[c] for c in columns] for row in rows)))


@group.command("rows")
@friendly
def rows_command(
    ctx: typer.Context,
    table: str = TABLE,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    where: list[str] = WHERE,
    limit: int = typer.Option(20, min=1, max=100_000, help="At most this many rows."),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="Oldest first (default: newest first)."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """TABLE's rows in a time range (the newest version of each id)."""
    target = state_of(ctx).table(table)
    start, end = _window(target, since, until, 30)
    filters = _pairs("--where", where)
    found = with_engine(
        ctx,
        lambda e: _repository(ctx, e, table).rows(
            start, end, where=filters, limit=limit, newest_first=not oldest_first
        ),
        _OPTIONS,
        dry_run=dry_run,
        as_json=as_json,
    )
    _print_dicts(f"{table} {start} to {end}", found, as_json)


@group.command("buckets")
@friendly
def buckets_command(
    ctx: typer.Context,
    table: str = TABLE,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    bucket: str = typer.Option("DAY", help="'DAY', 'WEEK', 'MONTH', 'QUARTER', 'YEAR', '6 hours', ..."),
    value: str | None = typer.Option(None, help="The numeric column to aggregate. None: counts only."),
    aggregate: list[str] = typer.Option([], "--aggregate", help="avg, max, min, sum, count; repeatable. Default: all."),
    where: list[str] = WHERE,
    fill_gaps: bool = typer.Option(False, "--fill-gaps", help="Show empty buckets too."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Aggregates of a column of TABLE per time bucket."""
    target = state_of(ctx).table(table)
    start, end = _window(target, since, until, 365 if _is_date(target) else 30)
    filters = _pairs("--where", where)
    chosen: tuple[str, ...] = tuple(aggregate) or (("avg", "max", "min", "sum", "count") if value else ("count",))
    found = with_engine(
        ctx,
        lambda e: _repository(ctx, e, table).buckets(
            start, end, bucket, value=value, aggregates=chosen, where=filters, fill_gaps=fill_gaps
        ),
        _OPTIONS,
        dry_run=dry_run,
        as_json=as_json,
    )
    if as_json:
        print_json(found)
        return
    console.print(
        table_of(
            f"{table}: {value or 'rows'} per {bucket}, {start} to {end}",
            ["bucket", *chosen],
            ([b.bucket_start, *(getattr(b, name) for name in chosen)] for b in found),
            right=chosen,
        )
    )


@group.command("latest")
@friendly
def latest_command(
    ctx: typer.Context,
    table: str = TABLE,
    since: str | None = typer.Option(None, "--since", help="Only observations from this time on. Default: all history."),
    series: list[str] = typer.Option([], "--series", help="COLUMN=VALUE of a series column; repeatable."),
    column: list[str] = typer.Option([], "--column", help="Columns to show; repeatable. Default: all values."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """The newest observation of each series of TABLE."""
    target = state_of(ctx).table(table)
    first = _moment(target, since, "--since") if since else None
    selected: dict[str, list[str]] = {}
    for item in series:
        name, _, value = item.partition("=")
        if not name or "=" not in item:
            raise UserError(f"--series: {item!r} is not COLUMN=VALUE")
        selected.setdefault(name, []).append(value)
    found = with_engine(
        ctx,
        lambda e: _repository(ctx, e, table).latest(
            since=first, series=selected or None, columns=column or None
        ),
        _OPTIONS,
        dry_run=dry_run,
        as_json=as_json,
    )
    _print_dicts(f"Latest {table}", found, as_json)


@group.command("series")
@friendly
def series_command(
    ctx: typer.Context,
    table: str = TABLE,
    key: list[str] = typer.Option([], "--key", help="COLUMN=VALUE for each series column; repeatable."),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    column: list[str] = typer.Option([], "--column", help="Columns to show; repeatable. Default: all values."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """One series of TABLE, oldest first."""
    target = state_of(ctx).table(table)
    start, end = _window(target, since, until, 3650 if _is_date(target) else 30)
    found = with_engine(
        ctx,
        lambda e: _repository(ctx, e, table).series(_pairs("--key", key), start, end, columns=column or None),
        _OPTIONS,
        dry_run=dry_run,
        as_json=as_json,
    )
    _print_dicts(f"{table} {', '.join(key)}", found, as_json)


@group.command("ranking")
@friendly
def ranking_command(
    ctx: typer.Context,
    table: str = TABLE,
    key: str = typer.Option(..., "--key", help="The column whose values are ranked."),
    weight: str | None = typer.Option(None, help="A numeric column each row's decayed weight is multiplied by."),
    half_life: float = typer.Option(7.0, min=0.001, help="Half-life of a row's weight, in days."),
    as_of: str | None = typer.Option(None, help="Score as of this instant. Default: now."),
    limit: int = typer.Option(10, min=1, max=10_000, help="How many values."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """TABLE's values of --key ranked by exponentially decayed row count (or --weight)."""
    state_of(ctx).table(table)
    span = parse_days("--half-life", half_life)
    moment = parse_when(as_of, "--as-of") if as_of else utc_now()
    found = with_engine(
        ctx,
        lambda e: _repository(ctx, e, table).ranking(
            key, weight=weight, half_life=span, as_of=moment, limit=limit
        ),
        _OPTIONS,
        dry_run=dry_run,
        as_json=as_json,
    )
    if as_json:
        print_json(found)
        return
    console.print(
        table_of(
            f"{table}: {key} by decayed {weight or 'rows'} (half-life {half_life:g} days)",
            ["#", key, "score", "rows"],
            ([i, r.value, r.score, r.count] for i, r in enumerate(found, 1)),
            right=["#", "score", "rows"],
        )
    )


def register(app: typer.Typer) -> None:
    app.add_typer(group)
