"""BigQuery load jobs for large batches and back-fills: free, atomic, append-only.

Rows are encoded as newline-delimited JSON and loaded with ``WRITE_APPEND``
and the table's own schema (no autodetect, no schema changes). Chunking:

* a job touches at most :data:`MAX_PARTITIONS_PER_JOB` partitions (BigQuery
  allows 4,000), so rows are grouped by the partition they land in;
* a job carries at most ``max_job_bytes`` of JSON, which bounds memory.

A load job is atomic: when BigQuery fails one (``maxBadRecords`` is 0), none
of its rows is stored, and every row of that chunk comes back in
:attr:`WriteResult.rejected` with the job id and BigQuery's error messages;
the other chunks are unaffected. A request that fails as a whole (no such
table, no permission, a timeout waiting for the job) raises the client's
exception: sending the batch again is safe because reads de-duplicate on id.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from google.api_core.exceptions import GoogleAPICallError
from google.cloud import bigquery

from bqrepo.json_encoding import to_json_text
from bqrepo.rows import Row
from bqrepo.table_options import TableOptions
from bqrepo.writers.bigquery_target import BigQueryTarget
from bqrepo.writers.result import RejectedRow, WriteResult, check_rows

__all__ = ["MAX_JOB_BYTES", "MAX_PARTITIONS_PER_JOB", "BigQueryLoadWriter", "partition_key"]

#: BigQuery lets one job modify at most 4,000 partitions.
MAX_PARTITIONS_PER_JOB = 4_000
#: JSON bytes per load job; the batch is encoded in memory.
MAX_JOB_BYTES = 1_000_000_000

# Time-unit partitioning stores values outside this range in __UNPARTITIONED__.
_FIRST_PARTITIONED = dt.date(1960, 1, 1)
_LAST_PARTITIONED = dt.date(2159, 12, 31)
UNPARTITIONED = "__UNPARTITIONED__"


def partition_key(value: dt.date | dt.datetime | None, granularity: str) -> Hashable:
    """The BigQuery time-unit partition that ``value`` lands in.

    Timestamps are UTC (rows normalise them), so their date is the
    partition's date.
    """
    if value is None:
        return None
    day = value.date() if isinstance(value, dt.datetime) else value
    if not _FIRST_PARTITIONED <= day <= _LAST_PARTITIONED:
        return UNPARTITIONED
    if granularity == "HOUR" and isinstance(value, dt.datetime):
        return (day, value.hour)
    if granularity == "MONTH":
        return (day.year, day.month)
    if granularity == "YEAR":
        return day.year
    return day


class BigQueryLoadWriter:
    """Appends rows with NDJSON load jobs, chunked by partitions and bytes."""

    def __init__(
        self,
        target: BigQueryTarget,
        *,
        max_partitions_per_job: int = MAX_PARTITIONS_PER_JOB,
        max_job_bytes: int = MAX_JOB_BYTES,
        timeout: float | None = 600.0,
    ) -> None:
        if max_partitions_per_job < 1 or max_job_bytes < 1:
            raise ValueError("max_partitions_per_job and max_job_bytes must be positive")
        self.target = target
        self.max_partitions_per_job = max_partitions_per_job
        self.max_job_bytes = max_job_bytes
        self.timeout = timeout

    @classmethod
    def for_bind(cls, bind: sa.Engine | sa.Connection, **options: Any) -> BigQueryLoadWriter:
        """A writer for the BigQuery engine or connection ``bind``."""
        return cls(BigQueryTarget.of(bind), **options)

    def write(self, table: sa.Table, rows: Sequence[Row]) -> WriteResult:
        """Load ``rows`` into ``table``; see the module docstring for the contract."""
        check_rows(table, rows)
        result = WriteResult()
        if not rows:
            return result
        table_id = self.target.table_id(table)
        schema = self.target.client.get_table(table_id).schema
        for chunk in self._chunks(table, rows):
            result.merge(self._load(table_id, schema, chunk))
        return result.with_records(rows)

    def _chunks(self, table: sa.Table, rows: Sequence[Row]) -> Iterator[list[tuple[int, bytes]]]:
        """Jobs of (batch index, NDJSON line), grouped by partition, under both limits."""
        options = TableOptions.of(table)
        groups: dict[Hashable, list[tuple[int, bytes]]] = {}
        for index, row in enumerate(rows):
            line = to_json_text(row.to_bigquery_row(for_load_job=True))
            key = (
                partition_key(
                    getattr(row, options.partition_field), options.partition_type or "DAY"
                )
                if options.partition_field
                else None
            )
            groups.setdefault(key, []).append((index, line.encode("utf-8") + b"\n"))
        chunk: list[tuple[int, bytes]] = []
        partitions = size = 0
        for lines in groups.values():
            if chunk and partitions >= self.max_partitions_per_job:
                yield chunk
                chunk, partitions, size = [], 0, 0
            partitions += 1
            for item in lines:
                if chunk and size + len(item[1]) > self.max_job_bytes:
                    yield chunk
                    chunk, partitions, size = [], 1, 0
                chunk.append(item)
                size += len(item[1])
        if chunk:
            yield chunk

    def _load(
        self, table_id: str, schema: list[bigquery.SchemaField], chunk: list[tuple[int, bytes]]
    ) -> WriteResult:
        data = b"".join(line for _, line in chunk)
        config = bigquery.LoadJobConfig(
            schema=schema,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            max_bad_records=0,
        )
        job = self.target.client.load_table_from_file(
            io.BytesIO(data), table_id, size=len(data), job_config=config
        )
        try:
            job.result(timeout=self.timeout)
        except GoogleAPICallError:
            messages = "; ".join(
                error.get("message", "") for error in (job.errors or [job.error_result or {}])
            )
            reason = f"load job {job.job_id} failed, none of its rows stored: {messages}"
            rejected = [
                RejectedRow(index=index, row=json.loads(line), reason=reason)
                for index, line in chunk
            ]
            return WriteResult(written=0, rejected=rejected, requests=1)
        return WriteResult(written=len(chunk), requests=1)
