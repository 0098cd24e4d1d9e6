#!/usr/bin/env bash
# Install everything the tests need (packages, the local BigQuery stand-in) and run them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# Installs local-bigquery into its own Python >= 3.13 venv; fails loudly if it cannot.
.venv/bin/python -m bqrepo.testing.standin install
exec .venv/bin/python -m pytest "$@"
