"""Row types: validation, ids and the BigQuery row format."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from bqrepo import schema
from bqrepo.rows import (
    MAX_JSON_DEPTH,
    MAX_ROW_BYTES,
    ROW_TYPES,
    ComtradeObservation,
    EntityMentionRow,
    EventRow,
    FredObservation,
    Row,
    RowValidationError,
    WorldBankObservation,
    natural_id,
    validate_rows,
)

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
INJECTION = "x'); DROP TABLE events; -- \" `backtick` \\ %(p)s @p ${x} \n\t\u2603"

#: A minimal valid record per table.
MINIMAL: dict[str, dict[str, Any]] = {
    "events": {"mentioned_at": T0},
    "entity_mentions": {"entity_id": "ent-1", "mentioned_at": T0},
    "fred_indicators": {"series_id": "GDP", "date": dt.date(2024, 1, 1)},
    "un_comtrade": {
        "period": dt.date(2024, 1, 1),
        "reporter_code": "862",
        "commodity_code": "2709",
        "trade_flow": "X",
    },
    "world_bank": {
        "indicator_id": "NY.GDP.MKTP.CD",
        "date": dt.date(2020, 1, 1),
        "country_code": "VEN",
    },
}


def errors_of(row_type: type[Row], record: dict[str, Any]) -> dict[str | None, str]:
    report = validate_rows(row_type, [record])
    assert not report.valid
    return {error.field: error.message for error in report.errors}


# --- the row types and their tables -------------------------------------------------


def test_one_row_type_per_table() -> None:
    assert set(ROW_TYPES) == set(schema.metadata.tables)
    for name, row_type in ROW_TYPES.items():
        assert row_type.__table__ is schema.metadata.tables[name]
        assert set(row_type.model_fields) == {column.name for column in row_type.__table__.columns}


@pytest.mark.parametrize("table", sorted(MINIMAL))
def test_minimal_record_is_valid(table: str) -> None:
    row = ROW_TYPES[table].model_validate(MINIMAL[table])
    assert set(row.to_db_row()) == {column.name for column in row.__table__.columns}
    assert row.id


@pytest.mark.parametrize(
    ("table", "column"),
    [
        (table.name, column.name)
        for table in schema.metadata.sorted_tables
        for column in table.columns
        if not column.nullable and column.name != "id"
    ],
)
def test_not_null_columns_are_required(table: str, column: str) -> None:
    record = dict(MINIMAL[table])
    record.pop(column, None)
    assert column in errors_of(ROW_TYPES[table], record)
    assert column in errors_of(ROW_TYPES[table], {**MINIMAL[table], column: None})


@pytest.mark.parametrize(
    ("table", "column"),
    [
        (table.name, column.name)
        for table in schema.metadata.sorted_tables
        for column in table.columns
        if column.nullable and column.name not in ("created_at", "ingested_at")
    ],
)
def test_nullable_columns_accept_none(table: str, column: str) -> None:
    row = ROW_TYPES[table].model_validate({**MINIMAL[table], column: None})
    assert getattr(row, column) is None


def test_rows_are_immutable_and_refuse_unknown_fields() -> None:
    row = EventRow(mentioned_at=T0)
    with pytest.raises(ValidationError):
        row.title = "changed"  # type: ignore[misc]
    assert errors_of(EventRow, {"mentioned_at": T0, "titel": "typo"}) == {
        "titel": "Extra inputs are not permitted"
    }


def test_wrong_types_are_reported_per_field() -> None:
    errors = errors_of(EventRow, {"mentioned_at": "yesterday", "risk_score": "high", "title": 42})
    assert set(errors) == {"mentioned_at", "risk_score", "title"}


def test_lax_parsing_of_api_values() -> None:
    row = FredObservation(series_id="GDP", date="2024-01-01", value="1.25")  # type: ignore[arg-type]
    assert row.date == dt.date(2024, 1, 1)
    assert row.value == 1.25


# --- timestamps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "naive", [dt.datetime(2024, 1, 1, 12), "2024-01-01T12:00:00", "2024-01-01 12:00:00"]
)
def test_naive_datetimes_are_rejected(naive: Any) -> None:
    errors = errors_of(EventRow, {"mentioned_at": naive})
    assert "naive datetime" in errors["mentioned_at"]
    assert "does not assume UTC" in errors["mentioned_at"]


def test_naive_ingested_at_is_rejected_too() -> None:
    errors = errors_of(
        FredObservation, {**MINIMAL["fred_indicators"], "ingested_at": dt.datetime(2024, 1, 1)}
    )
    assert "naive datetime" in errors["ingested_at"]


def test_aware_datetimes_are_normalised_to_utc() -> None:
    caracas = dt.timezone(dt.timedelta(hours=-4))
    row = EventRow(mentioned_at=dt.datetime(2024, 1, 1, 20, 0, tzinfo=caracas))
    assert row.mentioned_at == dt.datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
    assert row.mentioned_at.utcoffset() == dt.timedelta(0)
    from_string = EventRow(mentioned_at="2024-01-01T20:00:00-04:00")  # type: ignore[arg-type]
    assert from_string.mentioned_at == row.mentioned_at


def test_ingested_at_defaults_to_utc_now_and_created_at_to_nothing() -> None:
    before = dt.datetime.now(UTC)
    fred = FredObservation(**MINIMAL["fred_indicators"])
    after = dt.datetime.now(UTC)
    assert before <= fred.ingested_at <= after
    # an event re-sent without created_at must be identical to the first copy
    assert EventRow(mentioned_at=T0).created_at is None


# --- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "inf"])
@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("events", "risk_score"),
        ("fred_indicators", "value"),
        ("un_comtrade", "value_usd"),
        ("world_bank", "value"),
    ],
)
def test_floats_must_be_finite(table: str, column: str, bad: Any) -> None:
    errors = errors_of(ROW_TYPES[table], {**MINIMAL[table], column: bad})
    assert errors == {column: "Input should be a finite number"}


# --- strings --------------------------------------------------------------------------


def test_a_string_too_large_for_bigquery_names_its_field() -> None:
    errors = errors_of(EventRow, {"mentioned_at": T0, "content": "x" * (MAX_ROW_BYTES + 1)})
    assert list(errors) == ["content"]
    assert "8,000,003 bytes as JSON" in errors["content"]


def test_size_is_counted_as_the_escaped_json_the_client_sends() -> None:
    # google-cloud-bigquery sends ASCII JSON: each snowman travels as 6 bytes (\u2603).
    snowmen = "\u2603" * (MAX_ROW_BYTES // 6 + 1)
    assert len(snowmen.encode("utf-8")) < MAX_ROW_BYTES
    assert "content" in errors_of(EventRow, {"mentioned_at": T0, "content": snowmen})
    fits = "\u2603" * (MAX_ROW_BYTES // 6 - 100)
    assert EventRow(mentioned_at=T0, content=fits).content == fits


def test_every_valid_row_fits_one_streaming_request() -> None:
    from bqrepo.writers.bigquery_stream import MAX_REQUEST_BYTES

    # The largest rows the types accept, in the costliest characters, still stream.
    emoji = "\U0001f600" * (MAX_ROW_BYTES // 12 - 200)  # 12 bytes each as JSON
    largest = [
        EventRow(mentioned_at=T0, content=emoji),
        EventRow(mentioned_at=T0, metadata={"text": '"' * (MAX_ROW_BYTES // 4 - 200)}),
    ]
    for row in largest:
        assert len(json.dumps(row.to_bigquery_row())) < MAX_REQUEST_BYTES - 1_000


def test_a_row_too_large_as_a_whole_is_rejected() -> None:
    third = "y" * (MAX_ROW_BYTES // 3 + 10)
    errors = errors_of(
        EventRow, {"mentioned_at": T0, "title": third, "content": third, "location": third}
    )
    assert list(errors) == [None]
    assert "row is" in errors[None] and "streamed" in errors[None]


def test_invalid_unicode_is_rejected() -> None:
    errors = errors_of(
        EntityMentionRow, {"entity_id": "e", "mentioned_at": T0, "context": "a\ud800b"}
    )
    assert "not valid Unicode" in errors["context"]


@pytest.mark.parametrize("column", ["entity_id", "id"])
def test_keys_must_not_be_empty(column: str) -> None:
    assert column in errors_of(EntityMentionRow, {**MINIMAL["entity_mentions"], column: ""})


# --- metadata -------------------------------------------------------------------------


def test_metadata_keeps_nested_json() -> None:
    metadata = {"tags": ["a", "b"], "score": 0.1, "n": 3, "ok": True, "none": None, "d": {"e": []}}
    row = EventRow(mentioned_at=T0, metadata=metadata)
    assert row.metadata == metadata
    assert json.loads(row.to_bigquery_row()["metadata"]) == metadata


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"when": dt.datetime(2024, 1, 1)}, "metadata.when: datetime"),
        ({"tags": {"a", "b"}}, "metadata.tags: set"),
        ({"deep": {"list": [1, object()]}}, "metadata.deep.list[1]: object"),
        ({"t": (1, 2)}, "metadata.t: tuple"),
        ({"x": math.nan}, "metadata.x: nan is not a finite number"),
        ({"x": [math.inf]}, "metadata.x[0]: inf is not a finite number"),
        ({"a": {1: 2}}, "metadata.a: key 1 is not a string"),
    ],
)
def test_metadata_must_be_json(metadata: Any, where: str) -> None:
    errors = errors_of(EventRow, {"mentioned_at": T0, "metadata": metadata})
    assert list(errors) == ["metadata"]
    assert errors["metadata"].startswith(where)


def test_metadata_keys_must_be_strings() -> None:
    errors = errors_of(EventRow, {"mentioned_at": T0, "metadata": {1: "int key"}})
    assert [field.split(".")[0] for field in errors if field] == ["metadata"]


def test_metadata_must_be_an_object() -> None:
    assert "metadata" in errors_of(EventRow, {"mentioned_at": T0, "metadata": [1, 2]})


def _nested(levels: int) -> dict[str, Any]:
    """A metadata object ``levels`` deep (the object itself is level 1)."""
    root: dict[str, Any] = {}
    inner = root
    for _ in range(levels - 1):
        inner["a"] = {}
        inner = inner["a"]
    return root


def _cyclic() -> dict[str, Any]:
    cycle: dict[str, Any] = {"ok": 1, "list": []}
    cycle["list"].append(cycle)
    return cycle


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        (_cyclic(), "metadata.list[0]: refers to a container it is inside"),
        (_nested(5_000), "metadata: nested more than 200 levels deep"),
        (_nested(MAX_JSON_DEPTH + 1), "metadata: nested more than 200 levels deep"),
        ({"n": 2**64}, "metadata.n: integer of 65 bits is outside BigQuery JSON's 64-bit range"),
        ({"n": -(2**63) - 1}, "metadata.n: integer of 64 bits is outside"),
        ({"n": 10**5000}, "metadata.n: integer of 16610 bits"),
        ({"k\ud800": 1}, "metadata: key 'k\\ud800': string is not valid Unicode"),
    ],
    ids=["cycle", "5000-deep", "201-deep", "2**64", "-2**63-1", "10**5000", "surrogate-key"],
)
def test_hostile_metadata_is_a_row_error_not_a_crash(metadata: Any, where: str) -> None:
    errors = errors_of(EventRow, {"mentioned_at": T0, "metadata": metadata})
    assert list(errors) == ["metadata"]
    assert errors["metadata"].startswith(where), errors["metadata"]


def test_metadata_at_the_depth_and_integer_limits_is_kept() -> None:
    deepest = _nested(MAX_JSON_DEPTH)
    row = EventRow(mentioned_at=T0, metadata={"deep": deepest["a"], "lo": -(2**63), "hi": 2**64 - 1})
    assert row.metadata == {"deep": deepest["a"], "lo": -(2**63), "hi": 2**64 - 1}
    assert json.loads(row.to_bigquery_row()["metadata"])["hi"] == 2**64 - 1
    shared = [1]  # the same list twice is not a cycle
    assert EventRow(mentioned_at=T0, metadata={"a": shared, "b": shared}).metadata == {"a": [1], "b": [1]}


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("events", "mentioned_at", "9999-12-31T23:00:00-05:00"),
        ("events", "created_at", "0001-01-01T00:00:00+05:00"),
        ("entity_mentions", "mentioned_at", dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
        ("fred_indicators", "ingested_at", "0001-01-01T00:00:00+05:00"),
    ],
)
def test_a_timestamp_that_overflows_in_utc_is_a_row_error(table: str, column: str, value: Any) -> None:
    errors = errors_of(ROW_TYPES[table], {**MINIMAL[table], column: value})
    assert list(errors) == [column]
    assert "outside the timestamp range once converted to UTC" in errors[column]


def test_errors_by_row_groups_every_problem_of_a_record() -> None:
    report = validate_rows(
        EventRow,
        [{"mentioned_at": "x", "risk_score": "nan"}, {"mentioned_at": T0}, {"id": "", "mentioned_at": T0}],
    )
    grouped = report.errors_by_row()
    assert list(grouped) == [0, 2]
    assert sorted(error.field for error in grouped[0]) == ["mentioned_at", "risk_score"]


# --- ids --------------------------------------------------------------------------------


def test_events_and_mentions_without_an_id_get_one_from_what_identifies_them() -> None:
    event = {"source_name": "Reuters", "source_url": "https://x/1", "title": "t", "mentioned_at": T0}
    first = EventRow.model_validate(event)
    # polled again later, with a new risk score: the same event
    again = EventRow.model_validate({**event, "risk_score": 0.7, "created_at": T0 + dt.timedelta(hours=1)})
    assert first.id == again.id and uuid.UUID(first.id).version == 5
    for name in EventRow.natural_key_fields:
        changed = T0 + dt.timedelta(microseconds=1) if name == "mentioned_at" else "other"
        assert EventRow.model_validate({**event, name: changed}).id != first.id, name
    # an aware time in another zone is the same instant, so the same id
    caracas = dt.timezone(dt.timedelta(hours=-4))
    assert EventRow.model_validate({**event, "mentioned_at": T0.astimezone(caracas)}).id == first.id

    mention = {"entity_id": "e", "event_id": first.id, "mentioned_at": T0, "context": "c"}
    assert EntityMentionRow.model_validate(mention).id == EntityMentionRow.model_validate(mention).id
    for name in EntityMentionRow.natural_key_fields:
        changed = T0 + dt.timedelta(seconds=1) if name == "mentioned_at" else "other"
        assert (
            EntityMentionRow.model_validate({**mention, name: changed}).id
            != EntityMentionRow.model_validate(mention).id
        ), name
    # None and "" are different key parts
    assert EntityMentionRow.model_validate({**mention, "context": None}).id != (
        EntityMentionRow.model_validate({**mention, "context": ""}).id
    )


def test_a_given_event_or_mention_id_is_kept() -> None:
    assert EventRow(id="app-42", mentioned_at=T0).id == "app-42"
    assert EntityMentionRow(id="m-1", entity_id="e", mentioned_at=T0).id == "m-1"
    assert "id" in errors_of(EventRow, {"id": "", "mentioned_at": T0})


ECONOMIC = [
    (FredObservation, {"series_id": "GDP", "date": dt.date(2024, 1, 1)}),
    (
        ComtradeObservation,
        {
            "period": dt.date(2024, 1, 1),
            "reporter_code": "862",
            "commodity_code": "2709",
            "trade_flow": "X",
        },
    ),
    (
        WorldBankObservation,
        {"indicator_id": "SP.POP.TOTL", "country_code": "VEN", "date": dt.date(2020, 1, 1)},
    ),
]


@pytest.mark.parametrize(("row_type", "key"), ECONOMIC)
def test_economic_ids_follow_the_natural_key(row_type: type[Row], key: dict[str, Any]) -> None:
    first = row_type.model_validate(
        {**key, "value": 1.0} if "value" in row_type.model_fields else key
    )
    later = row_type.model_validate({**key, "ingested_at": dt.datetime(2030, 1, 1, tzinfo=UTC)})
    assert first.id == later.id
    assert uuid.UUID(first.id).version == 5
    for name, value in key.items():
        changed = value + dt.timedelta(days=1) if isinstance(value, dt.date) else value + "0"
        assert row_type.model_validate({**key, name: changed}).id != first.id, name
    assert row_type.model_validate({**key, "id": first.id}).id == first.id


@pytest.mark.parametrize(("row_type", "key"), ECONOMIC)
def test_an_economic_id_that_disagrees_with_the_key_is_an_error(
    row_type: type[Row], key: dict[str, Any]
) -> None:
    errors = errors_of(row_type, {**key, "id": str(uuid.uuid4())})
    assert list(errors) == ["id"]
    assert "does not match the id derived from the natural key" in errors["id"]


def test_natural_id_is_stable_across_releases() -> None:
    # Stored rows depend on this value: a change here breaks de-duplication.
    assert natural_id("fred_indicators", "GDP", dt.date(2024, 1, 1)) == (
        FredObservation(series_id="GDP", date=dt.date(2024, 1, 1)).id
    )
    assert (
        natural_id("fred_indicators", "GDP", dt.date(2024, 1, 1))
        == "e51aa447-76de-5b08-91a5-6279d1203437"
    )


def test_natural_id_parts_cannot_run_together() -> None:
    assert natural_id("t", "a|b", "c") != natural_id("t", "a", "b|c")
    assert natural_id("t", "ab", "c") != natural_id("t", "a", "bc")
    # the table is part of the key: the same parts in two tables differ
    assert natural_id("fred_indicators", "X", dt.date(2020, 1, 1)) != natural_id(
        "world_bank", "X", dt.date(2020, 1, 1)
    )


def test_an_invalid_key_field_does_not_hide_behind_the_id() -> None:
    errors = errors_of(FredObservation, {"series_id": "GDP", "date": "not a date", "id": "x"})
    assert list(errors) == ["date"]


# --- conversions ------------------------------------------------------------------------


def test_to_bigquery_row_format() -> None:
    row = EventRow(
        id="e1",
        mentioned_at=T0,
        created_at=dt.datetime(2024, 3, 1, 13, 0, tzinfo=UTC),
        risk_score=0.1,
        metadata={"source": INJECTION, "n": [1, 2.5]},
        title=INJECTION,
    )
    out = row.to_bigquery_row()
    assert list(out) == [column.name for column in schema.events.columns]
    assert out["mentioned_at"] == "2024-03-01T12:30:15.123456+00:00"
    assert out["created_at"] == "2024-03-01T13:00:00+00:00"
    assert out["risk_score"] == 0.1
    assert out["title"] == INJECTION
    assert out["content"] is None
    assert isinstance(out["metadata"], str)
    assert json.loads(out["metadata"]) == {"source": INJECTION, "n": [1, 2.5]}
    assert json.loads(json.dumps(out)) == out  # JSON-ready
    load = row.to_bigquery_row(for_load_job=True)
    assert load["metadata"] == {"source": INJECTION, "n": [1, 2.5]}
    assert {k: v for k, v in load.items() if k != "metadata"} == {
        k: v for k, v in out.items() if k != "metadata"
    }


def test_to_bigquery_row_dates() -> None:
    row = ComtradeObservation(**MINIMAL["un_comtrade"], value_usd=1e12)
    out = row.to_bigquery_row()
    assert out["period"] == "2024-01-01"
    assert out["value_usd"] == 1e12
    assert out["ingested_at"].endswith("+00:00")


def test_to_db_row_keeps_python_values() -> None:
    row = EventRow(mentioned_at=T0, metadata={"a": 1}, title=INJECTION)
    db = row.to_db_row()
    assert db["mentioned_at"] == T0
    assert db["metadata"] == {"a": 1}
    assert db["title"] == INJECTION
    assert EventRow.model_validate(db) == row


# --- batches --------------------------------------------------------------------------


def test_a_batch_reports_every_bad_row_and_keeps_the_good_ones() -> None:
    records = [
        {"entity_id": "a", "mentioned_at": T0},  # 0 good
        {"entity_id": "", "mentioned_at": dt.datetime(2024, 1, 1)},  # 1 two errors
        {"entity_id": "c", "mentioned_at": T0, "context": INJECTION},  # 2 good
        {"mentioned_at": T0},  # 3 missing
        {"entity_id": "e", "mentioned_at": T0},  # 4 good
        "not a mapping",  # 5
    ]
    report = validate_rows(EntityMentionRow, records)
    assert not report.ok
    assert [valid.index for valid in report.valid] == [0, 2, 4]
    assert [row.entity_id for row in report.rows] == ["a", "c", "e"]  # type: ignore[attr-defined]
    assert report.rows[1].context == INJECTION  # type: ignore[attr-defined]
    found = {(error.index, error.field) for error in report.errors}
    assert found == {(1, "entity_id"), (1, "mentioned_at"), (3, "entity_id"), (5, None)}
    bad = next(e for e in report.errors if e.index == 1 and e.field == "mentioned_at")
    assert bad.value == dt.datetime(2024, 1, 1)
    missing = next(e for e in report.errors if e.index == 3)
    assert missing.message == "Field required" and missing.value is None
    assert str(bad).startswith("row 1, field 'mentioned_at': naive datetime")


def test_a_batch_takes_rows_and_refuses_other_row_types() -> None:
    event = EventRow(mentioned_at=T0)
    mention = EntityMentionRow(entity_id="e", mentioned_at=T0)
    report = validate_rows(EventRow, [event, mention])
    assert report.rows == [event]
    assert [(e.index, e.field) for e in report.errors] == [(1, None)]
    assert "expected a EventRow" in report.errors[0].message


def test_raise_for_errors_lists_rows_and_fields() -> None:
    report = validate_rows(
        EventRow, [{"mentioned_at": T0}, {"risk_score": math.nan, "mentioned_at": T0}]
    )
    with pytest.raises(RowValidationError) as caught:
        report.raise_for_errors()
    assert "1 invalid row(s)" in str(caught.value)
    assert "row 1, field 'risk_score'" in str(caught.value)
    assert caught.value.errors == report.errors
    validate_rows(EventRow, [{"mentioned_at": T0}]).raise_for_errors()


def test_a_large_batch_is_checked_to_the_end() -> None:
    records: list[dict[str, Any]] = [
        {"mentioned_at": T0, "risk_score": float(i)} for i in range(1000)
    ]
    for i in range(0, 1000, 100):
        records[i] = {"mentioned_at": T0, "risk_score": math.inf}
    report = validate_rows(EventRow, records)
    assert len(report.valid) == 990
    assert [error.index for error in report.errors] == list(range(0, 1000, 100))


def test_injection_strings_are_plain_data_in_every_string_field() -> None:
    for table in schema.metadata.sorted_tables:
        row_type = ROW_TYPES[table.name]
        strings = {
            column.name: INJECTION
            for column in table.columns
            if isinstance(column.type, sa.String) and column.name != "id"
        }
        row = row_type.model_validate({**MINIMAL[table.name], **strings})
        out = row.to_bigquery_row()
        assert all(out[name] == INJECTION for name in strings), table.name
