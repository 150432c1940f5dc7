"""Labels sync to a hub dataset on a schedule, append-only (issue 18): only rows new since the last
sync, never a full snapshot; earlier files never change; undos go as their own records; a failed
sync moves nothing and is retried; the token is never logged, stored or put in a message.

Real SQLite store and real label submissions; the target is a local folder (no network here), and
the hub path is exercised against a closed loopback port (the real huggingface_hub client)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from valdemo import clave
from valdemo.clave.sync import LabelSync, start_label_sync
from valdemo.store import Store


@pytest.fixture()
def store(tmp_path) -> Store:
    return Store(tmp_path / "db" / "clave.sqlite")


def _label(store, who: str, n: int, label: int = 1) -> None:
    for _ in range(n):
        s = clave.next_sample(store, who)
        clave.submit_label(store, who, s["sample_id"], label, note=f"{who} says so")


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jsonl"))}


def _rows(root: Path, sub: str) -> list[dict]:
    return [json.loads(line) for p in sorted((root / sub).glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_each_sync_appends_only_the_new_rows_and_never_rewrites_a_file(store, tmp_path):
    target = tmp_path / "dataset"
    sync = LabelSync(store, str(target))
    _label(store, "ana", 3)
    first = sync.sync_once()
    assert first["sent"] == 3 and first["undone"] == 0 and len(first["files"]) == 1
    before = _files(target)
    assert sync.sync_once() == {**sync.last, "sent": 0, "undone": 0, "files": []}  # nothing new: no file
    assert _files(target) == before
    _label(store, "bo", 2, label=0)
    second = sync.sync_once()
    assert second["sent"] == 2
    after = _files(target)
    assert {k: v for k, v in after.items() if k in before} == before, "an earlier file changed"
    assert len(after) == 2
    rows = _rows(target, "clave")
    assert [r["annotator"] for r in rows] == ["ana"] * 3 + ["bo"] * 2  # each row once: no snapshot
    assert set(rows[0]) == set(clave.EXPORT_FIELDS)
    # undo one row already sent: an undo record is appended; the sent file is left as it was
    undone = clave.undo_last(store, "bo")
    assert undone["ok"]
    third = sync.sync_once()
    assert third["sent"] == 0 and third["undone"] == 1
    assert {k: v for k, v in _files(target).items() if k in after} == after
    (undo,) = _rows(target, "clave-undo")
    assert undo["annotator"] == "bo" and undo["undone"] is True
    assert sync.sync_once()["undone"] == 0  # an undo is sent once
    # the synced folder is what pull_labels reads: another store gets the labels sent
    other = Store(tmp_path / "other.sqlite")
    assert clave.pull_labels(other, str(target))["labels_added"] == 5


def test_a_label_undone_before_its_first_sync_is_never_sent(store, tmp_path):
    target = tmp_path / "dataset"
    _label(store, "ana", 2)
    clave.undo_last(store, "ana")
    out = LabelSync(store, str(target)).sync_once()
    assert out["sent"] == 1 and out["undone"] == 0
    assert len(_rows(target, "clave")) == 1 and not (target / "clave-undo").exists()


def test_the_cursor_survives_a_restart(store, tmp_path):
    target = tmp_path / "dataset"
    _label(store, "ana", 2)
    LabelSync(store, str(target)).sync_once()
    _label(store, "ana", 1)
    again = LabelSync(Store(store.path), str(target)).sync_once()  # a new process: same store file
    assert again["sent"] == 1 and len(_rows(target, "clave")) == 3


def test_the_schedule_syncs_by_itself_and_stops(store, tmp_path):
    target = tmp_path / "dataset"
    assert start_label_sync(store, "", 10) is None and start_label_sync(store, str(target), 0) is None
    sync = LabelSync(store, str(target)).start(every_s=0.2)
    try:
        _label(store, "ana", 2)
        deadline = time.time() + 20
        while time.time() < deadline and len(_rows(target, "clave") if (target / "clave").exists() else []) < 2:
            time.sleep(0.1)
        assert len(_rows(target, "clave")) == 2
        _label(store, "bo", 1)
    finally:
        sync.stop()  # a last sync on the way out
    assert len(_rows(target, "clave")) == 3


def test_a_failed_hub_sync_moves_nothing_and_never_shows_the_token(store, tmp_path, monkeypatch, caplog):
    """The real huggingface_hub client against a closed loopback port: the sync fails, says so
    without the token, and the same rows go on the next try."""
    token = "hf_sync_test_" + "x7" * 12
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    _label(store, "ana", 2)
    sync = LabelSync(store, "someone/valdemo-labels")
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(RuntimeError, match="label sync to 'someone/valdemo-labels' failed") as err:
            sync.sync_once()
        sync._safe_sync()  # the scheduled path: logs a warning, keeps serving
    assert token not in str(err.value) and token not in caplog.text
    assert "failed" in sync.last["error"] and token not in json.dumps(sync.last)
    assert sync.cursor()["last_seq"] == 0  # nothing counted as sent
    assert token not in sync.cursor_path.read_text() if sync.cursor_path.exists() else True
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(RuntimeError, match="HF_TOKEN"):
        sync.sync_once()
