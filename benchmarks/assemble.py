"""Assemble benchmarks/RESULTS.md from the sections each benchmark wrote to benchmarks/results/.

    .venv/bin/python benchmarks/assemble.py

Each benchmark (``bench_writes.py``, ``bench_backfill.py``, ``bench_queries.py``)
writes its own section with ``--markdown benchmarks/results/<area>.md``;
this puts them under one header naming the machine and the date, so every
figure in RESULTS.md says where and when it was measured.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["summary", "writes", "writes_validate", "writes_ingest", "backfill", "queries", "queries_small"]


def machine() -> str:
    """CPU model, cores, RAM and Python: what the ratios were measured on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        kib = next(
            int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        ram = "RAM unknown"
    return f"{model}, {os.cpu_count()} cores, {ram}, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    sections = sorted((HERE / "results").glob("*.md"), key=lambda p: (ORDER + [p.stem]).index(p.stem))
    header = (
        "# Benchmark results\n\n"
        f"Assembled {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n\n"
        "Every figure is a ratio against a baseline measured in the same run (interleaved, minimum of\n"
        "the repeats), so a slower or busier machine moves both sides. Reproduce with\n"
        "`bash scripts/bench.sh` (add `--quick` for a smoke run). Each section says its own date,\n"
        "sizes and what would close any target not met.\n"
    )
    body = "\n\n".join(path.read_text().strip() for path in sections)
    (HERE / "RESULTS.md").write_text(header + "\n" + body + "\n")
    print(f"wrote {HERE / 'RESULTS.md'} from {', '.join(p.name for p in sections) or 'no sections'}")


if __name__ == "__main__":
    main()
