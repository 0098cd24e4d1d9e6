"""BigQuery's label rules, for table labels and job labels alike.

Why a module of its own: tables (:mod:`bqrepo.table_options`) and query jobs
(``BQREPO_JOB_LABELS``, :mod:`bqrepo.cost`) carry labels under the same
rules, and settings must check them without importing the BigQuery client.
bqrepo keeps to the ASCII subset: lowercase letters, digits, ``_`` and ``-``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_LABELS", "label_problem"]

#: Labels per table or job.
MAX_LABELS = 64

_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")


def label_problem(key: Any, value: Any) -> str | None:
    """What is wrong with one label, in words, or ``None`` when BigQuery accepts it."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        return (
            f"label key {key!r} must start with a lowercase letter "
            "and hold at most 63 lowercase letters, digits, '_' or '-'"
        )
    if not isinstance(value, str) or not _VALUE_RE.fullmatch(value):
        return f"label {key!r} value {value!r} must hold at most 63 lowercase letters, digits, '_' or '-'"
    return None
