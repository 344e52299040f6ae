"""Models whose layers differ: head counts that vary by layer (OpenELM-style, hybrids) and Funnel's pooled
blocks; and the toolkit's own errors where an internal check fails, a damaged file, documents as ids."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch
from tiny_models import NanoAttention, NanoGPT, make_hf, save_with_words

import induction_nb as nb
from induction_nb.errors import CaptureCheckError, InputError


@pytest.fixture(scope="module")
def uneven():
    """NanoGPT whose first layer has 2 heads and the others 4."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = NanoGPT(flash=True)
        model.h[0].attn = NanoAttention(32, 2, 32, flash=True)
    return model.eval()


@pytest.fixture(scope="module")
def uneven_result(uneven):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 32-position default
        return nb.detect_induction_heads(uneven, batch_size=2, n_bootstrap=10)


def test_uneven_heads_are_scored_per_layer(uneven, uneven_result):
    assert uneven_result.heads_per_layer == {0: 2, 1: 4, 2: 4}
    want = nb.capture_attention(uneven, torch.arange(3, 19)[None])  # the reference: the capture's own count
    assert want.head(0, 1).shape == (16, 16)
    with pytest.raises(InputError, match="out of range"):
        want.head(0, 2)


@pytest.mark.parametrize(
    "view",
    [
        lambda r, m: r._repr_html_(),
        lambda r, m: nb.text_report(r),
        lambda r, m: nb.create_analysis_report(r),
        lambda r, m: nb.text_score_map(r),
        lambda r, m: nb.text_head_scores(r),
        lambda r, m: nb.plot_head_scores([s.to_dict() for s in r.head_scores]),
        lambda r, m: nb.plot_score_heatmap(r),
        lambda r, m: nb.plot_metric_scatter(r),
        lambda r, m: nb.load_result(_saved(r)),
        lambda r, m: nb.HeadExplorer(r, m, n_examples=1).select(0, 1),
    ],
)
def test_views_never_raise_on_uneven_heads(uneven, uneven_result, view):
    import matplotlib

    matplotlib.use("Agg")
    view(uneven_result, uneven)


def _saved(result):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "uneven.json"
    result.save(path)
    return path


def test_the_explorer_refuses_a_model_with_fewer_heads_in_a_layer(uneven_result):
    smaller = NanoGPT(flash=True, heads=2).eval()  # layer 1 has 2 heads where the result has 4
    with pytest.raises(InputError, match="no layer 1 or fewer heads there .* 2 heads in layer 1"):
        nb.HeadExplorer(uneven_result, smaller)


def test_funnel_pooled_layers_are_named_in_a_warning_and_the_rest_match_eager():
    import transformers

    config = transformers.FunnelConfig(
        vocab_size=100, block_sizes=[1, 1], d_model=32, n_head=2, d_head=16, d_inner=64, num_decoder_layers=1
    )
    config._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.FunnelModel(config).eval()
    tokens = torch.arange(3, 15)[None]
    with pytest.warns(UserWarning, match=r"layer\(s\) \[1\] of FunnelModel attend over fewer positions"):
        got = nb.capture_attention(model, tokens)
    with torch.no_grad():
        eager = model(tokens, output_attentions=True).attentions  # layer 1 is [1, 2, 6, 12]: pooled queries
    assert eager[1].shape[-2] == 6 and list(got.layers) == [0, 2]
    torch.testing.assert_close(got.pattern[:, 0], eager[0].float(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got.pattern[:, 1], eager[2].float(), atol=1e-5, rtol=1e-4)


def test_internal_checks_raise_the_toolkits_errors():
    from induction_nb.engine.attention_math import repeat_kv_heads
    from induction_nb.metrics import pattern_metric_list

    with pytest.raises(InputError, match="not all of .* are computed from attention patterns"):
        pattern_metric_list(["prefix_matching", "causal_effect"])
    with pytest.raises(CaptureCheckError, match="6 query heads cannot share 4 key/value heads"):
        repeat_kv_heads(torch.zeros(1, 4, 3, 2), 6)


def test_report_of_a_hand_edited_retrieval_result(tmp_path):
    """A retrieval result whose needle_accuracy was edited into a string: the CLI prints the report."""
    model = make_hf("gpt2")
    result = nb.retrieval_heads(model, lengths=[24], depths=[0.5], haystack=list(range(3, 60)), n_bootstrap=10)
    path = tmp_path / "retrieval.json"
    result.save(path)
    data = json.loads(path.read_text())
    data["settings"]["needle_accuracy"] = "high"
    path.write_text(json.dumps(data))
    run = subprocess.run([sys.executable, "-m", "induction_nb", "report", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "Needle accuracy: nan" in run.stdout


def test_documents_as_token_ids_need_no_tokenizer(tmp_path):
    """The advice of the no-tokenizer error, followed: the ids the tokenizer gives score as the text does."""
    model = nb.load_model(save_with_words(tmp_path))
    tokenizer = model.tokenizer  # word level: "t5 t17" -> [5, 17]
    texts = [" ".join(f"t{i}" for i in [5, 9, 30, 41, 7, 5, 9, 30, 41, 7, 12, 5, 9]), "t8 t3 t60 t8 t3 t60 t22"]
    ids = [tokenizer(t)["input_ids"] for t in texts]
    from_text = nb.detect_on_text(model, texts, n_bootstrap=10)
    bare = make_hf("llama_gqa", "sdpa")
    bare.load_state_dict(model._module.state_dict())
    with pytest.raises(InputError, match="tokenize the documents yourself and pass lists of token ids"):
        nb.detect_on_text(bare, texts, n_bootstrap=10)
    from_ids = nb.detect_on_text(bare, ids, n_bootstrap=10)
    got = {(s.layer, s.head): dict(s.values) for s in from_ids.head_scores}
    assert len(got) == len(from_text.head_scores)
    for s in from_text.head_scores:
        for name, value in s.values.items():
            assert got[(s.layer, s.head)][name] == pytest.approx(value, nan_ok=True, abs=1e-6), name
    with pytest.raises(InputError, match="outside the vocabulary"):
        nb.detect_on_text(bare, [[1, 2, 10_000]], n_bootstrap=10)


def test_concept_induction_scores_each_layer_by_its_own_heads(uneven):
    """Layer 0 has 2 heads, the others 4: no stacking error, no score for a head that is not there; the
    causal form (the ablator needs one head width) is refused by name."""
    result = nb.concept_induction(uneven, [[5, 6], [7, 8, 9]], n_probes=2, n_boot=10, effects=None, length=24)
    assert result.heads_per_layer[0] == 2 and all(n == 4 for l, n in result.heads_per_layer.items() if l)
    assert not result.has_head(0, 2)
    with pytest.raises(nb.InputError, match="different head counts"):
        nb.concept_induction(uneven, [[5, 6], [7, 8, 9]], n_probes=2, n_boot=10, length=24)
    with pytest.raises(nb.InputError, match="different head counts"):  # every ablation tool: no silent slicing
        nb.ablate_heads(uneven, [(1, 0)], batch_size=2)
