"""The generic TimeSeriesRepository on user-declared tables, on DuckDB and the BigQuery stand-in.

Two tables a user might declare: ``forecasts`` (DATE time column, MONTH
partitions, ids derived from the key, so key filters go inside the
de-duplication) and ``readings`` (TIMESTAMP, DAY partitions, ids given, so
versions of an id may change any column). Both require a partition filter,
so every query the stand-in answers also proves the filter is usable.

Rows go in through plain SQLAlchemy inserts, duplicate versions included;
every method is checked against a Python oracle computed from the raw rows,
and every statement shape is checked for a range on the bare partition column.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from google.cloud.bigquery import TimePartitioning
from sqlglot import exp

from bqrepo.alembic_ext.dataset import ensure_dataset
from bqrepo.compile import bigquery_dialect, compile_bigquery
from bqrepo.constructs import BucketSpec
from bqrepo.engine import create_engine
from bqrepo.errors import InvalidArgumentError, SchemaError
from bqrepo.repositories.timeseries import (
    TimeBucket,
    TimeSeriesQueries,
    TimeSeriesRepository,
    buckets_statement,
    latest_statement,
    ranking_statement,
    rows_statement,
    series_statement,
)
from bqrepo.settings import Settings
from bqrepo.timeseries import time_series
from repository_data import o_floor

metadata = sa.MetaData()
Timestamp = sa.TIMESTAMP(timezone=True)

forecasts = time_series(
    sa.Table(
        "forecasts",
        metadata,
        sa.Column("id", sa.String, nullable=False),
        sa.Column("series_id", sa.String, nullable=False),
        sa.Column("forecast_date", sa.Date, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("generated_at", Timestamp),
        bigquery_time_partitioning=TimePartitioning(field="forecast_date", type_="MONTH"),
        bigquery_clustering_fields=["series_id"],
        bigquery_require_partition_filter=True,
    ),
    time="forecast_date",
    key=("series_id", "forecast_date", "horizon", "model_name"),
    version="generated_at",
    series=("series_id",),
)

readings = time_series(
    sa.Table(
        "readings",
        metadata,
        sa.Column("id", sa.String, nullable=False),
        sa.Column("sensor_id", sa.String, nullable=False),
        sa.Column("site", sa.String),
        sa.Column("measured_at", Timestamp, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("quality", sa.String),
        sa.Column("received_at", Timestamp),
        bigquery_time_partitioning=TimePartitioning(field="measured_at", type_="DAY"),
        bigquery_clustering_fields=["sensor_id"],
        bigquery_require_partition_filter=True,
    ),
    time="measured_at",
    key=("sensor_id", "measured_at"),
    version="received_at",
    ids="given",
)

TABLES = {"forecasts": forecasts, "readings": readings}
BACKENDS = ["duckdb", "bigquery"]
AS_OF = datetime(2024, 3, 20, 12, tzinfo=UTC)
INJECTION = "x'; DROP TABLE readings; --"


# --- data: raw rows with duplicate versions ------------------------------------------------


def _versions(rng: random.Random, row: dict[str, Any], version: str, vary: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """1-3 copies of ``row``: distinct versions (or one NULL version), sometimes an exact duplicate."""
    base = datetime(2024, 4, 1, tzinfo=UTC)
    copies = []
    times = sorted(rng.sample(range(1, 500), rng.randint(1, 3)))
    if rng.random() < 0.15:
        copies.append({**vary(row), version: None})  # a NULL version loses to any set one
    for minutes in times:
        copies.append({**vary(row), version: base + timedelta(minutes=minutes, microseconds=rng.randint(0, 999_999))})
    if rng.random() < 0.2:
        copies.append(dict(copies[-1]))
    rng.shuffle(copies)
    return copies


def _forecast_rows() -> list[dict[str, Any]]:
    rng = random.Random(11)
    out: list[dict[str, Any]] = []
    dates = sorted({date(2023, 1, 1) + timedelta(days=rng.randint(0, 700)) for _ in range(14)})
    for series_id in ("A", "B", "C"):
        for day in rng.sample(dates, 9):
            for horizon in (1, 3):
                for model in ("m1", "m2"):
                    row = {
                        "id": f"{series_id}|{day.isoformat()}|{horizon}|{model}",
                        "series_id": series_id,
                        "forecast_date": day,
                        "horizon": horizon,
                        "model_name": model,
                    }

                    def vary(r: dict[str, Any]) -> dict[str, Any]:
                        value = None if rng.random() < 0.1 else round(rng.uniform(-50, 150), 6)
                        return {**r, "value": value}

                    out += _versions(rng, row, "generated_at", vary)
    return out


def _reading_rows() -> list[dict[str, Any]]:
    rng = random.Random(7)
    out: list[dict[str, Any]] = []
    start = datetime(2024, 3, 1, tzinfo=UTC)
    for n in range(150):
        moment = start + timedelta(seconds=rng.randint(0, 20 * 86400), microseconds=rng.randint(0, 999_999))
        row = {"id": f"r{n:03d}", "sensor_id": rng.choice(["s1", "s2", "s3", "s4"]), "measured_at": moment}

        def vary(r: dict[str, Any]) -> dict[str, Any]:
            return {
                **r,
                "site": rng.choice(["north", "south", None]),  # a newer version may move site
                "value": None if rng.random() < 0.1 else round(rng.uniform(0, 10), 6),
                "quality": rng.choice(["good", "bad", INJECTION]),
            }

        out += _versions(rng, row, "received_at", vary)
    # Two ids with the same sensor and time (ids are given): latest breaks the tie by id.
    last = max(out, key=lambda r: r["measured_at"])
    out.append({**last, "id": "r999", "received_at": None, "value": 1.5, "site": "north", "quality": "good"})
    return out


RAW = {"forecasts": _forecast_rows(), "readings": _reading_rows()}


# --- the oracle ------------------------------------------------------------------------


def deduplicated(name: str) -> list[dict[str, Any]]:
    version = {"forecasts": "generated_at", "readings": "received_at"}[name]
    best: dict[str, dict[str, Any]] = {}
    for row in RAW[name]:
        current = best.get(row["id"])
        if current is None or (row[version] is not None and (current[version] is None or row[version] > current[version])):
            best[row["id"]] = row
    return list(best.values())


def _time(name: str) -> str:
    return {"forecasts": "forecast_date", "readings": "measured_at"}[name]


def _moment(value: date | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day, tzinfo=UTC)


def o_rows(name: str, start: Any, end: Any, where: dict[str, str | None] | None = None, limit: int = 100, newest_first: bool = True) -> list[dict[str, Any]]:
    time = _time(name)
    rows = [
        r for r in deduplicated(name)
        if start <= r[time] < end and all(v is None or r[k] == v for k, v in (where or {}).items())
    ]
    rows.sort(key=lambda r: r["id"])
    rows.sort(key=lambda r: r[time], reverse=newest_first)
    return rows[:limit]


def o_buckets(name: str, start: Any, end: Any, bucket: str | int, value: str | None, where: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    time = _time(name)
    groups: dict[datetime, list[Any]] = defaultdict(list)
    for r in deduplicated(name):
        if start <= r[time] < end and all(r[k] == v for k, v in (where or {}).items()):
            groups[o_floor(_moment(r[time]), bucket)].append(r[value] if value else None)
    out = []
    for key in sorted(groups):
        values = [x for x in groups[key] if x is not None]
        start_value: Any = key.date() if name == "forecasts" else key
        if value is None:
            out.append((start_value, None, None, None, None, len(groups[key])))
            continue
        out.append((
            start_value,
            sum(values) / len(values) if values else None,
            max(values) if values else None,
            min(values) if values else None,
            sum(values) if values else None,
            len(groups[key]),
        ))
    return out


def o_ranking(key: str, weight: str | None, half_life: timedelta, limit: int = 20) -> list[tuple[Any, ...]]:
    window_start = AS_OF - 10 * half_life
    scores: dict[Any, float] = defaultdict(float)
    counts: dict[Any, int] = defaultdict(int)
    for r in deduplicated("readings"):
        if window_start <= r["measured_at"] <= AS_OF:
            decay = math.exp(-math.log(2) * (AS_OF - r["measured_at"]).total_seconds() / half_life.total_seconds())
            w = 1.0 if weight is None else r[weight]
            scores[r[key]] += decay * w if w is not None else 0.0
            counts[r[key]] += 1
    ordered = sorted(scores, key=lambda k: (-scores[k], k))
    return [(k, scores[k], counts[k]) for k in ordered[:limit]]


def o_latest(name: str, since: Any, series: dict[str, list[str]] | None, columns: list[str]) -> list[dict[str, Any]]:
    time, key = _time(name), {"forecasts": "series_id", "readings": "sensor_id"}[name]
    best: dict[str, dict[str, Any]] = {}
    for r in deduplicated(name):
        if r[time] < since or (series and any(r[k] not in v for k, v in series.items())):
            continue
        current = best.get(r[key])
        if current is None or r[time] > current[time] or (r[time] == current[time] and r["id"] < current["id"]):
            best[r[key]] = r
    return [{c: best[k][c] for c in [key, time, *columns]} for k in sorted(best)]


def o_series(name: str, key: dict[str, str], start: Any, end: Any, columns: list[str]) -> list[dict[str, Any]]:
    time = _time(name)
    rows = [r for r in deduplicated(name) if start <= r[time] < end and all(r[k] == v for k, v in key.items())]
    rows.sort(key=lambda r: (r[time], r["id"]))
    return [{c: r[c] for c in [time, *columns]} for r in rows]


# --- backends --------------------------------------------------------------------------


def _settings(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "duckdb":
        return Settings(duckdb_path=str(tmp / f"{uuid.uuid4().hex[:8]}.duckdb"))
    standin = request.getfixturevalue("standin")
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    return Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=standin.host,
    )


@pytest.fixture(scope="module")
def engines(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], sa.Engine]]:
    """Per backend, built on first use: both tables created and loaded with plain multi-row INSERTs."""
    cache: dict[str, sa.Engine] = {}

    def get(backend: str) -> sa.Engine:
        if backend not in cache:
            settings = _settings(backend, tmp_path_factory.mktemp(backend), request)
            engine = create_engine(settings)
            with engine.begin() as connection:
                ensure_dataset(connection, settings)
            metadata.create_all(engine)
            with engine.begin() as connection:
                for name, table in TABLES.items():
                    connection.execute(table.insert().values(RAW[name]))
            cache[backend] = engine
        return cache[backend]

    yield get
    for engine in cache.values():
        engine.dispose()


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _bucket_tuples(found: list[TimeBucket]) -> list[tuple[Any, ...]]:
    return [(b.bucket_start, b.avg, b.max, b.min, b.sum, b.count) for b in found]


D0, D1 = date(2023, 3, 1), date(2024, 9, 1)
T0, T1 = datetime(2024, 3, 3, 6, tzinfo=UTC), datetime(2024, 3, 18, 18, tzinfo=UTC)
FORECAST_COLUMNS = ["horizon", "value", "model_name"]
READING_COLUMNS = ["site", "value", "quality"]

# name -> (call on (forecasts repo, readings repo), oracle)
CASES: list[tuple[str, Callable[[TimeSeriesRepository, TimeSeriesRepository], Any], Callable[[], Any]]] = [
    ("f_rows", lambda f, r: f.rows(D0, D1), lambda: o_rows("forecasts", D0, D1)),
    ("f_rows_inside_filter", lambda f, r: f.rows(D0, D1, where={"model_name": "m1", "series_id": None}, limit=30),
     lambda: o_rows("forecasts", D0, D1, {"model_name": "m1"}, 30)),
    ("f_rows_oldest_first", lambda f, r: f.rows(D0, D1, where={"series_id": "B"}, limit=7, newest_first=False),
     lambda: o_rows("forecasts", D0, D1, {"series_id": "B"}, 7, False)),
    ("r_rows_outside_filter", lambda f, r: r.rows(T0, T1, where={"site": "north"}),
     lambda: o_rows("readings", T0, T1, {"site": "north"})),
    ("r_rows_injection", lambda f, r: r.rows(T0, T1, where={"quality": INJECTION, "sensor_id": "s2"}),
     lambda: o_rows("readings", T0, T1, {"quality": INJECTION, "sensor_id": "s2"})),
    *[
        (f"f_buckets_{bucket}", (lambda b: lambda f, r: _bucket_tuples(f.buckets(D0, D1, b, value="value")))(bucket),
         (lambda b, o: lambda: o_buckets("forecasts", D0, D1, o, "value"))(bucket, oracle))
        for bucket, oracle in [("DAY", 86400), ("7 days", 7 * 86400), ("WEEK", "WEEK"), ("MONTH", "MONTH"), ("QUARTER", "QUARTER"), ("YEAR", "YEAR")]
    ],
    ("f_buckets_filtered", lambda f, r: _bucket_tuples(f.buckets(D0, D1, "MONTH", value="horizon", where={"model_name": "m2"})),
     lambda: o_buckets("forecasts", D0, D1, "MONTH", "horizon", {"model_name": "m2"})),
    *[
        (f"r_buckets_{bucket}", (lambda b: lambda f, r: _bucket_tuples(r.buckets(T0, T1, b, value="value")))(bucket),
         (lambda o: lambda: o_buckets("readings", T0, T1, o, "value"))(oracle))
        for bucket, oracle in [("DAY", 86400), ("6 hours", 6 * 3600), ("15 minutes", 900), ("WEEK", "WEEK"), ("MONTH", "MONTH")]
    ],
    ("r_buckets_count_outside_filter", lambda f, r: _bucket_tuples(r.buckets(T0, T1, "DAY", value=None, aggregates=["count"], where={"site": "south"})),
     lambda: o_buckets("readings", T0, T1, 86400, None, {"site": "south"})),
    ("r_ranking", lambda f, r: [(x.value, x.score, x.count) for x in r.ranking("sensor_id", as_of=AS_OF, half_life=timedelta(days=2))],
     lambda: o_ranking("sensor_id", None, timedelta(days=2))),
    ("r_ranking_weighted", lambda f, r: [(x.value, x.score, x.count) for x in r.ranking("quality", weight="value", as_of=AS_OF, half_life=timedelta(hours=30), limit=2)],
     lambda: o_ranking("quality", "value", timedelta(hours=30), 2)),
    ("f_latest", lambda f, r: f.latest(), lambda: o_latest("forecasts", date(1, 1, 1), None, FORECAST_COLUMNS)),
    ("f_latest_selected", lambda f, r: f.latest(since=date(2024, 1, 1), series={"series_id": ["A", "C", "Z"]}, columns=["value"]),
     lambda: o_latest("forecasts", date(2024, 1, 1), {"series_id": ["A", "C", "Z"]}, ["value"])),
    ("r_latest", lambda f, r: r.latest(since=T0), lambda: o_latest("readings", T0, None, READING_COLUMNS)),
    ("r_latest_selected", lambda f, r: r.latest(since=T0, series={"sensor_id": ["s1", "s4"]}, columns=["value", "site"]),
     lambda: o_latest("readings", T0, {"sensor_id": ["s1", "s4"]}, ["value", "site"])),
    ("f_series", lambda f, r: f.series({"series_id": "A"}, D0, D1), lambda: o_series("forecasts", {"series_id": "A"}, D0, D1, FORECAST_COLUMNS)),
    ("r_series", lambda f, r: r.series({"sensor_id": "s3"}, T0, T1, columns=["value"]),
     lambda: o_series("readings", {"sensor_id": "s3"}, T0, T1, ["value"])),
]


@pytest.fixture(scope="module")
def results(engines: Callable[[str], sa.Engine]) -> Callable[[str, str], Any]:
    memo: dict[tuple[str, str], Any] = {}
    calls = {name: call for name, call, _ in CASES}

    def get(backend: str, name: str) -> Any:
        if (backend, name) not in memo:
            engine = engines(backend)
            memo[(backend, name)] = calls[name](TimeSeriesRepository(engine, forecasts), TimeSeriesRepository(engine, readings))
        return memo[(backend, name)]

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[name for name, _, _ in CASES])
def test_method_matches_oracle(results: Callable[[str, str], Any], backend: str, case: Any) -> None:
    name, _call, oracle = case
    found, expected = results(backend, name), oracle()
    assert expected, f"{name}: the oracle is empty, the case proves nothing"
    assert _close(found, expected), f"{name} on {backend}:\n{found}\n!=\n{expected}"


def test_cases_see_duplicates_and_revisions() -> None:
    """The data really holds copies whose newest version differs from another copy."""
    for name in TABLES:
        ids = [row["id"] for row in RAW[name]]
        assert len(ids) > len(set(ids)) + 30
    latest = {r["id"]: r for r in deduplicated("readings")}
    moved = [r for r in RAW["readings"] if r["site"] != latest[r["id"]]["site"]]
    assert moved, "no version changes a filtered column: the outside-filter case proves nothing"


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_are_typed(results: Callable[[str, str], Any], backend: str) -> None:
    rows = results(backend, "r_rows_outside_filter")
    assert all(row["measured_at"].tzinfo is UTC for row in rows)
    assert all(row["received_at"].tzinfo is UTC for row in rows if row["received_at"] is not None)
    forecast = results(backend, "f_rows")[0]
    assert type(forecast["forecast_date"]) is date and isinstance(forecast["horizon"], int)
    assert all(type(b[0]) is date for b in results(backend, "f_buckets_MONTH"))
    assert all(b[0].tzinfo is UTC for b in results(backend, "r_buckets_DAY"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fill_gaps(engines: Callable[[str], sa.Engine], backend: str) -> None:
    f = TimeSeriesRepository(engines(backend), forecasts)
    filled = f.buckets(D0, D1, "MONTH", value="value", aggregates=["sum", "count"], fill_gaps=True)
    found = {b.bucket_start: b for b in f.buckets(D0, D1, "MONTH", value="value", aggregates=["sum", "count"])}
    expected_starts = []
    moment = date(2023, 3, 1)
    while moment < D1:
        expected_starts.append(moment)
        moment = date(moment.year + moment.month // 12, moment.month % 12 + 1, 1)
    assert [b.bucket_start for b in filled] == expected_starts
    assert len(found) < len(expected_starts), "no gap to fill"
    for b in filled:
        # Summation order is the engine's: compare sums to 1e-9, not exactly.
        assert _close(_bucket_tuples([b]), _bucket_tuples([found.get(b.bucket_start, TimeBucket(b.bucket_start, count=0))]))
    r = TimeSeriesRepository(engines(backend), readings)
    hourly = r.buckets(T0, T0 + timedelta(days=1), "HOUR", value=None, aggregates=["count"], fill_gaps=True)
    assert [b.bucket_start for b in hourly] == [T0 + timedelta(hours=n) for n in range(24)]
    assert sum(b.count or 0 for b in hourly) == len(o_rows("readings", T0, T0 + timedelta(days=1), limit=10**6))


def test_bad_arguments_name_the_argument(engines: Callable[[str], sa.Engine]) -> None:
    f = TimeSeriesRepository(engines("duckdb"), forecasts)
    r = TimeSeriesRepository(engines("duckdb"), readings)
    naive = datetime(2024, 3, 1)
    bad: list[tuple[str, Callable[[], Any]]] = [
        ("start", lambda: f.rows(T0, T1)),  # a datetime on a DATE table
        ("start", lambda: r.rows(naive, T1)),
        ("end", lambda: r.rows(T0, D1)),
        ("where", lambda: r.rows(T0, T1, where={"nope": "x"})),
        ("where", lambda: r.rows(T0, T1, where={"site; DROP TABLE readings": "x"})),
        ("where", lambda: f.rows(D0, D1, where={"horizon": "1"})),
        ("where['site']", lambda: r.rows(T0, T1, where={"site": 3})),  # type: ignore[dict-item]
        ("limit", lambda: r.rows(T0, T1, limit=0)),
        ("newest_first", lambda: r.rows(T0, T1, newest_first="yes")),  # type: ignore[arg-type]
        ("bucket", lambda: r.buckets(T0, T1, "fortnight", value="value")),
        ("bucket", lambda: f.buckets(D0, D1, "6 hours", value="value")),
        ("value", lambda: r.buckets(T0, T1, value=None)),
        ("value", lambda: r.buckets(T0, T1, value="site")),
        ("aggregates", lambda: r.buckets(T0, T1, value="value", aggregates=["median"])),  # type: ignore[list-item]
        ("aggregates", lambda: r.buckets(T0, T1, value="value", aggregates=[])),
        ("fill_gaps", lambda: r.buckets(T0, T1, value="value", fill_gaps=1)),  # type: ignore[arg-type]
        ("key", lambda: f.ranking("series_id")),
        ("key", lambda: r.ranking("nope")),
        ("weight", lambda: r.ranking("sensor_id", weight="quality")),
        ("half_life", lambda: r.ranking("sensor_id", half_life=timedelta(0))),
        ("as_of", lambda: r.ranking("sensor_id", as_of=naive)),
        ("series", lambda: f.latest(series={"model_name": ["m1"]})),
        ("series['series_id']", lambda: f.latest(series={"series_id": "A"})),  # type: ignore[dict-item]
        ("since", lambda: f.latest(since=T0)),
        ("columns", lambda: f.latest(columns=["nope"])),
        ("columns", lambda: f.latest(columns="value")),  # type: ignore[arg-type]
        ("key", lambda: f.series({"model_name": "m1"}, D0, D1)),
        ("key['series_id']", lambda: f.series({"series_id": "A\x00"}, D0, D1)),
    ]
    for argument, call in bad:
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert info.value.argument == argument, (argument, info.value)


def test_empty_inputs_return_nothing(engines: Callable[[str], sa.Engine]) -> None:
    f = TimeSeriesRepository(engines("duckdb"), forecasts)
    assert f.latest(series={"series_id": []}) == []
    assert f.rows(D1, D0) == []
    assert f.buckets(D1, D0, value="value", fill_gaps=True) == []


def test_undeclared_table_is_refused() -> None:
    plain = sa.Table("plain", sa.MetaData(), sa.Column("id", sa.String, nullable=False))
    with pytest.raises(SchemaError, match="not declared"):
        TimeSeriesRepository(sa.create_engine("sqlite://"), plain)


def test_repository_satisfies_the_protocol() -> None:
    repository = TimeSeriesRepository(sa.create_engine("sqlite://"), readings)
    queries: TimeSeriesQueries = repository
    assert queries is repository
    assert set(repository.statements) == {"rows", "buckets", "latest", "series", "ranking"}
    assert "ranking" not in TimeSeriesRepository(sa.create_engine("sqlite://"), forecasts).statements


def test_statements_are_built_once() -> None:
    assert rows_statement(readings, ("site",)) is rows_statement(readings, ("site",))
    day = buckets_statement(forecasts, BucketSpec.parse("DAY"), "value", (("avg", "avg"),))
    assert day is buckets_statement(forecasts, BucketSpec.parse("24 hours"), "value", (("avg", "avg"),))
    assert ranking_statement(readings, "sensor_id") is ranking_statement(readings, "sensor_id")


# --- partition pruning: every statement shape ----------------------------------------------

PARTITION_COLUMNS = {"forecasts": "forecast_date", "readings": "measured_at"}


def _shapes() -> dict[str, tuple[sa.Select[Any], dict[str, Any]]]:
    """Every statement shape the generic repository builds for the two tables, with runnable parameters."""
    shapes: dict[str, tuple[sa.Select[Any], dict[str, Any]]] = {}
    for name, table, start, end, since in (("forecasts", forecasts, D0, D1, D0), ("readings", readings, T0, T1, T0)):
        inside = "model_name" if name == "forecasts" else "sensor_id"
        outside = "site" if name == "readings" else None
        for where in [(), (inside,), *([(outside,), (inside, outside)] if outside else [])]:
            for newest in (True, False):
                shapes[f"{name}.rows{where}{newest}"] = (
                    rows_statement(table, where, newest),
                    {"start": start, "end": end, "limit": 10, **dict.fromkeys(where, "x")},
                )
        buckets = ["DAY", "WEEK", "MONTH", "QUARTER", "YEAR", "7 days"] + (["6 hours", "15 minutes"] if outside else [])
        for bucket in buckets:
            for value, aggregates, where in [
                ("value", (("avg", "avg"), ("max", "max"), ("min", "min"), ("sum", "sum"), ("count", "count")), ()),
                (None, (("count", "count"),), (inside,)),
                *([("value", (("sum", "sum"),), (outside,))] if outside else []),
            ]:
                shapes[f"{name}.buckets[{bucket}]{value}{where}"] = (
                    buckets_statement(table, BucketSpec.parse(bucket), value, aggregates, where),
                    {"start": start, "end": end, **dict.fromkeys(where, None)},
                )
        series_column = "series_id" if name == "forecasts" else "sensor_id"
        for filters in ((), (series_column,)):
            shapes[f"{name}.latest{filters}"] = (
                latest_statement(table, ("value",), filters),
                {"since": since, **{f"{column}s": ["A", "s1"] for column in filters}},
            )
        shapes[f"{name}.series"] = (series_statement(table, ("value",)), {"start": start, "end": end, series_column: "A"})
    for key, weight in (("sensor_id", None), ("site", "value")):
        shapes[f"readings.ranking[{key},{weight}]"] = (
            ranking_statement(readings, key, weight),
            {"as_of": AS_OF, "window_start": T0, "half_life_seconds": 3600.0, "limit": 5},
        )
    return shapes


SHAPES = _shapes()


def _bigquery_sql(statement: sa.Select[Any]) -> str:
    names = statement.compile(dialect=bigquery_dialect()).params
    return compile_bigquery(statement, **dict.fromkeys(names)).sql


def _bare_bound(term: exp.Expression, column: str, kinds: tuple[type, ...]) -> bool:
    return (
        isinstance(term, kinds)
        and isinstance(term.this, exp.Column)
        and term.this.name == column
        and isinstance(term.expression, exp.Parameter)
    )


def pruning_problems(sql: str, needs_upper: bool) -> list[str]:
    problems = []
    for table in sqlglot.parse_one(sql, read="bigquery").find_all(exp.Table):
        column = PARTITION_COLUMNS[table.name]
        select = table.find_ancestor(exp.Select)
        where = select.args.get("where") if select else None
        condition = where.this if where is not None else None
        terms = list(condition.flatten()) if isinstance(condition, exp.And) else [condition] if condition else []
        if not any(_bare_bound(t, column, (exp.GTE, exp.GT)) for t in terms):
            problems.append(f"{table.name}: no lower bound on bare {column}")
        if needs_upper and not any(_bare_bound(t, column, (exp.LT, exp.LTE)) for t in terms):
            problems.append(f"{table.name}: no upper bound on bare {column}")
    return problems


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_prunes_partitions(shape: str) -> None:
    statement, params = SHAPES[shape]
    # latest() has only a lower bound ("since"): what it asks for, and enough for require_partition_filter.
    assert pruning_problems(_bigquery_sql(statement), needs_upper="since" not in params) == []


def test_the_pruning_check_can_fail() -> None:
    col = readings.c.measured_at
    start = sa.bindparam("start", type_=col.type)
    assert pruning_problems(_bigquery_sql(sa.select(readings.c.id).where(sa.func.date(col) >= start)), False)
    assert pruning_problems(_bigquery_sql(sa.select(readings.c.id).where(col >= start)), True)


def test_every_shape_runs_with_require_partition_filter(engines: Callable[[str], sa.Engine]) -> None:
    """On the stand-in, whose tables require a partition filter, every shape runs."""
    engine = engines("bigquery")
    with engine.connect() as connection:
        for shape, (statement, params) in SHAPES.items():
            connection.execute(statement, params).all()
        with pytest.raises(Exception, match="without a filter"):
            connection.execute(sa.select(sa.func.count()).select_from(readings)).all()
