"""Who owns a run, a set, a concept, a recognizer or an override (public-Space safety).

An :class:`Owner` is derived in the UI layer (``valdemo.ui.common.request_owner``) from the
Gradio request: the signed-in Hugging Face user where the Space has OAuth (``verified``), else
the browser session. Methods and the store take the plain ``owner.id`` string.

What survives a page reload:

* signed in (OAuth): the Hugging Face username, so a visitor finds their work again after a
  reload, on another device, or after a restart;
* public mode without OAuth: Gradio's ``session_hash``, which is new on every page load. A
  cookie-less Space cannot tell that the visitor who reloads is the one who came before, so
  their earlier runs are no longer theirs to see (they are kept, owned by the old session);
* local (not public) mode: one owner, ``local``, for everyone who can reach the app (the
  person running it on their own machine).

Rows written before owners existed carry :data:`LEGACY` (``''``): in public mode no visitor
sees them; locally they belong to the local owner.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: Owner of rows written before owners existed (visible to no visitor in public mode).
LEGACY = ""
#: The one owner of a local (not public) app without sign-in.
LOCAL_ID = "local"

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class Owner:
    """``id`` is what the store keeps; ``name`` is what is shown; ``verified`` is True only
    for a signed-in Hugging Face user (a name nobody else can claim)."""

    id: str
    name: str
    verified: bool

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("an owner needs a non-empty id (the empty id marks legacy rows)")


LOCAL = Owner(LOCAL_ID, "local", False)


def hf_owner(username: str) -> Owner:
    """The owner for a signed-in Hugging Face user (verified)."""
    username = (username or "").strip()
    if not _USERNAME.match(username):
        raise ValueError(f"not a Hugging Face username: {username!r}")
    return Owner(f"hf:{username}", username, True)


def session_owner(session_hash: str) -> Owner:
    """The owner for an anonymous browser session (unverified; lasts until the page reloads).

    The id is a digest of the session hash, so the hash itself (which lets a client join the
    session's queue) is never stored or shown."""
    session_hash = (session_hash or "").strip()
    if not session_hash:
        raise ValueError("no session: the request carries no session hash")
    digest = hashlib.sha256(session_hash.encode("utf-8")).hexdigest()[:16]
    return Owner(f"session:{digest}", f"visitor-{digest[:6]}", False)


def derive_owner(username: str | None, session_hash: str | None, public: bool) -> Owner:
    """Signed-in user first; else in public mode the browser session; else the local owner."""
    if username:
        return hf_owner(username)
    if public:
        return session_owner(session_hash or "")
    return LOCAL


def readable_owners(owner_id: str, public: bool) -> tuple[str, ...]:
    """The owner ids whose rows ``owner_id`` may read: its own; locally also the legacy rows."""
    if public:
        return (owner_id,) if owner_id else ()
    return (owner_id, LEGACY) if owner_id != LEGACY else (LEGACY,)


def can_read(row_owner: str, owner_id: str, public: bool) -> bool:
    """True if a row owned by ``row_owner`` is visible to ``owner_id``."""
    return row_owner in readable_owners(owner_id, public)


def is_public(env: dict | None = None) -> bool:
    """Public mode: on when ``SPACE_ID`` is set or ``VALDEMO_PUBLIC`` is 1/true/yes/on."""
    import os

    env = os.environ if env is None else env
    if (env.get("SPACE_ID") or "").strip():
        return True
    return (env.get("VALDEMO_PUBLIC") or "").strip().lower() in {"1", "true", "yes", "on"}


def annotator_label(name: str, verified: bool) -> str:
    """How an annotator is shown in exports and agreement tables: unverified names say so."""
    return name if verified else f"{name} (unverified)"


class OwnerError(ValueError):
    """An action for an identity the visitor does not hold (shown to them as a plain message)."""


def resolve_annotator(owner: Owner, name: str | None, signin: bool) -> tuple[str, bool]:
    """The annotator name a label or an undo is recorded under, and whether it is verified.

    With sign-in on, the annotator is the signed-in Hugging Face user: nobody signed in, or a
    different name typed (or sent through the API), is refused. Without sign-in, the typed name
    is kept as given and marked unverified (anyone could have typed it)."""
    name = (name or "").strip()
    if signin:
        if not owner.verified:
            raise OwnerError("sign in with Hugging Face to label: on this Space labels are kept under your "
                             "Hugging Face name")
        if name and name != owner.name:
            raise OwnerError(f"you are signed in as {owner.name!r}: you can label or undo only as yourself, "
                             f"not as {name!r}")
        return owner.name, True
    return name, False
