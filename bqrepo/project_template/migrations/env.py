"""Alembic environment for this project's tables, written by `bqrepo init`.

The tables come from ``bqrepo_metadata`` in alembic.ini (else
BQREPO_METADATA), the backend from bqrepo's settings. Autogenerate compares
only those tables; BigQuery partitioning, clustering and options are
compared too. See bqrepo.alembic_ext.environment.run_env.
"""

from alembic import context

from bqrepo.alembic_ext.environment import run_env

run_env(context)
