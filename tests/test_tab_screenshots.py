"""Every tab on first load in a real headless Chromium (issue 18): table headers are never broken
inside a word ("kno w why"); no tab shows an empty output panel (a plot, file or JSON box with
nothing in it) on first load; the Profile tab opens with the example report of the bundled model,
labelled so, every panel filled; the Runs tab reopens a saved run.

Screenshots go to tests/artifacts/tab_<module>.png and example_report*.png (ignored by git); look at
them. The empty output panels found per tab are also written to tests/artifacts/empty_panels.json."""

from __future__ import annotations

import pytest

from valdemo.ui import TABS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: Tabs that must show no empty output panel on first load: all of them.
EMPTY_FREE = {label for label, _, _ in TABS}

#: Per visible <th> (and cell of a Markdown table): every word of its text must sit on one line (a word whose characters land on
#: two or more line boxes was broken). Also the visible empty-output placeholders, by label.
CHECK_JS = """
(root) => {
  const split = [], empty = [];
  for (const th of root.querySelectorAll('th, .md td')) {  // headers, and Markdown tables' cells
    const box = th.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const re = /\\S+/g;
      let m;
      while ((m = re.exec(node.textContent))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        const tops = [];
        for (const r of rects) if (!tops.some(t => Math.abs(t - r.top) < r.height / 2)) tops.push(r.top);
        if (tops.length > 1) split.push(`${th.innerText.trim()} (${m[0]} on ${tops.length} lines)`);
      }
    }
  }
  // Gradio draws an empty output (plot, file, JSON) as an ".empty" placeholder with an icon, and an
  // output table with no row yet as headers over an empty body.
  for (const el of root.querySelectorAll('.empty, .empty-wrapper, .table-container.no-rows')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const block = el.closest('.block');
    const label = block && block.querySelector('[data-testid="block-label"], label');
    const name = (label && label.innerText.trim()) || (block && block.id) || el.className.toString();
    if (!empty.includes(name)) empty.push(name);
  }
  return {split, empty};
}
"""


@pytest.fixture()
def page(browser, served_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _open(page, url: str) -> None:
    page.goto(url, wait_until="load", timeout=120_000)
    page.locator("#test-model").wait_for(state="visible", timeout=120_000)


def test_every_tab_on_first_load_has_whole_word_headers(page, served_app, artifacts_dir):
    import json

    _open(page, served_app[1])
    split, empty = {}, {}
    for label, module, elem_id in TABS:
        page.get_by_role("tab", name=label).click()
        page.locator(f"#{elem_id}").wait_for(state="visible")
        page.wait_for_timeout(1000)
        shot = artifacts_dir / f"tab_{module}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000
        found = page.locator(f"#{elem_id}").evaluate(CHECK_JS)
        split[label], empty[label] = found["split"], found["empty"]
    (artifacts_dir / "empty_panels.json").write_text(json.dumps(empty, indent=1, ensure_ascii=False))
    assert {k: v for k, v in split.items() if v} == {}
    assert {k: v for k, v in empty.items() if v and k in EMPTY_FREE} == {}


def test_the_profile_tab_opens_with_the_labelled_example_report(page, served_app, artifacts_dir):
    from playwright.sync_api import expect

    from valdemo.models import BUNDLED_CAVEAT

    _open(page, served_app[1])
    page.get_by_role("tab", name="Value profile").click()
    cards = page.locator("#profile-readout .vd-card")
    expect(cards).to_have_count(5, timeout=60_000)
    tab = page.locator("#tab-profile")
    assert "Example, bundled 135M demo model" in page.locator("#profile-readout").inner_text()
    assert "Example, bundled 135M demo model" in page.locator("#profile-status").inner_text()
    assert BUNDLED_CAVEAT in tab.inner_text()
    for method in ("vum", "svo", "univar", "denevil"):  # every plot drawn, none left empty
        page.locator(f"#profile-plot-{method} .js-plotly-plot").wait_for(timeout=60_000)
    headline = page.locator("#profile-headline").inner_text()
    from valdemo.ui.example_report import load_example

    shipped = load_example()  # the example's own numbers (it is rebuilt when the quick size changes)
    what = next(m for m in shipped["profiles"]["local"]["methods"]["vum"]["result"]["metrics"]
                if m["name"] == "know_what_acc")
    assert "know what" in headline and f"{what['value']:.3f}" in headline
    assert "Size quick (this project's choice)" in page.locator("#profile-status").inner_text()
    assert page.locator("#profile-download").is_visible()
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "example_report_tab.png"), full_page=True)
    assert tab.evaluate(CHECK_JS) == {"split": [], "empty": []}


def test_the_example_report_file_opens_offline(browser, artifacts_dir, tmp_path):
    from valdemo.ui.example_report import write_example_report

    report = write_example_report(tmp_path)["html"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    page.route("http*://**", lambda route: (outside.append(route.request.url), route.abort()))
    page.goto(report.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    assert "Example, bundled 135M demo model" in page.locator("#example-label").inner_text()
    assert page.locator(".vd-card").count() == 5 and page.locator("#published table").count() >= 1
    page.screenshot(path=str(artifacts_dir / "example_report_file.png"), full_page=True)
    found = page.locator("body").evaluate(CHECK_JS)
    page.close()
    assert outside == [] and found["split"] == []


def test_runs_tab_lists_opens_and_compares_a_saved_run(page, served_app, artifacts_dir):
    from playwright.sync_api import expect

    from tests.test_runs_view import a_result
    from valdemo.core.owner import LOCAL_ID
    from valdemo.core.runs import save_run

    first = save_run(a_result(k=1, n=4), owner=LOCAL_ID)
    second = save_run(a_result(k=9, n=10), owner=LOCAL_ID)
    _open(page, served_app[1])
    page.get_by_role("tab", name="Runs").click()
    table = page.locator("#runs-table")
    expect(table).to_contain_text(second, timeout=60_000)
    assert first in table.inner_text()
    pick = page.locator("#runs-pick input")
    pick.fill(first)
    pick.press("Enter")
    page.locator("#runs-open").click()
    metrics = page.locator("#runs-metrics")
    expect(metrics).to_contain_text("[0.046, 0.699]", timeout=60_000)
    assert "know-what accuracy" in metrics.inner_text()
    assert "know-what answers" in page.locator("#runs-failures").inner_text()
    assert "Demo model" in page.locator("#tab-runs").inner_text()
    page.locator("#runs-plot .js-plotly-plot").wait_for()
    page.get_by_text("Compare two runs").click()
    page.locator("#runs-compare").click()
    expect(page.locator("#runs-compare-table")).to_contain_text("[0.596, 0.982]", timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "tab_runs_opened.png"), full_page=True)
    found = page.locator("#tab-runs").evaluate(CHECK_JS)
    assert found == {"split": [], "empty": []}
