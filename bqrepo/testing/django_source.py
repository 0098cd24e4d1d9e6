"""A Django-like source schema (the old TimescaleDB app's tables) and its data.

The tables mirror what Django's ORM creates for the backend's models:
``core_event`` (UUID primary key, JSONB metadata), ``core_entity`` and
``core_entitymention`` (integer keys and foreign keys), and the economic
tables with Django's ``created_at``/``updated_at`` bookkeeping and a
``DecimalField`` for trade values. bqrepo's default back-fill mapping
(``bqrepo/backfill/default_mapping.toml``) is written for exactly this
shape, and the tests back-fill from it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from bqrepo import sample_data

__all__ = ["legacy_metadata", "load_sample"]

legacy_metadata = sa.MetaData()
TZ = sa.TIMESTAMP(timezone=True)

core_event = sa.Table(
    "core_event",
    legacy_metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("source_url", sa.String(2048)),
    sa.Column("source_name", sa.String(100), nullable=False),
    sa.Column("event_type", sa.String(50), nullable=False),
    sa.Column("location", sa.String(200)),
    sa.Column("risk_score", sa.Double),
    sa.Column("severity", sa.String(20)),
    sa.Column("mentioned_at", TZ, nullable=False, index=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("metadata", pg.JSONB, nullable=False),
)

core_entity = sa.Table(
    "core_entity",
    legacy_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("slug", sa.String(100), nullable=False, unique=True),
)

core_entitymention = sa.Table(
    "core_entitymention",
    legacy_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("entity_id", sa.BigInteger, sa.ForeignKey("core_entity.id"), nullable=False),
    sa.Column("event_id", pg.UUID(as_uuid=True), sa.ForeignKey("core_event.id")),
    sa.Column("mentioned_at", TZ, nullable=False, index=True),
    sa.Column("context", sa.Text),
)


def _bookkeeping() -> list[sa.Column[Any]]:
    return [sa.Column("created_at", TZ, nullable=False), sa.Column("updated_at", TZ, nullable=False)]


core_fredindicator = sa.Table(
    "core_fredindicator",
    legacy_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("series_id", sa.String(50), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("value", sa.Double),
    sa.Column("series_name", sa.String(255)),
    sa.Column("units", sa.String(100)),
    *_bookkeeping(),
)

core_uncomtrade = sa.Table(
    "core_uncomtrade",
    legacy_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("period", sa.Date, nullable=False),
    sa.Column("reporter_code", sa.String(10), nullable=False),
    sa.Column("commodity_code", sa.String(20), nullable=False),
    sa.Column("trade_flow", sa.String(10), nullable=False),
    sa.Column("value_usd", sa.Numeric(20, 2)),
    *_bookkeeping(),
)

core_worldbank = sa.Table(
    "core_worldbank",
    legacy_metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("indicator_id", sa.String(50), nullable=False),
    sa.Column("country_code", sa.String(3), nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("value", sa.Double),
    *_bookkeeping(),
)


def edge_case_events(start: datetime) -> list[dict[str, Any]]:
    """Rows that break naive back-fills: day boundaries, NULLs, quotes, unicode."""
    base = {
        "source_url": None,
        "source_name": "edge",
        "event_type": "political",
        "location": None,
        "severity": None,
        "metadata": {"nested": {"list": [1, 2.5, None, "x"]}, "quote": "it's \"quoted\""},
    }
    cases = [
        (start, 10.0, "exactly at midnight UTC"),
        (start + timedelta(days=1) - timedelta(microseconds=1), None, "last microsecond; NULL risk"),
        (start + timedelta(days=2), 99.5, "Robert'); DROP TABLE core_event;-- ñandú 🚀"),
    ]
    return [
        {
            **base,
            "id": f"00000000-0000-4000-8000-00000000000{i}",
            "title": title,
            "content": title,
            "risk_score": risk,
            "mentioned_at": at,
            "created_at": at,
        }
        for i, (at, risk, title) in enumerate(cases)
    ]


def load_sample(
    url: str,
    *,
    start: datetime = datetime(2024, 3, 1, tzinfo=UTC),
    days: int = 30,
    per_day: int = 12,
    seed: int = 7,
) -> dict[str, int]:
    """Create the Django-like tables at ``url`` and fill them; return row counts per table."""
    events = edge_case_events(start) + sample_data.generate_events(start, days, per_day=per_day, seed=seed)
    mentions = sample_data.generate_mentions(events)
    fred = sample_data.fred_observations().records
    comtrade = sample_data.comtrade_observations()
    world_bank = sample_data.world_bank_observations()
    created = datetime(2025, 6, 1, tzinfo=UTC)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            legacy_metadata.drop_all(connection)
            legacy_metadata.create_all(connection)
            connection.execute(core_event.insert(), events)
            slugs = sorted({m["entity_id"] for m in mentions})
            connection.execute(core_entity.insert(), [{"slug": slug} for slug in slugs])
            ids = dict(connection.execute(sa.select(core_entity.c.slug, core_entity.c.id)).all())
            # Django numbers mentions itself (identity column): the generated UUIDs are dropped.
            connection.execute(
                core_entitymention.insert(),
                [
                    {k: v for k, v in m.items() if k != "id"} | {"entity_id": ids[m["entity_id"]]}
                    for m in mentions
                ],
            )
            connection.execute(
                core_fredindicator.insert(),
                [_economic(r, created) for r in fred],
            )
            connection.execute(
                core_uncomtrade.insert(),
                [_economic(r, created) | {"value_usd": Decimal(str(r["value_usd"]))} for r in comtrade],
            )
            connection.execute(core_worldbank.insert(), [_economic(r, created) for r in world_bank])
    finally:
        engine.dispose()
    return {
        "core_event": len(events),
        "core_entitymention": len(mentions),
        "core_fredindicator": len(fred),
        "core_uncomtrade": len(comtrade),
        "core_worldbank": len(world_bank),
    }


def _economic(record: dict[str, Any], created: datetime) -> dict[str, Any]:
    values = {k: v for k, v in record.items() if k != "ingested_at"}
    return values | {"created_at": created, "updated_at": record["ingested_at"]}
