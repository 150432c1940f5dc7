"""What a person sees: the launched app in a real headless Chromium (Playwright).

Screenshots go to tests/artifacts/ (ignored by git). Each test checks the
elements a person needs, not just that the page loaded.
"""

import pytest

from tests.conftest import files_containing

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
        assert server.requests[-1]["headers"].get("authorization") != f"Bearer {secret}"
        for page in (pa, pb):
            assert secret not in page.locator("#test-model-output").inner_text()
        assert secret not in pb.content()
        a.close()
        b.close()
    settings = get_settings()
    # Read by a child process (conftest.files_containing): see its docstring.
    roots = sorted({str(settings.data_dir), str(settings.cache_path.parent), str(settings.db_path.parent)})
    assert files_containing(secret, *roots) == []
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err


def _open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()
    page.wait_for_timeout(500)


def _set_slider(page, label: str, value) -> None:
    box = page.get_by_label(f"number input for {label}", exact=True)
    box.fill(str(value))
    box.press("Tab")


def _plot_has_traces(locator) -> bool:
    return locator.locator(".js-plotly-plot, .plot-container, svg").count() > 0


def test_svo_sliders_a_person_plays(page, artifacts_dir):
    _open_tab(page, "SVO game")
    positions = [9, 5, 5, 5, 5, 5]  # item 1 at I: the other person gets 15
    for n, pos in enumerate(positions, start=1):
        number = page.locator(f"#svo-item-{n} input[type=number]")
        number.fill(str(pos))
        number.press("Tab")
    page.locator("#svo-coins-1").get_by_text("other 15").wait_for(timeout=30_000)
    page.locator("#svo-submit").click()
    result = page.locator("#svo-person-result")
    result.get_by_text("Angle").wait_for(timeout=60_000)
    assert "category" in result.inner_text()
    assert _plot_has_traces(page.locator("#svo-circle"))
    page.screenshot(path=str(artifacts_dir / "svo.png"), full_page=True)


def test_vum_live_evaluation(page, artifacts_dir):
    _open_tab(page, "Value dialogue")
    page.locator("#vum-live-run").click()
    scores = page.locator("#vum-scores")
    scores.get_by_text("Know-why rate", exact=False).first.wait_for(timeout=600_000)
    assert page.locator("#vum-answer").inner_text().strip()
    assert "Demo model" in page.content()
    page.screenshot(path=str(artifacts_dir / "vum_live.png"), full_page=True)


def test_value_space_plot(page, artifacts_dir):
    _open_tab(page, "Value space")
    page.locator("#univar-project").click()
    plot = page.locator("#univar-plot")
    plot.locator(".js-plotly-plot, .plot-container").first.wait_for(timeout=300_000)
    assert plot.locator(".scatterlayer .trace, .scatter, g.trace").count() > 0
    page.screenshot(path=str(artifacts_dir / "value_space.png"), full_page=True)


def test_moral_attack_round(page, artifacts_dir):
    _open_tab(page, "Moral attack")
    page.get_by_text("Budget and sampling", exact=True).click()
    for label, value in [("Rounds", 1), ("Candidates per round", 1), ("Samples per prompt (K)", 1),
                         ("Max new tokens (continuations)", 16), ("Max new tokens (prompts, instructions)", 32),
                         ("Max new tokens (judge)", 8)]:
        _set_slider(page, label, value)
    page.locator("#denevil-attack").click()
    summary = page.locator("#denevil-attack-summary")
    summary.get_by_text("re-scored on fresh samples", exact=False).first.wait_for(timeout=600_000)
    assert page.locator("#denevil-continuations").is_visible()  # continuations behind a closed notice
    page.screenshot(path=str(artifacts_dir / "moral_attack.png"), full_page=True)
