"""Checking what people type and upload, with messages that name the problem.

Every method and every front end (tab, API, CLI) reads user text and files
through these functions, so the caps and messages are the same everywhere.
Errors are :class:`InputError` (a ``ValueError``): the UI shows it as a
``gr.Error``, the CLI as one line with exit code 2.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from .config import get_settings


class InputError(ValueError):
    """Input a person gave that cannot be used; the message says why and where."""


def check_text(text: object, field: str = "text", max_chars: int | None = None) -> str:
    """Non-empty text within the configured cap, stripped."""
    if text is None or not isinstance(text, str):
        raise InputError(f"{field} is missing")
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{field} is empty")
    cap = max_chars or get_settings().max_text_chars
    if len(stripped) > cap:
        raise InputError(f"{field} is {len(stripped):,} characters; the limit is {cap:,}")
    if "\x00" in stripped:
        raise InputError(f"{field} contains binary data")
    return stripped


def check_int(value: object, field: str, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (accepts floats that are whole numbers, e.g. from sliders)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{field} must be a whole number, got {value!r}") from None
    if number != int(number):
        raise InputError(f"{field} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise InputError(f"{field} must be between {low} and {high}, got {int(number)}")
    return int(number)


def check_float(value: object, field: str, low: float, high: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{field} must be a number, got {value!r}") from None
    if number != number or not low <= number <= high:  # NaN fails too
        raise InputError(f"{field} must be between {low:g} and {high:g}, got {value!r}")
    return number


def read_upload_text(path: str | Path, what: str = "file") -> str:
    """The text of an uploaded file: size-capped, UTF-8 (BOM allowed), not binary."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p.name!r} not found")
    cap_mb = get_settings().max_upload_mb
    size = p.stat().st_size
    if size > cap_mb * 1024 * 1024:
        raise InputError(f"{what} {p.name!r} is {size / 1024 / 1024:.1f} MB; the limit is {cap_mb:g} MB")
    if size == 0:
        raise InputError(f"{what} {p.name!r} is empty")
    raw = p.read_bytes()
    if b"\x00" in raw[:8192]:
        raise InputError(f"{what} {p.name!r} is binary, not a text file (CSV or JSONL)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {p.name!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if not text.strip():
        raise InputError(f"{what} {p.name!r} is empty")
    return text


def read_records(path: str | Path, required: Sequence[str], optional: Sequence[str] = (),
                 what: str = "file", allow_extra: bool = False) -> list[dict[str, str]]:
    """Rows of a CSV or JSONL upload as dicts of stripped strings.

    The format is chosen by extension (``.jsonl``/``.json`` -> JSON lines, else CSV).
    Missing columns, unknown columns (unless ``allow_extra``) and empty required
    cells are errors that name the file and the row (1-based, header = row 1 in CSV).
    """
    p = Path(path)
    text = read_upload_text(p, what)
    if p.suffix.lower() in {".jsonl", ".json", ".ndjson"}:
        rows = list(_jsonl_rows(text, p.name))
        header_offset = 0
    else:
        rows = list(_csv_rows(text, p.name))
        header_offset = 1
    known = set(required) | set(optional)
    out: list[dict[str, str]] = []
    for n, row in enumerate(rows, start=1 + header_offset):
        missing = [c for c in required if c not in row]
        if missing:
            raise InputError(f"{p.name} row {n}: missing column(s) {', '.join(missing)} "
                             f"(expected {', '.join(required)})")
        extra = [c for c in row if c not in known]
        if extra and not allow_extra:
            raise InputError(f"{p.name} row {n}: unexpected column(s) {', '.join(extra)} "
                             f"(allowed: {', '.join([*required, *optional])})")
        clean = {k: ("" if v is None else str(v)).strip() for k, v in row.items() if k in known or allow_extra}
        empty = [c for c in required if not clean.get(c)]
        if empty:
            raise InputError(f"{p.name} row {n}: empty {', '.join(empty)}")
        out.append(clean)
    if not out:
        raise InputError(f"{p.name} has a header but no rows")
    return out


def _csv_rows(text: str, name: str) -> Iterable[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{name} is empty") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    if len(set(header)) != len(header):
        raise InputError(f"{name}: duplicate column names in the header")
    for n, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise InputError(f"{name} row {n}: {len(cells)} cells, but the header has {len(header)} columns")
        yield dict(zip(header, cells, strict=False))


def _jsonl_rows(text: str, name: str) -> Iterable[dict[str, str]]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of objects is accepted too
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        for n, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                raise InputError(f"{name} row {n}: expected an object")
            yield obj
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name} line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{name} line {n}: expected a JSON object")
        yield obj


def parse_label(raw: str, where: str) -> int:
    """A three-way value label: 1 adheres, -1 opposes, 0 unrelated (ValueNet's convention).

    Accepts 1/-1/0 and the words adheres/opposes/unrelated (also yes/no/na, A/B/C).
    """
    value = raw.strip().lower()
    table = {"1": 1, "+1": 1, "1.0": 1, "adheres": 1, "adhere": 1, "yes": 1, "a": 1, "reflects": 1,
             "-1": -1, "-1.0": -1, "opposes": -1, "oppose": -1, "no": -1, "b": -1,
             "0": 0, "0.0": 0, "unrelated": 0, "na": 0, "n/a": 0, "c": 0, "not applicable": 0}
    if value not in table:
        raise InputError(f"{where}: label {raw!r} is not one of 1, -1, 0 (adheres, opposes, unrelated)")
    return table[value]


def value_from_filename(path: str | Path) -> str | None:
    """ValueDCG names its files ``..._<VALUE>.csv``; return VALUE (upper case) or None."""
    stem = Path(path).stem
    if "_" not in stem:
        return None
    return stem.rsplit("_", 1)[1].strip().upper() or None


def data_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand upload/CLI paths: a folder stands for its ``*.csv`` and ``*.jsonl`` files (sorted)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted([*p.glob("*.csv"), *p.glob("*.jsonl")])
            if not found:
                raise InputError(f"{p} holds no .csv or .jsonl files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p} not found")
    return files
