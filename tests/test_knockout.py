"""Edge knockout (engine.knockout): the knocked pattern against a hand renormalisation on each kernel kind,
the whole model against a plain-hook reference (eager and sdpa), the hand-built model's induction head, the
composition with the ablation tools, and the refusals."""

from __future__ import annotations

import contextlib

import pytest
import torch
from tiny_models import make_hf, random_tokens

from induction_nb import InputError, ablate_heads, head_effects, icl_score
from induction_nb.analysis.toy import HandBuiltInduction
from induction_nb.engine.ablator import Ablator
from induction_nb.engine.knockout import edge_mask


class _Keep:
    def __call__(self, layer, pattern):
        return pattern.clone()


def _repeated(batch: int = 2, half: int = 8) -> torch.Tensor:
    block = random_tokens(batch, half)
    return torch.cat([block, block], 1)


def test_induction_edges_by_hand():
    t = torch.tensor([[0, 5, 6, 5, 6, 6]])
    e = edge_mask("induction", t)[0]
    # q=3 (token 5): the token after the earlier 5 is at k=2; q=4 (6): k=3; q=5 (6): after 6 at 2 and 4 -> 3, 5
    want = {(3, 2), (4, 3), (5, 3), (5, 5)}
    assert {tuple(x) for x in e.nonzero().tolist()} == want
    prev = edge_mask("previous_token", t)[0]
    assert {tuple(x) for x in prev.nonzero().tolist()} == {(q, q - 1) for q in range(1, 6)}


@pytest.mark.parametrize(
    "arch,impl,kind",
    [
        ("llama_gqa", "eager", "hf_interface"),
        ("llama_gqa", "sdpa", "hf_interface"),
        ("gpt2", "sdpa", "hf_interface"),
        ("bloom_alibi", "eager", "softmax"),  # the site is the cast after the softmax: renormalised there
        ("falcon", "sdpa", "sdpa_call"),
    ],
)
def test_knocked_pattern_is_the_renormalised_eager_pattern(arch, impl, kind):
    ab = Ablator(make_hf(arch, impl))
    last = ab.layers[-1]
    assert ab.sites[-1].kind == kind
    tokens = _repeated()
    edges = edge_mask("induction", tokens)
    _, (clean,) = ab.run(tokens, [[]], "zero", None, read={last: _Keep()})
    _, (knocked,) = ab.run(tokens, [[]], "zero", None, read={last: _Keep()}, knock=[[(last, 1)]], edges=edges)
    before, after = clean[1], knocked[1]
    hand = before[:, 1].masked_fill(edges, 0)
    hand = hand / hand.sum(-1, keepdim=True)
    assert (after[:, 1] - hand).abs().max() < 1e-6
    assert float(after[:, 1][edges].abs().max()) == 0.0
    others = [h for h in range(before.shape[1]) if h != 1]
    assert torch.equal(after[:, others], before[:, others])
    assert (after[:, 1] - before[:, 1]).abs().max() > 0.05, "the edit must change the head's pattern"


def _reference_logprobs(model, tokens, knock_by_layer, impl):
    """A plain patch of the attention weights, independent of the knockout code: the eager softmax's output
    (or, for sdpa, an explicit attention computed here) with the knocked weights zeroed and rows renormalised."""
    F = torch.nn.functional
    calls = {"n": 0}
    layers = sorted(knock_by_layer)

    def knocked(weights):
        layer = calls["n"]
        calls["n"] += 1
        if layer not in knock_by_layer:
            return weights
        w = weights.masked_fill(knock_by_layer[layer], 0)
        return w / w.sum(-1, keepdim=True)

    real_softmax = F.softmax

    def softmax(x, dim=None, *a, **k):
        return knocked(real_softmax(x, dim, *a, **k))

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
        s = q @ k.transpose(-1, -2) * (scale if scale is not None else q.shape[-1] ** -0.5)
        n = q.shape[2]
        if is_causal or attn_mask is None:
            s = s.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
        return knocked(real_softmax(s, -1)) @ v

    patch = contextlib.ExitStack()
    with patch:
        mp = patch.enter_context(pytest.MonkeyPatch.context())
        mp.setattr(F, "softmax", softmax) if impl == "eager" else mp.setattr(F, "scaled_dot_product_attention", sdpa)
        with torch.no_grad():
            logits = model(tokens).logits
    assert calls["n"] >= max(layers) + 1
    return torch.log_softmax(logits.float(), -1)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_whole_model_equals_a_plain_patch_of_the_weights(impl):
    model = make_hf("llama_gqa", impl)
    ab = Ablator(model)
    tokens = _repeated()
    positions = torch.arange(tokens.shape[1] - 1)
    heads = [(0, 1), (1, 0), (1, 2)]
    (lp, _), _ = ab.run(tokens, [heads], "knockout", None, positions)
    edges = edge_mask("induction", tokens)
    n_heads = model.config.num_attention_heads
    knock = {}
    for l, h in heads:
        knock.setdefault(l, torch.zeros(tokens.shape[0], n_heads, *edges.shape[1:], dtype=torch.bool))[:, h] = edges
    ref = _reference_logprobs(model, tokens, knock, impl)
    want = ref[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    assert (lp - want).abs().max() < 1e-5
    (clean, _), _ = ab.run(tokens, [[]], "zero", None, positions)
    assert (lp - clean).abs().max() > 1e-3, "the knockout must change the model's predictions"


def test_handbuilt_induction_edges_carry_the_head():
    model = HandBuiltInduction()
    kwargs = dict(sequence_length=32, batch_size=4)
    zero = ablate_heads(model, [(1, 0)], "zero", **kwargs)
    knocked = ablate_heads(model, [(1, 0)], "knockout", **kwargs)
    previous = ablate_heads(model, [(1, 0)], "knockout", edges="previous_token", **kwargs)

    def other_edges(tokens):  # half of every other edge, none an induction edge, key 0 spared
        n = tokens.shape[1]
        pick = torch.rand(tokens.shape[0], n, n, generator=torch.Generator().manual_seed(0)) < 0.5
        pick[:, :, 0] = False
        return pick & ~edge_mask("induction", tokens)

    other = ablate_heads(model, [(1, 0)], "knockout", edges=other_edges, **kwargs)
    assert zero.effect > 0.5 and zero.ablated_accuracy < 0.1 < 0.9 < zero.baseline_accuracy
    assert knocked.effect == pytest.approx(zero.effect, rel=0.1) and knocked.ablated_accuracy < 0.1
    assert abs(previous.effect) < 1e-3 and abs(other.effect) < 1e-3
    # the previous-token head's previous-token edges are the circuit's other half
    upstream = ablate_heads(model, [(0, 0)], "knockout", edges="previous_token", **kwargs)
    assert upstream.effect > 0.5
    assert icl_score(model, ablate=[(1, 0)], method="knockout", **kwargs)["repeated"] > -0.1
    assert icl_score(model, **kwargs)["repeated"] < -0.5


def test_head_effects_knockout_equals_ablate_heads_per_head():
    model = HandBuiltInduction()
    kwargs = dict(sequence_length=24, batch_size=2)
    effects = head_effects(model, "knockout", **kwargs)
    alone = ablate_heads(model, [(1, 0), (0, 0)], "knockout", individually=True, **kwargs)
    for head, effect in alone.per_head.items():
        assert float(effects.exact[head]) == pytest.approx(effect, abs=1e-5)
    assert float(effects.exact[1, 0]) > 0.5


def test_knockout_refusals():
    model = HandBuiltInduction()
    ab = Ablator(model)
    distinct = torch.arange(3, 19)[None]
    with pytest.raises(InputError, match="select nothing"):
        ab.run(distinct, [[(1, 0)]], "knockout", None, torch.arange(15))
    everything = lambda t: torch.ones(t.shape[1], t.shape[1], dtype=torch.bool)  # noqa: E731
    with pytest.raises(InputError, match="every key of query 0"):
        ab.run(_repeated(1), [[(1, 0)]], "knockout", None, torch.arange(15), edges=everything)
    with pytest.raises(InputError, match="bool tensor"):
        ab.run(_repeated(1), [[(1, 0)]], "knockout", None, torch.arange(15), edges=lambda t: t.float())
    with pytest.raises(InputError, match="unknown edges 'inductoin'"):
        ablate_heads(model, [(1, 0)], "knockout", edges="inductoin", sequence_length=24)
    with pytest.raises(InputError, match="edges= chooses the edges method='knockout'"):
        ablate_heads(model, [(1, 0)], "zero", edges="induction", sequence_length=24)
    with pytest.raises(InputError, match="estimator='exact'"):
        head_effects(model, "knockout", estimator="attribution", sequence_length=24)
    with pytest.raises(InputError, match="head"):
        ablate_heads(model, [(1, 9)], "knockout", sequence_length=24)


def test_kernels_without_a_per_edge_mask_are_refused():
    import transformers

    config = transformers.GPTNeoConfig(
        vocab_size=128, max_position_embeddings=64, hidden_size=64, num_layers=2, num_heads=4,
        attention_types=[[["global", "local"], 1]], window_size=4,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.GPTNeoForCausalLM(config).eval()  # GPT-Neo's _attn masks and normalises inside
    assert Ablator(model).sites[0].kind == "returned_weights"
    with pytest.raises(InputError, match="'returned_weights' attention site of layer 0.*attn_implementation='eager'"):
        ablate_heads(model, [(0, 0)], "knockout", sequence_length=24, batch_size=2)
    assert ablate_heads(model, [(0, 0)], "zero", sequence_length=24, batch_size=2).effect == pytest.approx(
        ablate_heads(model, [(0, 0)], "zero", sequence_length=24, batch_size=2).effect
    ), "the refusal leaves the model usable"


def test_flash_and_flex_kernels_are_refused_by_name():
    """Flash attention takes a [batch, k] padding mask and flex attention a BlockMask: no per-edge edit."""
    from types import SimpleNamespace

    from induction_nb.engine.knockout import KnockPlan, knock_interface

    q = torch.zeros(1, 2, 4, 8)
    previous = torch.ones(4, 4, dtype=torch.bool).tril(-1) & ~torch.ones(4, 4, dtype=torch.bool).tril(-2)
    plan = KnockPlan([(0, 1)], previous[None], 1)
    for impl, mask in (("flash_attention_2", torch.ones(1, 4)), ("flex_attention", object())):
        module = SimpleNamespace(config=SimpleNamespace(_attn_implementation=impl), is_causal=True)
        with pytest.raises(InputError, match=f"the {impl} kernel does not take.*attn_implementation='eager'"):
            knock_interface((module, q, q, q, mask), {}, None, plan)
    eager = SimpleNamespace(config=SimpleNamespace(_attn_implementation="eager"), is_causal=True)
    args, _ = knock_interface((eager, q, q, q, None), {}, None, plan)
    want = torch.zeros(4, 4).masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), torch.finfo(q.dtype).min)
    assert torch.equal(args[4][0, 0], want), "no mask: the causal mask the kernel would have used"
    assert torch.equal(args[4][0, 1], want.masked_fill(previous, torch.finfo(q.dtype).min))


def test_left_padding_is_no_earlier_copy():
    """A pad id that also occurs in the text: the first real token's previous token is a pad, no copy."""
    tokens = torch.tensor([[0, 0, 7, 8, 9, 0, 7, 8], [5, 6, 7, 8, 9, 0, 7, 8]])
    valid = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]]).bool()
    padded = edge_mask("induction", tokens, valid)[0, 2:, 2:]
    alone = edge_mask("induction", tokens[:1, 2:])[0]
    assert torch.equal(padded, alone), (padded.nonzero().tolist(), alone.nonzero().tolist())


def test_a_row_emptied_inside_a_sliding_window_is_refused():
    """Mistral's window of 5: a run of one token knocks out every key the window leaves its last query."""
    ab = Ablator(make_hf("mistral_sliding"))
    tokens = torch.tensor([[3, 4] + [9] * 10 + [4]])
    with pytest.raises(InputError, match="no key the model lets them see"):
        ab.run(tokens, [[(1, 0)]], "knockout", None, torch.arange(12))


def test_mask_fn_batch_and_empty_buckets():
    model = HandBuiltInduction()
    ab = Ablator(model)
    tokens = _repeated(2)
    with pytest.raises(InputError, match="bool tensor"):
        ab.run(tokens, [[(1, 0)]], "knockout", None, torch.arange(15), edges=lambda t: torch.zeros(3, 16, 16).bool())
    with pytest.raises(InputError, match="the mask_fn returned no True edge"):
        ab.run(tokens, [[(1, 0)]], "knockout", None, torch.arange(15), edges=lambda t: torch.zeros(16, 16).bool())
    from induction_nb import loss_by_position

    docs = [[5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9, 10, 11, 12], list(range(3, 17))]  # the second has no repeat
    kwargs = dict(early=2, late=10, n_bootstrap=10, ablate=[(1, 0)], method="knockout")
    one, two = (
        loss_by_position(model, docs, batch_size=1, **kwargs),
        loss_by_position(model, docs, batch_size=2, **kwargs),
    )
    torch.testing.assert_close(one.loss, two.loss, equal_nan=True, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="select nothing"):
        loss_by_position(model, [list(range(3, 17))] * 2, **kwargs)
