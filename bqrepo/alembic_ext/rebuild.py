"""The rebuild behind ``op.change_partitioning()``: a table copied under a new time partitioning.

BigQuery cannot change a table's partitioning in place, and a job may modify
at most 4,000 partitions. The operation therefore rebuilds the table, in two
phases, each step idempotent and its progress readable from what exists, so
that running the migration again after an interruption finishes the job:

1. create ``<table>__bqrepo_repartition`` with the new partitioning (and the
   old table's schema, clustering, description and labels, and the
   require_partition_filter the op asks for, by default the old table's),
   through the API so column modes and descriptions are kept exactly;
2. copy the rows into it in chunks of at most ``max_partitions_per_job``
   partitions of the new spec (``INSERT ... SELECT ... WHERE col >= @lo AND
   col < @hi``), then verify each chunk: the row count, the ``BIT_XOR`` of a
   60-bit slice of ``SHA256(TO_JSON_STRING(row))`` and the sums of four
   24-bit slices must be equal on both sides (:func:`bqrepo.checksum.checksums`).
   A chunk that already matches is skipped; a partly copied one is deleted
   and copied again;
3. only when every chunk verified, drop the old table;
4. create the table under its own name with the new spec and copy the rows
   back from the staging table, chunked and verified the same way;
5. drop the staging table.

State on re-run: the old table with the old spec means phase 1 (1-3); no
table but a staging table means phase 2 from step 4; the new spec plus a
staging table means step 4 was interrupted. A table already in the new spec
with no staging table means there is nothing to do.

Every query filters on the new partition column with a filter BigQuery can
prune by, so tables with ``require_partition_filter`` can be read. When the
partition column itself changes and the old table requires a partition
filter, that requirement is switched off on the old table (which is dropped
at the end) and restored if the copy fails. The same patch labels the old
table ``bqrepo_relaxed_partition_filter=true``, so that a run killed before
it could restore anything (SIGKILL, a lost machine) still knows, when run
again, that the rebuilt table must require a filter.

Where it stopped: each step is logged as it completes (:meth:`Repartition._after_step`),
a failure is logged with the step it interrupted and what to do, and a
staging table left behind is listed by :func:`pending_rebuilds`, which
``bqrepo info`` shows. Running the migration again finishes the rebuild;
until then ``alembic_version`` still names the previous revision.

Offline (``--sql``) it prints the same two-phase rebuild as plain DDL
(:func:`offline_rebuild`): ``CREATE TABLE staging LIKE t PARTITION BY ...``,
``INSERT INTO staging SELECT * FROM t``, ``DROP TABLE t``, ``CREATE TABLE t
LIKE staging ...``, ``INSERT`` back, ``DROP TABLE staging``. It is
neither chunked nor verified (that needs query results), so BigQuery refuses
it when the rows need more than 4,000 partitions under the new spec; the
comment printed before it says so. ``LIKE`` keeps the columns' modes and
descriptions, the clustering and the table options; no ``RENAME`` is needed.
The partition column's type and the clustering come from the target
metadata (``env.py``'s ``target_metadata``): without the table there,
offline mode is refused with a message.

Writers must be paused while it runs: rows written to the old table after
their chunk was copied would be lost (verification catches those written
before it checks). Readers too: between steps 3 and 4 the table is missing,
then partly filled. And after it, streaming into the re-created table can be
acknowledged by BigQuery and lost for a few minutes (its table metadata is
cached): a :class:`RebuiltTableWarning` says so, and ``bqrepo migrate`` prints it.
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.ddl.base import format_table_name
from alembic.operations import Operations
from google.api_core.exceptions import NotFound
from google.cloud.bigquery import TimePartitioning
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.selectable import NamedFromClause

from bqrepo.alembic_ext import live
from bqrepo.alembic_ext.options import SetTableOptions
from bqrepo.backend import bigquery_id
from bqrepo.checksum import checksums
from bqrepo.errors import BackendError
from bqrepo.redact import redact_text
from bqrepo.table_options import (
    MAX_PARTITIONS,
    MAX_PARTITIONS_MODIFIED_PER_JOB,
    PartitionLimitWarning,
    SchemaError,
    check_partitioning,
)
from bqrepo.timeunits import TIMESTAMP_MIN, partition_of

if TYPE_CHECKING:
    from bqrepo.alembic_ext.partitioning import ChangePartitioningOp

__all__ = [
    "STAGING_SUFFIX",
    "PendingRebuild",
    "RebuiltTableWarning",
    "RepartitionError",
    "Repartition",
    "include_name",
    "offline_rebuild",
    "partition_spec",
    "pending_rebuilds",
    "render_partitioning",
    "streaming_caution",
]

log = logging.getLogger("bqrepo.alembic_ext")

STAGING_SUFFIX = "__bqrepo_repartition"
# On the old table while its require_partition_filter is switched off.
_RELAXED_LABEL = "bqrepo_relaxed_partition_filter"
# The lowest value of each partition column type: the first chunk starts there.
_FLOOR = {"DATE": dt.date.min, "TIMESTAMP": TIMESTAMP_MIN}
_SA_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "DATE": sa.Date(),
    "TIMESTAMP": sa.TIMESTAMP(timezone=True),
}
_TRUNC = {"DATE": sa.func.date_trunc, "TIMESTAMP": sa.func.timestamp_trunc}


class RepartitionError(BackendError):
    """The copy did not verify. Both tables are left as they are."""


class RebuiltTableWarning(UserWarning):
    """A table was re-created: rows streamed into it in the next minutes may be lost."""


def streaming_caution(table_name: str) -> str:
    """What to tell whoever streams into a table BigQuery has just re-created."""
    return (
        f"table {table_name!r} was re-created by change_partitioning: BigQuery caches table "
        "metadata, so rows streamed into it (insertAll, the 'stream' writer) in the next few "
        "minutes can be acknowledged and then lost. Keep streaming writers paused for about "
        "10 minutes, or write with load jobs (method='load') meanwhile, and check counts after."
    )


@dataclass(frozen=True)
class PendingRebuild:
    """A ``change_partitioning`` that stopped part-way, seen from its staging table."""

    table: str
    staging_table: str
    table_exists: bool

    def describe(self) -> str:
        """One line for ``bqrepo info``: what is left and what to do."""
        where = (
            "copying into the staging table (the table is intact)"
            if self.table_exists
            else "after dropping the table: its rows are in the staging table only"
        )
        return (
            f"pending rebuild of {self.table!r}: change_partitioning stopped {where}; "
            f"{self.staging_table!r} exists. Run `bqrepo migrate` again to finish it; "
            "do not drop the staging table by hand."
        )


def pending_rebuilds(client: Any, project: str, dataset: str) -> list[PendingRebuild]:
    """Rebuilds left unfinished in ``dataset``: one per ``<table>__bqrepo_repartition`` table.

    None in a dataset that does not exist (yet).
    """
    try:
        names = {table.table_id for table in client.list_tables(bigquery_id(project, dataset))}
    except NotFound:
        return []
    return [
        PendingRebuild(name.removesuffix(STAGING_SUFFIX), name, name.removesuffix(STAGING_SUFFIX) in names)
        for name in sorted(names)
        if name.endswith(STAGING_SUFFIX)
    ]


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Alembic ``include_name`` hook: leave staging tables out of autogenerate.

    A ``<table>__bqrepo_repartition`` table is in no metadata, so autogenerate
    would propose ``drop_table`` for it; after an interrupted rebuild it may
    hold the only copy of the rows. It is skipped, with a warning saying to
    run the migration again, which finishes the rebuild and drops it.
    ``migrations/env.py`` passes this to ``context.configure``; an env.py
    with a filter of its own should call it from that filter.
    """
    if type_ == "table" and name is not None and name.endswith(STAGING_SUFFIX):
        log.warning(
            "table %r is left over from an interrupted change_partitioning of %r and may "
            "hold its only copy of the rows: autogenerate ignores it. Run the migration "
            "again to finish the rebuild (which drops it); do not drop it by hand.",
            name,
            name.removesuffix(STAGING_SUFFIX),
        )
        return False
    return True


def partition_spec(partitioning: TimePartitioning | None) -> tuple[str | None, str] | None:
    """What identifies a partitioning: column and granularity (not expiration)."""
    if partitioning is None:
        return None
    return (partitioning.field, partitioning.type_ or "DAY")


def render_partitioning(partitioning: TimePartitioning | None) -> str:
    """``partitioning`` as Python source, for migrations and messages."""
    if partitioning is None:
        return "None"
    args = [f"field={partitioning.field!r}", f"type_={partitioning.type_ or 'DAY'!r}"]
    if partitioning.expiration_ms is not None:
        args.append(f"expiration_ms={partitioning.expiration_ms!r}")
    return f"TimePartitioning({', '.join(args)})"


def offline_rebuild(context: Any, operation: ChangePartitioningOp) -> None:
    """Print the rebuild as DDL (module docstring), or refuse when it cannot be written."""
    name, schema, partitioning = operation.table_name, operation.schema, operation.partitioning
    call = f"change_partitioning({name!r}, {render_partitioning(partitioning)})"
    metadata = context.opts.get("target_metadata")
    declared = metadata.tables.get(f"{schema}.{name}" if schema else name) if metadata is not None else None
    field = partitioning.field if partitioning is not None else None
    if partitioning is None or field is None or declared is None or field not in declared.c:
        raise SchemaError(
            f"offline (--sql): {call} cannot be written as DDL: "
            + (
                "it needs the partition column's type from the target metadata"
                if partitioning is not None and field is not None
                else "CREATE TABLE LIKE cannot drop partitioning or partition by ingestion time"
            )
            + ". Run this revision online (`bqrepo migrate`, or alembic upgrade without --sql)."
        )
    field_type = "TIMESTAMP" if isinstance(declared.c[field].type, sa.TIMESTAMP) else "DATE"
    granularity = partitioning.type_ or "DAY"
    check_partitioning(name, field, granularity, field_type)
    wanted = operation.require_partition_filter
    if wanted is None:
        wanted = bool(declared.kwargs.get("bigquery_require_partition_filter", False))
    expiration = partitioning.expiration_ms / 86_400_000 if partitioning.expiration_ms else None
    staging = name + STAGING_SUFFIX
    live.say(
        context,
        f"bqrepo: {call} as DDL: copy to {staging}, drop, re-create, copy back.",
        "Pause writers first. Unlike the online rebuild this copy is neither chunked nor verified:",
        f"BigQuery refuses it when the rows need more than {MAX_PARTITIONS_MODIFIED_PER_JOB:,} partitions by "
        f"{granularity}: run this revision online then.",
        streaming_caution(name),
    )
    # The old table is dropped: switch off a filter requirement the plain SELECT cannot meet.
    # (An old partitioning that was not recorded may be one.)
    if operation.existing is not None:
        context.impl.execute(SetTableOptions(name, {"require_partition_filter": False}, schema))
    partition = (field, field_type, granularity)
    clustering = list(declared.kwargs.get("bigquery_clustering_fields") or [])
    staging_options = {"require_partition_filter": False, "partition_expiration_days": expiration}
    final_options = {"require_partition_filter": wanted, "partition_expiration_days": expiration}
    for statement in (
        _CreateTableLike(staging, name, schema, partition, clustering, staging_options),
        _InsertAll(staging, name, schema),
        sa.schema.DropTable(sa.Table(name, sa.MetaData(), schema=schema)),
        _CreateTableLike(name, staging, schema, partition, clustering, final_options),
        _InsertAll(name, staging, schema),
        sa.schema.DropTable(sa.Table(staging, sa.MetaData(), schema=schema)),
    ):
        context.impl.execute(statement)


class _CreateTableLike(ExecutableDDLElement):
    """``CREATE TABLE t LIKE source PARTITION BY ... [CLUSTER BY ...] OPTIONS(...)``.

    ``LIKE`` copies the columns (modes, descriptions) and options; partitioning
    and clustering are stated too, since not every engine copies them.
    """

    inherit_cache = False

    def __init__(
        self,
        table_name: str,
        like: str,
        schema: str | None,
        partition: tuple[str, str, str],
        clustering: list[str],
        options: Mapping[str, Any],
    ) -> None:
        self.table_name, self.like, self.schema = table_name, like, schema
        self.partition, self.clustering, self.table_options = partition, clustering, dict(options)


class _InsertAll(ExecutableDDLElement):
    """``INSERT INTO t SELECT * FROM source`` (both tables share one schema, by ``LIKE``)."""

    inherit_cache = False

    def __init__(self, table_name: str, source: str, schema: str | None) -> None:
        self.table_name, self.source, self.schema = table_name, source, schema


@compiles(_CreateTableLike, "bigquery")
def _compile_create_table_like(element: _CreateTableLike, compiler: Any, **kw: Any) -> str:
    literal = compiler.sql_compiler.render_literal_value
    table = format_table_name(compiler, element.table_name, element.schema)
    like = format_table_name(compiler, element.like, element.schema)
    field, field_type, granularity = element.partition
    column = compiler.preparer.quote(field)
    if field_type == "TIMESTAMP":
        partition = f"TIMESTAMP_TRUNC({column}, {granularity})"
    elif granularity == "DAY":
        partition = column
    else:
        partition = f"DATE_TRUNC({column}, {granularity})"
    sql = f"CREATE TABLE {table} LIKE {like} PARTITION BY {partition}"
    if element.clustering:
        sql += f" CLUSTER BY {', '.join(compiler.preparer.quote(name) for name in element.clustering)}"
    options = ", ".join(
        f"{key}={'NULL' if value is None else literal(value, sa.Boolean() if isinstance(value, bool) else sa.Float())}"
        for key, value in element.table_options.items()
    )
    return f"{sql} OPTIONS({options})"


@compiles(_InsertAll, "bigquery")
def _compile_insert_all(element: _InsertAll, compiler: Any, **kw: Any) -> str:
    table = format_table_name(compiler, element.table_name, element.schema)
    source = format_table_name(compiler, element.source, element.schema)
    return f"INSERT INTO {table} SELECT * FROM {source}"


@dataclass(frozen=True)
class _Chunk:
    """A slice of the rows by the new partition column.

    ``kind`` is ``"range"`` (``lo <= col``, and ``col < hi`` unless ``hi`` is
    ``None``), ``"null"`` (``col IS NULL``) or ``"all"`` (unpartitioned target).
    """

    kind: str
    lo: Any = None
    hi: Any = None

    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (("lo", self.lo), ("hi", self.hi)) if v is not None}

    @property
    def shape(self) -> str:
        return "bounded" if self.kind == "range" and self.hi is not None else self.kind

    def __str__(self) -> str:
        if self.kind == "range":
            return f"[{self.lo}, {self.hi if self.hi is not None else '...'})"
        return self.kind


class Repartition:
    """One run of the rebuild described in the module docstring."""

    def __init__(self, operations: Operations, operation: ChangePartitioningOp) -> None:
        context = operations.migration_context
        assert context.connection is not None  # online: the offline path returned earlier
        self.connection: sa.Connection = context.connection
        self.client = live.client(operations)
        self.name = operation.table_name
        self.staging_name = operation.table_name + STAGING_SUFFIX
        _, self.dataset = live.dataset_of(context.opts, context.dialect, operation.schema)
        self.target_ref = live.table_id(context, self.name, operation.schema)
        self.staging_ref = live.table_id(context, self.staging_name, operation.schema)
        self.partitioning = operation.partitioning
        self.field = operation.partitioning.field if operation.partitioning else None
        self.granularity = (operation.partitioning.type_ or "DAY") if operation.partitioning else None
        self.max_partitions = operation.max_partitions_per_job
        self.require_partition_filter = operation.require_partition_filter

    def run(self) -> None:
        """Finish the rebuild from the state the tables are in; log where a failure stopped it."""
        self.step = "reading the tables"
        try:
            self._run()
        except BaseException as exc:
            message = (
                f"table {self.name}: change_partitioning stopped while {self.step}: "
                f"{type(exc).__name__}: {redact_text(str(exc)).rstrip('.')}. Run the migration again (`bqrepo migrate`) to "
                f"finish from there; `bqrepo info` lists the pending rebuild."
            )
            log.error(message)
            exc.add_note(message)
            raise

    def _after_step(self, step: str) -> None:
        """Record that ``step`` completed (a log line an operator can follow)."""
        log.info("table %s: %s: done", self.name, step)

    def _do(self, step: str) -> None:
        """Name the step about to run, for the message if it fails."""
        self.step = step

    def _run(self) -> None:
        target = live.get_table_or_none(self.client, self.target_ref)
        staging = live.get_table_or_none(self.client, self.staging_ref)
        if target is None and staging is None:
            raise SchemaError(f"table {self.name!r}: cannot change partitioning, it does not exist")
        if target is not None and target.range_partitioning is not None:
            raise SchemaError(f"table {self.name!r}: integer-range partitioning is not supported")
        if target is not None and partition_spec(target.time_partitioning) != partition_spec(self.partitioning):
            require_filter = self._wanted_filter(_requires_filter(target))
            target, relaxed = self._relax_partition_filter(target)
            try:
                self._validate(target)
                if staging is None:
                    self._do(f"creating {self.staging_name}")
                    staging = self._create_like(target, self.staging_ref, require_filter)
                    self._after_step(self.step)
                elif partition_spec(staging.time_partitioning) != partition_spec(self.partitioning):
                    raise SchemaError(
                        f"table {self.name!r}: {self.staging_name!r} exists with another "
                        "partitioning, left by an earlier attempt; drop it and run again"
                    )
                self._do(f"copying into {self.staging_name}")
                self._copy(target, staging)
                self._after_step(self.step)
            except BaseException:
                if relaxed:
                    self._restore_partition_filter(target)
                raise
            self._do(f"dropping the old {self.name}")
            self.client.delete_table(self.target_ref)
            self._after_step(self.step)
            target = None
        if target is None:
            self._do(f"re-creating {self.name} with the new partitioning")
            target = self._create_like(
                staging, self.target_ref, self._wanted_filter(staging.require_partition_filter)
            )
            self._after_step(self.step)
        if staging is not None:
            self._do(f"copying back from {self.staging_name}")
            self._copy(staging, target)
            self._after_step(self.step)
            self._do(f"dropping {self.staging_name}")
            self.client.delete_table(self.staging_ref)
            self._after_step(self.step)
        log.info("table %s: partitioned by %s", self.name, render_partitioning(self.partitioning))

    def _wanted_filter(self, default: Any) -> bool:
        """The op's ``require_partition_filter``, or ``default`` when it names none."""
        if self.require_partition_filter is None:
            return bool(default)
        return self.require_partition_filter

    # -- validation -------------------------------------------------------------

    def _field_type(self, table: Any) -> str | None:
        return next((f.field_type for f in table.schema if f.name == self.field), None)

    def _validate(self, source: Any) -> None:
        """The new partition column fits; warn when the data needs too many partitions."""
        if self.field is None and self.partitioning is not None:
            raise SchemaError(
                f"table {self.name!r}: ingestion-time partitioning is not supported; name a column"
            )
        if self.field is None:
            return
        check_partitioning(self.name, self.field, self.granularity or "DAY", self._field_type(source))
        values, nulls = self._partition_values(source)
        partitions = len({partition_of(v, self.granularity or "DAY") for v in values}) + (1 if nulls else 0)
        if partitions > MAX_PARTITIONS:
            message = (
                f"table {self.name!r}: the rows present need {partitions} partitions by "
                f"{self.granularity} on {self.field!r}; BigQuery allows {MAX_PARTITIONS} per table"
            )
            log.warning(message)
            warnings.warn(message, PartitionLimitWarning, stacklevel=2)

    # -- SQL --------------------------------------------------------------------

    def _sa_table(self, table: Any) -> sa.TableClause:
        columns = [
            sa.column(f.name, _SA_TYPES.get(f.field_type) if f.name == self.field else None)
            for f in table.schema
        ]
        return sa.table(table.table_id, *columns, schema=self.dataset)

    def _where(self, table: NamedFromClause, shape: str, field_type: str | None) -> Any:
        """The chunk filter, with ``lo``/``hi`` as bound parameters."""
        if shape == "all":
            return sa.true()
        assert self.field is not None and field_type is not None  # a partitioned target
        column = table.c[self.field]
        if shape == "null":
            return column.is_(None)
        condition = column >= sa.bindparam("lo", type_=_SA_TYPES[field_type])
        if shape == "bounded":
            condition = condition & (column < sa.bindparam("hi", type_=_SA_TYPES[field_type]))
        return condition

    def _partition_values(self, table: Any) -> tuple[list[Any], int]:
        """The new spec's partition values present (sorted), and the count of NULLs."""
        field_type = self._field_type(table)
        assert field_type is not None and self.granularity is not None and self.field is not None
        t = self._sa_table(table)
        column = t.c[self.field]
        bucket = _TRUNC[field_type](column, sa.literal_column(self.granularity)).label("p")
        floor = sa.bindparam("floor", type_=_SA_TYPES[field_type])
        values = sa.select(bucket).where(column >= floor).group_by(bucket).order_by(bucket)
        nulls = sa.select(sa.func.count()).select_from(t).where(column.is_(None))
        found = [row.p for row in self.connection.execute(values, {"floor": _FLOOR[field_type]})]
        return found, self.connection.execute(nulls).scalar_one()

    def _chunks(self, source: Any, field_type: str | None) -> list[_Chunk]:
        """Slices covering every row once, each within ``max_partitions`` new partitions.

        The first slice starts at the lowest representable value, the last is
        open-ended, and NULLs (if any) are a slice of their own, so rows
        written outside the planned partitions are still covered.
        """
        if self.field is None:
            return [_Chunk("all")]
        assert field_type is not None
        values, nulls = self._partition_values(source)
        starts = values[:: self.max_partitions] or [_FLOOR[field_type]]
        starts[0] = _FLOOR[field_type]
        ends = starts[1:] + [None]
        chunks = [_Chunk("range", lo, hi) for lo, hi in zip(starts, ends)]
        return chunks + ([_Chunk("null")] if nulls else [])

    def _copy(self, source: Any, destination: Any) -> None:
        """Copy ``source`` into ``destination`` chunk by chunk, verifying each chunk."""
        field_type = self._field_type(source) if self.field else None
        statements = _CopyStatements(self, source, destination, field_type)
        for chunk in self._chunks(source, field_type):
            self._copy_chunk(statements, chunk, source, destination)

    def _copy_chunk(
        self, statements: _CopyStatements, chunk: _Chunk, source: Any, destination: Any
    ) -> None:
        execute, params = self.connection.execute, chunk.params
        stats_source, stats_destination, delete, insert = statements.for_shape(chunk.shape)
        expected = tuple(execute(stats_source, params).one())
        found = tuple(execute(stats_destination, params).one())
        if found == expected:
            log.info("table %s: chunk %s already copied (%d rows)", self.name, chunk, found[0])
            return
        if found[0]:
            execute(delete, params)
        execute(insert, params)
        found = tuple(execute(stats_destination, params).one())
        if found != expected:
            raise RepartitionError(
                f"table {self.name!r}: chunk {chunk} of {source.table_id!r} copied into "
                f"{destination.table_id!r} does not verify: {expected[0]} rows "
                f"(checksums {', '.join(map(str, expected[1:]))}) in the source, {found[0]} rows "
                f"(checksums {', '.join(map(str, found[1:]))}) in the copy. Nothing was dropped; "
                "pause the writers and run the migration again."
            )
        log.info("table %s: chunk %s copied (%d rows)", self.name, chunk, found[0])

    def _relax_partition_filter(self, source: Any) -> tuple[Any, bool]:
        """Switch off ``require_partition_filter`` on a source our filters cannot satisfy.

        Returns the source as now stored and whether its requirement is off
        (by this run or a killed earlier one). Only the old table, when the
        partition column changes, needs it; it is dropped after the copy, and
        the caller restores the requirement if the copy fails. The label set in
        the same patch is what tells a later run the requirement was there.
        """
        partitioning = source.time_partitioning
        if not _requires_filter(source) or (partitioning and partitioning.field == self.field):
            return source, False
        if source.require_partition_filter:
            source.require_partition_filter = False
            source.labels = {**source.labels, _RELAXED_LABEL: "true"}
            source = self.client.update_table(source, ["require_partition_filter", "labels"])
        return source, True

    def _restore_partition_filter(self, table: Any) -> None:
        """Undo :meth:`_relax_partition_filter`: requirement on, label gone."""
        table.require_partition_filter = True
        table.labels = {**table.labels, _RELAXED_LABEL: None}
        self.client.update_table(table, ["require_partition_filter", "labels"])

    def _create_like(self, source: Any, table_ref: str, require_partition_filter: bool) -> Any:
        """A new table with ``source``'s schema and options and the new partitioning."""
        from google.cloud import bigquery

        table = bigquery.Table(table_ref, schema=source.schema)
        table.time_partitioning = self.partitioning
        table.clustering_fields = source.clustering_fields
        table.description = source.description
        table.labels = {k: v for k, v in source.labels.items() if k != _RELAXED_LABEL}
        if self.partitioning is not None:
            table.require_partition_filter = require_partition_filter
        return self.client.create_table(table)


def _requires_filter(table: Any) -> bool:
    """Whether ``table`` requires a partition filter, or did until a run relaxed it."""
    return bool(table.require_partition_filter) or _RELAXED_LABEL in table.labels


class _CopyStatements:
    """The statements of one copy, built once per chunk shape from bound parameters."""

    def __init__(
        self, repartition: Repartition, source: Any, destination: Any, field_type: str | None
    ) -> None:
        self.repartition = repartition
        self.source = repartition._sa_table(source)
        self.destination = repartition._sa_table(destination)
        self.columns = [f.name for f in source.schema]
        self.field_type = field_type
        self._built: dict[str, tuple[Any, Any, Any, Any]] = {}

    def for_shape(self, shape: str) -> tuple[Any, Any, Any, Any]:
        """``(stats of source, stats of destination, delete, insert)`` for ``shape``."""
        if shape not in self._built:
            where = self.repartition._where
            src, dst = self.source, self.destination
            self._built[shape] = (
                self._stats(src, shape),
                self._stats(dst, shape),
                sa.delete(dst).where(where(dst, shape, self.field_type)),
                sa.insert(dst).from_select(
                    self.columns,
                    sa.select(*(src.c[c] for c in self.columns)).where(
                        where(src, shape, self.field_type)
                    ),
                ),
            )
        return self._built[shape]

    def _stats(self, table: sa.TableClause, shape: str) -> sa.Select[Any]:
        """Row count and checksums (:func:`checksums`) of one chunk of ``table``."""
        t = table.alias("t")
        return sa.select(*checksums(t)).where(self.repartition._where(t, shape, self.field_type))
