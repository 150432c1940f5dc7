"""The SQLite store (issue 12 part 5): no acknowledged write is ever lost.

Real SQLite files, real threads, real child processes. The fault in
``test_lost_locks_*`` is real too: this process opens and closes the database file
outside SQLite (as the browser test's secret scan once did), which drops its POSIX
locks, and a child process that then closes its last connection deletes the
write-ahead log under this process's open connection.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from valdemo import store as st
from valdemo.store import Store, StoreError

ROOT = Path(__file__).resolve().parents[1]

# A child process that uses the store the way a CLI run does: open, write a run, exit.
CHILD_WRITE = ("import sys; sys.path.insert(0, {root!r}); from valdemo.store import Store; "
               "Store({db!r})._save_run('child', {{}}, {{}}, [{{'k': 1}}])")
# A child process that reads what is really in the file (a fresh process, fresh connection).
CHILD_READ = ("import sqlite3, sys; c = sqlite3.connect({db!r}); "
              "print(','.join(str(r[0]) for r in c.execute('SELECT id FROM vum_overrides ORDER BY id')))")


def _child(code: str, db: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", code.format(root=str(ROOT), db=str(db))], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _override(store: Store, tag: str) -> int:
    return st.vum_save_override(store, {"item_id": tag, "text": "t", "part": "attribution", "part_text": "p",
                                        "judge_score": 3, "human_score": 4})


def _ids_on_disk(db: Path) -> set[int]:
    out = _child(CHILD_READ, db)
    return {int(x) for x in out.split(",") if x}


def test_lost_locks_never_lose_an_acknowledged_write(tmp_path):
    db = tmp_path / "valdemo.sqlite"
    store = Store(db)
    acked = [_override(store, "before")]
    for path in tmp_path.iterdir():  # the fault: read the live files with plain open()/close()
        path.read_bytes()
    _child(CHILD_WRITE, db)  # its close now deletes the -wal/-shm under our connection
    outcome = []
    for i in range(5):
        try:
            acked.append(_override(store, f"after-{i}"))
            outcome.append("ok")
        except StoreError:
            outcome.append("refused")  # allowed: not acknowledged, so nothing is lost
    assert "ok" in outcome
    assert {r["id"] for r in st.vum_overrides(store)} >= set(acked)  # no "disk I/O error" here
    assert _ids_on_disk(db) >= set(acked)  # and it is really in the file, for another process


def test_a_replaced_database_file_is_reopened_not_written_blind(tmp_path):
    db = tmp_path / "valdemo.sqlite"
    store = Store(db)
    _override(store, "old")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    Store(db)  # someone recreates it (empty)
    rid = _override(store, "new")
    assert rid in _ids_on_disk(db)
    assert [r["item_id"] for r in st.vum_overrides(store)] == ["new"]


def test_many_writers_and_readers_every_acknowledged_write_is_read_back(tmp_path):
    """8 writer threads (overrides and CLAVE labels), 4 reader threads checking their own writes
    are visible at once, and child processes writing runs at the same time."""
    db = tmp_path / "stress.sqlite"
    store = Store(db)
    sample_ids = st.clave_add_samples(store, [("POWER", f"text {i}") for i in range(10)], "test")
    acked_overrides: list[int] = []
    acked_labels: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write_overrides(k: int) -> None:
        for i in range(60):
            try:
                rid = _override(store, f"w{k}-{i}")
                if not store.query("SELECT 1 FROM vum_overrides WHERE id = ?", (rid,)):
                    errors.append(f"override {rid} not visible right after its commit")
                with lock:
                    acked_overrides.append(rid)
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                errors.append(repr(exc))

    def write_labels(k: int) -> None:
        for i in range(60):
            try:
                seq = st.clave_add_label(store, sample_ids[i % 10], f"annotator-{k}", (i % 3) - 1)
                with lock:
                    acked_labels.append(seq)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    def read() -> None:
        while not stop.is_set():
            try:
                with lock:
                    known = set(acked_overrides)
                seen = {r["id"] for r in st.vum_overrides(store)}
                if not known <= seen:
                    errors.append(f"reader missed acknowledged overrides {sorted(known - seen)[:5]}")
                st.clave_current_labels(store)
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    def children() -> None:
        for _ in range(6):
            try:
                _child(CHILD_WRITE, db)
            except AssertionError as exc:
                errors.append(str(exc))

    writers = [threading.Thread(target=write_overrides, args=(k,)) for k in range(4)]
    writers += [threading.Thread(target=write_labels, args=(k,)) for k in range(4)]
    writers.append(threading.Thread(target=children))
    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(300)
    stop.set()
    for t in readers:
        t.join(60)
    assert errors == []
    assert len(acked_overrides) == 240 and len(acked_labels) == 240
    assert _ids_on_disk(db) == set(acked_overrides)
    seqs = {r[0] for r in sqlite3.connect(str(db)).execute("SELECT seq FROM clave_labels")}
    assert seqs == set(acked_labels)
    assert len(store.list_runs("child")) == 6


def test_old_database_gains_owner_columns_and_old_rows_are_legacy(tmp_path, monkeypatch):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(str(db))  # the schema as it shipped before owners
    con.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, method TEXT NOT NULL, created REAL NOT NULL, "
                "params TEXT NOT NULL, summary TEXT NOT NULL)")
    con.execute("INSERT INTO runs VALUES ('old-1', 'vum', 1.0, '{}', '{}')")
    con.commit()
    con.close()
    store = Store(db)
    assert store.get_run("old-1")["owner"] == ""
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    assert store.get_run("old-1", owner="session:abc") is None  # legacy rows: nobody's in public mode
    assert store.list_runs(owner="session:abc") == []
    monkeypatch.setenv("VALDEMO_PUBLIC", "0")
    assert store.get_run("old-1", owner="local")["id"] == "old-1"  # locally they are the local owner's
    Store(db)  # opening again does not add the columns twice


def test_runs_are_per_owner_in_public_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    store = Store(tmp_path / "runs.sqlite")
    a = store._save_run("vum", {"n": 1}, {}, [{"i": 0}], owner="session:a")
    b = store._save_run("vum", {"n": 2}, {}, [{"i": 1}], owner="session:b")
    assert [r["id"] for r in store.list_runs(owner="session:a")] == [a]
    assert store.get_run(b, owner="session:a") is None and store.run_rows(b, owner="session:a") == []
    assert store.run_rows(a, owner="session:a") == [{"i": 0}]
    assert {r["id"] for r in store.list_runs()} == {a, b}  # local tools (no owner) see all


def test_overrides_and_labels_record_who_made_them(tmp_path, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    store = Store(tmp_path / "who.sqlite")
    base = {"item_id": "i", "text": "t", "part": "attribution", "part_text": "p", "judge_score": 3}
    ids = st.vum_save_overrides(store, [{**base, "human_score": 4, "owner": "hf:alice", "owner_name": "alice",
                                         "verified": 1},
                                        {**base, "part": "rebuttal", "human_score": 2, "owner": "hf:alice",
                                         "owner_name": "alice", "verified": 1}])
    st.vum_save_override(store, {**base, "human_score": 5, "owner": "session:bob", "owner_name": "visitor-b"})
    mine = st.vum_overrides(store, "hf:alice")
    assert [o["id"] for o in mine] == ids and {(o["owner_name"], o["verified"]) for o in mine} == {("alice", 1)}
    assert [o["human_score"] for o in st.vum_overrides(store, "session:bob")] == [5]
    assert len(st.vum_overrides(store)) == 3
    with pytest.raises(sqlite3.IntegrityError):  # all or none: the valid first part is not kept either
        st.vum_save_overrides(store, [{**base, "human_score": 4}, {**base, "human_score": 9}])
    assert len(st.vum_overrides(store)) == 3

    [sid] = st.clave_add_samples(store, [("POWER", "text")], "test")
    st.clave_add_label(store, sid, "alice", 1, owner="hf:alice", verified=True)
    st.clave_add_label(store, sid, "carol", -1, owner="session:c")
    got = {r["annotator"]: r["verified"] for r in st.clave_current_labels(store)}
    assert got == {"alice": 1, "carol": 0}


def test_annotator_verified_only_when_every_current_label_is(tmp_path):
    store = Store(tmp_path / "v.sqlite")
    a, b = st.clave_add_samples(store, [("POWER", "one"), ("POWER", "two")], "test")
    st.clave_add_label(store, a, "alice", 1, owner="hf:alice", verified=True)
    st.clave_add_label(store, b, "alice", 0, owner="hf:alice", verified=True)
    st.clave_add_label(store, a, "bob", 1, owner="session:x")
    st.clave_add_label(store, a, "carol", 1, owner="hf:carol", verified=True)
    st.clave_add_label(store, b, "carol", -1)  # an imported/typed label under her name
    assert st.clave_annotator_verified(store) == {"alice": True, "bob": False, "carol": False}
