"""Throughput of row validation and of the DuckDB bulk writer (not a test).

    .venv/bin/python benchmarks/bench_writers.py [--rows 100000] [--standin]

Prints rows per second for: validating dicts into EventRow, the DuckDB
writer (Arrow), and, for reference, SQLAlchemy ``executemany`` of the same
rows. ``--standin`` also times the BigQuery stream and load writers against
the local stand-in (a DuckDB-backed emulator: its numbers say nothing about
BigQuery's own speed, only about the client-side work and request count).
Results are recorded in docs/writing.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bqrepo import schema
from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.rows import EventRow, validate_rows
from bqrepo.settings import Settings
from bqrepo.writers import writer_for

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def records(n: int) -> list[dict[str, Any]]:
    rng = random.Random(0)
    return [
        {
            "title": f"event {i}",
            "content": "lorem ipsum " * 10,
            "source_url": f"https://news.example/{i}",
            "source_name": rng.choice(["reuters", "efe"]),
            "event_type": rng.choice(["protest", "sanction", "election"]),
            "location": "Caracas",
            "risk_score": rng.random(),
            "severity": "high",
            "mentioned_at": T0 + dt.timedelta(seconds=rng.randint(0, 90 * 86_400)),
            "metadata": {"i": i, "tags": ["a", "b"]},
        }
        for i in range(n)
    ]


def timed(label: str, n: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"{label:<46} {n:>8,} rows {seconds:7.2f} s {n / seconds:>10,.0f} rows/s")
    return seconds


def fresh_duckdb(directory: Path, name: str) -> sa.Engine:
    settings = Settings(duckdb_path=str(directory / f"{name}.duckdb"))
    upgrade(settings)
    return create_engine(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--standin", action="store_true", help="also time the BigQuery writers on the stand-in"
    )
    args = parser.parse_args()
    n = args.rows
    data = records(n)

    report = None

    def validate() -> None:
        nonlocal report
        report = validate_rows(EventRow, data)

    timed("validate_rows(EventRow, dicts)", n, validate)
    assert report is not None and report.ok
    rows = report.rows

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        engine = fresh_duckdb(directory, "arrow")
        timed(
            "DuckDBWriter.write (Arrow, one statement)",
            n,
            lambda: writer_for(engine).write(schema.events, rows),
        )
        engine.dispose()

        engine = fresh_duckdb(directory, "executemany")
        db_rows = [row.to_db_row() for row in rows]

        def executemany() -> None:
            with engine.begin() as connection:
                connection.execute(sa.insert(schema.events), db_rows)

        timed("reference: sa.insert executemany", n, executemany)
        engine.dispose()

    if args.standin:
        from bqrepo.testing.standin import LocalBigQuery

        with LocalBigQuery() as server:
            dataset = f"bench_{uuid.uuid4().hex[:8]}"
            settings = Settings(
                project_id=server.project,
                dataset=dataset,
                url=f"bigquery://{server.project}/{dataset}",
                emulator_host=server.host,
            )
            upgrade(settings)
            engine = create_engine(settings)
            for method in ("stream", "load"):
                write = writer_for(engine, method).write
                timed(f"stand-in {method} writer", n, lambda w=write: w(schema.events, rows))
            engine.dispose()


if __name__ == "__main__":
    main()
