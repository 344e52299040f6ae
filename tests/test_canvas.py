"""The canvas widgets' state: the grid (absent heads, detected, colour scales) and the heatmap (cells as
bytes, pooling of long windows, labels only where they can be read)."""

import pytest
import torch
from fake_results import fake_result

from induction_nb.analysis.results import DetectionResult
from induction_nb.draw.canvas_state import grid_state, heatmap_state
from induction_nb.explorer.canvas import HeadGrid, HeatmapView


def test_grid_state_values_detected_and_scale():
    r = fake_result(4, 3, kept=((1, 1),), sequence_length=8)
    state = grid_state(r, "prefix_matching", (2, 1), {(1, 1)})
    assert state["values"][1 * 3 + 1] == pytest.approx(r.score(1, 1).prefix_matching, abs=1e-5)
    assert state["detected"] == sorted(l * 3 + h for l, h in r.induction_heads)
    assert state["available"] == [4] and state["selected"] == [2, 1] and (state["vmin"], state["vmax"]) == (0.0, 1.0)
    HeadGrid(**state)  # every key is a synced trait


def test_signed_metric_gets_a_scale_centred_on_zero():
    r = fake_result(2, 2, kept=(), sequence_length=8)
    scores = tuple(s.with_values(causal_effect=-0.5 if s.head else 0.2) for s in r.head_scores)
    state = grid_state(DetectionResult(scores, 0.4, "m", 2, 2), "causal_effect")
    assert state["vmin"] == -state["vmax"] == pytest.approx(-0.5) and len(state["stops"]) == 7


def test_heatmap_cells_are_the_pattern():
    A = torch.softmax(torch.randn(20, 20, generator=torch.Generator().manual_seed(0)), -1)
    state = heatmap_state(A, [f"t{i}" for i in range(20)], 5, (2, 18), "title")
    cells = torch.frombuffer(bytearray(state["data"]), dtype=torch.uint8).view(16, 16).float() / 255
    torch.testing.assert_close(cells, A[2:18, 2:18], atol=0.5 / 255 + 1e-6, rtol=0)
    assert state["labels"] == [f"t{i}" for i in range(2, 18)] and state["period"] == 5 and state["factor"] == 1
    HeatmapView(**state)


def test_a_4k_pattern_is_pooled_and_its_stripe_survives():
    """4,096 positions: 512 x 512 cells (block max of 8 x 8), no labels; a one-position stripe is still there."""
    n, period = 4096, 1000
    A = torch.zeros(n, n)
    q = torch.arange(period, n)
    A[q, q - period + 1] = 1.0
    state = heatmap_state(A, [str(i) for i in range(n)], period, (0, n), "long")
    assert (state["n"], state["factor"], state["labels"]) == (512, 8, [])
    cells = torch.frombuffer(bytearray(state["data"]), dtype=torch.uint8).view(512, 512)
    assert int(cells.sum()) // 255 >= (n - period) // 8, "every pooled row of the stripe keeps its maximum"


def test_long_labels_are_cut_and_escaped():
    state = heatmap_state(torch.eye(3), ["<|im_start|>", "a\nb", "x"], None, (0, 3), "t")
    assert state["labels"] == ["<|im_st~", "a\\nb", "x"] and state["period"] == 0
