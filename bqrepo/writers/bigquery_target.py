"""Where a BigQuery writer sends rows: the client and dataset behind an engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bqrepo.backend import BigQueryBackend, bigquery_id, require_backend

__all__ = ["BigQueryTarget"]


@dataclass(frozen=True)
class BigQueryTarget:
    """A ``google.cloud.bigquery.Client`` and the default ``project.dataset``.

    Writers use the client directly because DML through the SQLAlchemy
    dialect costs one query job per row; tables without an explicit
    ``schema`` land in the default dataset, as queries do.
    """

    client: Any
    project: str
    dataset: str

    @classmethod
    def of(cls, bind: sa.Engine | sa.Connection) -> BigQueryTarget:
        """The target behind a BigQuery engine or connection; never connects.

        The engine's backend's (:attr:`bqrepo.backend.BigQueryBackend.target`):
        its one client, and the configured project and dataset.
        """
        return require_backend(bind, BigQueryBackend).target

    def table_id(self, table: sa.Table) -> str:
        """``project.dataset.table`` for ``table``; its ``schema`` overrides the dataset."""
        return bigquery_id(self.project, table.schema or self.dataset, table.name)
