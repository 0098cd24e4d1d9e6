"""Back-fill speed and verification memory: PostgreSQL 15 -> DuckDB (not a test).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_backfill.py [--rows 1000000] [--repeat 3] [--quick]
        [--compare /work/main]
        [--markdown benchmarks/results/backfill.md]

Starts a throwaway PostgreSQL 15 (:class:`bqrepo.testing.postgres.LocalPostgres`),
creates the Django-like ``core_event`` table twice (``--rows`` rows and a
quarter of them, both 10,000 rows a day, generated server-side with
``generate_series``), and times, each into a freshly migrated DuckDB file:

* the baseline: ``psql -c "COPY (SELECT ...) TO STDOUT (FORMAT csv)"`` piped
  into a DuckDB ``INSERT ... SELECT FROM read_csv('/dev/stdin')`` of the same
  table (no validation, no checkpoint, no verification);
* ``bqrepo backfill --no-verify`` and ``bqrepo backfill`` (with verification),
  as subprocesses, so their peak RSS is their own (``os.wait4``);
* the verification alone (the same command again: every chunk is done, so it
  only verifies), at both sizes: its peak RSS should not grow with the table.

Runs are interleaved and the minimum of ``--repeat`` is kept; figures are
ratios to the baseline measured in the same run (the machine is shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bqrepo import migrate
from bqrepo.settings import Settings
from bqrepo.testing.django_source import core_event
from bqrepo.testing.postgres import LocalPostgres

ROWS_PER_DAY = 10_000
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
COLUMNS = [
    "id", "title", "content", "source_url", "source_name", "event_type", "location",
    "risk_score", "severity", "mentioned_at", "created_at", "metadata",
]
# Per-column types for DuckDB's read_csv (a dict literal of SQL type names: code, not data).
CSV_TYPES = (
    "{'id': 'VARCHAR', 'title': 'VARCHAR', 'content': 'VARCHAR', 'source_url': 'VARCHAR', "
    "'source_name': 'VARCHAR', 'event_type': 'VARCHAR', 'location': 'VARCHAR', 'risk_score': 'DOUBLE', "
    "'severity': 'VARCHAR', 'mentioned_at': 'TIMESTAMPTZ', 'created_at': 'TIMESTAMPTZ', 'metadata': 'VARCHAR'}"
)
_FILL = """
INSERT INTO {table}
SELECT md5(i::text)::uuid,
       'event ' || i,
       repeat('lorem ipsum ', 10),
       'https://news.example/' || i,
       (ARRAY['reuters', 'efe'])[1 + i % 2],
       (ARRAY['protest', 'sanction', 'election'])[1 + i % 3],
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'Caracas' END,
       CASE WHEN i % 10 = 0 THEN NULL ELSE (i % 1000) / 10.0 END,
       'high',
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + (i - 1) * (INTERVAL '1 second' * 86400 / {per_day}),
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + (i - 1) * (INTERVAL '1 second' * 86400 / {per_day}),
       jsonb_build_object('i', i, 'tags', jsonb_build_array('a', 'b'), 'score', i / 3.0)
FROM generate_series(1, {rows}) AS i
"""
_BASELINE = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute('SET enable_progress_bar = false'); "
    "c.execute(\"INSERT INTO events ({cols}) SELECT {cols} FROM read_csv('/dev/stdin', header=false, "
    "columns={types})\")"
)


@dataclass
class Run:
    seconds: float
    peak_mb: float
    cpu: float = 0.0  # user + system CPU seconds of the process (not its children)


def _machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    ram = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            ram = int(line.split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({model}), {ram} GB RAM, Python {platform.python_version()}"


def fill(server: LocalPostgres, table: str, rows: int) -> None:
    engine = sa.create_engine(server.url)
    try:
        with engine.begin() as connection:
            copy = sa.Table(table, sa.MetaData(), *(c._copy() for c in core_event.columns))
            copy.drop(connection, checkfirst=True)
            copy.create(connection)
            # Table and sizes are the benchmark's own constants, never input.
            connection.execute(sa.text(_FILL.format(table=table, rows=int(rows), per_day=ROWS_PER_DAY)))
            connection.execute(sa.text(f"ANALYZE {table}"))
    finally:
        engine.dispose()


def fresh_destination(directory: Path, name: str) -> Settings:
    path = directory / f"{name}.duckdb"
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    settings = Settings(duckdb_path=str(path))
    migrate.upgrade(settings)
    return settings


def mapping_file(directory: Path, table: str) -> Path:
    path = directory / f"{table}.toml"
    columns = "\n".join(f'{name} = "{name}"' for name in COLUMNS)
    path.write_text(f'[events]\nsource = "{table}"\nchunk = "month"\n\n[events.columns]\n{columns}\n')
    return path


def _waited(process: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """Wait for ``process``; its exit status, peak RSS in MB and CPU seconds (its own, not its children's)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def bqrepo_run(
    server: LocalPostgres, settings: Settings, mapping: Path, checkpoint: Path, verify: bool, checkout: Path | None = None
) -> Run:
    """``bqrepo backfill`` as a subprocess, from ``checkout`` (default: the current directory).

    It runs in ``checkout`` too: ``python -m`` puts the working directory ahead of ``PYTHONPATH``.
    """
    where = (checkout or Path.cwd()).resolve()
    env = os.environ | {"BQREPO_URL": f"duckdb:///{settings.duckdb_path}", "PYTHONPATH": str(where)}
    command = [
        sys.executable, "-m", "bqrepo.cli", "backfill", "--from", server.url, "--table", "events",
        "--mapping", str(mapping), "--checkpoint", str(checkpoint), "--verify" if verify else "--no-verify",
    ]
    begun = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    status, peak, cpu = _waited(process)
    seconds = time.perf_counter() - begun
    if status != 0 or (verify and "OK" not in output):
        raise SystemExit(f"bqrepo backfill failed ({status}):\n{output}")
    return Run(seconds, peak, cpu)


def baseline_run(server: LocalPostgres, settings: Settings, table: str) -> Run:
    env = os.environ | {"PGPASSWORD": server.password}
    columns = ", ".join(COLUMNS)
    select = f"COPY (SELECT {columns} FROM {table}) TO STDOUT (FORMAT csv)"
    begun = time.perf_counter()
    psql = subprocess.Popen(
        ["psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "bqrepo", "-d", "legacy", "-X", "-q", "-c", select],
        env=env, stdout=subprocess.PIPE,
    )
    duck = subprocess.Popen(
        [sys.executable, "-c", _BASELINE.format(cols=columns, types=CSV_TYPES), settings.duckdb_path],
        stdin=psql.stdout,
    )
    assert psql.stdout is not None
    psql.stdout.close()
    psql_status, _, _ = _waited(psql)
    duck_status, peak, cpu = _waited(duck)
    seconds = time.perf_counter() - begun
    if psql_status or duck_status:
        raise SystemExit(f"baseline failed: psql {psql_status}, duckdb {duck_status}")
    return Run(seconds, peak, cpu)


def count(settings: Settings) -> int:
    engine = sa.create_engine(f"duckdb:///{settings.duckdb_path}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM events")).scalar_one())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40,000 rows, one repeat: a smoke run")
    parser.add_argument("--markdown", type=Path, help="write the results section here")
    parser.add_argument("--compare", type=Path, help="another checkout (say /work/main), run interleaved: before/after")
    args = parser.parse_args(argv)
    rows, repeat = (40_000, 1) if args.quick else (args.rows, args.repeat)
    small = rows // 4
    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    best: dict[str, Run] = {}

    def keep(name: str, run: Run) -> None:
        print(f"  {name:<28} {run.seconds:8.2f} s  {rows_of(name) / run.seconds:>10,.0f} rows/s  "
              f"peak {run.peak_mb:7.0f} MB  cpu {run.cpu:6.2f} s", flush=True)
        old = best.get(name)
        best[name] = Run(min(run.seconds, old.seconds) if old else run.seconds,
                         max(run.peak_mb, old.peak_mb) if old else run.peak_mb,
                         min(run.cpu, old.cpu) if old else run.cpu)

    def rows_of(name: str) -> int:
        return small if name.endswith("small") else rows

    with LocalPostgres() as server:
        began = time.perf_counter()
        fill(server, "bench_event", rows)
        fill(server, "bench_event_small", small)
        print(f"source: {rows:,} + {small:,} events generated in {time.perf_counter() - began:.1f} s", flush=True)
        big_map, small_map = mapping_file(work, "bench_event"), mapping_file(work, "bench_event_small")
        for attempt in range(repeat):
            print(f"round {attempt + 1}/{repeat}", flush=True)
            settings = fresh_destination(work, "baseline")
            keep("baseline", baseline_run(server, settings, "bench_event"))
            assert count(settings) == rows
            settings = fresh_destination(work, "noverify")
            keep("backfill", bqrepo_run(server, settings, big_map, work / f"nv{attempt}.json", verify=False))
            assert count(settings) == rows
            settings = fresh_destination(work, "verify")
            checkpoint = work / f"v{attempt}.json"
            keep("backfill+verify", bqrepo_run(server, settings, big_map, checkpoint, verify=True))
            keep("verify", bqrepo_run(server, settings, big_map, checkpoint, verify=True))
            if args.compare:
                settings = fresh_destination(work, "old_noverify")
                keep("old backfill", bqrepo_run(server, settings, big_map, work / f"onv{attempt}.json", False, args.compare))
                settings = fresh_destination(work, "old_verify")
                checkpoint = work / f"ov{attempt}.json"
                keep("old backfill+verify", bqrepo_run(server, settings, big_map, checkpoint, True, args.compare))
                keep("old verify", bqrepo_run(server, settings, big_map, checkpoint, True, args.compare))
            settings = fresh_destination(work, "small")
            checkpoint = work / f"s{attempt}.json"
            bqrepo_run(server, settings, small_map, checkpoint, verify=False)
            keep("verify small", bqrepo_run(server, settings, small_map, checkpoint, verify=True))

    rate = {name: rows_of(name) / run.seconds for name, run in best.items()}
    base = rate["baseline"]
    lines = [
        "## Back-fill: PostgreSQL 15 -> DuckDB",
        "",
        f"{dt.date.today()}, {_machine()}. `{rows:,}` Django-like events (10,000 a day, JSONB metadata), "
        f"best of {repeat} interleaved run(s); rates are rows/s end to end (process start to exit), "
        "peak memory is the process's peak RSS. Baseline: `psql COPY (SELECT ...) TO STDOUT (FORMAT csv)` "
        "piped into DuckDB `read_csv` into the same migrated table (no validation, checkpoint or verification).",
        "",
        "| figure | bqrepo | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|",
        f"| back-fill with verification, rows/s | {rate['backfill+verify']:,.0f} | {base:,.0f} | "
        f"{rate['backfill+verify'] / base:.2f} | >= 100,000 rows/s | "
        f"{'yes' if rate['backfill+verify'] >= 100_000 else 'no'} |",
        f"| back-fill without verification, rows/s | {rate['backfill']:,.0f} | {base:,.0f} | "
        f"{rate['backfill'] / base:.2f} | - | - |",
        f"| verification alone, rows/s | {rate['verify']:,.0f} | - | - | - | - |",
        f"| verification peak RSS, {rows:,} rows | {best['verify'].peak_mb:,.0f} MB | - | - | < 500 MB | "
        f"{'yes' if best['verify'].peak_mb < 500 else 'no'} |",
        f"| verification peak RSS, {small:,} rows | {best['verify small'].peak_mb:,.0f} MB | - | "
        f"{best['verify'].peak_mb / best['verify small'].peak_mb:.2f} (4x rows) | flat | "
        f"{'yes' if best['verify'].peak_mb < 1.2 * best['verify small'].peak_mb else 'no'} |",
        f"| back-fill with verification peak RSS | {best['backfill+verify'].peak_mb:,.0f} MB | "
        f"{best['baseline'].peak_mb:,.0f} MB | {best['backfill+verify'].peak_mb / best['baseline'].peak_mb:.2f} | - | - |",
        "",
    ]
    if args.compare:
        lines += [
            f"Before/after: `{args.compare}` (before) and this checkout (after), interleaved in the same run, "
            f"best of {repeat}, {rows:,} rows:",
            "",
            "| run | before | after | speed-up (wall) | CPU-s before / after |",
            "|---|---|---|---|---|",
        ]
        for name in ("backfill+verify", "backfill", "verify"):
            old, new = best[f"old {name}"], best[name]
            lines.append(
                f"| {name} | {rows / old.seconds:,.0f} rows/s, {old.peak_mb:,.0f} MB | "
                f"{rows / new.seconds:,.0f} rows/s, {new.peak_mb:,.0f} MB | {old.seconds / new.seconds:.2f}x | "
                f"{old.cpu:.2f} / {new.cpu:.2f} ({old.cpu / new.cpu:.2f}x) |"
            )
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
