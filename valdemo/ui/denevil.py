"""Moral attack tab (issue 7). Not built yet: this placeholder keeps the app shell whole."""

from __future__ import annotations

import gradio as gr


def build(ctx) -> None:
    gr.Markdown("**Moral attack** is being built (issue 7). The Models panel above already works.")
