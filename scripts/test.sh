#!/usr/bin/env bash
# Install everything the tests need (packages, the local BigQuery stand-in) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# Installs local-bigquery into its own Python >= 3.13 venv; fails loudly if it cannot.
.venv/bin/python -m bqrepo.testing.standin install
# The back-fill tests read a real PostgreSQL 15 (Debian's package); they fail, never skip, without it.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ -z "${BQREPO_PG_BINDIR:-}" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
# Type-check first: the package must stay clean under mypy --strict (config: pyproject.toml [tool.mypy]).
.venv/bin/python -m mypy --strict bqrepo
exec .venv/bin/python -m pytest "$@"
