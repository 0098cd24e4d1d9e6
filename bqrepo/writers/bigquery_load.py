"""BigQuery load jobs for large batches and back-fills: free, atomic, append-only.

Rows are encoded as newline-delimited JSON and loaded with ``WRITE_APPEND``
and the table's own schema (no autodetect, no schema changes). Chunking:

* a job touches at most :data:`~bqrepo.table_options.MAX_PARTITIONS_MODIFIED_PER_JOB` partitions (BigQuery
  allows 4,000), so rows are grouped by the partition they land in;
* a job carries at most ``max_job_bytes`` of JSON, which bounds memory.

A load job is atomic: when BigQuery fails one, none of its rows is stored.
What happens next depends on why it failed:

* **The rows** (``maxBadRecords`` is 0: a value BigQuery refuses): every row
  of that chunk comes back in :attr:`WriteResult.rejected` with the job id
  and BigQuery's messages; the other chunks are unaffected.
* **BigQuery itself** (``backendError``, ``internalError``,
  ``rateLimitExceeded``, ``badGateway``): the job is run again under a new
  job id, with google-api-core's exponential backoff (``job_retry``, 10
  minutes by default). When that runs out, :class:`~bqrepo.errors.TransientError`
  is raised: nothing of that chunk was stored, send the batch again later.
* **The table's load quota** (``quotaExceeded``, 1,500 load jobs per table
  per day): retrying within minutes cannot help, so
  :class:`~bqrepo.errors.TransientError` is raised at once.

Each job gets an explicit id, so a lost answer is not a failure: the
client re-sends ``jobs.insert`` with the same id, BigQuery answers 409
Already Exists because the first attempt did create the job, and the
writer then looks the job up and waits for it instead of raising (and
instead of the caller re-sending rows that are already stored). Chunks over
5 MB go through a resumable upload; when the answer to its last chunk is
lost, the client's retry finds the session closed (404), and the writer
likewise looks its job up. Chunks
loaded before a :class:`~bqrepo.errors.TransientError` stay loaded: sending
the whole batch again duplicates them in the raw table, which reads
de-duplicate on id (the back-fill instead re-writes only the missing ids).
Other request failures raise :class:`~bqrepo.errors.TransientError` when a
retry can cure them (5xx, the network gone after the client's retries),
:class:`~bqrepo.errors.NotMigratedError` for a missing table, and the
client's exception otherwise (no permission).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from google.api_core.exceptions import Conflict, GoogleAPICallError, NotFound, RetryError
from google.api_core.retry import Retry
from google.cloud import bigquery

from bqrepo.engine import backend_errors, log_job
from bqrepo.errors import TRANSIENT_REASONS, TransientError
from bqrepo.json_encoding import to_json_text
from bqrepo.rows import Row, collection_paused
from bqrepo.table_options import MAX_PARTITIONS_MODIFIED_PER_JOB, TableOptions
from bqrepo.timeunits import UNPARTITIONED, partition_of
from bqrepo.writers.bigquery_target import BigQueryTarget
from bqrepo.writers.result import RejectedRow, WriteResult, check_rows

__all__ = [
    "DEFAULT_JOB_RETRY",
    "MAX_JOB_BYTES",
    "TRANSIENT_JOB_REASONS",
    "UNPARTITIONED",
    "BigQueryLoadWriter",
    "partition_key",
]

log = logging.getLogger("bqrepo")

#: The partition a row lands in (:func:`bqrepo.timeunits.partition_of`), under its earlier name here.
partition_key = partition_of

#: JSON bytes per load job; the batch is encoded in memory.
MAX_JOB_BYTES = 1_000_000_000

#: Job failures that say nothing about the rows: the same job can succeed later
#: (:data:`bqrepo.errors.TRANSIENT_REASONS`, under the name this module exported first).
TRANSIENT_JOB_REASONS = TRANSIENT_REASONS
#: The per-table load-job quota: it needs 10+ minutes, so the writer does not wait for it.
QUOTA_EXCEEDED = "quotaExceeded"


class _JobFailedTransiently(Exception):
    """A load job BigQuery failed for its own reasons; it stored nothing."""

    def __init__(self, job_id: str, reason: str, message: str) -> None:
        super().__init__(f"load job {job_id} failed with {reason}: {message}")
        self.job_id = job_id
        self.reason = reason
        self.message = message


def _retry_job(exc: BaseException) -> bool:
    """Run the job again for BigQuery's transient failures, not for a used-up quota."""
    return isinstance(exc, _JobFailedTransiently) and exc.reason != QUOTA_EXCEEDED


#: How a transiently failed load job is run again: 1 s backoff doubling to
#: 60 s, for up to 10 minutes (what BigQuery's own guidance asks for).
DEFAULT_JOB_RETRY = Retry(predicate=_retry_job, initial=1.0, maximum=60.0, multiplier=2.0, timeout=600.0)


class BigQueryLoadWriter:
    """Appends rows with NDJSON load jobs, chunked by partitions and bytes.

    ``job_retry`` sets how long and how often a transiently failed job is run
    again (tests pass a short one); which failures are retried is fixed (see
    the module docstring), whatever predicate it carries.
    """

    def __init__(
        self,
        target: BigQueryTarget,
        *,
        max_partitions_per_job: int = MAX_PARTITIONS_MODIFIED_PER_JOB,
        max_job_bytes: int = MAX_JOB_BYTES,
        timeout: float | None = 600.0,
        job_retry: Retry = DEFAULT_JOB_RETRY,
    ) -> None:
        if max_partitions_per_job < 1 or max_job_bytes < 1:
            raise ValueError("max_partitions_per_job and max_job_bytes must be positive")
        self.target = target
        self.max_partitions_per_job = max_partitions_per_job
        self.max_job_bytes = max_job_bytes
        self.timeout = timeout
        self.job_retry = job_retry

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
        with backend_errors(f"writing {table.name} to {table_id}"):
            schema = self.target.client.get_table(table_id).schema
            for chunk in self._chunks(table, rows):
                result.merge(self._load(table_id, schema, chunk))
        return result.with_records(rows)

    def _chunks(self, table: sa.Table, rows: Sequence[Row]) -> Iterator[list[tuple[int, bytes]]]:
        """Jobs of (batch index, NDJSON line), grouped by partition, under both limits."""
        options = TableOptions.of(table)
        groups: dict[Hashable, list[tuple[int, bytes]]] = {}
        with collection_paused():  # every line is built before the first job is sent
            for index, row in enumerate(rows):
                line = to_json_text(row.to_bigquery_row(for_load_job=True))
                key = (
                    partition_of(
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
        """One chunk in one job, run again under a new id while BigQuery fails it transiently."""
        data = b"".join(line for _, line in chunk)
        config = bigquery.LoadJobConfig(
            schema=schema,
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            max_bad_records=0,
        )
        attempts: list[str] = []

        def attempt() -> WriteResult:
            job_id = f"bqrepo_load_{uuid.uuid4().hex}"
            attempts.append(job_id)
            return self._run_job(job_id, table_id, data, config, chunk)

        try:
            return self.job_retry.with_predicate(_retry_job)(attempt)()
        except (_JobFailedTransiently, RetryError) as exc:
            failure = exc.cause if isinstance(exc, RetryError) else exc
            assert isinstance(failure, _JobFailedTransiently)
            raise TransientError(_give_up_message(failure, table_id, len(chunk), len(attempts))) from exc

    def _run_job(
        self,
        job_id: str,
        table_id: str,
        data: bytes,
        config: bigquery.LoadJobConfig,
        chunk: list[tuple[int, bytes]],
    ) -> WriteResult:
        client = self.target.client
        try:
            job = client.load_table_from_file(
                io.BytesIO(data), table_id, size=len(data), job_config=config, job_id=job_id
            )
        except (Conflict, NotFound) as exc:
            # The job id is fresh, so a 409 means an earlier attempt of this very
            # request created the job and its answer was lost. A resumable upload
            # whose last answer was lost is retried into a closed session (404 on
            # the stand-in). Either way: if the job exists, wait for it.
            try:
                job = client.get_job(job_id, project=self.target.project)
            except NotFound:
                raise exc from None
            log.info("load job %s: answer to its upload lost; waiting for the job", job_id)
        try:
            job.result(timeout=self.timeout)
        except GoogleAPICallError:
            error = job.error_result or {}
            if error.get("reason") in TRANSIENT_REASONS | {QUOTA_EXCEEDED}:
                log.warning("load job %s failed with %s, storing nothing", job_id, error.get("reason"))
                raise _JobFailedTransiently(job_id, str(error["reason"]), str(error.get("message", ""))) from None
            messages = "; ".join(error.get("message", "") for error in (job.errors or [error]))
            reason = f"load job {job_id} failed, none of its rows stored: {messages}"
            rejected = [
                RejectedRow(index=index, row=json.loads(line), reason=reason)
                for index, line in chunk
            ]
            return WriteResult(written=0, rejected=rejected, requests=1)
        log_job(job)
        return WriteResult(written=len(chunk), requests=1)


def _give_up_message(failure: _JobFailedTransiently, table_id: str, rows: int, attempts: int) -> str:
    """What happened and what to do, for the :class:`TransientError` the caller sees."""
    stored = f"none of its {rows} rows were stored"
    if failure.reason == QUOTA_EXCEEDED:
        return (
            f"BigQuery refused load job {failure.job_id} into {table_id}: quotaExceeded "
            f"({failure.message}); {stored}. The table's load-job quota (1,500 per day) or "
            "a project quota is used up: wait at least 10 minutes, then write the batch again "
            "(a back-fill run again resumes from this chunk)."
        )
    return (
        f"BigQuery failed {attempts} load job(s) into {table_id} with {failure.reason} "
        f"(last: {failure.job_id}: {failure.message}); {stored}. This is BigQuery's side, "
        "not the data: write the batch again later (a back-fill run again resumes from this chunk)."
    )
