"""Every repository method, executed on DuckDB and on the BigQuery stand-in, against a Python oracle.

The oracle (tests/repository_data.py) recomputes each answer from the
de-duplicated generated rows: decay scores must match to 1e-9 relative,
bucket boundaries, counts, ids and ordering exactly; the two engines must
agree with each other; loading the same rows again must change nothing; and
a revised economic observation must win.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import repository_data as data
from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.repositories import (
    ComtradeRepository,
    EntityMentionRepository,
    EventRepository,
    FredRepository,
    RecentEvent,
    WorldBankRepository,
)
from bqrepo.settings import Settings

DATASET = data.generate()
BACKENDS = ["duckdb", "bigquery"]


class Repos:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.events = EventRepository(engine)
        self.mentions = EntityMentionRepository(engine)
        self.fred = FredRepository(engine)
        self.world_bank = WorldBankRepository(engine)
        self.comtrade = ComtradeRepository(engine)


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


def _fresh(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Repos:
    settings = _settings(backend, tmp, request)
    upgrade(settings)
    return Repos(create_engine(settings))


@pytest.fixture(scope="module")
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Repos]]:
    """Per backend, built on first use: a migrated database holding DATASET once."""
    cache: dict[str, Repos] = {}

    def get(backend: str) -> Repos:
        if backend not in cache:
            repos = _fresh(backend, tmp_path_factory.mktemp(backend), request)
            data.load(repos.engine, DATASET)
            cache[backend] = repos
        return cache[backend]

    yield get
    for repos in cache.values():
        repos.engine.dispose()


@pytest.fixture(scope="module")
def results(loaded: Callable[[str], Repos]) -> Callable[[str, str], list[tuple[Any, ...]]]:
    """The result of a battery case on a backend, computed once per module (the stand-in is slow)."""
    memo: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    calls = {name: call for name, call, _oracle in CASES}

    def get(backend: str, name: str) -> list[tuple[Any, ...]]:
        if (backend, name) not in memo:
            memo[(backend, name)] = calls[name](loaded(backend))
        return memo[(backend, name)]

    return get


# --- comparing results ----------------------------------------------------------------


def _close(a: Any, b: Any, rel: float = 1e-9) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    return a == b


def assert_close(actual: Any, expected: Any, rel: float = 1e-9) -> None:
    assert len(actual) == len(expected), (len(actual), len(expected), actual[:3], expected[:3])
    for index, (a, e) in enumerate(zip(actual, expected)):
        assert _close(a, e, rel), f"row {index}: {a!r} != {e!r}"


def _tuples(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(row, f) for f in row.__dataclass_fields__) for row in rows]


# --- the battery: every method with its oracle ------------------------------------------

START, END = data.BASE, data.BASE + timedelta(days=45)
BUCKETS: list[tuple[Any, str | int]] = [
    ("DAY", 86400),
    ("6 hours", 6 * 3600),
    ("15 minutes", 900),
    (timedelta(hours=1), 3600),
    ("90 seconds", 90),
    ("WEEK", "WEEK"),
    ("MONTH", "MONTH"),
    ("QUARTER", "QUARTER"),
    ("YEAR", "YEAR"),
]


def battery() -> list[tuple[str, Callable[[Repos], list[tuple[Any, ...]]], Callable[[], list[tuple[Any, ...]]]]]:
    """(name, call on repositories, oracle) for every method and a spread of arguments."""
    cases: list[Any] = []

    def recent(**kw: Any) -> None:
        start, end = kw.pop("start", START), kw.pop("end", END)

        def call(r: Repos) -> list[tuple[Any, ...]]:
            return _tuples(r.events.recent(start, end, **kw))

        def oracle() -> list[tuple[Any, ...]]:
            fields = list(RecentEvent.__dataclass_fields__)
            return [tuple(row[f] for f in fields) for row in data.o_recent(DATASET, start, end, **kw)]

        cases.append((f"recent{kw}{start:%d}", call, oracle))

    recent(limit=1000)
    recent(limit=7)
    recent(start=datetime(2024, 3, 4, tzinfo=UTC), end=datetime(2024, 3, 11, tzinfo=UTC), limit=1000)
    for event_type in [*data.EVENT_TYPES, "revised", "none-such"]:
        recent(event_type=event_type, limit=1000)
    for source in data.SOURCES:
        recent(source_name=source, limit=1000)
    recent(event_type=data.EVENT_TYPES[0], source_name=data.SOURCES[2], limit=1000)

    for bucket, oracle_bucket in BUCKETS:
        for event_type in (None, data.INJECTIONS[0]):

            def call(r: Repos, b: Any = bucket, t: Any = event_type) -> list[tuple[Any, ...]]:
                return _tuples(r.events.risk_trends(START, END, bucket=b, event_type=t))

            def oracle(b: Any = oracle_bucket, t: Any = event_type) -> list[tuple[Any, ...]]:
                return data.o_risk_trends(DATASET, START, END, b, t)

            cases.append((f"risk_trends[{bucket}, {event_type}]", call, oracle))

    for metric in ("mentions", "risk"):
        for half_life, limit, cutoff in [
            (timedelta(days=7), 20, None),
            (timedelta(days=1), 5, None),
            (timedelta(hours=12), 20, timedelta(days=3)),
        ]:

            def call(r: Repos, m: Any = metric, h: Any = half_life, n: Any = limit, c: Any = cutoff) -> list[tuple[Any, ...]]:
                return _tuples(r.mentions.trending(metric=m, limit=n, half_life=h, as_of=data.AS_OF, cutoff=c))

            def oracle(m: Any = metric, h: Any = half_life, n: Any = limit, c: Any = cutoff) -> list[tuple[Any, ...]]:
                return data.o_trending(DATASET, m, n, h, data.AS_OF, c or h * 10, timedelta(days=1))

            cases.append((f"trending[{metric}, {half_life}, {limit}, {cutoff}]", call, oracle))

    for series in ["GDP", data.INJECTIONS[0], "none-such"]:
        cases.append(
            (
                f"fred.series[{series}]",
                lambda r, s=series: _tuples(r.fred.series(s, date(2021, 6, 1), date(2023, 1, 1))),
                lambda s=series: data.o_fred_series(DATASET, s, date(2021, 6, 1), date(2023, 1, 1)),
            )
        )
    for ids, since in [(None, date(1, 1, 1)), (["UNRATE", data.INJECTIONS[0]], date(1, 1, 1)), (None, date(2023, 6, 1))]:
        cases.append(
            (
                f"fred.latest[{ids}, {since}]",
                lambda r, i=ids, s=since: _tuples(r.fred.latest(i, since=s)),
                lambda i=ids, s=since: data.o_fred_latest(DATASET, i, s),
            )
        )
    cases.append(
        (
            "world_bank.series",
            lambda r: _tuples(r.world_bank.series(data.INJECTIONS[1], data.INJECTIONS[2], date(2000, 1, 1), date(2020, 1, 1))),
            lambda: data.o_wb_series(DATASET, data.INJECTIONS[1], data.INJECTIONS[2], date(2000, 1, 1), date(2020, 1, 1)),
        )
    )
    for indicators, countries in [(None, None), ([data.INJECTIONS[1]], None), (None, ["VEN"]), (["NY.GDP.MKTP.CD"], ["COL", data.INJECTIONS[2]])]:
        cases.append(
            (
                f"world_bank.latest[{indicators}, {countries}]",
                lambda r, i=indicators, c=countries: _tuples(r.world_bank.latest(i, c)),
                lambda i=indicators, c=countries: data.o_wb_latest(DATASET, i, c),
            )
        )
    for kw in [
        {},
        {"commodity_codes": ["27", data.INJECTIONS[0]]},
        {"reporter_code": data.INJECTIONS[3]},
        {"trade_flow": "X", "reporter_code": "862"},
    ]:
        cases.append(
            (
                f"comtrade.totals{kw}",
                lambda r, k=kw: _tuples(r.comtrade.totals(date(2022, 3, 1), date(2023, 7, 1), **k)),
                lambda k=kw: data.o_comtrade(DATASET, date(2022, 3, 1), date(2023, 7, 1), **k),
            )
        )
    return cases


CASES = battery()
# Every method and statement variant once: the re-ingest test runs these twice on a fresh database.
REINGEST_CASES = [
    case
    for case in CASES
    if case[0]
    in {
        "recent{'limit': 1000}01",
        "recent{'event_type': 'revised', 'limit': 1000}01",
        "risk_trends[DAY, None]",
        "risk_trends[15 minutes, None]",
        "risk_trends[WEEK, None]",
        "risk_trends[MONTH, x'; DROP TABLE events; --]",
        "trending[mentions, 7 days, 0:00:00, 20, None]",
        "trending[risk, 7 days, 0:00:00, 20, None]",
        "fred.series[GDP]",
        "fred.latest[None, 0001-01-01]",
        "fred.latest[['UNRATE', \"x'; DROP TABLE events; --\"], 0001-01-01]",
        "world_bank.series",
        "world_bank.latest[None, None]",
        "world_bank.latest[['NY.GDP.MKTP.CD'], ['COL', 'back\\\\slash ` tick @start %(end)s %s']]",
        "comtrade.totals{}",
        "comtrade.totals{'commodity_codes': ['27', \"x'; DROP TABLE events; --\"]}",
    }
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_method_matches_oracle(results: Callable[[str, str], Any], backend: str, case: Any) -> None:
    name, _call, oracle = case
    assert_close(results(backend, name), oracle())


def test_reingest_cases_cover_every_method() -> None:
    assert len(REINGEST_CASES) == 16


def test_oracle_cases_are_not_vacuous() -> None:
    """Most cases must return rows, or the comparisons above would prove little."""
    empty = [name for name, _call, oracle in CASES if not oracle()]
    assert empty == ["recent{'event_type': 'none-such', 'limit': 1000}01", "fred.series[none-such]"]


def test_engines_agree(results: Callable[[str, str], Any]) -> None:
    for name, _call, _oracle in CASES:
        a, b = results("duckdb", name), results("bigquery", name)
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            assert _close(x, y, 1e-12), f"{name}: {x!r} != {y!r}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_timestamps_are_aware_utc(loaded: Callable[[str], Repos], backend: str) -> None:
    repos = loaded(backend)
    event = repos.events.recent(START, END, limit=1)[0]
    bucket = repos.events.risk_trends(START, END, bucket="WEEK")[0]
    for moment in (event.mentioned_at, event.created_at, bucket.bucket_start):
        assert moment.tzinfo is UTC


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_open_range_and_exact_boundaries(loaded: Callable[[str], Repos], backend: str) -> None:
    """An event at exactly ``end`` is excluded, one at exactly ``start`` included, in the bucket it starts."""
    monday = datetime(2024, 3, 4, tzinfo=UTC)
    repos = loaded(backend)
    rows = repos.events.recent(monday, monday + timedelta(days=7), limit=1000)
    times = {row.mentioned_at for row in rows}
    assert monday in times
    assert monday + timedelta(days=7) not in times
    assert monday - timedelta(microseconds=1) not in times
    buckets = repos.events.risk_trends(monday - timedelta(hours=1), monday + timedelta(hours=1), bucket="DAY")
    assert [b.bucket_start for b in buckets] == [monday - timedelta(days=1), monday]
    weeks = repos.events.risk_trends(monday - timedelta(microseconds=1), monday + timedelta(microseconds=2), bucket="WEEK")
    assert [(w.bucket_start, w.event_count) for w in weeks] == [(monday - timedelta(days=7), 1), (monday, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bucket", ["DAY", "6 hours", "MONTH"])
def test_fill_gaps(loaded: Callable[[str], Repos], backend: str, bucket: str) -> None:
    """Every bucket overlapping the range, in order, empty ones as zero counts with None risk."""
    repos = loaded(backend)
    start = datetime(2024, 2, 20, 3, tzinfo=UTC)  # before the first event: leading empty buckets
    end = datetime(2024, 5, 1, tzinfo=UTC)  # after the last: trailing empty buckets
    filled = repos.events.risk_trends(start, end, bucket=bucket, fill_gaps=True)
    sparse = {b.bucket_start: b for b in repos.events.risk_trends(start, end, bucket=bucket)}
    oracle_bucket = {"DAY": 86400, "6 hours": 21600, "MONTH": "MONTH"}[bucket]
    expected = []
    moment = data.o_floor(start, oracle_bucket)
    while moment < end:
        expected.append(moment)
        following = moment + timedelta(days=32) if bucket == "MONTH" else moment + timedelta(seconds=oracle_bucket)  # type: ignore[arg-type]
        moment = data.o_floor(following, oracle_bucket)
    assert [b.bucket_start for b in filled] == expected
    empties = [b for b in filled if b.bucket_start not in sparse]
    assert empties and all(b.event_count == 0 and b.avg_risk is None and b.max_risk is None for b in empties)
    assert_close(_tuples([b for b in filled if b.bucket_start in sparse]), _tuples(list(sparse.values())), 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_injection_strings_come_back_as_data(loaded: Callable[[str], Repos], backend: str) -> None:
    repos = loaded(backend)
    rows = repos.events.recent(START, END, event_type=data.INJECTIONS[0], limit=1000)
    assert rows and all(row.event_type == data.INJECTIONS[0] for row in rows)
    everything = repos.events.recent(data.BASE - timedelta(days=100), data.BASE + timedelta(days=100), limit=10_000)
    assert {row.title for row in everything} >= {data.INJECTIONS[0], data.INJECTIONS[3]}
    assert {row.metadata["k"] for row in everything} == set(data.INJECTIONS)
    entities = {t.entity_id for t in repos.mentions.trending(limit=100, as_of=data.AS_OF)}
    assert {data.INJECTIONS[2], data.INJECTIONS[3]} <= entities
    # a string parameter is a value to compare, never SQL
    ever = (date(1900, 1, 1), date(2100, 1, 1))
    for text in (value + "x" for value in data.INJECTIONS):  # stored nowhere
        assert repos.comtrade.totals(*ever, reporter_code=text) == []
        assert repos.comtrade.totals(*ever, trade_flow=text) == []
        assert repos.world_bank.series(text, text, *ever) == []
        assert repos.events.recent(START, END, source_name=text) == []
    assert repos.comtrade.totals(*ever)  # ... while the tables still answer
    # The tables are still there and whole.
    assert len(everything) == len({r["id"] for r in DATASET.tables["events"]})


@pytest.mark.parametrize("backend", BACKENDS)
def test_revised_observations_win(loaded: Callable[[str], Repos], backend: str) -> None:
    repos = loaded(backend)
    latest = {v.series_id: v for v in repos.fred.latest()}
    assert latest[data.INJECTIONS[0]].value == -1.5
    revised_event = repos.events.recent(START, END, event_type="revised", limit=1000)
    assert len(revised_event) == 10 and {e.risk_score for e in revised_event} == {9.999}


@pytest.mark.parametrize("backend", BACKENDS)
def test_ingesting_again_changes_no_result(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Load, query everything; load the very same rows again; every answer is unchanged."""
    repos = _fresh(backend, tmp_path, request)
    try:
        data.load(repos.engine, DATASET)
        first = {name: call(repos) for name, call, _oracle in REINGEST_CASES}
        data.load(repos.engine, DATASET)
        second = {name: call(repos) for name, call, _oracle in REINGEST_CASES}
        # Exactly the same rows; averages and sums only up to summation order.
        for name in first:
            assert_close(second[name], first[name], rel=1e-12)
        # ... and a late revision of an economic observation replaces the value.
        row = DATASET.tables["fred_indicators"][5]
        revision = data.Dataset({"fred_indicators": [dict(row, value=4242.0, ingested_at=datetime(2025, 1, 1, tzinfo=UTC))]})
        data.load(repos.engine, revision)
        points = repos.fred.series(row["series_id"], row["date"], row["date"] + timedelta(days=1))
        assert [(p.date, p.value) for p in points] == [(row["date"], 4242.0)]
    finally:
        repos.engine.dispose()


def test_bad_arguments_fail_clearly(loaded: Callable[[str], Repos]) -> None:
    from bqrepo.errors import InvalidArgumentError

    repos = loaded("duckdb")
    with pytest.raises(InvalidArgumentError, match="start: .*naive"):
        repos.events.recent(datetime(2024, 3, 1), END)
    with pytest.raises(InvalidArgumentError, match="limit: must be an int from 1"):
        repos.events.recent(START, END, limit=0)
    with pytest.raises(InvalidArgumentError, match="event_type: must be a str"):
        repos.events.recent(START, END, event_type=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="metric: must be 'mentions' or 'risk'"):
        repos.mentions.trending(metric="popularity")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="half_life: must be a positive timedelta"):
        repos.mentions.trending(half_life=timedelta(0))
    with pytest.raises(InvalidArgumentError, match="cutoff: must be a positive timedelta"):
        repos.mentions.trending(cutoff=timedelta(days=-1))
    with pytest.raises(InvalidArgumentError, match="series_ids: must be a list of str"):
        repos.fred.latest("GDP")
    with pytest.raises(InvalidArgumentError, match=r"commodity_codes\[1\]: must be a str"):
        repos.comtrade.totals(date(2022, 1, 1), date(2023, 1, 1), commodity_codes=["27", 27])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="start: must be a datetime.date"):
        repos.fred.series("GDP", datetime(2022, 1, 1, tzinfo=UTC), date(2023, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="fill_gaps: would return more than 100,000 buckets"):
        repos.events.risk_trends(START, END, bucket="1 second", fill_gaps=True)
    with pytest.raises(InvalidArgumentError, match="bucket: .*unknown unit"):
        repos.events.risk_trends(START, END, bucket="fortnight")


def test_empty_inputs_return_nothing(loaded: Callable[[str], Repos]) -> None:
    repos = loaded("duckdb")
    assert repos.fred.latest([]) == []
    assert repos.world_bank.latest(country_codes=[]) == []
    assert repos.comtrade.totals(date(2022, 1, 1), date(2023, 1, 1), commodity_codes=[]) == []
    assert repos.events.risk_trends(END, START) == []
    assert repos.events.risk_trends(START, START, fill_gaps=True) == []


def test_statements_are_built_once() -> None:
    from bqrepo.constructs import BucketSpec
    from bqrepo.repositories.events import recent_statement, risk_trends_statement

    assert EventRepository.statements["recent"] is recent_statement
    assert risk_trends_statement(BucketSpec.parse("DAY")) is risk_trends_statement(BucketSpec.parse("24 hours"))
    assert EventRepository.statements["risk_trends"] is risk_trends_statement(BucketSpec.parse(timedelta(days=1)))
