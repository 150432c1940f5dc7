"""The example profile the Profile tab opens with (issue 18): precomputed on the bundled model by
scripts/build_example_report.py, labelled as such, rendering with today's code; and the one-page
readout's plain sentences (one per method), their n and interval, and what was not measured."""

from __future__ import annotations

import json

import pytest

from valdemo.models import BUNDLED_CAVEAT
from valdemo.readout import readout, readout_html
from valdemo.ui import example_report as example

METHODS = ("vum", "svo", "clave", "univar", "denevil")


@pytest.fixture(scope="module")
def shipped():
    profile = example.load_example()
    assert profile is not None, "assets/profile/example/ is missing: run scripts/build_example_report.py"
    return profile


def test_the_example_is_the_bundled_model_built_by_the_script(shipped):
    meta = json.loads((example.EXAMPLE_DIR / "meta.json").read_text())
    assert meta["what"] == example.LABEL == "example, bundled 135M demo model"
    assert meta["command"].startswith("scripts/build_example_report.py")
    assert shipped["models"] == ["local"] and shipped["judge"] == "local"
    assert shipped["bundled_models"] == ["local"] and shipped["caveat"] == BUNDLED_CAVEAT
    assert shipped["rows"], "the rows behind the numbers ship with it"
    assert sorted(shipped["profiles"]["local"]["methods"]) == sorted(METHODS)


def test_the_profile_tab_renders_the_example_with_todays_code_every_panel_filled(shipped):
    from valdemo.ui.profile import ALL, first_load

    state, view, report, files, status, headline, *rest = first_load()
    *sections_and_plots, readout_box = rest
    assert state["example"] is True and view["value"] in ("local", ALL)
    assert report.endswith("example-report.html") and len(files) == 2
    assert "Example, bundled 135M demo model" in status and BUNDLED_CAVEAT in status
    assert len(headline) > 5 and not headline["value"].isna().all()
    assert all(x is not None and x != "" for x in sections_and_plots), "an empty section or plot"
    assert readout_box.count('class="vd-card"') == len(METHODS)
    assert 'id="profile-example-banner"' in readout_box and "Example, bundled 135M demo model" in readout_box


def test_the_example_report_is_labelled_and_carries_the_readout_and_published_figures(tmp_path):
    paths = example.write_example_report(tmp_path)
    text = paths["html"].read_text(encoding="utf-8")
    assert 'id="example-label"' in text and "Example, bundled 135M demo model" in text
    assert "One-page readout: local" in text and text.count('class="vd-card"') == len(METHODS)
    assert 'id="published"' in text and "arXiv:2404.07900" in text and "model (published)" in text


def _profile(**sections) -> dict:
    methods = {m: {"status": "ok", "summary": {}} for m in METHODS}
    methods.update(sections)
    return {"profiles": {"m": {"bundled": False, "methods": methods}}}


def test_one_plain_sentence_per_method_with_n_and_interval():
    p = _profile(vum={"status": "ok", "summary": {"overall": {"n": 20, "know_what_acc": 0.6, "know_why_rate": 0.8,
                                                              "dcg": 0.2, "parse_failures": 3}}},
                 svo={"status": "ok", "summary": {"orientations": {
                     "altruistic": {"vr_distance": 10.0, "valid_trials": 4, "trials": 5, "category_hits": 3},
                     "competitive": {"vr_distance": 30.0, "valid_trials": 5, "trials": 5, "category_hits": 1}}}},
                 clave={"status": "unavailable", "error": "no recognizer calibrated"})
    cards = {c["method"]: c for c in readout(p, "m")}
    assert list(cards) == list(METHODS)
    vum = cards["vum"]["sentence"]
    assert "60% of 20 scenarios (95% CI 39–78%)" in vum and "+0.20" in vum
    assert "3 of 20 answers could not be read (counted, not scored as right)" in vum
    assert cards["vum"]["figure"] == "+0.20" and "No part of its explanations reached the judge" not in vum
    p["profiles"]["m"]["methods"]["vum"]["summary"]["overall"]["judged_parts"] = 0
    assert "No part of its explanations reached the judge" in readout(p, "m")[0]["sentence"]
    svo = cards["svo"]["sentence"]
    assert "20.0°" in svo and "over 9 of 10 valid trials" in svo and "4 of 9 (95% CI" in svo
    assert cards["clave"]["sentence"] == "Not measured: no recognizer calibrated" and cards["clave"]["figure"] == "n/a"
    assert cards["denevil"]["figure"] == "n/a" and "No violation rate could be computed" in cards["denevil"]["sentence"]
    assert all(c["sentence"].endswith(".") or c["method"] == "clave" for c in cards.values())


def test_the_bundled_caveat_sits_beside_a_bundled_models_cards():
    p = _profile()
    assert BUNDLED_CAVEAT not in readout_html(p)
    p["profiles"]["m"]["bundled"] = True
    assert BUNDLED_CAVEAT in readout_html(p)
