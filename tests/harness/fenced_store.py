"""Fencing in the leader's own store: the pattern of docs/fencing.md on SQLite.

The store keeps the highest term that ever wrote to it, in one row. Every write is one
transaction that first raises that row to the writer's term, only if the writer's term is
at least the stored one, and writes nothing when it is not: once a successor has written,
a stale leader's writes change nothing, and it is told so.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FencedStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS fence (id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER NOT NULL);
INSERT OR IGNORE INTO fence (id, term) VALUES (0, -1);
CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, value TEXT NOT NULL, term INTEGER NOT NULL);
"""


class FencedStore:
    """A key-value table guarded by the fence row; `path` may be shared by processes."""

    def __init__(self, path: Path | str) -> None:
        # autocommit mode: the transactions below are the ones written out
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def term(self) -> int:
        """The highest term that wrote (-1: none yet)."""
        (term,) = self._db.execute("SELECT term FROM fence WHERE id = 0").fetchone()
        return int(term)

    def write(self, term: int, key: str, value: str) -> bool:
        """Set `key` to `value` in `term`; False, with nothing changed, if a later term has
        written to the store. Blocks while another process writes (up to 30 s)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # the write lock first: check and write are one step
        try:
            raised = db.execute(
                "UPDATE fence SET term = ? WHERE id = 0 AND term <= ?", (term, term)
            ).rowcount
            if raised == 0:
                db.execute("ROLLBACK")
                return False
            db.execute(
                "INSERT INTO items (key, value, term) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, term = excluded.term",
                (key, value, term),
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    def read(self, key: str) -> tuple[str, int] | None:
        """`key`'s value and the term that wrote it (None: never written)."""
        row = self._db.execute("SELECT value, term FROM items WHERE key = ?", (key,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))
