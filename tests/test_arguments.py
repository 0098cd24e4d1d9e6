"""Hostile and out-of-range arguments to every public read method and the service (issue 10).

Every answer must be data or one :class:`InvalidArgumentError` naming the
argument, never a driver's error or a Python crash, and the database must be
unchanged afterwards. The explicit cases are the ones the issue lists; the
generated test draws injection payloads, lone surrogates, NUL, extreme
timestamps, dates, ints, timedeltas and bucket widths for every argument, on
DuckDB and (fewer examples) on the BigQuery stand-in. Values at the very ends
of the accepted ranges are run on both engines, so "accepted" means "runs".
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import repository_data as data
from bqrepo.engine import create_engine
from bqrepo.errors import InvalidArgumentError
from bqrepo.migrate import upgrade
from bqrepo.repositories import (
    ComtradeRepository,
    EntityMentionRepository,
    EventRepository,
    FredRepository,
    WorldBankRepository,
)
from bqrepo.repositories.events import MAX_BUCKET_SECONDS
from bqrepo.schema import metadata
from bqrepo.service import TimeSeriesService
from bqrepo.settings import Settings
from bqrepo.writers import writer_for

DATASET = data.generate()
BACKENDS = ["duckdb", "bigquery"]
MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)
PLUS_5 = timezone(timedelta(hours=5))
MINUS_5 = timezone(-timedelta(hours=5))

PAYLOADS = [
    *data.INJECTIONS,
    "'; DELETE FROM events; --",
    "' OR '1'='1",
    "1; UPDATE fred_indicators SET value = 0; --",
    "events` WHERE TRUE; DROP TABLE `events",
    "x') UNION ALL SELECT * FROM events --",
    "@start",
    "%(limit)s",
    ":end",
    "?",
    "$1",
    "\\'",
    "\udcff",  # what Python makes of the byte 0xff on a command line
    "ok\udc80tail",
    "a\x00b",
    "",
    " ",
    "\n",
    "DAY\n",
    "ünï ☃ 😀 \u202e",
    "x" * 5_000,
]


class Repos:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.events = EventRepository(engine)
        self.mentions = EntityMentionRepository(engine)
        self.wide_mentions = EntityMentionRepository(engine, event_margin=timedelta(days=1_000_000))
        self.fred = FredRepository(engine)
        self.world_bank = WorldBankRepository(engine)
        self.comtrade = ComtradeRepository(engine)
        self.service = TimeSeriesService(self.events, self.mentions, writer_for(engine))


def _settings(backend: str, tmp: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "duckdb":
        return Settings(duckdb_path=str(tmp / "arguments.duckdb"))
    standin = request.getfixturevalue("standin")
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    return Settings(
        project_id=standin.project,
        dataset=dataset,
        url=f"bigquery://{standin.project}/{dataset}",
        emulator_host=standin.host,
    )


@pytest.fixture(scope="module")
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Repos]]:
    """Per backend, built on first use: a migrated database holding the shared test dataset."""
    cache: dict[str, Repos] = {}

    def get(backend: str) -> Repos:
        if backend not in cache:
            settings = _settings(backend, tmp_path_factory.mktemp(backend), request)
            upgrade(settings)
            repos = Repos(create_engine(settings))
            data.load(repos.engine, DATASET)
            cache[backend] = repos
        return cache[backend]

    yield get
    for repos in cache.values():
        repos.engine.dispose()


def fingerprint(engine: sa.Engine) -> str:
    """A digest of every row of every table: any change by an injection shows."""
    digest = hashlib.sha256()
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            partition = next(c for c in table.c if c.name in ("mentioned_at", "date", "period"))
            low, high = (MIN, MAX) if isinstance(partition.type, sa.TIMESTAMP) else (date.min, date.max)
            columns = [sa.cast(c, sa.String()) for c in table.c]
            rows = connection.execute(sa.select(*columns).where(partition >= low, partition <= high)).all()
            digest.update(f"{table.name}:{sorted(map(repr, rows))}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# --- the cases the issue lists ------------------------------------------------------------


def _issue_cases(r: Repos) -> list[tuple[str, Callable[[], Any]]]:
    start, end = data.BASE, data.BASE + timedelta(days=30)
    return [
        ("limit", lambda: r.events.recent(start, end, limit=2**63)),
        ("limit", lambda: r.mentions.trending(limit=2**63)),
        ("bucket", lambda: r.events.risk_trends(start, end, bucket="99999999999999999999 seconds")),
        ("bucket", lambda: r.events.risk_trends(start, end, bucket="99999999999999999999 seconds", fill_gaps=True)),
        ("bucket", lambda: r.events.risk_trends(start, end, bucket=f"{MAX_BUCKET_SECONDS + 1} seconds")),
        ("cutoff", lambda: r.mentions.trending(cutoff=timedelta(days=1_000_000))),
        ("as_of", lambda: r.mentions.trending(as_of=datetime(1, 1, 1, tzinfo=PLUS_5))),
        ("end", lambda: r.events.recent(start, datetime(9999, 12, 31, 23, tzinfo=MINUS_5))),
        ("start", lambda: r.events.risk_trends(MIN, end, bucket="7 days")),
        ("event_type", lambda: r.events.recent(start, end, event_type="\udcff")),
        ("source_name", lambda: r.events.recent(start, end, source_name="\udcff")),
        ("event_type", lambda: r.events.risk_trends(start, end, event_type="\udcff")),
        ("series_id", lambda: r.fred.series("\udcff", date(2000, 1, 1), date(2030, 1, 1))),
        ("series_ids[1]", lambda: r.fred.latest(["GDP", "\udcff"])),
        ("country_code", lambda: r.world_bank.series("NY.GDP", "\udcff", date(2000, 1, 1), date(2030, 1, 1))),
        ("reporter_code", lambda: r.comtrade.totals(date(2000, 1, 1), date(2030, 1, 1), reporter_code="\udcff")),
        ("event_type", lambda: r.events.recent(start, end, event_type="a\x00b")),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_issues_arguments_are_clear_errors(backend: str, loaded: Callable[[str], Repos]) -> None:
    repos = loaded(backend)
    for argument, call in _issue_cases(repos):
        with pytest.raises(InvalidArgumentError) as caught:
            call()
        assert caught.value.argument == argument, caught.value


def test_messages_say_the_accepted_range(loaded: Callable[[str], Repos]) -> None:
    r = loaded("duckdb")
    with pytest.raises(InvalidArgumentError, match=r"limit: must be an int from 1 to 2\*\*63-1"):
        r.events.recent(data.BASE, data.AS_OF, limit=2**63)
    with pytest.raises(InvalidArgumentError, match="a fixed bucket is 1 to 315,537,897,600 seconds"):
        r.events.risk_trends(data.BASE, data.AS_OF, bucket="99999999999999999999 seconds")
    with pytest.raises(InvalidArgumentError, match="outside the TIMESTAMP range 0001-01-01T00:00:00Z to 9999-12-31"):
        r.mentions.trending(as_of=datetime(1, 1, 1, tzinfo=PLUS_5))
    with pytest.raises(InvalidArgumentError, match="cutoff: .* reaches before 0001-01-01"):
        r.mentions.trending(cutoff=timedelta(days=1_000_000))
    with pytest.raises(InvalidArgumentError, match="lone surrogate"):
        r.events.recent(data.BASE, data.AS_OF, event_type="\udcff")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_ends_of_every_range_run(backend: str, loaded: Callable[[str], Repos]) -> None:
    """The largest and smallest accepted values reach the engine and come back as data."""
    r = loaded(backend)
    everything = data.o_recent(DATASET, MIN, MAX, limit=10**6)
    assert [e.id for e in r.events.recent(MIN, MAX, limit=2**63 - 1)] == [e["id"] for e in everything]
    assert r.events.recent(datetime(1, 1, 1, 5, tzinfo=PLUS_5), datetime(9999, 12, 31, 18, tzinfo=MINUS_5))
    assert sum(b.event_count for b in r.events.risk_trends(MIN, MAX, bucket="YEAR")) == len(everything)
    assert sum(b.event_count for b in r.events.risk_trends(MIN, MAX, bucket="WEEK")) == len(everything)
    assert sum(b.event_count for b in r.events.risk_trends(MIN, MAX, bucket="DAY")) == len(everything)
    widest = r.events.risk_trends(datetime(1970, 1, 1, tzinfo=UTC), MAX, bucket=f"{MAX_BUCKET_SECONDS} seconds", fill_gaps=True)
    assert [b.bucket_start for b in widest] == [datetime(1970, 1, 1, tzinfo=UTC)]
    assert widest[0].event_count == len(everything)
    last = r.events.risk_trends(datetime(9990, 1, 1, tzinfo=UTC), MAX, bucket="YEAR", fill_gaps=True)
    assert [b.bucket_start.year for b in last] == list(range(9990, 10000))
    for metric in ("mentions", "risk"):
        for as_of in (MIN, MAX):
            assert r.mentions.trending(metric, as_of=as_of, half_life=timedelta(days=1_000_000)) == [] or as_of == MAX
            assert isinstance(r.mentions.trending(metric, as_of=as_of, half_life=timedelta.max), list)
            assert isinstance(r.wide_mentions.trending(metric, as_of=as_of), list)
    # a half-life of a million days scans all history and weighs every mention about 1
    flat = r.wide_mentions.trending("mentions", limit=2**63 - 1, as_of=data.AS_OF, half_life=timedelta(days=1_000_000))
    assert sum(t.mentions for t in flat) == len([m for m in DATASET.latest("entity_mentions", "mentioned_at")
                                               if m["mentioned_at"] <= data.AS_OF])
    assert r.fred.series("GDPC1", date.min, date.max) == r.fred.series("GDPC1", date(1900, 1, 1), date(2100, 1, 1))
    assert r.fred.latest(since=date.max) == []
    assert r.world_bank.latest(since=date.min)
    assert r.comtrade.totals(date.min, date.max)
    assert r.service.get_recent_events(end=datetime(1, 1, 2, tzinfo=UTC)) == []


# --- generated arguments ----------------------------------------------------------------------

_ZONES = st.sampled_from([UTC, PLUS_5, MINUS_5, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12, minutes=59))])
TEXT = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates and NUL included
)
GOOD_TEXT = st.sampled_from([*data.EVENT_TYPES, *data.SOURCES, "GDPC1", "UNRATE", "NY.GDP.MKTP.CD", "VEN", "27", "M", "X"])
ANYTHING = st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=3), st.booleans(), st.lists(TEXT, max_size=2))
TIMESTAMPS = st.one_of(
    st.datetimes(min_value=datetime(2024, 2, 1), max_value=datetime(2024, 4, 30), timezones=_ZONES),
    st.datetimes(timezones=_ZONES),
    st.sampled_from([MIN, MAX, datetime(1, 1, 1, tzinfo=PLUS_5), datetime(9999, 12, 31, 23, tzinfo=MINUS_5), data.AS_OF]),
    st.datetimes(),  # naive
    st.dates(),
    TEXT,
)
SPANS = st.one_of(
    st.timedeltas(),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(0), timedelta(microseconds=1), timedelta(days=1_000_000)]),
    st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=60)),
    st.floats(),
)
COUNTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**63 - 1, 2**63, 2**64, True]),
    st.integers(min_value=1, max_value=50),
    st.floats(),
    TEXT,
)
DATES = st.one_of(st.dates(), st.sampled_from([date.min, date.max]), st.dates(date(1990, 1, 1), date(2030, 1, 1)), st.datetimes(), TEXT)
_UNITS = ["second", "seconds", "minute", "hours", "DAY", "days", "week", "month", "QUARTER", "year", "fortnight"]
BUCKETS = st.one_of(
    st.sampled_from(["DAY", "WEEK", "MONTH", "QUARTER", "YEAR", "6 hours", "15 minutes", "1 second", "2 weeks", "0 days"]),
    st.builds(lambda n, unit: f"{n} {unit}", st.integers(min_value=-5, max_value=10**25), st.sampled_from(_UNITS)),
    st.timedeltas(),
    st.sampled_from([f"{MAX_BUCKET_SECONDS} seconds", f"{MAX_BUCKET_SECONDS + 1} seconds", "9" * 5_000 + " seconds"]),
    TEXT,
)


def _draw(d: st.DataObject, strategy: st.SearchStrategy[Any], good: st.SearchStrategy[Any] | None = None) -> Any:
    """Mostly hostile values; sometimes good ones (so the query runs) or values of the wrong kind."""
    choice = d.draw(st.integers(0, 9))
    if choice == 0:
        return d.draw(ANYTHING)
    if good is not None and choice <= 3:
        return d.draw(good)
    return d.draw(strategy)


def _optional(d: st.DataObject, strategy: st.SearchStrategy[Any]) -> Any:
    return None if d.draw(st.booleans()) else _draw(d, strategy, GOOD_TEXT)


def _lists(d: st.DataObject) -> Any:
    if d.draw(st.integers(0, 4)) == 0:
        return d.draw(st.one_of(ANYTHING, TEXT))
    return d.draw(st.lists(st.one_of(TEXT, GOOD_TEXT), max_size=4))


def _call(r: Repos, d: st.DataObject) -> tuple[dict[str, Any], Callable[[], Any]]:
    """One public read method with drawn arguments, and the arguments by name."""
    method = d.draw(st.integers(0, 11))
    good_day = st.datetimes(min_value=datetime(2024, 2, 20), max_value=datetime(2024, 3, 25), timezones=_ZONES)
    good_date = st.dates(date(1990, 1, 1), date(2030, 1, 1))
    if method == 0:
        a = {"start": _draw(d, TIMESTAMPS, good_day), "end": _draw(d, TIMESTAMPS, good_day),
             "event_type": _optional(d, TEXT), "source_name": _optional(d, TEXT), "limit": _draw(d, COUNTS)}
        return a, lambda: r.events.recent(**a)
    if method == 1:
        a = {"start": _draw(d, TIMESTAMPS, good_day), "end": _draw(d, TIMESTAMPS, good_day),
             "bucket": _draw(d, BUCKETS), "event_type": _optional(d, TEXT), "fill_gaps": d.draw(st.one_of(st.booleans(), ANYTHING))}
        return a, lambda: r.events.risk_trends(**a)
    if method in (2, 3):
        repository = r.mentions if method == 2 else r.wide_mentions
        a = {"metric": _draw(d, st.one_of(st.sampled_from(["mentions", "risk"]), TEXT), st.sampled_from(["mentions", "risk"])),
             "limit": _draw(d, COUNTS), "half_life": _draw(d, SPANS),
             "as_of": None if d.draw(st.booleans()) else _draw(d, TIMESTAMPS, good_day),
             "cutoff": None if d.draw(st.booleans()) else _draw(d, SPANS)}
        return a, lambda: repository.trending(**a)
    if method == 4:
        a = {"series_id": _draw(d, TEXT, GOOD_TEXT), "start": _draw(d, DATES, good_date), "end": _draw(d, DATES, good_date)}
        return a, lambda: r.fred.series(**a)
    if method == 5:
        a = {"series_ids": None if d.draw(st.booleans()) else _lists(d), "since": _draw(d, DATES, good_date)}
        return a, lambda: r.fred.latest(**a)
    if method == 6:
        a = {"indicator_id": _draw(d, TEXT, GOOD_TEXT), "country_code": _draw(d, TEXT, GOOD_TEXT),
             "start": _draw(d, DATES, good_date), "end": _draw(d, DATES, good_date)}
        return a, lambda: r.world_bank.series(**a)
    if method == 7:
        a = {"indicator_ids": None if d.draw(st.booleans()) else _lists(d),
             "country_codes": None if d.draw(st.booleans()) else _lists(d), "since": _draw(d, DATES, good_date)}
        return a, lambda: r.world_bank.latest(**a)
    if method == 8:
        a = {"start": _draw(d, DATES, good_date), "end": _draw(d, DATES, good_date),
             "commodity_codes": None if d.draw(st.booleans()) else _lists(d),
             "reporter_code": _optional(d, TEXT), "trade_flow": _optional(d, TEXT)}
        return a, lambda: r.comtrade.totals(**a)
    if method == 9:
        a = {"start": None if d.draw(st.booleans()) else _draw(d, TIMESTAMPS, good_day),
             "end": None if d.draw(st.booleans()) else _draw(d, TIMESTAMPS, good_day),
             "event_type": _optional(d, TEXT), "source_name": _optional(d, TEXT), "limit": _draw(d, COUNTS)}
        return a, lambda: r.service.get_recent_events(**a)
    if method == 10:
        a = {"metric": _draw(d, TEXT, st.sampled_from(["mentions", "risk"])), "limit": _draw(d, COUNTS)}
        return a, lambda: r.service.get_entity_trending(**a)
    a = {"start": _draw(d, TIMESTAMPS, good_day), "end": _draw(d, TIMESTAMPS, good_day), "bucket": _draw(d, BUCKETS)}
    return a, lambda: r.service.get_risk_trends(a["start"], a["end"], a["bucket"])


def _run_generated(repos: Repos, examples: int) -> None:
    before = fingerprint(repos.engine)
    outcomes = {"data": 0, "refused": 0}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def one_call(d: st.DataObject) -> None:
        arguments, call = _call(repos, d)
        try:
            answer = call()
        except InvalidArgumentError as exc:
            outcomes["refused"] += 1
            assert exc.argument.split("[")[0] in arguments, (exc.argument, arguments)
            return
        outcomes["data"] += 1
        assert isinstance(answer, (list, tuple)), answer

    one_call()
    assert fingerprint(repos.engine) == before
    # Both kinds of answer were exercised, not only the refusals.
    assert outcomes["data"] >= examples // 10 and outcomes["refused"] >= examples // 10, outcomes


def test_generated_arguments_on_duckdb(loaded: Callable[[str], Repos]) -> None:
    _run_generated(loaded("duckdb"), examples=600)


def test_generated_arguments_on_the_standin(loaded: Callable[[str], Repos]) -> None:
    _run_generated(loaded("bigquery"), examples=60)
