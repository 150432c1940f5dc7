"""Calibrate evaluator tab (issue 5). Not built yet: this placeholder keeps the app shell whole."""

from __future__ import annotations

import gradio as gr


def build(ctx) -> None:
    gr.Markdown("**Calibrate evaluator** is being built (issue 5). The Models panel above already works.")
