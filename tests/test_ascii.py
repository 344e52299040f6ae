"""Terminal views: snapshots of every output, the width bound, windowing/downsampling, bad input.

Snapshots live in tests/snapshots/; a test run only compares. Regenerate them deliberately with
``make snapshots`` and review the diff.
"""

from pathlib import Path

import pytest
import torch

from induction_nb import (DetectionResult, HeadScore, InputError, create_analysis_report, plot_attention_pattern,
                          plot_head_scores, plot_induction_stripe, plot_score_map)

SNAPSHOTS = Path(__file__).parent / "snapshots"


def snapshot(name: str, text: str) -> None:
    import references

    path = SNAPSHOTS / f"{name}.txt"
    if references.UPDATE:
        path.write_text(text + "\n")
    assert path.exists(), references.missing(path)
    assert text + "\n" == path.read_text(), f"{name} differs from {path} (make snapshots to accept a deliberate change)"


def stripe_pattern(n: int = 12, period: int = 4, weight: float = 0.75) -> torch.Tensor:
    """Induction stripe at q - period + 1 for q >= period; the rest of each row spread uniformly."""
    A = torch.zeros(n, n)
    for q in range(n):
        if q >= period:
            A[q, : q + 1] = (1 - weight) / q
            A[q, q - period + 1] = weight
        else:
            A[q, : q + 1] = 1 / (q + 1)
    return A


def fake_result() -> DetectionResult:
    scores = []
    for layer in range(3):
        for head in range(4):
            v = {(2, 1): 0.82, (1, 3): 0.55, (2, 0): 0.31}.get((layer, head), 0.02 * (layer + head))
            prev = 0.9 if (layer, head) == (0, 2) else 0.01
            scores.append(HeadScore(layer, head, v + 0.05, v + 0.01, 0.97, prev, 0.04, 0.1, v, v - 0.04, v + 0.03))
    return DetectionResult(tuple(scores), 0.4, "toy-model", 3, 4, {"sequence_length": 64, "batch_size": 8}, seed=11)


TOKENS = ["<s>", "A", "B", "C", "D", "A", "B", "C", "D", "A", "B", "\n"]  # period 4 after BOS


@pytest.mark.parametrize("charset", ["unicode", "ascii"])
def test_snapshots(charset):
    A = stripe_pattern()
    r = fake_result()
    snapshot(f"pattern_{charset}", plot_attention_pattern(A, tokens=TOKENS, width=60, charset=charset))
    snapshot(f"stripe_{charset}", plot_induction_stripe(A, period=4, tokens=TOKENS, charset=charset))
    snapshot(f"scores_{charset}", plot_head_scores([s.to_dict() for s in r.head_scores], top=6, width=60,
                                                   charset=charset))
    snapshot(f"map_{charset}", plot_score_map(r, charset=charset))


def test_report_snapshots_and_original_headings():
    r = fake_result()
    brief = create_analysis_report(r, detailed=False)
    snapshot("report_brief", brief)
    lines = brief.splitlines()
    for heading in ["INDUCTION HEAD ANALYSIS REPORT", "==============================", "Model Info:", "n_layers: 3",
                    "Detection Summary:", "Threshold: 0.40", "Heads detected: 2", "Top Heads by Score:"]:
        assert heading in lines
    assert "L02H01: 0.820 [########--]" in lines
    detailed = create_analysis_report(r, detailed=True)
    snapshot("report_detailed", detailed)
    for part in ["Per-Head Metrics", "Layer x Head Map:", "Previous-Token Heads", "L00H02 0.90", "Settings:",
                 "sequence_length: 64", "Seed: 11"]:
        assert part in detailed


@pytest.mark.parametrize("width", [40, 57, 80, 120])
def test_never_wider_than_width(width):
    long = stripe_pattern(n=300, period=100)
    r = fake_result()
    outputs = [
        plot_attention_pattern(long, width=width),
        plot_attention_pattern(long, tokens=[f"tok{i}" for i in range(300)], width=width, charset="ascii"),
        plot_induction_stripe(long, period=100, width=width),
        plot_head_scores([s.to_dict() for s in r.head_scores], width=width),
        plot_score_map(r, width=width),
        create_analysis_report(r, detailed=True, width=width),
    ]
    for text in outputs:
        assert max(len(line) for line in text.splitlines()) <= width


def test_downsampling_keeps_a_one_cell_stripe_and_window_zooms():
    long = stripe_pattern(n=300, period=100, weight=0.9)
    text = plot_attention_pattern(long, width=80)
    assert "downsampled x5 (block max)" in text and "█" in text
    zoom = plot_attention_pattern(long, window=(100, 140), width=80)
    rows = zoom.splitlines()[1:-1]
    assert len(rows) == 40 and rows[0].startswith("100")
    # row q=110 (index 10) has its stripe at k = 11, i.e. column 11 - 100 ... outside the window; q=140 would be at 41
    assert all(len(r.split("│", 1)[1]) <= 40 for r in rows)


def test_tokens_are_escaped_and_text_displays_as_itself():
    text = plot_attention_pattern(stripe_pattern(), tokens=TOKENS)
    assert "\\n" in text and "\n11 \n" not in text
    assert repr(text) == str(text)


def test_many_heads_fall_back_to_one_character_cells():
    scores = tuple(HeadScore(0, h, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0, 0.5 if h == 30 else 0.0, 0.0, 0.0) for h in range(40))
    r = DetectionResult(scores, 0.4, "wide", 1, 40)
    text = plot_score_map(r, width=40)
    assert "detected: L0H30" in text and max(map(len, text.splitlines())) <= 40


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: plot_attention_pattern(stripe_pattern(), width=39), "width must be an integer >= 40"),
        (lambda: plot_attention_pattern(torch.ones(3, 4)), "square"),
        (lambda: plot_attention_pattern(stripe_pattern(), tokens=["a"]), "tokens has 1 entries"),
        (lambda: plot_attention_pattern(stripe_pattern(), window=(5, 5)), "window"),
        (lambda: plot_attention_pattern(stripe_pattern(), charset="ebcdic"), "charset"),
        (lambda: plot_induction_stripe(stripe_pattern(), period=12), "period must be an integer in"),
        (lambda: plot_head_scores([]), "no head scores"),
        (lambda: plot_head_scores([{"layer": 0}]), "each score needs"),
        (lambda: plot_head_scores([{"layer": 0, "head": 0, "overall_score": 1}], threshold=2), "threshold"),
        (lambda: create_analysis_report(fake_result(), width=10), "width must be"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_words_longer_than_the_width_are_cut_not_looped_on():
    r = fake_result()
    long = DetectionResult(r.head_scores, r.threshold, "/" + "x" * 200, 3, 4, {"path": "y" * 150})
    for width in (40, 70):
        text = create_analysis_report(long, detailed=True, width=width)
        assert max(map(len, text.splitlines())) <= width
        assert "/" + "x" * 200 in "".join(text.split()), "the long name is wrapped whole, not cut off"


def test_tensor_tokens_label_as_ids_and_threshold_one_is_marked():
    text = plot_attention_pattern(stripe_pattern(), tokens=torch.arange(1000, 1012))
    assert "1003" in text and "tensor" not in text
    bars = plot_head_scores([{"layer": 0, "head": 0, "overall_score": 0.5}], threshold=1.0, charset="ascii")
    assert bars.splitlines()[1].endswith("|")


def test_stripe_with_bos_offset_skips_the_first_block_end():
    A = stripe_pattern(n=9, period=4)  # stripe for q >= 4; with a BOS the repeat starts at q = 5
    text = plot_induction_stripe(A, period=4, offset=1)
    assert "queries 5..8" in text
