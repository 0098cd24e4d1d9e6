"""BigQuery streaming writes (``tabledata.insertAll``) for small, fresh batches.

Contract for a batch in which BigQuery rejects some rows: requests are sent
with ``skipInvalidRows=True``, so BigQuery stores every valid row of the
request and reports each invalid one. Every row BigQuery reports, for
whatever reason, comes back in :attr:`WriteResult.rejected` (with
``retryable=True`` when the reason was not the row itself); every other row
is stored. A row too large for one request is never sent and comes back
rejected with that reason.

Each row is sent with its id as ``insertId``: BigQuery drops a re-sent copy
for about a minute (best effort). Beyond that, read-side de-duplication on
``id`` keeps queries exact (docs/writing.md, "Idempotency").

A request that fails as a whole (no such table, no permission, network gone
after the client's retries) raises the client's exception. Rows of earlier
requests of the same batch are stored then; sending the whole batch again is
safe because of the ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from bqrepo.json_encoding import wire_size
from bqrepo.rows import Row
from bqrepo.writers.bigquery_target import BigQueryTarget
from bqrepo.writers.result import RejectedRow, WriteResult, check_rows

__all__ = ["MAX_REQUEST_BYTES", "MAX_ROWS_PER_REQUEST", "BigQueryStreamWriter"]

#: Google's advice for insertAll: about 500 rows per request.
MAX_ROWS_PER_REQUEST = 500
#: BigQuery refuses insertAll requests over 10 MB; stay 10% under.
MAX_REQUEST_BYTES = 9_000_000
# JSON envelope around each row in the request: {"insertId": ..., "json": ...},
_ROW_ENVELOPE_BYTES = 32
_REQUEST_ENVELOPE_BYTES = 64
# per-row reasons that say nothing about the row itself
_RETRYABLE_REASONS = {"stopped", "timeout", "backendError", "internalError"}


class BigQueryStreamWriter:
    """Streams rows with ``Client.insert_rows_json``, chunked under request limits."""

    def __init__(
        self,
        target: BigQueryTarget,
        *,
        max_rows_per_request: int = MAX_ROWS_PER_REQUEST,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        timeout: float | None = 60.0,
    ) -> None:
        if max_rows_per_request < 1 or max_request_bytes < 1:
            raise ValueError("max_rows_per_request and max_request_bytes must be positive")
        self.target = target
        self.max_rows_per_request = max_rows_per_request
        self.max_request_bytes = max_request_bytes
        self.timeout = timeout

    @classmethod
    def for_bind(cls, bind: sa.Engine | sa.Connection, **options: Any) -> BigQueryStreamWriter:
        """A writer for the BigQuery engine or connection ``bind``."""
        return cls(BigQueryTarget.of(bind), **options)

    def write(self, table: sa.Table, rows: Sequence[Row]) -> WriteResult:
        """Stream ``rows`` into ``table``; see the module docstring for the contract."""
        check_rows(table, rows)
        result = WriteResult()
        table_id = self.target.table_id(table)
        for chunk in self._chunks(rows, result):
            result.merge(self._send(table_id, chunk))
        return result.with_records(rows)

    def _chunks(
        self, rows: Sequence[Row], result: WriteResult
    ) -> Iterator[list[tuple[int, str | None, dict[str, Any]]]]:
        """Requests of (batch index, insertId, JSON row) under both limits.

        Sizes are measured on the JSON the client will send; a row that
        alone exceeds the byte limit is rejected here, not sent.
        """
        chunk: list[tuple[int, str | None, dict[str, Any]]] = []
        size = _REQUEST_ENVELOPE_BYTES
        for index, row in enumerate(rows):
            data = row.to_bigquery_row()
            insert_id = row.id  # None only when validation was bypassed
            row_bytes = (
                wire_size(data) + len(insert_id or "") + _ROW_ENVELOPE_BYTES
            )
            if row_bytes + _REQUEST_ENVELOPE_BYTES > self.max_request_bytes:
                result.rejected.append(
                    RejectedRow(
                        index=index,
                        row=data,
                        reason=(
                            f"row is {row_bytes:,} bytes as JSON, over the "
                            f"{self.max_request_bytes:,}-byte streaming request limit; "
                            "write it with a load job (method='load')"
                        ),
                    )
                )
                continue
            if chunk and (
                len(chunk) >= self.max_rows_per_request or size + row_bytes > self.max_request_bytes
            ):
                yield chunk
                chunk, size = [], _REQUEST_ENVELOPE_BYTES
            chunk.append((index, insert_id, data))
            size += row_bytes
        if chunk:
            yield chunk

    def _send(
        self, table_id: str, chunk: list[tuple[int, str | None, dict[str, Any]]]
    ) -> WriteResult:
        errors = self.target.client.insert_rows_json(
            table_id,
            [data for _, _, data in chunk],
            row_ids=[insert_id for _, insert_id, _ in chunk],
            skip_invalid_rows=True,
            timeout=self.timeout,
        )
        rejected = [_rejected(chunk, error) for error in errors]
        return WriteResult(written=len(chunk) - len(rejected), rejected=rejected, requests=1)


def _rejected(
    chunk: list[tuple[int, str | None, dict[str, Any]]], error: dict[str, Any]
) -> RejectedRow:
    """Map one insertAll ``insertErrors`` entry back to the batch."""
    index, _, data = chunk[error["index"]]
    problems = error.get("errors") or [{"reason": "unknown", "message": "no reason given"}]
    reason = "; ".join(
        f"{problem.get('reason') or 'error'}: {problem.get('message') or ''}".rstrip(": ")
        for problem in problems
    )
    field = next((p["location"] for p in problems if p.get("location")), None)
    retryable = all(problem.get("reason") in _RETRYABLE_REASONS for problem in problems)
    return RejectedRow(index=index, row=data, reason=reason, field=field, retryable=retryable)
