"""Prompt templates as data: loading bundled protocols by name, a user's file by path, and
clear errors for what is missing."""

from __future__ import annotations

import hashlib

import pytest

from valdemo.core.protocol import PROTOCOLS_DIR, ProtocolError, list_protocols, load_protocol, parse_protocol
from valdemo.inputs import InputError

MINE = '''name = "mine"
description = "a test protocol"
temperature = 0.0

[templates]
question = "Statement: {text}\\nDoes it show {value}? Answer A, B or C."
braces = "A literal {{brace}} and {text}"
'''


def write(tmp_path, text=MINE, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_user_file_loads_with_name_hash_templates_and_meta(tmp_path):
    path = write(tmp_path)
    p = load_protocol("vum", str(path))
    assert p.name == "mine" and p.method == "vum" and not p.bundled
    assert p.hash == hashlib.sha256(MINE.encode()).hexdigest()[:12]
    assert p.meta == {"name": "mine", "description": "a test protocol", "temperature": 0.0}
    assert p.render("question", text="I help.", value="benevolence") == (
        "Statement: I help.\nDoes it show benevolence? Answer A, B or C.")
    assert p.render("braces", text="x", unused="ok") == "A literal {brace} and x"
    rec = p.record()
    assert rec["name"] == "mine" and rec["hash"] == p.hash and rec["source"] == "file"
    assert rec["description"] == "a test protocol"


def test_one_changed_character_changes_the_hash(tmp_path):
    a = load_protocol("vum", write(tmp_path, MINE, "a.toml"))
    b = load_protocol("vum", write(tmp_path, MINE.replace("Answer A", "Reply A"), "b.toml"))
    assert a.hash != b.hash


@pytest.mark.parametrize("call,message", [
    (lambda p: p.render("nope", text="x"), "has no template 'nope'; it has: braces, question"),
    (lambda p: p.render("question", text="x"), "needs field(s) value"),
    (lambda p: p.require(["question", "judge"]), "lacks template(s) judge"),
    (lambda p: p.require(["question"], {"question": ["text"]}), "uses unknown field(s) value"),
])
def test_missing_keys_and_fields_are_named(tmp_path, call, message):
    p = load_protocol("vum", write(tmp_path))
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(p)


@pytest.mark.parametrize("text,message", [
    ("[templates\n", "not valid TOML"),
    ('name = "x"\n', r"no \[templates\] table"),
    ("[templates]\nq = 3\n", "must be text"),
    ('[templates]\nq = "open {brace"\n', "not a valid format string"),
])
def test_bad_files_say_why(tmp_path, text, message):
    with pytest.raises(ProtocolError, match=message):
        load_protocol("svo", write(tmp_path, text, "bad.toml"))


def test_unknown_names_list_the_bundled_ones(tmp_path):
    with pytest.raises(ProtocolError) as err:
        load_protocol("vum", "no_such_protocol")
    assert "bundled:" in str(err.value)
    with pytest.raises(ProtocolError, match="no vum file"):
        load_protocol("vum", str(tmp_path / "absent.toml"))
    with pytest.raises(ProtocolError, match="no protocol given"):
        load_protocol("vum", "  ")
    with pytest.raises(ProtocolError, match="bad method"):
        list_protocols("../etc")
    assert issubclass(ProtocolError, InputError)  # UI shows it, CLI exits 2


class _Any:
    """Stands in for any field value, including ``{value.name}`` and ``{row[0]}`` lookups."""

    def __getattr__(self, name):
        return self

    def __getitem__(self, key):
        return self

    def __format__(self, spec):
        return "x"


def test_every_bundled_protocol_loads_and_renders_its_fields():
    """Every protocol file the methods ship parses, and each template renders once given the
    fields it names (so no bundled template has a malformed placeholder)."""
    methods = sorted(p.name for p in PROTOCOLS_DIR.iterdir() if p.is_dir()) if PROTOCOLS_DIR.is_dir() else []
    seen = 0
    for method in methods:
        for name in list_protocols(method):
            p = load_protocol(method, name)
            assert p.bundled and p.method == method and len(p.hash) == 12
            for key in p.templates:
                p.render(key, **dict.fromkeys(p.fields(key), _Any()))
            seen += 1
    assert seen == sum(len(list_protocols(m)) for m in methods)


def test_parse_protocol_from_text_in_memory():
    p = parse_protocol(MINE, "clave", name="upload")
    assert p.name == "mine" and p.method == "clave" and not p.bundled
    assert p.fields("question") == {"text", "value"}
