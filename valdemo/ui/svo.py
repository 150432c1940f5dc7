"""SVO game tab (issue 4). Not built yet: this placeholder keeps the app shell whole."""

from __future__ import annotations

import gradio as gr


def build(ctx) -> None:
    gr.Markdown("**SVO game** is being built (issue 4). The Models panel above already works.")
