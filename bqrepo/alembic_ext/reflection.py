"""Two gaps in sqlalchemy-bigquery's reflection that break autogenerate.

Autogenerate reflects each live table through the dialect. sqlalchemy-bigquery
1.17.3 gets two things wrong there:

* ``get_pk_constraint`` returns ``{"constrained_columns": []}`` without the
  ``"name"`` key SQLAlchemy's reflection contract requires; Alembic 1.20
  reads ``const["name"]`` and fails with ``KeyError: 'name'`` on every table.
* It maps no ``JSON`` type (it emits JSON in DDL since 1.17, but reflects it
  as ``NullType`` with an SAWarning), so ``events.metadata`` would warn on
  every comparison.

Both are patched here, narrowly, when the extension is imported: the primary
key reflection gains ``name: None``, and ``JSON`` maps to ``sa.JSON``.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy_bigquery import _types
from sqlalchemy_bigquery.base import BigQueryDialect

__all__ = ["patch_reflection"]


def patch_reflection() -> None:
    """Apply both fixes; calling it again changes nothing."""
    _types._type_map.setdefault("JSON", sa.types.JSON)
    original = BigQueryDialect.get_pk_constraint
    if getattr(original, "_bqrepo_patched", False):
        return

    @functools.wraps(original)
    def get_pk_constraint(self: BigQueryDialect, *args: Any, **kw: Any) -> dict[str, Any]:
        return {"name": None, **original(self, *args, **kw)}

    get_pk_constraint._bqrepo_patched = True  # type: ignore[attr-defined]
    BigQueryDialect.get_pk_constraint = get_pk_constraint
