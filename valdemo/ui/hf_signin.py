"""Sign in with Hugging Face: the visitor's own token for ``hf:`` models on the inference router.

Gradio keeps the sign-in (profile and access token) in the visitor's session cookie. The token
is read here, inside a handler, from the request Gradio is serving, into the handler's
:class:`~valdemo.models.Credentials`; only an ``hf:`` model uses it, for the router, and nowhere else (not logged, stored,
cached, or sent back to the browser).
"""

from __future__ import annotations


def session_hf_token() -> str:
    """The signed-in visitor's Hugging Face token for the request being served ("" when nobody is
    signed in, the sign-in has expired, or no request is being served)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    if request is None:
        return ""
    try:  # Gradio's own reading of the session, as for an injected gr.OAuthToken (gradio 6.x)
        from gradio.helpers import _session_from_request
        from gradio.oauth import _get_valid_oauth_info_from_session

        info = _get_valid_oauth_info_from_session(_session_from_request(request))
    except Exception:  # noqa: BLE001 - no session middleware, or Gradio moved these: not signed in
        return ""
    token = (info or {}).get("access_token") if isinstance(info, dict) else None
    return token if isinstance(token, str) else ""
