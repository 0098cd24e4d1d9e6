"""Write-side speed (issue 13): validation, streaming encoding, ``bqrepo ingest``, load vs DML.

    .venv/bin/python benchmarks/bench_writes.py [--quick] [--repeat 5] [--standin] [--markdown PATH]

Every figure is a ratio against a baseline measured in the same run,
interleaved, the best of ``--repeat`` runs (the machine is shared and noisy):

(a) validate + serialize + chunk events for streaming, network out of the
    picture: ``validate_rows(EventRow)`` then ``BigQueryStreamWriter.write``
    through a real ``google.cloud.bigquery.Client`` whose HTTP session
    answers every insertAll request itself, so the exact request bodies are
    built (and JSON-encoded by the client) but never sent. Rows per CPU
    second (``time.process_time``), against the seed-style path: a plain
    dict per record and ``json.dumps`` per row, joined into 500-row bodies.
(b) ``validate_rows(EventRow)`` alone, rows per CPU second.
(c) ``bqrepo ingest events FILE.jsonl`` into a fresh DuckDB file, as a
    subprocess: wall rows/s and peak RSS (``/usr/bin/time``), against DuckDB
    ``read_json`` of the same file into the same table (ids from
    ``uuid()``), at two file sizes to show the peak does not grow.
(d) ``--standin``: the anchor, load writer vs DML through the dialect
    (one query job per row) into the local BigQuery stand-in, rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_writers import records  # noqa: E402  (the events bench_writers.py has always used)

def _checkout() -> Path:
    """The checkout whose bqrepo this run measures (PYTHONPATH may name another, e.g. to compare)."""
    import bqrepo

    return Path(bqrepo.__file__).resolve().parents[1]


REQUEST_ROWS = 500


# --- (a) and (b) ---------------------------------------------------------------------


class _AnsweringSession(requests.Session):
    """An HTTP session that answers every request with ``200 {}`` and counts the bytes it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.is_mtls = False  # what google-cloud-core asks of an AuthorizedSession
        self.requests = 0
        self.bytes = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        data = kwargs.get("data") or b""
        self.requests += 1
        self.bytes += len(data)
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.headers["content-type"] = "application/json"
        response.url = url
        return response


def _stream_writer() -> tuple[Any, _AnsweringSession]:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from bqrepo.writers import BigQueryStreamWriter, BigQueryTarget

    session = _AnsweringSession()
    client = bigquery.Client(project="bench", credentials=AnonymousCredentials(), _http=session)
    return BigQueryStreamWriter(BigQueryTarget(client, "bench", "bench")), session


def bqrepo_stream(data: list[dict[str, Any]]) -> tuple[float, int]:
    """CPU seconds to validate and stream-encode ``data``, and the request bytes built."""
    from bqrepo import schema
    from bqrepo.rows import EventRow, validate_rows

    writer, session = _stream_writer()
    start = time.process_time()
    report = validate_rows(EventRow, data)
    result = writer.write(schema.events, report.rows)
    seconds = time.process_time() - start
    assert report.ok and result.written == len(data), (report.errors[:3], result.rejected[:3])
    return seconds, session.bytes


def seed_stream(data: list[dict[str, Any]]) -> tuple[float, int]:
    """The seed-style path: a dict per record, ``json.dumps`` per row, 500-row request bodies."""
    start = time.process_time()
    bodies: list[bytes] = []
    lines: list[str] = []
    for record in data:
        row = dict(record)
        row["mentioned_at"] = record["mentioned_at"].isoformat()
        row["metadata"] = json.dumps(record["metadata"])
        lines.append('{"json": ' + json.dumps(row) + "}")
        if len(lines) == REQUEST_ROWS:
            bodies.append(('{"rows": [' + ", ".join(lines) + "]}").encode())
            lines = []
    if lines:
        bodies.append(('{"rows": [' + ", ".join(lines) + "]}").encode())
    seconds = time.process_time() - start
    return seconds, sum(len(body) for body in bodies)


def validate_only(data: list[dict[str, Any]]) -> float:
    from bqrepo.rows import EventRow, validate_rows

    start = time.process_time()
    report = validate_rows(EventRow, data)
    seconds = time.process_time() - start
    assert report.ok
    return seconds


# --- (c) ingest ----------------------------------------------------------------------


def write_jsonl(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, n, 50_000):
            for record in records(min(50_000, n - start)):
                record["source_url"] += f"/{start}"  # distinct rows across blocks
                record["mentioned_at"] = record["mentioned_at"].isoformat()
                handle.write(json.dumps(record) + "\n")


def _migrated(path: Path, checkout: Path | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "bqrepo.cli", "migrate"],
        env=_env(path, checkout), check=True, capture_output=True, cwd=path.parent,
    )


def _env(database: Path, checkout: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQREPO_", "GCP_", "BIGQUERY_"))}
    env["BQREPO_DUCKDB_PATH"] = str(database)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout or _checkout()), env.get("PYTHONPATH")]))
    return env


#: CPU seconds (user + system) of the last child :func:`_timed_child` ran, by its command's tool.
CPU_SECONDS: dict[str, list[float]] = {}


def _timed_child(command: Sequence[str], env: dict[str, str], tool: str = "") -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process, measured by /usr/bin/time.

    Its CPU seconds (user + system) are kept in :data:`CPU_SECONDS` under ``tool``:
    on a busy machine they move less than the wall time.
    """
    completed = subprocess.run(
        ["/usr/bin/time", "-f", "BENCH %e %M %U %S", *command], env=env, capture_output=True, text=True,
        cwd=tempfile.gettempdir(),  # `python -m` puts the working directory first on sys.path: not a checkout
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    found = re.findall(r"BENCH ([\d.]+) (\d+) ([\d.]+) ([\d.]+)", completed.stderr)
    wall, kilobytes, user, system = found[-1]
    CPU_SECONDS.setdefault(tool, []).append(float(user) + float(system))
    return float(wall), int(kilobytes) * 1024


READ_JSON = """
import duckdb, sys
connection = duckdb.connect(sys.argv[1])
connection.execute("SET TimeZone = 'UTC'")
connection.execute('''
    INSERT INTO events (id, title, content, source_url, source_name, event_type, location,
                        risk_score, severity, mentioned_at, created_at, metadata)
    SELECT uuid()::VARCHAR, title, content, source_url, source_name, event_type, location,
           risk_score, severity, mentioned_at, NULL, metadata
    FROM read_json(?, format = 'newline_delimited', columns = {
        title: 'VARCHAR', content: 'VARCHAR', source_url: 'VARCHAR', source_name: 'VARCHAR',
        event_type: 'VARCHAR', location: 'VARCHAR', risk_score: 'DOUBLE', severity: 'VARCHAR',
        mentioned_at: 'TIMESTAMPTZ', metadata: 'JSON'})
''', [sys.argv[2]])
assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == int(sys.argv[3])
connection.close()
"""


def ingest_once(directory: Path, source: Path, n: int, tool: str, checkout: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS of one ingest of ``source`` into a fresh migrated file.

    ``tool``: "bqrepo" (``bqrepo ingest`` of this run's checkout, or of
    ``checkout`` when given) or "read_json" (the baseline).
    """
    database = directory / f"{tool}-{uuid.uuid4().hex[:8]}.duckdb"
    _migrated(database, checkout)
    env = _env(database, checkout)
    try:
        label = f"{tool} {checkout or ''} {n}"
        if tool == "bqrepo":
            return _timed_child([sys.executable, "-m", "bqrepo.cli", "ingest", "events", str(source)], env, label)
        return _timed_child([sys.executable, "-c", READ_JSON, str(database), str(source), str(n)], env, label)
    finally:
        for leftover in directory.glob(database.name + "*"):
            leftover.unlink()


def ingest_figures(sizes: Sequence[int], repeat: int, compare: Path | None = None) -> tuple[list[Figure], list[str]]:
    """Section (c): ``bqrepo ingest`` against ``read_json`` (and ``compare``'s bqrepo), interleaved."""
    figures: list[Figure] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        peaks: dict[int, int] = {}
        for size in sizes:
            source = directory / f"events-{size}.jsonl"
            write_jsonl(source, size)
            print(f"(c): ingest {size:,} rows ({source.stat().st_size / 1e6:.0f} MB), best of {repeat}", flush=True)
            tools: dict[str, Callable[[], tuple[float, int]]] = {
                "bqrepo": lambda: ingest_once(directory, source, size, "bqrepo"),
                "read_json": lambda: ingest_once(directory, source, size, "read_json"),
            }
            if compare is not None:
                tools["compare"] = lambda: ingest_once(directory, source, size, "bqrepo", compare)
            runs: dict[str, list[tuple[float, int]]] = {tool: [] for tool in tools}
            for _ in range(repeat):
                for tool, work in tools.items():
                    runs[tool].append(work())
            bq_wall = min(wall for wall, _ in runs["bqrepo"])
            rj_wall = min(wall for wall, _ in runs["read_json"])
            bq_peak = max(peak for _, peak in runs["bqrepo"])
            rj_peak = max(peak for _, peak in runs["read_json"])
            peaks[size] = bq_peak
            print(f"  bqrepo {size / bq_wall:,.0f} rows/s, peak {bq_peak / 2**20:,.0f} MiB; "
                  f"read_json {size / rj_wall:,.0f} rows/s, peak {rj_peak / 2**20:,.0f} MiB", flush=True)
            figures.append(Figure(
                f"(c) `bqrepo ingest` {size:,} events JSONL -> DuckDB, rows/s (wall, process start included)",
                f"{size / bq_wall:,.0f}", f"DuckDB read_json: {size / rj_wall:,.0f}",
                f"{rj_wall / bq_wall:.2f}x", ">= 150,000 rows/s", _met(size / bq_wall >= 150_000),
            ))
            figures.append(Figure(
                "(c) peak RSS of that ingest, MiB", f"{bq_peak / 2**20:,.0f}",
                f"read_json: {rj_peak / 2**20:,.0f}", f"{bq_peak / rj_peak:.2f}x", "flat in file size", "",
            ))
            bq_cpu = min(CPU_SECONDS[f"bqrepo  {size}"])
            rj_cpu = min(CPU_SECONDS[f"read_json  {size}"])
            figures.append(Figure(
                "(c) the same, rows per CPU-second of the process (user + system)", f"{size / bq_cpu:,.0f}",
                f"read_json: {size / rj_cpu:,.0f}", f"{rj_cpu / bq_cpu:.2f}x", "-", "",
            ))
            if compare is not None:
                before_cpu = min(CPU_SECONDS[f"bqrepo {compare} {size}"])
                figures.append(Figure(
                    f"(c) the same by {compare} (before), rows per CPU-second", f"{size / bq_cpu:,.0f}",
                    f"{size / before_cpu:,.0f}", f"{before_cpu / bq_cpu:.2f}x", "A/B", "",
                ))
                before_wall = min(wall for wall, _ in runs["compare"])
                before_peak = max(peak for _, peak in runs["compare"])
                print(f"  {compare}: {size / before_wall:,.0f} rows/s, peak {before_peak / 2**20:,.0f} MiB", flush=True)
                figures.append(Figure(
                    f"(c) the same ingest by {compare} (before), rows/s; peak RSS MiB",
                    f"{size / bq_wall:,.0f}; {bq_peak / 2**20:,.0f}",
                    f"{size / before_wall:,.0f}; {before_peak / 2**20:,.0f}",
                    f"{before_wall / bq_wall:.2f}x faster; {bq_peak / before_peak:.2f}x memory", "A/B", "",
                ))
                notes.append(f"(c) {size:,} rows, {compare} vs this checkout: walls (s) "
                             f"{sorted(round(w, 2) for w, _ in runs['compare'])} vs "
                             f"{sorted(round(w, 2) for w, _ in runs['bqrepo'])}.")
            source.unlink()
        if len(sizes) > 1:
            small, large = min(sizes), max(sizes)
            growth = peaks[large] / peaks[small]
            figures.append(Figure(
                f"(c) peak RSS at {large:,} rows / at {small:,} rows", f"{growth:.2f}", "1.00 (flat)",
                f"{growth:.2f}x", "<= 1.10x", _met(growth <= 1.10),
            ))
    return figures, notes


# --- (d) the anchor on the stand-in ----------------------------------------------------


def load_vs_dml(n_load: int, n_dml: int) -> tuple[float, float]:
    """Rows/s of the load writer and of DML INSERT through the dialect, on the stand-in."""
    import sqlalchemy as sa

    from bqrepo import schema
    from bqrepo.engine import create_engine
    from bqrepo.migrate import upgrade
    from bqrepo.rows import EventRow, validate_rows
    from bqrepo.settings import Settings
    from bqrepo.testing.standin import LocalBigQuery
    from bqrepo.writers import writer_for

    rows = validate_rows(EventRow, records(max(n_load, n_dml))).rows
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
        try:
            start = time.perf_counter()
            result = writer_for(engine, "load").write(schema.events, rows[:n_load])
            load_rate = n_load / (time.perf_counter() - start)
            assert result.written == n_load
            # A JSON query parameter cannot be bound on BigQuery: the text goes through PARSE_JSON.
            statement = sa.insert(schema.events).values(
                metadata=sa.func.PARSE_JSON(sa.bindparam("metadata_text", type_=sa.String))
            )
            db_rows = []
            for row in rows[:n_dml]:
                values = row.to_db_row()
                values["metadata_text"] = json.dumps(values.pop("metadata"))
                db_rows.append(values)
            start = time.perf_counter()
            with engine.begin() as connection:
                connection.execute(statement, db_rows)
            dml_rate = n_dml / (time.perf_counter() - start)
        finally:
            engine.dispose()
    return load_rate, dml_rate


# --- report --------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    bqrepo: str
    baseline: str
    ratio: str
    target: str
    met: str


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = next(
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        memory = 0
    return (
        f"{os.cpu_count()} cores ({model}), {memory / 1024:.1f} GiB RAM, Python {platform.python_version()}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


def best(samples: list[float]) -> float:
    return min(samples)


def interleaved(repeat: int, *works: Callable[[], float]) -> list[float]:
    """The best of ``repeat`` runs of each work, runs interleaved (a, b, a, b, ...)."""
    samples: list[list[float]] = [[] for _ in works]
    for _ in range(repeat):
        for position, work in enumerate(works):
            samples[position].append(work())
    return [best(found) for found in samples]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (the best is kept)")
    parser.add_argument("--standin", action="store_true", help="also (d): load vs DML on the stand-in")
    parser.add_argument("--skip-ingest", action="store_true", help="leave out (c)")
    parser.add_argument("--sizes", help="(c) file sizes, comma-separated (default 250000,1000000)")
    parser.add_argument("--only-ingest", action="store_true", help="(c) alone")
    parser.add_argument("--compare", type=Path, help="(c) also runs the ingest of this checkout (e.g. main), interleaved")
    parser.add_argument("--markdown", type=Path, help="write the results section here")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick and args.repeat == 5 else args.repeat
    n = 10_000 if args.quick else 100_000
    sizes = (20_000, 80_000) if args.quick else (250_000, 1_000_000)
    if args.sizes:
        sizes = tuple(int(size) for size in args.sizes.split(","))
    figures: list[Figure] = []
    notes: list[str] = []

    if args.only_ingest:
        figures, notes = ingest_figures(sizes, repeat, args.compare)
        return _report(render(figures, notes, repeat, ingest_only=True), args.markdown)

    data = records(n)
    print(f"(a)/(b): {n:,} events, best of {repeat}", flush=True)
    sent: dict[str, int] = {}

    def run_bqrepo() -> float:
        seconds, sent["bqrepo"] = bqrepo_stream(data)
        return seconds

    def run_seed() -> float:
        seconds, sent["seed"] = seed_stream(data)
        return seconds

    bq_seconds, seed_seconds, validate_seconds = interleaved(
        repeat, run_bqrepo, run_seed, lambda: validate_only(data)
    )
    bq_rate, seed_rate, validate_rate = n / bq_seconds, n / seed_seconds, n / validate_seconds
    print(f"  bqrepo validate+stream-encode {bq_rate:,.0f} rows/CPU-s; seed {seed_rate:,.0f}; "
          f"validate_rows {validate_rate:,.0f}", flush=True)
    figures.append(Figure(
        f"(a) validate + serialize + chunk {n:,} events for streaming (request bodies built, not sent), rows/CPU-s",
        f"{bq_rate:,.0f}", f"seed dict + json.dumps: {seed_rate:,.0f}", f"{bq_rate / seed_rate:.2f}x",
        ">= 1.0x and >= 150,000", _met(bq_rate >= seed_rate and bq_rate >= 150_000),
    ))
    notes.append(
        f"(a) request bytes built: bqrepo {sent['bqrepo']:,} (ids, insertIds, every column), "
        f"seed {sent['seed']:,}."
    )
    figures.append(Figure(
        f"(b) validate_rows(EventRow), {n:,} events, rows/CPU-s", f"{validate_rate:,.0f}", "-", "-",
        "(part of (a))", "-",
    ))

    if not args.skip_ingest:
        found, said = ingest_figures(sizes, repeat, args.compare)
        figures += found
        notes += said

    if args.standin:
        n_load, n_dml = (200, 5) if args.quick else (5_000, 20)
        print(f"(d): load writer {n_load:,} rows vs DML {n_dml} rows, on the stand-in", flush=True)
        load_rate, dml_rate = load_vs_dml(n_load, n_dml)
        print(f"  load {load_rate:,.0f} rows/s, DML {dml_rate:,.2f} rows/s", flush=True)
        figures.append(Figure(
            f"(d) anchor: load writer ({n_load:,} rows) vs DML INSERT through the dialect ({n_dml} rows), stand-in, rows/s",
            f"{load_rate:,.0f}", f"DML: {dml_rate:,.1f}", f"{load_rate / dml_rate:,.0f}x",
            "stays >> 1 (issue: 2,900x)", _met(load_rate / dml_rate >= 100),
        ))

    return _report(render(figures, notes, repeat), args.markdown)


def _report(text: str, markdown: Path | None) -> int:
    print(text)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text, encoding="utf-8")
    return 0


#: Where the time goes and what would close the rest (cProfile and stage timings, 2026-11-26).
ANALYSIS = [
    "Where (a) goes, per row (cProfile, 50,000 events): validation about 35%: the batch's one "
    "pydantic-core call (about 2.5 us; for a row type without rules no Python validator runs inside "
    "it) and one finishing pass over the batch (about 2.5 us: UTC conversion, `natural_id` about "
    "1.5 us, the request-size bound once per 2,000 rows); the streaming encoding about 45%: "
    "`to_bigquery_row` about 3 us and the insertId's sorted canonical JSON + SHA-256 about 5 us, "
    "now the largest single item; the client's `json.dumps` of each request body about 15%; the "
    "collector's catch-up after the batch about 5%. The seed path does one `json.dumps` per row and "
    "nothing else: no ids, no checks.",
    "What would close (a): (1) an insertId hashed from pydantic-core's `to_json` of the row instead "
    "of the sort_keys `JSONEncoder` (insertId values change: harmless, a one-minute window), which "
    "pays only with (2) the insertAll body bytes built once and sent with their real length instead "
    "of `insert_rows_json`'s `json.dumps`; (3) a pydantic-core serializer per row type in place of "
    "`to_bigquery_row`. Estimated together: about 0.8x the seed; 1.0x also needs the id derivation "
    "in Rust.",
    "Where (c) goes now (profile of a 200k-row ingest, main thread, measured before the batch "
    "validation lost its Python validators, which took (b) from about 80k to 120k rows/CPU-s): "
    "validation (`bqrepo/rows.py`) was about two thirds of the Python time, about 13 us/row; reading and parsing the lines (`from_json`, the `Record` per line) about "
    "3 us/row; process start (imports) about 1.5 CPU-s. The DuckDB write (columnar Arrow, about "
    "2 us/row, and the insert, about 3-5 us/row) runs in a thread behind the validation of the next "
    "batch, on a connection held under a write lease (`ConnectionLease`, `DUCKDB_LEASE` = 1 s): the "
    "file is opened, checkpointed and closed about once a second instead of once a batch. What "
    "would close the rest: 150,000 rows/s is 6.7 us/row for everything, less than validation alone "
    "costs; it needs validation without per-row Python (the Python validators as core or Arrow "
    "checks, pydantic only for rows that fail them), or the parse + validate work split over "
    "processes (both cores, when the machine has them free).",
    "Wall-clock figures ((c), (d)) move with the machine's load more than CPU-second ones ((a), (b)) "
    "do; the load average at the end of this run is given next.",
]


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def render(figures: list[Figure], notes: list[str], repeat: int, ingest_only: bool = False) -> str:
    analysis = [note for note in ANALYSIS if note.startswith("Where (c)") or note.startswith("Wall-clock")] if ingest_only else ANALYSIS
    analysis = [*analysis, "Load average (1, 5, 15 min) at the end of the run: {:.1f}, {:.1f}, {:.1f}.".format(*os.getloadavg())]
    lines = [
        "## Writes: `bqrepo ingest` (benchmarks/bench_writes.py --only-ingest)" if ingest_only
        else "## Writes (benchmarks/bench_writes.py)",
        "",
        f"bqrepo measured: {_checkout()}. Machine: {machine()}. Best of {repeat} interleaved runs; ratios are bqrepo against the "
        "baseline of the same run (rates: bqrepo / baseline; times and memory: bqrepo / baseline).",
        "",
        "| figure | bqrepo | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|",
        *(f"| {f.name} | {f.bqrepo} | {f.baseline} | {f.ratio} | {f.target} | {f.met} |" for f in figures),
        "",
        *(f"- {note}" for note in notes),
        *(f"- {note}" for note in analysis),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
