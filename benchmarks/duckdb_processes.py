"""Several processes writing and reading one embedded DuckDB file at once (not a test).

    .venv/bin/python benchmarks/duckdb_processes.py [--processes 2] [--ops 1000] [--file PATH]

Starts ``--processes`` real processes (a web process and a Celery worker,
say) that each run ``--ops`` operations on the same file through
:class:`~bqrepo.service.TimeSeriesService`, alternating a one-event insert
and a read of recent events. Prints one JSON line: the events each process
wrote, the events in the file afterwards (nothing may be lost), every error
any process saw (none may be a raw driver error), and the timings.
tests/test_config.py runs it at a small size; the full size is recorded in
the README ("Django and Celery").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bqrepo.migrate import upgrade
from bqrepo.service import TimeSeriesService
from bqrepo.settings import Settings

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def work(path: str, name: str, ops: int) -> dict[str, object]:
    """One process's share: ``ops`` operations, half inserts and half reads."""
    service = TimeSeriesService.from_settings(Settings(duckdb_path=path))
    errors: list[str] = []
    written = 0
    slowest = 0.0
    started = time.perf_counter()
    for op in range(ops):
        began = time.perf_counter()
        try:
            if op % 2 == 0:
                event = {"id": f"{name}-{op}", "title": f"{name} {op}", "mentioned_at": T0 + timedelta(seconds=op)}
                written += service.insert_events([event]).written
            else:
                service.get_recent_events(T0, T0 + timedelta(days=1), limit=10)
        except Exception as exc:
            errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {str(exc).splitlines()[0]}")
        slowest = max(slowest, time.perf_counter() - began)
    return {"name": name, "written": written, "errors": errors,
            "seconds": round(time.perf_counter() - started, 2), "slowest_op_s": round(slowest, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--file", default=None)
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(work(args.worker[0], args.worker[1], args.ops)))
        return
    path = args.file or str(Path(tempfile.mkdtemp()) / "shared.duckdb")
    upgrade(Settings(duckdb_path=path))
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--ops", str(args.ops), "--worker", path, f"p{n}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(args.processes)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"worker failed ({worker.returncode}): {err}")
        reports.append(json.loads(out))
    elapsed = time.perf_counter() - started
    service = TimeSeriesService.from_settings(Settings(duckdb_path=path))
    stored = len(service.get_recent_events(T0, T0 + timedelta(days=1), limit=1_000_000))
    print(json.dumps({
        "processes": args.processes, "ops_per_process": args.ops,
        "written": sum(int(r["written"]) for r in reports), "stored": stored,
        "errors": [e for r in reports for e in r["errors"]],
        "seconds": round(elapsed, 2),
        "ops_per_second": round(args.processes * args.ops / elapsed, 1),
        "workers": reports,
    }))


if __name__ == "__main__":
    main()
