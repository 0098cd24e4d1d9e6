"""bqrepo's one JSON encoding: strict JSON, and reporting a bad value never fails."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import pytest

from bqrepo.json_encoding import report_json, to_json_text, wire_size


def strict(text: str) -> Any:
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))


@dataclasses.dataclass
class Point:
    at: dt.datetime
    value: float


def test_non_finite_numbers_are_strings_and_the_rest_is_plain_json() -> None:
    value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "text": "ñandú 🚀", "big": 2**64 - 1}
    text = to_json_text(value)
    assert strict(text) == {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "text": "ñandú 🚀", "big": 2**64 - 1}
    assert "ñandú" in text  # UTF-8, not \\u-escaped


def test_dataclasses_and_timestamps() -> None:
    point = Point(dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC), 1.5)
    assert strict(report_json([point])) == [{"at": "2024-03-01T12:00:00Z", "value": 1.5}]
    assert dt.datetime.fromisoformat(strict(report_json(point))["at"]) == point.at


def test_reporting_what_json_cannot_hold_never_fails() -> None:
    cycle: dict[str, Any] = {"ok": 1}
    cycle["self"] = cycle
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5_000):
        inner["a"] = {}
        inner = inner["a"]
    reported = strict(report_json({"cycle": cycle, "text": "a\ud800b", "deep": deep, "other": object(), "nan": math.nan}))
    assert reported["cycle"] == {"ok": 1, "self": "<circular reference>"}
    assert reported["text"] == "a\\ud800b"
    assert json.dumps(reported["deep"]).count("{") < 250 and "<nested too deep>" in json.dumps(reported["deep"])
    assert reported["other"].startswith("<object object") and reported["nan"] == "NaN"


def test_data_that_is_not_json_is_an_error_for_stored_values() -> None:
    with pytest.raises(ValueError, match="cannot encode as JSON"):
        to_json_text({"text": "a\ud800b"})


def test_wire_size_is_what_the_client_sends() -> None:
    assert wire_size({"t": "é"}) == len('{"t": "\\u00e9"}')
