"""CLAVE export: labels to CSV/JSONL files, and append-only sync with a hub dataset or a folder."""

from __future__ import annotations

import json
import logging
import os
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


def push_labels(store: st.Store, target: str, token: str | None = None) -> dict:
    """Append this store's labels that are new since the last push or sync to ``target``.

    ``target`` is a Hugging Face dataset repo id (needs a token) or a local folder (a shared
    drive, or a test). Append-only (issue 18): only rows not sent before go, as a new file
    (:class:`valdemo.clave.sync.LabelSync`, the same cursor the scheduled sync uses); files are
    never overwritten, so several people pushing to one target never overwrite each other.
    """
    from .sync import LabelSync

    target = check_text(target, "hub dataset repo", max_chars=300)
    if not export_rows(store):
        raise InputError("there are no labels to push yet")
    if not is_local_target(target) and not hub_token(token):
        raise InputError("no Hugging Face token: set HF_TOKEN or sign in with Hugging Face; "
                         "local labels are unaffected (export them instead)")
    try:
        out = LabelSync(store, target, token).sync_once()
    except Exception as exc:  # network, auth, repo errors (the message carries no token): keep local work
        raise InputError(f"could not push to {target!r} ({exc}); local labels are unaffected") from None
    root = str(_local_dir(target)) if is_local_target(target) else target
    label_files = [f for f in out["files"] if f.startswith(HUB_SUBDIR + "/")]
    file = (str(_local_dir(target) / label_files[0]) if is_local_target(target) else label_files[0]) if label_files else ""
    return {"pushed": out["sent"], "undone": out["undone"], "target": root, "file": file, "files": out["files"]}


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
