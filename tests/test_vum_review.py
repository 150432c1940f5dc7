"""VUM judge-human agreement over saved rows (issue 14): any row of any saved VUM run (batch or
single) can be scored by a person; who scored is recorded; the agreement table (per know-why
part and pooled: kappa, alpha, correlations with n and intervals) covers the visitor's own
overridden rows. Real SQLite (a Store in tmp_path) and the launched app through its API.
"""

from __future__ import annotations

import pytest

from valdemo import vum
from valdemo.core.owner import LOCAL, hf_owner, session_owner
from valdemo.inputs import InputError


def _row(i: int, scores: dict | None, **extra) -> dict:
    row = {"id": f"item-{i}", "text": f"I did thing {i}.", "value": "POWER", "label": 1, "gold": "A",
           "pred": "A", "correct": True, "parse_ok": True}
    if scores is not None:
        row.update(scores=scores, parts={p: f"{p} text {i}" for p in vum.PARTS})
    return {**row, **extra}


@pytest.fixture()
def store(tmp_path):
    from valdemo.store import Store

    return Store(tmp_path / "review.db")


def _batch(store, owner: str, rows: list[dict], judge: str = "judge-model") -> str:
    """Saved as the VUM batch saves (a Result through valdemo.core.runs)."""
    from valdemo.core.runs import save_run

    res = vum.to_result(rows, {"target": "target-model", "judge": judge, "config": {"values": ["POWER"]}})
    return save_run(res, owner=owner, store=store)


def test_override_any_saved_row_records_who_and_where(store):
    a, b = session_owner("aaaa"), hf_owner("alice")
    run_a = _batch(store, a.id, [_row(0, {"attribution": 3, "counterfactual": 4, "rebuttal": None}),
                                 _row(1, {"attribution": 5, "counterfactual": 2, "rebuttal": 1})])
    saved = vum.override_saved_row(store, run_a, 1, {"attribution": "4", "rebuttal": 1}, a)
    assert [(e["part"], e["judge_score"], e["human_score"]) for e in saved] == [("attribution", 5, 4), ("rebuttal", 1, 1)]
    from valdemo.store import vum_overrides

    stored = vum_overrides(store, a.id)
    assert {(o["run_id"], o["row_idx"], o["owner"], o["owner_name"], o["verified"]) for o in stored} == {
        (run_a, 1, a.id, a.name, 0)}
    assert {o["judge"] for o in stored} == {"judge-model"} and {o["target"] for o in stored} == {"target-model"}
    assert stored[0]["part_text"] == "attribution text 1"
    # A signed-in owner is recorded as verified; they cannot reach another visitor's run.
    run_b = _batch(store, b.id, [_row(0, {"attribution": 2, "counterfactual": 2, "rebuttal": 2})])
    vum.override_saved_row(store, run_b, 0, {"counterfactual": 3}, b)
    assert [(o["owner_name"], o["verified"]) for o in vum_overrides(store, b.id)] == [("alice", 1)]
    with pytest.raises(InputError, match="no saved VUM run"):
        vum.override_saved_row(store, run_b, 0, {"attribution": 3}, a)
    with pytest.raises(InputError, match="no saved VUM run"):
        vum.override_saved_row(store, "vum-nope", 0, {"attribution": 3}, a)
    with pytest.raises(InputError, match=r"row \(0-1\)"):
        vum.override_saved_row(store, run_a, 2, {"attribution": 3}, a)
    with pytest.raises(InputError, match="no override given"):
        vum.override_saved_row(store, run_a, 0, {}, a)
    with pytest.raises(InputError, match="between 1 and 5"):
        vum.override_saved_row(store, run_a, 0, {"attribution": 9}, a)
    know_what_only = _batch(store, a.id, [_row(0, None)])
    with pytest.raises(InputError, match="no judged critique"):
        vum.override_saved_row(store, know_what_only, 0, {"attribution": 3}, a)
    from valdemo.core.result import Result
    from valdemo.core.runs import save_run

    other = save_run(Result("svo", rows=[_row(0, {"attribution": 1})]), owner=a.id, store=store)
    with pytest.raises(InputError, match="no saved VUM run"):
        vum.override_saved_row(store, other, 0, {"attribution": 3}, a)


def test_agreement_table_hand_computed(store):
    """Attribution pairs (judge, person) = (3, 3), (4, 2), (5, 5), by hand:
    exact 2/3; within 1: 2/3; Pearson 2 / sqrt(2 x 42/9) = 0.6547; Cohen's kappa: po 2/3,
    pe 2/9 -> (2/3 - 2/9) / (7/9) = 4/7; Krippendorff's alpha (interval, 2 raters, 6 values):
    Do = 2 x (0 + 4 + 0) / 6 = 4/3, De = 2 x (6 x 88 - 22^2) / (6 x 5) = 88/30 -> 1 - 40/88 = 6/11."""
    me = LOCAL
    run = _batch(store, me.id, [_row(i, {"attribution": j, "counterfactual": 3, "rebuttal": 3})
                                for i, j in enumerate((3, 4, 5))])
    for i, h in enumerate((3, 2, 5)):
        vum.override_saved_row(store, run, i, {"attribution": h}, me)
    # Re-scoring a part of a row replaces the earlier score (the row counts once): row 1 first 1, then 2.
    vum.override_saved_row(store, run, 1, {"attribution": 1}, me)
    vum.override_saved_row(store, run, 1, {"attribution": 2, "counterfactual": 4}, me)
    # Another visitor's overrides never enter this table.
    stranger = session_owner("zzzz")
    run_s = _batch(store, stranger.id, [_row(0, {"attribution": 1, "counterfactual": 1, "rebuttal": 1})])
    vum.override_saved_row(store, run_s, 0, {"attribution": 5}, stranger)

    table = vum.agreement_table(store, me.id)
    att = table["parts"]["attribution"]
    assert att["n"] == 3 and table["n_rows"] == 3 and table["judges"] == ["judge-model"]
    assert att["exact"]["value"] == pytest.approx(2 / 3) and att["within_1"]["value"] == pytest.approx(2 / 3)
    assert att["pearson"]["value"] == pytest.approx(2 / (2 * 42 / 9) ** 0.5, abs=1e-9)
    assert att["cohen_kappa"]["value"] == pytest.approx(4 / 7, abs=1e-9)
    assert att["krippendorff_alpha"]["value"] == pytest.approx(6 / 11, abs=1e-9)
    for key in ("exact", "pearson", "cohen_kappa", "krippendorff_alpha"):
        assert att[key]["n"] == 3 and att[key]["interval"] is not None
    cf = table["parts"]["counterfactual"]
    assert cf["n"] == 1 and cf["exact"]["value"] == 0.0 and cf["within_1"]["value"] == 1.0
    assert cf["cohen_kappa"]["interval"] is None and cf["pearson"]["value"] is None  # one pair: no interval
    assert table["parts"]["rebuttal"]["n"] == 0
    pooled = table["parts"]["all parts"]
    assert pooled["n"] == 4 and pooled["exact"]["value"] == pytest.approx(2 / 4)
    assert vum.override_agreement(store, me.id)["n"] == 4  # the pooled summary counts each part once too
    from valdemo.vum import replay

    rows = replay.consistency_table(None, table)
    assert [r[0] for r in rows] == ["attribution", "counterfactual", "all parts"]  # parts without pairs left out


def test_live_row_with_a_run_id_is_read_back_from_the_store(store):
    """A live row that names its saved run is overridden from the stored copy: a client cannot
    change the judge score that the person's score is compared with."""
    me = LOCAL
    stored_row = _row(0, {"attribution": 2, "counterfactual": 2, "rebuttal": 2}, phase="done")
    run = _batch(store, me.id, [stored_row])
    forged = {**stored_row, "scores": {"attribution": 5, "counterfactual": 5, "rebuttal": 5}, "run_id": run,
              "row_idx": 0}
    saved = vum.save_overrides(store, forged, {"attribution": "2"}, owner=me)
    assert saved[0]["judge_score"] == 2 and saved[0]["run_id"] == run and saved[0]["row_idx"] == 0


@pytest.mark.slow
def test_api_batch_rows_overridden_through_the_app(client, tmp_path):
    """Through the launched app: a real batch run (bundled target and judge), its row opened,
    scored, re-scored, and the per-part agreement table read back."""
    data = tmp_path / "review_POWER.csv"
    data.write_text("input,label\nI made everyone call me sir.,1\n", encoding="utf-8")
    from gradio_client import handle_file

    info, _table, _plot, _files, summary = client.predict(
        ["POWER"], 1, [handle_file(str(data))], 1, 16, True, "local", "local", "valuedcg", "proportional",
        False, api_name="/vum_batch")
    run_id = summary["run_id"]
    assert summary["overall"]["n"] == 1
    choices = client.predict(api_name="/vum_review_runs")
    assert run_id in str(choices)
    row_md = client.predict(run_id, 0, api_name="/vum_review_row")
    assert run_id in row_md and "judge score" in row_md and "made everyone call me sir" in row_md
    row_md, note, table, recent = client.predict(run_id, 0, "4", "", "2", api_name="/vum_override_row")
    assert "Saved 2 score(s) as **local (unverified)**" in note
    assert "Your earlier scores of this row: attribution 4, rebuttal 2" in row_md
    mine = [r for r in recent["data"] if r[1] == run_id]
    assert sorted((r[4], r[6], r[8], r[9]) for r in mine) == [("attribution", 4, "local", 0), ("rebuttal", 2, "local", 0)]
    # Re-scoring one part replaces its earlier score in the agreement (the row counts once).
    _, _, table, recent = client.predict(run_id, 0, "5", "", "", api_name="/vum_override_row")
    mine = [r for r in recent["data"] if r[1] == run_id]
    assert sorted((r[4], r[6]) for r in mine) == [("attribution", 5), ("rebuttal", 2)]
    parts = {r[0]: r for r in table["data"]}
    assert {"attribution", "rebuttal", "all parts"} <= set(parts) and "counterfactual" not in {
        r[0] for r in table["data"] if r[2] == 0}
    assert all(isinstance(parts[p][2], int) and parts[p][2] >= 1 for p in ("attribution", "rebuttal", "all parts"))
    md, table2, _ = client.predict(api_name="/vum_agreement_table")
    assert "Judge vs you" in md and table2["data"] == table["data"]
    with pytest.raises(Exception, match="no saved VUM run"):
        client.predict("vum-does-not-exist", 0, "3", "", "", api_name="/vum_override_row")
    with pytest.raises(Exception, match="no override given"):
        client.predict(run_id, 0, "", "", "", api_name="/vum_override_row")


def test_public_mode_review_is_per_visitor(served_app, monkeypatch):
    """Public mode, two browser sessions: each lists, opens and scores only its own saved VUM runs;
    the agreement table is computed over that visitor's own overrides only. (The runs are saved
    straight into the app's store under each session's owner: no model is needed for this.)"""
    from gradio_client import Client

    from valdemo.store import get_store

    monkeypatch.setenv("VALDEMO_PUBLIC", "1")
    a, b = Client(served_app[1], verbose=False), Client(served_app[1], verbose=False)
    owner_a = session_owner(a.session_hash)
    run_a = _batch(get_store(), owner_a.id, [_row(0, {"attribution": 4, "counterfactual": 0, "rebuttal": 2})])
    assert run_a in str(a.predict(api_name="/vum_review_runs"))
    assert run_a not in str(b.predict(api_name="/vum_review_runs"))
    assert "judge score" in a.predict(run_a, 0, api_name="/vum_review_row")
    with pytest.raises(Exception, match="no saved VUM run"):
        b.predict(run_a, 0, api_name="/vum_review_row")
    with pytest.raises(Exception, match="no saved VUM run"):
        b.predict(run_a, 0, "1", "1", "1", api_name="/vum_override_row")
    _, note, table, recent = a.predict(run_a, 0, "4", "", "3", api_name="/vum_override_row")
    assert f"as **{owner_a.name} (unverified)**" in note
    parts = {r[0]: r for r in table["data"]}
    assert set(parts) == {"attribution", "rebuttal", "all parts"} and parts["all parts"][2] == 2
    assert [(r[1], r[8], r[9]) for r in recent["data"]] == [(run_a, owner_a.name, 0)] * 2
    md_b, table_b, recent_b = b.predict(api_name="/vum_agreement_table")
    assert "No overrides yet" in md_b and table_b["data"] == [] and recent_b["data"] == []


@pytest.mark.slow
@pytest.mark.browser
def test_review_tab_in_chromium(browser, served_app, artifacts_dir):
    """What a person sees: open a saved row in the Value dialogue tab's "Review saved rows", score one
    part, and read the judge-vs-you table."""
    from valdemo.core.owner import LOCAL_ID
    from valdemo.store import get_store

    run_id = _batch(get_store(), LOCAL_ID, [_row(0, {"attribution": 3, "counterfactual": 1, "rebuttal": 5})])
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(served_app[1], wait_until="load", timeout=120_000)
        page.locator("#test-model").wait_for(state="visible", timeout=120_000)
        page.get_by_role("tab", name="Value dialogue").click()
        page.get_by_role("tab", name="Review saved rows").click()
        box = page.locator("#vum-review-run input")
        box.fill(run_id)
        box.press("Enter")
        page.locator("#vum-review-show").click()
        row = page.locator("#vum-review-row")
        row.get_by_text("judge score").wait_for(timeout=60_000)
        assert run_id in row.inner_text() and "attribution text 0" in row.inner_text()
        page.get_by_label("Your score: attribution").click()
        page.get_by_role("option", name="4", exact=True).click()
        page.locator("#vum-review-save").click()
        agreement = page.locator("#vum-review-agreement")
        agreement.get_by_text("Judge vs you").wait_for(timeout=60_000)
        assert "Saved 1 score(s) as local (unverified)" in agreement.inner_text()
        assert "attribution" in page.locator("#vum-review-table").inner_text()
        assert "Your earlier scores of this row: attribution 4" in row.inner_text()
        page.screenshot(path=str(artifacts_dir / "vum_review.png"), full_page=True)
    finally:
        context.close()
