"""The service facade: validated inserts, typed reads, idempotent polling, lazy default, Django."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bqrepo import migrate
from bqrepo.engine import create_engine
from bqrepo.repositories import FredRepository
from bqrepo.rows import EventRow, FredObservation
from bqrepo.schema import events, fred_indicators
from bqrepo.service import TimeSeriesService, insert_records
from bqrepo.settings import Settings
from bqrepo.writers import writer_for

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
        "import os\n"
        "import bqrepo.service as s\n"
        "assert isinstance(s.default_service, s.TimeSeriesService)\n"
        "print(repr(s.default_service))\n"
        "assert os.listdir('.') == [], os.listdir('.')\n"
        "from django.conf import settings\n"
        f"settings.configure(BQREPO_DUCKDB_PATH={str(tmp_path / 'dj.duckdb')!r}, INSTALLED_APPS=['bqrepo.contrib.django'])\n"
        "import django; django.setup()\n"
        "from bqrepo.contrib.django import get_service\n"
        "svc = get_service()\n"
        "assert svc is s.get_default_service()\n"
        "assert s.default_service.events is svc.events\n"
        "print(svc.events.engine.url.database)\n"
    )
    work = tmp_path / "cwd"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "<bqrepo default service (created on first use)>",
        str(tmp_path / "dj.duckdb"),
    ]


def _poll(fetched: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """What a poller builds from one fetch at ``fetched``: id-less events, mentions and FRED values."""
    articles = [
        {"source_name": "reuters", "source_url": f"https://news.example/{n}", "title": f"story {n}",
         "event_type": "protest" if n % 2 else "sanctions", "risk_score": n / 10,
         "mentioned_at": NOW - timedelta(hours=5 * n),
         "metadata": {"n": n, "q": "'; DROP TABLE events; --"}}
        for n in range(8)
    ]
    mentions = [
        {"entity_id": f"entity-{n % 3}", "event_id": EventRow.model_validate(article).id,
         "mentioned_at": article["mentioned_at"], "context": article["title"]}
        for n, article in enumerate(articles)
    ]
    fred = [
        {"series_id": "UNRATE", "date": date(2026, month, 1), "value": 4.0 + month / 10, "ingested_at": fetched}
        for month in range(1, 11)
    ]
    return articles, mentions, fred


def _every_answer(service: TimeSeriesService, fred: FredRepository) -> list[Any]:
    window = (NOW - timedelta(days=3), NOW + timedelta(hours=1))
    return [
        service.get_recent_events(*window),
        service.mentions.trending(metric="mentions", as_of=NOW),
        service.mentions.trending(metric="risk", as_of=NOW),
        service.get_risk_trends(*window, bucket_size="6 hours"),
        fred.series("UNRATE", date(2026, 1, 1), date(2027, 1, 1)),
        fred.latest(),
    ]


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def test_the_same_poll_ingested_twice_changes_no_answer(backend: str, request: pytest.FixtureRequest) -> None:
    """A polling overlap or a retried task, through the real write path, with no ids given."""
    settings: Settings = request.getfixturevalue(f"{backend}_settings")
    migrate.upgrade(settings)
    service = TimeSeriesService.from_settings(settings)
    engine = service.events.engine  # type: ignore[attr-defined]
    fred = FredRepository(engine)
    try:
        answers = []
        # the first fetch is streamed (small batch), the overlapping one loaded in bulk
        for fetched, method in ((NOW, "stream"), (NOW + timedelta(minutes=5), "load")):
            articles, mentions, observations = _poll(fetched)
            assert service.insert_events(articles).ok
            assert service.insert_entity_mentions(mentions).ok
            assert insert_records(writer_for(engine, method), fred_indicators, FredObservation, observations).ok
            answers.append(_every_answer(service, fred))
        first, second = answers
        assert all(first), "every query must return rows, or the comparison proves nothing"
        assert len(first[0]) == 8 and first[1][0].mentions == 3
        assert second == first
    finally:
        engine.dispose()


def test_rejections_from_validation_and_from_the_writer_keep_their_batch_index(
    duckdb_settings: Settings,
) -> None:
    migrate.upgrade(duckdb_settings)
    engine = create_engine(duckdb_settings)
    try:
        unchecked = EventRow.model_construct(id=None, mentioned_at=NOW)  # bypassed validation
        result = insert_records(
            writer_for(engine),
            events,
            EventRow,
            [
                {"title": "good", "mentioned_at": NOW},
                {"title": "naive", "mentioned_at": datetime(2026, 1, 1)},
                unchecked,
                {"title": "good too", "mentioned_at": NOW},
            ],
        )
        assert result.written == 2
        assert [(r.index, r.field) for r in result.rejected] == [(1, "mentioned_at"), (2, "id")]
        assert result.rejected[0].record is None and result.rejected[0].row["title"] == "naive"
        assert result.rejected[1].record is unchecked
    finally:
        engine.dispose()


def test_hostile_records_are_rejected_one_entry_per_row_and_the_rest_is_written(
    duckdb_settings: Settings,
) -> None:
    migrate.upgrade(duckdb_settings)
    service = TimeSeriesService.from_settings(duckdb_settings)
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5_000):
        inner["a"] = {}
        inner = inner["a"]
    result = service.insert_events(
        [
            {"id": "good-1", "mentioned_at": NOW},
            {"id": "late", "mentioned_at": "9999-12-31T23:00:00-05:00"},
            {"id": "early", "mentioned_at": "0001-01-01T00:00:00+05:00"},
            {"id": "cycle", "mentioned_at": NOW, "metadata": cycle},
            {"id": "deep", "mentioned_at": NOW, "metadata": deep},
            {"id": "", "mentioned_at": NOW, "risk_score": float("nan"), "title": "\ud800"},
            {"id": "good-2", "mentioned_at": NOW},
        ]
    )
    assert result.written == 2
    assert [r.index for r in result.rejected] == [1, 2, 3, 4, 5]
    three = result.rejected[-1]
    assert sorted(field for field, _ in three.problems) == ["id", "risk_score", "title"]
    assert (three.field, three.reason) == three.problems[0]
    assert [(r.field, len(r.problems)) for r in result.rejected[:4]] == [
        ("mentioned_at", 1), ("mentioned_at", 1), ("metadata", 1), ("metadata", 1)
    ]
    stored = service.get_recent_events(NOW - timedelta(days=1), NOW + timedelta(seconds=1))
    assert {e.id for e in stored} == {"good-1", "good-2"}
    mentions = service.insert_entity_mentions(
        [{"entity_id": "x", "mentioned_at": "0001-01-01T00:00:00+05:00"}, {"entity_id": "y", "mentioned_at": NOW}]
    )
    assert mentions.written == 1 and [(r.index, r.field) for r in mentions.rejected] == [(0, "mentioned_at")]


def test_a_rejection_built_the_old_way_has_its_one_problem() -> None:
    from bqrepo.writers import RejectedRow

    old_style = RejectedRow(index=3, row={}, reason="too big", field="title")
    assert old_style.problems == (("title", "too big"),)
