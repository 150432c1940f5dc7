"""The papers' own figures beside a tab's results (issue 18), labelled "published", never mixed with this app's."""

from __future__ import annotations

import gradio as gr

from ..reference import published_markdown

TITLE = "Published results (the paper's own figures, not this app's)"


def published_accordion(method: str) -> gr.Accordion:
    """A closed accordion with the paper's figures (or why none is shipped); elem_id ``<method>-published``."""
    with gr.Accordion(TITLE, open=False, elem_id=f"{method}-published") as box:
        gr.Markdown(published_markdown(method))
    return box
