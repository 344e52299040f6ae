"""Copying by direct logit attribution, on the hand-built model (exact answers) and on SmolLM2."""

import pytest
import torch

from induction_nb import InputError, copying_dla
from induction_nb.analysis.toy import HandBuiltInduction


def test_hand_built_induction_head_copies_and_others_do_not():
    scores = {
        (s.layer, s.head): s for s in copying_dla(HandBuiltInduction(16), [(1, 0), (0, 0), (1, 2)], sequence_length=32)
    }
    assert scores[(1, 0)].top_k_rate == 1.0 and scores[(1, 0)].mean_z > 3 and scores[(1, 0)].median_rank == 0
    assert scores[(0, 0)].top_k_rate == 0.0, "the previous-token head writes no logits directly"
    assert scores[(1, 2)].top_k_rate == 0.0 and scores[(1, 2)].mean_z == 0.0


def test_a_head_that_writes_nothing_ranks_last_not_at_the_top():
    """L1H2 writes nothing: every direct logit ties, so the attended token ranks last (vocabulary - 1, ties
    count against it), never 0, "the top" (what counting strictly larger logits gave)."""
    (empty,) = copying_dla(HandBuiltInduction(16), [(1, 2)], sequence_length=32)
    assert empty.median_rank == 39.0 and empty.top_k_rate == 0.0 and empty.mean_z == 0.0
    (induction,) = copying_dla(HandBuiltInduction(16), [(1, 0)], sequence_length=32)
    assert induction.median_rank == 0.0, "a token alone at the top still ranks 0"


def test_bad_input():
    with pytest.raises(InputError, match="top_k must be a positive integer"):
        copying_dla(HandBuiltInduction(16), [(1, 0)], top_k=0)
    with pytest.raises(InputError, match="out of range"):
        copying_dla(HandBuiltInduction(16), [(3, 0)], sequence_length=32)
    with pytest.raises(InputError, match="names L1H0 more than once"):  # one score per head
        copying_dla(HandBuiltInduction(16), [(1, 0), (0, 0), (1, 0)], sequence_length=32)


@pytest.mark.slow
def test_smollm2_induction_head_raises_the_attended_token_more_than_a_previous_token_head(smollm2):
    scores = {(s.layer, s.head): s for s in copying_dla(smollm2, [(18, 6), (16, 0)])}
    induction, previous = scores[(18, 6)], scores[(16, 0)]
    assert induction.mean_z > 0.5 > previous.mean_z
    assert induction.median_rank < previous.median_rank


def _tiny(arch):
    import transformers as T

    torch.manual_seed(0)
    seq = dict(encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4)
    seq.update(encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=80)
    made = {
        "t5": lambda: (
            T.T5ForConditionalGeneration(
                T.T5Config(vocab_size=97, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4)
            ),
            "decoder.final_layer_norm",
        ),
        "mbart": lambda: (
            T.MBartForConditionalGeneration(T.MBartConfig(vocab_size=97, d_model=32, **seq)),
            "model.decoder.layer_norm",
        ),
        "phi": lambda: (
            T.PhiForCausalLM(
                T.PhiConfig(
                    vocab_size=97,
                    hidden_size=32,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    intermediate_size=64,
                    max_position_embeddings=80,
                    attn_implementation="eager",
                )  # fmt: skip
            ),
            "model.final_layernorm",
        ),
        "mpt": lambda: (
            T.MptForCausalLM(T.MptConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, max_seq_len=80)),
            "transformer.norm_f",
        ),
    }[arch]
    model, norm = made()
    return model.eval(), norm


@pytest.mark.parametrize("arch", ["t5", "mbart", "phi", "mpt"])
def test_the_final_norm_weight_counts(arch):
    """Reweighting the final norm's dimensions (random factors) changes the direct logits, so the scores:
    the final norm is found on T5, mBART, Phi and MPT (names the old lookup did not know)."""
    import copy

    model, norm = _tiny(arch)
    before = copying_dla(model, [(1, 0), (1, 1)], batch_size=2)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        weight = changed.get_submodule(norm).weight
        weight.mul_(torch.rand(weight.shape, generator=torch.Generator().manual_seed(3)) * 4)
    after = copying_dla(changed, [(1, 0), (1, 1)], batch_size=2)
    assert [s.mean_z for s in before] != pytest.approx([s.mean_z for s in after], abs=1e-4)


def test_dla_matches_a_hand_computed_reference():
    """Phi (a final LayerNorm): the head's output slice through its slice of the output projection, centred,
    times the final norm's scale frozen from the clean run and its weight, through the unembedding,
    computed by hand from HF's own forward (hooks and attention weights), gives copying_dla's numbers."""
    from induction_nb.causal.probe import repeat_probe
    from induction_nb.engine.ablator import Ablator

    model, _ = _tiny("phi")
    heads = [(0, 1), (1, 0), (1, 3)]
    got = copying_dla(model, heads, batch_size=2, top_k=5)
    tokens, _, _ = repeat_probe(Ablator(model, None, False), None, 2, 0, tool="copying_dla")
    seen = {}
    hooks = [model.model.final_layernorm.register_forward_pre_hook(lambda m, a: seen.__setitem__("final", a[0]))]
    for l in (0, 1):
        dense = model.model.layers[l].self_attn.dense
        hooks.append(dense.register_forward_pre_hook(lambda m, a, l=l: seen.__setitem__(l, a[0])))
    with torch.no_grad():
        attentions = model(tokens, output_attentions=True).attentions
    for hook in hooks:
        hook.remove()
    n = tokens.shape[1]
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(n, n, dtype=torch.bool).tril(-1)
    scored = earlier.any(-1)
    scored[:, -1] = False
    b, q = scored.nonzero(as_tuple=True)
    torch.set_grad_enabled(False)
    ln = model.model.final_layernorm
    x = seen["final"][b, q]
    scale = 1 / torch.sqrt(x.var(-1, unbiased=False) + ln.eps)
    for (l, h), score in zip(heads, got):
        d = 32 // 4
        w_o = model.model.layers[l].self_attn.dense.weight[:, h * d : (h + 1) * d]
        out = seen[l][b, q, h * d : (h + 1) * d] @ w_o.T
        out = (out - out.mean(-1, keepdim=True)) * scale[:, None] * ln.weight
        logits = out @ model.lm_head.weight.T
        attended = tokens[b, attentions[l][b, h, q].argmax(-1)]
        target = logits[torch.arange(len(b)), attended]
        z = (target - logits.mean(-1)) / logits.std(-1)
        rank = (logits >= target[:, None]).sum(-1) - 1  # other tokens at least as high: ties count against
        assert score.mean_z == pytest.approx(float(z.mean()), abs=1e-4), (l, h)
        assert score.median_rank == float(rank.float().median())
        assert score.top_k_rate == pytest.approx(float(((rank < 5) & (z > 0)).float().mean()))
    torch.set_grad_enabled(True)
