"""Realistic sample data: news events with bursts, entity mentions, economic series.

Why it lives in the package: ``bqrepo demo`` loads it on a fresh machine with
no network, and the back-fill tests load the same shapes into a Django-like
PostgreSQL schema. Everything is deterministic for a given seed.

The records are plain dicts keyed by the columns of :mod:`bqrepo.schema`, so
they go through the row types' validation like any other input.

Economic data: when statsmodels is installed (the ``demo`` extra), the FRED
series are the real US quarterly macro data it ships offline (macrodata,
1959-2009, compiled from FRED by statsmodels). Only its CSV file is read, so
pandas is never imported. Without it, FRED-like series are generated and
:func:`fred_observations` says so in its ``source`` result.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "ENTITIES",
    "DemoLoad",
    "EconomicSample",
    "comtrade_observations",
    "fred_observations",
    "generate_events",
    "generate_mentions",
    "load_demo",
    "macrodata_csv",
    "world_bank_observations",
]

# (entity id, base weight): ids are what the PostgreSQL side would hold.
ENTITIES: tuple[tuple[str, float], ...] = (
    ("venezuela", 10.0),
    ("pdvsa", 6.0),
    ("nicolas-maduro", 5.0),
    ("opec", 3.0),
    ("chevron", 2.5),
    ("imf", 2.0),
    ("citgo", 1.5),
    ("caracas", 3.0),
    ("us-treasury", 1.5),
    ("colombia", 2.0),
    ("guyana", 1.2),
    ("essequibo", 0.6),
    ("banco-central-de-venezuela", 1.0),
    ("maria-corina-machado", 1.5),
    ("edmundo-gonzalez", 1.0),
)

EVENT_TYPES = ("political", "economic", "security", "energy", "humanitarian", "diplomatic")
SOURCES = ("reuters", "efe", "el-pitazo", "bloomberg", "gdelt", "ap")
LOCATIONS = ("Caracas", "Maracaibo", "Zulia", "Bolívar", "Táchira", "Anzoátegui", None)
SEVERITIES = ((25.0, "low"), (50.0, "medium"), (75.0, "high"), (101.0, "critical"))

# (entity, first day offset, length in days, extra events per day, risk uplift)
_BURSTS = (
    ("essequibo", 20, 6, 35, 30.0),
    ("pdvsa", 48, 5, 45, 25.0),
    ("citgo", 71, 4, 30, 15.0),
    ("chevron", 110, 7, 40, 20.0),
)


def _severity(risk: float) -> str:
    return next(label for bound, label in SEVERITIES if risk < bound)


def generate_events(
    start: datetime,
    days: int,
    *,
    per_day: int = 40,
    seed: int = 7,
) -> list[dict[str, Any]]:
    """Events over ``days`` days from ``start`` (UTC), with three news bursts.

    A burst is a few days where one entity dominates the news and risk runs
    higher; the burst entity is recorded in ``metadata["entities"]`` so that
    :func:`generate_mentions` can mention it. Risk scores are 0-100.
    """
    rng = random.Random(seed)
    start = start.astimezone(UTC)
    names = [name for name, _ in ENTITIES]
    weights = [weight for _, weight in ENTITIES]
    events: list[dict[str, Any]] = []
    for day in range(days):
        midnight = start + timedelta(days=day)
        weekly = 1.0 + 0.25 * math.sin(2 * math.pi * day / 7)
        count = max(1, int(rng.gauss(per_day * weekly, per_day * 0.15)))
        plan: list[tuple[list[str], float]] = []
        for _ in range(count):
            k = rng.choice((1, 1, 2, 2, 3))
            plan.append((sorted(set(rng.choices(names, weights, k=k))), 0.0))
        for entity, first, length, extra, uplift in _BURSTS:
            if first <= day < first + length:
                peak = 1.0 - abs(day - (first + length / 2)) / length
                for _ in range(int(extra * (0.5 + peak))):
                    others = rng.choices(names, weights, k=rng.choice((0, 1)))
                    plan.append((sorted({entity, *others}), uplift))
        for entities, uplift in plan:
            event_type = rng.choice(EVENT_TYPES)
            risk = min(100.0, max(0.0, rng.gauss(35.0 + uplift, 15.0)))
            risk = round(risk, 2)
            at = midnight + timedelta(seconds=rng.randrange(86_400), microseconds=rng.randrange(1_000_000))
            title = f"{event_type.title()} news on {', '.join(entities)}"
            events.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "title": title,
                    "content": f"{title}. Generated sample text #{len(events)}.",
                    "source_url": f"https://news.example.org/{len(events)}",
                    "source_name": rng.choice(SOURCES),
                    "event_type": event_type,
                    "location": rng.choice(LOCATIONS),
                    "risk_score": risk,
                    "severity": _severity(risk),
                    "mentioned_at": at,
                    "created_at": at + timedelta(minutes=rng.randrange(1, 90)),
                    "metadata": {"entities": entities, "lang": rng.choice(("es", "en"))},
                }
            )
    events.sort(key=lambda e: e["mentioned_at"])
    return events


def generate_mentions(events: list[dict[str, Any]], *, seed: int = 11) -> list[dict[str, Any]]:
    """One mention per entity named in each event's metadata, at the event's time."""
    rng = random.Random(seed)
    mentions = []
    for event in events:
        for entity in event["metadata"].get("entities", ()):
            mentions.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "entity_id": entity,
                    "event_id": event["id"],
                    "mentioned_at": event["mentioned_at"],
                    "context": f"... {entity} ... ({event['title']})",
                }
            )
    return mentions


# FRED ids of the macrodata columns we load, with their names and units.
_MACRODATA_SERIES = {
    "realgdp": ("GDPC1", "Real gross domestic product", "Billions of chained 2005 dollars, SAAR"),
    "cpi": ("CPIAUCSL", "Consumer price index, all urban consumers", "Index 1982-84=100"),
    "unemp": ("UNRATE", "Unemployment rate", "Percent"),
    "tbilrate": ("TB3MS", "3-month Treasury bill rate", "Percent"),
    "m1": ("M1SL", "M1 money stock", "Billions of dollars"),
}


@dataclass(frozen=True)
class EconomicSample:
    """Economic observations plus where they came from, for honest demo output."""

    source: str
    records: list[dict[str, Any]]


def macrodata_csv() -> Path | None:
    """statsmodels' macrodata.csv when statsmodels is installed, found without importing it."""
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "macrodata" / "macrodata.csv"
    return path if path.is_file() else None


def _macrodata_records(path: Path, ingested_at: datetime) -> Iterator[dict[str, Any]]:
    with path.open(newline="") as handle:
        for line in csv.DictReader(handle):
            year, quarter = int(float(line["year"])), int(float(line["quarter"]))
            observed = date(year, 3 * (quarter - 1) + 1, 1)
            for column, (series_id, name, units) in _MACRODATA_SERIES.items():
                yield {
                    "series_id": series_id,
                    "date": observed,
                    "value": float(line[column]),
                    "series_name": name,
                    "units": units,
                    "ingested_at": ingested_at,
                }


def _generated_fred(ingested_at: datetime, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for column, (series_id, name, units) in _MACRODATA_SERIES.items():
        level = {"realgdp": 2700.0, "cpi": 29.0, "unemp": 5.5, "tbilrate": 3.0, "m1": 140.0}[column]
        for quarter in range(4 * 51):
            observed = date(1959 + quarter // 4, 3 * (quarter % 4) + 1, 1)
            level = max(0.1, level * (1 + rng.gauss(0.008, 0.01)))
            yield {
                "series_id": series_id,
                "date": observed,
                "value": round(level, 3),
                "series_name": f"{name} (generated)",
                "units": units,
                "ingested_at": ingested_at,
            }


def fred_observations(*, ingested_at: datetime | None = None, seed: int = 3) -> EconomicSample:
    """FRED observations: real (statsmodels macrodata) when available, else generated."""
    ingested_at = ingested_at or datetime(2026, 1, 1, tzinfo=UTC)
    path = macrodata_csv()
    if path is not None:
        return EconomicSample(
            "statsmodels macrodata (FRED, US quarterly 1959-2009)",
            list(_macrodata_records(path, ingested_at)),
        )
    return EconomicSample("generated (install bqrepo[demo] for real FRED data)", list(_generated_fred(ingested_at, seed)))


def comtrade_observations(*, ingested_at: datetime | None = None, seed: int = 5) -> list[dict[str, Any]]:
    """Generated monthly Venezuelan trade values for a few HS chapters, 2019-2024."""
    rng = random.Random(seed)
    ingested_at = ingested_at or datetime(2026, 1, 1, tzinfo=UTC)
    commodities = {"27": 2.0e9, "10": 5.0e7, "72": 8.0e7, "30": 4.0e7}
    records = []
    for month in range(72):
        period = date(2019 + month // 12, month % 12 + 1, 1)
        for code, level in commodities.items():
            for flow in ("X", "M"):
                base = level if (code == "27") == (flow == "X") else level / 5
                records.append(
                    {
                        "period": period,
                        "reporter_code": "862",
                        "commodity_code": code,
                        "trade_flow": flow,
                        "value_usd": round(base * rng.uniform(0.7, 1.3), 2),
                        "ingested_at": ingested_at,
                    }
                )
    return records


def world_bank_observations(*, ingested_at: datetime | None = None, seed: int = 9) -> list[dict[str, Any]]:
    """Generated annual indicators for Venezuela and neighbours, 1990-2023."""
    rng = random.Random(seed)
    ingested_at = ingested_at or datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    for indicator, level in (("NY.GDP.MKTP.CD", 1.0e11), ("FP.CPI.TOTL.ZG", 20.0), ("SP.POP.TOTL", 2.5e7)):
        for country in ("VEN", "COL", "GUY"):
            value = level
            for year in range(1990, 2024):
                value = value * (1 + rng.gauss(0.02, 0.05))
                records.append(
                    {
                        "indicator_id": indicator,
                        "date": date(year, 1, 1),
                        "value": round(value, 4),
                        "country_code": country,
                        "ingested_at": ingested_at,
                    }
                )
    return records


@dataclass(frozen=True)
class DemoLoad:
    """What :func:`load_demo` wrote: rows per table, the window and the FRED source."""

    rows: dict[str, int]
    start: datetime
    end: datetime
    fred_source: str


def load_demo(engine: Any, *, now: datetime, days: int = 120) -> DemoLoad:
    """Validate and write the whole sample through the normal writers.

    Events cover the ``days`` UTC days ending with ``now``'s (nothing after
    ``now``), so "trending" and "recent" have something to say today.
    Load jobs on BigQuery (free, and the sample is one batch per table),
    bulk inserts on DuckDB.
    """
    from bqrepo.rows import row_type, validate_rows
    from bqrepo.schema import metadata
    from bqrepo.writers import writer_for

    now = now.astimezone(UTC)
    start = datetime.combine(now.date(), datetime.min.time(), UTC) - timedelta(days=days - 1)
    events = [e for e in generate_events(start, days) if e["mentioned_at"] <= now]
    fred = fred_observations()
    batches = {
        "events": events,
        "entity_mentions": generate_mentions(events),
        "fred_indicators": fred.records,
        "un_comtrade": comtrade_observations(),
        "world_bank": world_bank_observations(),
    }
    writer = writer_for(engine, "load")
    rows = {}
    for table, records in batches.items():
        target = metadata.tables[table]
        report = validate_rows(row_type(target), records)
        report.raise_for_errors()
        result = writer.write(target, report.rows)
        if result.rejected:
            raise RuntimeError(f"{table}: {len(result.rejected)} sample rows rejected: {result.rejected[0].reason}")
        rows[table] = result.written
    return DemoLoad(rows, start, now, fred.source)
