"""Resume (issue 19): a 1,000-item run killed halfway and started again repeats no completed call.

The endpoint is tests/fault_server.py, a scripted loopback OpenAI-compatible server (a test double,
used here because it answers instantly and counts every request; `transformers serve` would take
an hour for 1,000 calls on this CPU). The run is the real CLI in its own process, killed with
SIGKILL, so only what the response cache wrote before the kill survives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import ROOT
from tests.fault_server import FaultServer

N = 1000
CONCURRENCY = 4


def _chat_calls(server: FaultServer) -> list[str]:
    """The generation requests (the one option-probability probe per run asks for logprobs)."""
    with server._lock:
        bodies = [r["body"] for r in server.requests]
    return [json.dumps(b.get("messages", b), sort_keys=True) for b in bodies if not b.get("logprobs")]


@pytest.mark.slow
def test_a_killed_run_resumes_without_repeating_a_completed_call(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{i}", "input": f"Statement {i}: I helped neighbour {i}.",
                                         "value": "BENEVOLENCE", "label": i % 2}) + "\n" for i in range(N)))
    env = {**os.environ, "VALDEMO_CACHE_DB": str(tmp_path / "responses.sqlite"),
           "VALDEMO_DATA_DIR": str(tmp_path / "data"), "VALDEMO_OPENAI_CONCURRENCY": str(CONCURRENCY)}
    with FaultServer(["ok"], reply="A") as server:
        cmd = [sys.executable, "-m", "valdemo", "vum", "--data", str(items), "--model",
               f"openai:m@{server.base_url}", "--no-why", "--json"]
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while len(_chat_calls(server)) < N // 2:
            assert first.poll() is None, "the first run ended before it could be killed"
            assert time.time() < deadline, "the first run made too few calls"
            time.sleep(0.005)
        first.kill()
        first.wait(30)
        before_kill = len(_chat_calls(server))
        assert before_kill < N, "the first run finished before the kill: nothing to resume"

        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert second.returncode == 0, second.stderr[-2000:]
        calls = _chat_calls(server)

    summary = json.loads(second.stdout)["per_value"]["BENEVOLENCE"]
    assert summary["n"] == N and summary["parse_failures"] == 0
    counts = Counter(calls)
    assert len(counts) == N  # every item asked
    repeated = sum(c - 1 for c in counts.values())
    # Only calls in flight at the kill (at most the concurrency) may be asked again.
    assert repeated <= CONCURRENCY, f"{repeated} calls repeated after the restart"
    assert len(calls) <= N + CONCURRENCY  # the second run asked only what was left
