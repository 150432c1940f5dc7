"""SQLite persistence: runs and their rows, labels, concepts, overrides.

One database file (``VALDEMO_DB``). WAL journal with ``synchronous=FULL``: a
write that returned is on disk, so a label the UI acknowledged survives a
``kill -9``. Each thread gets its own connection; writes go through
:meth:`Store.tx`, which commits before returning.

Several processes may share the file (the app, CLI runs). SQLite's cross-process
safety rests on POSIX advisory locks, and a process loses *all* its locks on a file
the moment it closes *any* descriptor of that file (for example by reading the
database's bytes with ``open()``/``Path.read_bytes()``). Another process closing
its last connection then believes it is the last user and deletes the ``-wal`` and
``-shm`` files under this process's open connections: fresh readers fail with
``disk I/O error`` and the old connection's commits land in an unlinked log (lost).
Never open the database files directly in a process that uses the store. As a
guard, every connection remembers the identity (device, inode) of the database and
of its write-ahead log: a thread whose files were replaced reconnects before its
next statement, and a commit whose log vanished during the transaction is refused
with :class:`StoreError` instead of being acknowledged.
"""

from __future__ import annotations

import json
import os
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


class StoreError(sqlite3.OperationalError):
    """A write could not be made durable (it is not acknowledged)."""


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


class Store:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._wal_path = f"{self.path}-wal"
        with self.tx() as conn:
            for ddl in _SCHEMA + _EXTRA_SCHEMA:
                conn.execute(ddl)
            _migrate(conn)

    def _files_intact(self) -> bool:
        """True if this thread's connection still writes to the files at ``self.path``."""
        local = self._local
        if _file_id(str(self.path)) != local.db_id:
            return False
        if local.wal:
            if local.wal_id is None:  # the log is created by the first transaction
                local.wal_id = _file_id(self._wal_path)
            elif _file_id(self._wal_path) != local.wal_id:
                return False
        return True

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, reopened if the database or its log was replaced."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and not self._files_intact():
            self._drop()
            conn = None
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            self._local.db_id = _file_id(str(self.path))
            self._local.wal = str(mode).lower() == "wal"
            self._local.wal_id = None
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (and synced) when the block ends.

        Raises :class:`StoreError` (and the write counts as not made) if the database's files
        were removed or replaced while the transaction ran."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if not self._files_intact():
            self._drop()
            raise StoreError(f"the write to {self.path.name} was not kept: its files were removed or replaced while "
                             "it was being written (another process, or something that opened and closed the "
                             "database file in this one); try again")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Read on this thread's connection (autocommit, fully fetched: no transaction or snapshot
        outlives the call, so the answer reflects every commit so far)."""
        return self.conn().execute(sql, params).fetchall()

    # -- runs ------------------------------------------------------------------------
    def _save_run(self, method: str, params: dict, summary: dict, rows: list[dict], owner: str = "") -> str:
        """Store a run and its rows in one transaction; ``owner`` is an Owner id ('' = nobody's).

        Private: every run is saved through :mod:`valdemo.core.runs` (``save_run`` for a Result,
        ``save_checkpoint`` for a resumable run's state), the one path (tests/test_house.py checks)."""
        run_id = f"{method}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO runs (id, method, created, params, summary, owner) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, method, time.time(), _dumps(params), _dumps(summary), owner or ""),
            )
            conn.executemany(
                "INSERT INTO run_rows (run_id, idx, row) VALUES (?, ?, ?)",
                [(run_id, i, _dumps(r)) for i, r in enumerate(rows)],
            )
        return run_id

    def get_run(self, run_id: str, owner: str | None = None) -> dict | None:
        """The run, or None if it does not exist or (``owner`` given) is not readable by that owner."""
        sql, params = owner_filter("SELECT * FROM runs WHERE id = ?", (run_id,), owner)
        rows = self.query(sql, params)
        if not rows:
            return None
        r = rows[0]
        return {"id": r["id"], "method": r["method"], "created": r["created"], "owner": r["owner"],
                "params": json.loads(r["params"]), "summary": json.loads(r["summary"])}

    def run_rows(self, run_id: str, owner: str | None = None) -> list[dict]:
        if owner is not None and self.get_run(run_id, owner) is None:
            return []
        return [json.loads(r["row"]) for r in
                self.query("SELECT row FROM run_rows WHERE run_id = ? ORDER BY idx", (run_id,))]

    def list_runs(self, method: str | None = None, limit: int = 50, owner: str | None = None) -> list[dict]:
        """Newest first; ``owner`` given: only the runs that owner may read (None: all, for local tools)."""
        sql = "SELECT id, method, created, summary, owner FROM runs WHERE 1 = 1"
        params: tuple = ()
        if method:
            sql += " AND method = ?"
            params = (method,)
        sql, params = owner_filter(sql, params, owner)
        sql += " ORDER BY created DESC LIMIT ?"
        return [{"id": r["id"], "method": r["method"], "created": r["created"], "owner": r["owner"],
                 "summary": json.loads(r["summary"])} for r in self.query(sql, (*params, limit))]


def owner_filter(sql: str, params: tuple, owner: str | None, column: str = "owner") -> tuple[str, tuple]:
    """Append ``AND <column> IN (...)`` for the owners whose rows ``owner`` may read
    (:func:`valdemo.core.owner.readable_owners`, public mode from the environment); None: no filter."""
    if owner is None:
        return sql, params
    from .core.owner import is_public, readable_owners

    allowed = readable_owners(owner, is_public())
    if not allowed:
        return sql + " AND 0", params
    return sql + f" AND {column} IN ({', '.join('?' for _ in allowed)})", (*params, *allowed)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


# Tables of individual methods (labels, concepts, judge overrides) are added
# below, each in its own section, and created with the core tables.
_EXTRA_SCHEMA: list[str] = []

# Columns added after a table first shipped: (table, column, declaration). Added in place
# (ALTER TABLE ... ADD COLUMN) when a store opens an older file; additive only, with defaults,
# so old rows read as owner '' (legacy: nobody's in public mode) and old code keeps working.
_COLUMNS: list[tuple[str, str, str]] = [
    ("runs", "owner", "TEXT NOT NULL DEFAULT ''"),
    # CLAVE: who submitted a label (Owner id) and whether the annotator name was the signed-in
    # Hugging Face user; concepts and recognizers belong to their owner.
    ("clave_labels", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("clave_labels", "verified", "INTEGER NOT NULL DEFAULT 0"),
    ("clave_concepts", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("clave_recognizers", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("clave_recognizers", "name", "TEXT NOT NULL DEFAULT ''"),  # the name its owner gave it ('' none)
    # VUM: who overrode the judge.
    ("vum_overrides", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("vum_overrides", "owner_name", "TEXT NOT NULL DEFAULT ''"),
    ("vum_overrides", "verified", "INTEGER NOT NULL DEFAULT 0"),
    # VUM: which saved run and row an override belongs to ('' / NULL: a live row saved before runs had them).
    ("vum_overrides", "run_id", "TEXT NOT NULL DEFAULT ''"),
    ("vum_overrides", "row_idx", "INTEGER"),
]
_INDEXES: list[str] = [
    "CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner, method, created)",
    "CREATE INDEX IF NOT EXISTS vum_overrides_by_owner ON vum_overrides (owner, id)",
]


def _migrate(conn: sqlite3.Connection) -> None:
    for table, column, decl in _COLUMNS:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    for ddl in _INDEXES:
        conn.execute(ddl)


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


# ======================================================================================
# CLAVE (issue 5): calibration samples, labels keyed by annotator (with undo), value
# concepts with the model that wrote them, and calibrated recognizers.
# Labels are an append-only event log: a row per submission (label NULL = skipped);
# undo marks the annotator's latest live row as undone. An annotator's current label
# for a sample is their latest live row for it.
# ======================================================================================

_EXTRA_SCHEMA += [
    """CREATE TABLE IF NOT EXISTS clave_samples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        value TEXT NOT NULL,
        text TEXT NOT NULL,
        source TEXT NOT NULL,
        created REAL NOT NULL,
        UNIQUE (value, text)
    )""",
    """CREATE TABLE IF NOT EXISTS clave_labels (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sample_id INTEGER NOT NULL REFERENCES clave_samples(id),
        annotator TEXT NOT NULL,
        label INTEGER CHECK (label IS NULL OR label IN (-1, 0, 1)),
        note TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        undone INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS clave_labels_by_annotator ON clave_labels (annotator, sample_id)",
    """CREATE TABLE IF NOT EXISTS clave_concepts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        value TEXT NOT NULL,
        concepts TEXT NOT NULL,
        model TEXT NOT NULL,
        created REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS clave_recognizers (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        path TEXT NOT NULL,
        summary TEXT NOT NULL
    )""",
]


def clave_add_samples(store: Store, rows: list[tuple[str, str]], source: str) -> list[int]:
    """Insert (value, text) samples (existing ones are kept); the sample ids, in order."""
    now = time.time()
    ids: list[int] = []
    with store.tx() as conn:
        for value, text in rows:
            conn.execute("INSERT OR IGNORE INTO clave_samples (value, text, source, created) VALUES (?, ?, ?, ?)",
                         (value, text, source, now))
            ids.append(conn.execute("SELECT id FROM clave_samples WHERE value = ? AND text = ?",
                                    (value, text)).fetchone()[0])
    return ids


def clave_add_label(store: Store, sample_id: int, annotator: str, label: int | None, note: str = "",
                    created: float | None = None, owner: str = "", verified: bool = False) -> int:
    """Record one submission (``label`` None = skipped), committed before returning; its seq.

    ``owner`` is the submitter's Owner id; ``verified`` is True only when ``annotator`` is the
    signed-in Hugging Face user (see valdemo.core.owner.resolve_annotator)."""
    with store.tx() as conn:
        if conn.execute("SELECT 1 FROM clave_samples WHERE id = ?", (sample_id,)).fetchone() is None:
            raise KeyError(f"no calibration sample with id {sample_id}")
        cur = conn.execute(
            "INSERT INTO clave_labels (sample_id, annotator, label, note, created, owner, verified) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sample_id, annotator, label, note, created if created is not None else time.time(), owner or "",
             int(bool(verified))))
        return int(cur.lastrowid)


def clave_add_labels(store: Store, rows: list[tuple[int, str, int | None, str, float]]) -> int:
    """Bulk insert (sample_id, annotator, label, note, created) rows in one transaction."""
    with store.tx() as conn:
        conn.executemany(
            "INSERT INTO clave_labels (sample_id, annotator, label, note, created) VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def clave_undo(store: Store, annotator: str) -> dict | None:
    """Undo the annotator's latest live submission; the undone row (with its sample) or None."""
    with store.tx() as conn:
        row = conn.execute(
            "SELECT l.seq, l.sample_id, l.label, l.note, s.value, s.text FROM clave_labels l "
            "JOIN clave_samples s ON s.id = l.sample_id "
            "WHERE l.annotator = ? AND l.undone = 0 ORDER BY l.seq DESC LIMIT 1", (annotator,)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE clave_labels SET undone = 1 WHERE seq = ?", (row["seq"],))
        return dict(row)


_CLAVE_CURRENT = (
    "SELECT l.seq, l.sample_id, l.annotator, l.label, l.note, l.created, l.verified, s.value, s.text, s.source "
    "FROM clave_labels l JOIN clave_samples s ON s.id = l.sample_id "
    "WHERE l.undone = 0 AND l.seq = (SELECT MAX(m.seq) FROM clave_labels m WHERE m.undone = 0 "
    "AND m.annotator = l.annotator AND m.sample_id = l.sample_id)"
)


def clave_current_labels(store: Store, annotator: str | None = None, include_skips: bool = False) -> list[dict]:
    """Each annotator's current label per sample (latest live submission), oldest first."""
    sql, params = _CLAVE_CURRENT, []
    if annotator is not None:
        sql += " AND l.annotator = ?"
        params.append(annotator)
    if not include_skips:
        sql += " AND l.label IS NOT NULL"
    return [dict(r) for r in store.query(sql + " ORDER BY l.seq", tuple(params))]


def clave_next_sample(store: Store, annotator: str, value: str | None = None) -> dict | None:
    """The first sample the annotator has neither labelled nor skipped (optionally of one value)."""
    sql = ("SELECT id, value, text, source FROM clave_samples s WHERE NOT EXISTS ("
           "SELECT 1 FROM clave_labels l WHERE l.sample_id = s.id AND l.annotator = ? AND l.undone = 0)")
    params: list = [annotator]
    if value:
        sql += " AND s.value = ?"
        params.append(value)
    rows = store.query(sql + " ORDER BY s.id LIMIT 1", tuple(params))
    return dict(rows[0]) if rows else None


def clave_get_sample(store: Store, sample_id: int) -> dict | None:
    rows = store.query("SELECT id, value, text, source FROM clave_samples WHERE id = ?", (sample_id,))
    return dict(rows[0]) if rows else None


def clave_sample_counts(store: Store) -> dict[str, int]:
    return {r["value"]: r["n"] for r in
            store.query("SELECT value, COUNT(*) AS n FROM clave_samples GROUP BY value")}


def clave_annotator_verified(store: Store) -> dict[str, bool]:
    """annotator -> True only if every one of their current labels was made by the signed-in
    Hugging Face user of that name (exports and agreement tables mark the others unverified)."""
    return {r["annotator"]: bool(r["v"]) for r in store.query(
        f"SELECT annotator, MIN(verified) AS v FROM ({_CLAVE_CURRENT}) GROUP BY annotator")}


def clave_annotators(store: Store) -> list[str]:
    return [r["annotator"] for r in
            store.query("SELECT DISTINCT annotator FROM clave_labels WHERE undone = 0 ORDER BY annotator")]


def clave_save_concepts(store: Store, value: str, concepts: dict, model: str, owner: str = "") -> int:
    with store.tx() as conn:
        cur = conn.execute("INSERT INTO clave_concepts (value, concepts, model, created, owner) VALUES (?, ?, ?, ?, ?)",
                           (value, _dumps(concepts), model, time.time(), owner or ""))
        return int(cur.lastrowid)


def clave_latest_concepts(store: Store, owner: str | None = None) -> dict[str, dict]:
    """value -> {"concepts": {...}, "model": str, "created": float} (latest saved per value, among
    the rows ``owner`` may read; None: all)."""
    sql, params = owner_filter("SELECT MAX(id) AS id FROM clave_concepts WHERE 1 = 1", (), owner)
    rows = store.query("SELECT value, concepts, model, created FROM clave_concepts WHERE id IN "
                       f"({sql} GROUP BY value)", params)
    return {r["value"]: {"concepts": json.loads(r["concepts"]), "model": r["model"], "created": r["created"]}
            for r in rows}


def clave_save_recognizer(store: Store, rec_id: str, path: str, summary: dict, owner: str = "", name: str = "") -> None:
    with store.tx() as conn:
        conn.execute("INSERT INTO clave_recognizers (id, created, path, summary, owner, name) VALUES (?, ?, ?, ?, ?, ?)",
                     (rec_id, time.time(), path, _dumps(summary), owner or "", name or ""))


def clave_recognizer_rows(store: Store, owner: str | None = None, ref: str = "", limit: int = 200) -> list[dict]:
    """Recognizers ``owner`` may read (None: any), newest first; ``ref`` keeps those whose id or
    name is ``ref``."""
    sql, params = owner_filter("SELECT id, created, path, summary, owner, name FROM clave_recognizers WHERE 1 = 1",
                               (), owner)
    if ref:
        sql, params = sql + " AND (id = ? OR name = ?)", (*params, ref, ref)
    rows = store.query(sql + " ORDER BY created DESC, id DESC LIMIT ?", (*params, int(limit)))
    return [{"id": r["id"], "created": r["created"], "path": r["path"], "summary": json.loads(r["summary"]),
             "owner": r["owner"], "name": r["name"]} for r in rows]


def clave_latest_recognizer_row(store: Store, owner: str | None = None, ref: str = "") -> dict | None:
    """The newest recognizer ``owner`` may read (None: any), or the newest named / with id ``ref``."""
    rows = clave_recognizer_rows(store, owner, ref, limit=1)
    return rows[0] if rows else None


# ======================================================================================
# Value dialogue / VUM (issue 3): a person's overrides of the judge's critique scores,
# one row per overridden part, kept with the text that was judged.
# ======================================================================================
_EXTRA_SCHEMA.append(
    """CREATE TABLE IF NOT EXISTS vum_overrides (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created REAL NOT NULL,
        item_id TEXT NOT NULL,
        text TEXT NOT NULL,
        value TEXT,
        label INTEGER,
        part TEXT NOT NULL,
        part_text TEXT NOT NULL,
        judge_score INTEGER,
        human_score INTEGER NOT NULL CHECK (human_score BETWEEN 1 AND 5),
        target TEXT,
        judge TEXT
    )"""
)

_VUM_OVERRIDE_FIELDS = ("item_id", "text", "value", "label", "part", "part_text", "judge_score", "human_score",
                        "target", "judge")
#: Who made the override: Owner id, shown name, signed in (1) or not (0); and the saved run and row
#: index it overrides ('' and NULL where the row was not saved).
_VUM_OWNER_FIELDS = (("owner", ""), ("owner_name", ""), ("verified", 0), ("run_id", ""), ("row_idx", None))


def _override_values(entry: dict) -> tuple:
    return (*[entry.get(k) for k in _VUM_OVERRIDE_FIELDS],
            *[entry.get(k) if entry.get(k) is not None else default for k, default in _VUM_OWNER_FIELDS])


_VUM_INSERT = (f"INSERT INTO vum_overrides (created, {', '.join(_VUM_OVERRIDE_FIELDS)}, "
               f"{', '.join(k for k, _ in _VUM_OWNER_FIELDS)}) "
               f"VALUES (?, {', '.join('?' for _ in range(len(_VUM_OVERRIDE_FIELDS) + len(_VUM_OWNER_FIELDS)))})")


def vum_save_override(store: Store, entry: dict) -> int:
    """Store one human score for one judged critique part; returns its row id. ``entry`` may
    carry ``owner``, ``owner_name`` and ``verified`` (who made it)."""
    with store.tx() as conn:
        return int(conn.execute(_VUM_INSERT, (time.time(), *_override_values(entry))).lastrowid)


def vum_save_overrides(store: Store, entries: list[dict]) -> list[int]:
    """Several overrides (the parts of one judged answer) in one transaction: all or none."""
    now = time.time()
    with store.tx() as conn:
        return [int(conn.execute(_VUM_INSERT, (now, *_override_values(e))).lastrowid) for e in entries]


def vum_overrides(store: Store, owner: str | None = None) -> list[dict]:
    """Stored overrides, oldest first; ``owner`` given: only those that owner may read."""
    sql, params = owner_filter("SELECT * FROM vum_overrides WHERE 1 = 1", (), owner)
    return [dict(r) for r in store.query(sql + " ORDER BY id", params)]
