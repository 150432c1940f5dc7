"""What a person sees: the launched app in a real headless Chromium (Playwright).

Screenshots go to tests/artifacts/ (ignored by git). Each test checks the
elements a person needs, not just that the page loaded.
"""

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture()
def page(browser, served_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(served_app[1], wait_until="networkidle")
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
