"""Back-fill progress in a small JSON file, replaced atomically.

Why a file, not a table in the destination: it works the same on DuckDB and
BigQuery, costs no query, and can be read or deleted by a person.

The protocol that makes a killed run resume with no duplicates and no gaps:

1. before a chunk is written, it is recorded as ``in_flight`` (file synced);
2. the chunk is written in one load job (BigQuery) or one transaction
   (DuckDB): all of it lands, or none of it;
3. the chunk is recorded as ``completed`` and leaves ``in_flight``.

A kill between 2 and 3 leaves a chunk that may or may not be in the
destination. Chunks are also clipped to each run's ``--since``/``--until``,
so two runs can cover the same partitions with chunks of different bounds.
The runner therefore compares its plan with this file by *interval*, never
by key (see :mod:`bqrepo.backfill.runner`): a planned chunk inside completed
chunks is skipped, and one that overlaps a completed or in-flight chunk is
reconciled: the ids already stored in its range are read and only the
missing rows are written. Raw counts then match the source exactly
(verification compares raw counts, not only distinct ids).

``in_flight`` is a list because a chunk left in flight stays "maybe written"
until completed chunks cover it, even when the next runs plan other ranges.

The file also records a secret-free description of the source and the
destination; resuming against a different pair is refused rather than
silently marking the wrong chunks done.

Format version 2; version 1 files (``in_flight`` a single key or null) are
read unchanged and rewritten as version 2 on the next chunk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bqrepo.backfill.chunks import Chunk, covered, merge
from bqrepo.json_encoding import to_json_text
from bqrepo.redact import redact_text
from bqrepo.settings import ConfigurationError

__all__ = ["Checkpoint"]

_VERSION = 2
_READABLE = (1, 2)


def _keys(data: dict[str, Any]) -> tuple[dict[Any, Any], list[Any]]:
    """``completed`` and ``in_flight`` as stored; version 1 kept one in-flight key or null."""
    completed, in_flight = data.get("completed"), data.get("in_flight")
    if not isinstance(completed, dict):
        raise ValueError("'completed' is not an object")
    if data["version"] == 1:
        return completed, [] if in_flight is None else [in_flight]
    if not isinstance(in_flight, list):
        raise ValueError("'in_flight' is not a list")
    return completed, in_flight


@dataclass
class Checkpoint:
    """Completed chunks (chunk -> rows written) and the chunks that may or may not have landed."""

    path: Path
    table: str
    source: str
    destination: str
    completed: dict[Chunk, int] = field(default_factory=dict)
    in_flight: list[Chunk] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        table: str,
        source: str,
        destination: str,
        timestamp: bool,
        former_sources: tuple[str, ...] = (),
    ) -> Checkpoint:
        """Load ``path`` or start a new checkpoint; refuse one made for another back-fill.

        ``timestamp``: whether chunk bounds are UTC midnights (TIMESTAMP
        partitions) or dates, as :meth:`Chunk.from_key` expects.
        ``former_sources``: how older bqrepo versions named the same source;
        such a file is accepted and rewritten with ``source`` on the next save
        (older versions could store a query-string password there).
        """
        path = Path(path)
        if not path.exists():
            return cls(path, table, source, destination)
        try:
            data: dict[str, Any] = json.loads(path.read_text("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"checkpoint {path} is unreadable ({exc}); delete it to start over") from None
        if data.get("version") not in _READABLE:
            raise ConfigurationError(
                f"checkpoint {path} has format version {data.get('version')!r}; this bqrepo reads versions "
                f"{', '.join(map(str, _READABLE))}: use the bqrepo that wrote it"
            )
        rewrite = data.get("source") in former_sources
        if rewrite:
            data["source"] = source
        for key, expected in (("table", table), ("source", source), ("destination", destination)):
            if data.get(key) != expected:
                raise ConfigurationError(
                    redact_text(
                        f"checkpoint {path} belongs to another back-fill ({key}: {data.get(key)!r}, "
                        f"now {expected!r}); pass another --checkpoint or delete it"
                    )
                )
        try:
            completed_keys, in_flight_keys = _keys(data)
            completed = {Chunk.from_key(k, timestamp=timestamp): int(v) for k, v in completed_keys.items()}
            in_flight = [Chunk.from_key(k, timestamp=timestamp) for k in in_flight_keys]
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"checkpoint {path} is damaged ({exc}); delete it to start over") from None
        checkpoint = cls(path, table, source, destination, completed=completed, in_flight=in_flight)
        if rewrite:  # at once: the former key may hold a query-string password
            checkpoint.save()
        return checkpoint

    def save(self) -> None:
        """Write the file atomically and durably: a crash leaves the old or the new state."""
        # Keys in sorted order, as the files written with json.dump(sort_keys=True) had them.
        data = {
            "completed": dict(sorted((chunk.key, rows) for chunk, rows in self.completed.items())),
            "destination": self.destination,
            "in_flight": [chunk.key for chunk in self.in_flight],
            "source": self.source,
            "table": self.table,
            "version": _VERSION,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(to_json_text(data, indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def begin(self, chunk: Chunk) -> None:
        """Step 1: ``chunk`` is about to be written."""
        if chunk not in self.in_flight:
            self.in_flight.append(chunk)
        self.save()

    def commit(self, chunk: Chunk, rows: int) -> None:
        """Step 3: ``chunk`` is in the destination with ``rows`` rows.

        In-flight chunks that completed chunks now cover are settled too: every
        row of theirs has been written (or found present) since.
        """
        self.completed[chunk] = rows
        union = merge(self.completed)
        self.in_flight = [pending for pending in self.in_flight if not covered(pending, union)]
        self.save()
