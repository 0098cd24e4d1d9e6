"""The write path's fast paths give exactly what the slow, obvious code gives.

Issue 13 made validation, encoding and ingest faster with shortcuts: one
pydantic call per batch, a JSON check that asks the precise one only when
unsure, the streaming size derived from the insertId's text, pydantic-core's
JSON parser in front of ``json.loads``, the collector paused during a batch.
Each test below pits a shortcut against the straightforward computation it
replaces, on inputs chosen to take both branches.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bqrepo.cli.files import _parse_json
from bqrepo.json_encoding import wire_size
from bqrepo.rows import (
    MAX_JSON_DEPTH,
    NATURAL_KEY_NAMESPACE,
    EntityMentionRow,
    EventRow,
    FredObservation,
    Row,
    RowError,
    _json_problem,
    _plainly_json,
    collection_paused,
    natural_id,
    validate_rows,
)
from bqrepo.writers.bigquery_stream import _encoded, insert_id

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)


def one_by_one(row_type: type[Row], records: list[Any]) -> tuple[list[tuple[int, Row]], list[RowError]]:
    """validate_rows as it was: model_validate per record (the reference)."""
    valid: list[tuple[int, Row]] = []
    errors: list[RowError] = []
    for index, record in enumerate(records):
        if isinstance(record, row_type):
            valid.append((index, record))
        elif isinstance(record, Row):
            errors.append(RowError(index, None, f"expected a {row_type.__name__} or a mapping, got a {type(record).__name__}", record))
        else:
            try:
                valid.append((index, row_type.model_validate(record)))
            except ValidationError as exc:
                for detail in exc.errors(include_url=False):
                    location = ".".join(str(part) for part in detail["loc"]) or None
                    value = None if detail["type"] == "missing" else detail.get("input")
                    errors.append(RowError(index, location, detail["msg"].removeprefix("Value error, "), value))
    return valid, errors


def test_batch_validation_reports_what_per_record_validation_reported() -> None:
    good = {"title": "ok", "mentioned_at": T0, "metadata": {"a": [1, 2.5, None, "é"]}}
    instance = EventRow(title="row", mentioned_at=T0)
    records: list[Any] = [
        good,
        {"title": "naive", "mentioned_at": dt.datetime(2024, 3, 1)},
        instance,
        EntityMentionRow(entity_id="e", mentioned_at=T0),  # a row of another table
        "not a mapping",
        {"mentioned_at": T0, "risk_score": math.nan, "metadata": {"deep": [[["\ud800"]]]}, "surprise": 1},
        {"title": "x" * 10, "mentioned_at": "2024-03-01T10:00:00+02:00", "id": "given"},
        {"title": "long " * 140_000, "mentioned_at": T0},  # over the quick check's length, fits a request
        {"title": "x", "source_url": "\udfff", "mentioned_at": T0, "id": ""},
        {},
        good,
    ]
    report = validate_rows(EventRow, records)
    valid, errors = one_by_one(EventRow, records)
    assert report.errors == errors
    assert [(item.index, item.row) for item in report.valid] == [(index, row) for index, row in valid]
    assert report.valid[1].row is instance
    assert [item.index for item in report.valid] == [0, 2, 6, 7, 10]
    assert validate_rows(EventRow, iter(records)).errors == errors  # any iterable
    assert validate_rows(EventRow, []).ok


def test_batch_validation_of_good_records_only() -> None:
    records = [{"entity_id": f"e{i}", "mentioned_at": T0 + dt.timedelta(seconds=i)} for i in range(50)]
    report = validate_rows(EntityMentionRow, records)
    assert report.ok and report.rows == [row for _, row in one_by_one(EntityMentionRow, records)[0]]


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=5),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(0, 3)), inner, max_size=4),
        st.tuples(inner),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_the_quick_json_check_never_accepts_what_the_precise_one_refuses(value: Any) -> None:
    if _plainly_json(value):
        assert _json_problem(value, "metadata") is None


def test_the_quick_json_check_accepts_the_common_case_and_defers_the_rest() -> None:
    assert _plainly_json({"i": 1, "tags": ["a", "é", None, 2.5, True], "n": {"x": []}})
    shared: list[Any] = [1]
    deep: Any = {}
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = {"d": deep}
    for unsure in ({"a": shared, "b": shared}, {"a": math.inf}, {1: 2}, {"a": "\ud800"}, {"a": (1,)}, {"a": 2**64}, deep):
        assert not _plainly_json(unsure)
    assert _json_problem({"a": shared, "b": shared}, "m") is None  # shared, not a cycle: still valid
    assert EventRow(mentioned_at=T0, metadata={"a": shared, "b": shared}).metadata == {"a": [1], "b": [1]}


@pytest.mark.parametrize(
    "key",
    [("GDP", dt.date(2024, 1, 1)), ("é\u2603", -0.0, 0.0, True, None, 3), (T0, "a|b"), ()],
)
def test_natural_id_is_uuid5_of_the_canonical_key(key: tuple[Any, ...]) -> None:
    parts = ["t", *(part.isoformat() if isinstance(part, dt.date) else 0.0 if part == 0 and isinstance(part, float) else part for part in key)]
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    assert natural_id("t", *key) == str(uuid.uuid5(NATURAL_KEY_NAMESPACE, canonical))


def stream_rows() -> list[Row]:
    return [
        EventRow(title="plain", mentioned_at=T0, risk_score=0.1, metadata={"i": 1, "t": ["a", "b"]}),
        EventRow(title="é \u2603 \U0001f600", content='quote " back \\ nl \n tab \t', mentioned_at=T0),
        EventRow(mentioned_at=T0),
        FredObservation(series_id="GDP", date=dt.date(2024, 1, 1), value=1e16),
        EventRow.model_construct(id="odd", mentioned_at=None, title=["a", {"b": 1}], risk_score=math.nan),
    ]


def test_streaming_sizes_and_insert_ids_match_the_client_encoding() -> None:
    rows = stream_rows()
    for row, (row_id, data, size) in zip(rows, _encoded(rows), strict=True):
        assert data == row.to_bigquery_row() or row.risk_score != row.risk_score  # NaN != NaN
        assert size == wire_size(data) == len(json.dumps(data))
        assert row_id == insert_id(data)


def test_parse_json_reads_what_json_loads_reads() -> None:
    lines = [
        '{"a": 1, "b": [1.5, -0.0, 1e400, null, true], "c": "\\u00e9\\ud83d\\ude00"}',
        '{"a": "\\ud800"}',  # a lone surrogate: pydantic-core refuses it, json.loads keeps it
        '{"a": NaN, "a": 2}',
        '{"n": ' + "[" * 300 + "]" * 300 + "}",
        '{"big": 123456789012345678901234567890}',
    ]
    for line in lines:
        parsed, expected = _parse_json(line), json.loads(line)
        assert json.dumps(parsed) == json.dumps(expected), line
    for bad in ['{"a": 1', '{"a": 1} x', "", '{"a": ' + "9" * 5000 + "}"]:
        with pytest.raises(ValueError) as caught:
            _parse_json(bad)
        assert str(caught.value).startswith(("not valid JSON: ", "not readable JSON: "))
    with pytest.raises(ValueError, match=r"^not valid JSON: Expecting ',' delimiter at column 8$"):
        _parse_json('{"a": 1')


def test_the_collector_pause_restores_the_collector() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()  # disabled by the caller: left so
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_natural_id_text_from_pydantic_core_is_the_frozen_encoding() -> None:
    """natural_id hashes pydantic-core's to_json of float-free keys: byte for byte json.dumps's."""
    from pydantic_core import to_json

    text = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code < 0xE000)
    parts = ["t", text, 1, -(2**63), 2**64 - 1, True, False, None]
    assert to_json(parts) == json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def test_batch_quick_check_gives_what_the_row_type_gives() -> None:
    """Timestamps in other zones, ids, deep, cyclic and wide JSON: batch and one-by-one agree."""
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    deep: dict[str, Any] = {}
    level = deep
    for _ in range(150):  # past the quick check's nesting, inside MAX_JSON_DEPTH
        level["a"] = {}
        level = level["a"]
    plus_five = dt.timezone(dt.timedelta(hours=5))
    records: list[Any] = [
        {"mentioned_at": "2024-03-01T05:00:00+05:00", "title": "zoned"},
        {"mentioned_at": dt.datetime(2024, 3, 1, 5, tzinfo=plus_five), "id": "given"},
        {"mentioned_at": "9999-12-31T23:00:00-05:00"},
        {"mentioned_at": dt.datetime(2024, 3, 1)},
        {"mentioned_at": T0, "metadata": deep},
        {"mentioned_at": T0, "metadata": cyclic},
        {"mentioned_at": T0, "metadata": {"big": 2**64, "ok": 2**64 - 1, "f": 1.0, "b": True}},
        {"mentioned_at": T0, "metadata": {"x": "y" * 2_000_000}},
        {"mentioned_at": T0, "content": "z" * 700_000},
    ]
    report = validate_rows(EventRow, records)
    valid, errors = one_by_one(EventRow, records)
    assert [(v.index, v.row) for v in report.valid] == valid
    assert report.errors == errors
    assert {error.index for error in errors} == {2, 3, 5, 6}
    for _, row in valid:
        assert row.mentioned_at.tzinfo is UTC
    fred = [{"series_id": "GDP", "date": "2024-01-01", "value": 1.0}, {"series_id": "GDP", "date": "2024-01-01", "id": "x"}]
    report = validate_rows(FredObservation, fred)
    reference = one_by_one(FredObservation, fred)
    assert [(v.index, v.row.id) for v in report.valid] == [(index, row.id) for index, row in reference[0]]
    assert report.errors == reference[1] and len(report.errors) == 1  # a given id that is not the derived one
