"""A one-page readout of a value profile (issue 18): one plain sentence per method, per model.

For stakeholders who will not read the tables: each sentence says what was measured, the
number, and what it rests on (n, and the interval where the method gives one); what could not
be measured says why. The numbers are the profile's own (valdemo.profile), never recomputed
here; nothing is added but words. No gradio import: the Profile tab and the report both use it.
"""

from __future__ import annotations

import html
from typing import Any

from .core.metrics import wilson
from .models import BUNDLED_CAVEAT

TITLES = {"vum": "Value dialogue (VUM)", "svo": "SVO game (HVAE)", "clave": "Calibrated evaluator (CLAVE)",
          "univar": "Value space (UniVaR view)", "denevil": "Moral attack (DeNEVIL / VILMO)"}
ORDER = ("vum", "svo", "clave", "univar", "denevil")


def _pct(x: Any) -> str:
    return f"{x * 100:.0f}%" if isinstance(x, int | float) else "n/a"


def _ci(share: Any, n: int) -> str:
    """The 95% Wilson interval of a share of n (this project's own, as everywhere in valdemo)."""
    if not isinstance(share, int | float) or not n:
        return ""
    iv = wilson(round(share * n), n)
    return f" (95% CI {iv[0] * 100:.0f}–{iv[1] * 100:.0f}%)" if iv else ""


def _section(profile: dict, spec: str, method: str) -> dict:
    return ((profile.get("profiles") or {}).get(spec) or {}).get("methods", {}).get(method) or {}


def _vum(s: dict) -> tuple[str, str]:
    ov = s.get("overall") or {}
    n, what, why, dcg = ov.get("n") or 0, ov.get("know_what_acc"), ov.get("know_why_rate"), ov.get("dcg")
    if not n:
        return "n/a", "No scenario was judged, so know-what and know-why were not measured."
    failed = ov.get("parse_failures") or 0
    text = (f"It picked the expected label for {_pct(what)} of {n} scenarios{_ci(what, n)} (know what), and its explanations "
            f"earned {_pct(why)} of the judge's top score (know why); know why minus know what is "
            f"{dcg:+.2f}." if isinstance(dcg, int | float) else
            f"It picked the expected label for {_pct(what)} of {n} scenarios{_ci(what, n)} (know what); know why was "
            "not scored.")
    if failed:
        text += f" {failed} of {n} answers could not be read (counted, not scored as right)."
    if ov.get("judged_parts") == 0 and isinstance(why, int | float):
        text += (" No part of its explanations reached the judge: the parts the judge scores were missing, and a "
                 "missing part counts as 0.")
    return (f"{dcg:+.2f}" if isinstance(dcg, int | float) else _pct(what)), text


def _svo(s: dict) -> tuple[str, str]:
    orient = s.get("orientations") or {}
    if not orient:
        return "n/a", "No orientation was played."
    ds = [o["vr_distance"] for o in orient.values() if isinstance(o.get("vr_distance"), int | float)]
    valid = sum(int(o.get("valid_trials") or 0) for o in orient.values())
    trials = sum(int(o.get("trials") or 0) for o in orient.values())
    hits = sum(int(o.get("category_hits") or 0) for o in orient.values())
    if not ds:
        return "n/a", (f"Told to hold each of {len(orient)} social value orientations, it gave no readable play "
                       f"({valid} of {trials} trials valid), so value rationality was not measured.")
    mean = sum(ds) / len(ds)
    return f"{mean:.1f}°", (f"Told to hold each of {len(orient)} social value orientations, its slider choices landed "
                            f"on average {mean:.1f}° from the target angle (0° is exactly on target), over {valid} "
                            f"of {trials} valid trials; {hits} of {valid}{_ci(hits / valid if valid else None, valid)} fell in the "
                            "induced orientation's category.")


def _clave(s: dict) -> tuple[str, str]:
    ov = s.get("overall") or {}
    n = ov.get("n") or sum(int(v.get("n") or 0) for v in (s.get("per_value") or {}).values())
    if ov.get("adheres") is None:
        return "n/a", "Not measured."
    return _pct(ov.get("adheres")), (f"The calibrated recognizer read {_pct(ov.get('adheres'))} of its {n or 'n/a'} "
                                     f"answers as upholding the value asked about and {_pct(ov.get('opposes'))} as "
                                     f"going against it.")


def _univar(s: dict) -> tuple[str, str]:
    pos = s.get("position") or {}
    near = pos.get("nearest") or []
    if not near:
        return "n/a", "Its answers could not be placed."
    first = near[0]
    return f"{first['distance']:.3f}", (f"From {pos.get('n_answers', 'n/a')} answers to value-eliciting questions, "
                                        f"it sits closest to “{first['source']}” (distance {first['distance']:.3f}) "
                                        f"in a sentence-embedding space, which is not UniVaR's trained value encoder.")


def _denevil(s: dict) -> tuple[str, str]:
    mean = s.get("mean") or {}
    base, gen = (mean.get("none") or {}).get("EVR"), (mean.get("generated") or {}).get("EVR")
    by = s.get("by_foundation") or {}
    kept, prompts = sum(int(f.get("kept") or 0) for f in by.values()), sum(int(f.get("prompts") or 0) for f in by.values())
    parse = s.get("parse") or {}
    failed = "; ".join(f"{k}: {v.get('failed') or 0} of {v.get('total') or 0} unreadable" for k, v in parse.items()
                       if v.get("failed"))
    if not isinstance(base, int | float):
        return "n/a", (f"No violation rate could be computed: {kept} of {prompts} attack prompts gave judged "
                       f"continuations" + (f" ({failed})" if failed else "") + ".")
    text = f"With no instruction, {_pct(base)} of its continuations of {prompts} attack prompts broke the principle (EVR)"
    text += (f"; with a generated value instruction (VILMO), {_pct(gen)}." if isinstance(gen, int | float) else ".")
    if failed:
        text += f" Unreadable answers are counted, not scored: {failed}."
    return _pct(base), text


_SENTENCES = {"vum": _vum, "svo": _svo, "clave": _clave, "univar": _univar, "denevil": _denevil}


def readout(profile: dict, spec: str) -> list[dict]:
    """One card per method: {method, title, figure (the headline number as text), sentence}."""
    cards = []
    for method in ORDER:
        sec = _section(profile, spec, method)
        status = sec.get("status")
        if status is None:
            continue
        if status != "ok":
            what = "Not measured" if status == "unavailable" else "Failed"
            figure, sentence = "n/a", f"{what}: {sec.get('error') or 'no reason given'}"
        else:
            figure, sentence = _SENTENCES[method](sec.get("summary") or {})
        cards.append({"method": method, "title": TITLES[method], "figure": figure, "sentence": sentence})
    return cards


def readout_markdown(profile: dict, spec: str) -> str:
    bundled = ((profile.get("profiles") or {}).get(spec) or {}).get("bundled")
    lines = [f"**{spec}**" + (f": {BUNDLED_CAVEAT}" if bundled else "")]
    lines += [f"- **{c['title']}** ({c['figure']}): {c['sentence']}" for c in readout(profile, spec)]
    return "\n".join(lines)


CSS = (".vd-cards{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0}"
       ".vd-card{flex:1 1 260px;max-width:420px;border:1px solid #d0d7de;border-radius:8px;padding:10px 12px;"
       "background:#fff;color:#1f2328}"
       ".vd-card h4{margin:0 0 4px 0;font-size:0.95em;font-variant:normal;font-feature-settings:normal}.vd-card .fig{font-size:1.5em;font-weight:600;margin:2px 0}"
       ".vd-card p{margin:4px 0 0 0;font-size:0.9em;line-height:1.35}"
       ".vd-caveat{border-left:4px solid #d29922;padding:6px 10px;background:#fff8c5;color:#1f2328;margin:6px 0}")


def readout_html(profile: dict, specs: list[str] | None = None, banner: str = "") -> str:
    """Cards (one per method) for each model in ``specs`` (default: all), with the bundled caveat."""
    specs = specs or list(profile.get("profiles") or {})
    parts = [f"<style>{CSS}</style>"]
    if banner:
        parts.append(f'<div class="vd-caveat" id="profile-example-banner">{banner}</div>')
    for spec in specs:
        bundled = ((profile.get("profiles") or {}).get(spec) or {}).get("bundled")
        parts.append(f"<h3>One-page readout: {html.escape(spec)}</h3>")
        if bundled:
            parts.append(f'<div class="vd-caveat">⚠️ {html.escape(BUNDLED_CAVEAT)}</div>')
        parts.append('<div class="vd-cards">' + "".join(
            f'<div class="vd-card" data-method="{c["method"]}"><h4>{html.escape(c["title"])}</h4>'
            f'<div class="fig">{html.escape(c["figure"])}</div><p>{html.escape(c["sentence"].replace("`", ""))}</p></div>'
            for c in readout(profile, spec)) + "</div>")
    return "".join(parts)
