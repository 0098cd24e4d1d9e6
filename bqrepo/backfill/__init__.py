"""Back-fill bqrepo's tables from the old PostgreSQL/TimescaleDB database.

One module per step: :mod:`~bqrepo.backfill.mapping` (which old table and
columns feed which table, from a TOML file), :mod:`~bqrepo.backfill.chunks`
(the timeline cut at partition boundaries), :mod:`~bqrepo.backfill.reader`
(bound-parameter reads of the old table), :mod:`~bqrepo.backfill.checkpoint`
(resumable progress), :mod:`~bqrepo.backfill.verify` (per-day counts and
checksums) and :mod:`~bqrepo.backfill.runner` (the loop). :func:`backfill`
wires them together; ``bqrepo backfill`` is its command line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa

from bqrepo.backfill.checkpoint import Checkpoint
from bqrepo.backfill.chunks import Chunk
from bqrepo.backfill.mapping import TableMapping, load_mapping
from bqrepo.backfill.reader import (
    SourceError,
    SourceReader,
    legacy_source_key,
    source_engine,
    source_key,
)
from bqrepo.backfill.runner import ROWS_PER_WRITE, BackfillResult, Progress, run_backfill
from bqrepo.backfill.verify import DayCheck, VerificationReport
from bqrepo.settings import ConfigurationError, Settings, load_settings

__all__ = [
    "BackfillResult",
    "Checkpoint",
    "Chunk",
    "DayCheck",
    "Progress",
    "SourceError",
    "TableMapping",
    "VerificationReport",
    "backfill",
    "default_checkpoint",
    "load_mapping",
]


def default_checkpoint(table: str) -> Path:
    """``bqrepo-backfill-TABLE.checkpoint.json`` in the working directory."""
    return Path(f"bqrepo-backfill-{table}.checkpoint.json")


def backfill(
    source_url: str,
    table: str,
    *,
    settings: Settings | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    mapping_file: str | Path | None = None,
    checkpoint_file: str | Path | None = None,
    progress: Progress | None = None,
    verify: bool = True,
    pause: float = 0.0,
    after_write: Callable[[Chunk], None] | None = None,
    rows_per_write: int = ROWS_PER_WRITE,
    tables: Iterable[sa.Table] | None = None,
) -> BackfillResult:
    """Copy ``table`` from the old database at ``source_url`` into the configured backend.

    Run ``bqrepo migrate`` (or :func:`bqrepo.migrate.upgrade`) first. Re-running
    with the same checkpoint resumes, also with another ``since``/``until``;
    see :mod:`bqrepo.backfill.checkpoint`.
    Rejected rows are appended to ``CHECKPOINT.rejected.jsonl`` with reasons.
    ``tables`` are the declared tables the mapping may fill (default: bqrepo's five).
    """
    from bqrepo.engine import create_engine

    settings = settings or load_settings()
    mappings = load_mapping(mapping_file, tables)
    if table not in mappings:
        raise ConfigurationError(
            f"the mapping has no [{table}] section; it maps {', '.join(sorted(mappings)) or 'nothing'}"
        )
    mapping = mappings[table]
    checkpoint_path = Path(checkpoint_file) if checkpoint_file else default_checkpoint(table)
    checkpoint = Checkpoint.open(
        checkpoint_path,
        table=table,
        source=f"{source_key(source_url)} {mapping.source_name}",
        destination=settings.describe(),
        timestamp=mapping.timestamp,
        former_sources=(f"{legacy_source_key(source_url)} {mapping.source_name}",),
    )
    source = source_engine(source_url)
    destination = create_engine(settings)
    try:
        return run_backfill(
            SourceReader(source, mapping),
            destination,
            mapping,
            checkpoint,
            since=since,
            until=until,
            rejected_file=checkpoint_path.with_name(checkpoint_path.name.removesuffix(".json") + ".rejected.jsonl"),
            progress=progress,
            verify_after=verify,
            pause=pause,
            after_write=after_write,
            rows_per_write=rows_per_write,
        )
    finally:
        source.dispose()
        destination.dispose()
