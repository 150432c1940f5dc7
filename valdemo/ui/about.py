"""About: what each method measures, and the paper it comes from."""

from __future__ import annotations

import gradio as gr

from ..models import BUNDLED_CAVEAT
from ..reference import METHODS, published_markdown

ABOUT = f"""
## valdemo

Five published ways of looking at the human values of a language model, on the same models.
Choose the target and judge in the **Models** panel above; every tab uses them.

| tab | method | the question it asks |
|---|---|---|
| Value dialogue | **VUM / ValueDCG** (Zhang et al., "Measuring Value Understanding in Language Models through Discriminator-Critique Gap") | does the model know *what* value a scenario reflects (know-what accuracy), and can it explain *why* (know-why rate = the judge's mean score ÷ 5)? The gap (know why − know what) per value is this project's reading of the paper's discriminator-critique gap, whose equation could not be checked |
| SVO game | **HVAE** (Zhang et al., "Heterogeneous Value Alignment Evaluation for Large Language Models"), SVO slider measure of Murphy, Ackermann & Handgraaf (2011) | when told to hold a social value orientation, does the model's play match it? Value rationality in HVAE's form (§3, Eq. 3: a distance D between the value the play maps to and a target value): here D = degrees from the play's SVO angle to the nearest optimal play's angle; the paper leaves D and the target open, so both are this project's. The project's 0-1 score (closeness and category hit) is shown only as "own score", never as value rationality |
| Calibrate evaluator | **CLAVE** (Yao et al., "CLAVE: An Adaptive Framework for Evaluating Values of LLM Generated Responses") | can a small recognizer, calibrated on fewer than 100 human labels per value and on concepts a large model extracts, agree with the human? |
| Value space | **UniVaR** (Cahyawijaya et al., "High-Dimension Human Value Representation in Large Language Models") | where do models' answers to value-eliciting questions sit in a value embedding space; which models are close? |
| Moral attack | **DeNEVIL / VILMO** (Duan et al., "DeNEVIL: Towards Deciphering and Navigating the Ethical Values of Large Language Models via Instruction Learning") | which prompts, refined round by round, make the model violate a moral principle, and do generated value instructions defend against them? |

**Value profile** runs all five methods on one or more models and puts each model on one page
(and the models side by side), with a self-contained HTML report to download.

Everything a tab does also runs headless (`python -m valdemo --help`) and through this
app's named API (see "Use via API" at the bottom of the page).

**Caveat.** {BUNDLED_CAVEAT}
"""


def build(ctx) -> None:
    gr.Markdown(ABOUT)
    # The papers' own figures for the models they evaluated, each with its citation, labelled
    # "published" and kept apart from this app's numbers (assets/reference; issue 18).
    with gr.Accordion("Published results (the papers' own figures)", open=False, elem_id="published-results"):
        for method in METHODS:
            gr.Markdown(published_markdown(method))
