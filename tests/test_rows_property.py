"""Generated records, friendly and hostile, through validation and the writers (issue 10).

For every row type, batches of generated records go through
``insert_records`` (what ``TimeSeriesService.insert_events`` and the
economic writers run) and through ``bqrepo ingest`` on DuckDB, and a smaller
run goes through the stand-in. Each record must come out one of two ways:

* written, and read back equal to its validated row (and to the instant,
  number or date it was given);
* rejected, once, with its index, the field(s) and a reason;

and nothing may escape as an exception. Values are generated to hurt:
timestamps at the ends of the calendar with offsets that push them past it
in UTC, NaN and infinities, integers past 64 bits, lone surrogates and NUL in
strings, metadata that is deep, cyclic, or not JSON at all, wrong types and
unknown fields. Records holding a value that can never be valid (a lone
surrogate, NaN, a naive timestamp, an unknown field) must be rejected.

NUL: BigQuery stores it and so does bqrepo; the stand-in's storage layer
breaks on it ("unterminated quoted string", see the shared notes), so the
stand-in run generates no NUL. DuckDB runs generate it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bqrepo import migrate
from bqrepo.cli import app
from bqrepo.engine import create_engine
from bqrepo.rows import ROW_TYPES, Row
from bqrepo.schema import metadata
from bqrepo.service import insert_records
from bqrepo.settings import Settings
from bqrepo.table_options import TableOptions
from bqrepo.writers import WriteResult, writer_for

TABLES = list(ROW_TYPES)
#: Records per row type and path; the issue asks for at least 1,000.
RECORDS = 1_000

# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------

LAST = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
OFFSETS = st.integers(-1439, 1439).map(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
EDGE_TIMESTAMPS = [
    "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-03-01T10:00:00",  # naive
    "",
    "now",
]
HOSTILE_STRINGS = ["\x00", "a\x00b", "\ud800", "x\udfff", "'); DROP TABLE events;--", "", "🚀" * 50, "x" * 5000]
#: Stands for metadata nested 5,000 levels in a generated file (written as raw text).
DEEP = "<metadata nested 5,000 levels>"
DEEP_TEXT = '{"n": ' * 4_999 + "{}" + "}" * 4_999


def _text(nul: bool) -> st.SearchStrategy[str]:
    characters = st.characters(exclude_categories=()) if nul else st.characters(exclude_categories=(), exclude_characters="\x00")
    hostile = [s for s in HOSTILE_STRINGS if nul or "\x00" not in s]
    return st.one_of(st.text(characters, max_size=12), st.sampled_from(hostile))


def _mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` about nine times in ten."""
    return st.integers(0, 9).flatmap(lambda k: valid if k else hostile)


def _wrong_types(for_file: bool) -> st.SearchStrategy[Any]:
    plain = st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2), st.booleans())
    if for_file:
        return plain
    return st.one_of(plain, st.just(object()), st.just({1, 2}), st.just(b"bytes"), st.just(uuid.uuid4()))


def _timestamps(for_file: bool) -> st.SearchStrategy[Any]:
    aware = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=LAST, timezones=OFFSETS)
    edges = st.sampled_from(EDGE_TIMESTAMPS)
    hostile = st.one_of(
        edges,
        aware.map(lambda value: value.isoformat()),
        st.datetimes(),  # naive
        st.integers(-(2**70), 2**70),
        st.floats(),
        _wrong_types(for_file),
    )
    return _mostly(st.one_of(aware, aware.map(lambda value: value.isoformat())), hostile)


def _dates(for_file: bool) -> st.SearchStrategy[Any]:
    hostile = st.one_of(
        st.sampled_from(["0000-01-01", "2024-02-30", "10000-01-01", "", "2024-01-01T10:00:00Z"]),
        st.datetimes(),
        st.integers(-(2**70), 2**70),
        _wrong_types(for_file),
    )
    return _mostly(st.one_of(st.dates(), st.dates().map(dt.date.isoformat)), hostile)


def _floats(for_file: bool) -> st.SearchStrategy[Any]:
    hostile = st.one_of(
        st.floats(),  # NaN and infinities included
        st.integers(-(2**1100), 2**1100),
        st.sampled_from(["NaN", "inf", "-Infinity", "1e400", "1.5", " 2 ", "x", ""]),
        _wrong_types(for_file),
    )
    return _mostly(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)), hostile)


def _strings(for_file: bool, nul: bool) -> st.SearchStrategy[Any]:
    return _mostly(_text(nul), st.one_of(_text(nul), st.integers(), st.floats(), _wrong_types(for_file)))


def _keys(nul: bool) -> st.SearchStrategy[Any]:
    """NOT NULL string columns: non-empty ASCII almost always, so most rows survive."""
    return _mostly(st.text("abcdefgh0123", min_size=1, max_size=6), st.one_of(st.just(""), st.none(), _text(nul)))


def _json_values(nul: bool) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**65), 2**65),
        st.floats(),
        _text(nul),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(_text(nul), children, max_size=3)
        ),
        max_leaves=8,
    )


def _nest(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    inner = root
    for _ in range(levels - 1):
        inner["n"] = {}
        inner = inner["n"]
    return root


def _metadata(for_file: bool, nul: bool) -> st.SearchStrategy[Any]:
    valid = st.dictionaries(_text(nul), _json_values(nul), max_size=4)
    hostile_values: list[st.SearchStrategy[Any]] = [
        st.just(_nest(201)),
        st.just(DEEP if for_file else _nest(5_000)),  # Python's json cannot even write it: see _ingest_file
        st.lists(st.integers(), max_size=2),  # not an object
        _text(nul),
    ]
    if not for_file:
        cycle: dict[str, Any] = {"ok": 1}
        cycle["self"] = cycle
        hostile_values += [
            st.just(cycle),
            st.just({1: "int key"}),
            st.just({"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}),
            st.just({"tuple": (1, 2)}),
        ]
    return _mostly(valid, st.one_of(*hostile_values))


def records(table: str, *, for_file: bool, nul: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """One generated record for ``table``: every column optional, most values valid."""
    target = metadata.tables[table]
    row_type = ROW_TYPES[table]
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for column in target.columns:
        kind = column.type
        if column.name == "id":
            if row_type.id_must_match_key:
                optional["id"] = st.sampled_from(["not-the-derived-id", ""])
            else:
                required["id"] = _mostly(st.uuids().map(str), st.one_of(st.just(""), st.integers(), st.none()))
            continue
        if isinstance(kind, sa.TIMESTAMP):
            strategy = _timestamps(for_file)
        elif isinstance(kind, sa.Date):
            strategy = _dates(for_file)
        elif isinstance(kind, sa.Float):
            strategy = _floats(for_file)
        elif isinstance(kind, sa.JSON):
            strategy = _metadata(for_file, nul)
        elif not column.nullable:
            strategy = _keys(nul)
        else:
            strategy = _strings(for_file, nul)
        (optional if column.nullable else required)[column.name] = strategy | st.none() if column.nullable else strategy
    optional["colour"] = st.just("red")  # an unknown field
    return _mostly(
        st.fixed_dictionaries(required, optional=optional),
        st.one_of(st.fixed_dictionaries({}, optional=optional), st.fixed_dictionaries(required, optional=optional)),
    )


# --------------------------------------------------------------------------
# What the results must satisfy
# --------------------------------------------------------------------------


def _never_valid(value: Any) -> bool:
    """Values no row type accepts anywhere (a conservative oracle, independent of rows.py)."""
    if isinstance(value, str):
        return any(0xD800 <= ord(character) <= 0xDFFF for character in value)
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dt.datetime):
        return value.tzinfo is None
    if isinstance(value, dict):
        return any(_never_valid(key) or _never_valid(item) for key, item in value.items() if item is not value)
    if isinstance(value, list):
        return any(_never_valid(item) for item in value)
    return False


def must_reject(table: str, record: Any) -> bool:
    if not isinstance(record, dict):
        return True
    columns = set(metadata.tables[table].columns.keys())
    return bool(set(record) - columns) or any(_never_valid(value) for value in record.values())


#: When the batch being checked was written: an ``ingested_at`` defaulted to
#: "now" lies inside it and is compared as the marker "now".
_window: list[dt.datetime] = []


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC)
        return "now" if _window and _window[0] <= value <= _window[1] else value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _everything(table: sa.Table) -> sa.ColumnElement[bool]:
    """A filter on the partition column that keeps every row (BigQuery requires one on some tables)."""
    column = table.c[TableOptions.of(table).partition_field or "id"]
    if isinstance(column.type, sa.TIMESTAMP):
        return column.between(dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC))
    if isinstance(column.type, sa.Date):
        return column.between(dt.date(1, 1, 1), dt.date(9999, 12, 31))
    return sa.true()


def stored_rows(engine: sa.Engine, table: sa.Table) -> Counter[tuple[Any, ...]]:
    """Every row of ``table``, canonical (UTC timestamps, JSON as sorted text), as a multiset."""
    columns = [sa.type_coerce(c, sa.types.NullType()).label(c.name) if isinstance(c.type, sa.JSON) else c for c in table.c]
    out: Counter[tuple[Any, ...]] = Counter()
    with engine.connect() as connection:
        for row in connection.execute(sa.select(*columns).where(_everything(table))).mappings():
            values = dict(row)
            for column in table.c:
                if isinstance(column.type, sa.JSON) and isinstance(values[column.name], str):
                    values[column.name] = json.loads(values[column.name])
            out[tuple(_canonical(values[column.name]) for column in table.c)] += 1
    return out


def expected_row(row: Row) -> tuple[Any, ...]:
    return tuple(_canonical(value) for value in row.to_db_row().values())


def check_given_values(record: dict[str, Any], row: Row) -> None:
    """A written row holds the instant, number or date it was given (not just a self-consistent copy)."""
    for name, given_value in record.items():
        kept = getattr(row, name)
        if isinstance(given_value, dt.datetime):
            assert kept == given_value and kept.utcoffset() == dt.timedelta(0), (name, given_value, kept)
        elif isinstance(given_value, float) or (isinstance(given_value, int) and not isinstance(given_value, bool)):
            if isinstance(kept, float):
                assert kept == float(given_value), (name, given_value, kept)
        elif isinstance(given_value, dt.date):
            assert kept == given_value, (name, given_value, kept)


def check_outcome(table: str, batch: list[Any], result: WriteResult, engine: sa.Engine) -> None:
    row_type = ROW_TYPES[table]
    target = metadata.tables[table]
    rejected = {rejection.index: rejection for rejection in result.rejected}
    assert len(rejected) == len(result.rejected), "a row rejected more than once"
    assert result.written + len(rejected) == len(batch)
    expected: Counter[tuple[Any, ...]] = Counter()
    for index, record in enumerate(batch):
        if index in rejected:
            rejection = rejected[index]
            assert rejection.reason and rejection.problems, rejection
            assert (rejection.field, rejection.reason) == rejection.problems[0]
            for field, reason in rejection.problems:
                assert reason, rejection
                assert field is None or field.split(".")[0] in row_type.model_fields or field in record, rejection
            continue
        assert not must_reject(table, record), f"record {index} should have been rejected: {record!r}"
        row = row_type.model_validate(record)
        check_given_values(record, row)
        expected[expected_row(row)] += 1
    assert stored_rows(engine, target) == expected


def _clear(engine: sa.Engine, table: sa.Table) -> None:
    with engine.begin() as connection:
        connection.execute(sa.delete(table).where(_everything(table)))


def _written(write: Callable[[], Any]) -> Any:
    """Run ``write`` and remember the window of time it ran in (see :func:`_canonical`)."""
    start = dt.datetime.now(dt.UTC)
    # the oracle validates again after the write: its own "now" falls in the window too
    _window[:] = [start, start + dt.timedelta(minutes=10)]
    return write()


# --------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, sa.Engine]]:
    path = tmp_path_factory.mktemp("property") / "property.duckdb"
    duck_settings = Settings(duckdb_path=str(path))
    migrate.upgrade(duck_settings)
    engine = create_engine(duck_settings)
    yield duck_settings, engine
    engine.dispose()


def _run(test: Callable[..., None], batches: st.SearchStrategy[list[Any]], examples: int) -> None:
    settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )(given(batches)(test))()


@pytest.mark.parametrize("table", TABLES)
def test_generated_records_through_the_writers_on_duckdb(duck: tuple[Settings, sa.Engine], table: str) -> None:
    _, engine = duck
    target = metadata.tables[table]
    writer = writer_for(engine)
    sent: list[int] = []
    written: list[int] = []

    def one_batch(batch: list[Any]) -> None:
        _clear(engine, target)
        result = _written(lambda: insert_records(writer, target, ROW_TYPES[table], batch))
        check_outcome(table, batch, result, engine)
        sent.append(len(batch))
        written.append(result.written)

    _run(one_batch, st.lists(records(table, for_file=False), min_size=50, max_size=60), examples=20)
    assert sum(sent) >= RECORDS
    # neither side vacuous: plenty written, plenty rejected
    assert 0.1 < sum(written) / sum(sent) < 0.9, (sum(written), sum(sent))


def _ingest_file(path: Path, batch: list[dict[str, Any]]) -> None:
    # datetimes and dates as ISO text; NaN/inf as Python's tokens (what a careless
    # exporter writes, and what ingest must read and reject); lone surrogates escaped
    def default(value: Any) -> str:
        return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)

    lines = (json.dumps(record, default=default).replace(json.dumps(DEEP), DEEP_TEXT) for record in batch)
    path.write_text("".join(line + "\n" for line in lines), "utf-8")


UNREADABLE = object()


def _jsonl_lines(path: Path) -> list[str]:
    # only "\n" ends a JSON Lines record; str.splitlines() would also split on U+0085 or U+2028
    return path.read_text("utf-8").split("\n")[:-1]


def _read_back(line: str) -> Any:
    try:
        return json.loads(line)
    except RecursionError:
        return UNREADABLE


@pytest.mark.parametrize("table", TABLES)
def test_generated_records_through_bqrepo_ingest_on_duckdb(duck: tuple[Settings, sa.Engine], table: str, tmp_path: Path) -> None:
    duck_settings, engine = duck
    target = metadata.tables[table]
    env = {"BQREPO_URL": "", "BIGQUERY_EMULATOR_HOST": "", "GCP_PROJECT_ID": "", "BIGQUERY_DATASET": "", "BQREPO_DUCKDB_PATH": duck_settings.duckdb_path, "COLUMNS": "120"}
    source = tmp_path / f"{table}.jsonl"
    rejected_file = tmp_path / f"{table}.rejected.jsonl"
    sent: list[int] = []
    written: list[int] = []

    def one_file(batch: list[dict[str, Any]]) -> None:
        _clear(engine, target)
        _ingest_file(source, batch)
        engine.dispose()  # the CLI opens the DuckDB file itself
        outcome = _written(lambda: CliRunner().invoke(app, ["ingest", table, str(source), "--batch-size", "37"], env=env))
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.output
        assert "Traceback" not in outcome.output, outcome.output
        lines = [_read_back(line) for line in _jsonl_lines(source)]  # what ingest read
        rejected = (
            [json.loads(line, parse_constant=pytest.fail) for line in _jsonl_lines(rejected_file)]
            if rejected_file.exists()
            else []
        )
        positions = [entry["position"] for entry in rejected]
        assert len(set(positions)) == len(positions), "a row rejected more than once"
        assert outcome.exit_code == (1 if rejected else 0), outcome.output
        expected: Counter[tuple[Any, ...]] = Counter()
        for position, record in enumerate(lines, 1):
            if position in positions:
                entry = rejected[positions.index(position)]
                assert entry["errors"] and all(error["reason"] for error in entry["errors"]), entry
                continue
            assert record is not UNREADABLE, f"line {position} cannot be parsed and was not rejected"
            assert not must_reject(table, record), f"line {position} should have been rejected: {record!r}"
            expected[expected_row(ROW_TYPES[table].model_validate(record))] += 1
        assert f"wrote {sum(expected.values()):,} row(s)" in outcome.output, outcome.output
        assert stored_rows(engine, target) == expected
        sent.append(len(batch))
        written.append(sum(expected.values()))

    _run(one_file, st.lists(records(table, for_file=True), min_size=50, max_size=60), examples=20)
    assert sum(sent) >= RECORDS
    assert 0.1 < sum(written) / sum(sent) < 0.9, (sum(written), sum(sent))


@pytest.mark.bigquery
@pytest.mark.parametrize("table", TABLES)
def test_generated_records_through_the_writers_on_the_standin(bigquery_settings: Settings, table: str) -> None:
    migrate.upgrade(bigquery_settings)
    engine = create_engine(bigquery_settings)
    target = metadata.tables[table]
    writer = writer_for(engine)
    written: list[int] = []
    try:

        def one_batch(batch: list[Any]) -> None:
            _clear(engine, target)
            result = _written(lambda: insert_records(writer, target, ROW_TYPES[table], batch))
            check_outcome(table, batch, result, engine)
            written.append(result.written)

        _run(one_batch, st.lists(records(table, for_file=False, nul=False), min_size=40, max_size=50), examples=6)
        assert sum(written) >= 40, written
    finally:
        engine.dispose()
