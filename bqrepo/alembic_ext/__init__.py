"""bqrepo's Alembic extension: operations for what BigQuery has and Alembic lacks.

Each operation lives in one module with its op class, its implementation and
its autogenerate renderer, the way alembic-postgresql-enum is organised.
Importing this package registers them all with Alembic; ``migrations/env.py``
does so.
"""

from bqrepo.alembic_ext.dataset import CreateDatasetOp, ensure_dataset

__all__ = ["CreateDatasetOp", "ensure_dataset"]
