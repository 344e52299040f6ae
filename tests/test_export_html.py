"""The static HTML export: one self-contained page (nothing fetched), the grid's state and the heads'
panels inside, every name and token escaped, clear errors. (Opened in Chromium with the network blocked:
tests/test_browser.py.)"""

import json
import re

import pytest
import torch
from fake_results import fake_result

from induction_nb import DetectionResult, InputError
from induction_nb.draw.html_page import save_html


def _state(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="inb-state">(.*?)</script>', page, re.S).group(1))


def test_page_is_self_contained_with_grid_and_kept_heads(tmp_path):
    result = fake_result(80, 64)
    page = result.to_html(tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no remote resource"
    assert "export default" not in page, "the ES module is inlined as a script, not imported"
    state = _state(page)
    assert len(state["values"]) == 80 * 64 and state["n_layers"] == 80 and state["n_heads"] == 64
    assert sorted(state["available"]) == sorted(l * 64 + h for l, h in ((40, 7), (41, 9), (12, 3)))
    assert state["selected"] == [40, 7], "opens on the best kept head"
    panels = re.findall(r"id='inb-panel-L(\d+)-H(\d+)'", page)
    assert sorted(panels) == [("12", "3"), ("40", "7"), ("41", "9")]
    assert page.count("data:image/png;base64,") == 3
    assert "INDUCTION HEAD ANALYSIS REPORT" in page


def test_names_and_tokens_are_escaped(tmp_path):
    r = fake_result(3, 2, kept=((1, 1),), sequence_length=8, batch=1)
    evil = DetectionResult(
        r.head_scores,
        r.threshold,
        "</script><script>alert(1)</script>",
        r.n_layers,
        r.n_heads,
        r.settings,
        0,
        r.kept_patterns,
        r.kept_tokens,
    )
    page = save_html(evil, tmp_path / "e.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    assert _state(page)["n_layers"] == 3, "the embedded state still parses"


def test_a_result_without_patterns_still_exports(tmp_path):
    r = fake_result(4, 4, kept=(), sequence_length=8)
    page = save_html(r, tmp_path / "n.html").read_text()
    assert "No heatmaps in this file" in page and _state(page)["available"] == []


def test_absent_heads_are_null_not_zero(tmp_path):
    """A hybrid model's layer without attention: no score, shown as 'no such head', never as 0."""
    r = fake_result(3, 2, kept=(), sequence_length=8)
    partial = DetectionResult(tuple(s for s in r.head_scores if s.layer != 1), r.threshold, "hybrid", 3, 2, r.settings)
    state = _state(save_html(partial, tmp_path / "h.html").read_text())
    assert state["values"][2:4] == [None, None] and all(v is not None for v in state["values"][:2])


@pytest.mark.parametrize("path, match", [("r.txt", r"\.html"), ("r", r"\.html")])
def test_bad_path(tmp_path, path, match):
    with pytest.raises(InputError, match=match):
        save_html(fake_result(2, 2, kept=(), sequence_length=8), tmp_path / path)


def test_empty_result(tmp_path):
    with pytest.raises(InputError, match="empty"):
        save_html(DetectionResult((), 0.4, "nothing", 0, 0), tmp_path / "x.html")


def test_panel_metrics_are_the_shown_patterns(tmp_path):
    from induction_nb.metrics import pattern_metrics

    r = fake_result(2, 2, kept=((1, 1),), sequence_length=16, batch=1)
    page = save_html(r, tmp_path / "p.html").read_text()
    shown = pattern_metrics(r.kept_patterns[(1, 1)][0], r.kept_tokens[0])
    assert (
        f"<td>prefix matching</td><td>{r.score(1, 1).prefix_matching:.3f}</td><td>{shown['prefix_matching']:.3f}</td>"
        in page
    )
    assert torch.isfinite(torch.tensor(shown["prefix_matching"]))
