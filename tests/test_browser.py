"""What a person sees: the launched app in a real headless Chromium (Playwright).

Screenshots go to tests/artifacts/ (ignored by git). Each test checks the
elements a person needs, not just that the page loaded.
"""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def open_app(page, url: str) -> None:
    """Load the app and wait until the Models panel is interactive (Gradio keeps a stream open,
    so the network never goes idle)."""
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="load", timeout=120_000)
    page.locator("#test-model").wait_for(state="visible", timeout=120_000)


@pytest.fixture()
def page(browser, served_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    open_app(page, served_app[1])
    yield page
    context.close()


def test_models_panel_test_button_shows_reply_and_caveat(page, artifacts_dir):
    for label in ["Value dialogue", "SVO game", "Calibrate evaluator", "Value space", "Moral attack", "About"]:
        assert page.get_by_role("tab", name=label).is_visible()
    page.locator("#test-model").click()
    out = page.locator("#test-model-output")
    out.get_by_text("Reply:").wait_for(timeout=180_000)
    text = out.inner_text()
    assert "backend local" in text.replace("`", "") or "backend" in text
    assert "Demo model" in text
    page.screenshot(path=str(artifacts_dir / "models_panel.png"), full_page=True)
    assert (artifacts_dir / "models_panel.png").stat().st_size > 20_000


def test_bad_spec_shows_an_error_toast_not_a_traceback(page, artifacts_dir):
    spec = page.locator("#target-spec input")
    spec.fill("nonsense:model")
    spec.press("Enter")
    page.locator("#test-model").click()
    toast = page.get_by_text("unknown backend", exact=False).first
    toast.wait_for(timeout=30_000)
    assert "Traceback" not in page.content()
    page.screenshot(path=str(artifacts_dir / "models_panel_error.png"))


def _set_spec(page, elem_id: str, spec: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(spec)
    box.press("Enter")
    page.wait_for_timeout(300)


def test_typed_key_is_used_by_its_session_only_and_never_kept(browser, served_app, artifacts_dir, capfd):
    """Issue 8 secrets: a key typed in session A reaches the endpoint for A, is not used for
    session B, and appears in no file under the data and cache dirs, no log, no API response."""
    from tests.fault_server import FaultServer
    from valdemo.config import get_settings

    secret = "sk-valdemo-TYPED-7781-must-not-leak"
    with FaultServer(["ok"], reply="pong from endpoint") as server:
        a = browser.new_context()
        pa = a.new_page()
        open_app(pa, served_app[1])
        pa.get_by_text("OpenAI-compatible endpoint (this session only)").click()
        pa.get_by_label("Base URL").fill(server.base_url)
        pa.get_by_label("API key").fill(secret)
        pa.get_by_label("API key").press("Tab")
        _set_spec(pa, "target-spec", "openai:fault-model")
        pa.locator("#test-model").click()
        pa.locator("#test-model-output").get_by_text("pong from endpoint").wait_for(timeout=60_000)
        assert server.requests[-1]["headers"]["authorization"] == f"Bearer {secret}"
        pa.screenshot(path=str(artifacts_dir / "session_key.png"))

        b = browser.new_context()
        pb = b.new_page()
        open_app(pb, served_app[1])
        _set_spec(pb, "target-spec", f"openai:fault-model@{server.base_url}")
        pb.get_by_label("Test message").fill("A different question, so the cache cannot answer it.")
        calls_before = server.calls
        pb.locator("#test-model").click()
        pb.locator("#test-model-output").get_by_text("pong from endpoint").wait_for(timeout=60_000)
        assert server.calls == calls_before + 1
        assert server.requests[-1]["headers"]["authorization"] != f"Bearer {secret}"
        for page in (pa, pb):
            assert secret not in page.locator("#test-model-output").inner_text()
        assert secret not in pb.content()
        a.close()
        b.close()
    settings = get_settings()
    from pathlib import Path

    for root in {settings.data_dir, settings.cache_path.parent, settings.db_path.parent}:
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
