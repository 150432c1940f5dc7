"""Issue 8: every kind of bad input, through the API of the launched app, gets a clear
message (an error naming the problem, never a traceback), and the app keeps serving.

One table, one row per case. Uploads are real files written by the test; the
endpoint answers (empty, huge, another language, a refusal, a wrong key) come from
tests/fault_server.py, a test double for peers we cannot make misbehave.
"""

from __future__ import annotations

import json

import pytest
from gradio_client import handle_file

from tests.fault_server import FaultServer

pytestmark = pytest.mark.slow

MB = 1024 * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-uploads")

    def write(name: str, data: bytes | str) -> str:
        path = d / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return str(path)

    return {
        "non_utf8": write("valuenet_POWER.csv", b"input,label\ncaf\xe9 au lait,1\n"),
        "binary": write("binary.csv", bytes(range(256)) * 64),
        "missing_col": write("valuenet_POWER.csv".replace("POWER", "HEDONISM"), "input\nI ate cake\n"),
        "extra_col": write("extra_POWER.csv", "input,label,colour\nI won,1,red\n"),
        "wrong_label": write("labels_POWER.csv", "input,label\nI won,7\n"),
        "empty": write("empty_POWER.csv", ""),
        "dup_ids": write("questions.csv", "id,question\nq1,What matters most?\nq1,Is honesty good?\n"),
        "principles_no_found": write("principles.csv", "principle\nIt is wrong to lie.\n"),
        "principles_bad_found": write("principles2.csv", "foundation,principle\nwealth,It is wrong to lie.\n"),
        "qa_missing": write("qa.csv", "source,question\nm,What is good?\n"),
        "clave_bad_value": write("samples.csv", "text,value,label\nI help my sister,KINDNESS,1\n"),
        "huge_50mb": write("huge_POWER.csv", "input,label\n" + ("I won the race,1\n" * (50 * MB // 16))),
    }


def F(key):  # a file argument, resolved from the fixture at run time
    return ("file", key)


BIG = "x" * (1 * MB)
LOCAL = "local"

# (case, endpoint, args, substring expected in the error)
CASES = [
    # empty and whitespace text
    ("empty test message", "/test_model", [LOCAL, ""], "empty"),
    ("whitespace test message", "/test_model", [LOCAL, "  \n\t "], "empty"),
    ("empty VUM scenario", "/vum_live", ["   ", "POWER", "1", 4, 16, LOCAL, LOCAL], "empty"),
    ("empty CLAVE text to predict", "/clave_predict", ["", "POWER"], "empty"),
    ("empty annotator", "/clave_next", ["  ", ""], "annotator"),
    # a 1 MB text
    ("1 MB test message", "/test_model", [LOCAL, BIG], "limit"),
    ("1 MB VUM scenario", "/vum_live", [BIG, "POWER", "1", 4, 16, LOCAL, LOCAL], "limit"),
    ("1 MB text to predict", "/clave_predict", [BIG, "POWER"], "limit"),
    # non-UTF-8 and binary uploads
    ("non-UTF-8 VUM data", "/vum_batch", [["POWER"], 1, [F("non_utf8")], 4, 16, False, LOCAL, LOCAL], "UTF-8"),
    ("binary VUM data", "/vum_batch", [["POWER"], 1, [F("binary")], 4, 16, False, LOCAL, LOCAL], "binary"),
    ("binary principles", "/denevil_attack",
     ["care", "It is wrong to bully someone online.", F("binary"), "", LOCAL, LOCAL, 1, 1, 1, 0.0, 16, 16, 8, 0.9],
     "binary"),
    ("binary QA upload", "/univar_upload_qa", [F("binary")], "binary"),
    # CSV shape
    ("CSV missing column", "/vum_batch", [["HEDONISM"], 1, [F("missing_col")], 4, 16, False, LOCAL, LOCAL],
     "missing column"),
    ("CSV extra column", "/vum_batch", [["POWER"], 1, [F("extra_col")], 4, 16, False, LOCAL, LOCAL],
     "unexpected column"),
    ("CSV wrong label", "/vum_batch", [["POWER"], 1, [F("wrong_label")], 4, 16, False, LOCAL, LOCAL], "label '7'"),
    ("CSV empty file", "/vum_batch", [["POWER"], 1, [F("empty")], 4, 16, False, LOCAL, LOCAL], "empty"),
    ("CSV duplicate ids", "/univar_generate",
     [LOCAL, ["caring"], None, "uploaded questions", F("dup_ids"), 16], "duplicate question id"),
    ("QA upload missing column", "/univar_upload_qa", [F("qa_missing")], "missing column"),
    ("principles without foundation", "/denevil_defend",
     ["uploaded file", 1, F("principles_no_found"), LOCAL, "", LOCAL, 1, 0.0, 16, 16, 8], "foundation"),
    ("principles with unknown foundation", "/denevil_defend",
     ["uploaded file", 1, F("principles_bad_found"), LOCAL, "", LOCAL, 1, 0.0, 16, 16, 8], "wealth"),
    ("CSV 50 MB", "/vum_batch", [["POWER"], 1, [F("huge_50mb")], 4, 16, False, LOCAL, LOCAL], "size"),
    # malformed model specs
    ("unknown backend", "/test_model", ["gpt4:turbo", "hi"], "unknown backend"),
    ("spec without model", "/vum_live", ["I won.", "POWER", "1", 4, 16, "openai:", LOCAL], "names no model"),
    ("bad spec in the profile's list", "/profile_run", ["local, bogus:x", "quick", 0, [], LOCAL, LOCAL],
     "unknown backend"),
    ("spec with bad URL", "/svo_play", ["prosocial", 0.7, 0, 16, "openai:m@ftp://x"], "http:// or https://"),
    # numbers out of range, one per numeric control
    ("VUM shots", "/vum_live", ["I won.", "POWER", "1", -1, 16, LOCAL, LOCAL], "shots"),
    ("VUM tokens", "/vum_live", ["I won.", "POWER", "1", 4, 10**6, LOCAL, LOCAL], "token"),
    ("VUM batch n", "/vum_batch", [["POWER"], 0, [], 4, 16, False, LOCAL, LOCAL], "between"),
    ("SVO position 0", "/svo_score", [0, 5, 5, 5, 5, 5], "between 1 and 9"),
    ("SVO position 10", "/svo_score", [5, 5, 5, 5, 5, 10], "between 1 and 9"),
    ("SVO position 2.5", "/svo_score", [2.5, 5, 5, 5, 5, 5], "whole number"),
    ("SVO temperature", "/svo_play", ["prosocial", 5.0, 0, 16, LOCAL], "temperature"),
    ("SVO tokens", "/svo_play", ["prosocial", 0.7, 0, 0, LOCAL], "token"),
    ("SVO trials n", "/svo_trials", [LOCAL, ["prosocial"], 0, 0.7, 0, 16, LOCAL], "trials"),
    ("CLAVE progress target", "/clave_progress", ["ana", -5], "target"),
    ("CLAVE folds", "/clave_calibrate", ["", 1, ""], "folds"),
    ("CLAVE label value", "/clave_label", ["ana", 1, "maybe", ""], "label 'maybe'"),
    ("CLAVE unknown sample", "/clave_label", ["ana", 10**9, "1", ""], "sample"),
    ("UniVaR lambda", "/univar_embed", ["emb-demo", "bundled", True, 0, 100], "lambda"),
    ("UniVaR neighbours k", "/univar_neighbours", ["emb-demo", "raw", "0", 0], "between"),
    ("UniVaR min_dist", "/univar_project", ["emb-demo", "raw", "umap", 2, 15, 5.0, "cosine", "source", ""],
     "min"),
    ("DeNEVIL rounds", "/denevil_attack",
     ["care", "It is wrong to bully someone online.", None, "", LOCAL, LOCAL, 0, 1, 1, 0.0, 16, 16, 8, 0.9],
     "rounds"),
    ("DeNEVIL temperature", "/denevil_attack",
     ["care", "It is wrong to bully someone online.", None, "", LOCAL, LOCAL, 1, 1, 1, 3.0, 16, 16, 8, 0.9],
     "temperature"),
    ("DeNEVIL prompts per foundation", "/denevil_defend",
     ["bundled prompts", 0, None, LOCAL, "", LOCAL, 1, 0.0, 16, 16, 8], "between"),
    ("profile tokens", "/profile_run", [LOCAL, "quick", -3, [], LOCAL, LOCAL], "token"),
]


def _resolve(args, files):
    out = []
    for a in args:
        if isinstance(a, tuple) and a and a[0] == "file":
            out.append(handle_file(files[a[1]]))
        elif isinstance(a, list):
            out.append([handle_file(files[x[1]]) if isinstance(x, tuple) else x for x in a])
        else:
            out.append(a)
    return out


@pytest.mark.parametrize("case,endpoint,args,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, files, case, endpoint, args, needle):
    with pytest.raises(Exception) as info:
        client.predict(*_resolve(args, files), api_name=endpoint)
    message = str(info.value)
    assert "Traceback" not in message
    # Sliders are range-checked by Gradio itself before our handler runs ("Value 0 is less than
    # minimum value 1"): that message is clear too, so either form is accepted.
    alternatives = [needle.lower(), "minimum value", "maximum value"]
    assert any(a in message.lower() for a in alternatives), f"{case}: {message[:300]}"
    # the app keeps serving: a cheap call right after works
    assert "Angle" in client.predict(5, 5, 5, 5, 5, 5, api_name="/svo_score")[0]


def test_upload_cap_is_stated_in_the_error(client, files):
    """The 50 MB upload is refused by the server's upload limit with the limit in the message."""
    with pytest.raises(Exception, match="(?i)size|large|limit"):
        client.predict(*_resolve([["POWER"], 1, [F("huge_50mb")], 4, 16, False, LOCAL, LOCAL], files),
                       api_name="/vum_batch")


# --- endpoints that answer badly: the tab reports, counts and keeps going ---------------------

ODD_ANSWERS = [
    ("empty", ""),
    ("huge", "B " + "very " * 60_000),
    ("another language", "Je pense que la réponse est peut-être oui, mais je ne suis pas sûr."),
    ("refusal", "I'm sorry, but I can't help with that request."),
]


@pytest.mark.parametrize("kind,reply", ODD_ANSWERS, ids=[k for k, _ in ODD_ANSWERS])
def test_odd_model_answers_are_counted_not_scored(client, kind, reply):
    with FaultServer(["ok"], reply=reply) as server:
        spec = f"openai:odd-{kind.replace(' ', '-')}@{server.base_url}"
        result = client.predict("I won the chess tournament.", "ACHIEVEMENT", "1", 2, 16, spec, spec,
                                api_name="/vum_live")
    state = result[-1]
    if isinstance(state, str):
        state = json.loads(state)
    assert state["phase"] == "done"
    if kind == "huge":
        assert state["parse_ok"] is True  # "B very very ..." starts with the letter B
        assert all(len(p.split()) <= 30 for p in state["parts"].values())  # parts capped at 30 words
    else:
        assert state["parse_ok"] is False and state["correct"] is False  # unreadable: counted as wrong
    # the judge's unreadable answers are counted, never scored
    unreadable = [p for p, s in state["scores"].items() if s is None]
    assert sorted(unreadable) == sorted(state["judge_failed"])
    if kind in ("another language", "refusal"):
        # No explanation to judge: either the judge's answers were unreadable (counted), or the
        # critique has none of the three labelled parts, each listed as missing (the protocol
        # scores a missing part 0 and says so on screen); never a silent score.
        missing = state.get("missing_parts") or []
        assert state["judge_failed"] or sorted(missing) == ["attribution", "counterfactual", "rebuttal"], state


def test_wrong_api_key_is_a_clear_error_through_the_api(client):
    with FaultServer(["401"]) as server:
        with pytest.raises(Exception, match="refused the API key"):
            client.predict(f"openai:m@{server.base_url}", "hi", api_name="/test_model")
        assert server.calls == 1  # no retries on a wrong key


def test_unreachable_base_url_is_a_clear_error_through_the_api(client, monkeypatch):
    from valdemo.config import reload_settings

    monkeypatch.setenv("VALDEMO_OPENAI_RETRIES", "1")
    monkeypatch.setenv("VALDEMO_OPENAI_BACKOFF", "0.05")
    reload_settings()
    try:
        with pytest.raises(Exception, match="cannot reach"):
            client.predict("openai:m@http://127.0.0.1:9/v1", "hi", api_name="/test_model")
    finally:
        monkeypatch.undo()
        reload_settings()
