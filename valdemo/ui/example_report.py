"""The example profile the Profile tab opens with (issue 18): precomputed on the bundled model.

Built by ``scripts/build_example_report.py`` with the real profile code and committed under
``assets/profile/example/``; labelled as an example of the bundled 135M demo model, with its
caveat, everywhere it appears. A visitor's own run replaces it on the page.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..readout import readout_html

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "assets" / "profile" / "example"
LABEL = "example, bundled 135M demo model"


def load_example(folder: Path | None = None) -> dict | None:
    """The example profile with its rows, or None when it is not shipped."""
    folder = Path(folder or EXAMPLE_DIR)
    try:
        profile = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, ValueError):
        return None
    profile["rows"] = rows
    profile["example"] = True
    return profile


def banner(profile: dict) -> str:
    return (f"<b>Example, bundled 135M demo model</b>: precomputed on {profile.get('created', '?')} by "
            f"<code>scripts/build_example_report.py</code> (the quick profile, target and judge both the bundled "
            f"SmolLM2-135M), not your run. Run the profile above to replace it with your models.")


def status_prefix(profile: dict) -> str:  # the bundled caveat follows it in the status (ui.profile)
    return "> **Example, bundled 135M demo model** · precomputed by scripts/build_example_report.py, not your run\n\n"


def example_readout(profile: dict, specs: list[str] | None = None) -> str:
    return readout_html(profile, specs, banner=banner(profile) if profile.get("example") else "")


REPORT_LABEL = ('<p class="caveat" id="example-label">Example, bundled 135M demo model: precomputed by '
                'scripts/build_example_report.py (quick profile; target and judge both the bundled SmolLM2-135M). '
                'Not a finding about values.</p>')


def write_example_report(out_dir: str | Path, folder: Path | None = None) -> dict[str, Path] | None:
    """The example's report.html, profile.json and rows.jsonl in ``out_dir``, the report drawn by
    today's report code from the shipped profile and labelled as the example; None when not shipped."""
    from .. import profile as prof

    profile = load_example(folder)
    if profile is None:
        return None
    profile.pop("example", None)
    paths = prof.write_report(profile, out_dir)
    text = paths["html"].read_text(encoding="utf-8")
    paths["html"].write_text(text.replace('<p class="meta">', REPORT_LABEL + '<p class="meta">', 1), encoding="utf-8")
    return paths


def served_files(folder: Path | None = None) -> tuple[str | None, list[str]]:
    """(report.html, [profile.json, rows.jsonl]) of the example in a temporary folder the app may
    serve (the download widgets), named so the visitor sees it is the example."""
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="valdemo-example-"))
    paths = write_example_report(out, folder)
    if paths is None:
        return None, []
    named = {k: p.rename(p.with_name(f"example-{p.name}")) for k, p in paths.items()}
    return str(named["html"]), [str(named["json"]), str(named["rows"])]
