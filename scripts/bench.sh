#!/usr/bin/env bash
# The benchmarks of issue 13, with one command: sets up what they need (the venv with the
# test extra, the local BigQuery stand-in, PostgreSQL 15 for the back-fill), runs each
# benchmark, and assembles benchmarks/RESULTS.md (machine, date, ratios against baselines
# measured in the same run). Not part of CI: the full run takes tens of minutes.
#
#   bash scripts/bench.sh            # full sizes (1M-row ingest and back-fill, 10M-row queries)
#   bash scripts/bench.sh --quick    # smoke sizes, a few minutes
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
if [ "${1:-}" = "--quick" ]; then quick=(--quick); fi
bash scripts/setup.sh test
.venv/bin/python -m bqrepo.testing.standin install
if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ -z "${BQREPO_PG_BINDIR:-}" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
mkdir -p benchmarks/results
.venv/bin/python benchmarks/bench_writes.py "${quick[@]}" --standin --markdown benchmarks/results/writes.md
.venv/bin/python benchmarks/bench_backfill.py "${quick[@]}" --markdown benchmarks/results/backfill.md
.venv/bin/python benchmarks/bench_queries.py "${quick[@]}" --markdown benchmarks/results/queries.md
.venv/bin/python benchmarks/assemble.py
