"""``bqrepo recent | trending | risk-trends | series``: the repositories, from a shell."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

import typer

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.render import console, print_json, sparkline, table_of
from bqrepo.cli.state import parse_day, parse_when, state_of
from bqrepo.errors import InvalidArgumentError
from bqrepo.timeunits import earlier, utc_now

__all__ = ["DRY_RUN", "JSON", "parse_days", "register", "with_engine"]

T = TypeVar("T")

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
DRY_RUN = typer.Option(
    False,
    "--dry-run",
    help="Print the bytes BigQuery would process (a free dry run) instead of running the query; DuckDB has no estimate.",
)

MAX_DAYS = dt.timedelta.max.days
"""The longest span a ``timedelta`` holds (999,999,999 days)."""


# The library's argument names, as the options and arguments a user typed.
_OPTIONS = {
    "start": "--since",
    "since": "--since",
    "end": "--until",
    "event_type": "--event-type",
    "source_name": "--source",
    "bucket": "--bucket",
    "fill_gaps": "--fill-gaps",
    "as_of": "--as-of",
    "half_life": "--half-life",
    "limit": "--limit",
    "metric": "--metric",
    "series_id": "SERIES_IDS",
}


def with_engine(
    ctx: typer.Context,
    use: Callable[[Any], T],
    options: Mapping[str, str] = _OPTIONS,
    *,
    dry_run: bool = False,
    as_json: bool = False,
) -> T:
    """Run ``use`` on an engine; a refused argument is reported under the option the user typed (``options``).

    With ``dry_run`` the queries are priced, not run (:func:`bqrepo.cost.dry_run`):
    the estimate is printed and the command ends there, successfully.
    """
    from bqrepo.cost import dry_run as pricing
    from bqrepo.engine import create_engine

    engine = create_engine(state_of(ctx).settings())
    try:
        if not dry_run:
            return use(engine)
        with pricing() as found:
            use(engine)
        if as_json:
            print_json({**asdict(found), "total_bytes_processed": found.total_bytes_processed})
        else:
            console.print(f"Dry run: {found.describe()}; nothing was run.")
        raise typer.Exit(0)
    except InvalidArgumentError as exc:
        option = options.get(exc.argument.split("[")[0])
        if option is None:
            raise
        raise UserError(f"{option}: {str(exc).removeprefix(f'{exc.argument}: ')}") from None
    finally:
        engine.dispose()


def _range(since: str | None, until: str | None, default_days: int) -> tuple[dt.datetime, dt.datetime]:
    """``[--since, --until)``; the defaults are now and ``default_days`` before ``--until``, clipped at year 1."""
    end = parse_when(until, "--until") if until else utc_now()
    start = parse_when(since, "--since") if since else earlier(end, dt.timedelta(days=default_days))
    if start >= end:
        # Name --until only when the user gave it.
        bound = f"--until ({end:%Y-%m-%d %H:%M})" if until else f"now ({end:%Y-%m-%d %H:%M} UTC)"
        raise UserError(f"--since ({start:%Y-%m-%d %H:%M}) must be before {bound}")
    return start, end


def parse_days(option: str, days: float) -> dt.timedelta:
    """A positive, finite number of days as a timedelta (click lets nan through a range check)."""
    if not math.isfinite(days) or days <= 0 or days > MAX_DAYS:
        raise UserError(f"{option} must be a number of days above 0 and at most {MAX_DAYS:,}, not {days}")
    return dt.timedelta(days=days)


def recent(
    ctx: typer.Context,
    since: str | None = typer.Option(None, help="Start (ISO 8601, UTC if no offset). Default: 30 days before --until."),
    until: str | None = typer.Option(None, help="End, exclusive. Default: now."),
    event_type: str | None = typer.Option(None, help="Only this event type."),
    source: str | None = typer.Option(None, help="Only this source name."),
    limit: int = typer.Option(20, min=1, max=10_000, help="At most this many events."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """The newest events in a time range."""
    from bqrepo.repositories import EventRepository

    start, end = _range(since, until, 30)
    events = with_engine(
        ctx,
        lambda e: EventRepository(e).recent(start, end, event_type=event_type, source_name=source, limit=limit),
        dry_run=dry_run,
        as_json=as_json,
    )
    if as_json:
        print_json(events)
        return
    console.print(
        table_of(
            f"Recent events {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
            ["mentioned_at", "type", "source", "risk", "title"],
            ([e.mentioned_at, e.event_type, e.source_name, e.risk_score, e.title] for e in events),
            right=["risk"],
        )
    )


def trending(
    ctx: typer.Context,
    metric: str = typer.Option("mentions", help="'mentions' or 'risk' (mentions weighted by risk)."),
    limit: int = typer.Option(10, min=1, max=1_000, help="How many entities."),
    half_life: float = typer.Option(7.0, min=0.001, help="Half-life of a mention's weight, in days."),
    as_of: str | None = typer.Option(None, help="Score as of this instant. Default: now."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Entities ranked by exponentially decayed mentions (or risk)."""
    from bqrepo.repositories import EntityMentionRepository

    if metric not in ("mentions", "risk"):
        raise UserError(f"--metric must be 'mentions' or 'risk', not {metric!r}")
    half_life_span = parse_days("--half-life", half_life)
    moment = parse_when(as_of, "--as-of") if as_of else utc_now()
    entities = with_engine(
        ctx,
        lambda e: EntityMentionRepository(e).trending(
            metric=metric,  # type: ignore[arg-type]
            limit=limit,
            half_life=half_life_span,
            as_of=moment,
        ),
        dry_run=dry_run,
        as_json=as_json,
    )
    if as_json:
        print_json(entities)
        return
    console.print(
        table_of(
            f"Trending entities by {metric} (half-life {half_life:g} days, as of {moment:%Y-%m-%d %H:%M} UTC)",
            ["#", "entity", "score", "mentions"],
            ([i, t.entity_id, t.score, t.mentions] for i, t in enumerate(entities, 1)),
            right=["#", "score", "mentions"],
        )
    )


def risk_trends(
    ctx: typer.Context,
    since: str | None = typer.Option(None, help="Start. Default: 30 days before --until."),
    until: str | None = typer.Option(None, help="End, exclusive. Default: now."),
    bucket: str = typer.Option("DAY", help="'DAY', 'WEEK', 'MONTH', '6 hours', '15 minutes', ..."),
    event_type: str | None = typer.Option(None, help="Only this event type."),
    fill_gaps: bool = typer.Option(False, "--fill-gaps", help="Show empty buckets as zero-count rows."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Average and maximum risk and event count per time bucket, with a sparkline."""
    from bqrepo.repositories import EventRepository

    start, end = _range(since, until, 30)
    buckets = with_engine(
        ctx,
        lambda e: EventRepository(e).risk_trends(start, end, bucket=bucket, event_type=event_type, fill_gaps=fill_gaps),
        dry_run=dry_run,
        as_json=as_json,
    )
    if as_json:
        print_json(buckets)
        return
    console.print(
        table_of(
            f"Risk per {bucket} {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            ["bucket", "avg risk", "max risk", "events"],
            ([b.bucket_start, b.avg_risk, b.max_risk, b.event_count] for b in buckets),
            right=["avg risk", "max risk", "events"],
        )
    )
    console.print(f"avg risk  {sparkline([b.avg_risk for b in buckets])}")
    console.print(f"events    {sparkline([float(b.event_count) for b in buckets])}")


def series(
    ctx: typer.Context,
    series_ids: list[str] = typer.Argument(None, help="FRED series ids. None: the latest value of every series."),
    since: str | None = typer.Option(None, help="First date (YYYY-MM-DD). Default: all history."),
    until: str | None = typer.Option(None, help="End date, exclusive. Default: no end (the newest observation)."),
    as_json: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """FRED series: observations of the given series, or the latest value of each."""
    from bqrepo.repositories import FredRepository

    first = parse_day(since, "--since") if since else dt.date.min
    end = parse_day(until, "--until") if until else dt.date.max
    if until and first >= end:
        raise UserError(f"--since ({first}) must be before --until ({end})")
    if not series_ids:
        latest = with_engine(ctx, lambda e: FredRepository(e).latest(since=first), dry_run=dry_run, as_json=as_json)
        if as_json:
            print_json(latest)
            return
        console.print(
            table_of(
                "Latest FRED values",
                ["series", "date", "value"],
                ([v.series_id, v.date, v.value] for v in latest),
                right=["value"],
            )
        )
        return
    found = with_engine(
        ctx, lambda e: {s: FredRepository(e).series(s, first, end) for s in series_ids}, dry_run=dry_run, as_json=as_json
    )
    if as_json:
        print_json(found)
        return
    for series_id, points in found.items():
        console.print(
            table_of(series_id, ["date", "value"], ([p.date, p.value] for p in points), right=["value"])
        )
        console.print(f"{series_id}  {sparkline([p.value for p in points][-80:])}")


def register(app: typer.Typer) -> None:
    app.command()(friendly(recent))
    app.command()(friendly(trending))
    app.command("risk-trends")(friendly(risk_trends))
    app.command()(friendly(series))
