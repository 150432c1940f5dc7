"""Sign in with Hugging Face: who the visitor is, and their own token for ``hf:`` models.

Gradio keeps the sign-in (profile and access token) in the visitor's session cookie. Both are
read here, inside a handler, from the request Gradio is serving: the username is how every tab
finds the visitor's owner (:func:`valdemo.ui.common.request_owner`, whether or not the handler
asked Gradio for a ``gr.OAuthProfile``); the token goes into the handler's
:class:`~valdemo.models.Credentials`, and only an ``hf:`` model uses it, for the router, and
nowhere else (not logged, stored, cached, or sent back to the browser).
"""

from __future__ import annotations

from typing import Any


def _session_info(request: Any = None) -> dict:
    """The signed-in visitor's OAuth info for ``request`` (default: the request being served);
    {} when nobody is signed in, the sign-in has expired, or no request is being served."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    if request is None:
        return {}
    try:  # Gradio's own reading of the session, as for an injected gr.OAuthProfile / gr.OAuthToken (gradio 6.x)
        from gradio.helpers import _session_from_request
        from gradio.oauth import _get_valid_oauth_info_from_session

        info = _get_valid_oauth_info_from_session(_session_from_request(request))
    except Exception:  # noqa: BLE001 - no session middleware, or Gradio moved these: not signed in
        return {}
    return info if isinstance(info, dict) else {}


def session_hf_token() -> str:
    """The signed-in visitor's Hugging Face token for the request being served ("" when nobody is
    signed in, the sign-in has expired, or no request is being served)."""
    token = _session_info().get("access_token")
    return token if isinstance(token, str) else ""


def session_hf_username(request: Any = None) -> str:
    """The signed-in visitor's Hugging Face username ("" when nobody is signed in)."""
    userinfo = _session_info(request).get("userinfo")
    name = userinfo.get("preferred_username") if isinstance(userinfo, dict) else None
    return name if isinstance(name, str) else ""
