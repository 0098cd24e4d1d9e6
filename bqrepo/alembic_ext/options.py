"""``op.set_table_options()``: require_partition_filter, partition expiration,
description and labels.

Online the options are patched through the API (``tables.patch``), which
BigQuery and the local stand-in both honour for every one of them; offline
(``--sql``) the operation prints the equivalent
``ALTER TABLE ... SET OPTIONS(...)`` DDL, where ``NULL`` clears an option and
``labels`` replaces the whole label set. Only the options passed are touched.

Labels are the complete set: ``labels={"team": "data"}`` removes any other
label, the way ``table.info["bigquery_labels"]`` in the metadata declares
the complete set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.ddl.base import format_table_name
from alembic.operations import MigrateOperation, Operations
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.types import TypeEngine

from bqrepo.alembic_ext import live
from bqrepo.table_options import SchemaError, check_labels

__all__ = ["OPTION_NAMES", "SetTableOptions", "SetTableOptionsOp"]

log = logging.getLogger("bqrepo.alembic_ext")

OPTION_NAMES = ("require_partition_filter", "partition_expiration_days", "description", "labels")


# An option left at ``...`` is not touched. (Alembic re-creates the ``op.*``
# proxy from the signature's reprs, so the marker must be a builtin.)
KEEP: Any = ...


def _normalise(name: str, value: Any) -> Any:
    if name == "require_partition_filter":
        return bool(value)
    if name == "partition_expiration_days":
        return float(value) if value is not None else None
    if name == "description":
        return value or None
    return dict(value or {})


def _validate(table_name: str, options: Mapping[str, Any], partitioned: bool | None) -> None:
    """Check option values; ``partitioned`` is ``None`` when unknown (offline)."""
    days = options.get("partition_expiration_days")
    if days is not None and days <= 0:
        raise SchemaError(f"table {table_name!r}: partition expiration must be positive, not {days}")
    if "labels" in options:
        check_labels(table_name, options["labels"])
    if partitioned is False:
        if options.get("require_partition_filter"):
            raise SchemaError(
                f"table {table_name!r}: require_partition_filter needs a partitioned table"
            )
        if days is not None:
            raise SchemaError(
                f"table {table_name!r}: a partition expiration needs a partitioned table"
            )


@Operations.register_operation("set_table_options")
class SetTableOptionsOp(MigrateOperation):
    """Set some of a table's BigQuery options; ``existing`` holds their old values."""

    def __init__(
        self,
        table_name: str,
        options: Mapping[str, Any],
        *,
        existing: Mapping[str, Any] | None = None,
        schema: str | None = None,
    ) -> None:
        unknown = set(options) - set(OPTION_NAMES)
        if unknown:
            raise TypeError(f"set_table_options: unknown options {sorted(unknown)}")
        self.table_name = table_name
        self.options = {k: _normalise(k, v) for k, v in options.items()}
        self.existing = (
            {k: _normalise(k, v) for k, v in existing.items()} if existing is not None else None
        )
        self.schema = schema
        _validate(table_name, self.options, None)

    @classmethod
    def set_table_options(
        cls,
        operations: Operations,
        table_name: str,
        *,
        require_partition_filter: bool = KEEP,
        partition_expiration_days: float | None = KEEP,
        description: str | None = KEEP,
        labels: Mapping[str, str] = KEEP,
        existing: Mapping[str, Any] | None = None,
        schema: str | None = None,
    ) -> None:
        """Set the options passed (``None`` clears expiration or description);
        ``existing`` maps the same names to the values to restore on downgrade."""
        given = {
            "require_partition_filter": require_partition_filter,
            "partition_expiration_days": partition_expiration_days,
            "description": description,
            "labels": labels,
        }
        options = {k: v for k, v in given.items() if v is not KEEP}
        operations.invoke(cls(table_name, options, existing=existing, schema=schema))

    def reverse(self) -> SetTableOptionsOp:
        """The downgrade: put back the ``existing`` values of the options set.

        Fails when one was not recorded: guessing it would silently change the
        table on downgrade.
        """
        missing = [k for k in self.options if self.existing is None or k not in self.existing]
        if missing:
            raise ValueError(
                f"set_table_options({self.table_name!r}) records no existing value for "
                f"{missing}, so it cannot be reversed"
            )
        assert self.existing is not None
        return SetTableOptionsOp(
            self.table_name,
            {k: self.existing[k] for k in self.options},
            existing=self.options,
            schema=self.schema,
        )

    def to_diff_tuple(self) -> tuple[str, str, dict[str, Any] | None, dict[str, Any]]:
        """``compare_metadata``'s view: the options' old and new values."""
        return ("set_table_options", self.table_name, self.existing, self.options)


class SetTableOptions(ExecutableDDLElement):
    """``ALTER TABLE t SET OPTIONS(name=value, ...)``, values rendered as literals."""

    inherit_cache = False

    # Shadows Executable.options(), which sets ORM loader options: meaningless on DDL.
    options: dict[str, Any]  # type: ignore[assignment]

    def __init__(
        self, table_name: str, options: Mapping[str, Any], schema: str | None = None
    ) -> None:
        self.table_name = table_name
        self.options = dict(options)
        self.schema = schema


@compiles(SetTableOptions, "bigquery")
def _compile_set_table_options(element: SetTableOptions, compiler: Any, **kw: Any) -> str:
    literal: Callable[[Any, TypeEngine[Any]], str] = compiler.sql_compiler.render_literal_value

    def value(name: str, v: Any) -> str:
        if v is None or v == {}:
            return "NULL"
        if name == "require_partition_filter":
            return literal(v, sa.Boolean())
        if name == "partition_expiration_days":
            return literal(v, sa.Float())
        if name == "labels":
            pairs = ", ".join(
                f"({literal(k, sa.String())}, {literal(val, sa.String())})"
                for k, val in sorted(v.items())
            )
            return f"[{pairs}]"
        return literal(v, sa.String())

    assignments = ", ".join(f"{name}={value(name, v)}" for name, v in element.options.items())
    table = format_table_name(compiler, element.table_name, element.schema)
    return f"ALTER TABLE {table} SET OPTIONS({assignments})"


@Operations.implementation_for(SetTableOptionsOp)
def _set_table_options(operations: Operations, operation: SetTableOptionsOp) -> None:
    context = operations.migration_context
    if not live.is_bigquery(context) or not operation.options:
        return
    name = operation.table_name
    if live.is_offline(context):
        context.impl.execute(SetTableOptions(name, operation.options, operation.schema))
        return
    client = live.client(operations)
    table = live.get_table_or_none(client, live.table_id(context, name, operation.schema))
    if table is None:
        raise SchemaError(f"table {name!r}: cannot set options, the table does not exist")
    options = operation.options
    _validate(name, options, table.time_partitioning is not None)
    fields = []
    if "require_partition_filter" in options:
        table.require_partition_filter = options["require_partition_filter"]
        fields.append("require_partition_filter")
    if "description" in options:
        table.description = options["description"]
        fields.append("description")
    if "labels" in options:
        # A label is removed by patching it to None.
        removed = {k: None for k in table.labels if k not in options["labels"]}
        table.labels = {**removed, **options["labels"]}
        fields.append("labels")
    if "partition_expiration_days" in options:
        partitioning = table.time_partitioning
        days = options["partition_expiration_days"]
        partitioning.expiration_ms = round(days * 86_400_000) if days is not None else None
        table.time_partitioning = partitioning
        fields.append("time_partitioning")
    client.update_table(table, fields)
    log.info("table %s: options set: %s", name, options)


@renderers.dispatch_for(SetTableOptionsOp)
def _render_set_table_options(autogen_context: AutogenContext, op: SetTableOptionsOp) -> str:
    args = [repr(op.table_name)]
    args += [f"{k}={v!r}" for k, v in op.options.items()]
    if op.existing is not None:
        args.append(f"existing={op.existing!r}")
    if op.schema is not None:
        args.append(f"schema={op.schema!r}")
    return f"op.set_table_options({', '.join(args)})"
