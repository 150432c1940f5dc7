"""Gradio's MCP server, opt-in with VALDEMO_MCP=1 (issue 18): the named endpoints become MCP tools
that run the same handlers, so the public-mode rules hold for them. A real MCP client (the `mcp`
package) talks to the launched app over streamable HTTP."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.fault_server import FaultServer
from valdemo.config import Settings


def test_mcp_is_off_unless_asked(monkeypatch):
    from valdemo.ui import launch_kwargs

    monkeypatch.delenv("VALDEMO_MCP", raising=False)
    assert "mcp_server" not in launch_kwargs(Settings.from_env())
    monkeypatch.setenv("VALDEMO_MCP", "1")
    assert launch_kwargs(Settings.from_env())["mcp_server"] is True


@pytest.fixture(scope="module")
def mcp_app(settings):
    """The app in public mode with the MCP server on; the server-configured endpoint (with the server's
    key) is a loopback stand-in (a test double that records what arrives)."""
    pytest.importorskip("mcp", reason="the MCP server needs the `mcp` package (requirements-dev.txt)")
    from tests.conftest import free_port
    from valdemo.config import reload_settings
    from valdemo.ui import build_app, launch_kwargs

    allowed = FaultServer(reply="configured endpoint says hi").__enter__()
    mp = pytest.MonkeyPatch()
    mp.setenv("VALDEMO_MCP", "1")
    mp.setenv("VALDEMO_PUBLIC", "1")
    mp.setenv("OPENAI_BASE_URL", allowed.base_url)
    mp.setenv("OPENAI_API_KEY", "sk-server-key-for-mcp-test")
    s = reload_settings()
    demo = build_app(s)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                **launch_kwargs(s))
    try:
        yield demo.local_url.rstrip("/"), allowed
    finally:
        demo.close()
        allowed.__exit__(None, None, None)
        mp.undo()
        reload_settings()


async def _tools_and_calls(url: str, calls: list[tuple[str, dict]]):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(f"{url}/gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = [t.name for t in (await session.list_tools()).tools]
            name = next(t for t in tools if t.endswith("test_model"))
            results = []
            for spec, args in calls:
                res = await session.call_tool(name, {"spec": spec, **args})
                results.append((res.isError, " ".join(getattr(c, "text", "") for c in res.content)))
            return tools, results


def test_mcp_tools_run_the_same_handlers_under_the_public_mode_rules(mcp_app):
    """Gradio's MCP schema lists a spec dropdown's choices as an enum, so over MCP only the offered
    specs can be used (a visitor URL cannot even be typed); an offered one runs the same handler."""
    url, configured = mcp_app
    calls = [
        ("openai:m@http://127.0.0.1:9/v1", {"text": "hello"}),  # not an offered spec: refused
        ("openai:gpt-4o-mini", {"text": "hello"}),  # the server-configured endpoint: answers
    ]
    # In a thread of its own: an earlier test's Playwright (sync API) may hold this thread's loop.
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(out=asyncio.run(_tools_and_calls(url, calls))))
    worker.start()
    worker.join(300)
    tools, results = box["out"]
    assert any(t.endswith("test_model") for t in tools)
    (refused_err, refused), (ok_err, ok) = results
    assert refused_err and "is not one of" in refused, refused
    assert not ok_err and "configured endpoint says hi" in ok, ok
    assert len(configured.requests) == 1  # the refused call reached nobody
    assert configured.requests[0]["headers"]["authorization"] == "Bearer sk-server-key-for-mcp-test"
    assert "sk-server-key-for-mcp-test" not in ok  # never returned to the MCP caller
