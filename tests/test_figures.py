"""Paper figures against committed baseline images (matplotlib's compare_images, RMS tolerance), plus
byte-stable export and bad input. A test run only compares; regenerate the baselines deliberately with
``make snapshots`` and review them."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.testing.compare import compare_images  # noqa: E402

from induction_nb import InputError  # noqa: E402
from induction_nb.figures import (plot_attention_heatmap, plot_metric_scatter, plot_mosaic,  # noqa: E402
                                  plot_score_heatmap, plot_stripe_profile, save_figure)
from test_ascii import TOKENS, fake_result, stripe_pattern  # noqa: E402

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
    check(plot_attention_heatmap(stripe_pattern(n=200, period=80), period=80, window=(70, 130)),
          "attention_heatmap_window", tmp_path)


def test_metric_scatter(tmp_path):
    check(plot_metric_scatter(fake_result(), "prefix_matching", "overall_score"), "metric_scatter", tmp_path)


def test_stripe_profile(tmp_path):
    check(plot_stripe_profile(stripe_pattern(n=40, period=10), period=10), "stripe_profile", tmp_path)


def test_mosaic(tmp_path):
    check(plot_mosaic({"model A": fake_result(), "model B": fake_result(), "model C": fake_result()}), "mosaic", tmp_path)


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
    ],
)
def test_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()
    plt.close("all")


def test_empty_result():
    from induction_nb import DetectionResult

    with pytest.raises(InputError, match="empty"):
        plot_score_heatmap(DetectionResult((), 0.4, "nothing", 0, 0))


def test_effects_scatter_and_loss_curve_draw_what_they_are_given():
    import torch

    from induction_nb.effects import HeadEffects
    from induction_nb.figures import plot_effects_scatter, plot_loss_curve
    from induction_nb.loss_curve import LossCurve

    est = torch.tensor([[0.1, 0.5], [0.9, float("nan")]])
    exact = torch.tensor([[0.2, float("nan")], [1.0, float("nan")]])
    effects = HeadEffects(est, 3, "attribution", "zero", exact, ((1, 0), (0, 0)))
    ax = plot_effects_scatter(effects)
    points = ax.collections[0].get_offsets()
    assert sorted(map(tuple, points.tolist())) == [(pytest.approx(0.2), pytest.approx(0.1)),
                                                   (pytest.approx(1.0), pytest.approx(0.9))]
    with pytest.raises(InputError, match="no head was measured exactly"):
        plot_effects_scatter(HeadEffects(est, 3, "attribution", "zero", torch.full_like(est, float("nan"))))
    loss = torch.tensor([float("nan"), 5.0, 4.0, 3.0, 2.0, 1.0])
    curve = LossCurve(loss, torch.ones(6), torch.tensor([-2.0]), 1, 4, 1, (), "zero", 1, -2.0, -2.0, 0)
    ax = plot_loss_curve([curve], labels=["intact"], smooth=1)
    assert list(ax.lines[0].get_ydata()) == [5.0, 4.0, 3.0, 2.0, 1.0] and "intact: ICL -2.00" in ax.get_legend().texts[0].get_text()
    plt.close("all")
