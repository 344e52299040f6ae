"""Discovery of every kind of attention site, each checked against eager ``output_attentions=True``.

One test per kind of fault the architecture sweep found (issue 11): attention computed in a helper
method, learned attention sinks, one module applied several times, layer labels of hybrid models,
multimodal wrappers and prompt prefixes. The expected values are eager's own weights.
"""

import pytest
import torch
import transformers
from tiny_configs import build
from tiny_models import make_jamba

from induction_nb import capture_attention
from induction_nb.engine.discovery import layer_labels
from induction_nb.errors import InputError

TOKENS = torch.randint(3, 127, (2, 12), generator=torch.Generator().manual_seed(1))


def _eager(model, tokens=TOKENS):
    with torch.no_grad():
        out = model(tokens, output_attentions=True)
    return [a.float() for a in out.attentions if a is not None]


def _model(config_name, model_name, **kwargs):
    config = getattr(transformers, config_name)(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return getattr(transformers, model_name)(config).eval()


def _assert_parity(got, want, layers=None):
    assert got.pattern.shape[1] == len(want)
    for j, w in enumerate(want):
        torch.testing.assert_close(got.pattern[:, j, : w.shape[1]], w, atol=1e-5, rtol=0)
    if layers is not None:
        assert got.layers == tuple(layers)


# --- kind 1: attention computed in a helper method --------------------------------------------------------


def test_gpt_neo_attention_in_a_helper_method():
    model = _model(
        "GPTNeoConfig",
        "GPTNeoForCausalLM",
        vocab_size=128,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        window_size=4,
    )
    got = capture_attention(model, TOKENS)
    _assert_parity(got, _eager(model), layers=[0, 1])
    assert got.sites[0].kind == "returned_weights" and "_attn" in got.sites[0].op
    assert (got.pattern[0, 1, :, 11, :8] == 0).all(), "the local layer's window of 4 is respected"


def test_gpt2_reorder_and_upcast_attention():
    model = _model(
        "GPT2Config", "GPT2LMHeadModel", vocab_size=128, n_embd=64, n_layer=2, n_head=4, reorder_and_upcast_attn=True
    )
    got = capture_attention(model, TOKENS)
    _assert_parity(got, _eager(model))
    assert "upcast" in got.sites[0].op


@pytest.mark.parametrize("model_type", ["openai-gpt", "gpt_neox_japanese", "xlnet", "trocr"])
def test_softmax_inside_a_helper_or_split_across_batch_and_heads(model_type):
    model = build(model_type)
    got = capture_attention(model, TOKENS)
    _assert_parity(got, _eager(model))


# --- kind 2: attention sinks ----------------------------------------------------------------------------


def test_gpt_oss_sink_share_completes_each_row():
    model = build("gpt_oss")
    want = _eager(model)
    got = capture_attention(model, TOKENS)
    _assert_parity(got, want)
    rows = torch.stack(want, 1).sum(-1)
    assert rows.min() < 0.9, "the tiny model's sinks take a visible share"
    torch.testing.assert_close(got.sink_mass, 1 - rows, atol=1e-5, rtol=0)


def test_granite_renormalised_weights_and_their_sink():
    model = build("granite_swa")
    with torch.no_grad():
        model.model.layers[0].self_attn.sinks.fill_(1.5)  # a sink worth something
    want = _eager(model)
    got = capture_attention(model, TOKENS)
    _assert_parity(got, want)  # granite's eager weights are renormalised over the tokens: rows sum to 1
    sink = got.sink_mass[:, 0]
    assert float(sink.min()) > 0.05 and float(sink.max()) < 1


# --- kind 3: one module applied several times -----------------------------------------------------------


def test_albert_shared_layer_is_three_layers():
    model = _model(
        "AlbertConfig",
        "AlbertForMaskedLM",
        vocab_size=128,
        hidden_size=64,
        num_attention_heads=4,
        intermediate_size=128,
        num_hidden_layers=3,
        num_hidden_groups=1,
        embedding_size=32,
    )
    got = capture_attention(model, TOKENS)
    _assert_parity(got, _eager(model), layers=[0, 1, 2])
    assert [s.call for s in got.sites] == [0, 1, 2] and len({s.path for s in got.sites}) == 1


@pytest.mark.parametrize("model_type", ["dory", "hrm_text"])
def test_looped_models_give_one_layer_per_application(model_type):
    model = build(model_type)
    want = _eager(model)
    got = capture_attention(model, TOKENS)
    assert len({s.path for s in got.sites}) < len(got.sites), "some module runs more than once"
    _assert_parity(got, want, layers=range(len(want)))


# --- kind 4: layer labels -------------------------------------------------------------------------------


def test_jamba_attention_layers_keep_their_indices():
    model = make_jamba()
    want = _eager(model)
    got = capture_attention(model, TOKENS)
    _assert_parity(got, want, layers=[1, 3])
    one = capture_attention(model, TOKENS, layers=[3])
    torch.testing.assert_close(one.pattern[:, 0], want[1], atol=1e-5, rtol=0)
    with pytest.raises(InputError, match=r"layer\(s\) \[2\] out of range.*layer indices 1, 3"):
        capture_attention(model, TOKENS, layers=[2])


def test_linear_attention_layer_is_absent_not_renumbered():
    model = build("minimax")
    got = capture_attention(model, TOKENS)
    softmax_layers = [i for i, t in enumerate(model.config.layer_types) if t == "full_attention"]
    assert list(got.layers) == softmax_layers
    torch.testing.assert_close(got.pattern[:, 0], _eager(model)[softmax_layers[0]], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "paths,labels",
    [
        (["model.layers.0.attn", "model.layers.1.attn"], [0, 1]),
        (["model.layers.1.self_attn", "model.layers.3.self_attn"], [1, 3]),
        (["a.layers.0.attn", "a.layers.0.attn", "a.layers.0.attn"], [0, 1, 2]),  # one module, three applications
        (["enc.layers.0.attn", "dec.layers.0.attn"], [0, 1]),  # no shared list: run order
        (["blocks.0.0.attn", "blocks.0.1.attn", "blocks.1.0.attn"], [0, 1, 2]),
    ],
)
def test_layer_labels(paths, labels):
    assert layer_labels(paths) == labels


# --- kind 5: multimodal wrappers and positions before the tokens ---------------------------------------------


@pytest.mark.parametrize("model_type", ["gemma3", "phi4_multimodal"])
def test_multimodal_wrapper_scans_the_language_model(model_type):
    model = build(model_type)
    got = capture_attention(model, TOKENS)
    _assert_parity(got, _eager(model))
    assert all("vision" not in s.path and "img" not in s.path for s in got.sites)


def test_cpmant_prompt_positions_are_cut_and_reported_as_sink():
    model = build("cpmant")
    want = _eager(model)  # cpmant's eager weights drop its prompt positions too
    got = capture_attention(model, TOKENS)
    _assert_parity(got, want)
    torch.testing.assert_close(got.sink_mass, 1 - torch.stack(want, 1).sum(-1), atol=1e-5, rtol=0)


def test_deepseek_v4_memory_slots_join_the_sink():
    model = build("deepseek_v4")
    with torch.no_grad():
        out = model(TOKENS, output_attentions=True)
    got = capture_attention(model, TOKENS)
    for j, w in enumerate(out.attentions):
        w = w.float()
        torch.testing.assert_close(got.pattern[:, j], w[..., :12], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            got.sink_mass[:, j] + got.pattern[:, j].sum(-1), torch.ones(2, 4, 12), atol=1e-5, rtol=0
        )
    assert out.attentions[-1].shape[-1] > 12, "a layer with keys beyond the tokens is exercised"
