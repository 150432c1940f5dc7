"""CLAVE export: labels to CSV/JSONL files, and append-only sync with a hub dataset or a folder."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from .. import store as st
from ..inputs import InputError, check_text
from .inputs import import_samples, read_samples

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------
# export, import, hub sync
# ---------------------------------------------------------------------------------

#: ``verified``: the annotator name was the signed-in Hugging Face user who labelled; false means
#: anyone could have typed that name (no sign-in on the app, or an import).
EXPORT_FIELDS = ("text", "value", "label", "annotator", "verified", "note", "created")


def export_rows(store: st.Store, annotator: str | None = None) -> list[dict]:
    return [{"text": r["text"], "value": r["value"], "label": r["label"], "annotator": r["annotator"],
             "verified": bool(r["verified"]), "note": r["note"], "created": r["created"]}
            for r in st.clave_current_labels(store, annotator)]


def write_rows(rows: Sequence[dict], out: str | Path, fmt: str) -> Path:
    import csv

    fmt = fmt.lower().strip()
    if fmt not in {"jsonl", "csv"}:
        raise InputError(f"format must be jsonl or csv, got {fmt!r}")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(f, fieldnames=list(EXPORT_FIELDS))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in EXPORT_FIELDS})
    os.replace(tmp, path)
    return path


def export_labels(store: st.Store, fmt: str, out: str | Path, annotator: str | None = None) -> dict:
    rows = export_rows(store, annotator)
    if not rows:
        raise InputError("there are no labels to export yet")
    path = write_rows(rows, out, fmt)
    return {"path": str(path), "labels": len(rows), "format": fmt.lower().strip()}


HUB_SUBDIR = "clave"


def hub_token(oauth_token: str | None = None) -> str | None:
    """The signed-in user's OAuth token, else ``HF_TOKEN``, else None (never logged)."""
    return (oauth_token or "").strip() or os.environ.get("HF_TOKEN", "").strip() or None


def is_local_target(target: str) -> bool:
    return target.startswith(("/", "./", "../", "~", "file://")) or os.path.isdir(target)


def _local_dir(target: str) -> Path:
    return Path(target[len("file://"):] if target.startswith("file://") else target).expanduser()


_schedulers: dict[str, object] = {}
_schedulers_lock = threading.Lock()


def _scheduler(store: st.Store, repo_id: str, token: str):
    from huggingface_hub import CommitScheduler

    with _schedulers_lock:
        if repo_id not in _schedulers:
            folder = Path(store.path).parent / "clave_hub_outbox" / re.sub(r"[^A-Za-z0-9_.-]", "_", repo_id)
            folder.mkdir(parents=True, exist_ok=True)
            _schedulers[repo_id] = CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=folder,
                                                   path_in_repo=HUB_SUBDIR, every=10, token=token,
                                                   allow_patterns=["*.jsonl"], private=True)
        return _schedulers[repo_id]


def push_labels(store: st.Store, target: str, token: str | None = None) -> dict:
    """Append this store's current labels as a new JSONL file to ``target``.

    ``target`` is a Hugging Face dataset repo id (synced with ``CommitScheduler``; needs a
    token) or a local folder (a shared drive, or a test). Files are only ever added, so
    several people pushing to one target never overwrite each other.
    """
    target = check_text(target, "hub dataset repo", max_chars=300)
    rows = export_rows(store)
    if not rows:
        raise InputError("there are no labels to push yet")
    name = f"labels-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
    if is_local_target(target):
        path = write_rows(rows, _local_dir(target) / HUB_SUBDIR / name, "jsonl")
        return {"pushed": len(rows), "target": str(_local_dir(target)), "file": str(path)}
    token = hub_token(token)
    if not token:
        raise InputError("no Hugging Face token: set HF_TOKEN or sign in with Hugging Face; "
                         "local labels are unaffected (export them instead)")
    try:
        scheduler = _scheduler(store, target, token)
        with scheduler.lock:
            write_rows(rows, Path(scheduler.folder_path) / name, "jsonl")
        scheduler.trigger().result(timeout=120)
    except InputError:
        raise
    except Exception as exc:  # network, auth, repo errors: say so, keep local work
        raise InputError(f"could not push to the Hugging Face dataset {target!r} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); local labels are unaffected") from None
    return {"pushed": len(rows), "target": target, "file": f"{HUB_SUBDIR}/{name}"}


def pull_labels(store: st.Store, target: str, token: str | None = None) -> dict:
    """Import every label file under ``target`` (repo id or folder); already-present rows are skipped."""
    target = check_text(target, "hub dataset repo", max_chars=300)
    if is_local_target(target):
        folder = _local_dir(target) / HUB_SUBDIR
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo_id=target, repo_type="dataset", token=hub_token(token),
                                            allow_patterns=[f"{HUB_SUBDIR}/*.jsonl"])) / HUB_SUBDIR
        except Exception as exc:
            raise InputError(f"could not pull from the Hugging Face dataset {target!r} ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); local labels are unaffected") from None
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise InputError(f"no label files found under {target!r}")
    added, samples = 0, 0
    for f in files:
        result = import_samples(store, read_samples(f), f"hub:{target}")
        added += result["labels_added"]
        samples += result["samples"]
    return {"files": len(files), "rows": samples, "labels_added": added, "target": target}
