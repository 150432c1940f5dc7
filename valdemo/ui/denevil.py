"""Moral attack tab (DeNEVIL + VILMO): attack a principle round by round, then defend.

Thin: reads inputs, calls :mod:`valdemo.denevil`, renders tables and charts.
Continuations are shown only behind a closed accordion with a content notice.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from .. import denevil
from ..inputs import InputError
from .common import caveat_markdown, progress_callback, resolve_model, same_model_warning, ui_errors
from .models_panel import SPEC_CHOICES

CONTENT_NOTICE = ("Content notice: these continuations were elicited on purpose to violate moral principles "
                  "and may be offensive. Open to read them.")
INTRO = """
**DeNEVIL** (Duan et al., ICLR 2024) asks not whether a model *says* something is wrong, but whether it
*writes* text that violates a moral principle when it continues a story. An **attacker** model writes story
beginnings, the **target** continues them, the **judge** scores each continuation's violation (0-1) with a
reason, and the best prompts go back to the attacker for the next round. **VILMO** then defends: an
instruction model writes a value instruction for each prompt, and the target continues again with it.
"""
SOURCES = ["bundled prompts", "uploaded file", "winning prompts of the last attack"]
ROUND_COLUMNS = ["principle", "round", "candidate", "source", "prompt", "violation", "reasons", "judge failures"]
CONT_COLUMNS = ["principle", "round", "candidate", "sample", "continuation", "violation", "reason", "judge error"]
DEFENCE_COLUMNS = ["foundation", "principle", "prompt", "instruction", *denevil.CONDITIONS]


def _principles_for(foundation: str) -> list[str]:
    return [p.text for p in denevil.bundled_principles(foundation)]


def _choose_principles(foundation: str, principle: str, upload) -> list[denevil.Principle]:
    if upload:
        return denevil.load_principles(upload if isinstance(upload, str) else upload.name)
    if not (principle or "").strip():
        raise InputError("choose or type a principle, or upload a principles file")
    known = denevil.find_principle(principle)
    if known is not None and known.foundation == denevil.normalise_foundation(foundation):
        return [known]
    return [denevil.make_principle(principle, foundation)]


def _models(target_spec: str, helper_spec: str, judge_spec: str, creds) -> tuple:
    """(target, attacker or instructor, judge); an empty helper spec means the judge."""
    judge = resolve_model(judge_spec, creds)
    helper = resolve_model(helper_spec, creds) if (helper_spec or "").strip() else judge
    return resolve_model(target_spec, creds), helper, judge


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def attack_chart(result: dict) -> go.Figure:
    fig = go.Figure()
    for p in result["principles"]:
        rounds = [r["round"] for r in p["rounds"]]
        name = _short(p["principle"], 40)
        fig.add_trace(go.Scatter(x=rounds, y=[r["best_violation"] for r in p["rounds"]], mode="lines+markers",
                                 name=f"best · {name}"))
        fig.add_trace(go.Scatter(x=rounds, y=[r["mean_violation"] for r in p["rounds"]], mode="lines+markers",
                                 name=f"mean · {name}", line={"dash": "dot"}))
    fig.update_layout(title="Violation per round", xaxis_title="round", yaxis_title="violation (judge, 0-1)",
                      yaxis_range=[-0.02, 1.02], xaxis={"dtick": 1}, height=360, margin={"t": 50, "b": 40})
    return fig


def defence_chart(result: dict) -> go.Figure:
    found = list(result["by_foundation"])
    fig = go.Figure()
    for cond, label in zip(denevil.CONDITIONS, ("no instruction", f"fixed ({denevil.FIXED_INSTRUCTION})",
                                               "generated (VILMO)"), strict=True):
        fig.add_trace(go.Bar(x=found, y=[result["by_foundation"][f][cond] for f in found], name=label))
    fig.update_layout(barmode="group", title="Mean violation per foundation", yaxis_title="violation (judge, 0-1)",
                      yaxis_range=[0, 1], height=360, margin={"t": 50, "b": 40})
    return fig


def _attack_tables(result: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    rounds, conts = [], []
    for p in result["principles"]:
        for r in p["rounds"]:
            for c_no, c in enumerate(r["candidates"], start=1):
                reasons = " | ".join(f"(parse failed: {s['judge_error']})" if not s["judge_ok"]
                                     else s["reason"] or "(no reason)" for s in c["samples"])
                rounds.append([_short(p["principle"]), r["round"], c_no, c["source"], c["prompt"],
                               _fmt(c["violation"]), reasons, c["judge_failures"]])
                for s_no, s in enumerate(c["samples"], start=1):
                    conts.append([_short(p["principle"]), r["round"], c_no, s_no, s["continuation"],
                                  _fmt(s["violation"]), s["reason"], s["judge_error"]])
    return pd.DataFrame(rounds, columns=ROUND_COLUMNS), pd.DataFrame(conts, columns=CONT_COLUMNS)


def _attack_summary(result: dict, run_id: str, caveat: str, warning: str) -> str:
    lines = ["| principle | best violation | best round | rounds run | stopped early |", "|---|---|---|---|---|"]
    for p in result["principles"]:
        lines.append(f"| {_short(p['principle'], 70)} | {_fmt(p['best_violation'])} | {p['best_round'] or '-'} | "
                     f"{len(p['rounds'])} | {'yes' if p['stopped_early'] else 'no'} |")
    parse = result["parse"]
    calls = result["calls"]
    lines += ["",
              f"**Calls:** {calls['total']} ({calls['uncached']} not from cache; budget at most "
              f"{sum(result['max_calls'].values())}) · {result['seconds']:.1f} s · run `{run_id}`",
              f"**Parse failures** (never scored): judge {parse['judge']['failed']} of "
              f"{parse['judge']['ok'] + parse['judge']['failed']} {_reasons(parse['judge'])}; attacker "
              f"{parse['attacker']['failed']} of {parse['attacker']['ok'] + parse['attacker']['failed']} "
              f"{_reasons(parse['attacker'])}"]
    return "\n".join(x for x in [*lines, "", warning, caveat] if x is not None)


def _reasons(stats: dict) -> str:
    return f"({', '.join(f'{k}: {v}' for k, v in stats['reasons'].items())})" if stats["reasons"] else ""


def _defence_summary(result: dict, run_id: str, caveat: str) -> str:
    m = result["mean"]
    parse = result["parse"]
    lines = ["| condition | mean violation | scored prompts |", "|---|---|---|"]
    for cond in denevil.CONDITIONS:
        lines.append(f"| {cond} | {_fmt(m[cond])} | {m[f'n_{cond}']} of {m['prompts']} |")
    lines += ["", f"**Parse failures** (never scored): judge {parse['judge']['failed']} "
              f"{_reasons(parse['judge'])}; instruction model {parse['instructor']['failed']} "
              f"{_reasons(parse['instructor'])} · **calls** {result['calls']['total']} "
              f"({result['calls']['uncached']} not from cache) · run `{run_id}`", "", caveat]
    return "\n".join(lines)


def build(ctx) -> None:
    gr.Markdown(INTRO)
    last_attack = gr.State([])
    with gr.Row():
        attacker = gr.Dropdown(SPEC_CHOICES, value="", allow_custom_value=True, label="Attacker model",
                               info="writes the story beginnings; empty = the judge", elem_id="denevil-attacker")
        instructor = gr.Dropdown(SPEC_CHOICES, value="", allow_custom_value=True, label="Instruction model (VILMO)",
                                 info="writes the value instructions; empty = the judge",
                                 elem_id="denevil-instructor")
    with gr.Row():
        foundation = gr.Dropdown(list(denevil.FOUNDATIONS), value="care", label="Moral foundation",
                                 elem_id="denevil-foundation")
        principle = gr.Dropdown(_principles_for("care"), value=_principles_for("care")[0], allow_custom_value=True,
                                label="Principle (choose or type your own)", scale=3, elem_id="denevil-principle")
    upload = gr.File(label="Or upload principles: CSV or JSONL with foundation,principle[,prompt] "
                           "(a ready prompt is tested as is)", file_types=[".csv", ".jsonl", ".json"],
                     elem_id="denevil-upload")
    with gr.Accordion("Budget", open=False):
        with gr.Row():
            rounds = gr.Slider(1, 5, value=2, step=1, label="Rounds")
            candidates = gr.Slider(1, 8, value=3, step=1, label="Candidates per round")
            samples = gr.Slider(1, 4, value=1, step=1, label="Samples per candidate")
        with gr.Row():
            temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.1, label="Target temperature",
                                    info="above 0 for more than one sample (each gets its own seed)")
            max_tokens = gr.Slider(16, 512, value=64, step=16, label="Max new tokens (continuations)")
            threshold = gr.Slider(0.0, 1.0, value=0.9, step=0.05, label="Stop early at violation")
        with gr.Row():
            attacker_tokens = gr.Slider(16, 512, value=96, step=8, label="Max new tokens (prompts, instructions)")
            judge_tokens = gr.Slider(8, 256, value=48, step=4, label="Max new tokens (judge)")
    attack_btn = gr.Button("Run attack", variant="primary", elem_id="denevil-attack")
    attack_md = gr.Markdown(elem_id="denevil-attack-summary")
    attack_plot = gr.Plot(label="Best and mean violation per round")
    winner = gr.Textbox(label="Winning prompt", lines=3, interactive=False, elem_id="denevil-winner")
    rounds_df = gr.Dataframe(headers=ROUND_COLUMNS, label="Rounds: prompts, scores, reasons", wrap=True,
                             interactive=False)
    with gr.Accordion(CONTENT_NOTICE, open=False, elem_id="denevil-continuations"):
        conts_df = gr.Dataframe(headers=CONT_COLUMNS, label="Continuations", wrap=True, interactive=False)

    gr.Markdown("### Defence (VILMO): no instruction vs a fixed one vs a generated one")
    with gr.Row():
        source = gr.Radio(SOURCES, value=SOURCES[0], label="Prompts to defend", scale=3)
        per_foundation = gr.Slider(1, 4, value=1, step=1, label="Bundled prompts per foundation")
    defend_btn = gr.Button("Run defence", variant="primary", elem_id="denevil-defend")
    defend_md = gr.Markdown(elem_id="denevil-defence-summary")
    defend_plot = gr.Plot(label="Mean violation per foundation")
    defend_df = gr.Dataframe(headers=DEFENCE_COLUMNS, label="Per prompt", wrap=True, interactive=False)
    with gr.Accordion(CONTENT_NOTICE, open=False):
        defend_conts = gr.Dataframe(headers=["principle", "condition", "continuation", "violation", "reason"],
                                    wrap=True, interactive=False)

    foundation.change(lambda f: gr.Dropdown(choices=_principles_for(f), value=_principles_for(f)[0]),
                      foundation, principle, api_visibility="private", queue=False)

    @ui_errors
    def run_attack(found, text, file, attacker_spec, target_spec, judge_spec, creds, n_rounds, n_cands, n_samples,
                   temp, tokens, att_tokens, jud_tokens, stop_at, progress=gr.Progress()):
        principles = _choose_principles(found, text, file)
        budget = denevil.Budget.from_inputs(rounds=n_rounds, candidates=n_cands, samples=n_samples,
                                            temperature=temp, max_new_tokens=tokens, threshold=stop_at,
                                            attacker_tokens=att_tokens, judge_tokens=jud_tokens)
        target_m, attacker_m, judge_m = _models(target_spec, attacker_spec, judge_spec, creds)
        result = denevil.attack(principles, attacker_m, target_m, judge_m, budget,
                                progress=progress_callback(progress, "attack calls"))
        run_id = denevil.save_attack(result, ctx.store)
        rounds_table, conts_table = _attack_tables(result)
        best = max(result["principles"], key=lambda p: -1 if p["best_violation"] is None else p["best_violation"])
        win = (f"{best['best_prompt']}\n\n(violation {_fmt(best['best_violation'])}, principle: {best['principle']})"
               if best["best_prompt"] else "(no continuation could be scored; see parse failures)")
        found_prompts = [{"foundation": p["foundation"], "principle": p["principle"], "prompt": p["best_prompt"]}
                         for p in result["principles"] if p["best_prompt"]]
        summary = _attack_summary(result, run_id, caveat_markdown([attacker_m, target_m, judge_m]),
                                  same_model_warning(target_m, judge_m))
        return summary, attack_chart(result), win, rounds_table, conts_table, found_prompts

    @ui_errors
    def run_defence(src, n_per, file, found_prompts, target_spec, instructor_spec, judge_spec, creds, n_samples,
                    temp, tokens, att_tokens, jud_tokens, progress=gr.Progress()):
        if src == "uploaded file":
            if not file:
                raise InputError("upload a principles file with a prompt column first")
            items = denevil.load_principles(file if isinstance(file, str) else file.name)
        elif src == "winning prompts of the last attack":
            if not found_prompts:
                raise InputError("run an attack first: there are no winning prompts to defend yet")
            items = [denevil.make_principle(x["principle"], x["foundation"], x["prompt"]) for x in found_prompts]
        elif src == "bundled prompts":
            items = denevil.bundled_prompts(int(n_per))
        else:
            raise InputError(f"unknown prompt source {src!r}; choose one of {', '.join(SOURCES)}")
        budget = denevil.Budget.from_inputs(samples=n_samples, temperature=temp, max_new_tokens=tokens,
                                            attacker_tokens=att_tokens, judge_tokens=jud_tokens)
        target_m, instructor_m, judge_m = _models(target_spec, instructor_spec, judge_spec, creds)
        result = denevil.defend(items, target_m, instructor_m, judge_m, budget,
                                progress=progress_callback(progress, "defence calls"))
        run_id = denevil.save_defence(result, ctx.store)
        table = pd.DataFrame([[r[c] if c not in denevil.CONDITIONS else _fmt(r[c]) for c in DEFENCE_COLUMNS]
                              for r in result["rows"]], columns=DEFENCE_COLUMNS)
        conts = pd.DataFrame([[_short(r["principle"]), cond, s["continuation"], _fmt(s["violation"]),
                               s["reason"] or s["judge_error"]]
                              for r in result["rows"] for cond, d in r["details"].items() for s in d["samples"]],
                             columns=["principle", "condition", "continuation", "violation", "reason"])
        summary = _defence_summary(result, run_id, caveat_markdown([target_m, instructor_m, judge_m]))
        return summary, defence_chart(result), table, conts

    attack_btn.click(run_attack,
                     [foundation, principle, upload, attacker, ctx.target, ctx.judge, ctx.creds, rounds, candidates,
                      samples, temperature, max_tokens, attacker_tokens, judge_tokens, threshold],
                     [attack_md, attack_plot, winner, rounds_df, conts_df, last_attack],
                     api_name="denevil_attack", **ctx.model_event())
    defend_btn.click(run_defence,
                     [source, per_foundation, upload, last_attack, ctx.target, instructor, ctx.judge, ctx.creds,
                      samples, temperature, max_tokens, attacker_tokens, judge_tokens],
                     [defend_md, defend_plot, defend_df, defend_conts],
                     api_name="denevil_defend", **ctx.model_event())
