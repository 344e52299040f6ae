"""HeadExplorer in-process: a grid click (the canvas widget's ``selected``) and the controls change the
heatmap state, labels and HTML; it opens on any result; the ASCII fallback; exports; bad input.
(The real-browser tests, with screenshots, geometry and render times, are tests/test_browser.py.)"""

import time

import pytest
import torch
from fake_results import fake_result, probe_score
from handbuilt import HandBuiltInduction

from induction_nb import DetectionResult, HeadScore, InductionHeadDetector, InputError, RetrievalResult
from induction_nb.explorer.widgets import HeadExplorer

PERIOD = 16


@pytest.fixture(scope="module")
def explorer():
    return HeadExplorer(HandBuiltInduction(period=PERIOD), sequence_length=2 * PERIOD)


def _cells(ex) -> torch.Tensor:
    """The heatmap's cells as the browser receives them, ``[n, n]`` in [0, 1]."""
    n = ex.heatmap.n
    return torch.frombuffer(bytearray(ex.heatmap.data), dtype=torch.uint8).view(n, n).float() / 255


def test_starts_on_the_best_head(explorer):
    assert (explorer.layer, explorer.head) == (1, 0) and explorer.grid.selected == [1, 0]
    assert "L1H0 (induction head): attention on 'repeated', example 1 of 4" in explorer.title.value.replace(
        "&#x27;", "'"
    )
    assert 1 * 4 + 0 in explorer.grid.detected and explorer.heatmap.period == PERIOD
    attention, tokens, period = explorer.attention()
    torch.testing.assert_close(_cells(explorer), attention, atol=1 / 255, rtol=0)


def test_grid_click_selects_that_head(explorer):
    before = bytes(explorer.heatmap.data)
    explorer.grid.selected = [0, 0]  # what a click on the canvas sends
    assert (explorer.layer, explorer.head) == (0, 0) and explorer._layer.value == 0
    assert "L0H0 (not detected)" in explorer.title.value
    assert bytes(explorer.heatmap.data) != before
    assert "previous token</td><td>1.000</td><td>1.000" in explorer.metrics.value
    attention, tokens, period = explorer.attention()
    q = torch.arange(1, attention.shape[0])
    assert attention[q, q - 1].min() > 0.99, "the shown pattern is really the previous-token head's"
    explorer.select(1, 0)
    assert explorer.grid.selected == [1, 0], "a selection made in Python moves the grid's marker"


def test_metrics_belong_to_the_pattern_shown(explorer):
    """The detection's scores stay; the second column is recomputed from the pattern on screen."""
    from induction_nb.metrics import pattern_metrics

    explorer.select(1, 0)
    explorer._pattern.value = "random"
    attention, tokens, _ = explorer.attention()
    shown = pattern_metrics(attention, tokens, 2)
    assert "shown pattern" in explorer.metrics.value and "&#x27;random&#x27;, example 1 of 4" in explorer.metrics.value
    assert f"<td>{shown['diagonal']:.3f}</td></tr>" in explorer.metrics.value
    assert f"<td>{explorer.result.score(1, 0).prefix_matching:.3f}</td>" in explorer.metrics.value
    assert "on &#x27;random&#x27;" in explorer.title.value and "overall" not in explorer.title.value
    explorer._pattern.value = "repeated"


def test_controls_change_the_view(explorer):
    explorer.select(1, 0)
    repeated = bytes(explorer.heatmap.data)
    explorer._pattern.value = "copy"
    assert bytes(explorer.heatmap.data) != repeated and explorer.attention()[2] == PERIOD
    explorer._pattern.value = "repeated"
    assert bytes(explorer.heatmap.data) == repeated, "same head, same pattern: same bytes (deterministic)"
    explorer._stripe.value = False
    assert explorer.heatmap.period == 0
    explorer._stripe.value = True
    explorer._window.value = (10, 30)
    assert (explorer.heatmap.start, explorer.heatmap.n) == (10, 20)
    torch.testing.assert_close(_cells(explorer), explorer.attention()[0][10:30, 10:30], atol=1 / 255, rtol=0)
    explorer._window.value = (0, 2 * PERIOD + 1)
    first_labels = explorer.heatmap.labels
    explorer._example.value = 3
    assert explorer.heatmap.labels != first_labels and "example 3 of 4" in explorer.title.value
    explorer._example.value = 1
    explorer._head.value = 1
    assert "L1H1" in explorer.title.value and explorer.grid.selected == [1, 1]


def test_grid_recolours_by_metric(explorer):
    explorer._metric.value = "previous_token"
    assert explorer.grid.metric == "previous token"
    assert explorer.grid.values[0] == pytest.approx(explorer.result.score(0, 0).previous_token, abs=1e-5)
    explorer._metric.value = "overall_score"
    assert explorer.grid.values[4] == pytest.approx(explorer.result.score(1, 0).overall_score, abs=1e-5)


def test_tokens_are_escaped_and_matches_marked(explorer):
    labels = ["<s>", "a&b", "x"] * 4
    explorer._labels = lambda tokens: (labels * 20)[: len(tokens)]  # a tokenizer whose tokens look like HTML
    explorer.select(1, 0)
    assert "&lt;s&gt;" in explorer.tokens.value and "<s>" not in explorer.tokens.value.replace("<span", "")
    assert "a&amp;b" in explorer.tokens.value
    assert "background:#fdb863" in explorer.tokens.value and "text-decoration:underline" in explorer.tokens.value
    del explorer._labels


def test_ascii_fallback_is_the_text_plain(explorer):
    explorer.select(1, 0)
    text = str(explorer)
    assert text.startswith("INDUCTION HEAD ANALYSIS REPORT") and "L1H0 (induction head)" in text
    assert "induction stripe k = q - 15" in text
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == text and "application/vnd.jupyter.widget-view+json" in bundle


def test_bad_input(explorer):
    with pytest.raises(InputError, match="L2H0 is out of range: the model has 2 layers x 4 heads"):
        explorer.select(2, 0)
    with pytest.raises(InputError, match="out of range"):
        explorer.select(0, -1)
    with pytest.raises(InputError, match=r"\.html"):
        explorer.save_html("explorer.txt")


def test_result_with_some_kept_patterns_offers_them():
    model = HandBuiltInduction(period=PERIOD)
    result = InductionHeadDetector(model, batch_size=2).detect(sequence_length=2 * PERIOD, keep_patterns=[(1, 0)])
    ex = HeadExplorer(result)
    assert (ex.layer, ex.head) == (1, 0) and ex.heatmap.n == 2 * PERIOD and ex.grid.available == [4]
    ex.grid.selected = [0, 1]  # a click on a head without patterns: selected, no error, no stale heatmap
    assert (ex.layer, ex.head) == (0, 1) and ex.heatmap.layout.display == "none" and ex.heatmap.n == 0
    assert "no attention patterns for L0H1 (kept: L1H0)" in ex.message.value and "choose one below" in ex.message.value
    assert [label for label, _ in ex._offer.options] == ["", "L1H0"] and ex._offer.layout.display is None
    assert "detection" in ex.metrics.value and "shown pattern" not in ex.metrics.value
    with pytest.raises(InputError, match=r"no attention patterns for L0H1.*keep_patterns=\[\(0, 1\)\]"):
        ex.attention()
    ex._offer.value = (1, 0)
    assert (ex.layer, ex.head) == (1, 0) and ex.heatmap.n == 2 * PERIOD and ex.heatmap.layout.display is None
    with_model = HeadExplorer(result, model=model)
    with_model.select(0, 0)
    assert with_model.heatmap.n == 2 * PERIOD


def test_a_saved_scan_opens_without_patterns_or_model(tmp_path):
    """The reported fault: a loaded result (no patterns, no model) raised InputError at construction."""
    result = InductionHeadDetector(HandBuiltInduction(period=PERIOD), batch_size=2).detect(sequence_length=2 * PERIOD)
    loaded = DetectionResult.load(result.save(tmp_path / "scan.json"))
    ex = HeadExplorer(loaded)
    assert (ex.layer, ex.head) == (1, 0) and ex.grid.values and ex.grid.available == []
    assert "kept no patterns" in ex.message.value and ex._offer.layout.display == "none"
    assert "overall score" in ex.metrics.value and "L1H0" in str(ex)
    page = ex.save_html(tmp_path / "scan.html").read_text()
    assert "No heatmaps in this file" in page and '"n_layers": 2' in page


def test_result_keeping_another_head_than_zero():
    result = InductionHeadDetector(HandBuiltInduction(period=PERIOD), batch_size=2).detect(
        sequence_length=2 * PERIOD, keep_patterns=[(1, 1)]
    )
    ex = HeadExplorer(result, layer=1, head=1)
    assert (ex.layer, ex.head) == (1, 1) and ex.heatmap.n == 2 * PERIOD
    with pytest.raises(InputError, match=r"no attention patterns for L1H2.*keep_patterns=\[\(1, 2\)\]"):
        ex.select(1, 2)
        ex.attention()


def test_empty_result():
    with pytest.raises(InputError, match="empty"):
        HeadExplorer(DetectionResult((), 0.4, "nothing", 0, 0))


def test_80_by_64_heads_is_one_grid_widget():
    """A 70B-sized grid: one canvas widget holding 5,120 values (no widget per head), built quickly
    (the kernel-side part of the browser test's timing; measured there too)."""
    result = fake_result(80, 64)
    HeadExplorer(fake_result(2, 2, kept=((1, 1),)))  # imports done, as in a notebook's second explorer
    t = time.perf_counter()
    ex = HeadExplorer(result)
    elapsed = time.perf_counter() - t
    assert len(ex.grid.values) == 80 * 64 and ex.grid.n_layers == 80 and ex.grid.n_heads == 64
    assert (ex.layer, ex.head) == (40, 7) and ex.heatmap.n == 65, "opens on the best head with kept patterns"
    assert sorted(ex.grid.available) == sorted(l * 64 + h for l, h in ((40, 7), (41, 9), (12, 3)))
    assert elapsed < 1.0, f"construction took {elapsed:.2f} s"
    ex.grid.selected = [12, 3]
    assert "L12H3" in ex.title.value


def test_compare_two_heads_side_by_side(explorer):
    fig = explorer.compare([(1, 0), (0, 0)])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and titles[0].startswith("L1H0") and titles[1].startswith("L0H0")
    left, right = (ax.get_position() for ax in fig.axes[:2])
    assert left.x1 <= right.x0, "side by side, not stacked"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_save_figure_and_save(explorer, tmp_path):
    explorer.select(1, 0)
    paths = explorer.save_figure(tmp_path / "head.png", formats=["png", "svg"])
    assert [p.suffix for p in paths] == [".png", ".svg"] and paths[0].read_bytes().startswith(b"\x89PNG")
    assert explorer.save(tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
    assert explorer.save(tmp_path / "head.pdf")[0].read_bytes().startswith(b"%PDF")


def test_save_html_embeds_the_viewed_heads(explorer, tmp_path):
    explorer.select(0, 0)
    explorer.select(1, 0)
    page = explorer.save_html(tmp_path / "explorer.html").read_text()
    assert page.count("class='inb-panel'") >= 2 and "id='inb-panel-L1-H0'" in page and "id='inb-panel-L0-H0'" in page
    assert page.count("data:image/png;base64,") >= 2
    assert "src='http" not in page and 'src="http' not in page and "<link" not in page, "nothing fetched"


def test_your_text_is_shown_per_document_without_padding(tmp_path):
    """A detect_on_text result explored on the documents themselves: each example is one document's
    pattern over its own tokens (the padded batch cut back), equal to that document run alone."""
    from tiny_models import save_with_words

    from induction_nb import capture_attention, detect_on_text, load_model

    model = load_model(save_with_words(tmp_path))
    docs = ["t5 t6 t7 t5 t6 t7 t8", "t9 t10 t9 t10", "t11 t12 t13 t14 t11 t12"]
    result = detect_on_text(model, docs, n_bootstrap=20)
    ex = HeadExplorer(result, model, texts=docs, n_examples=3)
    assert ex._pattern.value == "text" and ex._pattern.options[0] == "text"
    ex._example.value = 2
    ex.select(1, 2)
    attention, tokens, period = ex.attention()
    assert tokens.tolist() == [9, 10, 9, 10] and period is None
    torch.testing.assert_close(attention, capture_attention(model, [[9, 10, 9, 10]]).head(1, 2), atol=1e-5, rtol=0)
    assert "t9" in ex.tokens.value and ex.heatmap.n == 4 and ex.heatmap.labels == ["t9", "t10", "t9", "t10"]
    assert "L1H2" in ex.text()
    with pytest.raises(InputError, match="texts need the model"):
        HeadExplorer(result, texts=docs)


def _hybrid(**settings) -> DetectionResult:
    """Attention in layers 1 and 3 only (a Jamba-like hybrid), 2 heads each, no patterns, no model."""

    scores = tuple(
        probe_score(l, h, 0.5, 0.5, 1.0, 0.1, 0.0, 0.0, 0.5 if h else 0.1, 0.4, 0.6) for l in (1, 3) for h in (0, 1)
    )
    return DetectionResult(scores, 0.4, "hybrid", 4, 2, {"sequence_length": 16, **settings})


def test_a_layer_without_attention_typed_in_the_box_is_refused_in_the_panel(tmp_path):
    ex = HeadExplorer(_hybrid())
    assert (ex.layer, ex.head) == (1, 1)
    ex._layer.value = 2  # what typing 2 in the layer box does; the callback must not raise
    assert (ex.layer, ex.head) == (1, 1) and ex._layer.value == 1, "the controls show what is selected"
    assert "L2H1" in ex.message.value and "out of range" in ex.message.value
    assert (2, 1) not in ex.viewed and "L1H1" in ex.title.value and "L1H1" in str(ex)
    assert ex.save_html(tmp_path / "h.html").exists(), "nothing stale left to break the export"
    ex._layer.value = 3
    assert (ex.layer, ex.head) == (3, 1) and ex.grid.selected == [3, 1]


@pytest.mark.parametrize(
    "layer, head, match",
    [(True, 0, "must be integers"), ("1", 0, "must be integers"), (1.0, 0, "must be integers"), (9, 0, "out of range")],
)
def test_select_checks_its_arguments(explorer, layer, head, match):
    with pytest.raises(InputError, match=match):
        explorer.select(layer, head)


def test_numpy_integers_select(explorer):
    import numpy as np

    explorer.select(np.int64(1), np.int64(0))
    assert (explorer.layer, explorer.head) == (1, 0) and type(explorer.layer) is int


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ex: ex.compare((1, 0)), r"list of \(layer, head\) pairs"),
        (lambda ex: ex.compare([(0, 0)] * 1 + [(1, h) for h in range(4)] + [(0, 1), (0, 2)]), "at most 6"),
        (lambda ex: ex.compare([(1, 0)], example=9), r"example must be an integer in \[1, 4\]"),
        (lambda ex: ex.compare([(1, 0)], pattern="text"), "unknown pattern .text.; use one of repeated, copy, random"),
        (lambda ex: ex.save_html("x.html", heads=(1, 0)), r"list of \(layer, head\) pairs"),
        (lambda ex: ex.save_html(123), "needs a file path"),
    ],
)
def test_exports_check_their_arguments(explorer, call, match):
    with pytest.raises(InputError, match=match):
        call(explorer)


def test_patterns_are_checked_and_a_string_is_one_pattern():
    model = HandBuiltInduction(period=PERIOD)
    assert HeadExplorer(model, sequence_length=2 * PERIOD, patterns="copy").patterns == ("copy",)
    with pytest.raises(InputError, match="patterns must name probe patterns"):
        HeadExplorer(model, sequence_length=2 * PERIOD, patterns=("bogus",))


def test_a_model_that_does_not_match_the_result_is_refused():
    with pytest.raises(InputError, match="does not match the result.*pass the model the result came from"):
        HeadExplorer(fake_result(6, 8, kept=(), sequence_length=8), HandBuiltInduction(period=PERIOD))


def test_stripe_and_shown_metrics_count_the_bos_offset(tmp_path):
    """Kept patterns with one token before the repeat: the outline starts at the repeat's first query and
    the panel, the export and the detector score from the same query."""
    from induction_nb.metrics import pattern_metrics

    result = fake_result(3, 2, kept=((1, 1),), sequence_length=16, batch=1)
    ex = HeadExplorer(result)
    assert ex.heatmap.period == 8 and ex.heatmap.stripe_from == 1 + 8
    attention, tokens, _ = ex.attention()
    shown = pattern_metrics(attention, tokens, 2)
    cell = f"<td>{result.score(1, 1).previous_token:.3f}</td><td>{shown['previous_token']:.3f}</td>"
    assert cell in ex.metrics.value and cell in ex.save_html(tmp_path / "p.html").read_text()


def test_save_html_heads_dedupe_select_and_list_missing(tmp_path):
    result = fake_result(3, 2, kept=((1, 1), (2, 0)), sequence_length=16, batch=1)
    ex = HeadExplorer(result)
    page = ex.save_html(tmp_path / "a.html", heads=[(2, 0), (2, 0), (0, 1)]).read_text()
    assert page.count("class='inb-panel'") == 1 and '"selected": [2, 0]' in page, "opens on what it exported"
    assert "no attention patterns for L0H1" in page


def test_a_new_pattern_length_resets_the_window_and_examples_end_at_the_documents(tmp_path):
    from tiny_models import save_with_words

    from induction_nb import detect_on_text, load_model

    model = load_model(save_with_words(tmp_path))
    docs = [" ".join(f"t{5 + i % 7}" for i in range(40)), "t9 t10 t9 t10 t11 t12"]
    result = detect_on_text(model, docs, n_bootstrap=20)
    ex = HeadExplorer(result, model, texts=docs)  # n_examples=4 asked, 2 documents given
    ex.select(1, 0)
    assert ex._example.max == 2 and ex.heatmap.n == 40
    ex._example.value = 2
    assert ex.heatmap.n == 6 and "example 2 of 2" in ex.title.value
    ex._example.value = 1
    assert ex.heatmap.n == 40 and ex._window.value == (0, 40), "the long document whole again"
    ex._window.value = (10, 20)
    assert ex.heatmap.n == 10 and "positions 10-19 of 40" in ex.heatmap.title
    assert "overall = prefix matching on your text" in ex.metrics.value


def test_retrieval_results_are_labelled_as_such():
    r = fake_result(2, 2, kept=(), sequence_length=8)
    scores = tuple(
        HeadScore(s.layer, s.head, {"overall_score": s.overall_score}, s.ci_low, s.ci_high) for s in r.head_scores
    )
    retrieval = RetrievalResult(scores, 0.01, "m", 2, 2, {"needle_accuracy": 1.0})
    ex = HeadExplorer(retrieval, layer=1, head=1)
    assert [m for _, m in ex._metric.options] == ["overall_score"], "no menu entry that colours every head blank"
    assert "retrieval score" in ex.metrics.value
    detected = retrieval.induction_heads[0]
    ex.select(*detected)
    assert "(retrieval head)" in ex.title.value


def test_detected_outline_is_never_a_colour_of_the_scale():
    r = fake_result(2, 2, kept=(), sequence_length=8)
    scores = tuple(s.with_values(causal_effect=0.3 * (s.head - 0.5)) for s in r.head_scores)
    ex = HeadExplorer(DetectionResult(scores, 0.4, "m", 2, 2, r.settings))
    ex._metric.value = "causal_effect"
    assert ex.grid.outline not in ex.grid.stops and ex.grid.vmin == -ex.grid.vmax
