"""Where a BigQuery writer sends rows: the client and dataset behind an engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bqrepo.engine import client_of
from bqrepo.errors import ConfigurationError

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

        The client is the engine's own (:func:`bqrepo.engine.client_of`) and
        the project and dataset are the dialect's, parsed from the URL when
        the engine was built.
        """
        client = client_of(bind)
        dialect = bind.dialect
        project = getattr(dialect, "project_id", None) or client.project
        dataset = getattr(dialect, "dataset_id", None)
        if not dataset:
            raise ConfigurationError(
                "the BigQuery URL names no dataset (bigquery://PROJECT/DATASET); "
                "writers need one for tables without a schema"
            )
        return cls(client=client, project=project, dataset=dataset)

    def table_id(self, table: sa.Table) -> str:
        """``project.dataset.table`` for ``table``; its ``schema`` overrides the dataset."""
        return f"{self.project}.{table.schema or self.dataset}.{table.name}"
