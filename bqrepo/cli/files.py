"""Read records from JSON Lines, CSV or Parquet, in batches, for ``bqrepo ingest``.

Each record carries its position in the file (line number for text files,
row number for Parquet) so a rejection names exactly where the bad row is. A
line that is not JSON at all becomes a :class:`BadRecord` instead of
stopping the file. CSV cells are text: empty cells are NULL and JSON columns
(``metadata``) are parsed; everything else is left to the row types' lax
parsing ("1.5" -> 1.5, ISO timestamps with an offset). A JSON cell that does
not parse is a problem of that field: the record keeps all its columns (the
bad cell as its text) and names the field in :attr:`Record.problems`.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic_core import from_json

from bqrepo.cli.errors import UserError
from bqrepo.json_encoding import report_json

__all__ = ["BadRecord", "Format", "Record", "count_records", "detect_format", "read_batches"]

Format = Literal["jsonl", "csv", "parquet"]
_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Record:
    """One input record and where it was in the file (1-based).

    ``problems`` are (field, reason) pairs found while reading (a CSV JSON
    cell that does not parse): such a record is rejected whatever else it holds.
    """

    position: int
    values: dict[str, Any]
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BadRecord:
    """A line that could not even be parsed."""

    position: int
    text: str
    reason: str


def detect_format(path: Path, given: str | None) -> Format:
    if given:
        if given not in ("jsonl", "csv", "parquet"):
            raise UserError(f"--format must be jsonl, csv or parquet, not {given!r}")
        return given  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UserError(f"cannot tell the format of {path.name!r} from its suffix; pass --format jsonl|csv|parquet")
    return _SUFFIXES[suffix]


def _parse_json(text: str) -> Any:
    """``json.loads``, with every way it can fail as one ``ValueError`` saying why.

    Python's parser raises ``RecursionError`` for deep nesting and a plain
    ``ValueError`` for an integer over 4,300 digits: both are bad input here.

    pydantic-core's parser (Rust, already a dependency through pydantic)
    reads a line about twice as fast and gives the same values for what it
    accepts; what it refuses (bad JSON, but also a lone ``\\ud800`` escape
    or nesting over 200 levels, which ``json.loads`` reads) goes through
    ``json.loads``, so the values and the messages are ``json.loads``'s.
    """
    try:
        return from_json(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("not readable JSON: nested too deep for the parser") from None
    except ValueError as exc:
        raise ValueError(f"not readable JSON: {exc}") from None


def count_records(path: Path, fmt: Format) -> int:
    """How many records the file holds (for the progress bar), cheaply."""
    if fmt == "parquet":
        return int(_parquet_file(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(0, lines - 1) if fmt == "csv" else lines


def _jsonl(path: Path) -> Iterator[Record | BadRecord]:
    # utf-8-sig: a byte-order mark (Excel, some exporters) is not part of the first key
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = _parse_json(line)
            except ValueError as exc:
                yield BadRecord(number, line.rstrip("\n"), str(exc))
                continue
            if not isinstance(value, dict):
                yield BadRecord(number, line.rstrip("\n"), "a line must be a JSON object")
                continue
            yield Record(number, value)


def _csv(path: Path, table: sa.Table) -> Iterator[Record | BadRecord]:
    json_columns = {c.name for c in table.c if isinstance(c.type, sa.JSON)}
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            if None in row:
                yield BadRecord(number, report_json(row), "more cells than header columns")
                continue
            values: dict[str, Any] = {}
            problems: list[tuple[str, str]] = []
            for key, text in row.items():
                if text is None or text == "":
                    values[key] = None
                elif key in json_columns:
                    try:
                        values[key] = _parse_json(text)
                    except ValueError as exc:
                        values[key] = text
                        problems.append((key, f"cell is {exc}"))
                else:
                    values[key] = text
            yield Record(number, values, tuple(problems))


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except OSError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid for a file that is not Parquet
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None


def _parquet(parquet_file: Any, batch: int) -> Iterator[Record | BadRecord]:
    number = 0
    for record_batch in parquet_file.iter_batches(batch_size=batch):
        for values in record_batch.to_pylist():
            number += 1
            yield Record(number, values)


def read_batches(path: Path, fmt: Format, table: sa.Table, batch: int) -> Iterator[list[Record | BadRecord]]:
    """Records of ``path`` in lists of at most ``batch``."""
    if fmt == "jsonl":
        records: Iterator[Record | BadRecord] = _jsonl(path)
    elif fmt == "csv":
        records = _csv(path, table)
    else:
        records = _parquet(_parquet_file(path), batch)
    while current := list(itertools.islice(records, batch)):
        yield current
