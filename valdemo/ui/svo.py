"""SVO game tab (issue 4, HVAE): a person plays the six sliders; models play under an orientation.

Thin: every number comes from :mod:`valdemo.svo`; this module only reads the
widgets and renders.
"""

from __future__ import annotations

import dataclasses
import tempfile

import gradio as gr

from .. import svo
from ..core.runs import save_run
from ..inputs import InputError, check_float, check_int
from ..values import ORIENTATION_KEYS, SVO_ORIENTATIONS
from .common import (
    caveat_markdown,
    progress_callback,
    request_owner,
    resolve_model,
    run_stoppable,
    stop_button,
    ui_errors,
)
from .lazy import draw_on_load
from .published import published_accordion

PROTOCOL_CHOICES = [("HVAE: six items in one conversation", "hvae_sequential"),
                    ("valdemo: one conversation per item", "per_item")]

INTRO = (
    "### Social Value Orientation slider measure\n"
    "Six items (Murphy, Ackermann & Handgraaf 2011). On each, choose how to split coins between yourself "
    "and another person you will never meet: the slider's nine stops are options A (left) to I (right). "
    "Your **SVO angle** is atan((mean other − 50) / (mean self − 50)) in degrees; categories: altruistic "
    "> 57.15°, prosocial 22.45°–57.15°, individualistic −12.04°–22.45°, competitive ≤ −12.04°. "
    "HVAE (Zhang et al. 2023) induces an orientation in a model and checks how well its play matches."
)


def _coins_md(item_number: int, position: float) -> str:
    s, o = svo.slider_coins(item_number, position)
    return f"**{svo.LETTERS[int(position) - 1]}** · you **{s}** · other **{o}**"


def _person_point(score: svo.SVOScore) -> dict:
    return {"label": "you", "group": "you", "self_mean": score.self_mean, "other_mean": score.other_mean}


def _score_md(score: svo.SVOScore) -> str:
    return (f"**Angle {score.angle:.2f}°** · category **{score.category}** · mean self "
            f"{score.self_mean:.2f}, mean other {score.other_mean:.2f} · choices {' '.join(score.choices)}")


def _trial_md(trial: svo.Trial, model) -> str:
    d = trial.as_dict()
    goal = (f"**Goal stated by the model:** {trial.goal or '(empty)'}" if trial.condition == "goal"
            else "**No goal** asked or quoted (HVAE's ablation condition).")
    lines = [goal + f" · protocol `{trial.protocol}`", "",
             "| item | choice | you | other | read by |", "|---|---|---|---|---|"]
    for item, choice, source, reason in zip(svo.ITEMS, trial.choices, trial.sources, trial.reasons, strict=True):
        if choice is None:
            lines.append(f"| {item.number} | unreadable | | | {source} ({reason or 'failed'}) |")
        else:
            s, o = item.option(svo.LETTERS.index(choice))
            lines.append(f"| {item.number} | {choice} | {s} | {o} | {source} |")
    lines.append("")
    targets = ", ".join(f"{a:.2f}" for a in svo.target_angle_set(trial.orientation))
    if trial.score is None:
        lines.append(f"⚠️ **{trial.parse_failures} of {svo.N_ITEMS} answers could not be read**: no angle for "
                     "this trial (not scored, counted).")
    else:
        lines.append(f"**Angle {d['angle']:.2f}°** · category **{d['category']}** (induced: {trial.orientation}; "
                     f"target angles {targets}°) · value rationality **D = {d['vr_distance']:.2f}°** (HVAE's form, "
                     f"this project's D; 0 = on target) · own score {d['own_score']:.3f} (this project's own, not "
                     f"HVAE's) · unreadable answers {trial.parse_failures}/{len(trial.choices)}")
    caveat = caveat_markdown([model])
    return "\n".join(lines + ([("\n" + caveat)] if caveat else []))


def _specs(text: str, target: str) -> list[str]:
    specs = [s.strip() for s in (text or "").replace(",", "\n").splitlines() if s.strip()]
    return list(dict.fromkeys(specs or [target]))


def build(ctx) -> None:
    gr.Markdown(INTRO)
    person = gr.State(None)  # the person's point on the circle, once submitted

    # -- the person plays -----------------------------------------------------------
    with gr.Accordion("You play", open=True):
        sliders, coins = [], []
        for item in svo.ITEMS:
            with gr.Row(equal_height=True):
                sliders.append(gr.Slider(1, 9, value=1, step=1, label=f"Item {item.number}", scale=3,
                                         elem_id=f"svo-item-{item.number}", info="A (left) … I (right)"))
                coins.append(gr.Markdown(_coins_md(item.number, 1), elem_id=f"svo-coins-{item.number}"))
        score_btn = gr.Button("Submit my choices", variant="primary", elem_id="svo-submit")
        person_md = gr.Markdown(elem_id="svo-person-result")
        person_json = gr.JSON(label="Your result", visible=False)  # for the API; the tab shows the text above
    circle = gr.Plot(label="SVO circle", elem_id="svo-circle")
    draw_on_load(svo.svo_circle_figure, circle)  # the empty circle, drawn when a page loads (issue 19)

    for item, slider, coin in zip(svo.ITEMS, sliders, coins, strict=True):
        slider.change(lambda pos, n=item.number: _coins_md(n, pos), slider, coin, queue=False,
                      api_visibility="private", show_progress="hidden")

    @ui_errors
    def score_person(*positions):
        choices = [check_int(p, f"item {i} position", 1, 9) - 1 for i, p in enumerate(positions, start=1)]
        score = svo.score_choices(choices)
        point = _person_point(score)
        return _score_md(score), score.as_dict(), svo.svo_circle_figure([point]), point

    # Cheap: no model, so it stays off the shared model queue slot and answers during a generation.
    score_btn.click(score_person, sliders, [person_md, person_json, circle, person], api_name="svo_score")

    # -- a model plays ------------------------------------------------------------------
    with gr.Accordion("A model plays (Target model from the Models panel)", open=True):
        with gr.Row():
            orientation = gr.Dropdown([(o.name, o.key) for o in SVO_ORIENTATIONS], value="prosocial",
                                      label="Induced orientation", elem_id="svo-orientation")
            temperature = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature")
            seed = gr.Number(value=0, precision=0, label="Seed")
            goal_tokens = gr.Slider(8, 128, value=48, step=8, label="Goal length (tokens)")
        with gr.Row():
            with_goal = gr.Checkbox(value=True, label="Self-generated goal (off: HVAE's no-goal condition)")
            protocol = gr.Dropdown(PROTOCOL_CHOICES, value=svo.DEFAULT_PROTOCOL, label="Protocol")
        play_btn = gr.Button("Let the model play", variant="primary", elem_id="svo-play")
        play_md = gr.Markdown(elem_id="svo-play-result")
        play_json = gr.JSON(label="Model's trial", visible=False)  # for the API; the tab shows the table above
        with gr.Accordion("What value rationality is here (HVAE's form, this project's D and targets)", open=False):
            gr.Markdown(svo.vr_formula_markdown())

    @ui_errors
    def play(orient, temp, seed_value, tokens, spec, creds, person_point, goal=True, proto=svo.DEFAULT_PROTOCOL,
             progress=gr.Progress()):
        model = resolve_model(spec, creds)
        trials = svo.play_trials(model, [orient], 1, check_float(temp, "temperature", 0, 2),
                                 check_int(seed_value, "seed", 0, 2**31 - 1),
                                 max_new_tokens=check_int(tokens, "goal tokens", 1, 512),
                                 progress=progress_callback(progress, "model plays"), protocol=proto,
                                 conditions=["goal" if goal else "no_goal"])
        points = ([person_point] if person_point else []) + svo.trial_points(trials)
        return (_trial_md(trials[0], model), svo.play_result(model, orient, trials, temp),
                svo.svo_circle_figure(points))

    play_btn.click(play, [orientation, temperature, seed, goal_tokens, ctx.target, ctx.creds, person, with_goal,
                          protocol],
                   [play_md, play_json, circle], api_name="svo_play", **ctx.model_event())

    # -- repeated trials ------------------------------------------------------------------
    with gr.Accordion("Repeated trials", open=False):
        with gr.Row():
            models_box = gr.Textbox(label="Models (one spec per line; empty = Target model)", lines=2, scale=2)
            orients = gr.CheckboxGroup([(o.name, o.key) for o in SVO_ORIENTATIONS], value=list(ORIENTATION_KEYS),
                                       label="Orientations", scale=2)
        with gr.Row():
            n_trials = gr.Number(value=5, precision=0, label="Trials per orientation (1-200)")
            t_temp = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature",
                               info="at 0 every trial is the same")
            t_seed = gr.Number(value=0, precision=0, label="First seed (trial t uses seed + t)")
            t_tokens = gr.Slider(8, 128, value=48, step=8, label="Goal length (tokens)")
        with gr.Row():
            t_goal = gr.Checkbox(value=True, label="Self-generated goal (off: HVAE's no-goal condition)")
            t_protocol = gr.Dropdown(PROTOCOL_CHOICES, value=svo.DEFAULT_PROTOCOL, label="Protocol")
        trials_btn = gr.Button("Run trials", variant="primary", elem_id="svo-trials")
        trials_md = gr.Markdown(elem_id="svo-trials-result")
        table = gr.Dataframe(label="Per model and orientation (n and 95% intervals)", interactive=False,
                             elem_id="svo-trials-table")
        spread = gr.Plot(label="Spread of angles")
        trials_circle = gr.Plot(label="Trials on the SVO circle")
        csv_file = gr.File(label="Download per-trial CSV")
        trials_json = gr.JSON(label="Summary", visible=False)  # for the API; the tab shows the table

    @ui_errors
    def run_trials(spec_text, orient_keys, n, temp, first_seed, tokens, spec, creds, goal=True,
                   proto=svo.DEFAULT_PROTOCOL, progress=gr.Progress(), request: gr.Request = None,
                   profile: gr.OAuthProfile | None = None):
        if not orient_keys:
            raise InputError("choose at least one orientation")
        models = [resolve_model(s, creds) for s in _specs(spec_text, spec)]
        n = check_int(n, "trials per orientation", 1, 200)
        temp = check_float(temp, "temperature", 0, 2)
        first_seed = check_int(first_seed, "seed", 0, 2**31 - 1)
        kwargs = {"max_new_tokens": check_int(tokens, "goal tokens", 1, 512), "protocol": proto,
                  "conditions": ["goal" if goal else "no_goal"]}
        models = list({m.spec: m for m in models}.values())
        plan = [(i, o, t) for i in range(len(models)) for o in orient_keys for t in range(n)]
        report = progress_callback(progress, "trials")

        def play(units, *ms):  # all units: one batched run; after a Stop, the finished trials one by one
            if len(units) == len(plan):
                return svo.play_trials(list(ms), orient_keys, n, temp, first_seed, progress=report, **kwargs)
            return [dataclasses.replace(tr, trial=t) for i, o, t in units
                    for tr in svo.play_trials([ms[i]], [o], 1, temp, first_seed + t, **kwargs)]

        outcome = run_stoppable(plan, play, models, unit="trials")  # Stop keeps the finished trials (issue 12)
        if outcome.value is None:
            raise gr.Error(outcome.message())
        trials = outcome.value
        rows = svo.summary_table(trials)
        params = {"models": [m.spec for m in models], "orientations": list(orient_keys), "trials": n,
                  "temperature": temp, "seed": first_seed, "max_new_tokens": tokens,
                  "condition": "goal" if goal else "no_goal", "protocol": svo.load_protocol(proto).as_dict()}
        run_id = save_run(svo.trials_result(models, trials, params, svo.load_protocol(proto)), source="ui",
                          store=ctx.store, owner=request_owner(request, profile).id,
                          outcome=outcome)  # the visitor's run (issue 12)
        path = tempfile.NamedTemporaryFile(prefix=f"{run_id}-", suffix=".csv", delete=False).name
        svo.write_trials_csv(trials, path)
        failures = sum(r["parse_failures"] for r in rows)
        invalid = sum(r["invalid_trials"] for r in rows)
        answers = sum(r["answers"] for r in rows)
        lines = [outcome.message()] if outcome.stopped else []
        lines += [f"Run `{run_id}`: {len(trials)} trials · unreadable answers **{failures}** of {answers} · trials "
                 f"without an angle (not scored) **{invalid}** of {len(trials)}.",
                 f"Value rationality D: {svo.VR_SOURCE}. {svo.VR_DEFINITION}."]
        if temp == 0 and n > 1:
            lines.append("Temperature 0: every trial of a model and orientation is the same.")
        caveat = caveat_markdown(models)
        if caveat:
            lines.append(caveat)
        return ("\n\n".join(lines), svo.table_frame(rows), svo.svo_spread_figure(trials),
                svo.svo_circle_figure(svo.trial_points(trials), title="Trials on the SVO circle"), path,
                {"run_id": run_id, **params, "rows": rows, **outcome.marks()})

    trials_event = trials_btn.click(run_trials, [models_box, orients, n_trials, t_temp, t_seed, t_tokens, ctx.target, ctx.creds,
                                  t_goal, t_protocol],
                     [trials_md, table, spread, trials_circle, csv_file, trials_json], api_name="svo_trials",
                     **ctx.model_event())
    stop_button(trials_event, "svo-trials-stop", cancel=False, api_name="svo_trials_stop")  # keeps finished trials

    # -- HVAE's ablation: with and without the self-generated goal -----------------------------
    with gr.Accordion("Goal ablation (HVAE's main comparison)", open=False):
        gr.Markdown("The same trials (same seeds) played twice by the Target model: once stating its own goal, "
                    "which every item then quotes, and once with no goal. Per orientation, side by side, each "
                    "number with its n and 95% interval (bootstrap over trials; Wilson for hit rates).")
        with gr.Row():
            a_orients = gr.CheckboxGroup([(o.name, o.key) for o in SVO_ORIENTATIONS], value=list(ORIENTATION_KEYS),
                                         label="Orientations", scale=2)
            a_trials = gr.Number(value=3, precision=0, label="Trials per orientation and condition (1-200)")
            a_temp = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature")
        with gr.Row():
            a_seed = gr.Number(value=0, precision=0, label="First seed (trial t uses seed + t)")
            a_tokens = gr.Slider(8, 128, value=48, step=8, label="Goal length (tokens)")
            a_protocol = gr.Dropdown(PROTOCOL_CHOICES, value=svo.DEFAULT_PROTOCOL, label="Protocol")
        abl_btn = gr.Button("Run the ablation", variant="primary", elem_id="svo-ablation")
        abl_md = gr.Markdown(elem_id="svo-ablation-result")
        abl_table = gr.Dataframe(label="With and without the goal, per orientation", interactive=False,
                                 elem_id="svo-ablation-table")
        abl_paired = gr.Dataframe(label="Paired differences per orientation: with goal − no goal (same seeds, "
                                        "both trials valid; n and 95% paired-bootstrap interval)",
                                  interactive=False, elem_id="svo-ablation-paired")
        abl_spread = gr.Plot(label="Angles per trial")
        abl_json = gr.JSON(label="Ablation result", visible=False)  # for the API; the tab shows the table
    published_accordion("svo")

    @ui_errors
    def run_ablation(orient_keys, n, temp, first_seed, tokens, proto, spec, creds, progress=gr.Progress(),
                     request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        if not orient_keys:
            raise InputError("choose at least one orientation")
        model = resolve_model(spec, creds)
        result, trials = svo.ablation_with_trials(
            model, orient_keys, check_int(n, "trials per orientation", 1, 200), check_float(temp, "temperature", 0, 2),
            check_int(first_seed, "seed", 0, 2**31 - 1), max_new_tokens=check_int(tokens, "goal tokens", 1, 512),
            protocol=proto, progress=progress_callback(progress, "ablation"))
        rows = svo.ablation_rows(result)
        result.params["kind"] = "ablation"
        run_id = save_run(result, owner=request_owner(request, profile).id, source="ui", store=ctx.store)
        fails = result.failures[0]
        lines = [f"Run `{run_id}` · protocol `{result.protocol['name']}` · unreadable answers **{fails.failed}** of "
                 f"{fails.total} (counted, never scored).",
                 f"Value rationality D (lower = closer to the target): {svo.VR_SOURCE}. {svo.VR_DEFINITION}.",
                 "Category hits: valid trials whose SVO category is the induced orientation (this project's own "
                 "summary)."]
        lines += [f"**{c}**" for c in result.caveats]
        import pandas as pd

        paired = svo.paired_rows(result.extra["paired"])
        lines.append("Paired differences: " + svo.PAIRED_SOURCE + ".")
        return ("\n\n".join(lines), pd.DataFrame(rows), pd.DataFrame(paired), svo.svo_spread_figure(trials),
                {"run_id": run_id, **result.as_dict(), "table": rows, "paired": result.extra["paired"],
                 "paired_table": paired})

    abl_btn.click(run_ablation, [a_orients, a_trials, a_temp, a_seed, a_tokens, a_protocol, ctx.target, ctx.creds],
                  [abl_md, abl_table, abl_paired, abl_spread, abl_json], api_name="svo_ablation", **ctx.model_event())
