"""Prompt templates as data: one TOML file per method and protocol.

A protocol file is ``assets/protocols/<method>/<name>.toml`` (bundled) or any ``.toml``
file a user brings (``--protocol FILE`` in the CLI, an upload in a tab)::

    name = "mine"                       # optional; default: the file's stem
    description = "what differs"        # anything else at the top level is ``meta``
    [templates]
    question = "Statement: {text}\\nAnswer with A, B or C."

Templates are :meth:`str.format` strings (``{{`` for a literal brace). A run records
:meth:`Protocol.record` (name, method, the sha256 of the file's text, shortened, and
where it came from), so a report says exactly which prompts ran. Errors are
:class:`ProtocolError` (an :class:`~valdemo.inputs.InputError`: a clear message in the UI,
exit 2 in the CLI) naming the file, the key and the field.
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..inputs import InputError

#: Where bundled protocols live: assets/protocols/<method>/<name>.toml
PROTOCOLS_DIR = Path(__file__).resolve().parents[2] / "assets" / "protocols"
HASH_CHARS = 12


class ProtocolError(InputError):
    """A protocol that cannot be found, read or rendered."""


def _fields(template: str) -> set[str]:
    """The top-level field names a template uses ("{text}", "{value.name}" -> "value")."""
    names = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name:
            names.add(name.split(".", 1)[0].split("[", 1)[0])
    return names


@dataclass(frozen=True)
class Protocol:
    """One loaded protocol file: its templates, its other settings (``meta``) and its hash."""

    name: str
    method: str
    hash: str
    templates: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    bundled: bool = True

    def fields(self, key: str) -> set[str]:
        """The fields template ``key`` needs."""
        return _fields(self.template(key))

    def template(self, key: str) -> str:
        if key not in self.templates:
            raise ProtocolError(f"protocol {self.name!r} ({self.method}) has no template {key!r}; "
                                f"it has: {', '.join(sorted(self.templates)) or 'none'}")
        return self.templates[key]

    def render(self, key: str, **fields: Any) -> str:
        """Template ``key`` filled with ``fields``; a field it needs and did not get is an error
        naming both (extra fields are allowed: a protocol may leave some out)."""
        template = self.template(key)
        missing = sorted(_fields(template) - set(fields))
        if missing:
            raise ProtocolError(f"protocol {self.name!r} template {key!r} needs field(s) {', '.join(missing)}; "
                                f"given: {', '.join(sorted(fields)) or 'none'}")
        try:
            return template.format(**fields)
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise ProtocolError(f"protocol {self.name!r} template {key!r} cannot be filled: {exc}") from None

    def require(self, keys: Iterable[str], fields: dict[str, Iterable[str]] | None = None) -> Protocol:
        """Check that the templates a method needs are there (and, per key in ``fields``, use
        only the fields the method supplies); returns self. For user files: fail at load, not
        halfway through a run."""
        missing = [k for k in keys if k not in self.templates]
        if missing:
            raise ProtocolError(f"protocol {self.name!r} ({self.method}) lacks template(s) {', '.join(missing)}")
        for key, allowed in (fields or {}).items():
            if key in self.templates:
                unknown = sorted(self.fields(key) - set(allowed))
                if unknown:
                    raise ProtocolError(f"protocol {self.name!r} template {key!r} uses unknown field(s) "
                                        f"{', '.join(unknown)}; available: {', '.join(sorted(allowed))}")
        return self

    def record(self) -> dict:
        """What a run stores (``Result.protocol``): name, method, hash, where it came from."""
        return {"name": self.name, "method": self.method, "hash": self.hash,
                "source": "bundled" if self.bundled else "file", "path": self.path,
                **{k: v for k, v in self.meta.items() if k in ("description", "source")}}


def _bundled_dir(method: str) -> Path:
    if not method or not method.replace("_", "").isalnum():
        raise ProtocolError(f"bad method name {method!r}")
    return PROTOCOLS_DIR / method


def list_protocols(method: str) -> list[str]:
    """Names of the bundled protocols of ``method``, sorted."""
    folder = _bundled_dir(method)
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def parse_protocol(text: str, method: str, name: str = "", path: str = "", bundled: bool = False) -> Protocol:
    """A Protocol from a file's text (for uploads held in memory)."""
    label = path or name or "protocol"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{label}: not valid TOML ({exc})") from None
    templates = data.pop("templates", None)
    if not isinstance(templates, dict) or not templates:
        raise ProtocolError(f"{label}: no [templates] table")
    bad = [k for k, v in templates.items() if not isinstance(v, str)]
    if bad:
        raise ProtocolError(f"{label}: template(s) {', '.join(bad)} must be text")
    for key, template in templates.items():
        try:
            _fields(template)
        except ValueError as exc:  # "{" without a closing brace, and the like
            raise ProtocolError(f"{label}: template {key!r} is not a valid format string ({exc})") from None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return Protocol(str(data.get("name") or name or Path(path).stem or "protocol"), method, digest,
                    dict(templates), data, path, bundled)


def load_protocol(method: str, name_or_path: str | Path) -> Protocol:
    """A bundled protocol by name (``assets/protocols/<method>/<name>.toml``) or a user's file
    by path (anything ending in ``.toml`` or containing a path separator)."""
    raw = str(name_or_path).strip()
    if not raw:
        raise ProtocolError(f"no protocol given for {method}; bundled: {', '.join(list_protocols(method)) or 'none'}")
    as_path = raw.endswith(".toml") or "/" in raw or "\\" in raw
    path = Path(raw) if as_path else _bundled_dir(method) / f"{raw}.toml"
    if not path.is_file():
        known = ", ".join(list_protocols(method)) or "none"
        what = f"file {raw!r}" if as_path else f"protocol {raw!r}"
        raise ProtocolError(f"no {method} {what}; bundled: {known} (or give a .toml file)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{path.name}: not UTF-8 text") from None
    bundled = not as_path
    return parse_protocol(text, method, name=path.stem, path=str(path) if not bundled else path.name, bundled=bundled)
