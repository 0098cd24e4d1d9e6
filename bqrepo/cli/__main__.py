"""``python -m bqrepo.cli``: the same as the ``bqrepo`` console script."""

from bqrepo.cli.app import main

main()
