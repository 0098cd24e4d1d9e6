"""Which old table and columns feed each bqrepo table: a small TOML file.

Why a file and not code: the old schema is the one thing that differs
between deployments (an app label other than ``core``, a renamed column), and
the people moving data should be able to adapt it without writing Python.
The default, ``default_mapping.toml`` next to this module, fits the Django
models the backend used on TimescaleDB.

Every name in the file becomes a SQL identifier, so every name is checked:
source names against PostgreSQL's identifier syntax, target names against
the declared tables. A mistake fails before anything is read, with the file,
table and key named.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from bqrepo import schema
from bqrepo.settings import ConfigurationError
from bqrepo.table_options import TableOptions
from bqrepo.timeseries import declaration, declared_tables

__all__ = ["DEFAULT_MAPPING", "ChunkUnit", "TableMapping", "load_mapping"]

ChunkUnit = Literal["day", "month", "year"]
_UNITS: tuple[ChunkUnit, ...] = ("day", "month", "year")
# The finest chunk that never splits a partition of each granularity.
_PARTITION_UNIT: dict[str, ChunkUnit] = {"HOUR": "day", "DAY": "day", "MONTH": "month", "YEAR": "year"}

# PostgreSQL identifiers as Django creates them (unquoted, at most 63 bytes).
# Used with fullmatch: a trailing "$" anchor alone would let "name\n" through.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")

DEFAULT_MAPPING = "default_mapping.toml"


@dataclass(frozen=True)
class TableMapping:
    """How one bqrepo table is filled from one old table."""

    target: sa.Table
    source_schema: str | None
    source_table: str
    columns: dict[str, str]  # target column -> source column
    chunk: ChunkUnit

    @property
    def partition_column(self) -> str:
        """The target's time column (``mentioned_at``, ``date``, ``period``), its partition column when partitioned."""
        return declaration(self.target).time

    @property
    def timestamp(self) -> bool:
        """Whether the partition column is a TIMESTAMP (chunk bounds are UTC midnights) or a DATE."""
        return isinstance(self.target.c[self.partition_column].type, sa.TIMESTAMP)

    @property
    def time_column(self) -> str:
        """The source column that orders and chunks the read."""
        return self.columns[self.partition_column]

    @property
    def source_name(self) -> str:
        """``schema.table`` or ``table``, for messages."""
        return f"{self.source_schema}.{self.source_table}" if self.source_schema else self.source_table


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ConfigurationError(
            f"{where}: {value!r} is not a valid PostgreSQL identifier "
            "(letters, digits, _ and $, starting with a letter or _, at most 63 characters)"
        )
    return value


def _table_mapping(name: str, section: Any, origin: str, tables: Mapping[str, sa.Table]) -> TableMapping:
    where = f"{origin} [{name}]"
    if name not in tables:
        raise ConfigurationError(f"{where}: no bqrepo table {name!r}; tables are {', '.join(sorted(tables))}")
    target = tables[name]
    if not isinstance(section, dict):
        raise ConfigurationError(f"{where}: expected a table of settings")
    unknown = set(section) - {"source", "chunk", "columns"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    source = section.get("source")
    if not isinstance(source, str):
        raise ConfigurationError(f"{where}: 'source' (the old table's name) is required")
    parts = source.split(".")
    if len(parts) > 2:
        raise ConfigurationError(f"{where}: source {source!r} must be 'table' or 'schema.table'")
    names = [_identifier(part, f"{where} source") for part in parts]
    source_schema, source_table = (names[0], names[1]) if len(names) == 2 else (None, names[0])

    options = TableOptions.of(target)
    finest = _PARTITION_UNIT[options.partition_type or "DAY"]
    chunk = section.get("chunk", finest)
    if chunk not in _UNITS or _UNITS.index(chunk) < _UNITS.index(finest):
        allowed = ", ".join(repr(unit) for unit in _UNITS[_UNITS.index(finest):])
        raise ConfigurationError(
            f"{where}: chunk {chunk!r} is not a whole number of {name}'s "
            f"{options.partition_type} partitions; use one of {allowed}"
        )

    raw_columns = section.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise ConfigurationError(f"{where}: [{name}.columns] must map bqrepo columns to old columns")
    columns: dict[str, str] = {}
    for column, old in raw_columns.items():
        if column not in target.c:
            raise ConfigurationError(
                f"{where}.columns: {name} has no column {column!r}; "
                f"columns are {', '.join(target.c.keys())}"
            )
        columns[column] = _identifier(old, f"{where}.columns.{column}")

    derived = declaration(target).ids == "derived"
    if derived and "id" in columns:
        raise ConfigurationError(
            f"{where}.columns: do not map 'id' for {name}: its ids derive from the "
            "natural key, the same ids live ingestion writes, so the two de-duplicate"
        )
    if not derived and "id" not in columns:
        raise ConfigurationError(
            f"{where}.columns: map 'id' to a stable key of {source}: without it a re-run "
            "back-fill would write new random ids and duplicate every row"
        )
    required = {c.name for c in target.c if not c.nullable and c.name != "id"}
    missing = sorted(required - set(columns))
    if missing:
        raise ConfigurationError(f"{where}.columns: required column(s) not mapped: {', '.join(missing)}")
    return TableMapping(target, source_schema, source_table, columns, chunk)


def load_mapping(
    path: str | Path | None = None, tables: Iterable[sa.Table] | None = None
) -> dict[str, TableMapping]:
    """Read and check a mapping file (default: the Django mapping shipped with bqrepo).

    Its sections name tables of ``tables`` (default: bqrepo's five), any
    declared time series (:mod:`bqrepo.timeseries`).
    """
    by_name = {table.name: table for table in declared_tables(schema.metadata if tables is None else tables)}
    if path is None:
        origin = f"bqrepo/backfill/{DEFAULT_MAPPING}"
        text = resources.files("bqrepo.backfill").joinpath(DEFAULT_MAPPING).read_text("utf-8")
    else:
        origin = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read mapping file {origin}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"mapping file {origin} is not valid TOML: {exc}") from None
    return {name: _table_mapping(name, section, origin, by_name) for name, section in data.items()}
