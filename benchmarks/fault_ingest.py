"""Ingest through a BigQuery that misbehaves, and count what landed (not a test).

    PYTHONPATH=. .venv/bin/python benchmarks/fault_ingest.py [--rows 100000] [--rate 0.1]

Starts the local stand-in with :class:`bqrepo.testing.faults.FaultProxy` in
front of it (``misbehave(rate)``: lost answers, resets, 503s, failed load
jobs, insertId de-duplication misses), migrates a fresh dataset, then writes
``--rows`` events twice, into two event types:

* by load jobs (``BigQueryLoadWriter``, batches of ``--batch`` rows): the raw
  table must hold each row exactly once;
* by streaming (``BigQueryStreamWriter``): ``risk_trends`` must answer
  exactly what the rows say, and the raw duplicates that best-effort
  de-duplication left are counted.

Prints both figures and the faults that fired; exits 1 if either check fails.
Figures are recorded in docs/writing.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import uuid
from collections import Counter

import sqlalchemy as sa

from bqrepo import schema
from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.repositories import EventRepository
from bqrepo.rows import EventRow
from bqrepo.settings import Settings
from bqrepo.testing.faults import FaultProxy
from bqrepo.testing.standin import LocalBigQuery
from bqrepo.writers import BigQueryLoadWriter, BigQueryStreamWriter

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
DAYS = 20


def events(n: int, kind: str) -> list[EventRow]:
    return [
        EventRow(  # type: ignore[call-arg]  # the id derives from source_url
            title=f"event {i}",
            source_url=f"https://news.example/{kind}/{i}",
            event_type=kind,
            risk_score=(i % 997) / 997,
            mentioned_at=T0 + dt.timedelta(days=i % DAYS, seconds=i % 86_000),
            created_at=T0,
        )
        for i in range(n)
    ]


def raw_copies(engine: sa.Engine, kind: str) -> Counter[str]:
    table = schema.events
    statement = sa.select(table.c.id).where(
        table.c.event_type == kind, table.c.mentioned_at >= T0 - dt.timedelta(days=1)
    )
    with engine.connect() as connection:
        return Counter(connection.execute(statement).scalars())


def expected_trends(rows: list[EventRow]) -> list[tuple[dt.datetime, int, float]]:
    by_day: dict[dt.datetime, list[float]] = {}
    for row in rows:
        day = row.mentioned_at.replace(hour=0, minute=0, second=0, microsecond=0)
        by_day.setdefault(day, []).append(row.risk_score or 0.0)
    return [(day, len(r), max(r)) for day, r in sorted(by_day.items())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=2_000, help="rows per load-writer call")
    args = parser.parse_args()
    ok = True
    with LocalBigQuery() as standin, FaultProxy(standin.endpoint, seed=9) as proxy:
        dataset = f"bench_{uuid.uuid4().hex[:8]}"
        settings = Settings(
            project_id=standin.project, dataset=dataset,
            url=f"bigquery://{standin.project}/{dataset}", emulator_host=proxy.host,
        )
        upgrade(settings)
        proxy.misbehave(args.rate)
        engine = create_engine(settings)

        rows = events(args.rows, "loaded")
        started, faults_before = time.monotonic(), len(proxy.faults())
        writer = BigQueryLoadWriter.for_bind(engine)
        written = sum(
            writer.write(schema.events, rows[i : i + args.batch]).written
            for i in range(0, len(rows), args.batch)
        )
        copies = raw_copies(engine, "loaded")
        exact = written == args.rows and len(copies) == args.rows and set(copies.values()) == {1}
        ok &= exact
        print(
            f"load jobs: {args.rows:,} rows in {time.monotonic() - started:.0f} s, "
            f"{len(proxy.faults()) - faults_before} faults; raw table {sum(copies.values()):,} rows, "
            f"{len(copies):,} distinct ids -> {'each row exactly once' if exact else 'WRONG'}"
        )

        rows = events(args.rows, "streamed")
        started, faults_before = time.monotonic(), len(proxy.faults())
        result = BigQueryStreamWriter.for_bind(engine).write(schema.events, rows)
        copies = raw_copies(engine, "streamed")
        trends = EventRepository(engine).risk_trends(T0, T0 + dt.timedelta(days=DAYS), event_type="streamed")
        answers = [(t.bucket_start, t.event_count, t.max_risk) for t in trends] == expected_trends(rows)
        complete = result.written == args.rows and not result.rejected and len(copies) == args.rows
        ok &= answers and complete
        print(
            f"streaming: {args.rows:,} rows in {time.monotonic() - started:.0f} s, "
            f"{len(proxy.faults()) - faults_before} faults; raw table {sum(copies.values()):,} rows "
            f"({sum(copies.values()) - len(copies):,} raw duplicates left by de-duplication misses), "
            f"risk_trends {'exact' if answers else 'WRONG'}"
        )
        print("faults:", dict(Counter(proxy.faults())))
        engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
