"""The command line never shows a traceback for user input, and always shows one for a bug (issue 10).

In-process through Typer's runner where that is the same code path (fast),
through the real ``bqrepo`` process where the operating system matters: a
non-UTF-8 byte in ``argv``, a closed pipe, an environment variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import repository_data as data
from bqrepo.cli import app
from bqrepo.cli.errors import BUG_REPORT, friendly
from bqrepo.engine import create_engine
from bqrepo.migrate import upgrade
from bqrepo.settings import ConfigurationError, Settings, validate_dataset_id, validate_location, validate_project_id
from test_arguments import PAYLOADS, fingerprint

BQREPO = str(Path(sys.executable).with_name("bqrepo"))
SETTINGS_VARS = ("BQREPO_URL", "BQREPO_DUCKDB_PATH", "BIGQUERY_EMULATOR_HOST", "GCP_PROJECT_ID", "BIGQUERY_DATASET")


def _env(settings: Settings) -> dict[str, str]:
    env = {key: "" for key in SETTINGS_VARS} | {"COLUMNS": "200"}
    if settings.backend == "duckdb":
        return env | {"BQREPO_DUCKDB_PATH": str(settings.duckdb_path)}
    return env | {"BQREPO_URL": str(settings.url), "BIGQUERY_EMULATOR_HOST": str(settings.emulator_host)}


@pytest.fixture(scope="module")
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Settings]]:
    """A migrated database with the shared test dataset, per backend, built on first use."""
    cache: dict[str, Settings] = {}

    def get(backend: str) -> Settings:
        if backend not in cache:
            if backend == "duckdb":
                settings = Settings(duckdb_path=str(tmp_path_factory.mktemp("cli") / "cli.duckdb"))
            else:
                standin = request.getfixturevalue("standin")
                dataset = f"t_{uuid.uuid4().hex[:12]}"
                settings = Settings(project_id=standin.project, dataset=dataset,
                                    url=f"bigquery://{standin.project}/{dataset}", emulator_host=standin.host)
            upgrade(settings)
            engine = create_engine(settings)
            data.load(engine, data.generate())
            engine.dispose()
            cache[backend] = settings
        return cache[backend]

    yield get


def invoke(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=_env(settings))


def assert_one_error_line(result: Any, *fragments: str) -> None:
    output = result.output
    assert result.exit_code == 1, output
    assert "Traceback" not in output, output
    assert output.count("error:") == 1 and output.lstrip().startswith("error:"), output
    for fragment in fragments:
        assert fragment in output, output


def assert_data(result: Any) -> None:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "error:" not in result.output, result.output


# --- the cases -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "-inf"])
def test_half_life_that_is_no_number_of_days(databases: Callable[[str], Settings], value: str) -> None:
    result = invoke(databases("duckdb"), "trending", "--half-life", value)
    assert result.exit_code in (1, 2), result.output  # 2: click's own range check (a usage error)
    assert "Traceback" not in result.output and "--half-life" in result.output, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["trending", "--as-of", "0001-01-01"],
        ["trending", "--metric", "risk", "--as-of", "9999-12-31"],
        ["trending", "--metric", "risk", "--as-of", "0001-01-01T00:00:00Z", "--half-life", "999999999"],
        ["recent", "--until", "0001-01-03"],
        ["risk-trends", "--since", "0001-01-01", "--until", "9999-12-31T23:59:59", "--bucket", "YEAR"],
        ["series", "--since", "2030-01-01"],
        ["series", "GDPC1", "--since", "2030-01-01"],
    ],
)
def test_extreme_dates_are_answered(databases: Callable[[str], Settings], args: list[str]) -> None:
    result = invoke(databases("duckdb"), *args)
    assert_data(result)
    assert "--until" not in result.output  # never an --until the user did not type


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["recent", "--event-type", "\udcff"], ["--event-type: ", "lone surrogate"]),
        (["recent", "--source", "\udcff"], ["--source: ", "lone surrogate"]),
        (["risk-trends", "--event-type", "x\udcffy"], ["--event-type: ", "lone surrogate"]),
        (["series", "GDPC1", "\udcff"], ["SERIES_IDS: ", "lone surrogate"]),
        (["risk-trends", "--bucket", "99999999999999999999 seconds"], ["--bucket: ", "315,537,897,600 seconds"]),
        (["risk-trends", "--bucket", "99999999999999999999 seconds", "--fill-gaps"], ["--bucket: "]),
        (["risk-trends", "--since", "0001-01-01", "--bucket", "7 days"], ["--since: ", "begins before 0001-01-01"]),
        (["recent", "--since", "2026-02-30"], ["--since", "not a valid date", "day is out of range for month"]),
        (["recent", "--since", "2026-13-01"], ["not a valid date", "month must be in 1..12"]),
        (["recent", "--since", "yesterday-ish"], ["is not a date or time; use ISO 8601"]),
        (["series", "--until", "2026-02-30"], ["--until", "day is out of range for month"]),
        (["trending", "--as-of", "0001-01-01T00:00:00+05:00"], ["--as-of", "outside the supported range"]),
        (["recent", "--since", "2030-01-01"], ["--since (2030-01-01 00:00) must be before now"]),
    ],
)
def test_user_mistakes_are_one_line(databases: Callable[[str], Settings], args: list[str], fragments: list[str]) -> None:
    assert_one_error_line(invoke(databases("duckdb"), *args), *fragments)


def test_series_help_states_the_real_default() -> None:
    result = CliRunner().invoke(app, ["series", "--help"], env={"COLUMNS": "200"})
    assert "Default: no end" in result.output and "Default: today" not in result.output


def test_a_non_utf8_byte_on_the_real_command_line(databases: Callable[[str], Settings]) -> None:
    env = {**os.environ, **_env(databases("duckdb"))}
    done = subprocess.run([BQREPO.encode(), b"recent", b"--event-type", b"\xff"], env=env, capture_output=True, timeout=120)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1 and "Traceback" not in stderr, stderr
    assert stderr.count("error:") == 1 and "lone surrogate" in stderr, stderr


def test_migrate_sql_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`bqrepo migrate --sql | head -0`: the reader is gone before the first line."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
    try:
        done = subprocess.run([BQREPO, "--url", "bigquery://test-project/abc", "migrate", "--sql"], cwd=tmp_path,
                              env=env, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr
    assert done.returncode == 1


def test_a_url_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARS}
    done = subprocess.run([BQREPO, "migrate", "--sql"], cwd=tmp_path, env=env | {"BQREPO_URL": "bigquery://test-project/abc%0A"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "CREATE SCHEMA" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr and "abc\\n" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "check",
    [
        lambda: validate_project_id("test-project\n"),
        lambda: validate_dataset_id("abc\n"),
        lambda: validate_location("US\n"),
    ],
)
def test_identifiers_match_whole_strings(check: Callable[[], str]) -> None:
    with pytest.raises(ConfigurationError):
        check()


def test_other_identifier_patterns_match_whole_strings(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from bqrepo.backfill import load_mapping
    from bqrepo.compile import compile_bigquery
    from bqrepo.errors import SchemaError
    from bqrepo.table_options import check_labels

    path = tmp_path / "mapping.toml"
    path.write_text('[events]\nsource = "core_event\\n"\n[events.columns]\nid = "id"\nmentioned_at = "mentioned_at"\n')
    with pytest.raises(ConfigurationError, match="not a valid PostgreSQL identifier"):
        load_mapping(path)
    with pytest.raises(SchemaError, match="label key"):
        check_labels("events", {"team\n": "x"})
    with pytest.raises(SchemaError, match="value"):
        check_labels("events", {"team": "x\n"})
    with pytest.raises(ValueError, match="not a plain identifier"):
        compile_bigquery(sa.select(sa.bindparam("limit\n", type_=sa.Integer())), **{"limit\n": 1})


# --- bugs are not user mistakes ----------------------------------------------------------------


def _app_raising(exc: BaseException) -> typer.Typer:
    bug_app = typer.Typer()

    def command() -> None:
        raise exc

    bug_app.command()(friendly(command))
    return bug_app


@pytest.mark.parametrize("exc", [ValueError("x must be positive"), OSError("bad descriptor"), KeyError("k"),
                                 TypeError("unsupported operand")])
def test_a_bug_shows_its_traceback_and_asks_for_a_report(exc: BaseException) -> None:
    result = CliRunner().invoke(_app_raising(exc), [])
    assert result.exit_code == 70, result.output
    assert "Traceback" in result.output and BUG_REPORT in result.output, result.output


def test_a_bug_traceback_never_shows_a_password() -> None:
    result = CliRunner().invoke(_app_raising(RuntimeError("connect postgresql://me:hunter2@db/app failed")), [])
    assert "Traceback" in result.output and "hunter2" not in result.output and "me:***@db" in result.output


# --- generated command lines --------------------------------------------------------------------

CLI_TEXT = st.one_of(
    st.sampled_from([p for p in PAYLOADS if "\x00" not in p]),
    st.text(st.characters(exclude_categories=(), exclude_characters="\x00"), max_size=20),  # argv holds no NUL
)
WHEN = st.one_of(
    st.sampled_from(["now", "today", "0001-01-01", "9999-12-31", "9999-12-31T23:59:59.999999", "2026-02-30",
                     "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "2024-03-01", "2024-03-20T09:30:00Z"]),
    st.datetimes().map(datetime.isoformat),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    CLI_TEXT,
)
NUMBER = st.one_of(
    st.sampled_from(["0", "-1", "1", "10000", "10001", "9223372036854775808", "inf", "nan", "1e308", "0.0001", "7"]),
    st.integers().map(str),
    st.floats().map(str),
    CLI_TEXT,
)
BUCKET = st.one_of(
    st.sampled_from(["DAY", "WEEK", "MONTH", "YEAR", "6 hours", "1 second", "99999999999999999999 seconds", "fortnight"]),
    st.builds(lambda n, u: f"{n} {u}", st.integers(-3, 10**22), st.sampled_from(["seconds", "hours", "days", "weeks"])),
    CLI_TEXT,
)
OPTIONS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "recent": {"--since": WHEN, "--until": WHEN, "--event-type": CLI_TEXT, "--source": CLI_TEXT, "--limit": NUMBER},
    "trending": {"--metric": st.one_of(st.sampled_from(["mentions", "risk"]), CLI_TEXT), "--limit": NUMBER,
                 "--half-life": NUMBER, "--as-of": WHEN},
    "risk-trends": {"--since": WHEN, "--until": WHEN, "--bucket": BUCKET, "--event-type": CLI_TEXT},
    "series": {"--since": WHEN, "--until": WHEN},
}


def _command_line(d: st.DataObject) -> list[str]:
    command = d.draw(st.sampled_from(sorted(OPTIONS)))
    args = [command]
    for option, values in OPTIONS[command].items():
        if d.draw(st.booleans()):
            args += [option, d.draw(values)]
    if command == "risk-trends" and d.draw(st.booleans()):
        args.append("--fill-gaps")
    if command == "series":
        args += d.draw(st.lists(st.one_of(st.sampled_from(["GDPC1", "UNRATE"]), CLI_TEXT), max_size=2))
    if d.draw(st.booleans()):
        args.append("--json")
    return args


def _run_generated_cli(settings: Settings, examples: int) -> None:
    engine = create_engine(settings)
    before = fingerprint(engine)
    outcomes = {"data": 0, "error": 0, "usage": 0}

    @settings_for(examples)
    @given(st.data())
    def one_command_line(d: st.DataObject) -> None:
        args = _command_line(d)
        result = invoke(settings, *args)
        output = result.output
        assert "Traceback" not in output, (args, output)
        if result.exit_code == 0:
            outcomes["data"] += 1
            assert "error:" not in output, (args, output)
        elif result.exit_code == 1:
            outcomes["error"] += 1
            assert output.count("error:") == 1 and output.lstrip().startswith("error:"), (args, output)
        else:  # click's own checks (an int that is no int, --limit out of its range): a usage error
            outcomes["usage"] += 1
            assert result.exit_code == 2 and "Usage:" in output, (args, result.exit_code, output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)

    one_command_line()
    assert fingerprint(engine) == before
    engine.dispose()
    assert outcomes["data"] >= examples // 10 and outcomes["error"] >= examples // 10, outcomes


def settings_for(examples: int) -> Any:
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_generated_command_lines_on_duckdb(databases: Callable[[str], Settings]) -> None:
    _run_generated_cli(databases("duckdb"), examples=300)


def test_generated_command_lines_on_the_standin(databases: Callable[[str], Settings]) -> None:
    _run_generated_cli(databases("bigquery"), examples=30)
