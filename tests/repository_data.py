"""Generated data for the repository tests, its loaders, and an independent oracle.

The data is seeded and deliberately awkward: exact bucket boundaries
(midnight, 06:00, a Monday, the first of a month), microsecond timestamps,
bursts, several event types, missing risk scores, revised rows (same id,
newer ``created_at``/``ingested_at``), and SQL-injection text in every
string field.

Loading uses plain SQLAlchemy ``insert()`` on DuckDB and
``client.insert_rows_json`` on the stand-in, deliberately independent of
bqrepo's row types and writers, so a bug there cannot hide in both the data
and the answer. The real write path (row types, derived ids, writers) is
proven idempotent by tests/test_service.py and tests/test_writers.py.

The oracle recomputes every answer in plain Python from the de-duplicated
rows, with its own bucket arithmetic, and shares no code with bqrepo.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bqrepo.engine import client_of
from bqrepo.schema import entity_mentions, events, fred_indicators, un_comtrade, world_bank

INJECTIONS = [
    "x'; DROP TABLE events; --",
    'q" OR "1"="1',
    "back\\slash ` tick @start %(end)s %s",
    "ünï ☃ 😀",
]
EVENT_TYPES = ["protest", "election", "sanctions", INJECTIONS[0]]
SOURCES = ["reuters", "efe", INJECTIONS[1]]
ENTITIES = [f"entity-{i:02d}" for i in range(12)] + [INJECTIONS[2], INJECTIONS[3]]

BASE = datetime(2024, 3, 1, tzinfo=UTC)  # a Friday
AS_OF = datetime(2024, 3, 20, 9, 30, 0, 123456, tzinfo=UTC)


@dataclass
class Dataset:
    """Rows per table as Python values; revisions and duplicates included."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def latest(self, table: str, order_key: str) -> list[dict[str, Any]]:
        """One row per id: the greatest ``order_key`` (None sorts oldest)."""
        best: dict[str, dict[str, Any]] = {}
        for row in self.tables[table]:
            current = best.get(row["id"])
            key = row[order_key]
            if current is None or (key is not None and (current[order_key] is None or key > current[order_key])):
                best[row["id"]] = row
        return list(best.values())


def _boundary_times() -> list[datetime]:
    """Timestamps exactly on bucket boundaries and a microsecond either side."""
    exact = [
        datetime(2024, 3, 4, tzinfo=UTC),  # Monday midnight
        datetime(2024, 3, 5, 6, tzinfo=UTC),  # 6-hour boundary
        datetime(2024, 3, 10, 23, 45, tzinfo=UTC),  # 15-minute boundary, Sunday
        datetime(2024, 3, 11, tzinfo=UTC),  # Monday
        datetime(2024, 4, 1, tzinfo=UTC),  # first of month and quarter, Monday
    ]
    out = []
    for moment in exact:
        out += [moment, moment - timedelta(microseconds=1), moment + timedelta(microseconds=1)]
    return out


def generate(seed: int = 20240301) -> Dataset:
    rng = random.Random(seed)
    ds = Dataset()
    times = [BASE + timedelta(seconds=rng.uniform(0, 45 * 86400)) for _ in range(260)]
    burst = datetime(2024, 3, 18, 14, 0, tzinfo=UTC)
    times += [burst + timedelta(seconds=rng.uniform(0, 3600)) for _ in range(40)]
    # Whole seconds for half of them, microseconds for the rest.
    times = [t.replace(microsecond=0) if rng.random() < 0.5 else t for t in times]
    times += _boundary_times() + [AS_OF, AS_OF - timedelta(days=70), AS_OF + timedelta(seconds=1)]
    ev: list[dict[str, Any]] = []
    for index, moment in enumerate(times):
        ev.append(
            {
                "id": f"ev-{index:04d}",
                "title": rng.choice(["Title", INJECTIONS[0], INJECTIONS[3]]),
                "content": rng.choice(["body", INJECTIONS[2]]),
                "source_url": "https://example.org/a?b=1&c='2'",
                "source_name": rng.choice(SOURCES),
                "event_type": rng.choice(EVENT_TYPES),
                "location": "Caracas",
                "risk_score": None if rng.random() < 0.1 else round(rng.uniform(0, 10), 6),
                "severity": rng.choice(["low", "high", None]),
                "mentioned_at": moment,
                "created_at": moment + timedelta(minutes=5),
                "metadata": {"k": INJECTIONS[index % len(INJECTIONS)], "n": index},
            }
        )
    # Revisions: same id, newer created_at, other risk and type: the newer wins.
    for row in ev[10:20]:
        ev.append({**row, "risk_score": 9.999, "event_type": "revised", "created_at": row["created_at"] + timedelta(hours=1)})
    ds.tables["events"] = ev

    event_rows = ds.latest("events", "created_at")
    mentions = []
    for index in range(600):
        source = rng.choice(event_rows)
        weights = [1 / (i + 1) for i in range(len(ENTITIES))]
        entity = rng.choices(ENTITIES, weights=weights)[0]
        known = rng.random() < 0.9
        mentions.append(
            {
                "id": f"m-{index:04d}",
                "entity_id": entity,
                "event_id": source["id"] if known else f"missing-{index}",
                "mentioned_at": source["mentioned_at"] if rng.random() < 0.8 else source["mentioned_at"] + timedelta(hours=2),
                "context": INJECTIONS[index % len(INJECTIONS)],
            }
        )
    ds.tables["entity_mentions"] = mentions

    ingested = datetime(2024, 3, 1, tzinfo=UTC)
    fred = []
    for series in ["GDP", "UNRATE", INJECTIONS[0]]:
        for month in range(36):
            day = date(2021 + month // 12, month % 12 + 1, 1)
            fred.append(
                {
                    "id": _natural("fred", series, day),
                    "series_id": series,
                    "date": day,
                    "value": round(rng.uniform(1, 100), 4),
                    "series_name": f"{series} name",
                    "units": "pct",
                    "ingested_at": ingested,
                }
            )
    # A revised observation: same natural id, newer ingested_at, other value.
    revised = dict(fred[-1], value=-1.5, ingested_at=ingested + timedelta(days=1))
    fred.insert(0, revised)  # load order must not matter
    ds.tables["fred_indicators"] = fred

    wb = []
    for indicator in ["NY.GDP.MKTP.CD", INJECTIONS[1]]:
        for country in ["VEN", "COL", INJECTIONS[2]]:
            for year in range(2010, 2023):
                if rng.random() < 0.15:
                    continue  # sparse series
                day = date(year, 1, 1)
                wb.append(
                    {
                        "id": _natural("wb", indicator, country, day),
                        "indicator_id": indicator,
                        "country_code": country,
                        "date": day,
                        "value": round(rng.uniform(-5, 5), 4),
                        "ingested_at": ingested,
                    }
                )
    wb.append(dict(wb[3], value=123.0, ingested_at=ingested + timedelta(days=2)))
    ds.tables["world_bank"] = wb

    ct = []
    for month in range(24):
        period = date(2022 + month // 12, month % 12 + 1, 1)
        for reporter in ["862", "170", INJECTIONS[3]]:
            for commodity in ["2709", "27", INJECTIONS[0]]:
                for flow in ["X", "M"]:
                    if rng.random() < 0.2:
                        continue
                    ct.append(
                        {
                            "id": _natural("ct", period, reporter, commodity, flow),
                            "period": period,
                            "reporter_code": reporter,
                            "commodity_code": commodity,
                            "trade_flow": flow,
                            "value_usd": round(rng.uniform(1e3, 1e9), 2),
                            "ingested_at": ingested,
                        }
                    )
    ct.append(dict(ct[5], value_usd=1.25, ingested_at=ingested + timedelta(days=3)))
    ds.tables["un_comtrade"] = ct
    return ds


def _natural(*key: Any) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(str(k) for k in key)))


TABLES = {t.name: t for t in (events, entity_mentions, fred_indicators, un_comtrade, world_bank)}


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, date):
            out[key] = value.isoformat()
        elif key == "metadata" and value is not None:
            out[key] = json.dumps(value)
        else:
            out[key] = value
    return out


def load(engine: sa.Engine, dataset: Dataset) -> None:
    """Append every row of ``dataset`` (duplicates and all) to the engine's tables."""
    with engine.begin() as connection:
        for name, rows in dataset.tables.items():
            if engine.dialect.name == "duckdb":
                connection.execute(TABLES[name].insert(), rows)
            else:
                client = client_of(connection)
                table_id = f"{engine.url.host}.{engine.url.database}.{name}"
                errors = client.insert_rows_json(table_id, [_json_row(row) for row in rows])
                assert not errors, errors[:3]


# --- the oracle -----------------------------------------------------------------------


def o_recent(ds: Dataset, start: datetime, end: datetime, event_type=None, source_name=None, limit=100):
    rows = [
        r
        for r in ds.latest("events", "created_at")
        if start <= r["mentioned_at"] < end
        and (event_type is None or r["event_type"] == event_type)
        and (source_name is None or r["source_name"] == source_name)
    ]
    rows.sort(key=lambda r: r["id"])
    rows.sort(key=lambda r: r["mentioned_at"], reverse=True)
    return rows[:limit]


def o_floor(moment: datetime, bucket: str | int) -> datetime:
    """Bucket start: an int is a width in seconds from 1970-01-01 UTC; else WEEK/MONTH/QUARTER/YEAR."""
    if isinstance(bucket, int):
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        micros = (moment - epoch) // timedelta(microseconds=1)
        width = bucket * 10**6
        return epoch + timedelta(microseconds=micros // width * width)
    d = moment.date()
    if bucket == "WEEK":
        d = date.fromordinal(d.toordinal() - d.isoweekday() + 1)
    elif bucket == "MONTH":
        d = d.replace(day=1)
    elif bucket == "QUARTER":
        d = date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    elif bucket == "YEAR":
        d = date(d.year, 1, 1)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def o_risk_trends(ds: Dataset, start: datetime, end: datetime, bucket: str | int, event_type=None):
    groups: dict[datetime, list[float | None]] = defaultdict(list)
    for r in ds.latest("events", "created_at"):
        if start <= r["mentioned_at"] < end and (event_type is None or r["event_type"] == event_type):
            groups[o_floor(r["mentioned_at"], bucket)].append(r["risk_score"])
    out = []
    for key in sorted(groups):
        risks = [x for x in groups[key] if x is not None]
        out.append((key, sum(risks) / len(risks) if risks else None, max(risks) if risks else None, len(groups[key])))
    return out


def o_trending(ds: Dataset, metric: str, limit: int, half_life: timedelta, as_of: datetime, cutoff: timedelta, margin: timedelta):
    ev = {
        r["id"]: r["risk_score"]
        for r in ds.latest("events", "created_at")
        if as_of - cutoff - margin <= r["mentioned_at"] < as_of + margin
    }
    scores: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for m in ds.latest("entity_mentions", "mentioned_at"):
        if not (as_of - cutoff <= m["mentioned_at"] <= as_of):
            continue
        age = (as_of - m["mentioned_at"]) / timedelta(microseconds=1) / 1e6
        weight = math.exp(-math.log(2) * age / half_life.total_seconds())
        counts[m["entity_id"]] += 1
        if metric == "mentions":
            scores[m["entity_id"]] += weight
        else:
            risk = ev.get(m["event_id"])
            scores[m["entity_id"]] += weight * risk if risk is not None else 0.0
    ranked = sorted(scores, key=lambda e: (-scores[e], e))[:limit]
    return [(e, scores[e], counts[e]) for e in ranked]


def o_fred_series(ds: Dataset, series_id: str, start: date, end: date):
    rows = [r for r in ds.latest("fred_indicators", "ingested_at") if r["series_id"] == series_id and start <= r["date"] < end]
    return [(r["date"], r["value"]) for r in sorted(rows, key=lambda r: r["date"])]


def o_fred_latest(ds: Dataset, series_ids=None, since=date(1, 1, 1)):
    best: dict[str, dict[str, Any]] = {}
    for r in ds.latest("fred_indicators", "ingested_at"):
        if r["date"] < since or (series_ids is not None and r["series_id"] not in series_ids):
            continue
        if r["series_id"] not in best or r["date"] > best[r["series_id"]]["date"]:
            best[r["series_id"]] = r
    return [(k, best[k]["date"], best[k]["value"]) for k in sorted(best)]


def o_wb_series(ds: Dataset, indicator: str, country: str, start: date, end: date):
    rows = [
        r
        for r in ds.latest("world_bank", "ingested_at")
        if r["indicator_id"] == indicator and r["country_code"] == country and start <= r["date"] < end
    ]
    return [(r["date"], r["value"]) for r in sorted(rows, key=lambda r: r["date"])]


def o_wb_latest(ds: Dataset, indicator_ids=None, country_codes=None, since=date(1, 1, 1)):
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in ds.latest("world_bank", "ingested_at"):
        if r["date"] < since:
            continue
        if indicator_ids is not None and r["indicator_id"] not in indicator_ids:
            continue
        if country_codes is not None and r["country_code"] not in country_codes:
            continue
        key = (r["indicator_id"], r["country_code"])
        if key not in best or r["date"] > best[key]["date"]:
            best[key] = r
    return [(k[0], k[1], best[k]["date"], best[k]["value"]) for k in sorted(best)]


def o_comtrade(ds: Dataset, start: date, end: date, commodity_codes=None, reporter_code=None, trade_flow=None):
    sums: dict[tuple[date, str, str], list[float]] = defaultdict(list)
    for r in ds.latest("un_comtrade", "ingested_at"):
        if not (start <= r["period"] < end):
            continue
        if commodity_codes is not None and r["commodity_code"] not in commodity_codes:
            continue
        if reporter_code is not None and r["reporter_code"] != reporter_code:
            continue
        if trade_flow is not None and r["trade_flow"] != trade_flow:
            continue
        sums[(r["period"], r["commodity_code"], r["trade_flow"])].append(r["value_usd"])
    return [(k[0], k[1], k[2], sum(v), len(v)) for k, v in sorted(sums.items())]
