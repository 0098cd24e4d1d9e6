"""Back-fill progress in a small JSON file, replaced atomically.

Why a file, not a table in the destination: it works the same on DuckDB and
BigQuery, costs no query, and can be read or deleted by a person.

The protocol that makes a killed run resume with no duplicates and no gaps:

1. before a chunk is written, it is recorded as ``in_flight`` (file synced);
2. the chunk is written in one load job (BigQuery) or one transaction
   (DuckDB): all of it lands, or none of it;
3. the chunk is recorded as ``completed`` and ``in_flight`` cleared.

A kill between 2 and 3 leaves a chunk that may or may not be in the
destination. On resume the runner reads the ids already stored in that
chunk's range and writes only the missing rows, so raw counts match the
source exactly (verification compares raw counts, not only distinct ids).

The file also records a secret-free description of the source and the
destination; resuming against a different pair is refused rather than
silently marking the wrong chunks done.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bqrepo.settings import ConfigurationError

__all__ = ["Checkpoint"]

_VERSION = 1


@dataclass
class Checkpoint:
    """Completed chunks (key -> rows written) and the chunk being written, if any."""

    path: Path
    table: str
    source: str
    destination: str
    completed: dict[str, int] = field(default_factory=dict)
    in_flight: str | None = None

    @classmethod
    def open(cls, path: str | Path, *, table: str, source: str, destination: str) -> Checkpoint:
        """Load ``path`` or start a new checkpoint; refuse one made for another back-fill."""
        path = Path(path)
        if not path.exists():
            return cls(path, table, source, destination)
        try:
            data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"checkpoint {path} is unreadable ({exc}); delete it to start over") from None
        for key, expected in (("table", table), ("source", source), ("destination", destination)):
            if data.get(key) != expected:
                raise ConfigurationError(
                    f"checkpoint {path} belongs to another back-fill ({key}: {data.get(key)!r}, "
                    f"now {expected!r}); pass another --checkpoint or delete it"
                )
        return cls(
            path,
            table,
            source,
            destination,
            completed={str(k): int(v) for k, v in data.get("completed", {}).items()},
            in_flight=data.get("in_flight"),
        )

    def save(self) -> None:
        """Write the file atomically and durably: a crash leaves the old or the new state."""
        data = {
            "version": _VERSION,
            "table": self.table,
            "source": self.source,
            "destination": self.destination,
            "in_flight": self.in_flight,
            "completed": self.completed,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def begin(self, key: str) -> None:
        """Step 1: the chunk ``key`` is about to be written."""
        self.in_flight = key
        self.save()

    def commit(self, key: str, rows: int) -> None:
        """Step 3: the chunk ``key`` is in the destination with ``rows`` rows."""
        self.completed[key] = rows
        self.in_flight = None
        self.save()
