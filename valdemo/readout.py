"""A one-page readout of a value profile (issue 18): one plain sentence per method, per model.

For stakeholders who will not read the tables: each sentence says what was measured, the
number, and what it rests on (n, and the interval where the method gives one); what could not
be measured says why. The numbers are the profile's own (valdemo.profile), never recomputed
here; nothing is added but words. No gradio import: the Profile tab and the report both use it.
"""

from __future__ import annotations

import html
from typing import Any

from .core.result import Metric, Result
from .core.runs import result_from_dict
from .models import BUNDLED_CAVEAT

TITLES = {"vum": "Value dialogue (VUM)", "svo": "SVO game (HVAE)", "clave": "Calibrated evaluator (CLAVE)",
          "univar": "Value space (UniVaR view)", "denevil": "Moral attack (DeNEVIL / VILMO)"}
ORDER = ("vum", "svo", "clave", "univar", "denevil")


def _pct(x: Any) -> str:
    return f"{x * 100:.0f}%" if isinstance(x, int | float) else "n/a"


def _ci_pct(m: Metric) -> str:
    """A share's 95% interval in percent, as the method computed it ('' where there is none)."""
    if m.value is None or m.interval is None or m.n < 2:
        return ""
    return f" (95% CI {m.interval[0] * 100:.0f}–{m.interval[1] * 100:.0f}%)"


def _result(profile: dict, spec: str, method: str) -> Result | None:
    sec = ((profile.get("profiles") or {}).get(spec) or {}).get("methods", {}).get(method) or {}
    if sec.get("status") != "ok" or not sec.get("result"):
        return None
    return result_from_dict({**sec["result"], "rows": []})


def _failed(res: Result) -> str:
    """Every step that lost answers, with its own denominator (never summed); steps whose flagged
    answers were kept as written (e.g. stopped at a token cap) are listed apart, as kept."""
    lost = [f"{f.failed} of {f.total} {f.step}" for f in res.failures if f.failed and not f.kept]
    kept = [f"{f.failed} of {f.total} {f.step}" for f in res.failures if f.failed and f.kept]
    return ((" Unreadable or missing, counted and not scored: " + "; ".join(lost) + "." if lost else "")
            + (" Counted and kept as written: " + "; ".join(kept) + "." if kept else ""))


def _vum(res: Result) -> tuple[str, str]:
    what, why, gap = res.metric("know_what_acc"), res.metric("know_why_rate"), res.metric("dcg")
    if what is None or what.value is None:
        return "n/a", "No scenario was judged, so know what and know why were not measured." + _failed(res)
    text = f"It picked the expected label in {_pct(what.value)} of {what.n} scenarios{_ci_pct(what)} (know what)"
    if why is not None and why.value is not None:
        text += f"; its explanations earned {_pct(why.value)} of the judge's top score (know why)"
    if gap is not None and gap.value is not None:
        text += f"; know why minus know what is {gap.fmt(2)}"
    return (f"{gap.value:+.2f}" if gap is not None and gap.value is not None else _pct(what.value)), text + "." + _failed(res)


def _svo(res: Result) -> tuple[str, str]:
    d, hit = res.metric("vr_distance"), res.metric("category_hit")
    if d is None or d.value is None:
        return "n/a", "Told to hold each social value orientation, it gave no readable play, so value rationality " \
                      "was not measured." + _failed(res)
    ci = f" (95% CI {d.interval[0]:.1f}–{d.interval[1]:.1f}°)" if d.interval is not None and d.n >= 2 else ""
    text = (f"Told to hold each social value orientation, its slider choices landed on average {d.value:.1f}° from "
            f"the target angle{ci} over {d.n} valid trials (0° is exactly on target)")
    if hit is not None and hit.value is not None:
        text += f"; {_pct(hit.value)} of them{_ci_pct(hit)} fell in the induced orientation's category"
    return f"{d.value:.1f}°", text + "." + _failed(res)


def _denevil(res: Result) -> tuple[str, str]:
    base, gen = res.metric("EVR_none"), res.metric("EVR_generated")
    if base is None or base.value is None:
        return "n/a", (f"No violation rate could be computed: no attack prompt kept judged continuations in every "
                       f"condition (n={base.n if base else 0})." + _failed(res))
    text = (f"With no instruction, {_pct(base.value)} of {base.n} attack prompts{_ci_pct(base)} drew a continuation "
            f"that broke the principle (EVR)")
    if gen is not None and gen.value is not None:
        text += f"; with a generated value instruction (VILMO), {_pct(gen.value)}{_ci_pct(gen)}"
    return _pct(base.value), text + "." + _failed(res)


def _generic(res: Result) -> tuple[str, str]:
    shown = [m for m in res.metrics if m.value is not None][:3]
    if not shown:
        return "n/a", "Nothing could be measured." + _failed(res)
    return f"{shown[0].value:.3f}", "; ".join(f"{m.title}: {m.fmt()}" for m in shown) + "." + _failed(res)


_SENTENCES = {"vum": _vum, "svo": _svo, "denevil": _denevil}


def readout(profile: dict, spec: str) -> list[dict]:
    """One card per method: {method, title, figure (the headline number as text), sentence}."""
    cards = []
    for method in ORDER:
        sec = ((profile.get("profiles") or {}).get(spec) or {}).get("methods", {}).get(method)
        if not sec:
            continue
        res = _result(profile, spec, method)
        if res is None:
            what = "Not measured" if sec.get("status") == "unavailable" else "Failed"
            figure, sentence = "n/a", f"{what}: {sec.get('error') or 'no reason given'}"
        else:
            figure, sentence = _SENTENCES.get(method, _generic)(res)
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
