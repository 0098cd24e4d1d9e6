"""The Backend objects: one per engine kind, built from the settings, reachable from the engine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.api_core import exceptions as google_errors

from bqrepo import migrate, schema
from bqrepo.backend import (
    BigQueryBackend,
    DuckDBBackend,
    backend_for,
    backend_kind,
    backend_of,
    bigquery_id,
    require_backend,
)
from bqrepo.endpoint import parse_endpoint
from bqrepo.engine import client_of, create_engine
from bqrepo.errors import TRANSIENT_REASONS, is_transient
from bqrepo.redact import display_host
from bqrepo.rows import EventRow
from bqrepo.settings import Settings
from bqrepo.writers import (
    AutoBigQueryWriter,
    BigQueryLoadWriter,
    BigQueryStreamWriter,
    BigQueryTarget,
    DuckDBWriter,
    writer_for,
)

# A BigQuery backend that never connects: nothing listens on port 9, and
# neither building the backend, its client nor its engine opens a connection.
OFFLINE_BIGQUERY = Settings(project_id="my-project", dataset="analytics", location="EU", emulator_host="127.0.0.1:9")


def test_the_settings_choose_the_backend(tmp_path: Path) -> None:
    duck = backend_for(Settings(duckdb_path=str(tmp_path / "x.duckdb")))
    assert isinstance(duck, DuckDBBackend) and duck.name == "duckdb"
    assert duck.embedded and not duck.load_job_quota and duck.dataset_path is None
    assert duck.path == tmp_path / "x.duckdb"
    big = backend_for(OFFLINE_BIGQUERY)
    assert isinstance(big, BigQueryBackend) and big.name == "bigquery"
    assert not big.embedded and big.load_job_quota and big.has_table_options
    assert big.dataset_path == ("my-project", "analytics")
    assert backend_for(Settings(url="bigquery://other-project/ds")).dataset_path == ("other-project", "ds")
    assert "BigQuery my-project.analytics (EU)" in repr(big)


def test_table_ids_are_spelled_in_one_place() -> None:
    assert bigquery_id("p-roject", "ds") == "p-roject.ds"
    assert bigquery_id("p-roject", "ds", "events") == "p-roject.ds.events"
    backend = backend_for(OFFLINE_BIGQUERY)
    assert isinstance(backend, BigQueryBackend)
    assert backend.dataset_id == "my-project.analytics"
    assert backend.table_id("events") == "my-project.analytics.events"
    assert backend.table_id("events", "archive") == "my-project.archive.events"
    assert backend.table_id(schema.events) == "my-project.analytics.events"
    elsewhere = sa.Table("events", sa.MetaData(), sa.Column("id", sa.String), schema="archive")
    assert backend.table_id(elsewhere) == "my-project.archive.events"
    # the writers name tables the same way
    assert backend.target.table_id(elsewhere) == backend.table_id(elsewhere)
    assert backend.target.table_id(schema.events) == backend.table_id(schema.events)


def test_backend_of_finds_the_backend_that_built_the_engine(duckdb_settings: Settings) -> None:
    backend = backend_for(duckdb_settings)
    engine = backend.create_engine()
    try:
        assert backend_of(engine) is backend
        assert backend_of(engine.execution_options(isolation_level="AUTOCOMMIT")) is backend
        with engine.connect() as connection:
            assert backend_of(connection) is backend
        # bqrepo.engine.create_engine builds through a new backend of the same kind
        other = create_engine(duckdb_settings)
        assert isinstance(backend_of(other), DuckDBBackend) and backend_of(other) is not backend
        other.dispose()
    finally:
        engine.dispose()


def test_engines_bqrepo_did_not_build_have_no_backend(tmp_path: Path) -> None:
    foreign = sa.create_engine(f"duckdb:///{tmp_path / 'plain.duckdb'}")
    with pytest.raises(TypeError, match="not built by bqrepo.engine.create_engine"):
        backend_of(foreign)
    with pytest.raises(ValueError, match="no writer for the 'duckdb' dialect"):
        writer_for(foreign)


def test_require_backend_refuses_the_other_kind(duckdb_settings: Settings) -> None:
    engine = create_engine(duckdb_settings)
    try:
        assert isinstance(require_backend(engine, DuckDBBackend), DuckDBBackend)
        with pytest.raises(TypeError, match="not a BigQuery engine or connection: duckdb"):
            require_backend(engine, BigQueryBackend)
        with pytest.raises(TypeError, match="not a BigQuery engine or connection: duckdb"):
            client_of(engine)
    finally:
        engine.dispose()
    bigquery = create_engine(OFFLINE_BIGQUERY)
    with pytest.raises(TypeError, match="not a DuckDB engine or connection: bigquery"):
        DuckDBWriter(bigquery)


def test_one_client_for_the_engine_the_writers_and_the_metadata_calls() -> None:
    backend = backend_for(OFFLINE_BIGQUERY)
    assert isinstance(backend, BigQueryBackend)
    engine = backend.create_engine()  # builds the client; connects to nothing
    client = backend.client
    assert client_of(engine) is client
    assert BigQueryTarget.of(engine).client is client
    stream = writer_for(engine, "stream")
    assert isinstance(stream, BigQueryStreamWriter) and stream.target.client is client
    load = writer_for(engine, "load")
    assert isinstance(load, BigQueryLoadWriter) and load.target.client is client
    auto = writer_for(engine, load_threshold=7)
    assert isinstance(auto, AutoBigQueryWriter) and auto.load_threshold == 7
    assert auto.stream.target.client is client and auto.load.target.client is client
    # the client is configured from the settings
    assert client.project == "my-project" and client.location == "EU"
    assert client.default_query_job_config.default_dataset.dataset_id == "analytics"
    assert client._connection.API_BASE_URL == "http://127.0.0.1:9"  # noqa: SLF001  the stand-in's endpoint
    # a second backend is a second client
    second = backend_for(OFFLINE_BIGQUERY)
    assert isinstance(second, BigQueryBackend) and second.client is not client


def test_the_writer_choice(duckdb_settings: Settings) -> None:
    duck = backend_for(duckdb_settings)
    engine = duck.create_engine()
    try:
        for method in ("auto", "stream", "load"):
            assert isinstance(duck.writer(engine, method), DuckDBWriter)
        with pytest.raises(ValueError, match="method must be 'auto', 'stream' or 'load', not 'merge'"):
            duck.writer(engine, "merge")  # type: ignore[arg-type]
    finally:
        engine.dispose()
    big = backend_for(OFFLINE_BIGQUERY)
    bigquery = big.create_engine()
    assert isinstance(big.writer(bigquery, "stream"), BigQueryStreamWriter)
    assert isinstance(big.writer(bigquery, "load"), BigQueryLoadWriter)
    assert isinstance(big.writer(bigquery), AutoBigQueryWriter)


def test_backend_kind_answers_for_dialects_without_an_engine() -> None:
    """Alembic's offline --sql builds its dialect from the URL: the kind still answers."""
    offline = sa.engine.make_url("bigquery://my-project/analytics").get_dialect()()
    assert backend_kind(offline) is BigQueryBackend
    assert backend_kind(sa.create_engine("sqlite://").dialect) is None
    engine = create_engine(OFFLINE_BIGQUERY)
    assert backend_kind(engine.dialect) is BigQueryBackend


def test_duckdb_inventory_before_and_after_migrating(duckdb_settings: Settings) -> None:
    backend = backend_for(duckdb_settings)
    before = backend.inventory(schema.metadata.sorted_tables)
    assert not before.migrated and before.tables == []
    assert "no database file yet" in before.facts["note"]
    assert not Path(before.facts["file"]).exists()  # looking creates nothing
    migrate.upgrade(duckdb_settings)
    after = backend.inventory(schema.metadata.sorted_tables)
    assert after.migrated and "note" not in after.facts
    tables = {t.name: t for t in after.tables}
    assert set(tables) == set(schema.metadata.tables)
    assert tables["events"].exists and tables["events"].rows == 0
    assert tables["events"].partitioning == "mentioned_at by DAY"
    assert after.options_source == "declared; DuckDB ignores them"


def test_one_emulator_host_parser() -> None:
    bare = parse_endpoint("127.0.0.1:9050")
    assert (bare.scheme, bare.hostname, bare.port, bare.url) == ("http", "127.0.0.1", 9050, "http://127.0.0.1:9050")
    secure = parse_endpoint("https://bq.local:443")
    assert (secure.scheme, secure.port, secure.url, secure.explicit_scheme) == ("https", 443, "https://bq.local:443", True)
    assert parse_endpoint("localhost:notaport").port is None
    assert parse_endpoint("me:secret@localhost:9050").has_userinfo
    assert display_host("me:secret@localhost:9050") == "localhost:9050"


def test_one_list_of_transient_reasons() -> None:
    for reason in ("backendError", "internalError", "rateLimitExceeded", "badGateway"):
        assert reason in TRANSIENT_REASONS
        slow_down = google_errors.Forbidden("slow down", errors=[{"reason": reason}])  # type: ignore[no-untyped-call]
        assert is_transient(slow_down)
    assert "quotaExceeded" not in TRANSIENT_REASONS
    denied = google_errors.Forbidden("no", errors=[{"reason": "accessDenied"}])  # type: ignore[no-untyped-call]
    assert not is_transient(denied)


@pytest.mark.bigquery
def test_engine_and_writer_share_the_client_on_the_standin(bigquery_settings: Settings) -> None:
    migrate.upgrade(bigquery_settings)
    engine = create_engine(bigquery_settings)
    try:
        backend = backend_of(engine)
        assert isinstance(backend, BigQueryBackend)
        writer = writer_for(engine, "stream")
        assert isinstance(writer, BigQueryStreamWriter) and writer.target.client is backend.client
        at = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)
        row = EventRow(id="e1", mentioned_at=at, event_type="protest", source_name="wire", title="t")
        assert writer.write(schema.events, [row]).ok
        with engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).select_from(schema.events).where(schema.events.c.mentioned_at == at)
            ).scalar_one()
        assert count == 1
        assert backend.live_dataset() is not None
        assert backend.client.get_table(backend.table_id(schema.events)).require_partition_filter
    finally:
        engine.dispose()


@pytest.mark.bigquery
def test_bqrepos_statements_compile_once_and_nobody_elses_do(bigquery_settings: Settings) -> None:
    """The BigQuery dialect caches nothing by itself; bqrepo caches only its own statements.

    Its statements carry no values at compile time, so a second call reuses
    the compiled form (issue 13: under 20 us of compile work). A user's
    statement on the same engine must still compile per execution, because
    sqlalchemy-bigquery's compiler reads bound values (LIKE with ESCAPE,
    Decimal precision); a cached form would send the first call's rewrite.
    """
    from sqlalchemy.engine import default

    from bqrepo.repositories import EventRepository

    migrate.upgrade(bigquery_settings)
    engine = create_engine(bigquery_settings)
    seen: list[object] = []

    def record(_conn: object, _cursor: object, _statement: str, _params: object, context: object, _many: bool) -> None:
        seen.append(getattr(context, "cache_hit", None))

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        repo = EventRepository(engine)
        end = dt.datetime(2024, 3, 8, tzinfo=dt.UTC)
        for _ in range(2):
            repo.recent(end - dt.timedelta(days=7), end, limit=5)
        assert seen == [default.CACHE_MISS, default.CACHE_HIT]
        seen.clear()
        like = sa.select(sa.bindparam("text", type_=sa.String()).like(sa.bindparam("pattern", type_=sa.String()), escape="/"))
        with engine.connect() as connection:
            answers = [
                connection.execute(like, {"text": "a_c", "pattern": "a/_c"}).scalar_one(),
                connection.execute(like, {"text": "abc", "pattern": "a/_c"}).scalar_one(),
                connection.execute(like, {"text": "abc", "pattern": "a_c"}).scalar_one(),
            ]
        assert answers == [True, False, True]
        assert seen == [default.CACHING_DISABLED] * 3  # the engine cache is off (query_cache_size=0)
    finally:
        engine.dispose()
