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
    published_html,
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
    assert "*Table 3: zero-shot*" in text and "| model (published) | accuracy |" in text
    assert "| model-x | 71.5 % |" in text and "Source: A paper, arXiv:2407.10725v2, Table 3." in text
    assert "not this app's" in text
    html_text = published_html(tmp_path)
    assert "<th>model (published)</th><th>accuracy</th>" in html_text and "<td>71.5 %</td>" in html_text
    assert "A paper, arXiv:2407.10725v2, Table 3" in html_text


def test_a_figure_read_outside_the_arxiv_pdf_says_where_and_an_unchecked_version_says_so():
    fig = parse_reference(_doc(arxiv_version="unverified", read_from="the authors' repository, results.png")).figures[0]
    assert fig.citation == ("A paper, arXiv:2407.10725, Table 3 (arXiv version not checked); "
                            "read from the authors' repository, results.png")
    with pytest.raises(ReferenceError, match="needs 'read_from'"):
        parse_reference(_doc(arxiv_version="unverified"))
    plot = parse_reference(_doc(read_off_plot=True)).figures[0]
    assert "READ OFF A PLOT" in plot.citation
    with pytest.raises(ReferenceError, match="true or false"):
        parse_reference(_doc(read_off_plot="yes"))


def test_the_univar_figures_are_the_papers_table_1_as_printed():
    """Spot checks against the table as printed (UniVaR Table 1); every figure cites it, none is off a plot."""
    ref = load_reference("univar")
    values = {(f.model, f.metric): f.value for f in ref.figures}
    assert values[("UniVaR (λ=5) (137M encoder)", "k-NN accuracy")] == 20.37
    assert values[("UniVaR (λ=5) (137M encoder)", "linear probe acc@10")] == 61.70
    assert values[("MPNet (base) (109M encoder)", "linear probe acc@1")] == 4.73
    assert values[("LaBSE (471M encoder)", "k-NN macro-F1")] == 3.94
    assert len(ref.figures) == 60
    assert all(f.table_or_figure == "Table 1" and f.read_from and not f.read_off_plot for f in ref.figures)


def test_a_method_without_figures_says_why():
    for method in METHODS:
        ref = load_reference(method)
        if not ref.figures:
            assert "No published figure is shipped" in published_markdown(method)


def test_the_about_tab_and_every_method_tab_show_published_results(settings):
    from valdemo.ui import build_app

    config = build_app(settings).get_config_file()
    texts = [str(c.get("props", {}).get("value", "")) for c in config["components"]]
    published = [t for t in texts if t.startswith("**Published results**")]
    for method in METHODS:  # each paper in the About and Profile tabs, and beside its own tab's results
        shown = sum(f"arXiv:{ARXIV_IDS[method]}" in t for t in published)
        assert shown == 3, method
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {f"{m}-published" for m in METHODS} | {"profile-published", "published-results"} <= ids
