"""Cost of the repositories' argument checks (not a test).

    .venv/bin/python benchmarks/bench_arguments.py

Times the checks ``EventRepository.recent`` and
``EntityMentionRepository.trending`` run before a query (two timestamps,
two text filters, a limit; metric, half-life, as_of, cutoff window), and,
for comparison, pydantic's ``validate_call`` on a function with the same
constrained signature. Results are recorded in docs/queries.md.
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AwareDatetime, Field, validate_call

from bqrepo.repositories._common import aware, earlier, optional_text, positive_int, positive_timedelta

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 8, tzinfo=UTC)


def recent_checks() -> None:
    aware("start", START)
    aware("end", END)
    optional_text("event_type", "protest")
    optional_text("source_name", None)
    positive_int("limit", 100)


def trending_checks() -> None:
    positive_timedelta("half_life", timedelta(days=7))
    earlier(aware("as_of", END), timedelta(days=70))
    positive_int("limit", 20)


@validate_call
def recent_pydantic(
    start: AwareDatetime,
    end: AwareDatetime,
    event_type: str | None = None,
    source_name: str | None = None,
    limit: Annotated[int, Field(ge=1, le=2**63 - 1)] = 100,
) -> None:
    return None


def main() -> None:
    runs = 200_000
    for name, call in (
        ("recent: bqrepo checks", recent_checks),
        ("trending: bqrepo checks", trending_checks),
        ("recent: pydantic validate_call", lambda: recent_pydantic(START, END, "protest", None, 100)),
    ):
        seconds = min(timeit.repeat(call, number=runs, repeat=5)) / runs
        print(f"{name:34s} {seconds * 1e6:6.2f} µs per call")


if __name__ == "__main__":
    main()
