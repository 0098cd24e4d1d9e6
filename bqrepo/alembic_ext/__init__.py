"""bqrepo's Alembic extension: operations for what BigQuery has and Alembic lacks.

Each operation lives in one module with its op class, its implementation and
its autogenerate renderer, the way alembic-postgresql-enum is organised:

* :mod:`~bqrepo.alembic_ext.dataset`: ``op.create_dataset()``;
* :mod:`~bqrepo.alembic_ext.clustering`: ``op.set_clustering()``;
* :mod:`~bqrepo.alembic_ext.options`: ``op.set_table_options()``;
* :mod:`~bqrepo.alembic_ext.partitioning`: ``op.change_partitioning()``;
* :mod:`~bqrepo.alembic_ext.columns`: safe ``add_column``/``drop_column``/``alter_column``.

:mod:`~bqrepo.alembic_ext.compare` is the autogenerate plugin that emits them;
:mod:`~bqrepo.alembic_ext.reflection` fixes the dialect's reflection so
autogenerate can run at all. Importing this package registers everything
with Alembic; ``migrations/env.py`` does so, enables the plugin with
``autogenerate_plugins=AUTOGENERATE_PLUGINS`` and passes
``include_name=include_name`` so that a table left by an interrupted
``change_partitioning`` is never proposed for dropping.
"""

from alembic.runtime.plugins import Plugin, _all_plugins

from bqrepo.alembic_ext import compare
from bqrepo.alembic_ext.clustering import SetClusteringOp
from bqrepo.alembic_ext.columns import BigQueryImpl
from bqrepo.alembic_ext.dataset import CreateDatasetOp, ensure_dataset
from bqrepo.alembic_ext.options import SetTableOptionsOp
from bqrepo.alembic_ext.partitioning import ChangePartitioningOp
from bqrepo.alembic_ext.rebuild import RepartitionError, include_name
from bqrepo.alembic_ext.reflection import patch_reflection

__all__ = [
    "AUTOGENERATE_PLUGINS",
    "BigQueryImpl",
    "ChangePartitioningOp",
    "CreateDatasetOp",
    "RepartitionError",
    "SetClusteringOp",
    "SetTableOptionsOp",
    "ensure_dataset",
    "include_name",
]

#: Alembic's own comparisons plus bqrepo's; pass as ``autogenerate_plugins``.
AUTOGENERATE_PLUGINS = ["alembic.autogenerate.*", compare.PLUGIN_NAME]

patch_reflection()
if compare.PLUGIN_NAME not in _all_plugins:
    Plugin.setup_plugin_from_module(compare, compare.PLUGIN_NAME)
