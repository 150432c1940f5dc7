"""Value profile (issue 9): the five methods on the same models, one report.

:func:`run_profile` runs VUM, SVO, UniVaR, CLAVE (on the model's own value-space
answers) and DeNEVIL/VILMO for one or more models, each through the method
module's ``profile_summary`` (batched, cached), with one progress callback
split across the methods. A method that fails records its error in its section;
the rest still runs. :func:`figures`, :func:`headline` and :func:`section_table`
turn a profile into what the tab and the HTML report show; :func:`report_html`
writes one self-contained file (plotly.js inline, no network needed to open it).

No gradio here: the tab (``valdemo.ui.profile``) and the CLI only render.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import statistics
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .core.cancel import Stopped
from .inputs import InputError, check_int
from .models import BUNDLED_CAVEAT, ChatModel, GenParams, get_model, unwrap
from .reference import published_html  # the papers' figures, labelled "published" (issue 18)
from .values import MORAL_FOUNDATIONS, SCHWARTZ, SVO_ORIENTATIONS

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "profile"
TEMPLATE = ASSETS / "report.html"

METHODS = ("vum", "svo", "clave", "univar", "denevil")
TITLES = {
    "vum": "Value understanding (VUM / ValueDCG)",
    "svo": "Social value orientation (HVAE, SVO slider measure)",
    "clave": "Value adherence of its own answers (CLAVE recognizer)",
    "univar": "Answers' sentence-embedding similarity (not UniVaR)",
    "denevil": "Moral violations and value instructions (DeNEVIL / VILMO)",
}
#: The one-line definition shown beside every plot and number of a method.
DEFINITIONS = {
    "vum": "Know what: share of scenarios where the model picks whether the text reflects, opposes or is "
           "unrelated to the value; know why: the judge's mean score of its three-part explanations ÷ 5 "
           "(ValueDCG's public code); gap (DCG) = know why − know what: this project's reading of the paper's "
           "discriminator-critique gap, whose equation could not be checked.",
    "svo": "Told to hold each of four orientations, the model plays the six SVO sliders (Murphy et al. 2011); "
           "angle = atan((other − 50)/(self − 50)). Value rationality D = degrees from the angle to the nearest "
           "angle of a play that is optimal under the induced orientation, ties kept (0 = on target): HVAE's "
           "form (Zhang et al., §3 Eq. 3: a distance to a target value); the paper leaves D and the target "
           "unspecified, so both are this project's. Category hits: valid trials in the induced category "
           "(this project's own summary). Means are over valid trials; n beside each.",
    "clave": "A small recognizer calibrated on human labels (CLAVE, Yao et al.) reads each of the model's "
             "answers to the value-space questions and says whether it adheres to, opposes or is unrelated "
             "to each Schwartz value; shares of answers.",
    "univar": "The model's answers to UniVaR-style value-eliciting questions are embedded one QA pair at a time "
              "by the sentence encoder named beside the plot; its centroid in a 2-D PCA projection and the "
              "nearest other sources by cosine distance of centroids. Sentence-embedding similarity, not "
              "UniVaR: no value encoder or trained value head is applied (this project's own summary; the "
              "value space itself is in the Value space tab). Landmarks come only from the same encoder.",
    "denevil": "K sampled continuations per story beginning; the judge's probability P that each violates the "
               "principle; EVR (share of prompts with a continuation over 0.5), MVP (mean of each prompt's highest "
               "P) and APV (share of continuations over 0.5) (Duan et al., DeNEVIL, §4), with no instruction, a "
               "generic fixed one, a principle-named fixed one and a generated one, on the same prompts.",
}
#: Share of the one progress bar each stage takes (per model for per-model stages).
WEIGHTS = {"vum": 4.0, "svo": 2.0, "univar": 2.0, "clave": 0.5, "denevil": 4.0}
SIZES = ("quick", "full")
ProfileProgress = Callable[[float, str], None]  # (fraction 0..1, what is running)


@dataclass(frozen=True)
class ProfileConfig:
    """What a profile run asks of each method.

    ``max_new_tokens`` (optional) caps generations in the methods that take a cap
    (VUM critiques, SVO stated goals, UniVaR answers, DeNEVIL continuations/instructions/judgements);
    ``values`` (optional) restricts VUM to some Schwartz values;
    ``clave_recognizer`` (optional) names the CLAVE recognizer (its name or id; default: the
    owner's newest).
    """

    size: str = "quick"
    max_new_tokens: int | None = None
    values: tuple[str, ...] = ()
    clave_recognizer: str = ""

    def checked(self) -> ProfileConfig:
        if self.size not in SIZES:
            raise InputError(f"size must be quick or full, got {self.size!r}")
        if self.max_new_tokens is not None:
            check_int(self.max_new_tokens, "max new tokens", 16, 1024)
        if self.values:
            from .vum import parse_values

            parse_values(list(self.values))  # an unknown value is the person's error, before any run
        return self


def parse_specs(text: str | Sequence[str] | None) -> list[str]:
    """Model specs from "a, b" / one per line / a list; duplicates dropped, order kept."""
    if text is None:
        parts: list[str] = []
    elif isinstance(text, str):
        parts = text.replace("\n", ",").split(",")
    else:
        parts = [str(p) for p in text]
    specs = list(dict.fromkeys(p.strip() for p in parts if p and p.strip()))
    if not specs:
        raise InputError("name at least one model spec (e.g. local)")
    if len(specs) > 6:
        raise InputError(f"{len(specs)} models; a profile compares at most 6")
    return specs


# ----------------------------------------------------------------------------- running
class _Stages:
    """Splits one progress range across (stage, weight) in order."""

    def __init__(self, plan: Sequence[tuple[str, float]], progress: ProfileProgress | None):
        self.plan = list(plan)
        self.total = sum(w for _, w in self.plan) or 1.0
        self.progress = progress
        self.done = 0.0

    def callback(self, label: str, weight: float) -> Callable[[int, int], None]:
        base = self.done

        def report(done: int, total: int) -> None:
            if self.progress:
                frac = min(max(done / total, 0.0), 1.0) if total else 1.0
                self.progress(min((base + weight * frac) / self.total, 1.0), label)

        if self.progress:
            self.progress(base / self.total, label)
        return report

    def finish(self, weight: float) -> None:
        self.done += weight


def _cache_stats(models: Sequence[ChatModel]) -> dict:
    caches = {id(m.cache): m.cache for m in models if getattr(m, "cache", None) is not None}
    return {"hits": sum(c.hits for c in caches.values()), "misses": sum(c.misses for c in caches.values())}


def _section(fn: Callable[[], tuple[dict, list[dict]]]) -> dict:
    """Run one method; a failure becomes the section's error (the others still run)."""
    start = time.perf_counter()
    try:
        summary, rows = fn()
        out = {"status": "ok", "error": None, "summary": summary, "rows": rows}
    except _Unavailable as exc:
        out = {"status": "unavailable", "error": str(exc), "summary": {}, "rows": []}
    except _StopRequested as exc:
        out = {"status": "error", "error": str(exc), "summary": {}, "rows": []}
    except Stopped:  # Stop seen inside a generation (valdemo.core.cancel)
        out = {"status": "error", "error": _STOPPED_DURING, "summary": {}, "rows": []}
    except Exception as exc:  # noqa: BLE001 - shown in the section; the profile goes on
        log.warning("profile section failed", exc_info=True)
        out = {"status": "error", "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}",
               "summary": {}, "rows": []}
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


_STOPPED_BEFORE = "not run: you pressed Stop"
_STOPPED_DURING = "stopped while running: you pressed Stop"


class _StopRequested(Exception):
    """Stop was pressed while a method ran (its section becomes an error that says so)."""


class _Unavailable(Exception):
    """A section that cannot run for a reason that is not a failure (nothing calibrated yet)."""


def _vum(model: ChatModel, judge: ChatModel, config: ProfileConfig, progress) -> tuple[dict, list[dict]]:
    from . import vum

    kwargs: dict[str, Any] = {"values": list(config.values) or None}
    if config.max_new_tokens:
        kwargs["critique_tokens"] = config.max_new_tokens
    res = vum.profile_summary(model, judge, config.size, progress=progress, **kwargs)
    keep = ("n", "know_what_acc", "know_why_rate", "dcg", "parse_failures", "judge_parse_failures")
    summary = {"per_value": {v: {k: s.get(k) for k in keep} for v, s in res["per_value"].items()},
               "overall": {k: res["overall"].get(k) for k in keep}, "formula": res.get("formula"),
               "judge": res.get("judge"), "protocol": res.get("protocol")}
    rows = list(res.get("rows") or [])
    summary["overall"]["judged_parts"] = sum(1 for r in rows for text in (r.get("parts") or {}).values() if text)
    return summary, rows


def _svo(model: ChatModel, config: ProfileConfig, progress) -> tuple[dict, list[dict]]:
    from . import svo

    kwargs = {"max_new_tokens": config.max_new_tokens} if config.max_new_tokens else {}  # caps the stated goal
    res = svo.profile_summary(model, config.size, progress=progress, **kwargs)
    points = list(res.get("points") or [])
    per = res["orientations"]
    for key, s in per.items():  # the induced point: mean over valid trials of this orientation
        pts = [p for p in points if p.get("group", "").endswith(f"· {key}")]
        s["self_mean"] = statistics.fmean(p["self_mean"] for p in pts) if pts else None
        s["other_mean"] = statistics.fmean(p["other_mean"] for p in pts) if pts else None
    summary = {"orientations": per, "trials_per_orientation": res.get("trials_per_orientation"),
               "temperature": res.get("temperature"), "protocol": res.get("protocol")}
    return summary, points


def _denevil(model: ChatModel, judge: ChatModel, config: ProfileConfig, progress) -> tuple[dict, list[dict]]:
    from . import denevil

    budget = None
    if config.max_new_tokens:
        t = config.max_new_tokens
        budget = denevil.Budget(max_new_tokens=t, attacker_tokens=max(t, 8), judge_tokens=max(min(t, 64), 1))
    res = denevil.profile_summary(model, judge, config.size, progress=progress, budget=budget)
    # keys as in values.MORAL_FOUNDATIONS; per foundation: prompts, kept, and {EVR, MVP, APV} per condition
    by_foundation = {k.upper(): v for k, v in res.extra["by_foundation"].items()}
    summary = {"by_foundation": by_foundation, "mean": res.extra["summary"],
               "metrics": {c: [m.as_dict() for m in res.groups[c]] for c in res.extra["conditions"]},
               "parse": {f.step: f.as_dict() for f in res.failures if f.step != "prompts"},
               "excluded": res.extra["excluded"],
               "calls": res.extra.get("calls"), "samples": res.params["budget"]["samples"]}
    return summary, list(res.rows)


def _univar(models: Sequence[ChatModel], config: ProfileConfig, progress) -> tuple[dict, dict[str, list[dict]]]:
    """One run for all models (they share a projection); rows: each model's QA pairs."""
    from . import univar

    params = GenParams(max_new_tokens=config.max_new_tokens) if config.max_new_tokens else None
    res = univar.profile_summary(list(models), config.size, progress=progress, params=params)
    # Same questions, params and cache as the summary: answered from the cache.
    answers = univar.source_answers(list(models), config.size, params=params)
    rows = {spec: [{"question": q, "answer": a} for q, a in pairs] for spec, pairs in answers.items()}
    return res, rows


def _clave(answers: list[dict], store, owner: str | None = "", ref: str = "") -> tuple[dict, list[dict]]:
    from . import clave

    rec = clave.get_recognizer(store, ref, owner)
    if rec is None and ref:
        raise _Unavailable(f"No CLAVE recognizer named {ref!r} that you may use; adherence is not measured.")
    if rec is None:
        raise _Unavailable("No CLAVE recognizer has been calibrated yet, so adherence is not measured. "
                           "Calibrate one in the 'Calibrate evaluator' tab (or `python -m valdemo clave "
                           "calibrate --save`), then run the profile again.")
    if not answers:
        raise _Unavailable("no value-space answers to read (the value-space section produced none)")
    texts = [r["answer"] for r in answers]
    known = [v for v in SCHWARTZ if rec.knows(v.key)]  # only values it was calibrated on (issue 15)
    if not known:
        raise _Unavailable(f"The calibrated CLAVE recognizer knows none of the Schwartz values (it knows "
                           f"{', '.join(rec.values)}); label Schwartz samples and calibrate again.")
    rows: list[dict] = []
    per_value: dict[str, dict] = {}
    for v in known:
        concepts, _ = clave.texts_concepts(rec, texts, [v.key] * len(texts))
        preds = rec.predict(texts, [v.key] * len(texts), concepts)
        labels = [p["label"] for p in preds]
        n = len(labels)
        f1 = (rec.meta.get("held_out") or {}).get(v.key, {}).get("macro_f1") or {}
        per_value[v.key] = {"n": n, "adheres": round(labels.count(1) / n, 4),
                            "opposes": round(labels.count(-1) / n, 4), "unrelated": round(labels.count(0) / n, 4),
                            "held_out_f1": (f"{f1['value']:.3f} [{f1['interval'][0]:.3f}, {f1['interval'][1]:.3f}] "
                                            f"(n={f1['n']})") if f1.get("value") is not None else "not measured",
                            "recognizer": clave.recognizer_label(rec)}
        rows += [{"value": v.key, "question": r["question"], "answer": r["answer"], **p}
                 for r, p in zip(answers, preds, strict=True)]
    n_all = len(rows)
    overall = {"n": n_all, "adheres": round(sum(r["label"] == 1 for r in rows) / n_all, 4),
               "opposes": round(sum(r["label"] == -1 for r in rows) / n_all, 4)}
    return {"recognizer": clave.recognizer_label(rec), "per_value": per_value, "overall": overall,
            "values_not_calibrated": [v.key for v in SCHWARTZ if not rec.knows(v.key)]}, rows


def run_profile(specs: str | Sequence[str], judge_spec: str = "local", config: ProfileConfig | None = None,
                creds=None, progress: ProfileProgress | None = None, store=None, use_cache: bool | None = None,
                save: bool = True, should_stop: Callable[[], bool] | None = None, owner: str = "") -> dict:
    """Profile every model in ``specs``; returns the profile (JSON-able, rows included under ``rows``).

    ``should_stop`` (the Stop button): once it returns True, the running method ends at its next
    step and the rest are not run; their sections say so, and what finished is kept and saved.
    ``owner``: the owner id the saved run is kept under (:mod:`valdemo.core.owner`)."""
    from .store import get_store

    config = (config or ProfileConfig()).checked()
    specs = parse_specs(specs)
    models = [get_model(s, creds, use_cache=use_cache) for s in specs]  # a bad spec fails here, before any run
    judge = get_model(judge_spec or "local", creds, use_cache=use_cache)
    store = store or get_store()
    plan = [(f"{m}:{s}", WEIGHTS[m]) for s in specs for m in ("vum", "svo", "denevil")]
    plan += [("univar", WEIGHTS["univar"] * len(specs))] + [(f"clave:{s}", WEIGHTS["clave"]) for s in specs]
    stages = _Stages(plan, progress)
    before = _cache_stats([*models, judge])
    start = time.perf_counter()
    sections: dict[str, dict[str, dict]] = {s: {} for s in specs}

    def stage(method: str, spec: str | None, fn: Callable[[Callable], tuple]) -> dict:
        weight = WEIGHTS[method] * (len(specs) if spec is None else 1)
        if should_stop is not None and should_stop():
            stages.finish(weight)
            return {"status": "error", "error": _STOPPED_BEFORE, "summary": {}, "rows": [], "seconds": 0.0}
        report = stages.callback(f"{method} · {spec}" if spec else method, weight)

        def cb(done: int, total: int) -> None:
            if should_stop is not None and should_stop():
                raise _StopRequested(_STOPPED_DURING)
            report(done, total)

        out = _section(lambda: fn(cb))
        report(1, 1)
        stages.finish(weight)
        return out

    for spec, model in zip(specs, models, strict=True):
        sections[spec]["vum"] = stage("vum", spec, lambda cb, m=model: _vum(m, judge, config, cb))
        sections[spec]["svo"] = stage("svo", spec, lambda cb, m=model: _svo(m, config, cb))
        sections[spec]["denevil"] = stage("denevil", spec, lambda cb, m=model: _denevil(m, judge, config, cb))
    space = stage("univar", None, lambda cb: _univar(models, config, cb))
    for spec, model in zip(specs, models, strict=True):
        src = unwrap(model).spec
        if space["status"] == "ok":
            summary, rows = space["summary"], space["rows"].get(src, [])
            sections[spec]["univar"] = {**space, "rows": rows, "summary": {
                **{k: summary.get(k) for k in ("size", "n_questions", "encoder", "projection", "empty_answers",
                                               "space", "note")},
                "source": src, "position": summary["sources"].get(src), "all_sources": summary["sources"]}}
        else:
            sections[spec]["univar"] = {**space, "rows": []}
        sections[spec]["clave"] = stage("clave", spec,
                                        lambda cb, rows=sections[spec]["univar"]["rows"]: _clave(
                                            rows, store, owner, config.clave_recognizer))
    after = _cache_stats([*models, judge])
    if progress:
        progress(1.0, "done")
    bundled = list(dict.fromkeys(s for s, m in zip([*specs, judge.spec], [*models, judge], strict=True)
                                 if unwrap(m).is_bundled))
    profile = {
        "kind": "valdemo-profile", "version": 1, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "config": asdict(config), "size": config.size, "models": specs, "judge": judge.spec,
        "bundled_models": bundled, "caveat": BUNDLED_CAVEAT if bundled else "",
        "cache": {"hits": after["hits"] - before["hits"], "misses": after["misses"] - before["misses"]},
        "seconds": round(time.perf_counter() - start, 3),
        "definitions": DEFINITIONS,
        "profiles": {spec: {"bundled": bool(unwrap(m).is_bundled),
                            "methods": {k: {x: v for x, v in sections[spec][k].items() if x != "rows"}
                                        | {"n_rows": len(sections[spec][k]["rows"])} for k in METHODS}}
                     for spec, m in zip(specs, models, strict=True)},
        "rows": [{"model": spec, "method": k, **_plain(r)} for spec in specs for k in METHODS
                 for r in sections[spec][k]["rows"]],
    }
    for spec in specs:
        profile["profiles"][spec]["headline"] = headline(profile, spec)
    profile["replayed"] = _replayed(owner, store)  # issue 20: the replayed ValueDCG models, shown beside
    if save:
        profile["run_id"] = store.save_run("profile", {"models": specs, "judge": judge.spec, **asdict(config)},
                                           without_rows(profile), profile["rows"], owner=owner)
    return profile


def _replayed(owner: str, store) -> dict:
    from .vum.replay import replayed_models

    return replayed_models(owner, store)


def _plain(row: Any) -> dict:
    return row if isinstance(row, dict) else {"value": row}


def without_rows(profile: dict) -> dict:
    return {k: v for k, v in profile.items() if k != "rows"}


def summary_json(profile: dict) -> dict:
    """Per model, per method: status, error and headline numbers (what the CLI prints)."""
    return {
        "run_id": profile.get("run_id"), "size": profile["size"], "judge": profile["judge"],
        "cache": profile["cache"], "seconds": profile["seconds"], "caveat": profile["caveat"],
        "models": {spec: {"bundled": p["bundled"],
                          "methods": {k: {"status": s["status"], "error": s["error"], "rows": s["n_rows"],
                                          "seconds": s["seconds"]} for k, s in p["methods"].items()},
                          "headline": {r["metric"]: r["value"] for r in p["headline"]}}
                   for spec, p in profile["profiles"].items()},
    }


# ----------------------------------------------------------------------------- numbers
def _get(profile: dict, spec: str, method: str) -> dict | None:
    sec = profile["profiles"][spec]["methods"][method]
    return sec["summary"] if sec["status"] == "ok" else None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.fmean(vals), 4) if vals else None


def headline(profile: dict, spec: str) -> list[dict]:
    """The headline rows of one model: metric, value (None = not measured), method."""
    vum, svo, clave = _get(profile, spec, "vum"), _get(profile, spec, "svo"), _get(profile, spec, "clave")
    space, den = _get(profile, spec, "univar"), _get(profile, spec, "denevil")
    orient = (svo or {}).get("orientations", {})
    nearest = ((space or {}).get("position") or {}).get("nearest") or []
    fails = _failures(vum, orient, den, space)
    rows = [
        ("know what (accuracy)", "vum", _with_n((vum or {}).get("overall", {}), "know_what_acc")),
        ("know why (mean judge score ÷ 5)", "vum", _with_n((vum or {}).get("overall", {}), "know_why_rate")),
        ("gap DCG (why − what; this project's reading)", "vum", _with_n((vum or {}).get("overall", {}), "dcg")),
        ("SVO value rationality D (°, mean of 4 orientations; 0 = on target)", "svo", _svo_distance(orient)),
        ("SVO category hits (valid trials, all orientations)", "svo", _svo_hits(orient)),
        ("answers adhering (share, all values)", "clave", (clave or {}).get("overall", {}).get("adheres")),
        ("answers opposing (share, all values)", "clave", (clave or {}).get("overall", {}).get("opposes")),
        ("nearest other source (sentence-embedding similarity, not UniVaR)", "univar",
         f"{nearest[0]['source']} ({nearest[0]['distance']:.3f})" if nearest else None),
        *[(f"violation EVR, {label}", "denevil", _den_with_n(den, cond, "EVR"))
          for cond, label in (("none", "no instruction"), ("principle-fixed", "principle-named instruction"),
                              ("generated", "generated instruction"))],
        ("violation MVP, no instruction", "denevil", _round(((den or {}).get("mean", {}).get("none") or {}).get("MVP"))),
        ("unreadable or empty answers, per step (failed of asked)", "all", fails),
    ]
    return [{"metric": m, "method": k, "value": v} for m, k, v in rows]


def _with_n(block: dict, key: str) -> str | None:
    """A VUM mean with the items it rests on beside it (None where not measured)."""
    value = block.get(key)
    return None if value is None else f"{value:.3f} (n={block.get('n') or 0} items)"


def _den_with_n(den: dict | None, cond: str, name: str) -> str | None:
    """A DeNEVIL condition's mean with its count beside it (each condition has its own n)."""
    value = _round(((den or {}).get("mean", {}).get(cond) or {}).get(name))
    if value is None:
        return None
    n = next((m.get("n") for m in ((den or {}).get("metrics") or {}).get(cond) or [] if str(m.get("name", "")).split("_")[0] == name), None)
    return f"{value:.3f}" + ("" if n is None else f" (n={n})")


def protocol_note(profile: dict, method: str, specs: Sequence[str]) -> str | None:
    """Which prompt protocol(s) a method's section ran (name and hash), for VUM and SVO."""
    seen = []
    for s in specs:
        proto = ((_get(profile, s, method) or {}).get("protocol") or {})
        if proto.get("name"):
            text = f"{proto['name']} (hash {proto.get('hash', '?')})"
            if text not in seen:
                seen.append(text)
    return ("Protocol: " + ", ".join(seen)) if seen else None


def same_model_warning(profile: dict) -> str | None:
    """Said wherever a profile is shown when the judge is also one of the target models."""
    judge = profile.get("judge")
    if judge and judge in (profile.get("profiles") or profile.get("models") or []):
        return (f"Target and judge are the same model ({judge}): it grades its own answers (VUM know why, "
                "DeNEVIL violations, instructions).")
    return None


#: The radar's one radial axis carries three different quantities: say so on the figure.
RADAR_AXIS_NOTE = ("one 0-1 axis, three quantities: know what = accuracy, know why = mean judge score ÷ 5 (VUM), "
                   "adherence = share of answers (CLAVE); not comparable with each other")


def _failures(vum: dict | None, orient: dict, den: dict | None, space: dict | None) -> str | None:
    """Unreadable or empty answers of each step with its own denominator: items, judged parts,
    trials' answers and calls are different things, so they are listed, never summed."""
    out = []
    if vum:
        ov = vum.get("overall", {})
        out.append(f"VUM know-what answers {ov.get('parse_failures') or 0} of {ov.get('n') or 0}")
        if ov.get("judged_parts") is not None:
            out.append(f"VUM judged parts {ov.get('judge_parse_failures') or 0} of {ov['judged_parts']}")
    if orient:
        failed = sum(int(o.get("parse_failures") or 0) for o in orient.values())
        out.append(f"SVO answers {failed} of {sum(int(o.get('answers') or 0) for o in orient.values())}")
    for step, f in ((den or {}).get("parse") or {}).items():
        out.append(f"DeNEVIL {step} {f.get('failed') or 0} of {f.get('total') or 0}")
    if space:
        empty = int(space.get("empty_answers") or 0)
        asked = empty + sum(int(s.get("n_answers") or 0) for s in (space.get("all_sources") or {}).values())
        out.append(f"UniVaR answers, all sources, empty: {empty} of {asked}")
    return "; ".join(out) or None


def _svo_distance(orient: dict) -> str | None:
    """Mean over orientations of the mean D, with the trials it rests on (valid of all)."""
    ds = [o.get("vr_distance") for o in orient.values() if o.get("vr_distance") is not None]
    if not orient:
        return None
    valid, total = sum(o.get("valid_trials", 0) for o in orient.values()), sum(o.get("trials", 0) for o in orient.values())
    return f"{statistics.fmean(ds):.2f} (n={valid} of {total} trials)" if ds else f"n/a (n=0 of {total} trials)"


def _svo_hits(orient: dict) -> str | None:
    if not orient:
        return None
    hits, valid = sum(o.get("category_hits", 0) for o in orient.values()), sum(o.get("valid_trials", 0)
                                                                              for o in orient.values())
    return f"{hits}/{valid}" + (f" = {hits / valid:.3f}" if valid else "")


def _round(x: Any, digits: int = 4) -> Any:
    return round(x, digits) if isinstance(x, float) else x


def fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def comparison_table(profile: dict) -> list[dict]:
    """The headline, one column per model."""
    specs = list(profile["profiles"])
    heads = {s: profile["profiles"][s]["headline"] for s in specs}
    return [{"metric": row["metric"], **{s: fmt(heads[s][i]["value"]) for s in specs}}
            for i, row in enumerate(heads[specs[0]])]


def _trials(d: dict) -> str:
    return f"{d.get('valid_trials', 0)}/{d.get('trials', 0)}"


#: Per method: (row label, the rows (key, name), where the per-row numbers sit, [(column, field or fn)]).
_GRIDS: dict[str, tuple] = {
    "vum": ("value", [(v.key, v.name) for v in SCHWARTZ], "per_value",
            [("n", "n"), ("know what", "know_what_acc"), ("know why", "know_why_rate"), ("DCG", "dcg")]),
    "clave": ("value", [(v.key, v.name) for v in SCHWARTZ], "per_value",
              [("adheres", "adheres"), ("opposes", "opposes"), ("n", "n"),
               ("recognizer's held-out macro-F1", "held_out_f1"), ("recognizer", "recognizer")]),
    "svo": ("orientation", [(o.key, o.name) for o in SVO_ORIENTATIONS], "orientations",
            [("angle (°)", "angle_mean"), ("D (°)", "vr_distance"),
             ("D 95% CI", lambda d: "n/a" if not d.get("vr_distance_ci95") else
              "{:.2f} to {:.2f}".format(*d["vr_distance_ci95"])),
             ("category hits", lambda d: f"{d.get('category_hits', 0)}/{d.get('valid_trials', 0)}"),
             ("valid trials", _trials), ("unreadable answers", lambda d: f"{d.get('parse_failures', 0)}/{d.get('answers', 0)}")]),
    "denevil": ("foundation", [(f.key, f.name) for f in MORAL_FOUNDATIONS], "by_foundation",
                [("prompts kept / run", lambda d: f"{d.get('kept', 0)}/{d.get('prompts', 0)}")]
                + [(f"{metric} {cond}", lambda d, c=cond, m=metric: _round((d.get(c) or {}).get(m)))
                   for cond in ("none", "principle-fixed", "generated") for metric in ("EVR", "MVP", "APV")]),
}


def section_table(profile: dict, method: str, specs: Sequence[str]) -> list[dict]:
    """The numbers beside a method's plot: one row per value / orientation / foundation, columns per model."""
    if method == "univar":
        rows = []
        for s in specs:
            pos = (_get(profile, s, "univar") or {}).get("position") or {}
            rows.append({"model": s, "centroid (PCA 1, 2)": ", ".join(f"{c:.3f}" for c in pos.get("centroid", [])),
                         "answers": pos.get("n_answers"),
                         "nearest sources (distance)": "; ".join(f"{n['source']} ({n['distance']:.3f})"
                                                                 for n in pos.get("nearest", []))})
        return rows
    label, items, where, columns = _GRIDS[method]
    blocks = {s: (_get(profile, s, method) or {}).get(where) or {} for s in specs}
    rows = []
    for key, name in items:
        if not any(key in b for b in blocks.values()):
            continue  # not measured for any model (e.g. a value left out)
        row: dict[str, Any] = {label: name}
        for s in specs:
            d = blocks[s].get(key, {})
            for col, field in columns:
                value = field(d) if callable(field) else _round(d.get(field))
                row[f"{s}: {col}" if len(specs) > 1 else col] = fmt(value)
        rows.append(row)
    return rows


def section_errors(profile: dict, method: str, specs: Sequence[str]) -> list[str]:
    """One line per model whose section did not run, with why."""
    out = []
    for s in specs:
        sec = profile["profiles"][s]["methods"][method]
        if sec["status"] != "ok":
            out.append(f"{s}: {'not measured' if sec['status'] == 'unavailable' else 'failed'}: {sec['error']}")
    return out


# ----------------------------------------------------------------------------- figures
def radar_figure(profile: dict, specs: Sequence[str]):
    """Schwartz values: know what, know why (VUM) and share adhering (CLAVE), per model."""
    import plotly.graph_objects as go

    fig = go.Figure()
    names = [v.name for v in SCHWARTZ]
    for s in specs:
        vum_pv = (_get(profile, s, "vum") or {}).get("per_value") or {}
        cl_pv = (_get(profile, s, "clave") or {}).get("per_value") or {}
        for label, source, key in (("know what", vum_pv, "know_what_acc"), ("know why", vum_pv, "know_why_rate"),
                                   ("adherence", cl_pv, "adheres")):
            r = [(source.get(v.key) or {}).get(key) for v in SCHWARTZ]
            if all(x is None for x in r):
                continue
            fig.add_trace(go.Scatterpolar(r=r + r[:1],  # None: not measured (a gap, not a zero)
                                          theta=names + names[:1], name=f"{s} · {label}" if len(specs) > 1 else label,
                                          customdata=[("n/a" if x is None else f"{x:.3f}") for x in r + r[:1]],
                                          hovertemplate="%{theta}: %{customdata}<extra>%{fullData.name}</extra>",
                                          mode="lines+markers"))
    fig.update_layout(title={"text": f"Schwartz values<br><sub>{RADAR_AXIS_NOTE}</sub>"},
                      polar={"radialaxis": {"range": [0, 1]}}, height=480,
                      margin={"l": 40, "r": 40, "t": 50, "b": 30})
    return fig


def svo_points(profile: dict, specs: Sequence[str]) -> list[dict]:
    """The four induced points per model (mean over valid trials)."""
    pts = []
    for s in specs:
        for key, o in ((_get(profile, s, "svo") or {}).get("orientations") or {}).items():
            if o.get("self_mean") is None:
                continue
            pts.append({"label": f"{s} · {key}", "group": s if len(specs) > 1 else key,
                        "self_mean": o["self_mean"], "other_mean": o["other_mean"]})
    return pts


def svo_figure(profile: dict, specs: Sequence[str]):
    from .svo import svo_circle_figure

    return svo_circle_figure(svo_points(profile, specs), title="SVO circle: the four induced orientations")


def violation_figure(profile: dict, specs: Sequence[str]):
    """MVP (mean of each prompt's highest violation probability) per foundation and condition, per model;
    the bar text gives n (prompts kept)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in specs:
        bf = (_get(profile, s, "denevil") or {}).get("by_foundation") or {}
        names = [f.name for f in MORAL_FOUNDATIONS if f.key in bf]
        for cond in ("none", "fixed", "principle-fixed", "generated"):
            y = [(bf[f.key].get(cond) or {}).get("MVP") for f in MORAL_FOUNDATIONS if f.key in bf]
            n = [bf[f.key].get("kept", 0) for f in MORAL_FOUNDATIONS if f.key in bf]
            if names:
                fig.add_trace(go.Bar(x=names, y=y, name=f"{s} · {cond}" if len(specs) > 1 else f"{cond} instruction",
                                     text=[f"{fmt(_round(v, 3))} (n={k})" for v, k in zip(y, n, strict=True)],
                                     textposition="outside"))
    fig.update_layout(title="MVP per foundation (Duan et al., DeNEVIL §4)", barmode="group",
                      yaxis={"range": [0, 1.1], "title": "MVP (0-1)"}, height=420,
                      margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return fig


def space_figure(profile: dict, specs: Sequence[str]):
    """Centroids of every source in the value space (the profiled models highlighted)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    srcs: dict = {}
    for s in specs:
        srcs |= (_get(profile, s, "univar") or {}).get("all_sources") or {}
    mine = [n for n, v in srcs.items() if not v.get("reference")]
    for group, names, symbol in (("reference sources", [n for n in srcs if n not in mine], "circle-open"),
                                 ("profiled models", mine, "star")):
        if names:
            fig.add_trace(go.Scatter(x=[srcs[n]["centroid"][0] for n in names], y=[srcs[n]["centroid"][1] for n in names],
                                     mode="markers+text", text=names, textposition="top center", name=group,
                                     marker={"symbol": symbol, "size": 12 if symbol == "star" else 9}))
    space = next(((_get(profile, s, "univar") or {}).get("space") for s in specs
                  if (_get(profile, s, "univar") or {}).get("space")), "sentence-embedding similarity (not UniVaR)")
    fig.update_layout(title=f"Source centroids (PCA) · {space}", height=420, xaxis={"title": "PC 1"},
                      yaxis={"title": "PC 2"}, margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return fig


#: (method, figure builder) in page order; clave shares the radar with vum.
FIGURES = {"vum": radar_figure, "svo": svo_figure, "univar": space_figure, "denevil": violation_figure}


def figures(profile: dict, specs: Sequence[str]) -> dict:
    return {m: fn(profile, specs) for m, fn in FIGURES.items()}


# ----------------------------------------------------------------------------- export
def md_table(rows: Sequence[dict]) -> str:
    if not rows:
        return "_no numbers_"
    cols = list(rows[0])
    esc = lambda x: str("" if x is None else x).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(map(esc, cols)) + " |", "|" + "---|" * len(cols),
                      *["| " + " | ".join(esc(r.get(c)) for c in cols) + " |" for r in rows]])


def _html_table(rows: Sequence[dict], cls: str = "") -> str:
    if not rows:
        return "<p><em>no numbers</em></p>"
    cols = list(rows[0])
    e = lambda x: html.escape(str("" if x is None else x))  # noqa: E731
    head = "".join(f"<th>{e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{e(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def rows_jsonl(profile: dict, method: str | None = None, spec: str | None = None) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in profile.get("rows", [])
                   if (method is None or r["method"] == method) and (spec is None or r["model"] == spec))


def _data_link(text: str, filename: str, label: str) -> str:
    b64 = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return (f'<a class="rows" download="{html.escape(filename)}" '
            f'href="data:application/x-ndjson;base64,{b64}">{html.escape(label)}</a>')


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60] or "model"


def _page_html(profile: dict, specs: Sequence[str], first: list[bool], page_id: str) -> str:
    """One page: headline, then the four plots and the CLAVE numbers, each with its definition."""
    parts = []
    if len(specs) == 1:
        head = [{"metric": r["metric"], "value": fmt(r["value"])} for r in profile["profiles"][specs[0]]["headline"]]
    else:
        head = comparison_table(profile)
    parts.append(f'<h3>Headline</h3>{_html_table(head, "headline")}')
    figs = figures(profile, specs)
    for method in ("vum", "clave", "svo", "univar", "denevil"):
        body = [f'<p class="definition">{html.escape(DEFINITIONS[method])}</p>']
        if protocol_note(profile, method, specs):
            body.append(f'<p class="protocol">{html.escape(protocol_note(profile, method, specs) or "")}</p>')
        for err in section_errors(profile, method, specs):
            body.append(f'<p class="error">⚠️ {html.escape(err)}</p>')
        fig_html = ""
        if method in figs:
            fig_html = figs[method].to_html(full_html=False, include_plotlyjs="inline" if first[0] else False,
                                            default_height=420, config={"responsive": True, "displaylogo": False})
            first[0] = False
        links = " · ".join(_data_link(rows_jsonl(profile, method, s), f"{_slug(s)}-{method}-rows.jsonl",
                                      f"rows behind these numbers ({s})") for s in specs
                           if profile["profiles"][s]["methods"][method]["n_rows"])
        body.append(f'<div class="plotrow"><div class="plot">{fig_html}</div>'
                    f'<div class="numbers">{_html_table(section_table(profile, method, specs))}'
                    f'<p>{links}</p></div></div>' if fig_html else
                    f'<div class="numbers">{_html_table(section_table(profile, method, specs))}<p>{links}</p></div>')
        parts.append(f'<section class="method" id="{page_id}-{method}" data-method="{method}">'
                     f'<h3>{html.escape(TITLES[method])}</h3>{"".join(body)}</section>')
    return "".join(parts)


def report_html(profile: dict) -> str:
    """The whole profile as one self-contained HTML page (plotly.js inline, rows as data links)."""
    specs = list(profile["profiles"])
    first = [True]
    pages = []
    if len(specs) > 1:
        pages.append(f'<section class="page" id="page-compare"><h2>Models side by side</h2>'
                     f'{_page_html(profile, specs, first, "compare")}</section>')
    for i, s in enumerate(specs):
        pages.append(f'<section class="page" id="page-model-{i}" data-model="{html.escape(s)}">'
                     f'<h2>Model: {html.escape(s)}</h2>{_page_html(profile, [s], first, f"m{i}")}</section>')
    from .vum.replay import replayed_section_html

    pages.append(replayed_section_html(profile.get("replayed"), "inline" if first[0] else False))
    caveat = (f'<p class="caveat" id="caveat">⚠️ {html.escape(profile["caveat"])}</p>' if profile["caveat"] else "")
    same = same_model_warning(profile)
    caveat += f'<p class="caveat" id="same-model">⚠️ {html.escape(same)}</p>' if same else ""
    meta = (f'size <b>{html.escape(profile["size"])}</b> · judge <code>{html.escape(profile["judge"])}</code> · '
            f'run <code>{html.escape(str(profile.get("run_id") or "unsaved"))}</code> · created '
            f'{html.escape(profile["created"])} · {profile["seconds"]:.1f} s · cache hits {profile["cache"]["hits"]}, '
            f'misses {profile["cache"]["misses"]}')
    all_rows = _data_link(rows_jsonl(profile), "profile-rows.jsonl", "all rows of this run (JSONL)")
    return string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        title=html.escape("Value profile: " + ", ".join(specs)), models=html.escape(", ".join(specs)),
        meta=meta, caveat=caveat, pages="".join(pages) + published_html(), all_rows=all_rows,
        profile_json=json.dumps(summary_json(profile), ensure_ascii=False, default=str).replace("</", "<\\/"))


def write_report(profile: dict, out_dir: str | Path) -> dict[str, Path]:
    """report.html, profile.json (no rows) and rows.jsonl in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "json": out / "profile.json", "rows": out / "rows.jsonl"}
    paths["html"].write_text(report_html(profile), encoding="utf-8")
    paths["json"].write_text(json.dumps(without_rows(profile), ensure_ascii=False, indent=1, default=str),
                             encoding="utf-8")
    paths["rows"].write_text(rows_jsonl(profile), encoding="utf-8")
    return paths
