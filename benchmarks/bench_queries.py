"""Read-side speed of the repositories (issue 13), as ratios measured in one run. Not a test.

    .venv/bin/python benchmarks/bench_queries.py [--quick] [--markdown benchmarks/results/queries.md]

Three parts, each a ratio against a baseline timed in the same run
(interleaved, the minimum of ``--repeat`` runs):

small
    A repository call against the same compiled SQL sent straight through
    the ``duckdb`` driver (``execute`` + ``fetchall`` on an open connection),
    on ~1k-row tables: what bqrepo's Python layers cost. Target <= 1.1x.
scale
    Every events/mentions repository query on ``--rows`` events (10M by
    default, ~2 mentions each, 3 years, ~9% of ids stored twice, some
    versions without ``created_at``), generated inside DuckDB with SQL,
    against the faster of two hand-written DuckDB forms of the same
    question: ``QUALIFY ROW_NUMBER() ... = 1`` and ``GROUP BY id`` with
    ``arg_max``. Every answer is checked equal to bqrepo's; a hand form
    that answers differently is reported and not used as the baseline.
    Target <= 1.2x.
compile
    Compile work per call of one repository statement on the BigQuery
    dialect (which turns SQLAlchemy's statement cache off): what
    ``Connection.execute`` does before it reaches the driver, timed on the
    dialect of an engine built offline. Target < 20 us.

``--quick`` uses 200k events for a smoke run. The 10M data set takes a
minute or two to generate and is kept in ``--data`` between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, is_dataclass
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from sqlalchemy import event

from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.repositories import EntityMentionRepository, EventRepository, TimeSeriesRepository
from bqrepo.schema import entity_mentions, events
from bqrepo.settings import Settings

UTC = dt.UTC
START = dt.datetime(2022, 1, 1, tzinfo=UTC)
END = dt.datetime(2025, 1, 1, tzinfo=UTC)
SPAN_US = int((END - START).total_seconds()) * 1_000_000
HALF_LIFE = dt.timedelta(days=30)
#: Trending scans the whole table: the cost of the de-duplication, not of the window.
CUTOFF = END - START
ENTITIES = 5000


# --- data ------------------------------------------------------------------------


def _events_sql(rows: int) -> str:
    """``rows`` events: ids 0..base-1 once, then ~9% more rows that re-store a random earlier id.

    A re-stored version has the same time and key, a later ``created_at``
    (unique per row, so the newest version is unambiguous), and its own
    risk and type. 1 in 20 first versions has no ``created_at``.
    """
    base = rows * 10 // 11
    return f"""
        INSERT INTO events (id, title, content, source_url, source_name, event_type, location,
                            risk_score, severity, mentioned_at, created_at, metadata)
        WITH numbered AS (
            SELECT i, CASE WHEN i < {base} THEN i ELSE CAST(hash(i) % {base} AS BIGINT) END AS j
            FROM range({rows}) t(i)
        ), timed AS (
            SELECT i, j, TIMESTAMPTZ '2022-01-01 00:00:00+00'
                   + to_microseconds(CAST(hash(j * 7 + 1) % {SPAN_US} AS BIGINT)) AS ts
            FROM numbered
        )
        SELECT 'ev-' || j, 'title ' || j, 'content of event ' || j, 'https://example.com/' || j,
               'src-' || (hash(j * 17) % 20), 'type-' || (hash(i * 13) % 8), 'loc-' || (hash(j * 23) % 50),
               CASE WHEN hash(i * 11) % 17 = 0 THEN NULL ELSE (hash(i * 11) % 1000) / 100.0 END,
               'sev-' || (hash(i) % 4), ts,
               CASE WHEN i < {base}
                    THEN CASE WHEN hash(j * 3) % 20 = 0 THEN NULL
                              ELSE ts + to_microseconds(CAST(hash(j * 5) % 3600000000 AS BIGINT)) END
                    ELSE ts + INTERVAL 1 DAY + to_microseconds(i) END,
               '{{"n": ' || i || ', "tags": ["a", "b"]}}'
        FROM timed
    """


def _mentions_sql(rows: int) -> str:
    """Two mentions per first-stored event, plus ~9% exact re-stored copies (mentions have no version)."""
    base = 2 * (rows * 10 // 11)
    total = base + base // 10
    return f"""
        INSERT INTO entity_mentions (id, entity_id, event_id, mentioned_at, context)
        WITH numbered AS (
            SELECT CASE WHEN k < {base} THEN k ELSE CAST(hash(k) % {base} AS BIGINT) END AS k
            FROM range({total}) t(k)
        )
        SELECT 'm-' || k, 'ent-' || (hash(k * 19) % {ENTITIES}), 'ev-' || (k // 2),
               TIMESTAMPTZ '2022-01-01 00:00:00+00'
               + to_microseconds(CAST(hash((k // 2) * 7 + 1) % {SPAN_US} AS BIGINT)),
               'ctx'
        FROM numbered
    """


def build(path: Path, rows: int) -> None:
    """Migrate a new DuckDB file and fill it inside DuckDB (no Python rows)."""
    if path.exists():
        return
    partial = path.with_suffix(".partial")
    for leftover in (partial, Path(f"{partial}.wal")):
        leftover.unlink(missing_ok=True)
    upgrade(Settings(duckdb_path=str(partial)))
    started = time.perf_counter()
    con = duckdb.connect(str(partial))
    try:
        con.execute(_events_sql(rows))
        con.execute(_mentions_sql(rows))
        con.execute("CHECKPOINT")
    finally:
        con.close()
    partial.rename(path)
    print(f"generated {rows:,} events in {time.perf_counter() - started:.0f} s: {path}", file=sys.stderr)


# --- timing and answers ----------------------------------------------------------


def interleaved(work: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Minimum seconds of each callable, running them in turn ``repeat`` times."""
    best = {name: math.inf for name in work}
    for _ in range(repeat):
        for name, call in work.items():
            started = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC)
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)  # the driver's JSON text; bqrepo parses it
    return value


def same_answers(left: Sequence[tuple[Any, ...]], right: Sequence[tuple[Any, ...]]) -> bool:
    """Equal rows, floats within a relative 1e-12: sums in another order differ in the last bits.

    (Rounding both to 9 digits was not enough: an average of exactly
    5.102234375 came out as ...374999997 and ...375000003 and rounded apart.)
    """
    if len(left) != len(right):
        return False
    for row_a, row_b in zip(left, right):
        if len(row_a) != len(row_b):
            return False
        for a, b in zip(row_a, row_b):
            if isinstance(a, float) and isinstance(b, float):
                if not math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12):
                    return False
            elif a != b:
                return False
    return True


def normalized(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows as tuples of comparable values: dataclasses, dicts and tuples alike."""
    out = []
    for row in rows:
        if is_dataclass(row):
            row = astuple(row)  # type: ignore[arg-type]
        elif isinstance(row, dict):
            row = tuple(row.values())
        out.append(tuple(_value(v) for v in row))
    return out


def raw_connection(path: Path, engine: sa.Engine) -> duckdb.DuckDBPyConnection:
    """A plain driver connection to the file, configured as the engine's are (UTC, same config).

    DuckDB refuses a second connection to an open file with another
    configuration, so the engine's user agent is copied.
    """
    with engine.connect() as connection:
        agent = connection.exec_driver_sql("SELECT current_setting('custom_user_agent')").scalar()
    con = duckdb.connect(str(path), config={"custom_user_agent": agent})
    con.execute("SET TimeZone = 'UTC'")
    return con


def captured_sql(engine: sa.Engine, call: Callable[[], Any]) -> tuple[str, Any]:
    """The SQL text and parameters ``call`` sends to the driver (its last statement)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen[-1]


# --- hand-written DuckDB forms ----------------------------------------------------

_EVENT_COLUMNS = [c.name for c in events.columns]
#: NULL created_at sorts below every value, as bqrepo's de-duplication orders it.
_EVENT_KEY = "coalesce(created_at, TIMESTAMPTZ '-infinity')"


def _events_q(columns: Sequence[str], where: str) -> str:
    return (
        f"SELECT {', '.join(columns)} FROM events WHERE {where} "
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY created_at DESC NULLS LAST) = 1"
    )


def _events_a(columns: Sequence[str], where: str) -> str:
    struct = ", ".join(f"'{c}': {c}" for c in columns if c != "id")
    picked = ", ".join(f"r.{c} AS {c}" if c != "id" else "id" for c in columns)
    return (
        f"SELECT {picked} FROM (SELECT id, arg_max({{{struct}}}, {_EVENT_KEY}) AS r "
        f"FROM events WHERE {where} GROUP BY id)"
    )


def _mentions_q(columns: Sequence[str], where: str) -> str:
    return (
        f"SELECT {', '.join(columns)} FROM entity_mentions WHERE {where} "
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY mentioned_at DESC) = 1"
    )


def _mentions_a(columns: Sequence[str], where: str) -> str:
    struct = ", ".join(f"'{c}': {c}" for c in columns if c != "id")
    picked = ", ".join(f"r.{c} AS {c}" if c != "id" else "id" for c in columns)
    return (
        f"SELECT {picked} FROM (SELECT id, arg_max({{{struct}}}, mentioned_at) AS r "
        f"FROM entity_mentions WHERE {where} GROUP BY id)"
    )


_IN_RANGE = "mentioned_at >= $start AND mentioned_at < $end"
_IN_WINDOW = "mentioned_at >= $window_start AND mentioned_at <= $as_of"
_DECAY = "exp(-ln(2) * ((epoch_us($as_of) - epoch_us(mentioned_at)) / 1000000) / $half_life)"

_BUCKETS = {
    "DAY": "date_trunc('day', mentioned_at)",
    "6 hours": "time_bucket(INTERVAL 6 HOUR, mentioned_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')",
    "MONTH": "date_trunc('month', mentioned_at)",
}


def _recent(dedup: Callable[[Sequence[str], str], str]) -> str:
    return f"SELECT * FROM ({dedup(_EVENT_COLUMNS, _IN_RANGE)}) ORDER BY mentioned_at DESC, id LIMIT 100"


def _risk(dedup: Callable[[Sequence[str], str], str], bucket: str) -> str:
    return (
        f"SELECT {_BUCKETS[bucket]} AS bucket_start, avg(risk_score), max(risk_score), count(*) "
        f"FROM ({dedup(['id', 'mentioned_at', 'risk_score'], _IN_RANGE)}) GROUP BY 1 ORDER BY 1"
    )


def _trending_mentions(dedup: Callable[[Sequence[str], str], str]) -> str:
    return (
        f"SELECT entity_id, sum({_DECAY}) AS score, count(*) "
        f"FROM ({dedup(['id', 'entity_id', 'mentioned_at'], _IN_WINDOW)}) "
        "GROUP BY entity_id ORDER BY score DESC, entity_id LIMIT 20"
    )


def _trending_risk(
    mentions: Callable[[Sequence[str], str], str], events_: Callable[[Sequence[str], str], str]
) -> str:
    latest_events = events_(["id", "risk_score"], "mentioned_at >= $events_start AND mentioned_at < $events_end")
    return (
        f"SELECT m.entity_id, coalesce(sum({_DECAY.replace('mentioned_at', 'm.mentioned_at')} * e.risk_score), 0.0)"
        " AS score, count(*) "
        f"FROM ({mentions(['id', 'entity_id', 'event_id', 'mentioned_at'], _IN_WINDOW)}) m "
        f"LEFT JOIN ({latest_events}) e ON e.id = m.event_id "
        "GROUP BY m.entity_id ORDER BY score DESC, m.entity_id LIMIT 20"
    )


def _latest_q() -> str:
    return (
        f"SELECT entity_id, mentioned_at, event_id, context FROM "
        f"({_mentions_q(['id', 'entity_id', 'event_id', 'mentioned_at', 'context'], 'mentioned_at >= $since')}) "
        "QUALIFY row_number() OVER (PARTITION BY entity_id ORDER BY mentioned_at DESC, id) = 1 ORDER BY entity_id"
    )


def _latest_a() -> str:
    return (
        "SELECT entity_id, r.mentioned_at, r.event_id, r.context FROM ("
        "SELECT entity_id, arg_min({'mentioned_at': mentioned_at, 'event_id': event_id, 'context': context}, "
        "(-epoch_us(mentioned_at), id)) AS r FROM "
        f"({_mentions_a(['id', 'entity_id', 'event_id', 'mentioned_at', 'context'], 'mentioned_at >= $since')}) "
        "GROUP BY entity_id) ORDER BY entity_id"
    )


def _series(dedup: Callable[[Sequence[str], str], str]) -> str:
    return (
        f"SELECT mentioned_at, event_id, context FROM "
        f"({dedup(['id', 'entity_id', 'event_id', 'mentioned_at', 'context'], _IN_RANGE)}) "
        "WHERE entity_id = $entity ORDER BY mentioned_at, id"
    )


def scale_cases(engine: sa.Engine) -> list[tuple[str, Callable[[], Any], dict[str, str], dict[str, Any]]]:
    """(name, repository call, hand-written forms, their parameters) for every query at scale."""
    repo = EventRepository(engine)
    mentions = EntityMentionRepository(engine)
    generic = TimeSeriesRepository(engine, entity_mentions)
    span = {"start": START, "end": END}
    window = {"as_of": END, "window_start": END - CUTOFF, "half_life": HALF_LIFE.total_seconds()}
    trending = {"half_life": HALF_LIFE, "as_of": END, "cutoff": CUTOFF}
    cases: list[tuple[str, Callable[[], Any], dict[str, str], dict[str, Any]]] = [
        ("recent", lambda: repo.recent(START, END, limit=100), {"qualify": _recent(_events_q), "arg_max": _recent(_events_a)}, span),
    ]
    for label, bucket, fill in (("DAY", "DAY", False), ("DAY, gap-filled", "DAY", True), ("6 hours", "6 hours", False), ("MONTH", "MONTH", False)):
        cases.append(
            (
                f"risk_trends({label})",
                lambda b=bucket, f=fill: repo.risk_trends(START, END, b, fill_gaps=f),  # type: ignore[misc]
                {"qualify": _risk(_events_q, bucket), "arg_max": _risk(_events_a, bucket)},
                span,
            )
        )
    cases += [
        (
            "trending(mentions)",
            lambda: mentions.trending("mentions", **trending),  # type: ignore[arg-type]
            {"qualify": _trending_mentions(_mentions_q), "arg_max": _trending_mentions(_mentions_a)},
            window,
        ),
        (
            "trending(risk)",
            lambda: mentions.trending("risk", **trending),  # type: ignore[arg-type]
            {"qualify": _trending_risk(_mentions_q, _events_q), "arg_max": _trending_risk(_mentions_a, _events_a)},
            window | {"events_start": END - CUTOFF - dt.timedelta(days=1), "events_end": END + dt.timedelta(days=1)},
        ),
        (
            "generic latest (mentions per entity)",
            lambda: generic.latest(since=START),
            {"qualify": _latest_q(), "arg_max": _latest_a()},
            {"since": START},
        ),
        (
            "generic series (one entity)",
            lambda: generic.series({"entity_id": "ent-7"}, START, END),
            {"qualify": _series(_mentions_q), "arg_max": _series(_mentions_a)},
            span | {"entity": "ent-7"},
        ),
    ]
    return cases


# --- the three parts ----------------------------------------------------------------

Row = tuple[str, str, str, float | None, str]  # figure, bqrepo, baseline, ratio, target


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def run_scale(path: Path, repeat: int) -> list[Row]:
    engine = create_engine(Settings(duckdb_path=str(path)))
    con = raw_connection(path, engine)
    out: list[Row] = []
    try:
        for name, call, forms, params in scale_cases(engine):
            expected = normalized(call())
            work: dict[str, Callable[[], Any]] = {"bqrepo": call}
            wrong = []
            for form, sql in forms.items():
                used = {k: v for k, v in params.items() if f"${k}" in sql}
                answer = normalized(con.execute(sql, used).fetchall())
                if not same_answers(answer, expected):
                    wrong.append(form)
                    print(f"  {name}: hand-written {form} answers differently ({len(answer)} vs {len(expected)} rows)", file=sys.stderr)
                    continue
                work[form] = lambda s=sql, p=used: con.execute(s, p).fetchall()  # type: ignore[misc]
            best = interleaved(work, repeat)
            baselines = {k: v for k, v in best.items() if k != "bqrepo"}
            if not baselines:
                out.append((name, _ms(best["bqrepo"]), "no hand form answered equal", None, "<= 1.2"))
                continue
            form = min(baselines, key=baselines.__getitem__)
            note = f" ({form}; {', '.join(wrong)} answered differently)" if wrong else f" ({form})"
            out.append((name, _ms(best["bqrepo"]), _ms(best[form]) + note, best["bqrepo"] / best[form], "<= 1.2"))
            print(f"  {name}: {out[-1]}", file=sys.stderr)
    finally:
        con.close()
        engine.dispose()
    return out


def run_open_cost(path: Path, repeat: int) -> list[Row]:
    """What NullPool's open-per-checkout costs on this file, with no other connection holding it."""
    engine = create_engine(Settings(duckdb_path=str(path)))

    def checkout() -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1").fetchall()

    best = interleaved({"open": checkout}, repeat)
    engine.dispose()
    return [("NullPool checkout (open file + SELECT 1 + close), nothing else open", _ms(best["open"]), "", None, "report")]


def run_small(directory: Path, repeat: int) -> list[Row]:
    path = directory / "small.duckdb"
    build(path, 1100)
    engine = create_engine(Settings(duckdb_path=str(path)))
    con = raw_connection(path, engine)
    repo = EventRepository(engine)
    mentions = EntityMentionRepository(engine)
    generic_events = TimeSeriesRepository(engine, events)
    generic_mentions = TimeSeriesRepository(engine, entity_mentions)
    calls: dict[str, Callable[[], Any]] = {
        "recent (100 rows)": lambda: repo.recent(START, END, limit=100),
        "risk_trends(DAY) (~650 rows)": lambda: repo.risk_trends(START, END, "DAY"),
        "trending(mentions) (20 rows)": lambda: mentions.trending("mentions", as_of=END, half_life=HALF_LIFE, cutoff=CUTOFF),
        "generic latest (mentions per entity)": lambda: generic_mentions.latest(),
        "generic buckets(MONTH, all aggregates)": lambda: generic_events.buckets(START, END, "MONTH", value="risk_score"),
    }
    out: list[Row] = []
    try:
        for name, call in calls.items():
            sql, params = captured_sql(engine, call)
            best = interleaved({"bqrepo": call, "driver": lambda: con.execute(sql, params).fetchall()}, repeat * 20)
            out.append((name, _ms(best["bqrepo"]), _ms(best["driver"]), best["bqrepo"] / best["driver"], "<= 1.1"))
            print(f"  {name}: {out[-1]}", file=sys.stderr)
    finally:
        con.close()
        engine.dispose()
    return out


def run_compile(repeat: int) -> list[Row]:
    """Compile work per execution on an offline BigQuery engine's dialect, as ``Connection.execute`` does it.

    ``_compile_w_cache`` is the step ``Connection._execute_clauseelement``
    runs before the cursor: with the engine's execution options, either a
    fresh compile (the dialect's cache is off) or bqrepo's prepared cache.
    ``construct_params`` then binds the values (done on every engine).
    """
    from bqrepo.engine import create_engine as bq_engine

    try:
        from bqrepo.engine import PREPARED  # type: ignore[attr-defined]
    except ImportError:  # before the compile cache
        PREPARED = {}
    engine = bq_engine(Settings(project_id="bench-project", dataset="bench", location="EU", emulator_host="127.0.0.1:9"))
    dialect = engine.dialect
    statement = EventRepository.statements["recent"]
    params = {"start": START, "end": END, "event_type": None, "source_name": None, "limit": 100}
    cache = PREPARED.get("compiled_cache", getattr(engine, "_compiled_cache", None))
    fresh = statement.compile(dialect=dialect)

    def bqrepo() -> None:
        compiled = statement._compile_w_cache(dialect, compiled_cache=cache, column_keys=[])[0]
        compiled.construct_params(params)

    def fresh_compile() -> None:
        statement.compile(dialect=dialect).construct_params(params)

    def bind_only() -> None:
        fresh.construct_params(params)

    best = interleaved({"bqrepo": bqrepo, "fresh": fresh_compile, "bind": bind_only}, repeat * 100)
    engine.dispose()
    return [
        ("BigQuery: compile + bind `recent` per call", f"{best['bqrepo'] * 1e6:,.1f} us",
         f"bind only {best['bind'] * 1e6:,.1f} us; a fresh compile {best['fresh'] * 1e6:,.0f} us",
         best["bqrepo"] * 1e6, "< 20 us"),
    ]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        ram = f"{int(memory.split()[1]) / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration):
        ram = "RAM unknown"
    return (
        f"{os.cpu_count()} CPUs ({model}), {ram}; Python {platform.python_version()}, "
        f"duckdb {duckdb.__version__}, SQLAlchemy {sa.__version__}; {dt.date.today().isoformat()}"
    )


def markdown(sections: dict[str, list[Row]], rows: int, repeat: int) -> str:
    lines = [
        "## Queries (read side)",
        "",
        f"{machine()}. Minimum of {repeat}+ interleaved runs; every ratio is bqrepo / baseline within one run. "
        "`benchmarks/bench_queries.py` (see its docstring for what each baseline is).",
        "",
    ]
    for title, table in sections.items():
        lines += [f"### {title.format(rows=rows)}", "", "| figure | bqrepo | baseline | ratio | target | met? |", "|---|---|---|---|---|---|"]
        for figure, ours, base, ratio, target in table:
            if ratio is None:
                shown, met = "", ""
            elif target.startswith("< "):
                shown, met = "", "yes" if ratio < float(target.split()[1]) else "no"
            else:
                shown = f"{ratio:.2f}x"
                met = "yes" if ratio <= float(target.split()[1]) else "no"
            lines.append(f"| {figure} | {ours} | {base} | {shown} | {target} | {met} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k events instead of 10M (smoke run)")
    parser.add_argument("--rows", type=int, default=None, help="events at scale (default 10M, 200k with --quick)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the minimum counts")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "bqrepo-bench-queries")
    parser.add_argument("--only", default="small,scale,compile", help="comma-separated parts")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results section here")
    args = parser.parse_args(argv)
    rows = args.rows or (200_000 if args.quick else 10_000_000)
    parts = set(args.only.split(","))
    args.data.mkdir(parents=True, exist_ok=True)
    sections: dict[str, list[Row]] = {}
    if "compile" in parts:
        sections["BigQuery compile work per call"] = run_compile(args.repeat)
    if "small" in parts:
        sections["Repository call vs the same SQL through the duckdb driver, ~1k-row tables"] = run_small(args.data, args.repeat)
    if "scale" in parts:
        path = args.data / f"events-{rows}.duckdb"
        build(path, rows)
        sections["NullPool"] = run_open_cost(path, args.repeat)
        sections["Every query at {rows:,} events vs the faster hand-written DuckDB form, answers checked equal"] = run_scale(path, args.repeat)
    text = markdown(sections, rows, args.repeat)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
