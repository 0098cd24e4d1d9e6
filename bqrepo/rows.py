"""Typed rows: one pydantic model per table, validated before anything is written.

Why pydantic (v2): field-level validation with error locations, so a bad row
in a batch is reported by index *and* field; lax parsing of what polled APIs
return ("1.5" becomes 1.5); and a well-kept, fast core. Each model knows its
table (``Row.__table__``).

Why derived: the table (its columns and its :mod:`bqrepo.timeseries`
declaration) is the only copy of the schema. :func:`row_type` builds the
model from it, so a column added to the table is a field of its rows at
once, with no second, hand-written list of fields to forget. The five
tables' types keep their names (:data:`EventRow`, :data:`FredObservation`,
...); :data:`ROW_TYPES` maps table names to them.

What every row guarantees (see docs/writing.md):

* required fields mirror the NOT NULL columns of the table; a column's
  Python-side ``default=`` is the field's default (``ingested_at``: now);
* timestamps are timezone-aware and stored as UTC. A *naive* datetime is
  rejected, never assumed to be UTC: a Celery task that forgot its time zone
  should fail loudly, not shift every event by hours;
* floats are finite (no NaN, no infinity: BigQuery's JSON and most readers
  cannot carry them);
* strings are valid Unicode and fit a BigQuery streaming request; a whole
  row stays under :data:`MAX_ROW_BYTES` as the JSON the client sends;
* a JSON column (``metadata``) holds a JSON object made of JSON values only;
* ids: a row without an id gets a UUID derived from its natural key (the
  declaration's ``key``, :func:`natural_id`), so the same observation built
  again (a polling overlap, a retried task) has the same id and read-side
  de-duplication collapses the copies. With ``ids="given"`` (events and
  mentions) an id the application gives is kept (its own identity, e.g. the
  Django primary key); with ``ids="derived"`` (economic rows) a given id
  that differs from the derived one is an error.

An event's ``created_at`` has no default on purpose: read-side
de-duplication keeps the copy with the newest ``created_at``, and a
re-polled copy left without one is identical to the first, so re-ingesting
it changes no query result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import json
import math
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NamedTuple, TypeAlias

import sqlalchemy as sa
from pydantic_core import PydanticSerializationError, SchemaValidator, core_schema, to_json
from pydantic import (
    BeforeValidator,
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    JsonValue,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    field_validator,
    model_validator,
)
from sqlalchemy.schema import ColumnDefault

from bqrepo import schema
from bqrepo.errors import BqrepoError, SchemaError
from bqrepo.json_encoding import to_json_text, wire_size
from bqrepo.timeseries import TimeSeries, declaration, declared_tables

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_ROW_BYTES",
    "NATURAL_KEY_NAMESPACE",
    "ROW_TYPES",
    "ComtradeObservation",
    "EntityMentionRow",
    "EventRow",
    "FredObservation",
    "Row",
    "RowError",
    "RowValidationError",
    "ValidRow",
    "ValidationReport",
    "WorldBankObservation",
    "natural_id",
    "row_type",
    "validate_rows",
]

#: Largest row, in bytes of its JSON encoding, that a row type accepts.
#: BigQuery caps a streaming (insertAll) request at 10 MB; 8 MB leaves room
#: for the request envelope, so every valid row can be streamed on its own.
MAX_ROW_BYTES = 8_000_000

#: Deepest nesting of a JSON column (the object itself is level 1). BigQuery's
#: JSON type allows 500 levels; pydantic-core, which validates and encodes
#: JSON here, handles 255, and a load-job line nests ``metadata`` one level
#: deeper than the row. 200 leaves room under both.
MAX_JSON_DEPTH = 200

# Integers a BigQuery JSON value keeps exactly: INT64 and UINT64.
_JSON_INT_MIN, _JSON_INT_MAX = -(2**63), 2**64 - 1

#: Namespace of the economic rows' uuid5 ids. Part of the stored data's
#: contract: changing it (or the key encoding) gives every observation a new
#: id and defeats de-duplication against rows already stored.
NATURAL_KEY_NAMESPACE = uuid.UUID("5b0f7e55-8d0c-4a53-9f0e-6f1f2b6c7a11")


# --------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------


def _fits_bigquery(value: str) -> str:
    """Reject strings BigQuery cannot store: invalid Unicode, or too large to stream."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"string is not valid Unicode (BigQuery needs UTF-8): {exc.reason} "
            f"at position {exc.start}"
        ) from None
    # Cheap bound first: an escaped character is at most 12 bytes (a surrogate pair).
    if 12 * len(value) > MAX_ROW_BYTES and (size := wire_size(value)) > MAX_ROW_BYTES:
        raise ValueError(
            f"string is {size:,} bytes as JSON (non-ASCII characters travel \\u-escaped); "
            f"a row must stay under {MAX_ROW_BYTES:,} bytes to fit a BigQuery streaming request"
        )
    return value


def _aware_utc(value: dt.datetime) -> dt.datetime:
    """Normalise to UTC; refuse naive datetimes instead of guessing their zone."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(
            "naive datetime (no time zone); pass an aware datetime such as "
            "datetime.now(timezone.utc) or an ISO string with an offset. "
            "bqrepo does not assume UTC"
        )
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        # 9999-12-31T23:00-05:00 is 10000-01-01 in UTC: past Python's and BigQuery's range.
        raise ValueError(
            f"{value.isoformat()} is outside the timestamp range once converted to UTC "
            "(0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z)"
        ) from None


def _json_problem(value: Any, path: str) -> str | None:
    """Why ``value`` is not a JSON value BigQuery stores and reads back unchanged, or None.

    Checked: JSON types only (dict with string keys, list, str, int, float,
    bool, None), finite numbers, valid Unicode, integers within 64 bits,
    no reference cycles, at most :data:`MAX_JSON_DEPTH` levels. Iterative
    (an explicit stack), so no nesting or cycle can exhaust Python's stack.
    """
    # (value, its path, its depth, ids of the containers it is inside)
    stack: list[tuple[Any, str, int, frozenset[int]]] = [(value, path, 1, frozenset())]
    while stack:
        item, where, depth, ancestors = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            try:
                _fits_bigquery(item)
            except ValueError as exc:
                return f"{where}: {exc}"
        elif isinstance(item, int):
            if not _JSON_INT_MIN <= item <= _JSON_INT_MAX:
                # bit_length, not str(): Python refuses str() of an int over 4,300 digits
                return (
                    f"{where}: integer of {item.bit_length()} bits is outside BigQuery JSON's "
                    "64-bit range (-2**63 to 2**64-1); send it as a string"
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where}: {item} is not a finite number"
        elif isinstance(item, (dict, list)):
            if id(item) in ancestors:
                return f"{where}: refers to a container it is inside (a reference cycle); JSON cannot represent it"
            if depth > MAX_JSON_DEPTH:
                return (
                    f"{path}: nested more than {MAX_JSON_DEPTH} levels deep; bqrepo accepts at most "
                    f"{MAX_JSON_DEPTH} (BigQuery's JSON type allows 500)"
                )
            inner = ancestors | {id(item)}
            if isinstance(item, dict):
                children = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"{where}: key {key!r} is not a string"
                    try:
                        _fits_bigquery(key)
                    except ValueError as exc:
                        return f"{where}: key {key!r}: {exc}"
                    children.append((child, f"{where}.{key}", depth + 1, inner))
            else:
                children = [
                    (child, f"{where}[{position}]", depth + 1, inner) for position, child in enumerate(item)
                ]
            stack.extend(reversed(children))  # report the first problem in document order
        else:
            return f"{where}: {type(item).__name__} value {_short_repr(item)} is not JSON-serialisable"
    return None


def _plainly_json(value: Any) -> bool:
    """True when ``value`` certainly passes :func:`_json_problem`; False means "ask it".

    The common case (small objects of str, int, float, bool, None, dict and
    list) without building a path string per value: the precise check, which
    names the offending path, runs only when this one is unsure. A container
    met twice (a cycle, or merely shared) and any subclass are "unsure".
    """
    seen: set[int] = set()
    level: list[Any] = [value]
    depth = 1
    while level:  # one nesting level at a time: no (value, depth) pair per value
        deeper: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                if 12 * len(item) > MAX_ROW_BYTES or not (item.isascii() or _encodes(item)):
                    return False
            elif kind is int:
                if not _JSON_INT_MIN <= item <= _JSON_INT_MAX:
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            elif kind is dict or kind is list:
                if depth > MAX_JSON_DEPTH or id(item) in seen:
                    return False
                seen.add(id(item))
                if kind is dict:
                    for key in item:
                        if type(key) is not str or 12 * len(key) > MAX_ROW_BYTES:
                            return False
                        if not (key.isascii() or _encodes(key)):
                            return False
                    deeper.extend(item.values())
                else:
                    deeper.extend(item)
            elif item is not None and kind is not bool:
                return False
        level = deeper
        depth += 1
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _short_repr(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _json_object(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> dict[str, JsonValue]:
    """Accept a JSON object of JSON values only, with finite numbers and valid Unicode.

    :func:`_json_problem` runs first: it names the offending path (from the
    column's name), and it stops cycles and deep nesting before pydantic's
    own recursive check (which would raise ``RecursionError`` or a nameless
    error for them). The handler then makes the row's own copy.
    """
    column = info.field_name or "value"
    if not isinstance(value, dict):
        raise ValueError(f"{column} must be a JSON object (a dict with string keys)")
    if not _plainly_json(value) and (problem := _json_problem(value, column)):
        raise ValueError(problem)
    checked: dict[str, JsonValue] = handler(value)
    return checked


BQString = Annotated[str, AfterValidator(_fits_bigquery)]
#: A string that must not be empty: ids and the parts of a series key.
Key = Annotated[str, Field(min_length=1), AfterValidator(_fits_bigquery)]
UtcTimestamp = Annotated[dt.datetime, AfterValidator(_aware_utc)]


def _not_a_datetime(value: Any) -> Any:
    """Refuse a ``datetime`` for a DATE: pydantic would take midnight as a date, zone or not.

    A naive datetime is refused everywhere else (it is not assumed to be UTC);
    a DATE column must not be the one place that quietly drops a time and its zone.
    """
    if isinstance(value, dt.datetime):
        raise ValueError(
            f"{value.isoformat()} is a datetime; a DATE takes a datetime.date or 'YYYY-MM-DD'"
        )
    return value


CalendarDate = Annotated[dt.date, BeforeValidator(_not_a_datetime)]
JsonObject = Annotated[dict[str, JsonValue], WrapValidator(_json_object)]


#: What a natural key part may be: the values of the column types rows carry, JSON excepted.
KeyPart = str | dt.date | int | float | bool | None


def natural_id(table: str, *key: KeyPart) -> str:
    """The deterministic id of a row: uuid5 over its table and natural key.

    The key is encoded canonically as a JSON array ``[table, part, ...]`` with
    dates and (UTC) timestamps in ISO form, ``None`` as ``null`` and numbers
    and booleans as JSON numbers and booleans, so parts cannot run into each
    other ("a|b" + "c" never equals "a" + "b|c") and the id does not depend
    on Python's ``str()``.
    """
    parts: list[Any] = [str(table)]
    exact = True  # whether pydantic-core writes these parts as the frozen encoder does
    for part in key:
        if isinstance(part, dt.date):  # datetimes too, already in UTC
            part = part.isoformat()
        elif isinstance(part, float):
            exact = False  # repr's exponents (1e-07) are not pydantic-core's (1e-7)
            if part == 0:
                part = 0.0  # -0.0 equals 0.0: one id for both
        parts.append(part)
    # Not bqrepo.json_encoding: this text is hashed into stored ids, so its
    # exact bytes are frozen (pinned by tests) and must never follow a change
    # in the output encoding. The frozen encoding is json.dumps(ensure_ascii=False,
    # separators=(",", ":")); pydantic-core's to_json writes strings, integers,
    # booleans and null byte for byte the same (every code point checked by
    # tests/test_write_fast_paths.py) in a seventh of the time, so it serves
    # every key without a float.
    if exact:
        try:
            canonical = to_json(parts)
        except PydanticSerializationError:  # not valid Unicode: let the encoder say so
            canonical = _natural_key_json(parts).encode("utf-8")
    else:
        canonical = _natural_key_json(parts).encode("utf-8")
    return _uuid5_text(hashlib.sha1(_NAMESPACE_BYTES + canonical).hexdigest())


# json.dumps(parts, ensure_ascii=False, separators=(",", ":")) builds an
# encoder per call; this is the same encoder, built once (same bytes).
_natural_key_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NAMESPACE_BYTES = NATURAL_KEY_NAMESPACE.bytes
# uuid5's variant bits: the 17th hex digit keeps its two low bits under a leading "10".
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuid5_text(sha1_hex: str) -> str:
    """``str(uuid.uuid5(...))`` from the SHA-1 hex digest, without building a ``UUID`` (ids are made per row)."""
    return (
        f"{sha1_hex[:8]}-{sha1_hex[8:12]}-5{sha1_hex[13:16]}-{_VARIANT[sha1_hex[16]]}{sha1_hex[17:20]}-{sha1_hex[20:32]}"
    )


# --------------------------------------------------------------------------
# Row types
# --------------------------------------------------------------------------


_PLAIN, _TEMPORAL, _JSON, _INTEGER = "plain", "temporal", "json", "integer"


def _kind(column: sa.Column[Any]) -> str:
    if isinstance(column.type, sa.JSON):
        return _JSON
    if isinstance(column.type, sa.Integer):
        return _INTEGER
    if isinstance(column.type, (sa.TIMESTAMP, sa.Date, sa.DateTime)):
        return _TEMPORAL
    return _PLAIN


class Row(BaseModel):
    """Base of every row type: immutable, no unknown fields, knows its table.

    Row types are not written by hand: :func:`row_type` derives one per
    declared table. Subclass ``Row`` only for a table's ``rules`` (validators
    the derived type inherits).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    __table__: ClassVar[sa.Table]
    #: The fields that identify a row; an id-less row's id is derived from them.
    natural_key_fields: ClassVar[tuple[str, ...]]
    #: Whether a given id must equal the derived one (``ids="derived"``) or is kept.
    id_must_match_key: ClassVar[bool] = False
    #: (column name, kind) in table order, computed once per row type.
    _columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: The column names, and those that are not sent as they are (kind != plain), likewise.
    _names: ClassVar[tuple[str, ...]] = ()
    _converted: ClassVar[tuple[tuple[str, str], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if table is not None:
            # str(): SQLAlchemy names are ``quoted_name``, a str subclass that
            # pydantic-core's JSON encoder serialises about 10x slower as a key.
            cls._columns = tuple((str(column.name), _kind(column)) for column in table.columns)
            cls._names = tuple(name for name, _ in cls._columns)
            cls._converted = tuple((name, kind) for name, kind in cls._columns if kind != _PLAIN)

    @field_validator("id", mode="after", check_fields=False)
    @classmethod
    def _derive_id(cls, given: str | None, info: ValidationInfo) -> str | None:
        if given is not None and not cls.id_must_match_key:
            return given
        # row_type() puts ``id`` after every other field, so info.data holds the key.
        data = info.data
        try:
            key = [data[name] for name in cls.natural_key_fields]
        except KeyError:
            return given  # a key field failed validation and is reported itself
        derived = natural_id(cls.__table__.name, *key)
        if given is not None and given != derived:
            raise ValueError(
                f"id {given!r} does not match the id derived from the natural key "
                f"{cls.natural_key_fields} ({derived!r}); omit id for {cls.__table__.name} rows, it is derived"
            )
        return derived

    @model_validator(mode="after")
    def _fits_one_request(self) -> Row:
        # Cheap bound first (an escaped character is at most 12 bytes, a JSON
        # column's text at most 6 per UTF-8 byte, other values take a few
        # dozen); encode the row only when it might be too big.
        approx = 0
        for name, kind in self._columns:
            value = self.__dict__[name]
            if isinstance(value, str):
                approx += 12 * len(value)
            elif kind == _JSON and value is not None:
                # sent as the string to_json_text(value): each of its UTF-8
                # bytes escapes to at most 6 bytes, plus the quotes
                approx += 6 * len(to_json(value, inf_nan_mode="strings")) + 2
            else:
                approx += 40
        if approx <= MAX_ROW_BYTES:
            return self
        size = wire_size(self.to_bigquery_row())
        if size > MAX_ROW_BYTES:
            raise ValueError(
                f"row is {size:,} bytes as JSON; BigQuery rows must stay under "
                f"{MAX_ROW_BYTES:,} bytes to be streamed"
            )
        return self

    def to_db_row(self) -> dict[str, Any]:
        """Python values keyed by column, in table order, for a SQLAlchemy insert."""
        values = self.__dict__
        return {name: values[name] for name in self._names}

    def to_bigquery_row(self, *, for_load_job: bool = False) -> dict[str, Any]:
        """A JSON-ready dict for BigQuery, keyed by column in table order.

        Timestamps become ISO-8601 strings in UTC (``+00:00``), dates ISO
        dates. A JSON column is sent as a JSON *string* for streaming
        (``insertAll`` expects one), and as the JSON value itself for load
        jobs, where a string would be stored as a JSON string rather than
        parsed. Integers are sent as decimal strings for streaming, as
        google-cloud-bigquery's own ``insert_rows`` does: the insertAll API
        reads a JSON number as a double, exact only up to 2**53.
        """
        values = self.__dict__
        out = {name: values[name] for name in self._names}
        for name, kind in self._converted:  # the plain columns are sent as they are
            value = out[name]
            if value is None:
                continue
            if kind == _TEMPORAL:
                out[name] = value.isoformat()
            elif kind == _INTEGER:
                if not for_load_job:
                    out[name] = str(value)
            elif not for_load_job:
                out[name] = to_json_text(value)
        return out


def _integer(bits: int, sql_type: str) -> Any:
    """An int that fits ``sql_type`` on every engine: BigQuery's INT64 and DuckDB's narrower types.

    BigQuery stores every integer type as INT64, but DuckDB's INTEGER is 32
    bits and SMALLINT 16: a value only BigQuery could hold would fail the
    whole DuckDB batch. The row refuses it instead, naming the field.
    """
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    wider = "; declare the column BigInteger for 64-bit integers" if bits < 64 else ""

    def fits(value: int) -> int:
        if not low <= value <= high:
            # bit_length, not str(): Python refuses str() of an int over 4,300 digits
            raise ValueError(
                f"integer of {value.bit_length()} bits is outside {sql_type}'s {bits}-bit range "
                f"({low} to {high}){wider}"
            )
        return value

    return Annotated[int, AfterValidator(fits)]


_INTEGERS = (
    (sa.BigInteger, _integer(64, "BigInteger")),
    (sa.SmallInteger, _integer(16, "SmallInteger")),
    (sa.Integer, _integer(32, "Integer")),
)


def _field_type(table: sa.Table, column: sa.Column[Any]) -> Any:
    """The pydantic type of a column's values (without ``| None``)."""
    kind = column.type
    if isinstance(kind, sa.String):
        return BQString if column.nullable else Key
    if isinstance(kind, sa.Float):  # Double is a Float subclass; Numeric (Decimal) is not accepted
        return FiniteFloat
    for sql_type, python_type in _INTEGERS:
        if isinstance(kind, sql_type):
            return python_type
    if isinstance(kind, sa.Boolean):
        return bool
    if isinstance(kind, sa.Date):
        return CalendarDate
    if isinstance(kind, sa.TIMESTAMP) and kind.timezone:
        return UtcTimestamp
    if isinstance(kind, sa.JSON):
        return JsonObject
    raise SchemaError(
        f"table {table.name!r}: column {column.name!r} has type {kind!r}, which rows cannot carry; "
        "use String, Double, Integer, BigInteger, Boolean, Date, TIMESTAMP(timezone=True) or JSON "
        "(a DateTime without time zone is BigQuery DATETIME, a wall-clock time)"
    )


def _field_default(table: sa.Table, column: sa.Column[Any]) -> dict[str, Any]:
    """``Field`` arguments for the column's Python-side default: ``{}`` when it has none."""
    default = column.default
    if default is None:
        return {}
    # Defaults are validated like given values: a default returning a naive
    # datetime is reported on its field, not stored.
    if isinstance(default, ColumnDefault) and default.is_scalar:
        return {"default": default.arg, "validate_default": True}
    if isinstance(default, ColumnDefault) and default.is_callable:
        # SQLAlchemy wraps a zero-argument callable into one taking the
        # execution context. Rows are built before any statement exists, so
        # there is no context: a default that reads one receives None.
        return {"default_factory": functools.partial(default.arg, None), "validate_default": True}
    raise SchemaError(
        f"table {table.name!r}: column {column.name!r} has a SQL default ({default!r}); writers send "
        "every column, so it would never run. Give a Python value or a zero-argument callable"
    )


def _field(table: sa.Table, column: sa.Column[Any]) -> tuple[Any, Any]:
    """``(type, FieldInfo)`` for ``create_model``: nullable columns default to None."""
    annotation = _field_type(table, column)
    options = _field_default(table, column)
    if column.nullable:
        annotation = annotation | None
        if not options:
            options["default"] = None
    return annotation, Field(description=column.comment, **options)


def _checked_rules(table: sa.Table, rules: type[Any] | None) -> type[Row]:
    """The base of the row type: ``rules`` when it is a field-less Row subclass for this table."""
    if rules is None:
        return Row
    if not (isinstance(rules, type) and issubclass(rules, Row)):
        raise SchemaError(
            f"table {table.name!r}: rules {rules!r} must be a subclass of bqrepo.rows.Row "
            "holding pydantic validators (check_fields=False)"
        )
    if rules.model_fields:
        raise SchemaError(
            f"table {table.name!r}: rules {rules.__name__} declares field(s) {sorted(rules.model_fields)}; "
            "the table's columns are the fields, rules only validate them"
        )
    columns = set(table.columns.keys())
    for name, validator in rules.__pydantic_decorators__.field_validators.items():
        unknown = [field for field in validator.info.fields if field != "*" and field not in columns]
        if unknown:
            # check_fields=False silences pydantic, so a misspelt column would never be checked
            raise SchemaError(
                f"table {table.name!r}: rules {rules.__name__}.{name} validates {unknown}, "
                "which are not columns of the table"
            )
    return rules


def _camel_case(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _build_row_type(table: sa.Table, declared: TimeSeries) -> type[Row]:
    base = _checked_rules(table, declared.rules)
    fields: dict[str, Any] = {
        str(column.name): _field(table, column) for column in table.columns if column.name != "id"
    }
    # id last: Row._derive_id reads the key fields from info.data, which holds
    # only the fields validated before it.
    # None only until validated: validate_default runs Row._derive_id on a row given no id.
    fields["id"] = (Key | None, Field(default=None, validate_default=True, description=table.c.id.comment))
    name = declared.row_name or _camel_case(table.name) + "Row"
    model: type[Row] = create_model(
        name,
        __base__=base,
        __module__=__name__,
        __doc__=table.comment or f"A row of table {table.name!r}.",
        __namespace__={
            "__table__": table,
            "natural_key_fields": declared.key,
            "id_must_match_key": declared.ids == "derived",
        },
        **fields,
    )
    return model


_built: dict[sa.Table, tuple[TimeSeries, tuple[sa.Column[Any], ...], type[Row]]] = {}
_building = threading.Lock()


def row_type(table: sa.Table) -> type[Row]:
    """The row type of a declared table, derived from its columns and declaration.

    Built once per ``Table`` (and again only when the table is declared
    again or gains a column), so every caller gets the same class and
    ``isinstance`` checks between them hold. Types per column: String ->
    str (non-empty when NOT NULL), Double/Float -> finite float,
    BigInteger -> int within INT64, Integer and SmallInteger -> int within
    32 and 16 bits (their size on DuckDB), Boolean, Date,
    TIMESTAMP(timezone=True) -> aware UTC datetime, JSON -> a JSON object. A nullable column defaults to None, a
    column's Python-side ``default=`` becomes the field's default.

    Raises :class:`~bqrepo.errors.SchemaError` naming the table and column
    for a column type rows cannot carry, a SQL default, or a ``rules`` class
    that is not a field-less :class:`Row` subclass.
    """
    declared = declaration(table)
    columns = tuple(table.columns)
    with _building:
        cached = _built.get(table)
        if (
            cached is not None
            and cached[0] is declared
            and len(cached[1]) == len(columns)
            and all(old is new for old, new in zip(cached[1], columns))
        ):
            return cached[2]
        model = _build_row_type(table, declared)
        _built[table] = (declared, columns, model)
        return model


# The five tables' row types, by their historical names. mypy sees them as
# Row (a type built at run time has no static fields); at run time they are
# the derived classes.
if TYPE_CHECKING:
    EventRow: TypeAlias = Row
    EntityMentionRow: TypeAlias = Row
    FredObservation: TypeAlias = Row
    ComtradeObservation: TypeAlias = Row
    WorldBankObservation: TypeAlias = Row
else:
    EventRow = row_type(schema.events)
    EntityMentionRow = row_type(schema.entity_mentions)
    FredObservation = row_type(schema.fred_indicators)
    ComtradeObservation = row_type(schema.un_comtrade)
    WorldBankObservation = row_type(schema.world_bank)

#: The row type of every declared table of :data:`bqrepo.schema.metadata`, by table name.
ROW_TYPES: dict[str, type[Row]] = {
    table.name: row_type(table) for table in declared_tables(schema.metadata)
}


# --------------------------------------------------------------------------
# Validating a batch
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One problem with one input record: which record, which field, why, what value."""

    index: int
    field: str | None
    message: str
    value: Any = None

    def __str__(self) -> str:
        where = f"row {self.index}" + (f", field {self.field!r}" if self.field else "")
        shown = repr(self.value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return f"{where}: {self.message} (value: {shown})"


class ValidRow(NamedTuple):
    """A record that validated, with its position in the input batch."""

    index: int  # type: ignore[assignment]  # the field shadows tuple.index(), as declared
    row: Row


class RowValidationError(BqrepoError, ValueError):
    """Some records of a batch are invalid; ``errors`` lists every problem."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {error}" for error in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        rows = len({error.index for error in errors})
        super().__init__(f"{rows} invalid row(s):\n{lines}{more}")


@dataclass
class ValidationReport:
    """The outcome of :func:`validate_rows`: the good rows and every problem found."""

    valid: list[ValidRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def rows(self) -> list[Row]:
        """The valid rows, in input order (ready for a writer)."""
        return [valid.row for valid in self.valid]

    def errors_by_row(self) -> dict[int, list[RowError]]:
        """Every problem grouped by record index, records in input order.

        A record with two bad fields has two :class:`RowError` entries but is
        one rejected record: count and report rejections from this.
        """
        grouped: dict[int, list[RowError]] = {}
        for error in self.errors:
            grouped.setdefault(error.index, []).append(error)
        return dict(sorted(grouped.items()))

    def raise_for_errors(self) -> None:
        """Raise :class:`RowValidationError` when any record was invalid."""
        if self.errors:
            raise RowValidationError(self.errors)


def _row_errors(index: int, details: Iterable[Any]) -> Iterable[RowError]:
    for detail in details:
        location = ".".join(str(part) for part in detail["loc"]) or None
        value = None if detail["type"] == "missing" else detail.get("input")
        message = detail["msg"].removeprefix("Value error, ")
        yield RowError(index=index, field=location, message=message, value=value)


_pauses = 0
_pauses_lock = threading.Lock()
_resume_collection = False


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch of rows is built or encoded.

    Why: a batch allocates a few container objects per row that all stay
    alive (the rows, their field dicts, their JSON values), and CPython's
    collector, triggered every 700 allocations, traverses them again and
    again: measured here, a third of the time of validating 100k events
    (benchmarks/bench_writes.py). What these loops build holds no reference
    cycle, and any garbage cycle made meanwhile (by a rules validator, say)
    is collected once the batch is done. Nested and concurrent pauses are counted: the
    collector is enabled again when the last one ends, and only when it was
    enabled when the first one began.
    """
    global _pauses, _resume_collection
    with _pauses_lock:
        if _pauses == 0:
            _resume_collection = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _resume_collection:
                gc.enable()


#: Longest string the batch's quick check passes: at most 12 bytes a character, MAX_ROW_BYTES in all.
_SURELY_FITS = MAX_ROW_BYTES // 12

#: Rows whose sizes the quick check bounds with one JSON encoding (see :func:`_sizes_fit`).
_SIZE_GROUP = 2_000

_JSON_VALUE_REF = "bqrepo.rows.json-value"
_JSON_LEVEL_REF = "bqrepo.rows.json-level"


def _json_object_schema() -> core_schema.CoreSchema:
    """The quick check of a JSON column, in pydantic-core: it passes only what :func:`_json_object` passes.

    Strict types (a bool is not taken for an int, a float is never made of
    an int), integers within 64 bits, finite floats, strings and keys as in
    :func:`_quick_strings`. Nesting: each level goes through two recursive
    references, so pydantic-core's recursion guard (which also stops
    reference cycles) refuses anything nested more than about 128 levels,
    well inside :data:`MAX_JSON_DEPTH`. What it refuses goes to the row type
    itself, which says why or accepts it.
    """
    text = core_schema.str_schema(strict=True, max_length=_SURELY_FITS)
    inner = core_schema.definition_reference_schema(_JSON_LEVEL_REF)
    value = core_schema.union_schema(
        [
            text,
            core_schema.dict_schema(text, inner, strict=True),
            core_schema.list_schema(inner, strict=True),
            core_schema.bool_schema(strict=True),
            core_schema.int_schema(strict=True, ge=_JSON_INT_MIN, le=_JSON_INT_MAX),
            core_schema.chain_schema(
                [core_schema.is_instance_schema(float), core_schema.float_schema(allow_inf_nan=False)]
            ),
            core_schema.none_schema(),
        ],
        mode="left_to_right",
        ref=_JSON_VALUE_REF,
    )
    level = core_schema.nullable_schema(core_schema.definition_reference_schema(_JSON_VALUE_REF), ref=_JSON_LEVEL_REF)
    return core_schema.definitions_schema(core_schema.dict_schema(text, inner, strict=True), [value, level])


def _function_of(schema: Any) -> Any:
    """The Python function of a function-* core schema (a classmethod's, unbound), or None."""
    function = schema.get("function", {}).get("function") if schema.get("type", "").startswith("function-") else None
    return getattr(function, "__func__", function)


@dataclass
class _QuickCheck:
    """A row type's batch check: a core validator, then what it leaves to one pass over the batch.

    ``utc_fields`` are the timestamps whose check stayed in pydantic-core
    (aware, any zone) and are converted to UTC by :meth:`finish`;
    ``derives_ids`` and ``bounds_size`` say that the row type's id and size
    checks were left out of the core schema for :meth:`finish` too.
    """

    validator: SchemaValidator
    utc_fields: list[str] = field(default_factory=list)
    derives_ids: bool = False
    bounds_size: bool = False

    def transform(self, schema: Any, name: str | None = None) -> Any:
        """A copy of a core schema with the row type's Python validators made core checks where they can be.

        Always: each :func:`_fits_bigquery` becomes a core ``str`` constraint
        (pydantic-core refuses what ``str.encode`` refuses, and here anything
        longer than :data:`_SURELY_FITS` characters, without calling Python).
        With ``derives_ids`` set beforehand (a row type without rules):
        ``_aware_utc`` becomes a core aware-datetime check, ``_json_object``
        :func:`_json_object_schema`, and ``Row._derive_id`` and
        ``Row._fits_one_request`` are left out; :meth:`finish` does their work.
        """
        if isinstance(schema, list):
            return [self.transform(item, name) for item in schema]
        if not isinstance(schema, dict):
            return schema
        function = _function_of(schema)
        if function is _fits_bigquery:
            inner = self.transform(schema["schema"], name)
            if inner.get("type") == "str":
                return {**inner, "max_length": min(inner.get("max_length", _SURELY_FITS), _SURELY_FITS)}
        elif self.derives_ids and function is _aware_utc and schema["schema"].get("type") == "datetime" and name:
            self.utc_fields.append(name)
            return {**schema["schema"], "tz_constraint": "aware"}
        elif self.derives_ids and function is _json_object:
            return _json_object_schema()
        elif self.derives_ids and function is _DERIVE_ID:
            return self.transform(schema["schema"], name)
        elif self.derives_ids and function is _FITS_ONE_REQUEST:
            self.bounds_size = True
            return self.transform(schema["schema"], name)
        if schema.get("type") == "model-fields":
            fields = {key: self.transform(value, key) for key, value in schema["fields"].items()}
            return {**schema, "fields": fields}
        return {key: self.transform(value, name) for key, value in schema.items()}

    def finish(self, row_type: type[Row], rows: list[Row], items: list[Any]) -> set[int]:
        """Do for new ``rows`` what the core schema left out; the positions of rows it refuses.

        Timestamps to UTC, ids derived (or checked) from the converted key,
        sizes bounded: the row type's own validators' work, in one pass over
        the batch instead of Python calls from inside pydantic-core. A row
        refused here is validated again by the row type, which says why.
        Rows given already built (``items[position]``) are left as they are.
        """
        refused: set[int] = set()
        if not self.derives_ids:
            return refused
        utc = dt.timezone.utc
        utc_fields = self.utc_fields
        table = row_type.__table__.name
        key = row_type.natural_key_fields
        must_match = row_type.id_must_match_key
        for position, row in enumerate(rows):
            if row is items[position]:
                continue
            values = row.__dict__
            for name in utc_fields:
                value = values[name]
                if value is not None and value.tzinfo is not utc:
                    try:
                        values[name] = _aware_utc(value)
                    except ValueError:
                        refused.add(position)
            given = values["id"]
            if given is None or must_match:
                derived = natural_id(table, *[values[name] for name in key])
                if given is not None and given != derived:
                    refused.add(position)
                values["id"] = derived
        if self.bounds_size:
            refused.update(_sizes_fit(rows, items))
        return refused


_DERIVE_ID = Row._derive_id.__func__  # type: ignore[attr-defined]
_FITS_ONE_REQUEST: Callable[[Row], Row] = Row._fits_one_request  # type: ignore[assignment]


def _sizes_fit(rows: list[Row], items: list[Any]) -> list[int]:
    """Positions of the new ``rows`` that might not fit :data:`MAX_ROW_BYTES`; usually none.

    Each UTF-8 byte of a row's JSON (pydantic-core's) takes at most 6 bytes
    in the request the client sends (ASCII, \\u-escaped; a JSON column is
    sent as a string of its text), and each column a few more (separators,
    ``+00:00`` for ``Z``, integers quoted): at most 40. So when a group's
    JSON, times 6, plus that, fits, every row of the group fits, for one
    Rust call per :data:`_SIZE_GROUP` rows; otherwise each row of the group
    runs the row type's own bound (``Row._fits_one_request``).
    """
    doubtful: list[int] = []
    for start in range(0, len(rows), _SIZE_GROUP):
        group = rows[start : start + _SIZE_GROUP]
        columns = len(group[0]._columns) if group else 0
        try:
            size = len(to_json(group, inf_nan_mode="strings"))
        except PydanticSerializationError:
            size = MAX_ROW_BYTES
        if 6 * size + 40 * columns <= MAX_ROW_BYTES:
            continue
        for position in range(start, start + len(group)):
            if rows[position] is not items[position]:
                try:
                    _FITS_ONE_REQUEST(rows[position])
                except ValueError:
                    doubtful.append(position)
    return doubtful


_quick_checks: weakref.WeakKeyDictionary[type[Row], _QuickCheck] = weakref.WeakKeyDictionary()


def _quick_check(row_type: type[Row]) -> _QuickCheck:
    """The quick check of a ``list[row_type]`` (:class:`_QuickCheck`), built once per row type.

    The id, timestamp, JSON and size checks leave pydantic-core only for a
    row type without rules of its own: rules validators may read what those
    checks make (a UTC time, the id), so there every check stays where it is.
    """
    check = _quick_checks.get(row_type)
    if check is None:
        own = Row.__pydantic_decorators__
        decorators = row_type.__pydantic_decorators__
        plain = (
            decorators.field_validators.keys() == own.field_validators.keys()
            and decorators.model_validators.keys() == own.model_validators.keys()
            and not decorators.validators
            and not decorators.root_validators
        )
        schema = TypeAdapter(list[row_type]).core_schema  # type: ignore[valid-type]
        check = _QuickCheck(SchemaValidator(core_schema.any_schema()), derives_ids=plain)
        check.validator = SchemaValidator(check.transform(schema))
        _quick_checks[row_type] = check
    return check


def validate_rows(
    row_type: type[Row], records: Iterable[Mapping[str, Any] | Row]
) -> ValidationReport:
    """Validate every record as ``row_type``; one bad record never stops the others.

    Records may be mappings (as parsed from an API) or rows already of
    ``row_type``. Each problem is reported with the record's index in
    ``records`` and the field, so a caller can log, fix or drop exactly that
    record and still write the rest.

    Why one call per batch: pydantic-core validates a ``list[row_type]`` in
    Rust, reporting each bad item under its index, which saves the Python
    round trip per record, and the string checks run in Rust too
    (:func:`_quick_strings`). A record that call refuses is validated again
    by ``row_type`` alone, so its errors and messages are the row type's.
    """
    items = records if isinstance(records, list) else list(records)
    report = ValidationReport()
    if not items:
        return report
    # Rows of another type never reach pydantic (it would read their fields).
    foreign = [index for index, item in enumerate(items) if isinstance(item, Row) and not isinstance(item, row_type)]
    if foreign:
        wrong = set(foreign)
        for index in foreign:
            record = items[index]
            report.errors.append(
                RowError(
                    index,
                    None,
                    f"expected a {row_type.__name__} or a mapping, got a {type(record).__name__}",
                    record,
                )
            )
        positions = [index for index in range(len(items)) if index not in wrong]
        checked = _validate_batch(row_type, [items[index] for index in positions])
        report.valid = [ValidRow(positions[valid.index], valid.row) for valid in checked.valid]
        report.errors.extend(
            RowError(positions[error.index], error.field, error.message, error.value) for error in checked.errors
        )
        report.errors.sort(key=lambda error: error.index)  # stable: a record's own order stays
        return report
    return _validate_batch(row_type, items)


def _validate_batch(row_type: type[Row], items: list[Any]) -> ValidationReport:
    """Rows of ``items``: one quick call for the batch, the row type itself for what it refuses."""
    with collection_paused():
        report = ValidationReport()
        quick = _quick_check(row_type)
        try:
            rows = quick.validator.validate_python(items)
        except ValidationError as exc:
            refused = {int(detail["loc"][0]) for detail in exc.errors(include_url=False)}
            # The records the quick check passed are validated again as one list
            # (defaults such as ingested_at=now are computed again, close to the
            # first time); the others one by one, by the row type, for its messages.
            passed = [index for index in range(len(items)) if index not in refused]
            rows = []
            if passed:
                try:
                    rows = quick.validator.validate_python([items[index] for index in passed])
                except ValidationError:  # a validator that changed its mind: ask each record
                    refused.update(passed)
                    passed = []
        else:
            refused, passed = set(), list(range(len(items)))
        if len(passed) == len(items):
            refused.update(quick.finish(row_type, rows, items))
        else:
            refused.update(passed[position] for position in quick.finish(row_type, rows, [items[index] for index in passed]))
        found: dict[int, Row] = {index: row for index, row in zip(passed, rows) if index not in refused}
        if not refused:
            report.valid = [ValidRow(index, row) for index, row in enumerate(rows)]
            return report
        for index in sorted(refused):
            try:
                found[index] = row_type.model_validate(items[index])
            except ValidationError as exc:
                report.errors.extend(_row_errors(index, exc.errors(include_url=False)))
        report.valid = [ValidRow(index, found[index]) for index in sorted(found)]
        return report
