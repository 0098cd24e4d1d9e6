"""The back-fill fills any declared table, from the command line too, given where its metadata lives."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from bqrepo.backfill import backfill
from bqrepo.engine import create_engine
from bqrepo.repositories import TimeSeriesRepository
from bqrepo.settings import Settings

BQREPO = str(Path(sys.executable).with_name("bqrepo"))

SCHEMA = '''
import sqlalchemy as sa
from google.cloud.bigquery import TimePartitioning
from bqrepo.timeseries import time_series

metadata = sa.MetaData()
forecasts = time_series(
    sa.Table(
        "forecasts", metadata,
        sa.Column("id", sa.String, nullable=False),
        sa.Column("series_id", sa.String, nullable=False),
        sa.Column("forecast_date", sa.Date, nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("generated_at", sa.TIMESTAMP(timezone=True)),
        bigquery_time_partitioning=TimePartitioning(field="forecast_date", type_="MONTH"),
    ),
    time="forecast_date", key=("series_id", "forecast_date"), version="generated_at",
)
'''

MAPPING = """
[forecasts]
source = "{source}"
chunk = "month"

[forecasts.columns]
series_id = "series"
forecast_date = "day"
value = "val"
generated_at = "made"
"""


def _source(url: str, name: str, rows: int) -> list[tuple[str, dt.date, float]]:
    """An old table of forecasts in PostgreSQL; returns what it holds."""
    data = [(f"s{i % 3}", dt.date(2025, 1, 1) + dt.timedelta(days=7 * i), float(i)) for i in range(rows)]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            connection.execute(sa.text(f"CREATE TABLE {name} (series text, day date, val double precision, made timestamptz)"))
            connection.execute(
                sa.text(f"INSERT INTO {name} VALUES (:s, :d, :v, '2025-06-01T00:00:00Z')"),
                [{"s": s, "d": d, "v": v} for s, d, v in data],
            )
    finally:
        engine.dispose()
    return data


def _project(tmp_path: Path, source: str) -> tuple[Path, Path]:
    package = tmp_path / "proj" / "forecasting"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "schema.py").write_text(SCHEMA)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING.format(source=source))
    return package.parent, mapping


def _latest(settings: Settings, table: sa.Table) -> list[dict[str, object]]:
    engine = create_engine(settings)
    try:
        return TimeSeriesRepository(engine, table).latest(columns=["value"])
    finally:
        engine.dispose()


def test_backfill_fills_a_declared_table(legacy_postgres, duckdb_settings: Settings, tmp_path: Path) -> None:
    server, _ = legacy_postgres
    data = _source(server.url, "forecast_source", 40)
    project, mapping = _project(tmp_path, "forecast_source")
    sys.path.insert(0, str(project))
    try:
        from forecasting.schema import forecasts, metadata  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(project))
    engine = create_engine(duckdb_settings)
    metadata.create_all(engine)
    engine.dispose()

    result = backfill(server.url, "forecasts", settings=duckdb_settings, mapping_file=mapping,
                      checkpoint_file=tmp_path / "cp.json", tables=[forecasts])
    assert result.rows_written == len(data)
    assert result.verification is not None and result.verification.ok
    newest = {}
    for series, day, value in data:
        newest[series] = max(newest.get(series, (day, value)), (day, value))
    assert _latest(duckdb_settings, forecasts) == [
        {"series_id": s, "forecast_date": d, "value": v} for s, (d, v) in sorted(newest.items())
    ]

    # The same through the CLI, naming the metadata; a re-run writes nothing twice.
    env = {**os.environ, "BQREPO_DUCKDB_PATH": duckdb_settings.duckdb_path or "", "PYTHONPATH": str(project)}
    run = subprocess.run(
        [BQREPO, "--metadata", "forecasting.schema:metadata", "backfill", "--from", server.url,
         "--table", "forecasts", "--mapping", str(mapping), "--checkpoint", str(tmp_path / "cp.json")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    engine = create_engine(duckdb_settings)
    try:
        with engine.connect() as connection:
            stored = connection.execute(sa.select(sa.func.count()).select_from(forecasts)).scalar_one()
    finally:
        engine.dispose()
    assert stored == len(data)  # resumed from the checkpoint: every chunk was done
    unknown = subprocess.run(
        [BQREPO, "backfill", "--from", server.url, "--table", "forecasts", "--mapping", str(mapping)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert unknown.returncode == 1 and "no bqrepo table 'forecasts'" in unknown.stderr
