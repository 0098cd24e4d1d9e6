"""BigQuery streaming writes (``tabledata.insertAll``) for small, fresh batches.

Contract for a batch in which BigQuery rejects some rows: requests are sent
with ``skipInvalidRows=True``, so BigQuery stores every valid row of the
request and reports each invalid one. Every row BigQuery reports, for
whatever reason, comes back in :attr:`WriteResult.rejected` (with
``retryable=True`` when the reason was not the row itself); every other row
is stored. A row too large for one request is never sent and comes back
rejected with that reason.

Each row's ``insertId`` is a digest of its exact content (:func:`insert_id`),
not its ``id``. BigQuery drops a row whose insertId it saw in about the last
minute (best effort) while reporting it inserted: keyed on ``id``, a revision
(same id, newer ``created_at`` or ``ingested_at``) streamed within that
minute was silently discarded. Keyed on content, a re-sent identical row is
still dropped, and a revision never is. Read-side de-duplication on ``id``
keeps queries exact either way (docs/writing.md, "Idempotency").

Counting: rows of one batch identical in every column are sent once; the
copies are counted in :attr:`WriteResult.duplicates`, not in ``written``
(BigQuery would drop them), and share the fate of the copy sent: when it is
rejected, so are they. ``written + duplicates + len(rejected)`` is the batch
size, and ``written`` is what the table gained, except for a row identical
to one streamed in the last minute by an earlier call, which BigQuery drops
and counts as inserted (the table already holds that exact row).

A request that fails as a whole raises: :class:`~bqrepo.errors.TransientError`
when a retry can cure it (5xx, the network gone after the client's
retries, ``retry`` sets how long those last),
:class:`~bqrepo.errors.NotMigratedError` for a missing table, the client's
exception otherwise (no permission). Rows of earlier requests of the same
batch are stored then; sending the whole batch again is safe because of the
insertIds and the ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from google.api_core.retry import Retry
from google.cloud.bigquery import DEFAULT_RETRY

from bqrepo.engine import backend_errors
from bqrepo.errors import TRANSIENT_REASONS
from bqrepo.json_encoding import wire_size
from bqrepo.rows import Row, collection_paused
from bqrepo.writers.bigquery_target import BigQueryTarget
from bqrepo.writers.result import RejectedRow, WriteResult, check_rows

__all__ = ["MAX_REQUEST_BYTES", "MAX_ROWS_PER_REQUEST", "BigQueryStreamWriter", "insert_id"]

#: Google's advice for insertAll: about 500 rows per request.
MAX_ROWS_PER_REQUEST = 500
#: BigQuery refuses insertAll requests over 10 MB; stay 10% under.
MAX_REQUEST_BYTES = 9_000_000
# JSON envelope around each row in the request: {"insertId": ..., "json": ...},
_ROW_ENVELOPE_BYTES = 32
_REQUEST_ENVELOPE_BYTES = 64
#: One request row: (batch index, insertId, JSON row).
_Item = tuple[int, str, dict[str, Any]]
_canonical_json = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def insert_id(data: dict[str, Any]) -> str:
    """The insertId of a streamed row: a SHA-256 of its JSON, every column included.

    Equal exactly when the rows are identical, so BigQuery's insertId
    de-duplication can only ever drop a true copy (module docstring). Keys
    are sorted and floats written by ``repr``, so the digest is stable.
    """
    return hashlib.sha256(_canonical_json(data).encode("utf-8")).hexdigest()


def _encoded(rows: Sequence[Row]) -> list[tuple[str, dict[str, Any], int]]:
    """(insertId, JSON row, its size as the client sends it) of each row, JSON-encoded once.

    The canonical text the insertId is hashed from differs from the
    client's (``json.dumps``: ``", "`` and ``": "`` separators, non-ASCII
    ``\\u``-escaped) only by one byte per separator when it is ASCII and the
    row flat (every value a string, number, boolean or null, as rows make
    them), so the size is computed from it; otherwise it is measured.
    """
    encoded = []
    with collection_paused():
        for row in rows:
            data = row.to_bigquery_row()
            text = _canonical_json(data)
            row_id = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if text.isascii() and _FLAT.issuperset(map(type, data.values())):
                wire = len(text) + 2 * len(data) - 1 if data else 2
            else:
                wire = wire_size(data)
            encoded.append((row_id, data, wire))
    return encoded


# JSON scalars whose json.dumps text is the same under both encoders' settings.
_FLAT = frozenset({str, int, float, bool, type(None)})


class BigQueryStreamWriter:
    """Streams rows with ``Client.insert_rows_json``, chunked under request limits."""

    def __init__(
        self,
        target: BigQueryTarget,
        *,
        max_rows_per_request: int = MAX_ROWS_PER_REQUEST,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        timeout: float | None = 60.0,
        retry: Retry = DEFAULT_RETRY,
    ) -> None:
        if max_rows_per_request < 1 or max_request_bytes < 1:
            raise ValueError("max_rows_per_request and max_request_bytes must be positive")
        self.target = target
        self.max_rows_per_request = max_rows_per_request
        self.max_request_bytes = max_request_bytes
        self.timeout = timeout
        self.retry = retry

    @classmethod
    def for_bind(cls, bind: sa.Engine | sa.Connection, **options: Any) -> BigQueryStreamWriter:
        """A writer for the BigQuery engine or connection ``bind``."""
        return cls(BigQueryTarget.of(bind), **options)

    def write(self, table: sa.Table, rows: Sequence[Row]) -> WriteResult:
        """Stream ``rows`` into ``table``; see the module docstring for the contract."""
        check_rows(table, rows)
        result = WriteResult()
        table_id = self.target.table_id(table)
        copies: dict[int, list[int]] = {}  # batch index of a sent row -> its identical copies
        with backend_errors(f"writing {table.name} to {table_id}"):
            for chunk in self._chunks(rows, result, copies):
                result.merge(self._send(table_id, chunk))
        # Copies share the fate of the row sent (all found only once every chunk is made).
        shared = [replace(rejected, index=copy) for rejected in result.rejected for copy in copies.get(rejected.index, ())]
        result.rejected = sorted([*result.rejected, *shared], key=lambda rejected: rejected.index)
        result.duplicates = sum(len(indices) for indices in copies.values()) - len(shared)
        return result.with_records(rows)

    def _chunks(
        self, rows: Sequence[Row], result: WriteResult, copies: dict[int, list[int]]
    ) -> Iterator[list[_Item]]:
        """Requests of (batch index, insertId, JSON row) under both limits.

        Sizes are measured on the JSON the client will send; a row that
        alone exceeds the byte limit is rejected here, not sent. A row
        identical to one already queued is not sent again: its index is
        recorded in ``copies`` under the first one's.
        """
        first_index: dict[str, int] = {}
        chunk: list[_Item] = []
        size = _REQUEST_ENVELOPE_BYTES
        for index, (row_id, data, wire) in enumerate(_encoded(rows)):
            row_bytes = wire + len(row_id) + _ROW_ENVELOPE_BYTES  # as the client sends it
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
            if row_id in first_index:
                copies.setdefault(first_index[row_id], []).append(index)
                continue
            first_index[row_id] = index
            if chunk and (
                len(chunk) >= self.max_rows_per_request or size + row_bytes > self.max_request_bytes
            ):
                yield chunk
                chunk, size = [], _REQUEST_ENVELOPE_BYTES
            chunk.append((index, row_id, data))
            size += row_bytes
        if chunk:
            yield chunk

    def _send(self, table_id: str, chunk: list[_Item]) -> WriteResult:
        errors = self.target.client.insert_rows_json(
            table_id,
            [data for _, _, data in chunk],
            row_ids=[row_id for _, row_id, _ in chunk],
            skip_invalid_rows=True,
            timeout=self.timeout,
            retry=self.retry,
        )
        rejected = [_rejected(chunk, error) for error in errors]
        return WriteResult(written=len(chunk) - len(rejected), rejected=rejected, requests=1)


def _rejected(chunk: list[_Item], error: dict[str, Any]) -> RejectedRow:
    """Map one insertAll ``insertErrors`` entry back to the batch."""
    index, _, data = chunk[error["index"]]
    problems = error.get("errors") or [{"reason": "unknown", "message": "no reason given"}]
    reason = "; ".join(
        f"{problem.get('reason') or 'error'}: {problem.get('message') or ''}".rstrip(": ")
        for problem in problems
    )
    field = next((p["location"] for p in problems if p.get("location")), None)
    retryable = all(problem.get("reason") in TRANSIENT_REASONS for problem in problems)
    return RejectedRow(index=index, row=data, reason=reason, field=field, retryable=retryable)
