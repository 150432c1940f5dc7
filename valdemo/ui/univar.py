"""Value space tab (issue 6). Not built yet: this placeholder keeps the app shell whole."""

from __future__ import annotations

import gradio as gr


def build(ctx) -> None:
    gr.Markdown("**Value space** is being built (issue 6). The Models panel above already works.")
