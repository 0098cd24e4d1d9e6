"""Every Python example in the README and the docs runs as written.

Each fenced ``python`` block runs in its own interpreter, in an empty
directory with no bqrepo configuration, so an example that only works after
another one, or on the author's machine, fails here. A migration body (a
block that imports ``alembic.op``) is executed too: that checks its imports
and syntax; its operations are exercised by tests/test_alembic_ext.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples() -> list[pytest.param]:
    found = []
    for document in DOCUMENTS:
        blocks = FENCE.findall((ROOT / document).read_text())
        found += [pytest.param(code, id=f"{document}#{n}") for n, code in enumerate(blocks, 1)]
    return found


EXAMPLES = _examples()


def test_the_documents_have_examples() -> None:
    ids = {param.id.split("#")[0] for param in EXAMPLES}
    assert {"README.md", "docs/queries.md", "docs/writing.md"} <= ids


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BQREPO_", "BIGQUERY_", "GCP_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
