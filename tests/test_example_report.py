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
    assert state is not None, "the example does not render with today's code: run scripts/build_example_report.py"
    *sections_and_plots, readout_box = rest
    assert state["example"] is True and view["value"] in ("local", ALL)
    assert report.endswith("example-report.html") and len(files) == 2
    assert "Example, bundled 135M demo model" in status and BUNDLED_CAVEAT in status
    value = next(c for c in headline.columns if str(c).startswith("value"))
    assert len(headline) > 5 and (headline[value] != "n/a").any()
    assert all(x is not None and x != "" for x in sections_and_plots), "an empty section or plot"
    assert readout_box.count('class="vd-card"') == len(METHODS)
    assert 'id="profile-example-banner"' in readout_box and "Example, bundled 135M demo model" in readout_box


def test_the_example_report_is_labelled_and_carries_the_readout_and_published_figures(tmp_path):
    paths = example.write_example_report(tmp_path)
    text = paths["html"].read_text(encoding="utf-8")
    assert 'id="example-label"' in text and "Example, bundled 135M demo model" in text
    assert "One-page readout: local" in text and text.count('class="vd-card"') == len(METHODS)
    assert 'id="published"' in text and "arXiv:2404.07900" in text and "model (published)" in text


def _section(method: str, metrics: list, failures: list | None = None) -> dict:
    from valdemo.core.result import Failures, Result

    fails = [Failures(f[0], f[2], f[1], kept=len(f) > 3 and f[3]) for f in (failures or [])]
    return {"status": "ok", "error": None, "result": Result(method, metrics=metrics, failures=fails).without_rows()}


def _profile(**sections) -> dict:
    methods = {m: {"status": "unavailable", "error": "not run here", "result": None} for m in METHODS}
    methods.update(sections)
    return {"profiles": {"m": {"bundled": False, "methods": methods}}}


def test_one_plain_sentence_per_method_with_n_and_interval():
    from valdemo.core.result import Metric

    p = _profile(
        vum=_section("vum", [Metric.proportion("know_what_acc", 12, 20, "d", "s"),
                             Metric.mean("know_why_rate", [0.8] * 20, "d", "s"),
                             Metric("dcg", 0.2, 20, (0.05, 0.35), "d", "s", "bootstrap")],
                     [("know-what answers", 3, 20)]),
        svo=_section("svo", [Metric("vr_distance", 20.0, 9, (10.0, 30.0), "d", "s", "bootstrap"),
                             Metric.proportion("category_hit", 4, 9, "d", "s")]),
        univar=_section("univar", [Metric("nearest_distance", 0.47, 10, (0.42, 0.51), "d", "s", "bootstrap",
                                          "distance to the nearest other source")]),
        denevil=_section("denevil", [Metric("EVR_none", None, 0, None, "d", "s", "wilson")], [("judge answers", 46, 80)]))
    cards = {c["method"]: c for c in readout(p, "m")}
    assert list(cards) == list(METHODS)
    vum = cards["vum"]["sentence"]
    assert "60% of 20 scenarios (95% CI 39–78%)" in vum and "+0.20" in cards["vum"]["figure"]
    assert "0.20 [0.05, 0.35] (n=20)" in vum and "3 of 20 know-what answers" in vum
    svo = cards["svo"]["sentence"]
    assert "20.0°" in svo and "(95% CI 10.0–30.0°) over 9 valid trials" in svo and "44% of them (95% CI" in svo
    assert cards["univar"]["sentence"].startswith("distance to the nearest other source: 0.470 [0.420, 0.510] (n=10)")
    assert cards["clave"] == {"method": "clave", "title": "Calibrated evaluator (CLAVE)", "figure": "n/a",
                              "sentence": "Not measured: not run here"}
    den = cards["denevil"]
    assert den["figure"] == "n/a" and "No violation rate could be computed" in den["sentence"]
    assert "46 of 80 judge answers" in den["sentence"]  # failures with their own denominator


def test_answers_kept_as_written_are_not_called_unreadable():
    """An answer stopped at the token cap is kept and scored as written: the card counts it apart from
    the lost ones, and the flag survives the round trip through the saved dict."""
    from valdemo.core.result import Metric

    p = _profile(univar=_section("univar", [Metric("nearest_distance", 0.47, 10, (0.42, 0.51), "d", "s", "bootstrap",
                                                   "distance to the nearest other source")],
                                 [("answers", 1, 11), ("answers stopped at the token cap (kept)", 10, 10, True)]))
    sentence = {c["method"]: c for c in readout(p, "m")}["univar"]["sentence"]
    lost, _, kept = sentence.partition("Counted and kept as written:")
    assert "1 of 11 answers" in lost and "token cap" not in lost
    assert "10 of 10 answers stopped at the token cap (kept)" in kept


def test_the_bundled_caveat_sits_beside_a_bundled_models_cards():
    p = _profile()
    assert BUNDLED_CAVEAT not in readout_html(p)
    p["profiles"]["m"]["bundled"] = True
    assert BUNDLED_CAVEAT in readout_html(p)


def test_an_example_older_than_the_profiles_shape_leaves_the_tab_empty_not_broken(tmp_path, monkeypatch, caplog):
    import shutil

    from valdemo.ui.profile import first_load

    for name in ("profile.json", "rows.jsonl"):
        shutil.copy(example.EXAMPLE_DIR / name, tmp_path / name)
    stale = json.loads((tmp_path / "profile.json").read_text())
    for p in stale["profiles"].values():
        p.pop("headline")  # as if the profile had gained a field since the example was built
    (tmp_path / "profile.json").write_text(json.dumps(stale))
    monkeypatch.setattr(example, "EXAMPLE_DIR", tmp_path)
    out = first_load()
    assert out[0] is None and out[4] == ""  # no state, empty status: the page loads without the example
    assert "rebuild it with scripts/build_example_report.py" in caplog.text
