"""Formation across checkpoints: each checkpoint's scores equal a fresh detection and ICL score on it; the
cache resumes a series that stopped; the phase-change rule on hand-made series; checkpoint forms and errors."""

import json
import math

import pytest
import torch
from tiny_models import make_hf

from induction_nb import (
    InputError,
    detect_induction_heads,
    formation,
    icl_score,
    plot_formation,
    train_induction_model,
)
from induction_nb.analysis.training import AttentionOnly
from induction_nb.causal.phase_change import log_spaced, rise_window


@pytest.fixture(scope="module")
def run():
    return train_induction_model(0, steps=30, every=10, batch_size=8)


def test_each_checkpoint_equals_the_tools_called_alone(run, tmp_path):
    f = formation(run, cache_dir=tmp_path, batch_size=6, seed=3, n_bootstrap=200, metrics=["previous_token"])
    assert f.steps == (0, 10, 20, 30) and f.cached == (False,) * 4
    for i, step in enumerate(f.steps):
        model = run.model_at(step)
        d = detect_induction_heads(model, batch_size=6, seed=3, n_bootstrap=200, intervals=("prefix_matching",))
        assert torch.equal(torch.tensor(d.score_matrix("prefix_matching")), f.scores["prefix_matching"][i])
        assert torch.equal(torch.tensor(d.score_matrix("previous_token")), f.scores["previous_token"][i])
        low, high = f.intervals["prefix_matching"]
        assert d.score(1, 2).intervals["prefix_matching"] == (float(low[i, 1, 2]), float(high[i, 1, 2]))
        icl = icl_score(model, batch_size=6, seed=3, n_bootstrap=200)
        assert icl["repeated"] == pytest.approx(float(f.icl[i]), abs=1e-6)
        assert icl["repeated_interval"] == pytest.approx((float(f.icl_low[i]), float(f.icl_high[i])), abs=1e-6)
        assert f.icl_low[i] <= f.icl[i] <= f.icl_high[i]
    assert "L" in str(f) and f.head(1, 2).shape == (4,)


def _save(path, seed):
    make_hf("llama_gqa", seed=seed).save_pretrained(path)
    return path


def test_folders_resume_after_a_failure(tmp_path):
    folders = [_save(tmp_path / f"step{s}", seed) for seed, s in enumerate((100, 20, 300))]
    (folders[2] / "config.json").write_text("{broken")  # the series stops at step 300
    cache = tmp_path / "cache"
    with pytest.raises(Exception):  # noqa: B017 - whatever the loader raises for a broken config
        formation(folders, cache_dir=cache, batch_size=4, n_bootstrap=50, sequence_length=24)
    _save(folders[2], 2)  # fixed: only step 300 is measured again
    f = formation(folders, cache_dir=cache, batch_size=4, n_bootstrap=50, sequence_length=24)
    assert f.steps == (20, 100, 300) and f.cached == (True, True, False)  # sorted by the folders' steps
    assert f.seconds[0] == 0.0 and f.seconds[2] > 0
    fresh = formation(folders, cache_dir=False, batch_size=4, n_bootstrap=50, sequence_length=24)
    assert torch.equal(fresh.scores["prefix_matching"], f.scores["prefix_matching"]) and torch.equal(fresh.icl, f.icl)
    other = formation(folders, cache_dir=cache, batch_size=4, n_bootstrap=50, sequence_length=24, seed=1)
    assert other.cached == (False,) * 3  # another setting is another entry
    for entry in cache.glob("*.json"):  # a corrupt entry is measured again, not trusted
        entry.write_text(json.dumps({"key": "x", "record": {}}))
    assert formation(folders, cache_dir=cache, batch_size=4, n_bootstrap=50, sequence_length=24).cached == (False,) * 3


def test_state_dicts_load_into_a_copy(tmp_path):
    template = AttentionOnly(vocab=64, max_len=33).eval()
    before = {k: v.clone() for k, v in template.state_dict().items()}
    states = [AttentionOnly(vocab=64, max_len=33).state_dict() for _ in range(2)]
    f = formation(states, model=template, steps=[5, 50], cache_dir=False, batch_size=4, n_bootstrap=20)
    assert f.steps == (5, 50)
    assert all(torch.equal(before[k], v) for k, v in template.state_dict().items())
    template.load_state_dict(states[1])
    with pytest.raises(InputError, match="does not fit"):
        formation([{"embed.weight": torch.zeros(3, 3)}], model=template, cache_dir=False)
    d = detect_induction_heads(template, batch_size=4, n_bootstrap=20, intervals=("prefix_matching",))
    assert torch.equal(torch.tensor(d.score_matrix("prefix_matching")), f.scores["prefix_matching"][1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(checkpoints=[]), "no checkpoints"),
        (dict(checkpoints="folder"), "a TrainingRun or a list"),
        (dict(checkpoints=[{"w": torch.zeros(1)}]), "need model="),
        (dict(checkpoints=["/nonexistent/step3"]), "is not a folder"),
        (dict(checkpoints=[AttentionOnly(), AttentionOnly()], steps=[1]), "2 checkpoints"),
        (dict(checkpoints=[AttentionOnly(), AttentionOnly()], steps=[1, 1]), "steps repeat"),
        (dict(checkpoints=[AttentionOnly()], metrics=["inductiveness"]), "metric"),
        (dict(checkpoints=[AttentionOnly()], batch_size=1), "batch_size"),
        (dict(checkpoints=[42]), "is a int"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(InputError, match=match):
        formation(**kwargs, cache_dir=False)


def test_rise_window_rule():
    steps = list(range(100, 1100, 100))
    abrupt = [0.05, 0.05, 0.06, 0.05, 0.07, 0.85, 0.9, 0.9, 0.91, 0.9]
    icl = [-0.1, -0.1, -0.12, -0.1, -0.15, -1.9, -2.0, -2.0, -2.05, -2.0]
    w = rise_window(steps, abrupt, icl)
    assert (w.start, w.end, w.abrupt) == (500, 600, True)
    assert w.share == pytest.approx(100 / 900) and w.icl_share == pytest.approx(1.75 / 1.9)
    gradual = [0.05 + 0.09 * i for i in range(10)]
    g = rise_window(steps, gradual)
    assert not g.abrupt and g.start == 200 and g.end == 900 and math.isnan(g.icl_share)
    assert rise_window(steps, [0.1] * 10) is None  # no rise
    assert rise_window(steps, [0.1, 0.25, 0.15] + [0.2] * 7) is None  # below min_rise
    pythia = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 143000]
    assert log_spaced(pythia) and not log_spaced(steps)
    score = [0.05] * 11 + [0.1, 0.7, 0.8, 0.82, 0.83, 0.83, 0.84, 0.84]
    p = rise_window(pythia, score)
    assert (p.start, p.end, p.log_steps, p.abrupt) == (1000, 2000, True, True)


def test_plot_formation(run):
    import matplotlib

    matplotlib.use("Agg")
    f = formation(run, cache_dir=False, batch_size=4, n_bootstrap=20)
    fig = plot_formation(f, top=2)
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel().startswith("induction score")
    import matplotlib.pyplot as plt

    _, grid = plt.subplots(1, 2, squeeze=False)  # a (1, 2) array: two Axes, not one row
    plot_formation(f, grid, top=2)
    assert grid[0, 0].get_ylabel().startswith("induction score") and grid[0, 1].lines
    _, grid = plt.subplots(2, 2)  # the first two in row order, never a row
    plot_formation(f, grid, top=2)
    assert grid[0, 1].lines and not grid[1, 0].lines
    with pytest.raises(InputError, match="two panels: pass two Axes .*got 1"):
        plot_formation(f, grid[0, 0])
    plt.close("all")
    with pytest.raises(InputError, match="formation"):
        plot_formation(run)


def test_folder_steps_are_read_anywhere_in_the_name_and_never_mixed_with_positions(tmp_path):
    a = _save(tmp_path / "step1000-tokens4B", 0)
    b = _save(tmp_path / "step200-tokens1B", 1)
    f = formation([a, b], cache_dir=False, batch_size=4, n_bootstrap=20, sequence_length=24)
    assert f.steps == (200, 1000) and f.labels == ("step200-tokens1B", "step1000-tokens4B")
    final = _save(tmp_path / "final", 2)
    with pytest.raises(InputError, match="no step<N> or checkpoint-<N> in the names of \\['final'\\]"):
        formation([a, final], cache_dir=False)
    with pytest.warns(UserWarning, match="their order"):
        formation([final, _save(tmp_path / "last", 3)], cache_dir=False, batch_size=4, n_bootstrap=20)


def test_the_cache_keys_on_the_architecture_and_refuses_templates_it_cannot_load(tmp_path):
    import accelerate
    import transformers

    m1 = make_hf("llama_gqa")
    config = transformers.LlamaConfig(**{**m1.config.to_dict(), "rms_norm_eps": 0.5})
    m2 = transformers.LlamaForCausalLM(config).eval()
    state = m1.state_dict()
    kw = dict(cache_dir=tmp_path, batch_size=4, n_bootstrap=20, sequence_length=24)
    formation([state], model=m1, **kw)
    assert formation([state], model=m2, **kw).cached == (False,)  # same weights, another epsilon
    offloaded = make_hf("llama_gqa")
    accelerate.cpu_offload(offloaded, execution_device="cpu")
    with pytest.raises(InputError, match="offloaded"):
        formation([state], model=offloaded, cache_dir=False)
    with pytest.raises(InputError, match="model= must be the model object"):
        formation([state], model="some/folder", cache_dir=False)
    with pytest.raises(InputError, match="metric"):  # not measured by a detection: an all-NaN grid before
        formation([m1], metrics=["concept_induction"], cache_dir=False)


def test_rise_window_on_log_steps_needs_an_abrupt_rise_in_steps_too():
    py = [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))
    slow = [0.05 + 0.85 * s / 143000 for s in py]  # a linear rise over most of training
    w = rise_window(py, slow)
    assert w.log_steps and w.share < 0.25 and w.linear_share > 0.5 and not w.abrupt
    assert rise_window([0, 100, 200, 300], [0, 0, 0.9, 0.9], [0, 1, -1, -0.5]).icl_share == 1.0  # clipped
    with pytest.raises(InputError, match="one each per checkpoint"):
        rise_window([0, 1], [0, 0.5, 0.9])
    with pytest.raises(InputError, match="must increase"):
        rise_window([200, 100, 0], [0.9, 0.5, 0])


def test_mixed_items_and_a_runs_spacing(tmp_path):
    from induction_nb.causal.phase_change import log_spaced

    assert not log_spaced(list(range(0, 1001, 10)) + [1001])  # a run's arbitrary last step is not log spacing
    assert rise_window([0, 1, 2], [0.5, 0.4, 0.3], min_rise=0.0) is None  # no rise at all, even with min_rise 0
    folder = _save(tmp_path / "step1000", 0)
    with pytest.raises(InputError, match="pass steps="):  # a model has no name to read a step from
        formation([folder, make_hf("llama_gqa", seed=1)], cache_dir=False)
