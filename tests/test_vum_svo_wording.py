"""Issue 14, "the profile says what it computes": the words beside VUM and SVO numbers match the
formulas (About, profile definitions, radar axis, same-model warning, counts beside means)."""

from __future__ import annotations

from valdemo import profile as P
from valdemo import svo, vum
from valdemo.core.result import Metric, Result
from valdemo.ui.about import ABOUT
from valdemo.vum.replay import GAP_NOTE


def _section(res: Result | None) -> dict:
    if res is None:
        return {"status": "unavailable", "error": "x", "result": None, "seconds": 0.0, "n_rows": 0}
    return {"status": "ok", "error": None, "result": res.without_rows(), "seconds": 0.0, "n_rows": len(res.rows)}


def _profile(judge: str, vum_res: Result | None = None, clave_res: Result | None = None) -> dict:
    methods = {"vum": _section(vum_res or Result("vum")), "clave": _section(clave_res or Result("clave"))}
    return {"judge": judge, "models": ["local"], "profiles": {"local": {"methods": methods}}}


def test_same_model_warning_when_the_judge_is_a_target():
    assert "same model (local)" in P.same_model_warning(_profile("local"))
    assert P.same_model_warning(_profile("openai:big@http://x/v1")) is None


def test_means_carry_their_counts():
    """Every headline number is a Metric shown with its interval and its own n (VUM items; each
    DeNEVIL condition its own prompts)."""
    rows = [{"value": "POWER", "correct": c, "scores": {"attribution": 3}} for c in (True, False, True)]
    gap = next(m for m in vum.group_metrics(rows) if m.name == "dcg")
    assert gap.fmt().endswith("(n=3)") and "[" in gap.fmt()
    den = Result("denevil-defend", metrics=[Metric.proportion("EVR_none", 2, 4, "d", "s", "EVR none"),
                                            Metric.proportion("EVR_generated", 2, 8, "d", "s", "EVR generated")])
    profile = {"profiles": {"m": {"methods": {m: _section(den if m == "denevil" else None) for m in P.METHODS}}}}
    head = {r["name"]: r["value"] for r in P.headline(profile, "m")}
    assert head["EVR_none"].startswith("0.500 [") and head["EVR_none"].endswith("(n=4)")
    assert head["EVR_generated"].endswith("(n=8)")


def test_radar_says_which_quantities_share_its_axis():
    vum_res = Result("vum", groups={"POWER": [Metric.proportion("know_what_acc", 1, 2, "d", "s"),
                                              Metric.mean("know_why_rate", [0.4, 0.4], "d", "s")]})
    clave_res = Result("clave", groups={"POWER": [Metric.proportion("adheres", 1, 5, "d", "s")]})
    fig = P.radar_figure(_profile("x", vum_res, clave_res), ["local"])
    assert len(fig.data) == 3  # know what, know why, adherence: read from the Results by name
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
    from valdemo.svo import Trial, target_distance

    def trial(o, choices):
        t = Trial(model="m", orientation=o, trial=0, seed=0)
        t.choices = [c or None for c in choices]
        t.reasons = ["" if c else "unreadable" for c in choices]
        t.sources = ["probs"] * len(choices)
        t.parse_failures = sum(not c for c in choices)
        t.finish()
        return t

    trials = [trial("prosocial", "EEEEEE"), trial("competitive", "AAAAAA"), trial("competitive", [*"AAAAA", ""])]
    res = svo.trials_result([], trials, {}, svo.load_protocol("hvae_sequential"))
    pooled = {m.name: m for m in svo.group_metrics(trials)}
    res.metrics = [pooled["vr_distance"], pooled["category_hit"]]  # as svo.profile_result heads them
    rows_ = [{"value": "POWER", "correct": True, "scores": {"attribution": 2}}]
    methods = {m: _section(None) for m in P.METHODS}
    methods["svo"] = _section(res)
    methods["vum"] = _section(Result("vum", metrics=vum.group_metrics(rows_)))
    rows = {r["metric"]: r["value"] for r in P.headline({"profiles": {"m": {"methods": methods}}}, "m")}
    valid = [t for t in trials if t.score is not None]
    assert len(valid) == 2 and target_distance(valid[0].score.angle, "prosocial") is not None
    assert rows["value rationality D (°, lower = closer)"].endswith("(n=2)")
    assert rows["category hit rate"].endswith("(n=2)")
    assert not any("own" in k.lower() for k in rows)
    assert rows["know why (mean judge score ÷ 5)"].startswith("0.400") and rows[
        "know why (mean judge score ÷ 5)"].endswith("(n=1)")
    assert "gap DCG (why − what; this project's reading)" in rows


def test_profile_sections_say_which_protocol_ran():
    methods = {m: _section(None) for m in P.METHODS}
    methods["vum"] = _section(Result("vum", protocol={"name": "valuedcg", "hash": "abc123"}))
    profile = {"profiles": {"m": {"methods": methods}, "n": {"methods": dict(methods)}}}
    assert P.protocol_note(profile, "vum", ["m", "n"]) == "Protocol: valuedcg (hash abc123)"
    assert P.protocol_note(profile, "svo", ["m"]) is None
