"""Value dialogue tab (issue 3). Not built yet: this placeholder keeps the app shell whole."""

from __future__ import annotations

import gradio as gr


def build(ctx) -> None:
    gr.Markdown("**Value dialogue** is being built (issue 3). The Models panel above already works.")
