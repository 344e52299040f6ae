"""draw.evidence_views and the explorer's evidence panel: the one-page summary figure of an evidence report (a
panel per line, titled with its verdict; a line not measured says why), the evidence of one head as text and
HTML, and HeadExplorer(..., evidence=report).

Two reports: one measured on the hand-built model (lines 3 and 5; the costly parts skipped) and one written by
hand and read back with ``EvidenceReport.load``, so that lines 1, 2, 4 and 6 have data and the views are shown
to need nothing but the saved JSON."""

from __future__ import annotations

import math
import warnings

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from induction_nb import HandBuiltInduction, InductionHeadDetector, InputError
from induction_nb.causal import EvidenceReport, evidence_report
from induction_nb.causal.evidence_lines import line, not_measured
from induction_nb.draw import plot_evidence, text_evidence_head
from induction_nb.draw.evidence_views import evidence_head_html
from induction_nb.explorer.widgets import HeadExplorer

PERIOD = 16


@pytest.fixture(scope="module")
def toy():
    return HandBuiltInduction(period=PERIOD)


@pytest.fixture(scope="module")
def report(toy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evidence_report(toy, concept=False, fuzzy=False, n_random=2)


def _hand_made() -> EvidenceReport:
    """A report of an imagined model with every line measured (values as the line builders write them)."""
    one = line(
        1, 0.8, (math.nan, math.nan), 0.2, "supports", "phase change at steps 200-400",
        ("formation(checkpoints)",),
        {"steps": [0, 100, 200, 300, 400, 500], "icl": [-0.1, -0.1, -0.3, -1.2, -1.5, -1.5], "start": 200,
         "end": 400, "abrupt": True, "icl_gain": 1.4},
    )  # fmt: skip
    two = line(
        2, 2 / 3, (math.nan, math.nan), 0.0, "inconclusive", "3 seeds", ("compare_smeared_keys(seeds)",),
        {"seeds": [0, 1, 2], "formed": {"plain": [400, None, 300], "smeared": [200, 250, 300]},
         "icl": {"plain": [400, None, 300], "smeared": [200, 250, 350]}},
    )  # fmt: skip
    change = {"induction": 0.9, "knockout": 0.7, "random": [0.01, -0.02, 0.05]}
    three = line(3, 0.9, (-0.02, 0.05), 0.013, "supports", "removing 2 heads", (), {"change": {"repeated": change}})
    part = {"measured": True, "mean": 0.3, "low": 0.2, "high": 0.4, "median": 0.05, "verdict": "supports"}
    four = line(4, 0.3, (0.2, 0.4), 0.05, "supports", "fuzzy", (), {"concept": part, "fuzzy": part})
    rows = {
        "L2H1": {"ov_copying": 0.8, "k_composer": "L0H3", "k_ratio": 3.0, "feeder": "L1H2", "feeder_k_ratio": 2.5,
                 "feeder_is_previous_token": True},
        "L3H0": {"ov_copying": -0.2, "k_composer": "L1H2", "k_ratio": 1.5, "feeder": "L1H2", "feeder_k_ratio": 1.5,
                 "feeder_is_previous_token": False},
    }  # fmt: skip
    five = line(5, 0.3, (-0.2, 0.8), 0.0, "against", "two heads", (), {"per_head": rows})
    table = {"imagined": {"line3": "supports", "line4": "supports", "line5": "against"}}
    table["small"] = {"line3": "inconclusive", "line4": "not measured", "line5": "supports"}
    six = line(6, 0.0, (math.nan, math.nan), None, "inconclusive", "2 models", (), {"rows": table})
    per_head = {(2, 1): {"overall_score": 0.7, "overall_interval": [0.6, 0.8], **rows["L2H1"]}}
    per_head[(3, 0)] = {"overall_score": 0.5, **rows["L3H0"]}
    other = EvidenceReport("small", [(1, 0)], [not_measured(n, "skipped") for n in range(1, 7)], {(1, 0): {}})
    return EvidenceReport("imagined", [(2, 1), (3, 0)], [one, two, three, four, five, six], per_head, {"small": other})


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = _hand_made().save(tmp_path_factory.mktemp("evidence") / "imagined.json")
    return EvidenceReport.load(path)


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts).replace("\n", " ")


def test_six_panels_titled_with_their_verdicts(report):
    fig = plot_evidence(report)
    try:
        assert tuple(fig.get_size_inches()) == pytest.approx((7.2, 4.8))
        titles = _titles(fig)
        assert len(titles) == 6
        for title, x in zip(titles, report.lines):
            assert title == f"({x.number}) {x.name}: {x.verdict}"
        assert report.line(3).verdict == "supports" and fig.axes[2].collections, "line 3 is drawn as dots"
        assert fig.axes[4].patches, "line 5 is drawn as bars"
        assert "L0H0" in _texts(fig.axes[4]), "the feeder is named"
    finally:
        plt.close(fig)


def test_a_panel_not_measured_gives_its_reason(report):
    fig = plot_evidence(report)
    try:
        for number in (1, 2, 4, 6):
            ax = fig.axes[number - 1]
            assert "not measured" in ax.get_title() and not ax.lines and not ax.collections
        assert "pass formation=" in _texts(fig.axes[0])
        assert "skipped (concept=False)" in _texts(fig.axes[3])
    finally:
        plt.close(fig)


def test_the_figure_draws_a_loaded_report_with_every_line(loaded):
    fig, axes = plt.subplots(2, 3)
    try:
        assert plot_evidence(loaded, axes) is fig
        titles = _titles(fig)
        assert titles[0] == "(1) co-occurrence: supports" and titles[4] == "(5) mechanism: against"
        assert all("not measured" not in t for t in titles)
        assert fig.axes[0].patches, "the rise window is shaded"
        assert "never" in _texts(fig.axes[1]), "a seed whose heads never formed is drawn at the top, labelled"
        assert [t.get_text() for t in fig.axes[5].get_yticklabels()] == ["imagined", "small"]
        assert "against" in _texts(fig.axes[5]) and "L1H2*" in _texts(fig.axes[4])
    finally:
        plt.close(fig)


def test_the_figure_refuses_what_is_not_a_report_or_too_few_axes(report):
    with pytest.raises(InputError, match="evidence report"):
        plot_evidence({"lines": []})
    fig, axes = plt.subplots(1, 3)
    with pytest.raises(InputError, match="six Axes"):
        plot_evidence(report, axes)
    plt.close(fig)


def test_text_of_one_head_holds_its_numbers_and_verdicts(report):
    row = report.head(1, 0)
    text = text_evidence_head(report, 1, 0)
    assert f"{row['ov_copying']:+.3f}" in text and f"{row['feeder_drop']:+.3f}" in text
    assert "circuit's top feeder" in text and row["feeder"] == "L0H0" and "L0H0" in text
    assert f"{row['overall_score']:.3f}" in text and "(3) ablation: supports" in text
    assert all(len(x) <= 80 for x in text.splitlines())
    html = evidence_head_html(report, 1, 0)
    assert f"{row['ov_copying']:+.3f}" in html and "(5) mechanism: supports" in html


def test_a_head_not_measured_is_said_so(report, loaded):
    for view in (text_evidence_head, evidence_head_html):
        assert "measured only the induction heads L1H0" in view(report, 0, 0).replace("\n", " ")
    assert "L2H1, L3H0" in text_evidence_head(loaded, 0, 0, width=200)
    assert "0.700 [0.600, 0.800]" in text_evidence_head(loaded, 2, 1)
    with pytest.raises(InputError, match="integers"):
        text_evidence_head(report, "1", 0)


@pytest.fixture(scope="module")
def explorer(toy, report):
    result = InductionHeadDetector(toy, batch_size=2).detect(sequence_length=2 * PERIOD)
    return HeadExplorer(result, toy, evidence=report, n_examples=2)


def test_the_explorer_shows_the_selected_heads_evidence(explorer, report):
    ov = f"{report.head(1, 0)['ov_copying']:+.3f}"
    explorer.select(1, 0)
    assert "L1H0" in explorer.evidence.value and ov in explorer.evidence.value
    assert "EVIDENCE OF L1H0" in explorer.text() and ov in explorer.text()
    explorer.select(0, 0)
    assert "measured only the induction heads L1H0" in explorer.evidence.value
    assert "L0H0: this evidence report" in explorer.text()
    explorer.grid.selected = [1, 0]  # a click on the grid
    assert ov in explorer.evidence.value


def test_the_explorer_refuses_another_models_report(explorer, loaded):
    with pytest.raises(InputError, match="imagined.*HandBuiltInduction|HandBuiltInduction.*imagined"):
        HeadExplorer(explorer.result, explorer.model, evidence=loaded)
    with pytest.raises(InputError, match="evidence report"):
        HeadExplorer(explorer.result, explorer.model, evidence="report.json")
