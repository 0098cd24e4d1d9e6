"""Read the old PostgreSQL/TimescaleDB tables, one chunk at a time.

The source table is *declared* from the mapping (only the mapped columns,
names checked in :mod:`bqrepo.backfill.mapping`) rather than reflected, so the
reader needs no catalogue access beyond SELECT, and TimescaleDB hypertables
(plain tables to a reader) work unchanged. Statements are built once with
bound parameters; the partition column is compared with a plain range, which
PostgreSQL (and TimescaleDB's chunk exclusion) can serve from an index.

Values are brought to the target's types here, where the source's types are
known: UUIDs and integer keys become strings, ``numeric`` becomes float.
Everything else is the row types' job.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.types.json import set_json_loads
from psycopg.types.string import TextLoader
from pydantic_core import from_json
from sqlalchemy.engine import URL, Engine, make_url

from bqrepo.backfill.mapping import TableMapping
from bqrepo.errors import BackendError, ConfigurationError
from bqrepo.redact import normalize_url, redact_text

__all__ = ["SourceError", "SourceReader", "legacy_source_key", "prefetched", "source_engine", "source_key"]

T = TypeVar("T")

# Query parameters that say *which* database, as opposed to how to log in to it.
_IDENTITY_PARAMETERS = ("host", "hostaddr", "port", "dbname", "user", "service")


class SourceError(BackendError):
    """The old database cannot be reached or read. The message never holds a password."""


def _parse(url: str) -> URL:
    try:
        parsed = make_url(normalize_url(url))
    except Exception:  # sqlalchemy raises ArgumentError; the text may hold a password
        raise ConfigurationError("--from is not a valid database URL (postgresql://USER:PASSWORD@HOST/DB)") from None
    driver = parsed.drivername
    if driver in ("postgres", "postgresql", "postgresql+psycopg", "timescaledb"):
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigurationError(
        f"--from uses {driver!r}; the back-fill reads PostgreSQL/TimescaleDB: postgresql://USER@HOST/DB"
    )


def source_key(url: str) -> str:
    """Which database ``url`` names, without any credential: the checkpoint's key.

    User, host, port and database only, so a changed password (or one moved
    from the URL to ``PGPASSWORD``) resumes the same back-fill.
    """
    parsed = _parse(url)
    identity = {key: parsed.query[key] for key in _IDENTITY_PARAMETERS if key in parsed.query}
    bare = URL.create("postgresql", parsed.username, None, parsed.host, parsed.port, parsed.database, identity)
    return bare.render_as_string(hide_password=True)


def legacy_source_key(url: str) -> str:
    """The key bqrepo 0.x wrote into checkpoints, still accepted when resuming them."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid URL>"


def source_engine(url: str) -> Engine:
    """An engine on the old database (psycopg 3), connecting lazily."""
    return sa.create_engine(_parse(url), pool_pre_ping=True)


def _to_text(value: Any) -> Any:
    """A String column's value: UUIDs and integer keys as text, anything else as it is."""
    return str(value) if isinstance(value, (uuid.UUID, int)) else value


def _to_float(value: Any) -> Any:
    """A Double column's value: ``numeric`` (Decimal) as float, anything else as it is."""
    return float(value) if isinstance(value, Decimal) else value


def _converter(column: sa.Column[Any]) -> Callable[[Any], Any] | None:
    """What brings a PostgreSQL value to the Python type ``column``'s row field expects; None: nothing.

    Chosen once per column, so a read converts only the columns that may need
    it (a per-value dispatch on every column cost more than the read itself).
    """
    if isinstance(column.type, sa.String):
        return _to_text
    if isinstance(column.type, sa.Double):
        return _to_float
    return None


def _fast_loaders(connection: sa.Connection) -> None:
    """Make the driver hand UUIDs over as text and parse JSONB with pydantic-core's parser.

    Both are what the rows need anyway: a UUID becomes its canonical text (the
    same as ``str(uuid)``) without an intermediate object, and pydantic-core's
    JSON parser is several times faster than :func:`json.loads`, giving the same
    values (big integers stay exact). Set on each read's connection, which belongs
    to the back-fill's own engine (:func:`source_engine`).
    """
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        driver.adapters.register_loader("uuid", TextLoader)
        set_json_loads(from_json, driver)


def _day(value: dt.date) -> dt.date:
    """The UTC day of a TIMESTAMP bound, or a DATE bound as it is."""
    return value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value


class SourceReader:
    """Chunked reads of one old table, as records keyed by target column."""

    def __init__(self, engine: Engine, mapping: TableMapping) -> None:
        self.engine = engine
        self.mapping = mapping
        target = mapping.target
        partition_type = target.c[mapping.partition_column].type
        source_columns = {
            name: sa.Column(name, partition_type if name == mapping.time_column else sa.types.NULLTYPE)
            for name in dict.fromkeys(mapping.columns.values())
        }
        self.source = sa.Table(
            mapping.source_table, sa.MetaData(), *source_columns.values(), schema=mapping.source_schema
        )
        self._names = [str(name) for name in mapping.columns]
        self._converters = [
            (str(name), convert)
            for name in mapping.columns
            if (convert := _converter(target.c[name])) is not None
        ]
        time = self.source.c[mapping.time_column]
        in_range = sa.and_(time >= sa.bindparam("start"), time < sa.bindparam("end"))
        order = [time] + ([self.source.c[mapping.columns["id"]]] if "id" in mapping.columns else [])
        self.rows_statement = (
            sa.select(*(self.source.c[old].label(new) for new, old in mapping.columns.items()))
            .where(in_range)
            .order_by(*order)
        )
        self.count_statement = sa.select(sa.func.count()).select_from(self.source).where(in_range)
        self.bounds_statement = sa.select(sa.func.min(time), sa.func.max(time))

    def _execute(self, statement: sa.Executable, params: Mapping[str, Any]) -> Any:
        try:
            with self.engine.connect() as connection:
                return connection.execute(statement, dict(params)).all()
        except sa.exc.DBAPIError as exc:
            raise SourceError(f"reading {self.mapping.source_name}: {redact_text(str(exc.orig).strip())}") from None

    def bounds(self) -> tuple[dt.date, dt.date] | None:
        """First and last day with data, or None for an empty table."""
        (low, high), = self._execute(self.bounds_statement, {})
        if low is None:
            return None
        return _day(low), _day(high)

    def count(self, start: Any, end: Any) -> int:
        """Rows in ``[start, end)``: the progress bar's total."""
        (count,), = self._execute(self.count_statement, {"start": start, "end": end})
        return int(count)

    def iter_records(self, start: Any, end: Any, batch: int = 5_000) -> Iterator[dict[str, Any]]:
        """Records in ``[start, end)``, time-ordered, streamed through a server-side cursor."""
        try:
            with self.engine.connect() as connection:
                _fast_loaders(connection)
                result = connection.execution_options(stream_results=True, yield_per=batch).execute(
                    self.rows_statement, {"start": start, "end": end}
                )
                names, converters = self._names, self._converters
                for rows in result.partitions():
                    for row in rows:
                        record = dict(zip(names, row, strict=True))
                        for name, convert in converters:
                            value = record[name]
                            if value is not None and type(value) is not str:
                                record[name] = convert(value)
                        yield record
        except sa.exc.DBAPIError as exc:
            raise SourceError(f"reading {self.mapping.source_name}: {redact_text(str(exc.orig).strip())}") from None


_END = object()


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items``, produced by a thread up to ``depth`` ahead of the consumer.

    Why: reading the source waits on PostgreSQL (its own process, so another
    core) and the driver waits without the GIL; a thread reading the next
    batch while this one is validated overlaps the two. The producer's
    failure is raised here, in order; when the consumer stops early (or
    fails) the producer stops and ``items`` is closed in its own thread, so a
    server-side cursor is released before this returns.
    """
    handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="bqrepo-backfill-read", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()
