"""The service facade on DuckDB: validated inserts, typed reads, lazy default, Django."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from bqrepo import migrate
from bqrepo.service import TimeSeriesService
from bqrepo.settings import Settings

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_insert_and_query_through_the_facade(duckdb_settings: Settings) -> None:
    migrate.upgrade(duckdb_settings)
    service = TimeSeriesService.from_settings(duckdb_settings)
    result = service.insert_events(
        [
            {"id": "e1", "title": "ok", "event_type": "protest", "risk_score": 0.5,
             "mentioned_at": NOW - timedelta(hours=1)},
            {"id": "e2", "title": "bad", "risk_score": float("nan"), "mentioned_at": NOW},
            {"id": "e3", "title": "'; DROP TABLE events; --", "risk_score": 0.9,
             "mentioned_at": NOW - timedelta(hours=2)},
        ]
    )
    assert result.written == 2
    assert [(r.index, r.field, r.row["id"]) for r in result.rejected] == [(1, "risk_score", "e2")]
    mentions = service.insert_entity_mentions(
        [{"entity_id": "chevron", "event_id": "e1", "mentioned_at": NOW - timedelta(hours=1)},
         {"entity_id": "pdvsa", "event_id": "e3", "mentioned_at": NOW - timedelta(days=7)}]
    )
    assert mentions.ok and mentions.written == 2

    recent = service.get_recent_events(NOW - timedelta(days=1), NOW)
    assert [e.id for e in recent] == ["e1", "e3"]
    assert recent[1].title == "'; DROP TABLE events; --"

    trending = service.mentions.trending(as_of=NOW)
    assert [t.entity_id for t in trending] == ["chevron", "pdvsa"]
    assert abs(trending[1].score - 0.5) < 1e-9  # exactly one half-life old

    buckets = service.get_risk_trends(NOW - timedelta(days=1), NOW, bucket_size="DAY")
    assert [(b.bucket_start, b.event_count, b.max_risk) for b in buckets] == [
        (datetime(2026, 11, 20, tzinfo=UTC), 2, 0.9)
    ]


def test_default_service_is_lazy_and_django_builds_from_settings(tmp_path) -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\n"
        "import bqrepo.service as s\n"
        "assert s.get_default_service.cache_info().currsize == 0\n"
        "from django.conf import settings\n"
        f"settings.configure(BQREPO_DUCKDB_PATH={str(tmp_path / 'dj.duckdb')!r}, INSTALLED_APPS=['bqrepo.contrib.django'])\n"
        "import django; django.setup()\n"
        "from bqrepo.contrib.django import get_service\n"
        "svc = get_service()\n"
        "print(svc.events.engine.url.database)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "dj.duckdb")
