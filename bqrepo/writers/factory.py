"""Pick the writer for an engine: DuckDB bulk, BigQuery streaming or load jobs.

The engine's :class:`~bqrepo.backend.Backend` makes the choice; this module
holds the public entry point and the per-batch BigQuery chooser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa

from bqrepo.backend import backend_of
from bqrepo.rows import Row
from bqrepo.writers.bigquery_load import BigQueryLoadWriter
from bqrepo.writers.bigquery_stream import BigQueryStreamWriter
from bqrepo.writers.result import Writer, WriteResult

__all__ = ["LOAD_THRESHOLD", "AutoBigQueryWriter", "Method", "writer_for"]

Method = Literal["auto", "stream", "load"]

#: Batches larger than this go through a load job when ``method="auto"``.
#: Below it, streaming makes rows queryable within seconds and costs little;
#: above it, load jobs are free, and 10,000-row batches stay far from the
#: 1,500 load jobs per table per day.
LOAD_THRESHOLD = 10_000


class AutoBigQueryWriter:
    """Streams small batches and loads large ones (see :data:`LOAD_THRESHOLD`)."""

    def __init__(
        self,
        stream: BigQueryStreamWriter,
        load: BigQueryLoadWriter,
        load_threshold: int = LOAD_THRESHOLD,
    ) -> None:
        self.stream = stream
        self.load = load
        self.load_threshold = load_threshold

    def write(self, table: sa.Table, rows: Sequence[Row]) -> WriteResult:
        """Write through the mechanism the batch size calls for.

        A failure a retry can cure (5xx, a reset connection, the client's
        retries exhausted) raises :class:`~bqrepo.errors.TransientError`;
        writes are idempotent, so retrying the whole call is safe.
        """
        writer = self.load if len(rows) > self.load_threshold else self.stream
        return writer.write(table, rows)


def writer_for(
    bind: sa.Engine | sa.Connection,
    method: Method = "auto",
    *,
    load_threshold: int = LOAD_THRESHOLD,
) -> Writer:
    """The writer for ``bind``.

    DuckDB always gets the bulk writer: ``method`` names BigQuery mechanisms,
    and code that asks for ``"load"`` for a back-fill runs unchanged on the
    embedded default. On BigQuery, ``"stream"`` uses insertAll, ``"load"``
    load jobs, and ``"auto"`` chooses per batch by ``load_threshold`` rows.
    """
    try:
        backend = backend_of(bind)
    except TypeError:
        raise ValueError(
            f"no writer for the {bind.dialect.name!r} dialect; bqrepo writes DuckDB and BigQuery "
            "engines built by bqrepo.engine.create_engine"
        ) from None
    return backend.writer(bind, method, load_threshold=load_threshold)
