"""Find the tables to serve: a ``sqlalchemy.MetaData`` named as ``package.module:attribute``.

Why a location string and not an object: the same tables are needed by
processes that share no code path, the ``bqrepo`` command, Alembic's
``env.py`` in the user's project, a Celery worker, so each of them imports
them from one name, given by ``BQREPO_METADATA`` (the CLI's ``--metadata``,
the ``bqrepo_metadata`` option of a project's ``alembic.ini``). Unset, it is
bqrepo's own five tables, ``bqrepo.schema:metadata``.

The attribute may be dotted (``myapp.models:Base.metadata`` for a
declarative base). What is found must be a ``MetaData``; anything else is
a :class:`~bqrepo.errors.ConfigurationError` naming the setting, the
location and what was found there.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from bqrepo.errors import BqrepoError, ConfigurationError
from bqrepo.settings import DEFAULT_METADATA, configured_values
from bqrepo.timeseries import declared_tables

__all__ = ["SETTING", "configured_location", "load_metadata", "load_time_series", "parse_location"]

SETTING = "BQREPO_METADATA"

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_LOCATION_RE = re.compile(rf"({_DOTTED}):({_DOTTED})")


def parse_location(location: str, *, source: str = SETTING) -> tuple[str, str]:
    """``(module, attribute)`` of ``"package.module:attribute"``, else a ConfigurationError naming ``source``."""
    match = _LOCATION_RE.fullmatch(location.strip()) if isinstance(location, str) else None
    if match is None:
        raise ConfigurationError(
            f"{source}={location!r} is not a metadata location: use package.module:attribute, "
            f"naming a sqlalchemy MetaData (for example myapp.schema:metadata; bqrepo's own: {DEFAULT_METADATA})"
        )
    return match.group(1), match.group(2)


def configured_location(option: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The location in force: ``option`` (``--metadata``), else ``BQREPO_METADATA``, else bqrepo's own.

    Read without building :class:`~bqrepo.settings.Settings`, so that naming
    tables never depends on the backend being configured.
    """
    return option or configured_values(environ).get(SETTING) or DEFAULT_METADATA


def load_metadata(location: str, *, source: str = SETTING, search_path: Path | None = None) -> sa.MetaData:
    """Import ``location`` and return the ``MetaData`` it names.

    ``source`` names where the location came from (``BQREPO_METADATA``,
    ``--metadata``, ``alembic.ini bqrepo_metadata``) for the error messages.
    ``search_path`` (a project directory) is put first on ``sys.path`` when
    it is not there yet, the way Alembic's ``prepend_sys_path`` does: a
    console script's ``sys.path`` does not hold the working directory.

    A missing module, a missing attribute or something other than a
    MetaData is a ConfigurationError. So is an error raised by the user's
    module while it is imported (a missing dependency, a typo), chained to
    the original so its traceback is kept, because the person who sees it
    must learn which setting pointed there; bqrepo's own errors (a
    declaration :func:`~bqrepo.timeseries.time_series` refused) already say
    what is wrong and pass unchanged.
    """
    module_name, attribute = parse_location(location, source=source)
    if search_path is not None:
        directory = str(search_path.resolve())
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except BqrepoError:
        raise
    except Exception as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing is not None and (module_name == missing or module_name.startswith(missing + ".")):
            where = f" (searched {search_path.resolve()} and sys.path)" if search_path is not None else ""
            raise ConfigurationError(
                f"{source}={location}: module {module_name!r} cannot be imported: no module named "
                f"{missing!r}{where}; run from the project directory or add it to PYTHONPATH"
            ) from None
        raise ConfigurationError(
            f"{source}={location}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    found: object = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigurationError(
                f"{source}={location}: module {module_name!r} has no attribute {attribute!r}"
            )
        found = getattr(found, part)
    if not isinstance(found, sa.MetaData):
        raise ConfigurationError(
            f"{source}={location} is a {type(found).__module__}.{type(found).__qualname__}, "
            "not a sqlalchemy MetaData: name the MetaData your tables are declared in"
        )
    return found


def load_time_series(location: str, *, source: str = SETTING, search_path: Path | None = None) -> list[sa.Table]:
    """The tables of ``location`` declared with :func:`bqrepo.timeseries.time_series`, in order.

    A MetaData without any is refused: bqrepo's repositories, writers and
    commands serve declared time series only, so there would be nothing to serve.
    """
    metadata = load_metadata(location, source=source, search_path=search_path)
    tables = declared_tables(metadata)
    if not tables:
        names = ", ".join(sorted(metadata.tables)) or "no tables at all"
        raise ConfigurationError(
            f"{source}={location} declares no time series ({names}); declare each table with "
            "bqrepo.timeseries.time_series(table, time=..., key=...)"
        )
    return tables
