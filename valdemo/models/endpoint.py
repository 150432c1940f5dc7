"""Which endpoint a request goes to, which key it may carry, and (in public mode) whether it may go at all.

Three rules, kept here so the registry, the cache and the Models panel agree:

* Keys are bound to endpoints. The server's ``OPENAI_API_KEY`` goes only to the
  server-configured base URL (``OPENAI_BASE_URL``, else the provider default).
  A base URL written in a spec or typed in the panel gets the visitor's own key
  or none. ``HF_TOKEN`` is never sent to an OpenAI-compatible endpoint at all.
* Endpoints are compared, and cached answers keyed, by a normalised base URL:
  scheme, lowercase host, port (explicit), path without a trailing slash.
* In public mode (``SPACE_ID`` set or ``VALDEMO_PUBLIC=1``) a visitor's base URL
  must resolve only to public addresses, unless its origin is listed in
  ``VALDEMO_ALLOWED_BASE_URLS``. The check runs when the model is made and again
  at every TCP connect (so a name that re-resolves to a private address later is
  still refused), and redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..config import get_settings
from .base import ModelError, ModelSpecError

DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Cloud metadata services, named in messages (the address checks refuse them anyway).
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"): "cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "cloud metadata service",
    ipaddress.ip_address("100.100.100.200"): "cloud metadata service",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ModelRefused(ModelError):
    """A model or endpoint this instance will not use (public-mode rules); the message says why."""


def normalise_base_url(url: str) -> str:
    """``scheme://host:port/path``: lowercase scheme and host, explicit port, no trailing slash.

    Raises :class:`ModelSpecError` for URLs a base URL cannot be (no http(s), no host,
    a bad port, user:password in the URL, a query or fragment).
    """
    raw = (url or "").strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ModelSpecError(f"base URL {raw!r} is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ModelSpecError(f"base URL {raw!r} must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise ModelSpecError("a base URL must not carry a user name or password; put the key in the API key box")
    if parts.query or parts.fragment:
        raise ModelSpecError(f"base URL {raw!r} must not have a query (?) or fragment (#)")
    host = parts.hostname.lower().rstrip(".")
    port = port or (443 if scheme == "https" else 80)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def origin(url: str) -> str:
    """``scheme://host:port`` of a base URL (normalised)."""
    norm = normalise_base_url(url)
    scheme, rest = norm.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def host_of(url: str) -> str:
    """The host (and port, where it is not the default) for messages."""
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1] or url


def configured_base_url() -> str:
    """The server-configured base URL: ``OPENAI_BASE_URL``, else the provider default."""
    return os.environ.get("OPENAI_BASE_URL", "").strip() or DEFAULT_BASE_URL


def is_configured(url: str) -> bool:
    """True when ``url`` is the server-configured endpoint (compared normalised)."""
    try:
        return normalise_base_url(url) == normalise_base_url(configured_base_url())
    except ModelSpecError:
        return False


@dataclass(frozen=True)
class KeyChoice:
    """The key a request to one endpoint carries, and a note for the person when a key was withheld."""

    api_key: str | None
    note: str = ""


def key_for(base_url: str, visitor_key: str = "") -> KeyChoice:
    """The visitor's key if they gave one; the server's key only for the configured endpoint."""
    if visitor_key:
        return KeyChoice(visitor_key)
    if is_configured(base_url):
        return KeyChoice(os.environ.get("OPENAI_API_KEY", "").strip() or None)
    if os.environ.get("OPENAI_API_KEY", "").strip():
        return KeyChoice(None, withheld_note(base_url))
    return KeyChoice(None)


def withheld_note(base_url: str) -> str:
    return (f"no key will be sent to {host_of(base_url)}: the server's key only goes to "
            f"{host_of(configured_base_url())}; enter your own key in the Models panel for this URL")


# -- public mode ---------------------------------------------------------------------
def public_mode() -> bool:
    return get_settings().public


def allowed_origins() -> set[str]:
    """Origins listed in ``VALDEMO_ALLOWED_BASE_URLS`` (a bad entry is a clear error)."""
    out = set()
    for entry in get_settings().allowed_base_urls:
        try:
            out.add(origin(entry))
        except ModelSpecError as exc:
            raise ModelSpecError(f"VALDEMO_ALLOWED_BASE_URLS: {exc}") from exc
    return out


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a visitor's request must not go to ``ip`` (None: a public address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return address_problem(ip.ipv4_mapped)
        if ip in _NAT64:
            return address_problem(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in METADATA_ADDRESSES:
        return METADATA_ADDRESSES[ip]
    for flag, name in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                       ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                       ("is_private", "private network"), ("is_reserved", "reserved")):
        if getattr(ip, flag):
            return name
    if not ip.is_global:
        return "not a public address"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ModelRefused(f"cannot resolve {host!r}: {exc}") from exc
    seen: list[str] = []
    for info in infos:
        addr = info[4][0].split("%", 1)[0]
        if addr not in seen:
            seen.append(addr)
    return seen


def refusal(url: str, address: str, why: str) -> str:
    return (f"refused {host_of(url)}: it resolves to {address} ({why}). On a public instance "
            f"valdemo only calls public addresses; the server's owner can allow this endpoint "
            f"by adding {origin(url)} to VALDEMO_ALLOWED_BASE_URLS")


def check_public_address(host: str, port: int, url: str) -> list[str]:
    """Resolve ``host`` and refuse if any address is not public; returns the checked addresses."""
    addresses = resolve(host, port)
    for addr in addresses:
        why = address_problem(ipaddress.ip_address(addr))
        if why:
            raise ModelRefused(refusal(url, addr, why))
    return addresses


def check_visitor_url(url: str) -> None:
    """In public mode, refuse a visitor's base URL that reaches a non-public address."""
    if not public_mode() or is_configured(url):
        return
    if origin(url) in allowed_origins():
        return
    parts = urlsplit(normalise_base_url(url))
    check_public_address(parts.hostname or "", parts.port or 0, url)


def needs_guard(url: str) -> bool:
    """Whether connections to ``url`` must be re-checked at connect time."""
    return public_mode() and not is_configured(url)


class ConnectGuard:
    """An httpcore network backend that checks every address right before it connects.

    Connects to the very address it checked, so a host that resolves to a public
    address for the first check and to a private one a moment later is still refused.
    Hosts of allow-listed origins pass unchecked.
    """

    def __init__(self, url: str):
        import httpcore2

        self._inner = httpcore2.SyncBackend()
        self._url = url
        self._allowed = {tuple(o.rsplit(":", 1)) for o in (x.split("://", 1)[1] for x in allowed_origins())}

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        import httpcore2

        host_s = host.decode() if isinstance(host, bytes) else str(host)
        bare = host_s.strip("[]").lower()
        if (bare, str(port)) in self._allowed or (f"[{bare}]", str(port)) in self._allowed:
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        last: Exception | None = None
        for addr in check_public_address(bare, port, self._url):
            try:
                return self._inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except httpcore2.ConnectError as exc:
                last = exc
        raise last or httpcore2.ConnectError(f"cannot connect to {host_s}")

    def connect_unix_socket(self, *args, **kwargs):
        raise ModelRefused("unix sockets are not used for visitor endpoints")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_transport(url: str):
    """An httpx transport whose every connection goes through :class:`ConnectGuard`."""
    import httpx2

    transport = httpx2.HTTPTransport(trust_env=False)
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):  # pragma: no cover - httpx internals moved
        raise ModelRefused("this httpx version cannot check connections; refusing visitor endpoints")
    pool._network_backend = ConnectGuard(url)
    return transport


# -- local models in public mode --------------------------------------------------------
def allowed_local_models() -> list[str]:
    """``local:<id>`` ids allowed in public mode (``local`` itself always is)."""
    settings = get_settings()
    if settings.allowed_local_models:
        return list(settings.allowed_local_models)
    out = [settings.hub_fallback_model]
    if settings.local_model:
        out.append(settings.local_model)
    out.append(str(Path(settings.cache_dir) / "models" / "smollm2-135m-instruct"))  # the bundled model, converted
    return out


def _same_local(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
    except OSError:
        return False


def check_local(name: str) -> None:
    """In public mode, refuse ``local:<name>`` unless ``name`` is allow-listed."""
    if not name or not public_mode():
        return
    allowed = allowed_local_models()
    if not any(_same_local(name, a) for a in allowed):
        shown = [a for a in allowed if not a.startswith(("/", "~", "."))]  # no server paths in messages
        raise ModelRefused(
            f"local:{name} is not available on this public instance; allowed: `local`"
            + "".join(f", `local:{a}`" for a in shown)
            + " (the server's owner sets VALDEMO_ALLOWED_LOCAL_MODELS)")
