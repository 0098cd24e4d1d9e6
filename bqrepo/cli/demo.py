"""``bqrepo demo``: migrate, load a realistic sample, and show what the queries say.

With nothing configured it runs on the embedded DuckDB file in the working
directory. Running it again does not load the sample twice: when events
already exist in the demo window, loading is skipped and the queries run on
what is there.
"""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa
import typer

from bqrepo.cli.errors import UserError, friendly
from bqrepo.cli.render import console, sparkline, table_of
from bqrepo.cli.state import state_of
from bqrepo.timeunits import floor, utc_now

__all__ = ["register"]

DAYS = 120
# one character per day; 60 fit an 80-column terminal with the labels
SPARK_DAYS = 60


def demo(
    ctx: typer.Context,
    days: int = typer.Option(DAYS, min=90, max=730, help="Days of events to generate (at least 90)."),
    yes: bool = typer.Option(False, "--yes", help="Allow loading the sample into a BigQuery dataset."),
) -> None:
    """Migrate, load sample events, mentions and economic series, and print trending entities, risk and indicators."""
    from bqrepo import migrate
    from bqrepo.backend import backend_for
    from bqrepo.engine import create_engine
    from bqrepo.repositories import EntityMentionRepository, EventRepository, FredRepository, WorldBankRepository
    from bqrepo.sample_data import load_demo
    from bqrepo.schema import events

    began = time.monotonic()
    settings = state_of(ctx).settings()
    if not backend_for(settings).embedded and not yes:
        # An exported BQREPO_URL must not fill a real dataset with generated events by accident.
        raise UserError(
            f"demo would load generated sample data into {settings.describe()}; "
            "pass --yes if that dataset is a scratch one"
        )
    console.print(f"[bold]1. migrate[/] {settings.describe()}")
    migrate.upgrade(settings)
    now = utc_now().replace(microsecond=0)
    start = floor(now, "DAY") - dt.timedelta(days=days - 1)
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            present = connection.execute(
                sa.select(sa.func.count()).select_from(events).where(events.c.mentioned_at >= start, events.c.mentioned_at <= now)
            ).scalar_one()
        if present:
            console.print(f"[bold]2. sample[/] already loaded ({present:,} events in the window); not loading it twice")
            fred_source = "as loaded earlier"
        else:
            with console.status("loading the sample..."):
                loaded = load_demo(engine, now=now, days=days)
            counts = ", ".join(f"{rows:,} {table}" for table, rows in loaded.rows.items())
            console.print(f"[bold]2. sample[/] {counts}")
            fred_source = loaded.fred_source
        console.print(f"   FRED series: {fred_source}")

        console.print("[bold]3. queries[/]")
        mentions = EntityMentionRepository(engine).trending("mentions", limit=10, as_of=now)
        risk = {t.entity_id: t.score for t in EntityMentionRepository(engine).trending("risk", limit=100, as_of=now)}
        console.print(
            table_of(
                f"Trending entities (decayed mentions, half-life 7 days, as of {now:%Y-%m-%d %H:%M} UTC)",
                ["#", "entity", "score", "risk score", "mentions (70 days)"],
                ([i, t.entity_id, t.score, risk.get(t.entity_id), t.mentions] for i, t in enumerate(mentions, 1)),
                right=["#", "score", "risk score", "mentions (70 days)"],
            )
        )
        trend = EventRepository(engine).risk_trends(start, now, bucket="DAY", fill_gaps=True)
        shown = trend[-SPARK_DAYS:]
        console.print(f"Daily risk, {shown[0].bucket_start:%Y-%m-%d} to {shown[-1].bucket_start:%Y-%m-%d} ({len(shown)} days)")
        console.print(f"  avg risk {sparkline([b.avg_risk for b in shown])}")
        console.print(f"  max risk {sparkline([b.max_risk for b in shown])}")
        console.print(f"  events   {sparkline([float(b.event_count) for b in shown])}")
        console.print(
            table_of(
                "Last 7 days",
                ["day", "avg risk", "max risk", "events"],
                ([b.bucket_start.date(), b.avg_risk, b.max_risk, b.event_count] for b in trend[-7:]),
                right=["avg risk", "max risk", "events"],
            )
        )
        latest = FredRepository(engine).latest()
        console.print(
            table_of(
                "Latest FRED values",
                ["series", "date", "value"],
                ([v.series_id, v.date, v.value] for v in latest),
                right=["value"],
            )
        )
        world = WorldBankRepository(engine).latest(country_codes=["VEN"])
        console.print(
            table_of(
                "Latest World Bank values, Venezuela",
                ["indicator", "year", "value"],
                ([v.indicator_id, str(v.date.year), v.value] for v in world),
                right=["value"],
            )
        )
    finally:
        engine.dispose()
    console.print(f"done in {time.monotonic() - began:.1f} s. Next: `bqrepo info`, `bqrepo trending --metric risk`, `bqrepo risk-trends`")


def register(app: typer.Typer) -> None:
    app.command()(friendly(demo))
