"""The ``bqrepo`` command line: info, migrate, ingest, queries, demo, back-fill.

Nothing in bqrepo's core imports this package; it is a client of the core
like any other. ``main`` is the console script's entry point.
"""

from bqrepo.cli.app import app, main

__all__ = ["app", "main"]
