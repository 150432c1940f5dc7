"""The Models panel: target and judge specs, optional per-session endpoint and key, a test button.

The API key is kept in this session's ``gr.State`` only: it is never logged,
stored, cached, or sent back to the browser.
"""

from __future__ import annotations

import gradio as gr

from ..inputs import check_text
from ..models import GenParams, ModelError, ModelSpecError, unwrap, user
from ..models.endpoint import (
    check_visitor_url,
    configured_base_url,
    host_of,
    is_configured,
    key_for,
    normalise_base_url,
    public_mode,
)
from ..models.hf_router import ready_models
from .common import caveat_markdown, oauth_enabled, resolve_model, ui_errors

SPEC_CHOICES = ["local", "openai:gpt-4o-mini", "openai:<model>@http://127.0.0.1:8000/v1"]


def set_creds(url: str, key: str) -> tuple[dict, str]:
    """The session's endpoint settings, and a note saying where requests (and which key) will go."""
    url, key = (url or "").strip(), (key or "").strip()
    if url:
        try:
            normalise_base_url(url)
        except ModelSpecError as exc:
            return {"base_url": "", "api_key": key}, f"⚠️ {exc}"
    if not (url or key):
        return {"base_url": "", "api_key": ""}, ""
    target = url or configured_base_url()
    where = f"base URL {url}" if url else f"the server's base URL ({host_of(target)})"
    if key:
        note = f"Using {where} with your key (this session only)."
    elif key_for(target).api_key:
        note = f"Using {where} with the server's key."
    else:
        withheld = key_for(target).note
        note = f"Using {where} without a key" + (f": {withheld}." if withheld else ".")
    if url and public_mode() and not is_configured(url):
        refused = _literal_refusal(url)
        if refused:
            return {"base_url": url, "api_key": key}, f"⚠️ {refused}"
        note += (" This is a public instance: the URL must reach a public address (or be allowed by "
                 "the server's owner), which is checked when a model uses it.")
    return {"base_url": url, "api_key": key}, note


def _literal_refusal(url: str) -> str:
    """The public-mode refusal for a URL whose host is an IP address or localhost (no DNS wait
    while typing); other hosts are checked when a model uses them."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            return ""
    try:
        check_visitor_url(url)
    except ModelError as exc:
        return str(exc)
    return ""


def build(settings) -> tuple[gr.Dropdown, gr.Dropdown, gr.State, dict]:
    creds = gr.State({})
    # A public instance refuses loopback URLs, so it does not offer one as the example.
    choices = [c.replace("http://127.0.0.1:8000", "https://<host>") for c in SPEC_CHOICES] if settings.public \
        else SPEC_CHOICES
    if oauth_enabled():  # signed-in visitors may use hosted open models with their own token (issue 18)
        choices = choices + ready_models()
    with gr.Accordion("Models", open=True, elem_id="models-panel"):
        with gr.Row():
            target = gr.Dropdown(choices, value=settings.default_target, allow_custom_value=True,
                                 label="Target model", info="the model under evaluation", elem_id="target-spec")
            judge = gr.Dropdown(choices, value=settings.default_judge, allow_custom_value=True,
                                label="Judge / large model", info="scores, extracts concepts, attacks",
                                elem_id="judge-spec")
        with gr.Accordion("OpenAI-compatible endpoint (this session only)", open=False):
            with gr.Row():
                base_url = gr.Textbox(label="Base URL", placeholder="http://127.0.0.1:8000/v1 (empty: OPENAI_BASE_URL)")
                api_key = gr.Textbox(label="API key", type="password",
                                     placeholder="kept in this browser session only; never stored")
            creds_note = gr.Markdown("")
        with gr.Row():
            message = gr.Textbox(value="In one sentence, what is honesty?", label="Test message", scale=4)
            test_btn = gr.Button("Test model", variant="secondary", scale=1, elem_id="test-model")
        test_out = gr.Markdown(elem_id="test-model-output")
        if oauth_enabled():
            gr.Markdown("Signed in with Hugging Face? Choose an `hf:<model id>` model: it runs on the Hugging "
                        "Face inference router with your own token (this session only; never stored). Not "
                        "signed in: use the button above.", elem_id="hf-models-note")

    for box in (base_url, api_key):
        box.change(set_creds, [base_url, api_key], [creds, creds_note], api_visibility="private", queue=False)

    @ui_errors
    def test_model(spec: str, text: str, creds_state: dict) -> str:
        text = check_text(text, "test message")
        model = resolve_model(spec, creds_state)
        reply = model.chat(user(text), GenParams(max_new_tokens=64))
        inner = unwrap(model)
        lines = [
            f"**Reply:** {reply.text.strip() or '(empty reply)'}",
            "",
            f"backend `{reply.backend}` · model `{reply.model}` · "
            f"latency {reply.latency_s:.2f} s{' · from cache' if reply.cached else ''}",
        ]
        caveat = caveat_markdown([inner])
        if caveat:
            lines += ["", caveat]
        return "\n".join(lines)

    test_btn.click(test_model, [target, message, creds], test_out, api_name="test_model",
                   concurrency_id="model", concurrency_limit=settings.model_events)
    return target, judge, creds, {"message": message, "test_btn": test_btn, "test_out": test_out}
