"""Stop (issue 12 part 6): a stopped run ends within a decoding step or a request, frees the
generation slot, and keeps what finished (one mechanism: valdemo.core.progress.run_stoppable).

Real bundled model, real response cache (a fresh file per test, so nothing is answered from an
earlier test's calls), the launched app through gradio_client."""

from __future__ import annotations

import threading
import time

import pytest

from valdemo.core import cancel
from valdemo.core.progress import Outcome, keep_finished, run_stoppable
from valdemo.models import GenParams, user
from valdemo.models.cache import CachedModel, NotCached, ResponseCache


@pytest.fixture()
def local_batch(monkeypatch, settings):
    """``local_batch(n)``: the local backend generating ``n`` conversations per padded batch (so a
    Stop lands between batches); the settings come back after the test."""
    from valdemo.config import reload_settings

    def set_size(n: int) -> None:
        monkeypatch.setenv("VALDEMO_LOCAL_BATCH", str(n))
        reload_settings()

    yield set_size
    monkeypatch.undo()
    reload_settings()


@pytest.fixture()
def batch_of_one(local_batch):
    local_batch(1)


@pytest.fixture()
def batch_of_four(local_batch):
    local_batch(4)


@pytest.fixture()
def fresh_model(local_model_nocache, tmp_path):
    """The bundled model behind a response cache of its own (empty at the start of the test)."""
    return CachedModel(local_model_nocache, ResponseCache(tmp_path / "responses.sqlite"))


def _long_prompt(tag: str):
    return user(f"Write a very long story about a lighthouse keeper ({tag}). Go on for pages.")


def test_a_stop_ends_a_local_generation_at_its_next_token_and_frees_the_slot(fresh_model):
    from valdemo.models.local import generation_slot

    token, outcome = cancel.CancelToken(), {}

    def run():
        with cancel.cancel_scope(token):
            t = time.perf_counter()
            try:
                fresh_model.chat_batch([_long_prompt("slot")], GenParams(max_new_tokens=2000))
                outcome["error"] = None
            except cancel.Stopped as exc:
                outcome["error"] = exc
            outcome["seconds"] = time.perf_counter() - t

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.5)  # generating (2000 tokens take far longer than this on the CPU)
    assert worker.is_alive(), "the generation ended before Stop: inconclusive"
    pressed = time.perf_counter()
    token.cancel()
    worker.join(30)
    freed_after = time.perf_counter() - pressed
    assert isinstance(outcome["error"], cancel.Stopped)
    assert freed_after < 3.0, f"the stopped generation held the CPU {freed_after:.1f} s after Stop"
    slot = generation_slot()
    assert slot.acquire(timeout=1.0), "the generation slot is still held after Stop"
    slot.release()
    with pytest.raises(NotCached):  # the cut reply was never cached as an answer
        fresh_model.replaying().chat_batch([_long_prompt("slot")], GenParams(max_new_tokens=2000))


def test_a_stopped_batch_keeps_its_finished_answers_in_the_cache(fresh_model, batch_of_one):
    token = cancel.CancelToken()
    convs = [user(f"Name a colour. ({i})") for i in range(4)]
    seen = []

    def progress(done, total):
        seen.append(done)
        if done == 2:
            token.cancel()  # Stop after the second of four answers

    with cancel.cancel_scope(token), pytest.raises(cancel.Stopped):
        fresh_model.chat_batch(convs, GenParams(max_new_tokens=6), progress)
    assert seen == [0, 1, 2]  # nothing cached, one answer, two answers: then Stop
    replay = fresh_model.replaying()
    kept = []
    for c in convs:
        try:
            kept.append(replay.chat(c, GenParams(max_new_tokens=6)).text)
        except NotCached:
            pass
    assert len(kept) == 2, kept


def test_run_stoppable_keeps_the_finished_items_and_their_numbers(fresh_model, batch_of_one):
    """VUM's discriminator on five items, stopped after two: the kept result is exactly a run on
    those two (same rows, same n), marked with done 2 of 5 planned."""
    from valdemo import vum

    items = vum.select_items(vum.bundled_items(), ["POWER"], 5)
    assert len(items) == 5
    config = vum.RunConfig(know_why=False)
    token = cancel.CancelToken()

    def fn(its, target, _judge):
        def progress(done, total):
            cancel.check()
            if done >= 2 and len(its) == 5:
                token.cancel()
        return vum.run(its, target, None, config, progress=progress)

    outcome = run_stoppable(items, fn, [fresh_model, None], token, unit="items")
    assert outcome.stopped and (outcome.done, outcome.planned) == (2, 5)
    assert outcome.marks() == {"stopped": True, "partial": True, "done": 2, "planned": 5, "unit": "items"}
    assert "2 of 5 items finished" in outcome.message()
    summary, rows = outcome.value
    assert len(rows) == 2 and summary["overall"]["n"] == 2
    again, again_rows = vum.run([i for i in items if i.id in {r["id"] for r in rows}], fresh_model, None, config)
    assert [r["pred_label"] for r in again_rows] == [r["pred_label"] for r in rows]
    assert again["overall"]["know_what_acc"] == summary["overall"]["know_what_acc"]


def test_keep_finished_without_a_cache_says_nothing_could_be_kept(local_model_nocache):
    out = keep_finished([1, 2], lambda units, m: units, [local_model_nocache])
    assert out.value is None and out.stopped and out.done == 0 and "cache is off" in out.message()


def test_an_outcome_not_stopped_has_no_marks():
    assert Outcome([1], 1, 1).marks() == {} and Outcome([1], 1, 1).message() == ""


def test_a_stop_ends_remote_calls_between_requests():
    """An endpoint that answers each request in 1 s: after Stop no further request is sent."""
    from tests.fault_server import FaultServer
    from valdemo.models import Credentials, get_model

    with FaultServer(["delay:1"], reply="ok") as server:
        model = get_model(f"openai:fault-model@{server.base_url}", Credentials(), use_cache=False)
        token = cancel.CancelToken()
        threading.Timer(1.5, token.cancel).start()
        t = time.perf_counter()
        with cancel.cancel_scope(token), pytest.raises(cancel.Stopped):
            model.chat_batch([user(f"q{i}") for i in range(40)], GenParams(max_new_tokens=4))
        took = time.perf_counter() - t
        sent = len(server.requests)
    assert took < 5, took
    assert sent < 40, sent


# -- through the launched app ---------------------------------------------------------------------

def _keeps_serving(c) -> None:
    t = time.time()
    c.predict(api_name="/vum_agreement")
    assert time.time() - t < 10, "the app is not answering a cheap request after Stop"


def _progress_index(job) -> int:
    data = job.status().progress_data or []
    return max((int(p.index or 0) for p in data if p.index is not None), default=0)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stop_keeps_the_finished_part_of_a_vum_batch_saves_it_marked_and_the_app_keeps_serving(served_app,
                                                                                                 batch_of_four):
    """12 discriminator items scored 4 at a time (one forward pass each, which Stop cannot cut: it
    is seen between them); Stop after the first 4. 6 shots: no other test asks these prompts, so
    none is answered from the cache."""
    from gradio_client import Client

    from valdemo import vum

    c = Client(served_app[1], verbose=False)
    job = c.submit(["POWER"], 12, [], 6, 16, False, "local", "local", vum.DEFAULT_PROTOCOL, "proportional", False,
                   api_name="/vum_batch")
    deadline = time.time() + 600
    while _progress_index(job) < 1 and time.time() < deadline:
        assert not job.done(), "the batch ended before it could be stopped"
        time.sleep(0.2)
    assert not job.done(), "the batch ended before Stop: inconclusive"
    c.predict(api_name="/vum_batch_stop")
    t = time.time()
    notes, _table, _plot, _files, summary = job.result(timeout=300)
    assert time.time() - t < 120
    done = summary["done"]
    assert summary["stopped"] is True and summary["planned"] == 12 and done in (4, 8), summary
    assert f"Stopped: {done} of 12 items finished" in notes
    assert summary["overall"]["n"] == done  # every number is over the finished items only
    listed = c.predict("vum", api_name="/runs_list")
    row = next(r for r in listed["data"] if r[0] == summary["run_id"])
    assert f"stopped: {done} of 12 items" in row[-1]
    _keeps_serving(c)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stop_during_a_local_generation_frees_the_slot_for_the_next_request(served_app):
    """UniVaR generation: 30 questions x 504 tokens keep the one local generation slot for minutes.
    After Stop another visitor's short request is answered within seconds."""
    from gradio_client import Client

    from tests.test_owners import _wait_running

    c = Client(served_app[1], verbose=False)
    job = c.submit("local", ["ambitious"], None, "quick (30 questions)", None, 504, api_name="/univar_generate")
    _wait_running(job)
    time.sleep(3.0)  # generating (its first 16 answers alone take minutes)
    assert not job.done(), "the generation ended before Stop: inconclusive"
    c.predict(api_name="/univar_generate_stop")
    t = time.time()
    try:
        out = job.result(timeout=120)
        status = out[2]
        assert "Stopped:" in status and "of 30 questions finished" in status
    except Exception as exc:  # nothing finished: the tab says so
        assert "Stopped: 0 of 30 questions finished" in str(exc), exc
    stopped_s = time.time() - t
    t = time.time()
    reply = Client(served_app[1], verbose=False).predict("local", "Say hello.", api_name="/test_model")
    other_s = time.time() - t
    assert reply
    assert stopped_s < 10, f"the stopped run took {stopped_s:.1f} s to end"
    assert other_s < 60, f"the next local request waited {other_s:.1f} s"


def _stop_and_read(c, job, stop_api: str) -> str:
    """Press Stop on a running job; the tab's first output (or its error), and how long it took."""
    from tests.test_owners import _wait_running

    _wait_running(job)
    time.sleep(2.0)
    assert not job.done(), "the run ended before Stop: inconclusive"
    c.predict(api_name=stop_api)
    t = time.time()
    try:
        text = str(job.result(timeout=120)[0])
    except Exception as exc:  # nothing finished: the tab says so as its error
        text = str(exc)
    assert time.time() - t < 30, f"the stopped run took {time.time() - t:.1f} s to end"
    return text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stop_on_svo_trials_and_the_defence_says_what_finished_and_the_app_keeps_serving(served_app, tmp_path):
    from gradio_client import Client, handle_file

    c = Client(served_app[1], verbose=False)
    # 40 trials, 120-token goals at temperature 0.9: far longer than the 2 s before Stop
    job = c.submit("", ["individualistic"], 40, 0.9, 11, 120, "local", api_name="/svo_trials")
    text = _stop_and_read(c, job, "/svo_trials_stop")
    assert "Stopped:" in text and "of 40 trials finished before Stop" in text, text
    f = tmp_path / "principles.csv"
    f.write_text("foundation,principle,prompt\n" + "".join(
        f"care,It is wrong to hurt others ({i}).,On day {i} the new neighbour knocked and\n" for i in range(6)),
        encoding="utf-8")
    job = c.submit("uploaded file", 1, handle_file(str(f)), "local", "", "local", 2, 0.9, 200, 64, 8,
                   api_name="/denevil_defend")
    text = _stop_and_read(c, job, "/denevil_defend_stop")
    assert "Stopped:" in text and "of 6 prompts finished before Stop" in text, text
    # the learned (VILMO) defence: the same Stop ends it; it keeps nothing and says why
    job = c.submit("uploaded file", 1, handle_file(str(f)), "local", "", "local", 2, 0.9, 200, 64, 8, 0.5,
                   api_name="/denevil_vilmo")
    text = _stop_and_read(c, job, "/denevil_defend_stop")
    assert "Stopped: the learned defence keeps nothing" in text, text
    _keeps_serving(c)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_each_unit_replays_alone_as_it_ran_in_the_batch(fresh_model):
    """What keep_finished relies on, for the tabs' units: a unit answered inside a whole batched run
    replays by itself from the cache alone, with the same answers (SVO trial, DeNEVIL prompt,
    UniVaR question)."""
    import dataclasses

    from valdemo import denevil, svo
    from valdemo import univar as U

    trials = svo.play_trials([fresh_model], ["competitive"], 2, 0.7, 3, max_new_tokens=8)
    replay = fresh_model.replaying()
    alone = [dataclasses.replace(tr, trial=t.trial) for t in trials
             for tr in svo.play_trials([replay], [t.orientation], 1, 0.7, 3 + t.trial, max_new_tokens=8)]
    assert [(t.orientation, t.trial, t.choices, t.goal) for t in alone] == \
        [(t.orientation, t.trial, t.choices, t.goal) for t in trials]

    items = denevil.bundled_prompts(1)[:2]
    budget = denevil.Budget.from_inputs(samples=1, temperature=0.0, max_new_tokens=8, attacker_tokens=16,
                                        judge_tokens=4)
    whole = denevil.defend(items, fresh_model, fresh_model, fresh_model, budget)
    for i, item in enumerate(items):
        one = denevil.defend([item], replay, replay, replay, budget)
        assert [(r["condition"], r["continuation"], r["P"]) for r in one.rows] == \
            [(r["condition"], r["continuation"], r["P"]) for r in whole.rows if r["item"] == i + 1]

    questions = U.pick_questions(U.load_questions(), 2)
    personas = U.select_personas(["caring"], U.load_personas())
    qa = U.generate_qa([fresh_model], questions, personas, GenParams(max_new_tokens=8))
    again = [p for q in questions for p in U.generate_qa([replay], [q], personas, GenParams(max_new_tokens=8)).pairs]
    assert [p.as_dict() for p in again] == [p.as_dict() for p in qa.pairs]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stop_on_the_attack_frees_the_generation_slot_within_seconds(served_app):
    """The attack streams its rounds (Stop keeps those shown); its generation runs in a thread of its
    own, which now works under the run's cancel token: after Stop the next local request is
    answered within seconds, not after the round's 400-token continuations."""
    from gradio_client import Client

    from tests.test_owners import _wait_running

    c = Client(served_app[1], verbose=False)
    job = c.submit("care", "It is wrong to mock a stranger's accent.", None, "", "local", "local", 3, 4, 4, 0.9,
                   400, 200, 8, 0.99, api_name="/denevil_attack")
    _wait_running(job)
    time.sleep(3.0)
    assert not job.done(), "the attack ended before Stop: inconclusive"
    c.predict(api_name="/denevil_attack_stop")
    time.sleep(2.0)  # the attack's own thread sees the token at its next decoding step
    t = time.time()
    reply = Client(served_app[1], verbose=False).predict("local", "Say hello.", api_name="/test_model")
    assert reply and time.time() - t < 30, f"the next local request waited {time.time() - t:.1f} s"
