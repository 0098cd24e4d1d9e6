"""No credential in any output, log record, exception text or file; back-fill interruptions (issue 10).

Against the real PostgreSQL 15 of ``legacy_postgres``: a login role whose
password holds an ``@`` is created for these tests, so every form of URL is
also proven to *connect*, not only to be redacted.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from bqrepo import migrate
from bqrepo.backfill import SourceError, backfill
from bqrepo.backfill.reader import legacy_source_key
from bqrepo.cli import app
from bqrepo.redact import display_host, redact_text, redact_url
from bqrepo.settings import ConfigurationError, Settings
from test_backfill import _by_day

BQREPO = str(Path(sys.executable).with_name("bqrepo"))
ROLE = "reader"
HEAD, TAIL = "Head", "TailSecret9"  # the password is HEAD@TAIL: neither half may ever show
OTHER = "Changed-Password-42"


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def reader(legacy_postgres: Any) -> Any:
    """A login role ``reader`` with password ``Head@TailSecret9`` and SELECT on the old tables."""
    server, _ = legacy_postgres
    engine = sa.create_engine(server.url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP ROLE IF EXISTS {ROLE}"))
        connection.execute(sa.text(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{HEAD}@{TAIL}'"))
        connection.execute(sa.text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}"))
    engine.dispose()
    return server


def _where(server: Any) -> str:
    url = make_url(server.url)
    return f"127.0.0.1:{url.port}/{url.database}"


def _set_password(server: Any, password: str) -> None:
    engine = sa.create_engine(server.url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"ALTER ROLE {ROLE} PASSWORD '{password}'"))
    engine.dispose()


@pytest.fixture
def migrated(duckdb_settings: Settings) -> Settings:
    migrate.upgrade(duckdb_settings)
    return duckdb_settings


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BQREPO_URL", "BIGQUERY_EMULATOR_HOST")}
    return env | {"BQREPO_DUCKDB_PATH": str(settings.duckdb_path), "COLUMNS": "200"}


def _files_text(directory: Path) -> str:
    return "".join(p.read_text("utf-8", "replace") for p in directory.rglob("*") if p.is_file() and p.suffix != ".duckdb")


def _assert_nowhere(secrets: list[str], *texts: str) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, (secret, text[-2000:])


# --- the forms of a credential ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://me:hunter2@db:5432/app", "postgresql://me:***@db:5432/app"),
        ("postgresql://me@db/app?password=hunter2", "postgresql://me@db/app?password=***"),
        ("postgresql://me@db/app?sslmode=require&sslpassword=hunter2&passfile=/p", "postgresql://me@db/app?sslmode=require&sslpassword=***&passfile=***"),
        ("postgresql://me:hun@ter2@db/app", "postgresql://me:***@db/app"),
        ("host=db user=me password=hunter2 dbname=app", "host=db user=me password=*** dbname=app"),
        ("host=db password = 'hun ter2' dbname=app", "host=db password = *** dbname=app"),
        ("bigquery://p/d?credentials_base64=c2VjcmV0", "bigquery://p/d?credentials_base64=***"),
    ],
)
def test_every_credential_form_is_redacted(given: str, shown: str) -> None:
    assert redact_url(given) == shown
    assert redact_text(f"could not use {given} today") == f"could not use {shown} today"


def test_emulator_host_is_shown_without_user_or_password() -> None:
    assert display_host("user:hunter2@127.0.0.1:9050") == "127.0.0.1:9050"
    assert display_host("http://user:hunter2@localhost:9050") == "http://localhost:9050"


def test_an_emulator_host_with_a_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """The stand-in never needs credentials: userinfo in BIGQUERY_EMULATOR_HOST would only
    travel into endpoint URLs, and from there into google-api-core's error texts."""
    for host in (f"user:PW-{TAIL}@127.0.0.1:9050", f"http://user:PW-{TAIL}@localhost:9050", f"PW-{TAIL}@127.0.0.1:9050"):
        with pytest.raises(ConfigurationError, match="carries a user/password, which the stand-in never needs") as refused:
            Settings(project_id="test-project", dataset="d", emulator_host=host)
        _assert_nowhere([TAIL, "PW-"], str(refused.value))
    env = {k: v for k, v in os.environ.items() if k != "BQREPO_URL"} | {"BIGQUERY_EMULATOR_HOST": f"user:PW-{TAIL}@127.0.0.1:9050"}
    done = subprocess.run([BQREPO, "--url", "bigquery://test-project/abc", "-v", "info"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "BIGQUERY_EMULATOR_HOST must be host:port" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    _assert_nowhere([TAIL, "PW-"], done.stdout, done.stderr)


def test_backend_errors_redact_urls_in_the_client_text() -> None:
    """Defence in depth: whatever URL google-api-core quotes loses its password."""
    from google.api_core.exceptions import NotFound, ServiceUnavailable

    from bqrepo.engine import _error_for

    url = f"http://user:PW-{TAIL}@127.0.0.1:9050/bigquery/v2/projects/p/queries"
    for cause in (ServiceUnavailable(f"POST {url}: backend down"), NotFound(f"GET {url}: Not found: Dataset p:d")):
        translated = _error_for(cause, "bigquery")
        assert translated is not None
        _assert_nowhere([TAIL, "PW-"], str(translated))


# --- the back-fill: output, logs, exceptions, files -------------------------------------------


def test_query_string_password_is_in_no_output_log_or_file(legacy_postgres: Any, migrated: Settings, tmp_path: Path) -> None:
    server, _ = legacy_postgres
    source = f"postgresql://bqrepo@{_where(server)}?password={server.password}"
    command = [BQREPO, "-v", "backfill", "--from", source, "--table", "world_bank", "--checkpoint", str(tmp_path / "cp.json")]
    done = subprocess.run(command, env=_env(migrated), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "password=***" in done.stderr and "OK" in done.stdout
    _assert_nowhere([server.password], done.stdout, done.stderr, _files_text(tmp_path))


def test_password_with_an_at_sign_connects_and_never_shows(reader: Any, migrated: Settings, tmp_path: Path) -> None:
    source = f"postgresql://{ROLE}:{HEAD}@{TAIL}@{_where(reader)}"
    command = [BQREPO, "backfill", "--from", source, "--table", "fred_indicators", "--checkpoint", str(tmp_path / "cp.json")]
    done = subprocess.run(command, env=_env(migrated), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{ROLE}:***@127.0.0.1" in done.stderr
    _assert_nowhere([TAIL, f"{HEAD}@"], done.stdout, done.stderr, _files_text(tmp_path))

    wrong = f"postgresql://{ROLE}:{HEAD}@Wrong{TAIL}@{_where(reader)}"
    bad = subprocess.run([*command[:3], wrong, *command[4:]], env=_env(migrated), capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "password authentication failed" in bad.stderr
    _assert_nowhere([TAIL, f"{HEAD}@"], bad.stdout, bad.stderr)


def test_a_key_value_dsn_is_refused_without_echoing_it(migrated: Settings, tmp_path: Path) -> None:
    dsn = f"host=127.0.0.1 user=me password=PW-{TAIL} dbname=legacy"
    result = CliRunner().invoke(app, ["backfill", "--from", dsn, "--table", "events"], env=_env(migrated))
    assert result.exit_code == 1 and result.output.count("error:") == 1, result.output
    _assert_nowhere([TAIL], result.output)


def test_no_log_record_or_exception_holds_the_password(reader: Any, migrated: Settings, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = f"postgresql://{ROLE}@{_where(reader)}?password={HEAD}@{TAIL}"
    backfill(good, "world_bank", settings=migrated, checkpoint_file=tmp_path / "cp.json")
    wrong = f"postgresql://{ROLE}:{HEAD}@Wrong{TAIL}@{_where(reader)}"
    with pytest.raises(SourceError) as caught:
        backfill(wrong, "events", settings=migrated, checkpoint_file=tmp_path / "other.json")
    seen = [str(caught.value), repr(caught.value), str(caught.value.__cause__), str(caught.value.__context__)]
    _assert_nowhere([TAIL], caplog.text, *seen, *(str(r.args) for r in caplog.records), _files_text(tmp_path))


# --- the checkpoint: keyed without credentials, old files still read -------------------------------


def _crash_on(n: int) -> Any:
    seen: list[Any] = []

    def hook(chunk: Any) -> None:
        seen.append(chunk)
        if len(seen) == n:
            raise Crash(chunk.key)

    return hook


def test_a_changed_password_resumes_the_same_back_fill(reader: Any, migrated: Settings, tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp.json"
    first = f"postgresql://{ROLE}:{HEAD}@{TAIL}@{_where(reader)}"
    daily = _by_day(tmp_path, "events")  # the sample's 30 days in many chunks
    try:
        with pytest.raises(Crash):
            backfill(first, "events", settings=migrated, checkpoint_file=checkpoint, after_write=_crash_on(3),
                     mapping_file=daily)
        done_before = len(json.loads(checkpoint.read_text())["completed"])
        assert done_before == 2
        _set_password(reader, OTHER)
        # another password, and in the query string instead of the authority: the same back-fill
        result = backfill(f"postgresql://{ROLE}@{_where(reader)}?password={OTHER}", "events", settings=migrated,
                          checkpoint_file=checkpoint, mapping_file=daily)
    finally:
        _set_password(reader, f"{HEAD}@{TAIL}")
    assert result.chunks_skipped == done_before and result.verification is not None and result.verification.ok
    stored = checkpoint.read_text()
    assert json.loads(stored)["source"] == f"postgresql://{ROLE}@{_where(reader)} core_event"
    _assert_nowhere([TAIL, OTHER, HEAD], stored)


@pytest.mark.parametrize("form", ["authority", "query"])
def test_checkpoints_written_by_the_previous_release_are_resumed(legacy_postgres: Any, migrated: Settings,
                                                                  tmp_path: Path, form: str) -> None:
    server, _ = legacy_postgres
    source = server.url if form == "authority" else f"postgresql://bqrepo@{_where(server)}?password={server.password}"
    checkpoint = tmp_path / "cp.json"
    backfill(source, "world_bank", settings=migrated, checkpoint_file=checkpoint, verify=False)
    state = json.loads(checkpoint.read_text())
    # what the previous release stored: SQLAlchemy's rendering, a query-string password included
    state["source"] = f"{legacy_source_key(source)} core_worldbank"
    checkpoint.write_text(json.dumps(state))
    result = backfill(source, "world_bank", settings=migrated, checkpoint_file=checkpoint, verify=False)
    assert result.chunks_written == 0 and result.chunks_skipped == result.chunks_total
    _assert_nowhere([server.password], checkpoint.read_text())


def test_a_checkpoint_of_another_source_is_refused_without_its_password(legacy_postgres: Any, migrated: Settings,
                                                                        tmp_path: Path) -> None:
    server, _ = legacy_postgres
    checkpoint = tmp_path / "cp.json"
    checkpoint.write_text(json.dumps({"version": 2, "table": "world_bank", "destination": migrated.describe(),
                                      "source": f"postgresql://x@elsewhere/db?password=PW-{TAIL} core_worldbank",
                                      "in_flight": [], "completed": {}}))
    with pytest.raises(ConfigurationError, match="belongs to another back-fill") as caught:
        backfill(server.url, "world_bank", settings=migrated, checkpoint_file=checkpoint)
    _assert_nowhere([TAIL], str(caught.value))


# --- the back-fill command line ------------------------------------------------------------------


def test_unknown_table_prints_no_header(legacy_postgres: Any, migrated: Settings) -> None:
    server, _ = legacy_postgres
    result = CliRunner().invoke(app, ["backfill", "--from", server.url, "--table", "nope"], env=_env(migrated))
    assert result.exit_code == 1 and result.output.lstrip().startswith("error:"), result.output
    assert "back-fill nope" not in result.output and "no [nope] section" in result.output


def test_since_after_the_newest_row_names_no_until(legacy_postgres: Any, migrated: Settings, tmp_path: Path) -> None:
    server, _ = legacy_postgres
    result = CliRunner().invoke(app, ["backfill", "--from", server.url, "--table", "world_bank", "--since", "2099-01-01",
                                      "--checkpoint", str(tmp_path / "cp.json")], env=_env(migrated))
    assert result.exit_code == 1 and result.output.count("error:") == 1, result.output
    assert "--until" not in result.output and "after the newest row" in result.output


def test_ctrl_c_says_it_was_interrupted_and_how_to_resume(legacy_postgres: Any, migrated: Settings, tmp_path: Path) -> None:
    server, _ = legacy_postgres
    checkpoint = tmp_path / f"{uuid.uuid4().hex[:6]}.json"
    command = [BQREPO, "backfill", "--from", server.url, "--table", "entity_mentions", "--checkpoint", str(checkpoint),
               "--mapping", str(_by_day(tmp_path, "entity_mentions"))]
    process = subprocess.Popen([*command, "--pause", "0.2"], env=_env(migrated), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if len(json.loads(checkpoint.read_text())["completed"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted" in err, err
    assert str(checkpoint) in err and "run the same command again to resume" in err, err
    done = subprocess.run(command, env=_env(migrated), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0 and "already done" in done.stdout and "OK" in done.stdout, done.stdout + done.stderr
