"""Typed rows: one pydantic model per table, validated before anything is written.

Why pydantic (v2): field-level validation with error locations, so a bad row
in a batch is reported by index *and* field; lax parsing of what polled APIs
return ("1.5" becomes 1.5); and a well-kept, fast core. Each model knows its
table (``Row.__table__``), and :data:`ROW_TYPES` maps table names to models.

What every row guarantees (see docs/writing.md):

* required fields mirror the NOT NULL columns of :mod:`bqrepo.schema`;
* timestamps are timezone-aware and stored as UTC. A *naive* datetime is
  rejected, never assumed to be UTC: a Celery task that forgot its time zone
  should fail loudly, not shift every event by hours;
* floats are finite (no NaN, no infinity: BigQuery's JSON and most readers
  cannot carry them);
* strings are valid Unicode and fit a BigQuery streaming request; a whole
  row stays under :data:`MAX_ROW_BYTES` as the JSON the client sends;
* ``metadata`` is a JSON object made of JSON values only;
* ids: a row without an id gets a UUID derived from its natural key
  (:func:`natural_id`), so the same observation built again (a polling
  overlap, a retried task) has the same id and read-side de-duplication
  collapses the copies. Events and mentions keep an id the application
  gives (its own identity, e.g. the Django primary key); giving an economic
  row an id that differs from the derived one is an error.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, NamedTuple

import sqlalchemy as sa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    JsonValue,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from bqrepo import schema
from bqrepo.errors import BqrepoError
from bqrepo.json_encoding import to_json_text, wire_size
from bqrepo.timeunits import utc_now

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_ROW_BYTES",
    "NATURAL_KEY_NAMESPACE",
    "ROW_TYPES",
    "ComtradeObservation",
    "EconomicRow",
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


def _short_repr(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _json_object(value: Any, handler: ValidatorFunctionWrapHandler) -> dict[str, JsonValue]:
    """Accept a JSON object of JSON values only, with finite numbers and valid Unicode.

    :func:`_json_problem` runs first: it names the offending path, and it
    stops cycles and deep nesting before pydantic's own recursive check
    (which would raise ``RecursionError`` or a nameless error for them).
    The handler then makes the row's own copy.
    """
    if not isinstance(value, dict):
        raise ValueError("metadata must be a JSON object (a dict with string keys)")
    if problem := _json_problem(value, "metadata"):
        raise ValueError(problem)
    checked: dict[str, JsonValue] = handler(value)
    return checked


BQString = Annotated[str, AfterValidator(_fits_bigquery)]
#: A string that must not be empty: ids and the parts of a series key.
Key = Annotated[str, Field(min_length=1), AfterValidator(_fits_bigquery)]
UtcTimestamp = Annotated[dt.datetime, AfterValidator(_aware_utc)]
JsonObject = Annotated[dict[str, JsonValue], WrapValidator(_json_object)]


def natural_id(table: str, *key: str | dt.date | None) -> str:
    """The deterministic id of a row: uuid5 over its table and natural key.

    The key is encoded canonically as a JSON array ``[table, part, ...]`` with
    dates and (UTC) timestamps in ISO form and ``None`` as ``null``, so parts
    cannot run into each other ("a|b" + "c" never equals "a" + "b|c") and the
    id does not depend on Python's ``str()``.
    """
    parts = [table, *(part.isoformat() if isinstance(part, dt.date) else part for part in key)]
    # Not bqrepo.json_encoding: this text is hashed into stored ids, so its
    # exact bytes are frozen (pinned by a test) and must never follow a change
    # in the output encoding.
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return str(uuid.uuid5(NATURAL_KEY_NAMESPACE, canonical))


# --------------------------------------------------------------------------
# Row types
# --------------------------------------------------------------------------


_PLAIN, _TEMPORAL, _JSON = "plain", "temporal", "json"


def _kind(column: sa.Column[Any]) -> str:
    if isinstance(column.type, sa.JSON):
        return _JSON
    if isinstance(column.type, (sa.TIMESTAMP, sa.Date, sa.DateTime)):
        return _TEMPORAL
    return _PLAIN


class Row(BaseModel):
    """Base of every row type: immutable, no unknown fields, knows its table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    __table__: ClassVar[sa.Table]
    #: The fields that identify a row; an id-less row's id is derived from them.
    natural_key_fields: ClassVar[tuple[str, ...]]
    #: Whether a given id must equal the derived one (economic rows) or is kept.
    id_must_match_key: ClassVar[bool] = False
    #: (column name, kind) in table order, computed once per row type.
    _columns: ClassVar[tuple[tuple[str, str], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if table is not None:
            # str(): SQLAlchemy names are ``quoted_name``, a str subclass that
            # pydantic-core's JSON encoder serialises about 10x slower as a key.
            cls._columns = tuple((str(column.name), _kind(column)) for column in table.columns)

    @field_validator("id", mode="after", check_fields=False)
    @classmethod
    def _derive_id(cls, given: str | None, info: ValidationInfo) -> str | None:
        # Subclasses declare ``id`` after their key fields, so info.data holds them.
        if any(name not in info.data for name in cls.natural_key_fields):
            return given  # a key field failed validation and is reported itself
        if given is not None and not cls.id_must_match_key:
            return given
        derived = natural_id(cls.__table__.name, *(info.data[name] for name in cls.natural_key_fields))
        if given is not None and given != derived:
            raise ValueError(
                f"id {given!r} does not match the id derived from the natural key "
                f"{cls.natural_key_fields} ({derived!r}); omit id for economic rows"
            )
        return derived

    @model_validator(mode="after")
    def _fits_one_request(self) -> Row:
        # Cheap bound first (an escaped character is at most 12 bytes, a JSON
        # column is escaped twice, other values take a few dozen); encode the
        # row only when it might be too big.
        approx = 0
        for name, kind in self._columns:
            value = getattr(self, name)
            if isinstance(value, str):
                approx += 12 * len(value)
            elif kind == _JSON and value is not None:
                approx += 2 * wire_size(value)
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
        return {name: getattr(self, name) for name, _ in self._columns}

    def to_bigquery_row(self, *, for_load_job: bool = False) -> dict[str, Any]:
        """A JSON-ready dict for BigQuery, keyed by column in table order.

        Timestamps become ISO-8601 strings in UTC (``+00:00``), dates ISO
        dates. A JSON column is sent as a JSON *string* for streaming
        (``insertAll`` expects one), and as the JSON value itself for load
        jobs, where a string would be stored as a JSON string rather than
        parsed.
        """
        out: dict[str, Any] = {}
        for name, kind in self._columns:
            value = getattr(self, name)
            if value is None or kind == _PLAIN:
                out[name] = value
            elif kind == _TEMPORAL:
                out[name] = value.isoformat()
            else:
                out[name] = value if for_load_job else to_json_text(value)
        return out


#: Derived from the natural key when not given (see :meth:`Row._derive_id`);
#: None only until validated.
RowId = Annotated[Key | None, Field(default=None, validate_default=True)]


class EventRow(Row):
    """A news event with its risk score (table ``events``).

    Without an ``id``, the id is derived from what the source said (source,
    URL, title and time), so the same article polled twice is one event.
    Pass ``id`` when the source has its own identity (a Django primary key,
    a feed's guid), or when distinct events may share all four fields.
    """

    __table__ = schema.events
    natural_key_fields = ("source_name", "source_url", "title", "mentioned_at")

    title: BQString | None = None
    content: BQString | None = None
    source_url: BQString | None = None
    source_name: BQString | None = None
    event_type: BQString | None = None
    location: BQString | None = None
    risk_score: FiniteFloat | None = None
    severity: BQString | None = None
    mentioned_at: UtcTimestamp
    #: When the application created or last revised the event. Read-side
    #: de-duplication keeps the copy with the newest ``created_at``, so set it
    #: when revising an event. No default: a re-polled copy left without one
    #: is identical to the first, so re-ingesting it changes no query result.
    created_at: UtcTimestamp | None = None
    metadata: JsonObject | None = None
    id: RowId


class EntityMentionRow(Row):
    """A mention of a PostgreSQL entity in an event (table ``entity_mentions``).

    Without an ``id``, the id is derived from the entity, the event, the time
    and the context, so a mention extracted again is the same mention.
    """

    __table__ = schema.entity_mentions
    natural_key_fields = ("entity_id", "event_id", "mentioned_at", "context")

    entity_id: Key
    event_id: BQString | None = None
    mentioned_at: UtcTimestamp
    context: BQString | None = None
    id: RowId


class EconomicRow(Row):
    """An observation identified by its natural key.

    ``id`` is derived from :attr:`natural_key_fields` by :func:`natural_id`.
    It may be passed (rows read back from the database carry it) but must
    then equal the derived id: a different one would defeat de-duplication.
    ``ingested_at`` says when the observation was fetched; on read the newest
    copy of an id wins, which is how a revised value replaces an old one.
    """

    id_must_match_key = True


#: When an observation was fetched (default: now, UTC).
IngestedAt = Annotated[UtcTimestamp, Field(default_factory=utc_now)]
class FredObservation(EconomicRow):
    """One FRED series value on one date (table ``fred_indicators``)."""

    __table__ = schema.fred_indicators
    natural_key_fields = ("series_id", "date")

    series_id: Key
    date: dt.date
    value: FiniteFloat | None = None
    series_name: BQString | None = None
    units: BQString | None = None
    ingested_at: IngestedAt
    id: RowId


class ComtradeObservation(EconomicRow):
    """One UN Comtrade trade value (table ``un_comtrade``)."""

    __table__ = schema.un_comtrade
    natural_key_fields = ("period", "reporter_code", "commodity_code", "trade_flow")

    period: dt.date
    reporter_code: Key
    commodity_code: Key
    trade_flow: Key
    value_usd: FiniteFloat | None = None
    ingested_at: IngestedAt
    id: RowId


class WorldBankObservation(EconomicRow):
    """One World Bank indicator value for one country and date (table ``world_bank``)."""

    __table__ = schema.world_bank
    natural_key_fields = ("indicator_id", "country_code", "date")

    indicator_id: Key
    date: dt.date
    value: FiniteFloat | None = None
    country_code: Key
    ingested_at: IngestedAt
    id: RowId


ROW_TYPES: dict[str, type[Row]] = {
    row_type.__table__.name: row_type
    for row_type in (
        EventRow,
        EntityMentionRow,
        FredObservation,
        ComtradeObservation,
        WorldBankObservation,
    )
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


def _row_errors(index: int, error: ValidationError) -> Iterable[RowError]:
    for detail in error.errors(include_url=False):
        location = ".".join(str(part) for part in detail["loc"]) or None
        value = None if detail["type"] == "missing" else detail.get("input")
        message = detail["msg"].removeprefix("Value error, ")
        yield RowError(index=index, field=location, message=message, value=value)


def validate_rows(
    row_type: type[Row], records: Iterable[Mapping[str, Any] | Row]
) -> ValidationReport:
    """Validate every record as ``row_type``; one bad record never stops the others.

    Records may be mappings (as parsed from an API) or rows already of
    ``row_type``. Each problem is reported with the record's index in
    ``records`` and the field, so a caller can log, fix or drop exactly that
    record and still write the rest.
    """
    report = ValidationReport()
    for index, record in enumerate(records):
        if isinstance(record, row_type):
            report.valid.append(ValidRow(index, record))
            continue
        if isinstance(record, Row):
            report.errors.append(
                RowError(
                    index,
                    None,
                    f"expected a {row_type.__name__} or a mapping, got a {type(record).__name__}",
                    record,
                )
            )
            continue
        try:
            report.valid.append(ValidRow(index, row_type.model_validate(record)))
        except ValidationError as exc:
            report.errors.extend(_row_errors(index, exc))
    return report
