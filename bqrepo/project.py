"""``bqrepo init``: give a user's project its own Alembic migrations for its own tables.

bqrepo's five tables are migrated by ``bqrepo migrate`` from the scripts
inside the package. A project's own tables need scripts that live in the
project (``alembic revision`` must write there, never into
site-packages), so this writes ``alembic.ini`` and ``migrations/`` (a
two-line ``env.py`` calling :func:`bqrepo.alembic_ext.environment.run_env`,
bqrepo's ``script.py.mako``, an empty ``versions/``) into the project.

It never overwrites: a project that already has either is refused before
anything is written. The metadata location is imported first, so a typo
fails here rather than at the first ``alembic revision``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import sqlalchemy as sa

from bqrepo.alembic_ext.environment import PROJECT_VERSION_TABLE
from bqrepo.errors import ConfigurationError, InvalidArgumentError
from bqrepo.metadata_loader import load_metadata
from bqrepo.migrate import migrations_dir

__all__ = ["InitializedProject", "init_project"]

_TEMPLATE = "project_template"


@dataclass(frozen=True)
class InitializedProject:
    """What :func:`init_project` wrote, and the tables the migrations will manage."""

    directory: Path
    written: list[Path]
    metadata: sa.MetaData
    version_table: str


def init_project(directory: Path, metadata: str, *, source: str = "--metadata") -> InitializedProject:
    """Write ``alembic.ini`` and ``migrations/`` into ``directory`` (created if missing).

    ``metadata`` is the ``package.module:attribute`` of the project's
    MetaData, importable from ``directory``; ``source`` names where it came
    from for error messages. Raises :class:`~bqrepo.errors.InvalidArgumentError`
    when a file would be overwritten, :class:`~bqrepo.errors.ConfigurationError`
    when the metadata cannot be loaded or is bqrepo's own.
    """
    from bqrepo.schema import metadata as bqrepo_metadata

    ini = directory / "alembic.ini"
    scripts = directory / "migrations"
    existing = [path for path in (ini, scripts) if path.exists()]
    if existing:
        raise InvalidArgumentError(
            "DIRECTORY",
            f"{', '.join(str(path) for path in existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "bqrepo init never overwrites: move it away, or init another directory",
        )
    loaded = load_metadata(metadata, source=source, search_path=directory)
    if loaded is bqrepo_metadata:
        raise ConfigurationError(
            f"{source}={metadata} names bqrepo's own tables, which `bqrepo migrate` migrates: "
            "name your project's MetaData (--metadata package.module:attribute or BQREPO_METADATA)"
        )
    template = resources.files("bqrepo").joinpath(_TEMPLATE)
    (scripts / "versions").mkdir(parents=True)
    ini.write_text(
        Template(template.joinpath("alembic.ini").read_text(encoding="utf-8")).substitute(
            metadata=metadata, version_table=PROJECT_VERSION_TABLE
        ),
        encoding="utf-8",
    )
    env = scripts / "env.py"
    env.write_text(template.joinpath("migrations", "env.py").read_text(encoding="utf-8"), encoding="utf-8")
    # One revision template for both histories: it imports the BigQuery
    # partitioning classes autogenerate renders without importing.
    mako = Path(shutil.copyfile(migrations_dir() / "script.py.mako", scripts / "script.py.mako"))
    return InitializedProject(directory, [ini, env, mako, scripts / "versions"], loaded, PROJECT_VERSION_TABLE)
