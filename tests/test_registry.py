"""The metric registry as an extension point: a metric defined in one place (here, a throwaway one in this
file) is computed by every scan, on every path, and shown by every view without touching them: the result
and its JSON, the DataFrame, the report's table, the explorer's colour menu and panel, the HTML page."""

import json

import pytest
import torch
from handbuilt import HandBuiltInduction

from induction_nb import (
    HeadExplorer,
    create_analysis_report,
    detect_induction_heads,
    detect_on_text,
    load_model,
    load_result,
)
from induction_nb.errors import InputError
from induction_nb.metrics import REGISTRY, ArgmaxMetric, HeadMetric, KeySumMetric, Queries, register, unregister


@pytest.fixture
def first_token():
    """Attention on position 0 (a sink), as a metric registered for the test and removed after it."""

    @register
    class FirstToken(KeySumMetric):
        name = "first_token"
        label = "first token"
        short = "first"
        description = "attention on the sequence's first position"
        source = "a test of the registry"
        order = 55

        def pairs(self, queries: Queries):
            b, q = queries.real.T.nonzero(as_tuple=True)[::-1]
            return b, q, torch.zeros_like(q)

    yield REGISTRY["first_token"]
    del REGISTRY["first_token"]


def test_a_new_metric_reaches_scans_files_and_views(first_token, tmp_path):
    toy = HandBuiltInduction(period=16)
    result = detect_induction_heads(toy, batch_size=4, n_bootstrap=20)
    assert "first_token" in result.metrics, "the detector computes every registered metric"
    by_hand = torch.stack([toy_pattern[:, :, 0].mean() for toy_pattern in _patterns(toy, result)])
    assert result.score(0, 0).first_token == pytest.approx(float(by_hand[0]), abs=1e-5)
    saved = load_result(result.save(tmp_path / "r.json"))
    assert saved == result and "first_token" in json.loads((tmp_path / "r.json").read_text())["metrics"]
    assert "first_token" in result.to_dataframe().columns
    table = create_analysis_report(result, detailed=True).split("Per-Head Metrics (top heads):\n")[1]
    assert table.splitlines()[0].split()[-2:] == ["dup", "first"], "a column of its own, in its order"
    explorer = HeadExplorer(result, toy)
    assert "first_token" in [m for _, m in explorer._metric.options]
    assert "first token" in explorer.metrics.value
    page = result.to_html(tmp_path / "r.html").read_text()
    tip = "attention on the sequence&#x27;s first position (a test of the registry)"
    assert f"<th title='{tip}'>first</th>" in page, "the header's hover text gives what it measures and its source"


def test_a_new_metric_is_pooled_on_text(first_token, tmp_path):
    from tiny_models import save_with_words

    docs = ["t5 t6 t5 t6 t7", "t8 t9 t8 t9 t8 t9 t10"]
    result = detect_on_text(load_model(save_with_words(tmp_path)), docs, n_bootstrap=20)
    assert "first_token" in result.metrics and all(0 <= s.first_token <= 1 for s in result.head_scores)


def _patterns(toy, result):
    """Layer 0's patterns on the scan's own probes (first head), to score by hand."""
    from induction_nb import InductionHeadDetector, capture_attention

    detector = InductionHeadDetector(toy, batch_size=4)
    probe = detector.generator().generate("repeated", result.settings["sequence_length"], 4)
    return [capture_attention(toy, probe.tokens, layers=[0]).pattern[:, 0, 0]]


def _define(name="scratch", base=KeySumMetric, with_path=True, **texts):
    """A throwaway metric class (not yet registered) named ``name`` in this module."""
    attrs = {"name": name, "label": "scratch", "short": "scr", "description": "a test metric", **texts}
    if with_path:
        attrs["pairs"] = lambda self, queries: (queries.real.nonzero(as_tuple=True) + (None,))[:3]
    return type("Scratch", (base,), attrs)


def test_registering_again_replaces_and_unregister_removes():
    """A notebook cell run again (same module and class name) replaces its metric; another class under a
    taken name is refused, naming the class that holds it; ``unregister`` removes, and refuses an unknown."""
    try:
        register(_define(order=77))
        register(_define(order=78))
        assert REGISTRY["scratch"].order == 78 and list(REGISTRY).count("scratch") == 1
        other = _define()
        other.__qualname__ = "Elsewhere"
        with pytest.raises(InputError, match=r"'scratch' is taken by Scratch .*unregister\(name\) first"):
            register(other)
        with pytest.raises(InputError, match=r"'prefix_matching' is taken by PrefixMatching"):
            register(_define("prefix_matching"))
    finally:
        unregister("scratch")
    assert "scratch" not in REGISTRY
    with pytest.raises(InputError, match=r"unknown metric 'scratch'; known metrics: .*prefix_matching"):
        unregister("scratch")


@pytest.mark.parametrize(
    "base, needs",
    [(KeySumMetric, "pairs"), (ArgmaxMetric, "scored, hit"), (HeadMetric, "combine")],
)
def test_a_metric_without_its_definition_is_refused(base, needs):
    with pytest.raises(InputError, match=rf"metric 'scratch' must define {needs} \(its per-query definition\)"):
        register(_define(base=base, with_path=False))
    assert "scratch" not in REGISTRY


@pytest.mark.parametrize("name", ["Scratch", "2gram", "layer", "ci_low", "induction_score", "a-b", ""])
def test_malformed_or_reserved_names_are_refused(name):
    with pytest.raises(InputError, match=r"must be lower case letters, digits and '_', starting with a letter"):
        register(_define(name))
    assert name not in REGISTRY


def test_missing_texts_are_refused():
    with pytest.raises(InputError, match=r"needs a label, a short header \(<= 8 characters\) and a description"):
        register(_define(short="far too long"))
    with pytest.raises(InputError, match="needs a label"):
        register(_define(description=""))


def test_built_in_and_needed_metrics_cannot_be_unregistered():
    with pytest.raises(InputError, match="'contrast' is a built-in metric"):
        unregister("contrast")
    try:
        register(_define("base_share"))

        @register
        class Uses(HeadMetric):
            name, label, short, description = "uses_base", "uses", "uses", "a metric built on base_share"
            needs = ("base_share",)

            def combine(self, means):
                return means["base_share"]

        with pytest.raises(InputError, match="'base_share' is needed by uses_base; unregister those first"):
            unregister("base_share")
    finally:
        for name in ("uses_base", "base_share"):
            if name in REGISTRY:
                unregister(name)


def test_a_head_metric_needing_an_unknown_metric_is_refused():
    combine = {"combine": lambda self, means: means["nothing"], "needs": ("nothing",)}
    with pytest.raises(InputError, match="needs nothing, which no other registered metric provides"):
        register(_define(base=HeadMetric, with_path=False, **combine))
    assert "scratch" not in REGISTRY


def test_every_built_in_metric_needs_only_registered_metrics():
    needed = {n.split(":")[0] for m in REGISTRY.values() for n in getattr(m, "needs", ())}
    assert needed <= set(REGISTRY) and needed, needed


@pytest.mark.parametrize("thing", [42, "prefix", type("Plain", (), {"name": "plain"})])
def test_register_takes_metric_classes_only(thing):
    with pytest.raises(InputError, match="register takes a Metric subclass"):
        register(thing)
