"""bqrepo's one JSON encoding, for stored JSON values, files and printed results.

Why one: five places used to encode JSON their own way and disagreed (NaN
written as ``"nan"`` in one file and as the non-JSON token ``NaN`` in
another). Every JSON text bqrepo writes now comes from here, built on
``pydantic_core.to_json`` (Rust: fast, and it knows dataclasses, datetimes,
dates, tuples and sets). The encoding is strict JSON (RFC 8259):

* non-ASCII text is written as UTF-8, not ``\\u``-escaped;
* datetimes and dates are ISO 8601 (a UTC timestamp ends in ``Z``);
* NaN and infinities, which JSON has no token for, are the *strings*
  ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. Strings rather than
  ``null``, so that a rejected record still shows the value that was
  refused. Stored data never holds them: rows reject non-finite numbers.

:func:`to_json_text` is for data that validation has already accepted and
raises on anything else. :func:`report_json` is for rejected records and
printed results, which may hold what validation refused: a string that is
not valid Unicode (a lone surrogate) is written with the bad code point as
the text ``\\udXXX``, a reference cycle as ``"<circular reference>"``, and
nesting deeper than :data:`REPORT_DEPTH` as ``"<nested too deep>"``, so
reporting a bad record never fails.

:func:`wire_size` is a different question: how many bytes a value takes in
the request google-cloud-bigquery sends, which is Python's ``json.dumps``
with its default ASCII escaping.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

__all__ = ["REPORT_DEPTH", "rejection_line", "report_json", "to_json_text", "wire_size"]

#: Nesting kept when a reported value is too deep to encode (BigQuery's JSON
#: type stops at 500 levels; pydantic-core's encoder at a few hundred more).
REPORT_DEPTH = 200


def to_json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text. Raises ``ValueError`` for what JSON cannot carry.

    Used for values validation already accepted (a ``metadata`` object, a
    load-job line), so a failure here is a bug, not bad input.
    """
    try:
        return to_json(value, indent=indent, inf_nan_mode="strings").decode("utf-8")
    except PydanticSerializationError as exc:
        raise ValueError(f"cannot encode as JSON: {exc}") from None


def report_json(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text for a file or the terminal; never fails (see the module docstring).

    Objects of unknown types are written as their ``str()``.
    """
    try:
        return to_json(value, indent=indent, inf_nan_mode="strings", serialize_unknown=True).decode("utf-8")
    except PydanticSerializationError:
        cleaned = _reportable(value)
        return to_json(cleaned, indent=indent, inf_nan_mode="strings", serialize_unknown=True).decode("utf-8")


def rejection_line(
    where: dict[str, Any], problems: Sequence[tuple[str | None, str]], record_key: str, record: Any
) -> str:
    """One line of a rejected-rows file, the same shape for ``bqrepo ingest`` and the back-fill.

    ``where`` says where the row came from, ``field``/``reason`` are those of
    its first problem (enough for a quick look or a ``jq`` filter),
    ``errors`` lists every problem as ``{field, reason}``, and the record
    comes last under ``record_key``.
    """
    return report_json(
        {
            **where,
            "field": problems[0][0],
            "reason": problems[0][1],
            "errors": [{"field": field, "reason": reason} for field, reason in problems],
            record_key: record,
        }
    )


def wire_size(value: Any) -> int:
    """Bytes of ``value`` in a google-cloud-bigquery request: ASCII JSON, non-ASCII ``\\u``-escaped."""
    return len(json.dumps(value))


def _reportable(value: Any) -> Any:
    """A copy of ``value`` that :func:`report_json` can encode: see the module docstring.

    Iterative (an explicit stack), because the values that need it may be
    nested far deeper than Python's recursion limit.
    """
    root: list[Any] = [None]
    # (value, container to put its copy in, key or index there, depth, ids of its ancestors)
    stack: list[tuple[Any, Any, Any, int, frozenset[int]]] = [(value, root, 0, 0, frozenset())]
    while stack:
        item, parent, slot, depth, ancestors = stack.pop()
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            item = {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}
        if isinstance(item, str):
            parent[slot] = item.encode("utf-8", "backslashreplace").decode("utf-8")
        elif isinstance(item, (dict, list, tuple, set, frozenset)):
            if id(item) in ancestors:
                parent[slot] = "<circular reference>"
            elif depth >= REPORT_DEPTH:
                parent[slot] = "<nested too deep>"
            else:
                inner = ancestors | {id(item)}
                if isinstance(item, dict):
                    mapping: dict[str, Any] = {}
                    for key, child in item.items():
                        text = key if isinstance(key, str) else str(key)
                        clean_key = text.encode("utf-8", "backslashreplace").decode("utf-8")
                        mapping[clean_key] = None
                        stack.append((child, mapping, clean_key, depth + 1, inner))
                    parent[slot] = mapping
                else:
                    children = list(item)
                    sequence: list[Any] = [None] * len(children)
                    stack.extend((child, sequence, position, depth + 1, inner) for position, child in enumerate(children))
                    parent[slot] = sequence
        else:
            parent[slot] = item
    return root[0]
