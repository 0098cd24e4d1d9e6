"""Read-side de-duplication: the newest version of each row id, within a partition range.

Why read-side: writes are append-only (streaming inserts cannot be MERGEd for
about 30 minutes, and BigQuery has no unique keys), so a polling overlap, a
retried batch or a re-run back-fill appends rows whose ``id`` already exists.
Every repository query therefore reads through :func:`latest_versions`, which
keeps one row per ``id``: the one first in ``newest_first`` (``ingested_at`` for
economic rows, so a revised observation wins; ``created_at`` for events).

The partition filter sits in the WHERE of the innermost SELECT, directly on
the table's bare partition column, so BigQuery prunes partitions before the
window function runs. Filters on columns that may differ between versions
of an id (an event's ``event_type``) are applied by the caller on the
de-duplicated rows, since a filter inside would let an older version answer
for a newer one that no longer matches. Filters on natural-key columns (a
FRED ``series_id``: the economic id is derived from them, so every version
shares them) may go inside, where BigQuery also prunes clustered blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement

__all__ = ["ROW_NUMBER_COLUMN", "latest_versions"]

ROW_NUMBER_COLUMN = "_version_rank"


def latest_versions(
    table: sa.Table,
    where: ColumnElement[bool],
    newest_first: Sequence[ColumnElement[object]],
    *,
    columns: Sequence[str] | None = None,
    name: str | None = None,
) -> sa.Subquery:
    """A subquery with ``table``'s columns: one row per ``id``, the newest, among rows matching ``where``.

    ``where`` must hold the partition range on the bare partition column, and
    otherwise only conditions every version of an id satisfies alike.

    ``columns`` limits the columns read (default: all); BigQuery bills by
    the columns a query reads, and a bucket query has no use for ``content``.

    Ties in ``newest_first`` (exact duplicates) are broken arbitrarily, which
    is harmless because duplicates carry the same values.
    """
    rank = (
        sa.func.row_number()
        .over(partition_by=table.c.id, order_by=list(newest_first))
        .label(ROW_NUMBER_COLUMN)
    )
    selected = [table.c[column] for column in columns] if columns is not None else list(table.c)
    versions = sa.select(*selected, rank).where(where).subquery(f"{name or table.name}_versions")
    latest = sa.select(*(versions.c[column.name] for column in selected)).where(
        versions.c[ROW_NUMBER_COLUMN] == sa.literal_column("1", sa.Integer())
    )
    return latest.subquery(name or f"latest_{table.name}")
