"""Value profile (issue 9): the five methods on the bundled model, through the CLI, the app's API and
the exported HTML report in Chromium.

Tiny on purpose (quick size, one value for the value dialogue, 16 new tokens): the first CLI run
pays for the generations; every later run with the same settings is answered from the response
cache, which is itself under test.
"""

from __future__ import annotations

import json
import socket

import pytest

from valdemo import profile as prof
from valdemo.cli import main as cli_main
from valdemo.core.result import Failures, Metric, Result
from valdemo.inputs import InputError

TINY = ["--size", "quick", "--max-new-tokens", "16", "--values", "SECURITY"]
TINY_CONFIG = prof.ProfileConfig(size="quick", max_new_tokens=16, values=("SECURITY",))
# On an idle 2-core machine the first tiny profile takes a few minutes (about 3.5 CPU-minutes were measured
# for the four model-backed methods); everything after it is answered from the cache.


# ----------------------------------------------------------------------------- fast
def test_parse_specs_and_config_checks():
    assert prof.parse_specs("local, openai:m@http://h/v1\nlocal") == ["local", "openai:m@http://h/v1"]
    assert prof.parse_specs(["a", " ", "b"]) == ["a", "b"]
    with pytest.raises(InputError, match="at least one model"):
        prof.parse_specs(" , ")
    with pytest.raises(InputError, match="at most 6"):
        prof.parse_specs(",".join(f"m{i}" for i in range(7)))
    with pytest.raises(InputError, match="size"):
        prof.ProfileConfig(size="huge").checked()
    with pytest.raises(InputError, match="max new tokens"):
        prof.ProfileConfig(max_new_tokens=3).checked()
    with pytest.raises(InputError, match="not a Schwartz value"):
        prof.ProfileConfig(values=("SECURITY", "NOPE")).checked()


def test_cli_rejects_bad_input_with_one_line(tmp_path, capsys):
    assert cli_main(["profile", "--models", "nonsense:thing", "--out", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("valdemo profile: error:")
    assert not (tmp_path / "report.html").exists()


def _fake_profile(sections: dict[str, dict[str, Result | None]]) -> dict:
    """A profile dict as run_profile builds it, from Results (no model runs): the profile reads
    nothing but what each method's Result holds."""
    return {"models": list(sections), "judge": "j", "config": {}, "caveat": "", "rows": [],
            "profiles": {spec: {"methods": {m: ({"status": "ok", "error": None, "result": r.without_rows(),
                                                  "seconds": 0.0, "n_rows": len(r.rows)} if r is not None else
                                                 {"status": "error", "error": "boom", "result": None,
                                                  "seconds": 0.0, "n_rows": 0})
                                             for m, r in methods.items()}} for spec, methods in sections.items()}}


def _results(k: int) -> dict[str, Result]:
    f = Failures("know-what answers", 4, 1)
    vum = Result("vum", metrics=[Metric.proportion("know_what_acc", k, 4, "d", "paper", "know what")],
                 groups={"SECURITY": [Metric.proportion("know_what_acc", k, 4, "d", "paper", "know what")]},
                 failures=[f, Failures("judge answers on critique parts", 9, 5)], rows=[{"x": 1}] * 4)
    svo = Result("svo", metrics=[Metric.mean("vr_distance", [1.0, 3.0], "d", "paper", "D")],
                 failures=[Failures("item answers", 24, 2)],
                 extra={"points": [{"label": "prosocial", "group": "prosocial", "self_mean": 60.0, "other_mean": 55.0}]})
    den = Result("denevil-defend", failures=[Failures("judge answers", 40, 3)])
    space = Result("univar", failures=[Failures("answers (all profiled models)", 20, 2)])
    return {"vum": vum, "svo": svo, "clave": None, "univar": space, "denevil": den}


def test_profile_reads_every_number_from_the_methods_results():
    """Headline, failures line, section tables, comparison and the saved Result come from each
    method's Result by name: value, interval, n; failures listed per step with their denominators,
    never one sum; a method that failed shows n/a, never a number."""
    profile = _fake_profile({"a": _results(3), "b": _results(1)})
    for spec in ("a", "b"):
        profile["profiles"][spec]["headline"] = prof.headline(profile, spec)
    head = {r["name"]: r for r in profile["profiles"]["a"]["headline"]}
    assert head["know_what_acc"]["value"] == Metric.proportion("know_what_acc", 3, 4, "d", "s").fmt()
    assert "[" in head["know_what_acc"]["value"] and "(n=4)" in head["know_what_acc"]["value"]
    assert head["failures"]["value"] == ("VUM know-what answers 1 of 4; VUM judge answers on critique parts 5 of 9; "
                                         "SVO item answers 2 of 24; UniVaR answers (all profiled models) 2 of 20; "
                                         "DeNEVIL judge answers 3 of 40")
    assert prof.failures_line({"vum": None}) is None
    table = prof.section_table(profile, "vum", ["a", "b"])
    assert table == [{"group": "Security", "metric": "know what",
                      "a": Metric.proportion("k", 3, 4, "d", "s").fmt(), "b": Metric.proportion("k", 1, 4, "d", "s").fmt()}]
    assert prof.section_table(profile, "clave", ["a"]) == []
    assert prof.section_errors(profile, "clave", ["a"]) == ["a: failed: boom"]
    comp = {r["metric"]: r for r in prof.comparison_table(profile)}
    assert comp["know what"]["a"].startswith("0.750") and comp["know what"]["b"].startswith("0.250")
    assert prof.svo_points(profile, ["a"])[0]["self_mean"] == 60.0
    saved = prof.as_result({**profile, "size": "quick", "cache": {}, "seconds": 0})
    assert set(saved.groups) == {f"{s} · {m}" for s in "ab" for m in ("vum", "svo", "univar", "denevil")}
    assert Failures("a · vum: know-what answers", 4, 1).as_dict() in [f.as_dict() for f in saved.failures]


def test_stage_progress_is_monotonic_over_one_range():
    seen: list[float] = []
    stages = prof._Stages([("a", 1.0), ("b", 3.0)], lambda f, _label: seen.append(f))
    cb = stages.callback("a", 1.0)
    cb(1, 2)
    cb(2, 2)
    stages.finish(1.0)
    cb = stages.callback("b", 3.0)
    cb(3, 3)
    stages.finish(3.0)
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0
    assert seen[2] == pytest.approx(0.25)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, local_model):
    """The CLI twice with the same settings: a first run, then a rerun (served from the cache)."""
    import time

    out = []
    for i in (1, 2):
        d = tmp_path_factory.mktemp(f"profile-cli-{i}")
        start = time.perf_counter()
        code = cli_main(["profile", "--models", "local", "--judge", "local", *TINY, "--out", str(d), "--json"])
        out.append({"code": code, "dir": d, "wall": time.perf_counter() - start})
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first one to run pays for the profile: minutes on a shared 2-core machine
def test_cli_profile_end_to_end(cli_runs, capsys):
    first = cli_runs[0]
    assert first["code"] == 0
    profile = json.loads((first["dir"] / "profile.json").read_text(encoding="utf-8"))
    assert profile["models"] == ["local"] and profile["caveat"]  # the bundled model is named as such
    methods = profile["profiles"]["local"]["methods"]
    assert sorted(methods) == sorted(prof.METHODS)  # one entry per method per model
    for name in ("vum", "svo", "univar", "denevil"):
        assert methods[name]["status"] == "ok", (name, methods[name]["error"])
        assert methods[name]["n_rows"] > 0
    assert methods["clave"]["status"] in {"ok", "unavailable"}  # another test file may have calibrated one
    if methods["clave"]["status"] == "unavailable":
        assert "calibrated" in methods["clave"]["error"]
    # each section is its method's Result (less rows): groups, metrics with n and interval, failures
    assert list(methods["vum"]["result"]["groups"]) == ["SECURITY"]
    assert sorted(methods["svo"]["result"]["groups"]) == sorted(
        ["altruistic", "prosocial", "individualistic", "competitive"])
    assert methods["univar"]["result"]["extra"]["sources"]["local"]["centroid"]
    # the position comes from the bundled value head, which the section names (issue 16)
    assert methods["univar"]["result"]["extra"]["space"].startswith("value head (UniVaR objective")
    assert methods["univar"]["result"]["extra"]["value_space"]
    assert set(methods["denevil"]["result"]["groups"]) >= {"none", "fixed", "generated"}
    for name in ("vum", "svo", "univar", "denevil"):
        assert all(f["total"] >= f["failed"] >= 0 for f in methods[name]["result"]["failures"])
    head = profile["profiles"]["local"]["headline"]
    assert any(r["name"] == "know_what_acc" and "(n=" in r["value"] for r in head)
    # every number is traceable: the rows file holds each method's rows, tagged by model and method
    rows = [json.loads(line) for line in (first["dir"] / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    for name, sec in methods.items():
        assert sum(r["method"] == name and r["model"] == "local" for r in rows) == sec["n_rows"]
    # persisted with the store
    from valdemo.store import get_store

    run = get_store().get_run(profile["run_id"])
    assert run["method"] == "profile" and len(get_store().run_rows(profile["run_id"])) == len(rows)
    from valdemo.core.runs import load_run

    saved = load_run(profile["run_id"], owner=None)
    assert saved["format"] and saved["source"] == "cli" and "local · vum" in saved["groups"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first one to run pays for the profile: minutes on a shared 2-core machine
def test_rerun_is_served_from_the_cache(cli_runs):
    first, second = (json.loads((r["dir"] / "profile.json").read_text(encoding="utf-8")) for r in cli_runs)
    assert cli_runs[1]["code"] == 0
    assert first["cache"]["misses"] > 0
    # Every call of the rerun is served from the cache (hits need not equal the first run's misses:
    # calls that one batch asked twice are stored once).
    assert second["cache"]["misses"] == 0 and second["cache"]["hits"] > 0
    assert cli_runs[1]["wall"] < cli_runs[0]["wall"] / 2, (cli_runs[0]["wall"], cli_runs[1]["wall"])
    # the same answers give the same numbers
    for name in prof.METHODS:
        a, b = first["profiles"]["local"]["methods"][name], second["profiles"]["local"]["methods"][name]
        assert a["status"] == b["status"]
    assert first["profiles"]["local"]["headline"] == second["profiles"]["local"]["headline"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first one to run pays for the profile: minutes on a shared 2-core machine
def test_html_report_opens_offline_in_chromium(cli_runs, browser, artifacts_dir):
    report = cli_runs[0]["dir"] / "report.html"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def block(route):  # the report must need nothing but itself
        outside.append(route.request.url)
        route.abort()

    page.route("http*://**", block)
    page.goto(report.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    sections = page.eval_on_selector_all("section.method", "els => els.map(e => e.dataset.method)")
    assert sorted(set(sections)) == sorted(prof.METHODS)
    # every method plot rendered (a replayed-models section, when the owner has replay runs, adds its own)
    assert page.locator("section.method .js-plotly-plot").count() == len(prof.FIGURES)
    assert page.locator("#caveat").is_visible()
    assert "SmolLM2" in page.locator("#caveat").inner_text()
    for method in prof.METHODS:
        assert page.locator(f"section[data-method={method}] .definition").inner_text().strip()
    links = page.locator("a.rows")
    assert links.count() >= 4 and links.first.get_attribute("href").startswith("data:")
    summary = json.loads(page.locator("#profile-summary").text_content())
    assert sorted(summary["models"]["local"]["methods"]) == sorted(prof.METHODS)
    page.screenshot(path=str(artifacts_dir / "profile_report.png"), full_page=True)
    page.close()
    assert outside == []


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first one to run pays for the profile: minutes on a shared 2-core machine
def test_app_api_profile_run(cli_runs, client):
    """The named endpoint, with the same settings as the CLI run (so its answers come from the cache)."""
    out = client.predict("local", "quick", 16, ["SECURITY"], "local", "local", api_name="/profile_run")
    view, report, files, summary, status, *_ = out
    assert sorted(summary["models"]["local"]["methods"]) == sorted(prof.METHODS)
    assert summary["cache"]["misses"] == 0 and summary["cache"]["hits"] > 0
    assert "SmolLM2" in status and summary["run_id"] in status
    html = open(report, encoding="utf-8").read()
    assert "plotly" in html and 'data-method="denevil"' in html
    assert sorted(p.rsplit("/", 1)[-1] for p in files) == ["profile.json", "rows.jsonl"]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="at least one model"):
        client.predict(" , ", "quick", 16, [], "local", "local", api_name="/profile_run")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first one to run pays for the profile: minutes on a shared 2-core machine
def test_failed_method_shows_its_error_and_the_rest_renders(cli_runs, tmp_path, monkeypatch):
    """A judge endpoint that is down (a real closed port): the judged sections fail, the rest stand.

    Also checks the CLAVE section for real with a recognizer calibrated on the bundled samples in a
    separate store (so the session's store keeps whatever other tests put there).
    """
    from valdemo import clave
    from valdemo.store import Store

    monkeypatch.setenv("VALDEMO_OPENAI_RETRIES", "0")
    from valdemo.config import reload_settings

    reload_settings()
    store = Store(tmp_path / "profile.sqlite")
    samples = [s for s in clave.bundled_samples() if s.label is not None][:60]
    rec = clave.train_recognizer(samples)
    clave.save_recognizer(store, rec)
    dead = f"openai:nobody@http://127.0.0.1:{_closed_port()}/v1"
    profile = prof.run_profile("local", dead, TINY_CONFIG, store=store)
    methods = profile["profiles"]["local"]["methods"]
    assert methods["denevil"]["status"] == "error" and methods["denevil"]["error"]  # needs the judge
    # VUM needs the judge only for critiques that have parts to judge: under the default protocol
    # the bundled model often writes none (each part listed as missing), so no judge call is made.
    vum_m = methods["vum"]
    judged = {f["step"]: f for f in (vum_m["result"] or {}).get("failures", [])}.get("judge answers on critique parts")
    assert (vum_m["status"] == "error" and vum_m["error"]) or (
        vum_m["status"] == "ok" and (judged is None or judged["total"] == 0)), vum_m
    for name in ("svo", "univar", "clave"):
        assert methods[name]["status"] == "ok", (name, methods[name]["error"])
    per_value = methods["clave"]["result"]["groups"]
    assert set(per_value) == set(rec.values)  # only values it was calibrated on (CLAVE, issue 15)
    assert len(methods["clave"]["result"]["extra"]["values_not_calibrated"]) == 10 - len(rec.values)
    for ms in per_value.values():
        shares = {m["name"]: m["value"] for m in ms}
        assert shares["adheres"] + shares["opposes"] + shares["unrelated"] == pytest.approx(1.0, abs=1e-3)
    html = prof.report_html(profile)
    failed = sum(methods[name]["status"] == "error" for name in prof.METHODS)
    assert html.count('class="error"') >= failed >= 1 and "failed" in html
    assert "adheres" in html  # the CLAVE numbers are on the page
    reload_settings()
