"""Values drawn when a page loads instead of while the app is built (issue 19: start-up time).

Plotly figures cost ~0.3 s each to build, the first one more; a tab that shows a figure from the
start draws it on the page's load event instead, once per process (``fn`` is cached here). The
event is private (no API endpoint, no MCP tool) and skips the queue, so a long model job never
delays it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import gradio as gr
from gradio.context import Context


def draw_on_load(fn: Callable[[], object], *outputs: gr.components.Component) -> None:
    """Fill ``outputs`` with ``fn()`` when a page loads; ``fn`` runs once per process, then cached."""
    root = Context.root_block  # the app being built (tabs are always built inside it)
    root.load(functools.cache(fn), None, list(outputs), queue=False, api_visibility="private",
              show_progress="hidden")
