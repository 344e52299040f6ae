"""Token labels with control characters: escaped by the one helper, in every view (ASCII, report, widget
text and HTML, figures, the result's HTML)."""

import html

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from test_ascii import fake_result, stripe_pattern

from induction_nb import create_analysis_report, plot_attention_pattern, plot_induction_stripe
from induction_nb.draw.labels import escape_label

BAD = ["\x0b", "\x0c", "\x08", "\x1b[31m", "\x85", "\u2028", "\u2029", "\u202e", "\u200b", "\ufeff", "\x00", "\x7f"]
# 12 positions: every bad character once, a period of 4 so that some repeat
TOKENS = ["a", "\x1b[2J", "b\nc", "\u2028"] * 3


CONTROLS = "\x0b\x0c\x08\x1b\x85\u2028\u2029\u202e\u200b\ufeff\x00\x7f\r\t"


def _clean(text: str) -> bool:
    """No control character in the text (newlines only between the view's own lines)."""
    return not any(ch in text for ch in CONTROLS)


@pytest.mark.parametrize(
    "raw,shown",
    [
        ("\n", "\\n"),
        ("\t", "\\t"),
        ("\x0b", "\\x0b"),
        ("\x1b[31m", "\\x1b[31m"),
        ("\x85", "\\x85"),
        ("\u2028", "\\u2028"),
        ("\u202e", "\\u202e"),
        ("\u200d", "\\u200d"),
        ("\ufeff", "\\ufeff"),
        ("\\n", "\\\\n"),
        ("café 😀 日本", "café 😀 日本"),
        (7, "7"),
    ],
)
def test_escape_label(raw, shown):
    assert escape_label(raw) == shown


def test_every_unsafe_character_is_escaped():
    for ch in BAD:
        assert _clean(escape_label(ch)), repr(ch)


def test_ascii_pattern_keeps_one_line_per_row():
    text = plot_attention_pattern(stripe_pattern(12, 4), TOKENS, width=80, charset="unicode")
    rows = [line for line in text.splitlines() if "│" in line]
    assert len(rows) == 12 and _clean(text)
    assert "\\x1b[2J" in text and "b\\nc" in text and "\\u2028" in text


def test_stripe_example_line_and_report_model_name():
    assert _clean(plot_induction_stripe(stripe_pattern(12, 4), 4, tokens=TOKENS))
    result = fake_result()
    from dataclasses import replace

    report = create_analysis_report(replace(result, model_name="evil\x1b]0;pwned\x07\nmodel"), detailed=True)
    assert _clean(report) and "evil\\x1b]0;pwned\\x07\\nmodel" in report


def test_widget_text_and_html_escape_labels():
    from induction_nb import HeadExplorer
    from induction_nb.draw.panels import tokens_html as _tokens_html

    page = _tokens_html(TOKENS, torch.tensor([1, 2, 3, 4] * 3))
    assert _clean(html.unescape(page)) and "\\x1b[2J" in html.unescape(page)
    result = fake_result()
    kept = {(2, 1): stripe_pattern(12, 4)[None]}
    from dataclasses import replace

    result = replace(
        result,
        kept_patterns=kept,
        kept_tokens=torch.arange(12)[None],
        settings={**result.settings, "sequence_length": 12, "n_repeats": 3},
    )
    explorer = HeadExplorer(result, layer=2, head=1)
    explorer._labels = lambda tokens: TOKENS
    text = explorer.text()
    assert _clean(text) and "\\x1b[2J" in text


def test_figure_tick_labels_are_escaped():
    from induction_nb import plot_attention_heatmap

    ax = plot_attention_heatmap(stripe_pattern(12, 4), TOKENS, period=4)
    labels = [t.get_text() for t in ax.get_xticklabels()] + [t.get_text() for t in ax.get_yticklabels()]
    assert all(_clean(x) for x in labels) and "\\x1b[2J" in labels


def test_result_html_escapes_the_model_name():
    from dataclasses import replace

    page = replace(fake_result(), model_name="m\x1b[31m<b>")._repr_html_()
    assert "\x1b" not in page and "&lt;b&gt;" in page
