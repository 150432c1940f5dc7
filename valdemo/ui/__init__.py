"""The Gradio app: a Models panel above six tabs. One module per tab, each ``build(ctx)``."""

from __future__ import annotations

import importlib

import gradio as gr

from ..config import Settings, get_settings
from ..store import get_store
from . import models_panel
from .common import Context, oauth_enabled

#: (tab label, module in valdemo.ui, element id)
TABS = [
    ("Value dialogue", "vum", "tab-vum"),
    ("SVO game", "svo", "tab-svo"),
    ("Calibrate evaluator", "clave", "tab-clave"),
    ("Value space", "univar", "tab-univar"),
    ("Moral attack", "denevil", "tab-denevil"),
    ("Value profile", "profile", "tab-profile"),
    ("Runs", "runs", "tab-runs"),
    ("About", "about", "tab-about"),
]

CSS = """
#models-panel { margin-bottom: 0.5rem; }
.caveat { font-size: 0.9em; }
/* Table headers never break inside a word ("kno w why"): the column grows, or the table scrolls. */
th, th * { white-space: nowrap !important; word-break: keep-all !important; overflow-wrap: normal !important; }
/* An output (plot, file, JSON) with nothing to show yet is hidden, not drawn as an empty box with an
   icon (issue 18); it appears when a result fills it. Only a block whose own child is Gradio's empty
   placeholder: a container holding one stays visible. */
.block:has(> .empty), .block:has(> .empty-wrapper) { display: none !important; }
/* A table in a Markdown block never breaks a word across lines ("Hedoni sm"): too wide, it scrolls. */
.md table { display: block; max-width: 100%; overflow-x: auto; }
.md td, .md td * { white-space: nowrap !important; word-break: normal !important; overflow-wrap: normal !important; }
/* Likewise an output table with headers and no row yet (every Dataframe here is an output). */
.block:has(> .table-container.no-rows) { display: none !important; }
"""


def build_app(settings: Settings | None = None) -> gr.Blocks:
    """Build the whole app. Loads no model: models load on first use."""
    settings = settings or get_settings()
    store = get_store(settings.db_path)
    with gr.Blocks(title="valdemo: human values of language models") as demo:
        # Beyond max_size waiting requests, Gradio refuses new ones: the page says "This application
        # is currently busy. Please try again.", the Python client raises "Queue is full! Please try again."
        # Set here, before any component: queue() rebuilds the server app, which costs a full config
        # pass over every component when called after the build (issue 19: ~0.3 s of start-up).
        demo.queue(default_concurrency_limit=4, max_size=settings.queue_max_size)
        gr.Markdown("# valdemo · human values of language models")
        if oauth_enabled():  # Hugging Face sign-in: labels, runs and sets are kept under your name
            gr.LoginButton(elem_id="login")
        target, judge, creds, _ = models_panel.build(settings)
        ctx = Context(settings=settings, store=store, target=target, judge=judge, creds=creds)
        with gr.Tabs():
            for label, module_name, elem_id in TABS:
                with gr.Tab(label, id=module_name, elem_id=elem_id):
                    importlib.import_module(f"{__name__}.{module_name}").build(ctx)
    return demo


def launch_kwargs(settings: Settings | None = None) -> dict:
    """Settings for ``demo.launch`` shared by app.py, `make run` and tests."""
    settings = settings or get_settings()
    return {
        "css": CSS,
        "run_history": False,  # runs could hold a typed API key; keep nothing in the browser
        "max_file_size": f"{int(settings.max_upload_mb * 1024)}kb",
        "footer_links": ["api", "gradio"],
        # VALDEMO_MCP=1: the named endpoints also become MCP tools; they run the same handlers, so
        # the same key, endpoint and public-mode rules hold for them (issue 18).
        **({"mcp_server": True} if settings.mcp else {}),
    }
