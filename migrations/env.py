"""Alembic environment for bqrepo's own tables: metadata from ``bqrepo.schema``, backend from settings.

The backend is whatever :func:`bqrepo.settings.load_settings` says (or the
``Settings`` the caller put in ``config.attributes``): the embedded DuckDB
file by default, BigQuery for ``BQREPO_URL=bigquery://PROJECT/DATASET``.
Everything else (dataset first, bqrepo's comparisons, only these tables
compared, the ``alembic_version`` table) is
:func:`bqrepo.alembic_ext.environment.run_env`, shared with the ``env.py``
that ``bqrepo init`` writes into a user's project.
"""

from alembic import context

from bqrepo.alembic_ext.environment import run_env
from bqrepo.schema import metadata

run_env(context, metadata)
