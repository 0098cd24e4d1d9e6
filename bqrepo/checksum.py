"""Row count and order-free checksums of a set of rows: one core, in SQL and in Python.

Why one core: the partition rebuild (:mod:`bqrepo.alembic_ext.rebuild`)
compares a chunk of rows on two BigQuery tables in SQL, and the back-fill
(:mod:`bqrepo.backfill.verify`) compares rows read from another database
with what landed, in Python. Both fold each row's SHA-256 digest the same
way (:data:`XOR_SLICE`, :data:`SUM_SLICES`), so "verified" means the same
thing in both places:

* ``BIT_XOR`` of the digest's first 60 bits sees any changed row but not a
  row present twice too many (pairs cancel);
* sums see that too, but a sum of 64-bit values overflows (the old
  checksum summed ``FARM_FINGERPRINT`` into BIGNUMERIC, which the stand-in
  stores as DECIMAL(38, 18): "Overflow in HUGEINT addition" at about 1,000
  rows). So four more 24-bit slices of the digest are summed as INT64: each
  term is below 2**24, so up to 2**39 rows (over 500 billion) cannot
  overflow on any engine.

In SQL (:func:`checksums`) a row's digest is ``SHA256(TO_JSON_STRING(row))``;
SHA256 is native on BigQuery and DuckDB, where the stand-in runs
FARM_FINGERPRINT in Python (60 s per 200,000 rows, against 2.5 s). In
Python (:class:`Checksum`) the caller chooses the text it hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.selectable import NamedFromClause

__all__ = ["SUM_SLICES", "XOR_SLICE", "Checksum", "checksums"]

#: The XORed slice of the digest's hex digits: (first digit, 1-based, as SQL's SUBSTR counts; digits).
XOR_SLICE = (1, 15)
#: The summed slices, right after it.
SUM_SLICES = tuple((16 + 6 * k, 6) for k in range(4))


def checksums(t: NamedFromClause) -> list[sa.ColumnElement[Any]]:
    """Row count and checksums of the rows' SHA-256 digests, for ``SELECT ... FROM t``.

    Each row's digest is ``SHA256(TO_JSON_STRING(row))`` as 64 hex digits;
    the columns are the count, the XOR and the four sums (module docstring).
    Hex slices are cast with a ``0x`` prefix, which BigQuery and DuckDB both read.
    """
    digest = sa.func.to_hex(sa.func.sha256(sa.func.to_json_string(t.table_valued())))

    def hex_slice(start: int, digits: int) -> sa.ColumnElement[Any]:
        text = sa.func.concat(sa.literal_column("'0x'", sa.String()), sa.func.substr(digest, _int(start), _int(digits)))
        return sa.cast(text, sa.BigInteger())

    sums = [sa.func.sum(hex_slice(start, digits)) for start, digits in SUM_SLICES]
    return [sa.func.count(), sa.func.bit_xor(hex_slice(*XOR_SLICE)), *sums]


def _int(value: int) -> Any:
    """A constant of the checksum, written into the SQL (code, not data)."""
    return sa.literal_column(str(int(value)), sa.BigInteger())


# The slices as (right shift, mask) of the digest read as one 256-bit integer:
# one int.from_bytes and five shifts instead of a hex digest and five int(text, 16).
_XOR_SHIFT = 256 - 4 * (XOR_SLICE[0] - 1 + XOR_SLICE[1])
_SUM_SHIFTS = tuple((256 - 4 * (start - 1 + digits), (1 << (4 * digits)) - 1) for start, digits in SUM_SLICES)


@dataclass
class Checksum:
    """:func:`checksums` computed in Python, one row at a time; equal sets of rows give equal values."""

    rows: int = 0
    xor: int = 0
    sums: list[int] = field(default_factory=lambda: [0] * len(SUM_SLICES))

    def add(self, text: str) -> None:
        """Fold in one row, given as the text whose SHA-256 digest stands for it."""
        self.add_all((text,))

    def add_all(self, texts: Iterable[str]) -> None:
        """Fold in many rows at once (:meth:`add` for each, without its per-call overhead)."""
        rows, xor, sums = self.rows, self.xor, self.sums
        (shift0, mask0), (shift1, mask1), (shift2, mask2), (shift3, mask3) = _SUM_SHIFTS
        sha256, from_bytes = hashlib.sha256, int.from_bytes
        for text in texts:
            digest = from_bytes(sha256(text.encode("utf-8")).digest(), "big")
            rows += 1
            xor ^= digest >> _XOR_SHIFT
            sums[0] += (digest >> shift0) & mask0
            sums[1] += (digest >> shift1) & mask1
            sums[2] += (digest >> shift2) & mask2
            sums[3] += (digest >> shift3) & mask3
        self.rows, self.xor = rows, xor

    def merge(self, rows: int, xor: int, sums: Sequence[int]) -> None:
        """Fold in a fold computed elsewhere (in SQL, say): ``rows`` rows, their XOR and sums."""
        if len(sums) != len(self.sums):
            raise ValueError(f"expected {len(self.sums)} sums, got {len(sums)}")
        self.rows += rows
        self.xor ^= xor
        self.sums = [mine + theirs for mine, theirs in zip(self.sums, sums)]

    def values(self) -> tuple[int, ...]:
        """``(count, xor, *sums)``: the row :func:`checksums` selects."""
        return (self.rows, self.xor, *self.sums)
