"""Run the package's Alembic migrations programmatically.

``alembic upgrade head`` from the repository root and ``bqrepo migrate`` from
anywhere both end up here, so the CLI, the tests and the Django integration
use the same configuration. Settings travel to ``env.py`` through
``Config.attributes`` rather than global state.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from bqrepo.settings import Settings, load_settings

__all__ = ["alembic_config", "current_revision", "downgrade", "migrations_dir", "upgrade"]


def migrations_dir() -> Path:
    """Where the migration scripts are: shipped in the wheel, or the source tree."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("bqrepo's migrations directory is missing from this installation")


def alembic_config(settings: Settings | None = None) -> Config:
    """An Alembic ``Config`` bound to ``settings`` (default: the environment)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["bqrepo_settings"] = settings or load_settings()
    return config


def upgrade(settings: Settings | None = None, revision: str = "head", *, sql: bool = False) -> None:
    """``alembic upgrade``: create or evolve the dataset and tables."""
    command.upgrade(alembic_config(settings), revision, sql=sql)


def downgrade(settings: Settings | None = None, revision: str = "base") -> None:
    """``alembic downgrade``: by default remove every table."""
    command.downgrade(alembic_config(settings), revision)


def current_revision(settings: Settings | None = None) -> str | None:
    """The revision the database is at, or ``None`` before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    from bqrepo.engine import create_engine

    engine = create_engine(settings or load_settings())
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
