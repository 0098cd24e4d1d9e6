"""Writers: store validated rows, one module per mechanism.

* :mod:`~bqrepo.writers.bigquery_stream`: BigQuery insertAll, small fresh batches;
* :mod:`~bqrepo.writers.bigquery_load`: BigQuery load jobs, large batches and back-fills;
* :mod:`~bqrepo.writers.duckdb_bulk`: the embedded DuckDB default.

All implement :class:`Writer` and return a :class:`WriteResult`;
:func:`writer_for` picks one for an engine. Writes are append-only: the
readers de-duplicate on ``id`` (docs/writing.md, "Idempotency").
"""

from bqrepo.writers.bigquery_load import BigQueryLoadWriter
from bqrepo.writers.bigquery_stream import BigQueryStreamWriter
from bqrepo.writers.bigquery_target import BigQueryTarget
from bqrepo.writers.duckdb_bulk import DuckDBWriter
from bqrepo.writers.factory import LOAD_THRESHOLD, AutoBigQueryWriter, writer_for
from bqrepo.writers.result import RejectedRow, Writer, WriteResult

__all__ = [
    "LOAD_THRESHOLD",
    "AutoBigQueryWriter",
    "BigQueryLoadWriter",
    "BigQueryStreamWriter",
    "BigQueryTarget",
    "DuckDBWriter",
    "RejectedRow",
    "WriteResult",
    "Writer",
    "writer_for",
]
