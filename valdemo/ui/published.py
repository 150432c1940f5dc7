"""The papers' own figures beside a tab's results (issue 18), labelled "published", never mixed with this app's."""

from __future__ import annotations

import gradio as gr

from ..reference import METHODS, published_markdown

TITLE = "Published results (the paper's own figures, not this app's)"


def published_accordion(method: str) -> gr.Accordion:
    """A closed accordion with the paper's figures (or why none is shipped); elem_id ``<method>-published``."""
    with gr.Accordion(TITLE, open=False, elem_id=f"{method}-published") as box:
        gr.Markdown(published_markdown(method))
    return box


def published_all_accordion(elem_id: str) -> gr.Accordion:
    """Every paper's figures in one closed accordion (the Profile tab: all five methods side by side)."""
    with gr.Accordion("Published results of the five papers (their own figures, not this app's)", open=False,
                      elem_id=elem_id) as box:
        for method in METHODS:
            gr.Markdown(published_markdown(method))
    return box
