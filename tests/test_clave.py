"""CLAVE (issue 5): labelling, durability, import/export/sync, concepts, calibration, the tab.

Real SQLite stores in temp dirs, the real bundled MiniLM encoder, the real bundled
chat model (tiny prompts), the real launched app through gradio_client and a real
`python app.py` process killed with SIGKILL.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from valdemo import clave
from valdemo.core.result import NotMeasured
from valdemo.inputs import InputError
from valdemo.models import BUNDLED_CAVEAT
from valdemo.store import Store
from valdemo.values import SCHWARTZ_KEYS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def store(tmp_path) -> Store:
    return Store(tmp_path / "clave.sqlite")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _valuenet_subset(valuenet_dir: Path, per_file: int) -> list[clave.Sample]:
    out = []
    for f in sorted(valuenet_dir.glob("*.csv")):
        out += clave.read_samples(f)[:per_file]
    return out


# -- bundled samples and uploads -------------------------------------------------------


def test_bundled_samples_cover_every_value_and_label():
    samples = clave.bundled_samples()
    assert len(samples) >= 300
    by_value = Counter(s.value for s in samples)
    assert set(by_value) == set(SCHWARTZ_KEYS)
    for key in SCHWARTZ_KEYS:
        labels = Counter(s.label for s in samples if s.value == key)
        assert set(labels) == {1, -1, 0}, key
        assert min(labels.values()) >= 8, (key, labels)
    assert len({(s.value, s.text) for s in samples}) == len(samples), "duplicate samples"


def test_read_samples_valuenet_format_takes_value_from_file_name(tmp_path):
    f = _write_csv(tmp_path / "valuenet_POWER.csv", ["input", "label"], [["ruling the office", "1"],
                                                                          ["giving up control", "-1"]])
    samples = clave.read_samples(f)
    assert [(s.value, s.label) for s in samples] == [("POWER", 1), ("POWER", -1)]
    with pytest.raises(InputError, match="named like"):
        clave.read_samples(_write_csv(tmp_path / "nameless.csv", ["input", "label"], [["x", "1"]]))


@pytest.mark.parametrize("rows, needle", [
    ([["fine", "POWER", "1"], ["odd", "NOT-A-VALUE", "1"]], "row 3: unknown value"),
    ([["fine", "POWER", "maybe"]], "row 2: label 'maybe'"),
    ([["", "POWER", "1"]], "row 2: empty text"),
])
def test_bad_upload_names_the_row(tmp_path, rows, needle):
    f = _write_csv(tmp_path / "up.csv", ["text", "value", "label"], rows)
    with pytest.raises(InputError, match=needle):
        clave.read_samples(f)


# -- labelling -----------------------------------------------------------------------


def test_labels_are_per_annotator_and_undo_brings_the_sample_back(store):
    first = clave.next_sample(store, "ana")
    assert first["definition"] and first["value"] in SCHWARTZ_KEYS
    ack = clave.submit_label(store, "ana", first["sample_id"], "adheres", note="clear case")
    assert ack["durable"] and ack["label"] == 1
    # bo sees the same first sample: ana's label does not count for bo
    assert clave.next_sample(store, "bo")["sample_id"] == first["sample_id"]
    clave.submit_label(store, "bo", first["sample_id"], -1)
    second = clave.next_sample(store, "ana")
    assert second["sample_id"] != first["sample_id"]
    clave.submit_label(store, "ana", second["sample_id"], "skip")
    assert clave.undo_last(store, "ana")["undone"]["label_name"] == "skipped"
    assert clave.next_sample(store, "ana")["sample_id"] == second["sample_id"]
    undone = clave.undo_last(store, "ana")["undone"]
    assert (undone["sample_id"], undone["label"]) == (first["sample_id"], 1)
    assert clave.next_sample(store, "ana")["sample_id"] == first["sample_id"]
    assert clave.undo_last(store, "ana")["ok"] is False
    # bo's label is untouched by ana's undos
    assert [(r["annotator"], r["label"]) for r in store_labels(store)] == [("bo", -1)]
    prog = clave.progress(store, "bo", target=2)
    assert prog["overall"]["labelled"] == 1
    assert prog["per_value"][first["value"]]["labelled"] == 1


def store_labels(store):
    from valdemo.store import clave_current_labels

    return clave_current_labels(store)


def test_bad_label_input_is_refused(store):
    sample = clave.next_sample(store, "ana")
    with pytest.raises(InputError, match="label"):
        clave.submit_label(store, "ana", sample["sample_id"], "perhaps")
    with pytest.raises(InputError, match="annotator"):
        clave.submit_label(store, "  ", sample["sample_id"], 1)
    with pytest.raises(KeyError, match="no calibration sample"):
        clave.submit_label(store, "ana", 999_999, 1)


# -- export / import / sync ---------------------------------------------------------


def _label_some(store, n_per_annotator=4):
    for who, label in (("ana", 1), ("bo", 0)):
        for _ in range(n_per_annotator):
            s = clave.next_sample(store, who)
            clave.submit_label(store, who, s["sample_id"], label, note=f"{who}, note with a comma")
    clave.import_samples(store, [clave.Sample("Rules bind us all, even when inconvenient.", "CONFORMITY", 1)],
                         "test", annotator="gold")


def _canon(rows):
    return sorted((r["text"], r["value"], int(r["label"]), r["annotator"], r["note"], round(float(r["created"]), 3))
                  for r in rows)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_import_round_trip_loses_nothing(store, tmp_path, fmt):
    _label_some(store)
    out = clave.export_labels(store, fmt, tmp_path / f"labels.{fmt}")
    assert out["labels"] == 9
    fresh = Store(tmp_path / "fresh.sqlite")
    result = clave.import_file(fresh, out["path"])
    assert result["labels_added"] == 9 and set(result["annotators"]) == {"ana", "bo", "gold"}
    assert _canon(clave.export_rows(fresh)) == _canon(clave.export_rows(store))
    assert clave.import_file(fresh, out["path"])["labels_added"] == 0, "re-import must not duplicate"


def test_hub_sync_to_a_local_folder_and_clear_message_without_token(store, tmp_path, monkeypatch):
    _label_some(store, 2)
    target = tmp_path / "shared-drive"
    pushed = clave.push_labels(store, str(target))
    assert pushed["pushed"] == 5 and Path(pushed["file"]).is_file()
    other = Store(tmp_path / "other.sqlite")
    pulled = clave.pull_labels(other, str(target))
    assert pulled["labels_added"] == 5
    assert _canon(clave.export_rows(other)) == _canon(clave.export_rows(store))
    assert clave.pull_labels(other, str(target))["labels_added"] == 0
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(InputError, match="HF_TOKEN"):
        clave.push_labels(store, "someone/valdemo-labels")


def test_hub_push_and_pull_without_network_say_so_and_keep_local_labels(store, monkeypatch):
    """The real huggingface_hub client (create_commit / snapshot_download), with the hub unreachable
    (HF_HUB_OFFLINE=1: tests never touch the network)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _label_some(store, 1)
    before = clave.export_rows(store)
    with pytest.raises(InputError, match="could not push .*local labels are unaffected"):
        clave.push_labels(store, "someone/valdemo-labels", token="hf_not_a_real_token")
    with pytest.raises(InputError, match="could not pull .*local labels are unaffected"):
        clave.pull_labels(store, "someone/valdemo-labels", token="hf_not_a_real_token")
    assert clave.export_rows(store) == before


# -- agreement ----------------------------------------------------------------------


def test_krippendorff_alpha_matches_a_hand_computation():
    # coincidences: 2x(1,1), 2x(0,0), (1,0), (0,1): D_o = 2, D_e = (36 - 9 - 9) / 5 -> alpha = 1 - 2/3.6
    assert clave.krippendorff_alpha_nominal([[1, 1], [0, 0], [1, 0]]) == pytest.approx(1 - 2 / 3.6)
    assert clave.krippendorff_alpha_nominal([[1, 1, 1], [-1, -1, -1], [0, 0]]) == pytest.approx(1.0)
    assert clave.krippendorff_alpha_nominal([[1]]) is None


def test_agreement_reports_kappa_for_shared_samples(store):
    ids = [clave.next_sample(store, "ana")["sample_id"]]
    for who, labels in (("ana", [1, -1, 0, 1]), ("bo", [1, -1, 1, 1])):
        for sid, label in zip(range(1, 5), labels, strict=True):
            clave.submit_label(store, who, sid, label)
    r = clave.agreement(store)
    assert ids and r["annotators"] == ["ana", "bo"]
    pair = r["pairs"][0]
    assert pair["n_shared"] == 4 and pair["percent_agreement"] == 0.75
    assert 0 < pair["cohen_kappa"] < 1
    assert r["krippendorff_alpha"] is not None


# -- concepts -----------------------------------------------------------------------


def test_concepts_parse_json_or_lines_and_failures_are_reported():
    ok = clave.parse_concepts('Sure: {"adheres": ["helps friends"], "opposes": ["betrays trust", "lies"]}')
    assert ok.ok and ok.value == {"adheres": ["helps friends"], "opposes": ["betrays trust", "lies"]}
    lines = clave.parse_concepts("Adheres: keeps promises\n- opposes: abandons family")
    assert lines.ok and lines.value["opposes"] == ["abandons family"]
    assert not clave.parse_concepts("I like turtles.").ok
    with pytest.raises(InputError, match="line 2"):
        clave.text_to_concepts("adheres: fine\nwhatever this is")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 5 min on the shared 2-core CPU, over 10 when 8 people run tests
def test_judge_extracts_concepts_and_labels_zero_shot_tiny(local_model):
    samples = [s for s in clave.bundled_samples() if s.value == "BENEVOLENCE"][:30]
    result = clave.extract_concepts(local_model, "BENEVOLENCE", samples, per_label=1, max_new_tokens=24)
    assert result.raw.strip() and result.model == "local"
    assert result.ok or result.reason  # a failure is reported, never silently empty
    preds, stats, how = clave.llm_zero_shot(local_model, [s.text for s in samples[:2]], ["BENEVOLENCE"] * 2)
    assert len(preds) == 2 and stats.ok + stats.failed == 2
    assert all(p in (1, -1, 0, None) for p in preds) and how
    # per-response concepts (CLAVE step 1): one batched call, every answer counted
    got, fails = clave.response_concepts(local_model, [s.text for s in samples[:3]], ["BENEVOLENCE"] * 3,
                                         max_new_tokens=8)
    assert len(got) == 3 and fails.total == 3 and all(isinstance(c, list) for c in got)
    # the recognizer reads them; the ablation and the judge's two variants are scored on the same rows
    train = [s for s in clave.bundled_samples() if s.value == "BENEVOLENCE"][:6]
    report, rec = clave.calibrate(train, eval_samples=samples[-2:], judge=local_model, learning_curve=False,
                                  concept_tokens=8, guideline_tokens=16)
    assert {"recognizer", "no_concepts", "llm_concepts", "llm_zero_shot", "embed_zero_shot"} <= set(report["methods"])
    assert report["concepts"]["per_response"] and report["concepts"]["protocol"]["hash"]
    steps = {f["step"]: f for f in report["failures"]}
    assert steps["concept extraction"]["total"] == 8  # 6 training + 2 held-out texts
    assert steps["judge zero-shot"]["total"] == 2
    assert report["per_value"]["BENEVOLENCE"]["llm_zero_shot"]["n_train"] == 0
    assert rec.uses_concepts and rec.meta["concept_model"] == "local"
    assert BUNDLED_CAVEAT in report["caveats"]
    assert "helps friends" in clave.llm_prompt("x", clave.get_value("BENEVOLENCE"), {"adheres": ["helps friends"]})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_value_concepts_are_written_per_fold_from_that_folds_training_rows_only(local_model, monkeypatch):
    """The judge-with-concepts baseline: in 2-fold cross-validation each fold's value concepts are
    written from that fold's training rows, so no row is shown to the judge in both folds (a row
    shown twice would be held out in one of them). The real function runs; the test only records
    what it was given."""
    from valdemo.clave import evaluation

    seen: list[set[str]] = []
    real = evaluation.extract_concepts_many

    def recording(model, values, samples, *a, **kw):
        seen.append({s.text for s in samples})
        return real(model, values, samples, *a, **kw)

    monkeypatch.setattr(evaluation, "extract_concepts_many", recording)
    rows = _two_values(6)
    report, _ = clave.calibrate(rows, folds=2, judge=local_model, use_concepts=False, learning_curve=False,
                                guideline_tokens=8, fit_final=False)
    assert len(seen) == 2 and not (seen[0] & seen[1]) and seen[0] | seen[1] == {s.text for s in rows}
    assert "llm_concepts" in report["methods"] and "no_concepts" not in report["methods"]


def test_response_concepts_are_parsed_and_failures_named():
    ok = clave.parse_response_concepts("Here:\n- helps a neighbour\n- keeps a promise\n- helps a neighbour")
    assert ok.ok and ok.value == ["helps a neighbour", "keeps a promise"]
    assert clave.parse_response_concepts('["obeys rules", "none"]').value == ["obeys rules"]
    assert clave.parse_response_concepts("None.").ok and clave.parse_response_concepts("None.").value == []
    assert not clave.parse_response_concepts("I cannot tell.").ok
    assert clave.parse_response_concepts("").reason == "empty answer"
    many = clave.parse_response_concepts("\n".join(f"- c{i}" for i in range(9)))
    assert len(many.value) == clave.MAX_CONCEPTS
    proto = clave.load_concept_protocol()
    text = proto.render("user", value_name="Power", definition="d", text_block="<<<TEXT>>>\nx\n<<<END TEXT>>>",
                        max_concepts=5)
    assert "Power" in text and "<<<TEXT>>>" in text and len(proto.hash) == 12
    with pytest.raises(InputError, match="not found"):
        clave.load_concept_protocol("no-such-protocol")


def test_concepts_file_is_read_per_value_and_bad_rows_are_named(tmp_path):
    f = _write_csv(tmp_path / "c.csv", ["value", "kind", "concept"],
                   [["power", "adheres", "controls others"], ["POWER", "opposes", "shares control"],
                    ["Benevolence", "adheres", "helps family"]])
    assert clave.read_concepts(f) == {"POWER": {"adheres": ["controls others"], "opposes": ["shares control"]},
                                      "BENEVOLENCE": {"adheres": ["helps family"], "opposes": []}}
    bad = _write_csv(tmp_path / "b.csv", ["value", "kind", "concept"], [["POWER", "adheres", "x"],
                                                                       ["POWER", "sideways", "y"]])
    with pytest.raises(InputError, match="b.csv row 3: kind must be"):
        clave.read_concepts(bad)


# -- calibration ----------------------------------------------------------------------


def _two_values(n_per_value=30):
    out = []
    for key in ("POWER", "BENEVOLENCE"):
        out += [s for s in clave.bundled_samples() if s.value == key][:n_per_value]
    return out


def test_calibration_reports_per_value_metrics_with_n_train_and_intervals():
    samples = _two_values()
    report, rec = clave.calibrate(samples, folds=3, learning_curve=True, curve_orders=1)
    assert report["methods"] == ["recognizer", "embed_zero_shot", "majority"]  # no judge: no concepts, no ablation
    for value in ("POWER", "BENEVOLENCE"):
        block = report["per_value"][value]
        n_value = sum(s.value == value for s in samples)
        # n_train is this value's own training rows per fold (2/3 of them with k=3), 0 for zero-shot
        assert block["recognizer"]["n_train"] == pytest.approx(n_value * 2 / 3, abs=1)
        assert block["majority"]["n_train"] == block["recognizer"]["n_train"]
        assert block["embed_zero_shot"]["n_train"] == 0
        for m in report["methods"]:
            f1 = block[m]["macro_f1"]
            assert f1["n"] == n_value and f1["interval"][0] <= f1["value"] <= f1["interval"][1]
            assert block[m]["classes"] == report["classes"][value]
    goal = report["goal"]
    assert goal["best_baseline"] in clave.UNCALIBRATED and set(goal["margins"]) == {"POWER", "BENEVOLENCE"}
    assert [c["n_per_value"] for c in report["learning_curve"]][:2] == [10, 20]
    assert all(c["runs"] == 3 for c in report["learning_curve"])
    cal = report["calibration"]["POWER"]
    assert cal["ece_raw"]["n"] == 30 and 0 <= cal["ece_scaled"]["value"] <= 1
    assert set(rec.temperature) == {"POWER", "BENEVOLENCE"}
    rows = clave.summary_table(report)
    assert len(rows) == 2 * 3 + 3 and all(len(r) == len(clave.SUMMARY_HEADERS) for r in rows)


def test_a_value_with_two_classes_is_scored_over_its_two():
    samples = [s for s in clave.bundled_samples() if s.value == "POWER" and s.label != 0][:24]
    report, rec = clave.calibrate(samples, folds=3, learning_curve=False)
    assert report["classes"]["POWER"] == [1, -1]
    assert set(rec.predict(["He seizes control of the board."], ["POWER"])[0]["probs"]) == {"adheres", "opposes"}


def test_held_out_predictions_never_see_held_out_labels():
    train = _two_values(20)
    held = _two_values(30)[20:] + _two_values(30)[50:]
    flipped = [clave.Sample(s.text, s.value, {1: -1, -1: 0, 0: 1}[s.label]) for s in held]
    a, _ = clave.calibrate(train, eval_samples=held, learning_curve=False)
    b, _ = clave.calibrate(train, eval_samples=flipped, learning_curve=False)
    # the same predictions, so each confusion matrix is the other's with its rows permuted
    for m in ("recognizer", "embed_zero_shot"):
        ca, cb = a["overall"][m]["confusion"], b["overall"][m]["confusion"]
        assert [sum(col) for col in zip(*ca, strict=True)] == [sum(col) for col in zip(*cb, strict=True)]
    assert a["per_value"]["POWER"]["recognizer"]["n_train"] == 20


def test_labels_per_value_cap_and_kmeans_choice():
    samples = _two_values()
    report, rec = clave.calibrate(samples, folds=3, learning_curve=False, per_value=10, selection="kmeans")
    assert report["per_value"]["POWER"]["recognizer"]["n_train"] == 10
    assert report["per_value"]["POWER"]["majority"]["n_train"] == 20  # the majority reads the whole fold
    assert rec.meta["n_train_per_value"] == {"BENEVOLENCE": 10, "POWER": 10}
    again, none = clave.calibrate(samples, folds=3, learning_curve=False, per_value=10, selection="kmeans",
                                  fit_final=False)  # a benchmark's call: held-out scores only, the same ones
    assert none is None and again["per_value"] == report["per_value"]
    import numpy as np

    embs = np.random.default_rng(0).normal(size=(40, 8))
    picked = clave.select_rows(list(range(40)), embs, 7, "kmeans", 0)
    assert len(picked) == len(set(picked)) == 7
    with pytest.raises(InputError, match="sample choice"):
        clave.calibrate(samples, folds=3, selection="best")


def test_ece_temperature_and_fast_f1_match_their_definitions():
    import numpy as np

    from valdemo.clave.evaluation import _fast_macro_f1
    from valdemo.core.metrics import macro_f1

    # two bins: conf 0.9 (2 rows, 1 right) and 0.6 (2 rows, both right) -> 0.5*0.4 + 0.5*0.4
    assert clave.ece([(0.9, True), (0.9, False), (0.6, True), (0.6, True)]) == pytest.approx(0.4)
    rng = np.random.default_rng(1)
    gold = list(rng.choice([1, -1, 0], 200))
    pred = [g if rng.random() < 0.6 else None if rng.random() < 0.1 else 0 for g in gold]
    rows = list(zip(gold, pred, strict=True))
    assert _fast_macro_f1([1, -1, 0])(rows) == pytest.approx(macro_f1(gold, pred, [1, -1, 0]))
    # overconfident logits: the fitted temperature is above 1
    logits = [np.array([8.0, 0.0, 0.0]) if i % 2 else np.array([0.0, 8.0, 0.0]) for i in range(40)]
    gold_idx = [0 if (i % 4 in (1, 2)) else 1 for i in range(40)]
    assert clave.fit_temperature(logits, gold_idx) > 2.0


@pytest.mark.slow
def test_calibration_on_valuenet_beats_zero_shot_on_every_value(valuenet_dir):
    samples = _valuenet_subset(valuenet_dir, per_file=150)
    report, rec = clave.calibrate(samples, folds=3, learning_curve=False)
    goal = report["goal"]
    print({v: round(d, 3) for v, d in goal["margins"].items()}, goal["mean_margin"]["value"])
    assert goal["best_baseline"] == "embed_zero_shot"
    assert goal["mean_margin"]["value"] > 0.03
    assert set(report["per_value"]) == {s.value for s in samples}
    probs = rec.proba([samples[0].text], [samples[0].value])[0]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_calibrate_store_persists_the_latest_recognizer(store):
    assert clave.latest_recognizer(store) is None
    picked = [s for s in clave.bundled_samples() if s.value in ("POWER", "BENEVOLENCE")][:48]
    clave.import_samples(store, picked, "test", annotator="ana")
    clave.save_concepts(store, "POWER", {"adheres": ["controls others"], "opposes": ["shares control"]}, "test")
    report = clave.calibrate_store(store, "ana", folds=3)
    assert report["n_labels"] == 48
    assert report["learning_curve"][-1]["n_per_value"] == max(
        r["recognizer"]["n_train"] for r in report["per_value"].values()) or report["learning_curve"]
    from valdemo.ui.clave import confusion_figure, curve_figure, report_markdown

    text = report_markdown(report, None)
    assert "macro-F1" in text and report["recognizer_id"] in text and "(n=" in text
    assert len(confusion_figure(report).data) == len(report["methods"])
    assert len(curve_figure(report).data[0].x) == len(report["learning_curve"])
    clave._loaded.clear()  # read it back from disk, as a new process would
    rec = clave.latest_recognizer(store)
    assert rec is not None and rec.meta["id"] == report["recognizer_id"]
    out = rec.predict(["She controls every decision in the company."], ["POWER"])
    assert out[0]["label"] in (1, -1, 0) and sum(out[0]["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    got = clave.predict_text(store, "He gives orders.", "power")
    assert got["held_out"]["macro_f1"]["n"] > 0 and got["calibrated_probabilities"]
    with pytest.raises(InputError, match="saw no labels for HEDONISM"):
        clave.predict_text(store, "He gives orders.", "HEDONISM")


def test_valeval_rows_for_any_value_system_calibrate_and_survive_a_reload(store, tmp_path):
    """ValEval-style rows (text, value, label) for values this project does not ship, defined in the file."""
    rows = []
    for i in range(12):
        rows.append([f"I rented a tiny flat so I could save for the journey number {i}.", "Frugality",
                     "1", "Spending little and saving resources.", "my system"])
        rows.append([f"I bought the third gold watch this month, ticket {i}.", "Frugality", "-1", "", ""])
        rows.append([f"The train left platform {i} on time.", "Frugality", "0", "", ""])
    f = _write_csv(tmp_path / "valeval.csv", ["text", "value", "label", "definition", "system"], rows)
    samples = clave.read_samples(f)
    assert {s.value for s in samples} == {"FRUGALITY"}
    assert clave.value_info("frugality").definition == "Spending little and saving resources."
    report, rec = clave.calibrate(samples, folds=3, learning_curve=False)
    assert report["per_value"]["FRUGALITY"]["recognizer"]["macro_f1"]["n"] == 36
    clave.import_file(store, f, "ana")
    assert (Path(store.path).parent / clave.CUSTOM_VALUES_FILE).is_file()
    rid = clave.save_recognizer(store, rec, report)
    clave._loaded.clear()
    clave.inputs._custom_values.clear()  # a new process: definitions come back from the saved files
    back = clave.latest_recognizer(store)
    assert back.meta["id"] == rid and back.values == ["FRUGALITY"]
    assert clave.predict_text(store, "I saved every coin for a year.", "Frugality")["label"] in (1, -1, 0)
    with pytest.raises(InputError, match="definition"):
        clave.check_value("Unheard-of value")


def test_concepts_and_recognizers_belong_to_their_owner_in_public_mode(store, monkeypatch):
    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    samples = _two_values(12)
    _, rec_a = clave.calibrate(samples, folds=2, learning_curve=False)
    id_a = clave.save_recognizer(store, rec_a, owner="alice")
    clave.save_concepts(store, "POWER", {"adheres": ["gives orders"]}, "test", owner="alice")
    assert clave.latest_recognizer(store, "alice").meta["id"] == id_a
    assert clave.latest_recognizer(store, "bob") is None  # bob sees none of alice's work
    assert clave.stored_concepts(store, "bob") == {} and "POWER" in clave.stored_concepts(store, "alice")
    with pytest.raises(InputError, match="no calibrated recognizer"):
        clave.predict_text(store, "He gives orders.", "POWER", owner="bob")
    assert clave.predict_text(store, "He gives orders.", "POWER", owner="alice")["recognizer"] == id_a
    monkeypatch.delenv("VALDEMO_PUBLIC")
    assert clave.latest_recognizer(store).meta["id"] == id_a  # local tools (owner None) read everything


def test_calibrations_are_runs_and_recognizers_are_named_per_owner(store, monkeypatch):
    """Issue 15: a calibration is saved as a run through core.runs (with its owner and source) and
    its recognizer under the name its owner gave it; another owner sees neither."""
    from valdemo.core.runs import load_run

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    clave.import_samples(store, _two_values(15), "test", annotator="ana")
    first = clave.calibrate_store(store, "ana", folds=2, owner="alice", name="first try", learning_curve=False,
                                  source="api")
    run = load_run(first["run_id"], "alice", store=store)
    assert run["method"] == "clave" and run["source"] == "api" and run["owner"] == "alice"
    assert set(run["groups"]) == {"POWER", "BENEVOLENCE"}
    assert len(run["rows"]) == 2 * len(first["methods"])
    margin = next(m for m in run["metrics"] if m["name"] == "goal_margin")
    assert margin["value"] == pytest.approx(first["goal"]["mean_margin"]["value"]) and margin["n"] == 2
    f1 = next(m for m in run["groups"]["POWER"] if m["name"] == "macro_f1:recognizer")
    assert f1["n"] == first["per_value"]["POWER"]["recognizer"]["n_eval"] and f1["interval"]
    assert run["params"]["recognizer_name"] == "first try"
    assert load_run(first["run_id"], "bob", store=store) is None
    second = clave.calibrate_store(store, "ana", folds=2, owner="alice", name="second", learning_curve=False)
    assert [r["name"] for r in clave.list_recognizers(store, "alice")] == ["second", "first try"]
    assert clave.list_recognizers(store, "bob") == []
    assert clave.get_recognizer(store, "first try", "alice").meta["id"] == first["recognizer_id"]
    assert clave.get_recognizer(store, "first try", "bob") is None
    got = clave.predict_text(store, "He gives orders.", "POWER", owner="alice", recognizer="first try")
    assert got["recognizer"] == first["recognizer_id"] and got["recognizer_name"] == "first try"
    assert clave.predict_text(store, "He gives orders.", "POWER", owner="alice")["recognizer"] == second["recognizer_id"]
    with pytest.raises(InputError, match="no calibrated recognizer named 'nope'"):
        clave.predict_text(store, "He gives orders.", "POWER", owner="alice", recognizer="nope")
    with pytest.raises(InputError, match="recognizer name"):
        clave.calibrate_store(store, "ana", folds=2, owner="alice", name="a/b; drop", learning_curve=False)


def test_profile_scores_only_the_chosen_recognizers_values_with_its_held_out_agreement(store):
    from valdemo import profile

    report, rec = clave.calibrate(_two_values(15), folds=2, learning_curve=False)
    clave.save_recognizer(store, rec, report, owner="local", name="pb")
    other = [s for s in clave.bundled_samples() if s.value == "HEDONISM"][:20]
    report_h, rec_h = clave.calibrate(other, folds=2, learning_curve=False)
    clave.save_recognizer(store, rec_h, report_h, owner="local", name="hedonism only")
    answers = [{"question": "q", "answer": a} for a in ("I obey my boss.", "I help my neighbours.", "I rule.")]
    res = clave.profile_result(answers, store, "local", "pb")
    assert set(res.groups) == {"POWER", "BENEVOLENCE"}  # not the eight values it never saw
    assert len(res.extra["values_not_calibrated"]) == 8 and len(res.rows) == 6
    for v, ms in res.groups.items():
        by = {m.name: m for m in ms}
        f1 = report["per_value"][v]["recognizer"]["macro_f1"]
        assert by["held_out_macro_f1"].value == f1["value"] and by["held_out_macro_f1"].n == f1["n"]
        assert by["adheres"].n == 3 and by["adheres"].interval  # shares of answers, with Wilson intervals
        assert by["adheres"].value + by["opposes"].value + by["unrelated"].value == pytest.approx(1.0, abs=1e-3)
    assert res.models["recognizer"].startswith("pb (")
    section = {"status": "ok", "error": None, "result": res.without_rows(), "seconds": 0.0, "n_rows": 6}
    fake = {"profiles": {"m": {"methods": {"clave": section}}}}
    table = profile.section_table(fake, "clave", ["m"])
    assert {r["group"] for r in table} == {"Power", "Benevolence"}
    assert sum(r["metric"].startswith("recognizer's held-out macro-F1") and "(n=" in r["value [95% CI] (n)"]
               for r in table) == 2
    assert any("pb (" in line for line in profile.section_notes(fake, "clave", ["m"]))
    newest = clave.profile_result(answers, store, "local", "")
    assert set(newest.groups) == {"HEDONISM"}
    with pytest.raises(NotMeasured, match="named 'nope'"):
        clave.profile_result(answers, store, "local", "nope")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 4 min on the shared CPU under load
def test_fine_tuned_encoder_fits_behind_the_same_interface():
    samples = _two_values(6)
    model = clave.FineTunedEncoder(epochs=1, batch_size=4, max_length=48)
    classes = clave.value_classes(samples)
    model.fit(samples, None, classes)
    z = model.logits([s.text for s in samples[:3]], [s.value for s in samples[:3]], None)
    assert [len(zi) for zi in z] == [len(classes[s.value]) for s in samples[:3]]
    rec = clave.train_recognizer(samples, kind="finetune")
    out = rec.predict(["He seizes the company."], ["POWER"])
    assert out[0]["label"] in classes["POWER"]
    with pytest.raises(InputError, match="only 'head'"):
        rec.save(Path("/tmp") / "never.npz")


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 50 s on the shared CPU under load (loading the 135M model dominates)
def test_lora_small_model_trains_its_adapters_behind_the_same_interface():
    """The LoRA small model (peft) on the bundled SmolLM2-135M, two optimiser steps on a CPU:
    only the adapters learn, the base stays frozen, logits come over each value's own classes."""
    samples = []
    for key in ("POWER", "BENEVOLENCE"):
        mine = [s for s in clave.bundled_samples() if s.value == key]
        samples += [next(s for s in mine if s.label == lab) for lab in (1, -1, 0)]
    classes = clave.value_classes(samples)
    model = clave.make_small_model("lora")
    model.max_steps, model.batch_size, model.max_length = 2, 3, 96
    concepts = [["gives orders"], ["shares power"], ["the weather"]] * 2
    model.fit(samples, concepts, classes)
    assert model.steps_done == 2
    trainable = {n for n, p in model.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    moved = sum(float(p.detach().abs().sum()) for n, p in model.model.named_parameters() if "lora_B" in n)
    assert moved > 0  # LoRA's B starts at zero: two steps moved it
    rec = clave.Recognizer(model, classes, uses_concepts=True)
    out = rec.predict(["He seizes the company."], ["POWER"], [["takes control"]])
    assert out[0]["label"] in classes["POWER"] and sum(out[0]["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(InputError, match="calibrated with concepts"):
        rec.predict(["He seizes the company."], ["POWER"])
    with pytest.raises(InputError, match="only 'head'"):
        rec.save(Path("/tmp") / "never.npz")


def test_calibrate_refuses_too_few_labels():
    few = clave.bundled_samples()[:3]
    with pytest.raises(InputError, match="needs at least"):
        clave.calibrate(few, folds=5)


# -- CLI ----------------------------------------------------------------------------


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "valdemo", "clave", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, needle", [
    (["calibrate", "--labels", "nowhere.csv"], "not found"),
    (["calibrate", "--labels", "assets/clave/samples.csv", "--folds", "1"], "folds must be at least 2"),
    (["export", "--format", "xml", "--out", "x"], "invalid choice"),
    (["calibrate", "--labels", "assets/clave/samples.csv", "--name", "x"], "add --save"),
    (["calibrate", "--labels", "assets/clave/samples.csv", "--save", "--small-model", "lora"], "only the 'head'"),
    (["calibrate", "--labels", "assets/clave/samples.csv", "--save", "--name", "a/b"], "recognizer name"),
])
def test_cli_bad_input_exits_2_with_one_line(args, needle):
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_bad_row_exits_2_naming_the_row(tmp_path):
    bad = _write_csv(tmp_path / "bad.csv", ["text", "value", "label"], [["ok", "POWER", "1"], ["x", "POWER", "7"]])
    r = _cli("calibrate", "--labels", str(bad), "--json")
    assert r.returncode == 2 and "bad.csv row 3" in r.stderr, r.stderr


@pytest.mark.slow
def test_cli_import_calibrate_export(tmp_path):
    env = {"VALDEMO_DB": str(tmp_path / "cli.sqlite")}
    picked = [s for s in clave.bundled_samples() if s.value in ("HEDONISM", "TRADITION")][:36]
    f = _write_csv(tmp_path / "mine.csv", ["text", "value", "label"], [[s.text, s.value, s.label] for s in picked])
    r = _cli("calibrate", "--labels", str(f), "--folds", "3", "--no-learning-curve", "--json", env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for block in report["per_value"].values():
        for m in ("recognizer", "embed_zero_shot", "majority"):
            assert {"accuracy", "macro_f1", "n_train", "n_eval", "failed"} <= set(block[m])
    assert "llm_zero_shot" not in report["methods"] and report["run_id"] and "recognizer_id" not in report
    r = _cli("calibrate", "--labels", str(f), "--folds", "3", "--no-learning-curve", "--save", "--name", "cli rec",
             env=env)
    assert r.returncode == 0 and "recognizer cli rec" in r.stdout, r.stderr
    r = _cli("recognizers", "--json", env=env)
    assert [x["name"] for x in json.loads(r.stdout)["recognizers"]] == ["cli rec"], r.stderr
    r = _cli("predict", "--value", "HEDONISM", "--recognizer", "cli rec", "I dance all night.", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["recognizer_name"] == "cli rec", r.stderr
    from valdemo.core.runs import list_runs

    assert [x["source"] for x in list_runs(None, "clave", store=Store(env["VALDEMO_DB"]))] == ["cli", "cli"]
    clave.import_file(Store(env["VALDEMO_DB"]), f, "ana")  # (the import subcommand shares this function)
    out = tmp_path / "out.jsonl"
    r = _cli("export", "--format", "jsonl", "--out", str(out), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["labels"] == 36
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["annotator"] for r in rows} == {"ana"} and len(rows) == 36


# -- the app: API, durability across SIGKILL, keyboard ---------------------------------


def test_label_submission_through_the_api(client):
    first = client.predict(annotator="api-ana", value="TRADITION", api_name="/clave_next")
    assert first["value"] == "TRADITION"
    ack = client.predict(annotator="api-ana", sample_id=first["sample_id"], label="opposes", note="",
                         api_name="/clave_label")
    assert ack == {**ack, "ok": True, "label": -1, "durable": True}
    client.predict(annotator="api-bo", sample_id=first["sample_id"], label="unrelated", note="",
                   api_name="/clave_label")
    mine = client.predict(annotator="api-ana", api_name="/clave_labels")
    assert [(r["annotator"], r["label"]) for r in mine] == [("api-ana", -1)]
    assert client.predict(annotator="api-ana", api_name="/clave_undo")["undone"]["sample_id"] == first["sample_id"]
    assert client.predict(annotator="api-ana", api_name="/clave_labels") == []
    assert [r["label"] for r in client.predict(annotator="api-bo", api_name="/clave_labels")] == [0]
    with pytest.raises(Exception, match="needs at least"):
        client.predict(annotator="api-bo", folds=5, judge="", api_name="/clave_calibrate")
    with pytest.raises(Exception, match="label 'later'"):
        client.predict(annotator="api-ana", sample_id=first["sample_id"], label="later", note="",
                       api_name="/clave_label")


def test_api_calibration_names_its_recognizer_and_is_a_run(client):
    """Through the launched app: /clave_calibrate saves the recognizer under its name and the
    evaluation as a run the Runs tab opens; /clave_recognizers lists it; /clave_predict picks it by name."""
    for i in range(8):
        s = client.predict(annotator="api-cy", value="HEDONISM", api_name="/clave_next")
        client.predict(annotator="api-cy", sample_id=s["sample_id"], label=("adheres", "opposes")[i % 2], note="",
                       api_name="/clave_label")
    rep = client.predict(annotator="api-cy", folds=2, judge="", name="cy hedonism", api_name="/clave_calibrate")
    assert rep["run_id"] and rep["recognizer_name"] == "cy hedonism" and rep["per_value"]["HEDONISM"]
    mine = [r for r in client.predict(api_name="/clave_recognizers") if r["name"] == "cy hedonism"]
    assert [r["id"] for r in mine] == [rep["recognizer_id"]] and mine[0]["run_id"] == rep["run_id"]
    got = client.predict(text="I dance all night.", value="HEDONISM", recognizer="cy hedonism",
                         api_name="/clave_predict")
    assert got["recognizer"] == rep["recognizer_id"] and got["label"] in (1, -1)
    header, metrics = client.predict(rep["run_id"], api_name="/runs_show")[:2]
    assert rep["run_id"] in header and "clave" in header
    assert any("recognizer" in str(row) for row in metrics["data"])


@pytest.mark.slow
def test_acknowledged_labels_survive_sigkill_and_restart(tmp_path):
    from gradio_client import Client

    from tests.conftest import free_port, start_app_process

    port = free_port()
    env = {**os.environ, "VALDEMO_DB": str(tmp_path / "durable.sqlite"), "VALDEMO_PORT": str(port),
           "VALDEMO_DATA_DIR": str(tmp_path)}
    proc = start_app_process(env, port)
    acked = []
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for who, label in (("kim", "1"), ("kim", "-1"), ("lee", "0"), ("kim", "0"), ("lee", "1")):
            s = c.predict(annotator=who, value="", api_name="/clave_next")
            ack = c.predict(annotator=who, sample_id=s["sample_id"], label=label, note=f"n{len(acked)}",
                            api_name="/clave_label")
            acked.append((ack["seq"], who, s["sample_id"], int(label)))
        c.predict(annotator="kim", api_name="/clave_undo")  # undoes kim's last (seq of 4th)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = start_app_process(env, port)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        kim = {(r["text"], r["label"]) for r in c.predict(annotator="kim", api_name="/clave_labels")}
        lee = c.predict(annotator="lee", api_name="/clave_labels")
        assert len(kim) == 2 and len(lee) == 2
        assert sorted(r["label"] for r in lee) == [0, 1]
        undone_sample = acked[3][2]
        assert c.predict(annotator="kim", value="", api_name="/clave_next")["sample_id"] == undone_sample
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.browser
def test_keyboard_labels_in_the_browser(browser, served_app, settings, artifacts_dir):
    from valdemo.store import get_store

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(served_app[1], wait_until="load")
        page.get_by_role("tab", name="Calibrate evaluator").click(timeout=60_000)
        page.locator("#clave-annotator textarea, #clave-annotator input").first.fill("kbd-user")
        page.locator("#clave-start").click()
        page.locator("#clave-value-card").get_by_text("e.g.").wait_for(timeout=30_000)
        page.locator("body").click(position={"x": 5, "y": 5})
        page.keyboard.press("1")
        page.locator("#clave-ack").get_by_text("adheres").wait_for(timeout=30_000)
        page.keyboard.press("s")
        page.locator("#clave-ack").get_by_text("skipped").wait_for(timeout=30_000)
        page.keyboard.press("u")
        page.locator("#clave-ack").get_by_text("undid 'skipped'").wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts_dir / "clave_label.png"), full_page=True)
        # a reload resumes: the name comes back from the browser, the queue from the database
        page.reload(wait_until="load")
        page.get_by_role("tab", name="Calibrate evaluator").click(timeout=60_000)
        page.locator("#clave-value-card").get_by_text("e.g.").wait_for(timeout=30_000)
        assert page.locator("#clave-annotator textarea, #clave-annotator input").first.input_value() == "kbd-user"
        assert "1 labels" in page.locator("#clave-progress").inner_text()
    finally:
        context.close()
    labels = [r for r in store_labels(get_store(settings.db_path)) if r["annotator"] == "kbd-user"]
    assert [r["label"] for r in labels] == [1]
