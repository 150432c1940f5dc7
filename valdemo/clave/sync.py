"""Labels synced on a schedule to a hub dataset (or a folder), append-only (issue 18).

Each sync sends only what is new since the last one, never a full snapshot:

- ``clave/labels-<first>-<last>.jsonl``: the label submissions with store sequence numbers in
  ``first..last`` that are live (not undone) when the sync runs, in the export format
  (:data:`valdemo.clave.export.EXPORT_FIELDS`), so ``pull_labels`` reads them as they are;
- ``clave-undo/undo-<first>-<last>.jsonl``: submissions sent earlier and undone since
  (``{"seq", "annotator", "text", "value", "undone": true}``), so nothing sent is ever rewritten.

Files are only ever added: a name is fixed by its sequence range, so a sync repeated after a
crash writes the same file with the same rows, and two stores never write the same name
(each carries the store's id). A cursor file beside the database remembers what was sent; it
moves only after the target confirmed the write, so a failed sync is retried whole next time.

The token comes from the Space's settings (``HF_TOKEN``, a secret) or the caller; it is passed
to the hub client only, never logged, stored or put in a message (errors name the exception
type and a message with the token masked).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path

from .. import store as st
from .export import EXPORT_FIELDS, HUB_SUBDIR, hub_token, is_local_target

log = logging.getLogger(__name__)

UNDO_SUBDIR = "clave-undo"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:120]


class LabelSync:
    """Append-only sync of one store's CLAVE labels to ``target`` (a dataset repo id or a folder)."""

    def __init__(self, store: st.Store, target: str, token: str | None = None):
        self.store, self.target = store, target.strip()
        if not self.target:
            raise ValueError("label sync needs a target: a Hugging Face dataset repo id or a folder")
        self._token = token  # resolved per sync (hub_token: the given one, else HF_TOKEN); never logged
        self.cursor_path = Path(store.path).parent / "label_sync" / f"{_slug(self.target)}.json"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last: dict | None = None  # the last sync's outcome (no token in it)

    # ------------------------------------------------------------------ cursor
    def cursor(self) -> dict:
        try:
            data = json.loads(self.cursor_path.read_text(encoding="utf-8"))
            if data.get("target") == self.target:
                return data
        except (OSError, ValueError):
            pass
        return {"target": self.target, "store_id": uuid.uuid4().hex[:8], "last_seq": 0, "undone_sent": []}

    def _save_cursor(self, cur: dict) -> None:
        self.cursor_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cursor_path.with_name(self.cursor_path.name + ".tmp")
        tmp.write_text(json.dumps(cur), encoding="utf-8")
        os.replace(tmp, self.cursor_path)

    # ------------------------------------------------------------------ what is new
    def pending(self, cur: dict | None = None) -> tuple[list[dict], list[dict], int]:
        """(new live label rows, newly undone rows already sent, the highest sequence number seen)."""
        cur = cur or self.cursor()
        rows = self.store.query(
            "SELECT l.seq, l.annotator, l.label, l.note, l.created, l.verified, l.undone, s.value, s.text "
            "FROM clave_labels l JOIN clave_samples s ON s.id = l.sample_id WHERE l.seq > ? ORDER BY l.seq",
            (int(cur["last_seq"]),))
        top = max([int(cur["last_seq"]), *(int(r["seq"]) for r in rows)])
        new = [dict(r) for r in rows if not r["undone"] and r["label"] is not None]
        sent_undone = set(cur.get("undone_sent", []))
        undone = [dict(r) for r in self.store.query(
            "SELECT l.seq, l.annotator, s.value, s.text FROM clave_labels l JOIN clave_samples s "
            "ON s.id = l.sample_id WHERE l.undone = 1 AND l.seq <= ? AND l.label IS NOT NULL ORDER BY l.seq",
            (int(cur["last_seq"]),)) if r["seq"] not in sent_undone]
        return new, undone, top

    # ------------------------------------------------------------------ one sync
    def sync_once(self) -> dict:
        """Send what is new; returns {"sent", "undone", "files", "target", "last_seq"} (no token)."""
        with self._lock:
            cur = self.cursor()
            new, undone, top = self.pending(cur)
            files: dict[str, str] = {}
            if new:
                name = f"{HUB_SUBDIR}/labels-{cur['store_id']}-{new[0]['seq']:09d}-{new[-1]['seq']:09d}.jsonl"
                files[name] = "".join(json.dumps({k: (bool(r[k]) if k == "verified" else r[k]) for k in EXPORT_FIELDS},
                                                 ensure_ascii=False) + "\n" for r in new)
            if undone:
                name = f"{UNDO_SUBDIR}/undo-{cur['store_id']}-{undone[0]['seq']:09d}-{undone[-1]['seq']:09d}.jsonl"
                files[name] = "".join(json.dumps({"seq": r["seq"], "annotator": r["annotator"], "value": r["value"],
                                                  "text": r["text"], "undone": True}, ensure_ascii=False) + "\n"
                                      for r in undone)
            if files:
                self._write(files)  # raises on failure: the cursor stays, the same rows go next time
            cur["last_seq"] = top
            cur["undone_sent"] = sorted({*cur.get("undone_sent", []), *(r["seq"] for r in undone)})
            self._save_cursor(cur)
            self.last = {"sent": len(new), "undone": len(undone), "files": sorted(files), "target": self.target,
                         "last_seq": top, "at": time.time()}
            return self.last

    def _write(self, files: dict[str, str]) -> None:
        if is_local_target(self.target):
            root = Path(self.target[len("file://"):] if self.target.startswith("file://") else self.target).expanduser()
            for name, text in files.items():
                path = root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
            return
        token = hub_token(self._token)
        if not token:
            raise RuntimeError("no Hugging Face token: set HF_TOKEN in the Space's settings (a secret)")
        try:
            from huggingface_hub import CommitOperationAdd, HfApi

            api = HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT") or None)
            api.create_repo(self.target, repo_type="dataset", private=True, exist_ok=True)
            api.create_commit(self.target, repo_type="dataset",
                              operations=[CommitOperationAdd(path_in_repo=n, path_or_fileobj=t.encode("utf-8"))
                                          for n, t in files.items()],
                              commit_message=f"valdemo: append {len(files)} label file(s)")
        except Exception as exc:  # network, auth, repo: a message without the token
            detail = (str(exc).splitlines() or ["no detail"])[0].replace(token, "***")
            raise RuntimeError(f"label sync to {self.target!r} failed ({type(exc).__name__}: {detail})") from None

    # ------------------------------------------------------------------ schedule
    def start(self, every_s: float) -> LabelSync:
        """Sync every ``every_s`` seconds in a daemon thread (and once more on :meth:`stop`)."""
        if self._thread is not None:
            return self

        def loop() -> None:
            while not self._stop.wait(every_s):
                self._safe_sync()

        self._thread = threading.Thread(target=loop, name="valdemo-label-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self, final_sync: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if final_sync:
            self._safe_sync()

    def _safe_sync(self) -> None:
        try:
            out = self.sync_once()
            if out["sent"] or out["undone"]:
                log.info("label sync: %d new, %d undone -> %s", out["sent"], out["undone"], self.target)
        except Exception as exc:  # the app keeps serving; the next tick retries the same rows
            self.last = {"error": str(exc), "target": self.target, "at": time.time()}
            log.warning("%s", exc)


def start_label_sync(store: st.Store, target: str, every_minutes: float) -> LabelSync | None:
    """Start the scheduled sync when a target is set and the period is positive; else None."""
    if not (target or "").strip() or every_minutes <= 0:
        return None
    return LabelSync(store, target).start(every_minutes * 60.0)
