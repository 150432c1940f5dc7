"""Issue 14, "the profile says what it computes": the words beside VUM and SVO numbers match the
formulas (About, profile definitions, radar axis, same-model warning, counts beside means)."""

from __future__ import annotations

from valdemo import profile as P
from valdemo import svo
from valdemo.ui.about import ABOUT
from valdemo.vum.replay import GAP_NOTE


def _profile(judge: str, vum_summary: dict | None = None, clave_summary: dict | None = None) -> dict:
    methods = {"vum": {"status": "ok", "summary": vum_summary or {}},
               "clave": {"status": "ok", "summary": clave_summary or {}}}
    return {"judge": judge, "models": ["local"], "profiles": {"local": {"methods": methods}}}


def test_same_model_warning_when_the_judge_is_a_target():
    assert "same model (local)" in P.same_model_warning(_profile("local"))
    assert P.same_model_warning(_profile("openai:big@http://x/v1")) is None


def test_means_carry_their_counts():
    assert P._with_n({"n": 3, "dcg": -0.25}, "dcg") == "-0.250 (n=3 items)"
    assert P._with_n({"n": 0, "know_what_acc": None}, "know_what_acc") is None
    den = {"mean": {"none": {"EVR": 0.5}, "generated": {"EVR": 0.25}},
           "metrics": {"none": [{"name": "EVR_none", "n": 4}], "generated": [{"name": "EVR", "n": 8}]}}
    assert P._den_with_n(den, "none", "EVR") == "0.500 (n=4)"
    assert P._den_with_n(den, "generated", "EVR") == "0.250 (n=8)"
    assert P._den_with_n(den, "principle-fixed", "EVR") is None


def test_radar_says_which_quantities_share_its_axis():
    vum_pv = {"per_value": {"POWER": {"know_what_acc": 0.5, "know_why_rate": 0.4}}}
    fig = P.radar_figure(_profile("x", vum_pv, {"per_value": {"POWER": {"adheres": 0.2}}}), ["local"])
    title = fig.layout.title.text
    assert "accuracy" in title and "mean judge score ÷ 5" in title and "share of answers" in title
    assert "not comparable" in title


def test_definitions_match_the_formulas():
    vum_def = P.DEFINITIONS["vum"]
    assert "rated adequate" not in vum_def and "mean score" in vum_def and "÷ 5" in vum_def
    assert "this project's reading" in vum_def
    assert "HVAE" in P.DEFINITIONS["svo"] and "this project's" in P.DEFINITIONS["svo"]
    # About: value rationality is HVAE's form with its citation, the project's score only as "own score".
    assert "§3, Eq. 3" in ABOUT and "own score" in ABOUT and "this project's reading" in ABOUT
    assert '("value rationality")' not in ABOUT
    assert "Eq. 3" in svo.VR_SOURCE and "NOT HVAE" in svo.own_score.__doc__
    # The gap note says what was searched, and never credits the paper with an equation.
    assert "could not be checked" in GAP_NOTE and "zowiezhang/ValueDCG" in GAP_NOTE


def test_profile_headline_counts_nothing_twice():
    """SVO: D (HVAE's form) and the category hit rate are separate headlines; the project's own 0-1 score,
    which contains the category hit, is not a headline. VUM's know why is named by its formula."""
    orient = {"prosocial": {"vr_distance": 4.0, "valid_trials": 2, "trials": 3, "category_hits": 1, "answers": 18,
                            "parse_failures": 1},
              "competitive": {"vr_distance": 10.0, "valid_trials": 1, "trials": 3, "category_hits": 1,
                              "answers": 18, "parse_failures": 2}}
    methods = {m: {"status": "unavailable", "summary": None} for m in P.METHODS}
    methods["svo"] = {"status": "ok", "summary": {"orientations": orient}}
    methods["vum"] = {"status": "ok", "summary": {"overall": {"n": 4, "know_what_acc": 0.5, "know_why_rate": 0.4,
                                                              "dcg": -0.1}}}
    rows = {r["metric"]: r["value"] for r in P.headline({"profiles": {"m": {"methods": methods}}}, "m")}
    assert rows["SVO value rationality D (°, mean of 4 orientations; 0 = on target)"] == "7.00 (n=3 of 6 trials)"
    assert rows["SVO category hits (valid trials, all orientations)"] == "2/3 = 0.667"
    assert not any("own" in k.lower() for k in rows)
    assert rows["know why (mean judge score ÷ 5)"] == "0.400 (n=4 items)"
    assert rows["gap DCG (why − what; this project's reading)"] == "-0.100 (n=4 items)"


def test_profile_sections_say_which_protocol_ran():
    methods = {m: {"status": "unavailable", "summary": None} for m in P.METHODS}
    methods["vum"] = {"status": "ok", "summary": {"protocol": {"name": "valuedcg", "hash": "abc123"}}}
    profile = {"profiles": {"m": {"methods": methods}, "n": {"methods": dict(methods)}}}
    assert P.protocol_note(profile, "vum", ["m", "n"]) == "Protocol: valuedcg (hash abc123)"
    assert P.protocol_note(profile, "svo", ["m"]) is None
