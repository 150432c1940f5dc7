"""choose(): the one closed-question reader, table-driven on odd answers for both backends.

Three kinds of peer:
- the bundled SmolLM2-135M (local backend: option scores of complete answers, and, with
  its scores switched off, generated replies), prompted so that it really writes the
  odd answer ("Copy this text exactly: I choose C");
- a real `transformers serve` endpoint (``openai_server``): it returns no logprobs, so
  choose() generates and parses;
- ``ScriptedEndpoint`` below, a TEST DOUBLE: a loopback stdlib HTTP server that answers
  every request with one fixed reply and fixed top logprobs. It exists because no real
  model writes "(b)", an empty reply or a reply whose top logprobs hold no option on
  demand, and `transformers serve` returns no logprobs at all.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from valdemo.core.choose import DEFAULT_MIN_MASS, Choice, choose, from_probs, read_answer, read_text, tally
from valdemo.core.result import Metric
from valdemo.models import GenParams, ResponseCache, user
from valdemo.models.base import ends_answer
from valdemo.models.cache import CachedModel
from valdemo.models.openai_api import OpenAIChatModel
from valdemo.parsing import Parsed

NINE = "ABCDEFGHI"


# --- a scripted endpoint (test double, see the module docstring) ----------------------------

class ScriptedEndpoint:
    """Answers /v1/chat/completions with ``reply``; with ``tokens`` [(token, [(top, logprob)...])...]
    it also returns those logprobs when asked (``tokens=None``: a server without logprobs)."""

    def __init__(self, reply: str, tokens: list[tuple[str, list[tuple[str, float]]]] | None = None):
        self.reply, self.tokens, self.requests = reply, tokens, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                outer.requests.append(body)
                choice = {"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": outer.reply}}
                if body.get("logprobs") and outer.tokens is not None:
                    wanted = body.get("max_tokens") or len(outer.tokens)
                    choice["logprobs"] = {"content": [
                        {"token": tok, "logprob": dict(tops).get(tok, -9.0), "bytes": None,
                         "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in tops]}
                        for tok, tops in outer.tokens[:wanted]]}
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                                   "choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def scripted_model(server: ScriptedEndpoint) -> OpenAIChatModel:
    return OpenAIChatModel("scripted", base_url=server.base_url, retries=0, timeout_s=5)


class TextOnly:
    """A real model with its option scores switched off, so choose() takes the parse path."""

    def __init__(self, inner):
        self.inner, self.spec, self.backend = inner, inner.spec, inner.backend
        self.model_id, self.is_bundled = inner.model_id, inner.is_bundled

    def chat_batch(self, conversations, params=None, progress=None):
        return self.inner.chat_batch(conversations, params, progress)

    def answer_probs_batch(self, conversations, options, progress=None, answers=None):
        return None


# --- the odd answers ---------------------------------------------------------------------
# (name, reply, options, logprob tokens as an endpoint would send them,
#  expected option when read from scores, expected option when parsed)
ODD = [
    ("I choose C", "I choose C", NINE,
     [("I", [("I", -0.1), ("C", -3.0), ("A", -4.0)]), (" choose", [(" choose", -0.05), (".", -4.0)])],
     None, "C"),
    ("A fair split", "A fair split is best.", "ABC",
     [("A", [("A", -0.2), ("B", -2.5)]), (" fair", [(" fair", -0.1), (".", -3.5)])],
     None, None),
    ("(b)", "(b)", "ABC", [("(", [("(", -0.1), ("A", -4.0)]), ("b", [("b", -0.1)])], None, "B"),
    ("empty", "", "ABC", [], None, None),
    ("refusal", "I'm sorry, but I can't choose for you.", NINE,
     [("I", [("I", -0.05), ("A", -5.0)]), ("'m", [("'m", -0.01)])], None, None),
    ("another language", "Je ne sais pas lequel choisir.", "ABC",
     [("Je", [("Je", -0.3), ("C", -2.0)]), (" ne", [(" ne", -0.2)])], None, None),
    ("clean letter", "C", "ABC", [("C", [("C", -0.05), ("B", -3.5)])], "C", "C"),
    ("letter and stop", "B.", "ABC", [("B", [("B", -0.1), ("A", -3.0)]), (".", [(".", -0.2), (" It", -2.0)])],
     "B", "B"),
    ("no option in top logprobs", "Hello there!", "ABC",
     [("Hello", [("Hello", -0.2), ("Hi", -1.9)]), (" there", [(" there", -0.1)])], None, None),
]


@pytest.mark.parametrize("name,reply,options,tokens,by_probs,by_parse", ODD, ids=[c[0] for c in ODD])
def test_endpoint_with_logprobs_scores_complete_answers(name, reply, options, tokens, by_probs, by_parse):
    with ScriptedEndpoint(reply, tokens) as server:
        [c] = choose(scripted_model(server), [user("Pick one.")], options)
    assert c.via == "probs"
    assert c.option == by_probs, (name, c)
    if by_probs is None:
        assert not c.ok and c.reason.startswith("mass on options") and "below threshold" in c.reason
        assert c.mass < DEFAULT_MIN_MASS
    # The raw mass is reported, never a uniform stand-in.
    first = {t: math.exp(lp) for t, lp in tokens[0][1]} if tokens else {}
    assert c.mass <= sum(p for t, p in first.items() if t in options) + 1e-9


@pytest.mark.parametrize("name,reply,options,tokens,by_probs,by_parse", ODD, ids=[c[0] for c in ODD])
def test_endpoint_without_logprobs_parses_the_reply(name, reply, options, tokens, by_probs, by_parse):
    with ScriptedEndpoint(reply, None) as server:
        [c] = choose(scripted_model(server), [user("Pick one.")], options)
    assert c.via == "parse" and c.text == reply
    assert c.option == by_parse, (name, c)
    assert c.ok == (by_parse is not None) and (c.reason == "" if c.ok else c.reason)


def test_first_token_scoring_would_have_answered_I():
    """The bug this replaces: "I choose C" scored as option I among A-I; now unreadable."""
    tokens = ODD[0][3]
    with ScriptedEndpoint("I choose C", tokens) as server:
        raw = scripted_model(server).answer_probs(user("Pick."), list(NINE))
    assert max(raw, key=raw.get) == "C"  # "I" keeps only the share of "I" that ends there
    assert raw["I"] == pytest.approx(math.exp(-0.1) * math.exp(-4.0))


def test_endpoint_naming_no_option_gives_counted_failures_and_no_accuracy():
    """Six know-what style questions; the endpoint never names an option: 6 of 6 failures,
    and an accuracy over readable answers has n = 0 and no value."""
    with ScriptedEndpoint("Hello there!", ODD[-1][3]) as server:
        choices = choose(scripted_model(server), [user(f"Question {i}. A, B or C?") for i in range(6)], "ABC")
    failures = tally(choices, "know-what answers")
    assert (failures.failed, failures.total) == (6, 6)
    assert failures.reasons == {"mass on options below threshold": 6}
    readable = [c for c in choices if c.ok]
    acc = Metric.proportion("acc", sum(c.option == "A" for c in readable), len(readable), "correct / readable", "x")
    assert acc.value is None and acc.n == 0 and acc.fmt() == "n/a (n=0)"


def test_answers_map_options_to_full_answer_strings():
    with ScriptedEndpoint("Not applicable.", None) as server:
        answers = {"A": "Yes", "B": "No", "C": "Not applicable"}
        [c] = choose(scripted_model(server), [user("Is it?")], "ABC", answers=answers)
    assert c.option == "C" and c.via == "parse"


def test_cached_choose_makes_no_second_call(tmp_path):
    tokens = ODD[6][3]
    with ScriptedEndpoint("C", tokens) as server:
        model = CachedModel(scripted_model(server), ResponseCache(tmp_path / "c.sqlite"))
        convs = [user(f"Q{i}") for i in range(3)]
        first = choose(model, convs, "ABC")
        sent = len(server.requests)
        again = choose(model, convs, "ABC")
    assert sent == 3 and len(server.requests) == sent
    assert [c.option for c in first] == [c.option for c in again] == ["C"] * 3


# --- pure pieces -----------------------------------------------------------------------

@pytest.mark.parametrize("following,ends", [
    ("", True), (".", True), (")", True), (":", True), ("\n", True), (" \n", True), (" (", True),
    (" fair", False), ("at", False), ("3", False), ("'m", False), ("-grade", False), (" because", False),
])
def test_ends_answer(following, ends):
    assert ends_answer(following) is ends


def test_from_probs_threshold_and_renormalisation():
    c = from_probs({"A": 0.6, "B": 0.2, "C": 0.0}, "ABC")
    assert c.option == "A" and c.mass == pytest.approx(0.8) and c.probs["A"] == pytest.approx(0.75)
    low = from_probs({"A": 0.3, "B": 0.1}, "ABC")
    assert low.option is None and low.mass == pytest.approx(0.4) and low.probs["A"] == pytest.approx(0.75)
    assert from_probs({"A": 0.3, "B": 0.1}, "ABC", min_mass=0.25).option == "A"
    zero = from_probs({}, "ABC")
    assert zero.option is None and zero.mass == 0.0 and zero.probs is None


@pytest.mark.parametrize("text,expected", [
    ("I choose C", "C"), ("C", "C"), ("C.", "C"), ("(C)", "C"), ("C)", "C"), ("Answer: C", "C"),
    ("(b)", "B"), ("A fair split is best.", None), ("", None), ("I'm sorry, I cannot.", None),
])
def test_read_answer_letters_among_nine(text, expected):
    assert read_answer(text, NINE).value == expected


def test_read_text_is_the_parse_path_for_one_reply():
    c = read_text("I choose C", NINE)
    assert (c.option, c.via, c.text, c.reason) == ("C", "parse", "I choose C", "")
    assert read_text("", "ABC").reason == "empty" and not read_text("", "ABC").ok
    assert read_text("Score: 4", "012345", parse=lambda t: Parsed("4", True)).option == "4"
    with pytest.raises(ValueError, match="not one of the options"):
        read_text("x", "AB", parse=lambda t: Parsed("Z", True))


def test_sampled_is_seeded_and_argmax_at_zero():
    c = Choice("A", probs={"A": 0.5, "B": 0.3, "C": 0.2}, mass=0.9, via="probs")
    assert c.sampled(0.0, 1) == "A"
    draws = [c.sampled(1.0, s) for s in range(200)]
    assert draws == [c.sampled(1.0, s) for s in range(200)]
    assert set(draws) == {"A", "B", "C"}
    assert Choice(None, "x").sampled(1.0, 0) is None


def test_bad_arguments():
    with pytest.raises(ValueError):
        choose(TextOnly.__new__(TextOnly), [user("x")], "AB", min_mass=1.5)
    from valdemo.models import ModelError

    with pytest.raises(ModelError):
        choose(TextOnly.__new__(TextOnly), [user("x")], "AB", answers={"A": "Yes", "B": "Yes"})


# --- the bundled model and a real server -----------------------------------------------------
# Prompts under which the bundled model (greedy) really writes the odd answer.
REAL = [
    ("I choose C", "Copy this text exactly: I choose C", NINE, "I choose C", "C"),
    ("A fair split", "Copy this text exactly: A fair split is best.", "ABC", "A fair split", None),
    ("b)", "Repeat exactly, nothing else: (b)", "ABC", "B)", "B"),
    ("refusal", "Refuse politely: say you will not answer.", NINE, "I'm sorry", None),
    ("another language", "Translate to French: I do not know which option to pick.", "ABC", "Je ", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,prompt,options,starts,by_parse", REAL, ids=[c[0] for c in REAL])
def test_bundled_model_odd_answers_both_paths(local_model_nocache, name, prompt, options, starts, by_parse):
    conv = [user(prompt)]
    [parsed] = choose(TextOnly(local_model_nocache), conv, options)
    assert parsed.text.startswith(starts), parsed.text  # the model really wrote the odd answer
    assert parsed.via == "parse" and parsed.option == by_parse
    [scored] = choose(local_model_nocache, conv, options)
    assert scored.via == "probs"
    # None of these replies is a complete option answer: the mass on the options is low.
    assert scored.option is None and scored.mass < DEFAULT_MIN_MASS, scored


@pytest.mark.slow
def test_bundled_model_scores_complete_answers_not_first_tokens(local_model_nocache):
    """First-token reading of "I choose C" among A-I says I; the complete answer "I" (then the end
    of the turn or punctuation) keeps only a small share of that."""
    conv = user("Copy this text exactly: I choose C")
    raw = local_model_nocache.answer_probs(conv, list(NINE))
    [c] = choose(local_model_nocache, [conv], NINE)
    assert c.probs is not None and max(c.probs, key=c.probs.get) == "I"  # what first tokens would say
    assert raw["I"] < 0.2 and c.option is None


@pytest.mark.slow
def test_bundled_model_answers_a_plain_question(local_model_nocache):
    conv = user("Which letter comes first in the alphabet?\nA. A\nB. Z\nAnswer with the letter only.")
    [c] = choose(local_model_nocache, [conv], "AB", min_mass=0.0)
    assert c.via == "probs" and c.mass > 0.05 and sum(c.probs.values()) == pytest.approx(1.0)
    batch = choose(local_model_nocache, [conv, user("Pick A or B."), user("Long question " * 30 + "A or B?")], "AB",
                   min_mass=0.0)
    assert batch[0].mass == pytest.approx(c.mass, rel=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name,prompt,options,starts,by_parse", REAL, ids=[c[0] for c in REAL])
def test_real_server_odd_answers_are_parsed(openai_server, name, prompt, options, starts, by_parse):
    base_url, served = openai_server
    model = OpenAIChatModel(served, base_url=base_url)
    [c] = choose(model, [user(prompt)], options, params=GenParams(max_new_tokens=16))
    assert c.via == "parse"  # transformers serve returns no logprobs
    assert c.text.startswith(starts), c.text
    assert c.option == by_parse and c.ok == (by_parse is not None)


def test_parse_path_generates_one_batch_per_seed(local_model_nocache):
    """choose(seeds=...): option scoring ignores seeds; the parse path generates each distinct seed's
    conversations together (here with the bundled model's scores switched off), so a reply equals the one
    its seed's group gets alone, whatever other seeds were asked beside it."""
    model = TextOnly(local_model_nocache)
    convs = [user("Pick A or B. Answer with the letter."), user("A or B? One letter."), user("Choose: A or B.")]
    params = GenParams(max_new_tokens=6, temperature=1.0)
    seen = []
    got = choose(model, convs, "AB", params=params, seeds=[1, 2, 1], progress=lambda d, t: seen.append((d, t)))
    alone = {1: local_model_nocache.chat_batch([convs[0], convs[2]], GenParams(max_new_tokens=6, temperature=1.0,
                                                                                 seed=1)),
             2: local_model_nocache.chat_batch([convs[1]], GenParams(max_new_tokens=6, temperature=1.0, seed=2))}
    assert [c.text for c in got] == [alone[1][0].text, alone[2][0].text, alone[1][1].text]
    assert all(c.via == "parse" for c in got) and seen[-1] == (3, 3)
    with pytest.raises(ValueError, match="2 seeds for 3"):
        choose(model, convs, "AB", params=params, seeds=[1, 2])
