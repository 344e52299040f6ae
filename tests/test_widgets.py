"""HeadExplorer in-process: clicking grid cells and changing controls changes the image, labels and HTML;
the ASCII fallback; bad input. (The real-browser test is tests/test_browser.py.)"""

import pytest
import torch

from handbuilt import HandBuiltInduction
from induction_nb import InductionHeadDetector, InputError
from induction_nb.widgets import HeadExplorer

PERIOD = 16


@pytest.fixture(scope="module")
def explorer():
    return HeadExplorer(HandBuiltInduction(period=PERIOD), sequence_length=2 * PERIOD)


def test_starts_on_the_best_head(explorer):
    assert (explorer.layer, explorer.head) == (1, 0)
    assert "L1H0 (induction head)" in explorer.title.value
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert "inb-detected" in explorer.cells[(1, 0)]._dom_classes
    assert explorer.cells[(1, 0)].description == "●"


def test_click_a_cell_selects_that_head(explorer):
    before = explorer.image.value
    explorer.cells[(0, 0)].click()
    assert (explorer.layer, explorer.head) == (0, 0) and explorer._layer.value == 0
    assert "L0H0 (not detected)" in explorer.title.value
    assert explorer.image.value != before
    assert "previous token</td><td>1.000" in explorer.metrics.value
    assert explorer.cells[(0, 0)].description == "●" and explorer.cells[(1, 0)].description == ""
    attention, tokens, period = explorer.attention()
    q = torch.arange(1, attention.shape[0])
    assert attention[q, q - 1].min() > 0.99, "the shown pattern is really the previous-token head's"


def test_controls_change_the_view(explorer):
    explorer.select(1, 0)
    repeated = explorer.image.value
    explorer._pattern.value = "copy"
    assert explorer.image.value != repeated and explorer.attention()[2] == PERIOD
    explorer._pattern.value = "repeated"
    assert explorer.image.value == repeated, "same head, same pattern: same bytes (deterministic)"
    explorer._stripe.value = False
    assert explorer.image.value != repeated
    explorer._stripe.value = True
    explorer._window.value = (10, 30)
    windowed = explorer.image.value
    assert windowed != repeated
    explorer._window.value = (0, 2 * PERIOD)
    explorer._example.value = 2
    assert explorer.image.value != repeated
    explorer._example.value = 0
    explorer._head.value = 1
    assert "L1H1" in explorer.title.value


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


def test_result_without_patterns_says_how_to_get_them():
    model = HandBuiltInduction(period=PERIOD)
    result = InductionHeadDetector(model, batch_size=2).detect(sequence_length=2 * PERIOD, keep_patterns=[(1, 0)])
    ex = HeadExplorer(result)
    assert bytes(ex.image.value).startswith(b"\x89PNG") and (ex.layer, ex.head) == (1, 0)
    with pytest.raises(InputError, match=r"no attention patterns for L0H0: pass the model.*keep_patterns=\[\(0, 0\)\]"):
        ex.select(0, 0)
    ex.cells[(0, 1)].click()  # a click must not raise: the message shows in the widget
    assert "keep_patterns" in ex.message.value and ex.image.value == b""
    with_model = HeadExplorer(result, model=model)
    with_model.select(0, 0)
    assert bytes(with_model.image.value).startswith(b"\x89PNG")


def test_result_keeping_another_head_than_zero():
    result = InductionHeadDetector(HandBuiltInduction(period=PERIOD), batch_size=2).detect(
        sequence_length=2 * PERIOD, keep_patterns=[(1, 1)])
    ex = HeadExplorer(result, layer=1, head=1)
    assert (ex.layer, ex.head) == (1, 1) and bytes(ex.image.value).startswith(b"\x89PNG")
    with pytest.raises(InputError, match=r"no attention patterns for L1H2.*keep_patterns=\[\(1, 2\)\]"):
        ex.select(1, 2)


def test_empty_result():
    from induction_nb import DetectionResult

    with pytest.raises(InputError, match="empty"):
        HeadExplorer(DetectionResult((), 0.4, "nothing", 0, 0))


def test_your_text_is_shown_per_document_without_padding(tmp_path):
    """A detect_on_text result explored on the documents themselves: each example is one document's
    pattern over its own tokens (the padded batch cut back), equal to that document run alone."""
    from induction_nb import capture_attention, detect_on_text, load_model
    from tiny_models import save_with_words

    model = load_model(save_with_words(tmp_path))
    docs = ["t5 t6 t7 t5 t6 t7 t8", "t9 t10 t9 t10", "t11 t12 t13 t14 t11 t12"]
    result = detect_on_text(model, docs, n_bootstrap=20)
    ex = HeadExplorer(result, model, texts=docs, n_examples=3)
    assert ex._pattern.value == "text" and ex._pattern.options[0] == "text"
    ex._example.value = 1
    ex.select(1, 2)
    attention, tokens, period = ex.attention()
    assert tokens.tolist() == [9, 10, 9, 10] and period is None
    torch.testing.assert_close(attention, capture_attention(model, [[9, 10, 9, 10]]).head(1, 2), atol=1e-5, rtol=0)
    assert "t9" in ex.tokens.value and bytes(ex.image.value).startswith(b"\x89PNG")
    assert "L1H2" in ex.text()
    with pytest.raises(InputError, match="texts need the model"):
        HeadExplorer(result, texts=docs)
