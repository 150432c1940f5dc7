"""`python -m valdemo`: help, chat, and the conventions every subcommand follows."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "valdemo", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "chat" in out.stdout


@pytest.mark.slow
def test_chat_json_with_bundled_model():
    out = run_cli("chat", "--model", "local", "--max-new-tokens", "12", "--json", "Name a colour.")
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert set(obj) == {"reply", "backend", "model", "latency_s", "cached"}
    assert obj["reply"].strip() and obj["backend"] == "local" and obj["cached"] is False
    again = json.loads(run_cli("chat", "--model", "local", "--max-new-tokens", "12", "--json", "Name a colour.").stdout)
    assert again["cached"] is True and again["reply"] == obj["reply"]


@pytest.mark.parametrize("args,needle", [
    (["chat", "--model", "nope:x", "hi"], "unknown backend"),
    (["chat", "   "], "message is empty"),
    (["chat"], "required"),
    (["chat", "--max-new-tokens", "many", "hi"], "invalid int"),
    (["nosuchcommand"], "invalid choice"),
    (["chat", "--model", "openai:m@http://127.0.0.1:9/v1", "hi"], "cannot reach"),
])
def test_bad_input_exits_2_with_one_line(args, needle):
    out = run_cli(*args, timeout=120)
    assert out.returncode == 2, out
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]
    assert out.stdout == ""
