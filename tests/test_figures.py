"""Paper figures against committed baseline images (matplotlib's compare_images, RMS tolerance), plus
byte-stable export, bad input, and geometry measured with the Agg renderer (legends clear of labels and
data, point labels clear of each other). A test run only compares; regenerate the baselines deliberately
with ``make snapshots`` and review them."""

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from fake_results import probe_score
from matplotlib.testing.compare import compare_images
from test_ascii import TOKENS, fake_result, stripe_pattern

from induction_nb import InputError
from induction_nb.draw import (
    plot_attention_heatmap,
    plot_circuit_graph,
    plot_effects_scatter,
    plot_metric_scatter,
    plot_mosaic,
    plot_score_heatmap,
    plot_stripe_profile,
    plot_training_run,
    save_figure,
    shared_legend,
)

BASELINE = Path(__file__).parent / "baseline"
TOLERANCE = 2.0  # RMS over 0..255 pixel values


def check(fig, name: str, tmp_path: Path) -> None:
    actual = tmp_path / f"{name}.png"
    save_figure(fig, actual)
    plt.close(getattr(fig, "figure", fig))
    import references

    expected = BASELINE / f"{name}.png"
    if references.UPDATE:
        expected.write_bytes(actual.read_bytes())
    assert expected.exists(), references.missing(expected)
    diff = compare_images(str(expected), str(actual), tol=TOLERANCE)
    assert diff is None, diff


def test_score_heatmap(tmp_path):
    check(plot_score_heatmap(fake_result()), "score_heatmap", tmp_path)
    check(plot_score_heatmap(fake_result(), metric="previous_token"), "score_heatmap_previous_token", tmp_path)


def test_attention_heatmap_with_tokens_and_stripe(tmp_path):
    check(plot_attention_heatmap(stripe_pattern(), TOKENS, period=4, title="L2H1"), "attention_heatmap", tmp_path)


def test_attention_heatmap_windowed(tmp_path):
    check(
        plot_attention_heatmap(stripe_pattern(n=200, period=80), period=80, window=(70, 130)),
        "attention_heatmap_window",
        tmp_path,
    )


def test_metric_scatter(tmp_path):
    check(plot_metric_scatter(fake_result(), "prefix_matching", "overall_score"), "metric_scatter", tmp_path)


def test_stripe_profile(tmp_path):
    check(plot_stripe_profile(stripe_pattern(n=40, period=10), period=10), "stripe_profile", tmp_path)


def test_mosaic(tmp_path):
    check(
        plot_mosaic({"model A": fake_result(), "model B": fake_result(), "model C": fake_result()}), "mosaic", tmp_path
    )


def test_axes_are_reused_and_returned():
    fig, (a, b) = plt.subplots(1, 2)
    assert plot_score_heatmap(fake_result(), ax=a) is a
    assert plot_stripe_profile(stripe_pattern(), 4, ax=b) is b
    plt.close(fig)


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_export_has_no_version_metadata_and_is_byte_stable(tmp_path, fmt):
    import matplotlib as mpl

    outs = []
    for i in range(2):
        ax = plot_score_heatmap(fake_result())
        (path,) = save_figure(ax, tmp_path / f"f{i}", formats=[fmt])
        plt.close(ax.figure)
        outs.append(path.read_bytes())
    assert outs[0] == outs[1]
    assert mpl.__version__.encode() not in outs[0]
    assert b"Matplotlib" not in outs[0] and b"matplotlib.org" not in outs[0]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: plot_mosaic({}), "zero models"),
        (lambda: plot_mosaic([]), "zero models"),
        (lambda: plot_attention_heatmap(stripe_pattern()[:, :5]), "square"),
        (lambda: plot_attention_heatmap(stripe_pattern(), window=(5, 3)), "window"),
        (lambda: plot_attention_heatmap(stripe_pattern(), tokens=["a"]), "tokens has 1"),
        (lambda: plot_stripe_profile(stripe_pattern(), period=12), "period must be"),
        (lambda: save_figure(plt.figure(), "x.jpg"), "unsupported figure format"),
        (lambda: plot_score_heatmap({"L0H0": 0.5}), "needs a scan result .*got dict"),
        (lambda: plot_metric_scatter([0.1, 0.2]), "needs a scan result .*got list"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()
    plt.close("all")


def test_compare_heads_titles_with_what_each_scan_measured():
    """A probe scan's head shows its prefix-matching and previous-token scores; a retrieval scan's head,
    which has neither, its overall (retrieval) score, instead of failing."""
    from induction_nb import HeadScore
    from induction_nb.draw import compare_heads

    probe = fake_result().score(2, 1)
    retrieval = HeadScore(3, 0, {"overall_score": 0.42})
    fig = compare_heads([(probe, stripe_pattern(), None, 4), (retrieval, stripe_pattern(), None, None)])
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == ["L2H1: prefix 0.87, prev 0.01", "L3H0: overall 0.42"]
    plt.close(fig)


def test_empty_result():
    from induction_nb import DetectionResult

    with pytest.raises(InputError, match="empty"):
        plot_score_heatmap(DetectionResult((), 0.4, "nothing", 0, 0))


def test_effects_scatter_and_loss_curve_draw_what_they_are_given():
    import torch

    from induction_nb.causal.effects import HeadEffects
    from induction_nb.causal.loss_curve import LossCurve
    from induction_nb.draw import plot_loss_curve

    est = torch.tensor([[0.1, 0.5], [0.9, float("nan")]])
    exact = torch.tensor([[0.2, float("nan")], [1.0, float("nan")]])
    effects = HeadEffects(est, 3, "attribution", "zero", exact, ((1, 0), (0, 0)))
    ax = plot_effects_scatter(effects)
    points = ax.collections[0].get_offsets()
    assert sorted(map(tuple, points.tolist())) == [
        (pytest.approx(0.2), pytest.approx(0.1)),
        (pytest.approx(1.0), pytest.approx(0.9)),
    ]
    with pytest.raises(InputError, match="no head was measured exactly"):
        plot_effects_scatter(HeadEffects(est, 3, "attribution", "zero", torch.full_like(est, float("nan"))))
    loss = torch.tensor([float("nan"), 5.0, 4.0, 3.0, 2.0, 1.0])
    curve = LossCurve(loss, torch.ones(6), torch.tensor([-2.0]), 1, 4, 1, (), "zero", 1, -2.0, -2.0, 0)
    ax = plot_loss_curve([curve], labels=["intact"], smooth=1)
    assert (
        list(ax.lines[0].get_ydata()) == [5.0, 4.0, 3.0, 2.0, 1.0]
        and "intact: ICL -2.00" in ax.get_legend().texts[0].get_text()
    )
    plt.close("all")


# Geometry, measured with the Agg renderer in display pixels: legends clear of labels and data, point
# labels clear of each other. A box "overlaps" another when their intersection has a positive area.


def _overlap(a, b) -> float:
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def _axis_texts(ax):
    """Every axis label, tick label (either side), offset text ("1e-5") and title of ``ax`` that is drawn."""
    texts = [ax.xaxis.label, ax.yaxis.label, ax.xaxis.offsetText, ax.yaxis.offsetText, ax.title]
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        # the locator also makes ticks just beyond the limits, which are not drawn
        texts += [
            label
            for tick in axis.get_major_ticks()
            if lo <= tick.get_loc() <= hi
            for label in (tick.label1, tick.label2)
        ]
    return [t for t in texts if t.get_visible() and t.get_text()]


def assert_legend_clear(legend, fig) -> None:
    """The legend lies inside the figure and overlaps no axes' frame (so no data) and no axis text."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = legend.get_window_extent(r)
    assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        assert _overlap(box, ax.bbox) == 0, f"the legend covers {ax.get_ylabel() or 'an axes'}' frame"
        for text in _axis_texts(ax):
            hit = _overlap(box, text.get_window_extent(r))
            assert hit == 0, f"the legend covers {text.get_text()!r} ({hit:.0f} px^2)"


def training_run(scale: float = 1.0):
    from induction_nb.analysis.training import Checkpoint, TrainingRun

    steps = range(200, 2001, 200)
    return TrainingRun(
        0,
        tuple(
            Checkpoint(s, 3.0, scale * (4.0 - 0.3 * i), (1, 0), 0.09 * i, ((1, 0),) if i >= 5 else ())
            for i, s in enumerate(steps)
        ),
        None,
    )


@pytest.mark.parametrize("scale", [1.0, 1e-6])  # 1e-6: the loss axis gets an offset text above its frame
def test_training_run_legend_clears_both_axes(scale):
    """Notebook 08's twin-axes plot: its corner fig.legend lay on the right axis' label and ticks."""
    ax = plot_training_run(training_run(scale))
    (twin,) = [a for a in ax.figure.axes if a is not ax]
    assert twin.get_ylabel() == "best overall score"
    assert [t.get_text() for t in ax.get_legend().texts] == [
        "loss on repeated tokens",
        "first detected head (step 1200)",
        "best induction score",
    ]
    assert_legend_clear(ax.get_legend(), ax.figure)
    plt.close(ax.figure)


def test_shared_legend_over_panels_and_under_a_title():
    """Notebook 09's two panels (one entry per head, named in both) and twin axes under a title."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    for i in range(7):
        left.plot([1, 2, 4], [0.1 * i, 0.5, 1.0], marker="o", label=f"L{17 + i}H{i}")
        right.plot([1, 2, 4], [1.0, 0.5, 0.1 * i], marker="o", label=f"L{17 + i}H{i}")
    for ax in (left, right):
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("score")
    legend = shared_legend(left, right)
    assert len(legend.texts) == 7
    assert_legend_clear(legend, fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    ax.plot([0, 1], [0, 1], label="left line")
    twin = ax.twinx()
    twin.plot([0, 1], [1, 0], color="C1", label="right line")
    ax.set_title("a title that the legend must not cover")
    twin.set_ylabel("right axis")
    assert_legend_clear(shared_legend(ax, twin), fig)
    plt.close(fig)
    with pytest.raises(InputError, match="no line, point or patch"):
        shared_legend(plt.subplots()[1])
    plt.close("all")


def crowded_result():
    """Six heads above the threshold at nearly one point, (0.9, 0.95), six far below."""
    from induction_nb import DetectionResult

    scores = []
    for i in range(12):
        v, c = (0.9 + 0.004 * i, 0.95 + 0.002 * i) if i < 6 else (0.05, 0.1)
        scores.append(probe_score(i // 4, i % 4, v, v, c, 0.01, 0.04, 0.1, v, v - 0.04, v + 0.03))
    return DetectionResult(tuple(scores), 0.4, "crowded", 3, 4, {}, seed=0)


class _Circuit:
    """Six heads side by side in two layers of a 32-head model (Llama-sized), each feeding the next layer."""

    def top(self, n):
        return [((0, h), (1, h), 1.0 - 0.1 * h) for h in range(3)][:n]


def _effects():
    import torch

    from induction_nb.causal.effects import HeadEffects

    est = torch.tensor([[0.9, 0.91, 0.92, 0.0], [0.905, 0.915, 0.895, 0.05]])
    return HeadEffects(est, 3, "attribution", "zero", est + 0.001, ())


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plot_metric_scatter(crowded_result(), "prefix_matching", "copying", label_top=6),
        lambda: plot_effects_scatter(_effects(), label_top=6),
        lambda: plot_circuit_graph(_Circuit(), n_heads=32),
    ],
    ids=["metric_scatter", "effects_scatter", "circuit_graph"],
)
def test_point_labels_do_not_overlap(draw):
    """Six labels for points a few pixels apart: before, five of them lay on top of one another."""
    from matplotlib.text import Text

    ax = draw()
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text()]
    assert len(labels) == 6
    # the text alone: an Annotation's own extent also spans its leader line
    boxes = [Text.get_window_extent(t, r) for t in labels]
    for i, a in enumerate(boxes):
        assert ax.bbox.x0 <= a.x0 and a.x1 <= ax.bbox.x1 and ax.bbox.y0 <= a.y0 and a.y1 <= ax.bbox.y1
        for j, b in enumerate(boxes[:i]):
            assert _overlap(a, b) == 0, f"{labels[i].get_text()} overlaps {labels[j].get_text()}"
        for t in labels:  # no label hides a labelled point
            x, y = ax.transData.transform(t.xy)
            assert not (a.x0 <= x <= a.x1 and a.y0 <= y <= a.y1)
    assert_legend_clear(ax.get_legend(), fig)
    plt.close(fig)


@pytest.mark.parametrize(
    "draw,entries",
    [
        (lambda: plot_score_heatmap(fake_result()), ["detected (overall >= 0.40)"]),
        (
            lambda: plot_attention_heatmap(stripe_pattern(), TOKENS, period=4, title="L2H1"),
            ["induction stripe (k = q - 3)"],
        ),
        (
            lambda: plot_stripe_profile(stripe_pattern(n=40, period=10), period=10),
            ["on the stripe", "largest elsewhere", "mean elsewhere"],
        ),
        (
            lambda: plot_metric_scatter(fake_result(), "prefix_matching", "overall_score"),
            ["other heads", "detected (overall >= 0.40)", "threshold 0.40"],
        ),
    ],
    ids=["score_heatmap", "attention_heatmap", "stripe_profile", "metric_scatter"],
)
def test_legends_name_what_is_drawn_and_cover_nothing(draw, entries):
    """Each marked thing has its legend entry (the heatmap's outline had none), each colour bar its
    label, and the legend covers no cell, line, point or label."""
    ax = draw()
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.texts] == entries
    for cax in ax.figure.axes:
        if cax is not ax:  # a colour bar
            assert cax.get_ylabel()
    assert_legend_clear(legend, ax.figure)
    plt.close(ax.figure)


def test_mosaic_names_the_outline_once():
    fig = plot_mosaic({"model A": fake_result(), "model B": fake_result()})
    assert [a.get_legend() for a in fig.axes] == [None] * len(fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.texts] == ["detected (overall >= 0.40)"]
    assert_legend_clear(legend, fig)
    plt.close(fig)


def test_a_signed_metric_keeps_its_sign_in_scatter_heatmap_and_mosaic():
    """An ablation effect (nats, either sign) is not drawn on a [0, 1] axis: the scatter's axis spans its
    values and zero, names its unit; heatmaps centre a diverging map on 0; a mosaic shares one scale."""
    from test_ascii import signed_result

    small = signed_result()  # effects from -0.3 to 0.6
    large = fake_result().with_causal_effects([[2.0 if h == 1 else -1.5 for h in range(4)] for _ in range(3)])
    ax = plot_metric_scatter(small, "prefix_matching", "causal_effect")
    low, high = ax.get_ylim()
    assert low < -0.3 and 0.6 < high < 1.0 and ax.get_xlim() == pytest.approx((-0.02, 1.02))
    assert ax.get_ylabel().endswith("(nats)")
    plt.close(ax.figure)
    image = plot_score_heatmap(small, "causal_effect").images[0]
    assert image.get_clim() == pytest.approx((-0.6, 0.6))
    plt.close(image.figure)
    fig = plot_mosaic({"small": small, "large": large}, "causal_effect")
    assert [a.images[0].get_clim() for a in fig.axes if a.images] == [pytest.approx((-2.0, 2.0))] * 2
    plt.close(fig)
    with pytest.raises(InputError, match=r"has no 'causal_effect' .*add it with result.with_causal_effects"):
        plot_score_heatmap(fake_result(), "causal_effect")
    undefined = replace(small, head_scores=tuple(s.with_values(causal_effect=None) for s in small.head_scores))
    with pytest.raises(InputError, match="has no value of 'causal_effect' for any head"):
        plot_score_heatmap(undefined, "causal_effect")


def test_loss_curve_labels_must_name_every_curve():
    """Fewer (or more) labels than curves is refused: zip would silently drop curves."""
    import torch

    from induction_nb.causal.loss_curve import LossCurve
    from induction_nb.draw import plot_loss_curve

    loss = torch.tensor([float("nan"), 5.0, 4.0, 3.0, 2.0, 1.0])
    curve = LossCurve(loss, torch.ones(6), torch.tensor([-2.0]), 1, 4, 1, (), "zero", 1, -2.0, -2.0, 0)
    for labels in (["intact"], ["a", "b", "c"]):
        with pytest.raises(InputError, match=f"labels has {len(labels)} names for 2 curves"):
            plot_loss_curve([curve, curve], labels=labels)
    assert len(plot_loss_curve([curve, curve], labels=["a", "b"]).lines) == 4  # two curves, two markers
    plt.close("all")


def test_effects_scatter_takes_tensors_with_exact_and_refuses_them_without():
    """The documented tensor input works with ``exact=``; without it, an InputError says what to pass
    (it was an AttributeError)."""
    import torch

    est = torch.tensor([[0.1, 0.5], [0.9, 0.2]])
    exact = torch.tensor([[0.2, float("nan")], [1.0, 0.3]])
    ax = plot_effects_scatter(est, exact)
    assert len(ax.collections[0].get_offsets()) == 3
    with pytest.raises(InputError, match="carries no exact effects; pass exact="):
        plot_effects_scatter(est)
    with pytest.raises(InputError, match="same model"):
        plot_effects_scatter(est, torch.zeros(3, 2))
    with pytest.raises(InputError, match="label_top must be an integer >= 0"):
        plot_effects_scatter(est, exact, label_top=-1)
    plt.close("all")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: plot_attention_heatmap(stripe_pattern(), max_cells=0), "max_cells must be a positive integer"),
        (lambda: plot_attention_heatmap(stripe_pattern(), max_cells=-3), "max_cells must be a positive integer"),
        (lambda: plot_attention_heatmap(stripe_pattern(), max_cells=2.5), "max_cells must be a positive integer"),
        (lambda: plot_attention_heatmap(stripe_pattern(), period=2.5), r"period must be an integer in \[1, 11\]"),
        (lambda: plot_attention_heatmap(stripe_pattern(), period=4, offset=-1), "offset must be an integer in"),
        (lambda: plot_mosaic([fake_result()], ncols=0), "ncols must be a positive integer"),
        (lambda: plot_mosaic([fake_result()], ncols=-1), "ncols must be a positive integer"),
        (lambda: plot_circuit_graph(_Circuit(), n=0), "n must be a positive integer"),
        (lambda: plot_circuit_graph(_Circuit(), n=-1), "n must be a positive integer"),
    ],
)
def test_counts_and_sizes_are_checked(call, match):
    with pytest.raises(InputError, match=match):
        call()
    plt.close("all")


def test_panel_axes_reads_any_shape_in_row_order():
    """A (1, 2) grid of ``squeeze=False`` is two Axes, a 2 x 2 grid four (never its rows); too few is refused
    with the count."""
    from induction_nb.draw.style import panel_axes

    fig, grid = plt.subplots(1, 2, squeeze=False)
    assert panel_axes(grid, 2, "f") == list(grid.flat)
    fig, grid = plt.subplots(2, 2)
    assert panel_axes(grid, 3, "f") == list(grid.flat)
    assert panel_axes([list(grid[0]), [grid[1, 0]]], 3, "f") == list(grid.flat)[:3]
    with pytest.raises(InputError, match="f draws three panels: pass three Axes .*got 1"):
        panel_axes(grid[0, 0], 3, "f")
    plt.close("all")
