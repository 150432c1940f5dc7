"""Published reference results (issue 18): shipped as data, every figure with its citation."""

from __future__ import annotations

import json

import pytest

from valdemo.reference import (
    FIGURE_FIELDS,
    LABEL,
    METHODS,
    ReferenceError,
    load_all,
    load_reference,
    parse_reference,
    published_markdown,
    published_rows,
)

ARXIV_IDS = {"vum": "2310.00378", "svo": "2305.17147", "clave": "2407.10725", "univar": "2404.07900",
             "denevil": "2310.11053"}


def test_every_paper_has_a_reference_file_and_every_figure_its_citation_fields():
    refs = load_all()  # parse_reference refuses a figure without any citation field
    assert set(refs) == set(METHODS)
    for method, ref in refs.items():
        assert ref.arxiv_id == ARXIV_IDS[method] and ref.paper and ref.search_note
        for fig in ref.figures:
            assert fig.paper and fig.arxiv_id and fig.arxiv_version and fig.table_or_figure and fig.quote


def _doc(**figure_changes) -> dict:
    figure = {"model": "model-x", "metric": "accuracy", "value": 71.5, "unit": "%", "arxiv_version": "v2",
              "table_or_figure": "Table 3", "setting": "zero-shot", "quote": "model-x 71.5"}
    figure.update(figure_changes)
    return {"method": "clave", "paper": "A paper", "arxiv_id": "2407.10725", "search_note": "from its Table 3",
            "figures": [{k: v for k, v in figure.items() if v is not None}]}


@pytest.mark.parametrize("field", FIGURE_FIELDS)
def test_a_figure_without_a_citation_field_is_refused(field):
    with pytest.raises(ReferenceError, match=field if field != "value" else "missing"):
        parse_reference(_doc(**{field: None}))


@pytest.mark.parametrize("change,match", [({"arxiv_version": "2"}, "v1, v2"), ({"value": "71.5"}, "finite number"),
                                          ({"value": float("nan")}, "finite number"), ({"table_or_figure": " "}, "empty")])
def test_malformed_figures_are_refused(change, match):
    with pytest.raises(ReferenceError, match=match):
        parse_reference(_doc(**change))


def test_figures_are_shown_labelled_published_with_their_citation(tmp_path):
    for method in METHODS:  # a folder where only CLAVE has a figure
        doc = _doc() if method == "clave" else {**_doc(), "method": method, "figures": []}
        (tmp_path / f"{method}.json").write_text(json.dumps(doc))
    (row,) = published_rows("clave", tmp_path)
    assert row[-1] == LABEL == "published"
    assert row[-2] == "A paper, arXiv:2407.10725v2, Table 3"
    text = published_markdown("clave", tmp_path)
    assert "| model-x | accuracy | 71.5 % | zero-shot | A paper, arXiv:2407.10725v2, Table 3 | published |" in text
    assert "not this app's" in text


def test_a_method_without_figures_says_why():
    for method in METHODS:
        ref = load_reference(method)
        if not ref.figures:
            assert "No published figure is shipped" in published_markdown(method)


def test_the_about_and_value_dialogue_tabs_show_published_results(settings):
    from valdemo.ui import build_app

    config = build_app(settings).get_config_file()
    texts = [str(c.get("props", {}).get("value", "")) for c in config["components"]]
    published = [t for t in texts if t.startswith("**Published results**")]
    for method in METHODS:  # each paper in the About tab; VUM's also beside its batch results
        shown = sum(f"arXiv:{ARXIV_IDS[method]}" in t for t in published)
        assert shown == (2 if method == "vum" else 1), method
    assert any(c.get("props", {}).get("elem_id") == "vum-published" for c in config["components"])
