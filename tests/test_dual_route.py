"""Token vs concept induction (``concept_induction``; Feucht et al. 2025), against independent references:
value-weighted attention from HF eager ``output_attentions=True`` and the value projection read by a plain
forward hook; patched probabilities from plain forward pre-hooks on the output projection; the hand-built
transformer's known induction head; and the bad inputs the issue names."""

from __future__ import annotations

import pytest
import torch
from handbuilt import HandBuiltInduction
from tiny_models import EncoderStack, NanoGPT, make_hf

import induction_nb as nb
from induction_nb.analysis.dual_route import DualRouteResult
from induction_nb.engine.ablator import Ablator
from induction_nb.engine.batch import Batch
from induction_nb.engine.dual_route import patched_probabilities, value_weighted_keys
from induction_nb.engine.engine import Engine
from induction_nb.errors import InputError
from induction_nb.probes.dual_route import dual_route_probes

WORDS = [[5, 6], [7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17, 18]]
ARCHS = ["llama_gqa", "gpt2", "gpt_neox"]


def _values_by_hook(model, arch: str, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's value vectors ``[batch, head, seq, d_head]`` (kv heads repeated), read off the value
    projection's output by a plain forward hook and split by hand."""
    got, hooks = [], []
    cfg = model.config
    n_heads = cfg.num_attention_heads
    d = cfg.hidden_size // n_heads

    def keep(module, args, out):
        got.append(out.detach().float())

    if arch == "llama_gqa":
        mods = [layer.self_attn.v_proj for layer in model.model.layers]
    elif arch == "gpt2":
        mods = [block.attn.c_attn for block in model.transformer.h]
    else:
        mods = [layer.attention.query_key_value for layer in model.gpt_neox.layers]
    hooks = [m.register_forward_hook(keep) for m in mods]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for v in got:
        b, s, _ = v.shape
        if arch == "llama_gqa":
            v = v.view(b, s, -1, d).transpose(1, 2).repeat_interleave(n_heads // cfg.num_key_value_heads, dim=1)
        elif arch == "gpt2":
            v = v[..., 2 * cfg.hidden_size :].view(b, s, n_heads, d).transpose(1, 2)
        else:  # NeoX: [head, (q, k, v), d] per position
            v = v.view(b, s, n_heads, 3 * d)[..., 2 * d :].transpose(1, 2)
        out.append(v)
    return out


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", ARCHS)
def test_value_weighted_attention_equals_eager_weights_and_hooked_values(arch, backend):
    model = make_hf(arch, backend)
    eager = make_hf(arch, "eager")  # the same weights: its returned weights are the reference pattern
    engine = Engine.of(model)
    probes = dual_route_probes(engine.generator(0), None, 4, 24, 3, seed=0)
    keys = torch.stack([probes.start, probes.end], 1)
    got, layers = value_weighted_keys(engine, Batch(probes.clean), probes.query, keys)
    with torch.no_grad():
        patterns = eager(probes.clean, output_attentions=True).attentions
    values = _values_by_hook(eager, arch, probes.clean)
    rows = torch.arange(4)
    worst = 0.0
    for i, layer in enumerate(layers):
        a = patterns[layer].float()[rows, :, probes.query]  # [batch, head, k]
        w = a * values[layer].norm(dim=-1)
        w = w / w.sum(-1, keepdim=True)
        want = w.gather(-1, keys[:, None, :].expand(-1, a.shape[1], -1))
        plain = a.gather(-1, keys[:, None, :].expand(-1, a.shape[1], -1))
        worst = max(worst, float((got[0, :, i] - want).abs().max()), float((got[1, :, i] - plain).abs().max()))
    assert worst < 1e-5, worst


def _patched_by_hook(model, proj_of, clean, corrupt, pos, head, d, at, targets):
    """P(targets) at ``at`` in the corrupted run with one head's output at ``pos`` taken from the clean run,
    by two plain forward pre-hooks on the layer's output projection."""
    layer, h = head
    proj = proj_of(model, layer)
    cols = slice(h * d, (h + 1) * d)
    saved = {}

    def save(module, args):
        saved["z"] = args[0].detach().clone()

    def patch(module, args):
        z = args[0].clone()
        rows = torch.arange(z.shape[0])
        z[rows, pos, cols] = saved["z"][rows, pos, cols]
        return (z,)

    with torch.no_grad():
        hook = proj.register_forward_pre_hook(save)
        model(clean)
        hook.remove()
        hook = proj.register_forward_pre_hook(patch)
        logits = model(corrupt).logits.float()
        hook.remove()
    p = logits[torch.arange(len(at))[:, None], at].softmax(-1)
    return p.gather(-1, targets[..., None])[..., 0]


_PROJ = {
    "llama_gqa": lambda m, l: m.model.layers[l].self_attn.o_proj,
    "gpt2": lambda m, l: m.transformer.h[l].attn.c_proj,
    "gpt_neox": lambda m, l: m.gpt_neox.layers[l].attention.dense,
}


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", ARCHS)
def test_patched_probabilities_equal_a_plain_hook(arch, backend):
    model = make_hf(arch, backend)
    ab = Ablator(model)
    probes = dual_route_probes(Engine.of(model).generator(0), None, 3, 24, 3, seed=1)
    heads = [(0, 0), (1, ab.n_heads - 1), (1, 1)]
    got = patched_probabilities(
        ab, Batch(probes.clean), probes.corrupt, probes.query, [[h] for h in heads], probes.at, probes.targets
    )
    with torch.no_grad():
        for copy, tokens in ((0, probes.clean), (1, probes.corrupt)):
            p = model(tokens).logits.float()[torch.arange(3)[:, None], probes.at].softmax(-1)
            want = p.gather(-1, probes.targets[..., None])[..., 0]
            assert torch.allclose(got[copy], want, atol=1e-7, rtol=0)
    # one head's patch moves P by 1e-5..1e-4 in these tiny models: the tolerance must sit well below that
    assert float((got[2:] - got[1]).abs().amax(dim=(1, 2)).min()) > 5e-6
    for i, head in enumerate(heads):
        want = _patched_by_hook(
            model, _PROJ[arch], probes.clean, probes.corrupt, probes.query, head, ab.d_head, probes.at, probes.targets
        )
        assert torch.allclose(got[2 + i], want, atol=1e-7, rtol=0), (head, (got[2 + i] - want).abs().max())


def test_the_hand_built_induction_head_has_the_top_token_score():
    result = nb.concept_induction(HandBuiltInduction(), WORDS, n_probes=8, n_boot=50)
    assert isinstance(result, DualRouteResult)
    top = result.top_token(1)[0]
    assert (top.layer, top.head) == (1, 0)
    assert top.token_induction > 0.99 and top.intervals["token_induction"][0] > 0.99
    # it copies the next token of the repeat: patching it in raises P(e[0]) more than any other head
    effects = result.get_top_heads(1, "token_effect")[0]
    assert (effects.layer, effects.head) == (1, 0) and effects.token_effect > 0
    # its value-weighted attention on the *end* of the word is nil: the concept route is not there
    assert top.concept_induction < 1e-3


def test_heads_that_write_nothing_have_no_value_weighted_score():
    """HandBuilt's heads with zero value weights: the value-weighted share is undefined (NaN), not 0."""
    result = nb.concept_induction(HandBuiltInduction(), WORDS, n_probes=4, n_boot=20, effects=None)
    assert result.score(1, 2).token_induction != result.score(1, 2).token_induction
    plain = nb.concept_induction(
        HandBuiltInduction(), WORDS, n_probes=4, n_boot=20, effects=None, weighting="attention"
    )
    assert plain.score(1, 2).token_induction == plain.score(1, 2).token_induction


def test_same_call_same_numbers_and_a_json_round_trip(tmp_path):
    model = make_hf("llama_gqa", "sdpa")
    first = nb.concept_induction(model, WORDS, n_probes=4, n_boot=50, seed=3)
    again = nb.concept_induction(model, WORDS, n_probes=4, n_boot=50, seed=3)
    assert first.head_scores == again.head_scores
    loaded = nb.load_result(first.save(tmp_path / "dual.json"))
    assert isinstance(loaded, DualRouteResult) and loaded.head_scores == first.head_scores
    df = first.to_dataframe()
    assert {"token_induction", "concept_induction_ci_low", "concept_effect_ci_high"} <= set(df.columns)
    assert "TOKEN VS CONCEPT" in str(first) and "share" in str(first)


@pytest.mark.parametrize(
    "words, match",
    [
        ([[5]], "1 token"),
        ([[5, 6], []], "0 token"),
        ([[5, 6, 7, 8, 9, 10]], "6 token"),
        ([[5, 10_000]], "outside the vocabulary"),
        (["hello"], "no tokenizer"),
        ([], "non-empty"),
        ("hello", "non-empty"),
        ([[1.5, 2.0]], "string or a list of token ids"),
    ],
)
def test_bad_word_lists_are_refused_by_name(words, match):
    with pytest.raises(InputError, match=match):
        nb.concept_induction(make_hf("gpt2"), words, n_probes=2, effects=None)


def test_a_model_without_a_tokenizer_needs_word_ids():
    with pytest.raises(InputError, match="no tokenizer.*words="):
        nb.concept_induction(make_hf("gpt2"), n_probes=2, effects=None)


def test_a_bare_softmax_site_without_values_is_refused_with_the_fix():
    model = NanoGPT(flash=False).eval()
    with pytest.raises(InputError, match="value vectors.*weighting='attention'"):
        nb.concept_induction(model, WORDS, n_probes=2, effects=None)
    assert nb.concept_induction(model, WORDS, n_probes=2, n_boot=10, effects=None, weighting="attention")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_probes=1), "n_probes"),
        (dict(length=10), "length"),
        (dict(length=500), "positions"),
        (dict(weighting="values"), "weighting"),
        (dict(separator=10_000), "separator"),
        (dict(separator=7), "a token of one of the words"),
        (dict(n_boot=0), "n_boot"),
        (dict(heads_per_forward=0), "heads_per_forward"),
        (dict(heads_per_forward=-1), "heads_per_forward"),
        (dict(heads_per_forward=2.5), "heads_per_forward"),
        (dict(n_probes=10**9), "n_probes"),
        (dict(threshold=float("nan")), "threshold"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        nb.concept_induction(make_hf("gpt2"), WORDS, effects=None, **{"n_probes": 2, **kwargs})


def test_bidirectional_attention_is_refused():
    with pytest.raises(InputError, match="causal"):
        nb.concept_induction(EncoderStack(causal=False).eval(), WORDS, n_probes=2, effects=None)


def test_route_ablation_equals_zeroing_the_heads_by_hand():
    """The 'token heads' condition: P(e[0]) and P(e[1]) with those heads' slices zeroed by plain pre-hooks."""
    model = make_hf("llama_gqa", "eager")
    result = nb.concept_induction(model, WORDS, n_probes=3, n_boot=20, effects=None)
    got = nb.route_ablation(model, result, k=2, n_probes=4, method="zero", n_boot=20)  # the result's words
    assert set(got.token_heads) == {(s.layer, s.head) for s in result.top_token(2)}
    gen = Engine.of(model).generator(0)
    probes = dual_route_probes(gen, [tuple(w) for w in WORDS], 4, 32, result.settings["separator"], seed=2)
    tokens = torch.cat([probes.clean, probes.targets[:, 1:]], 1)
    d = model.config.hidden_size // model.config.num_attention_heads
    hooks = []
    for layer, head in got.token_heads:

        def cut(module, args, head=head):
            z = args[0].clone()
            z[..., head * d : (head + 1) * d] = 0
            return (z,)

        hooks.append(model.model.layers[layer].self_attn.o_proj.register_forward_pre_hook(cut))
    try:
        with torch.no_grad():
            p = model(tokens).logits.float().softmax(-1)
    finally:
        for h in hooks:
            h.remove()
    n = tokens.shape[1]
    copy = p[torch.arange(4), n - 3, tokens[:, n - 2]].mean()
    completion = p[torch.arange(4), n - 2, tokens[:, n - 1]].mean()
    assert got.probabilities["token heads"]["copy"] == pytest.approx(float(copy), abs=1e-5)
    assert got.probabilities["token heads"]["completion"] == pytest.approx(float(completion), abs=1e-5)
    assert "token heads" in str(got)


def test_views_show_both_routes(tmp_path):
    result = nb.concept_induction(HandBuiltInduction(), WORDS, n_probes=4, n_boot=20, weighting="attention")
    text = nb.text_dual_route(result, top=3)
    assert "L1H0" in text.splitlines()[1] and "concept induction" in text and "Shared by both top-3" in text
    ax = nb.plot_dual_route(result)
    assert ax.get_xlabel().startswith("token induction")
    with pytest.raises(InputError, match="token and concept"):
        nb.text_dual_route(nb.detect_induction_heads(HandBuiltInduction(), batch_size=2, n_bootstrap=10))


@pytest.mark.parametrize("arch", ["llama_gqa", "gpt2"])
def test_attribution_estimate_is_exact_where_verified_and_close_elsewhere(arch):
    """Attribution patching of the causal form: the verified heads carry the exact numbers; on the rest the
    first-order estimate stays near the exact effect of a tiny random model (no saturated softmax)."""
    model = make_hf(arch, "eager")
    exact = nb.concept_induction(model, WORDS, n_probes=4, n_boot=20, effects="exact")
    fast = nb.concept_induction(model, WORDS, n_probes=4, n_boot=20, effects="attribution", verify_top=3)
    for metric in ("token_effect", "concept_effect"):
        verified = [tuple(h) for h in fast.settings[metric]["verified"]]
        assert len(verified) == 3 and fast.settings[metric]["max_abs_gap"] >= 0
        for s, e in zip(fast.head_scores, exact.head_scores):
            gap = abs(s.values[metric] - e.values[metric])
            if (s.layer, s.head) in verified:
                assert gap < 1e-6, (metric, s.name)
            else:
                assert gap < 0.2 * max(1e-4, max(abs(x.values[metric]) for x in exact.head_scores)), (metric, s.name)


def test_the_explorer_colours_heads_by_either_route():
    model = HandBuiltInduction()
    result = nb.concept_induction(model, WORDS, n_probes=4, n_boot=20)
    explorer = nb.HeadExplorer(result, model=model)
    offered = {value for _, value in explorer._metric.options}
    assert {"token_induction", "concept_induction", "token_effect", "concept_effect"} <= offered
    explorer.select(1, 0)
    assert "token induction" in explorer.metrics.value and "concept induction" in explorer.metrics.value


def test_the_default_separator_is_in_no_word_and_numpy_words_are_ids():
    import numpy as np

    model = make_hf("gpt2")
    words = [np.array([5, 6]), [np.int64(7), np.int64(8), np.int64(9)]]
    result = nb.concept_induction(model, words, n_probes=2, n_boot=10, effects=None)
    assert result.settings["separator"] not in {5, 6, 7, 8, 9}


def test_a_model_too_short_or_too_small_for_the_probe_says_so():
    import transformers

    short = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(vocab_size=97, n_embd=32, n_layer=1, n_head=4, n_positions=16)
    )
    with pytest.raises(InputError, match="has 16 positions"):
        nb.concept_induction(short.eval(), WORDS, n_probes=2, effects=None)
    tiny_vocab = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=24, n_embd=32, n_layer=1, n_head=4))
    with pytest.raises(InputError, match="distinct random token ids"):
        nb.concept_induction(tiny_vocab.eval(), [[5, 6], [7, 8]], n_probes=2, effects=None)


def test_route_ablation_refuses_another_models_result():
    result = nb.concept_induction(make_hf("gpt2"), WORDS, n_probes=2, n_boot=10, effects=None)
    with pytest.raises(InputError, match="the result is of"):
        nb.route_ablation(HandBuiltInduction(), result, k=1)


def test_a_custom_values_reader_of_the_wrong_shape_is_named():
    from induction_nb import CustomSites

    model = NanoGPT(flash=False).eval()
    sites = CustomSites(
        [f"h.{i}.attn" for i in range(len(model.h))],
        read=lambda a, k, out: torch.softmax(torch.zeros(a[0].shape[0], 4, a[0].shape[1], a[0].shape[1]), -1),
        values=lambda a, k, out: torch.zeros(3, 3),
    )
    with pytest.raises(Exception, match="values reader returned"):
        nb.concept_induction(model, WORDS, n_probes=2, effects=None, sites=sites)


def test_sweep_findings_are_clear_refusals():
    """Found by bench/dual_route_sweep.py: DeepSeek-V4's memory slots (keys beyond the tokens) and Dots3's
    per-layer head counts (a config attribute that raises) end in InputError, not a torch or config error."""
    from tiny_configs import build

    with pytest.raises(InputError, match="keys beyond the tokens"):
        nb.concept_induction(build("deepseek_v4", "causal", "eager"), WORDS, n_probes=2, effects=None, length=24)
    per_layer = build("dots3_note_text", "causal", "eager")
    assert nb.concept_induction(per_layer, WORDS, n_probes=2, n_boot=10, effects=None, length=24).head_scores
    with pytest.raises(InputError, match="different head counts"):
        nb.concept_induction(per_layer, WORDS, n_probes=2, n_boot=10, length=24)
