"""Compile a statement to BigQuery SQL and typed query parameters, offline.

Why: a user's unit test should be able to look at the exact SQL and
parameters a repository sends to BigQuery without a network or credentials
(``print(compile_bigquery(repo.statements["recent"], start=..., ...).sql)``),
and a golden test should catch any change to them.

The SQL text comes from sqlalchemy-bigquery's compiler, and the parameter types
are read from its typed placeholders (``%(start:TIMESTAMP)s``) with
google-cloud-bigquery's own DB-API parser, so what you see is what the driver
would send; placeholders are then written the way BigQuery spells them
(``@start``).

Two of those helpers are private to google-cloud-bigquery
(``dbapi.cursor._extract_types``, ``dbapi._helpers``): reusing them keeps the
types exactly the driver's. The pin on google-cloud-bigquery (``<4``) and
the golden tests (tests/golden/) catch a change to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["CompiledQuery", "bigquery_dialect", "compile_bigquery"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CompiledQuery:
    """BigQuery SQL with ``@name`` placeholders and its parameters.

    ``parameters`` maps each name to ``(BigQuery type, value)``; a list value
    has type ``ARRAY<T>``.
    """

    sql: str
    parameters: Mapping[str, tuple[str, Any]]

    def query_parameters(self) -> list[Any]:
        """The parameters as ``google.cloud.bigquery`` ``ScalarQueryParameter``/``ArrayQueryParameter``.

        Pass them in ``QueryJobConfig(query_parameters=...)`` to run :attr:`sql`
        with the plain client.
        """
        from google.cloud.bigquery.dbapi import _helpers

        # The private helper is untyped; this is the part of its signature used here.
        to_query_parameters: Callable[[dict[str, Any], dict[str, str]], list[Any]] = (
            _helpers.to_query_parameters
        )
        values = {name: value for name, (_type, value) in self.parameters.items()}
        types = {name: _element_type(type_) for name, (type_, _value) in self.parameters.items()}
        return to_query_parameters(values, types)


def _element_type(type_: str) -> str:
    """The driver's placeholder type: ``ARRAY<STRING>`` arrays are typed by their element."""
    if type_.startswith("ARRAY<") and type_.endswith(">"):
        return type_[len("ARRAY<") : -1]
    return type_


@cache
def bigquery_dialect() -> Any:
    """The sqlalchemy-bigquery dialect as an engine would configure it (pyformat, typed placeholders)."""
    from sqlalchemy_bigquery import BigQueryDialect

    return BigQueryDialect(paramstyle="pyformat")


def compile_bigquery(statement: ClauseElement, /, **params: Any) -> CompiledQuery:
    """Compile ``statement`` for BigQuery, binding ``params`` by name.

    Every bound parameter the statement needs must be given (or have a
    default); a missing one raises :class:`sqlalchemy.exc.InvalidRequestError`
    naming it. No network, no credentials.
    """
    from google.cloud.bigquery.dbapi import cursor

    # The private helper is untyped: it returns the operation without types, and
    # {name: type} for named placeholders, [type or None] for positional ones,
    # None for none.
    extract_types: Callable[[str], tuple[str, dict[str, str] | list[str | None] | None]] = (
        cursor._extract_types
    )
    compiled = statement.compile(dialect=bigquery_dialect())
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"{type(statement).__name__} is not a SQL statement with parameters (DDL?)")
    values = compiled.construct_params(params, _check=True)
    operation, types = extract_types(compiled.string)
    types = types or {}
    if not isinstance(types, dict):
        raise ValueError("statement uses positional parameters; bqrepo statements use named ones")
    placeholders: dict[str, str] = {}
    for name in values:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"parameter name {name!r} is not a plain identifier")
        placeholders[name] = f"@{name}"
    sql = operation % placeholders
    parameters: dict[str, tuple[str, Any]] = {}
    for name in types:
        value = values[name]
        type_ = types[name]
        if isinstance(value, (list, tuple)):
            type_ = f"ARRAY<{type_}>"
            value = list(value)
        parameters[name] = (type_, value)
    return CompiledQuery(sql=sql, parameters=parameters)
