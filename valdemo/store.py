"""SQLite persistence: runs and their rows, labels, concepts, overrides.

One database file (``VALDEMO_DB``). WAL journal with ``synchronous=FULL``: a
write that returned is on disk, so a label the UI acknowledged survives a
``kill -9``. Each thread gets its own connection; writes go through
:meth:`Store.tx`, which commits before returning.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        method TEXT NOT NULL,
        created REAL NOT NULL,
        params TEXT NOT NULL,
        summary TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS run_rows (
        run_id TEXT NOT NULL REFERENCES runs(id),
        idx INTEGER NOT NULL,
        row TEXT NOT NULL,
        PRIMARY KEY (run_id, idx)
    )""",
]


class Store:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.tx() as conn:
            for ddl in _SCHEMA + _EXTRA_SCHEMA:
                conn.execute(ddl)

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (and synced) when the block ends."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn().execute(sql, params).fetchall()

    # -- runs ------------------------------------------------------------------------
    def save_run(self, method: str, params: dict, summary: dict, rows: list[dict]) -> str:
        run_id = f"{method}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO runs (id, method, created, params, summary) VALUES (?, ?, ?, ?, ?)",
                (run_id, method, time.time(), _dumps(params), _dumps(summary)),
            )
            conn.executemany(
                "INSERT INTO run_rows (run_id, idx, row) VALUES (?, ?, ?)",
                [(run_id, i, _dumps(r)) for i, r in enumerate(rows)],
            )
        return run_id

    def get_run(self, run_id: str) -> dict | None:
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            return None
        r = rows[0]
        return {"id": r["id"], "method": r["method"], "created": r["created"],
                "params": json.loads(r["params"]), "summary": json.loads(r["summary"])}

    def run_rows(self, run_id: str) -> list[dict]:
        return [json.loads(r["row"]) for r in
                self.query("SELECT row FROM run_rows WHERE run_id = ? ORDER BY idx", (run_id,))]

    def list_runs(self, method: str | None = None, limit: int = 50) -> list[dict]:
        sql = "SELECT id, method, created, summary FROM runs"
        params: tuple = ()
        if method:
            sql += " WHERE method = ?"
            params = (method,)
        sql += " ORDER BY created DESC LIMIT ?"
        return [{"id": r["id"], "method": r["method"], "created": r["created"],
                 "summary": json.loads(r["summary"])} for r in self.query(sql, (*params, limit))]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


# Tables of individual methods (labels, concepts, judge overrides) are added
# below, each in its own section, and created with the core tables.
_EXTRA_SCHEMA: list[str] = []


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def get_store(path: Path | str | None = None) -> Store:
    """The process's Store for ``path`` (default: the configured database)."""
    from .config import get_settings

    resolved = Path(path or get_settings().db_path).resolve()
    with _stores_lock:
        if resolved not in _stores:
            _stores[resolved] = Store(resolved)
        return _stores[resolved]
