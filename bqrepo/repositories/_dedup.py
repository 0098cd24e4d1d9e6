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

Why every sort key is preceded by an explicit ``<key> IS NULL`` key: DuckDB
1.5's ``top_n_window_elimination`` rewrites ``ROW_NUMBER() OVER (PARTITION BY
id ORDER BY created_at DESC NULLS LAST) = 1`` into an ``arg_max`` that, when
several threads combine partial results, sometimes keeps the copy whose
``created_at`` is NULL (seen on the embedded default and inside the BigQuery
stand-in). A leading non-NULL boolean key states the NULL placement as data:
an optimizer that keeps the window sorts by it, one that rewrites it into an
aggregate compares it first, and either way a set value beats a NULL. It also
makes the answer independent of each engine's default NULL placement.

On DuckDB the same question is asked differently: the ranked subquery is a
:class:`~bqrepo.constructs.FirstPerGroup`, which DuckDB compiles to one plain
``arg_min(rowid, <key>)`` per id joined back to the table, the key being
the sort keys folded into one never-NULL value (``x IS NULL ASC, x DESC
NULLS LAST`` becomes ``coalesce(-x, <beyond every value>)``). It skips the
window's sort (and the rewrite above, with its ``arg_max_nulls_last``);
benchmarks/results/queries.md has the speed. Every other engine compiles
the window form unchanged. tests/test_dedup_threads.py holds each engine's
form to the right answer on data shaped to trigger the thread bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement, operators
from sqlalchemy.sql.elements import UnaryExpression

from bqrepo.constructs import first_per_group

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

    Each key of ``newest_first`` must say where NULLs go
    (``column.desc().nulls_last()``): engines differ in their default, and
    the placement is made explicit (module docstring). Ties (exact
    duplicates) are broken arbitrarily, which is harmless because duplicates
    carry the same values.
    """
    order = explicit_null_order(newest_first)
    rank = sa.func.row_number().over(partition_by=table.c.id, order_by=order).label(ROW_NUMBER_COLUMN)
    selected = [table.c[column] for column in columns] if columns is not None else list(table.c)
    versions = first_per_group(
        sa.select(*selected, rank).where(where),
        f"{name or table.name}_versions",
        source=table,
        where=where,
        partition_by=[table.c.id],
        order_by=order,
        first_row={ROW_NUMBER_COLUMN: sa.literal_column("1", sa.Integer())},
    )
    latest = sa.select(*(versions.c[column.name] for column in selected)).where(
        versions.c[ROW_NUMBER_COLUMN] == sa.literal_column("1", sa.Integer())
    )
    return latest.subquery(name or f"latest_{table.name}")


_NULL_PLACEMENT = {operators.nulls_last_op: False, operators.nulls_first_op: True}


def explicit_null_order(keys: Sequence[ColumnElement[object]]) -> list[ColumnElement[Any]]:
    """``keys`` with a non-NULL ``<expr> IS NULL`` key before each nullable one (module docstring).

    ``x DESC NULLS LAST`` becomes ``x IS NULL ASC, x DESC NULLS LAST``. A key
    on a NOT NULL column is kept as it is; any other key must say NULLS
    FIRST or NULLS LAST, since its NULL placement would depend on the engine.
    """
    order: list[ColumnElement[Any]] = []
    for key in keys:
        value: ColumnElement[object] = key
        while isinstance(value, UnaryExpression):  # unwrap NULLS LAST, DESC
            value = value.element
        if isinstance(value, sa.Column) and not value.nullable:
            order.append(key)
            continue
        modifier = key.modifier if isinstance(key, UnaryExpression) else None
        if modifier not in _NULL_PLACEMENT:
            raise ValueError(f"sort key {key} on a nullable value must say NULLS FIRST or NULLS LAST")
        is_null = value.is_(None)
        order.append(is_null.desc() if _NULL_PLACEMENT[modifier] else is_null.asc())
        order.append(key)
    return order
