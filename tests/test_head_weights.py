"""engine.head_weights: every head's W_Q, W_K, W_V, W_O read from the weights equal what the model computes.

The reference is the model's own forward, read with plain torch hooks (no induction_nb code): the residual
entering the pre-attention norm, the attention call's position embeddings, and the output projection's input
(each head's output) and output. From our (norm-folded) matrices we recompute every head's output as
``softmax(q k^T * scale) v`` (with the model's own rotary function where it has one) and the projection's
output, and hold them to the model's within 1e-5 of the largest value (float64 models; their softmax rounds
to float32)."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from tiny_configs import build
from tiny_models import ARCHS, VOCAB, make_hf, random_tokens

from induction_nb.analysis.toy import HandBuiltInduction
from induction_nb.engine.head_weights import norm_affine, read_head_weights
from induction_nb.errors import InputError

# architecture -> (attention module attribute of a layer, its output projection, its pre-attention norm)
PARITY = {
    "llama_gqa": ("self_attn", "o_proj", "input_layernorm"),
    "gpt2": ("attn", "c_proj", "ln_1"),
    "gpt_neox": ("attention", "dense", "input_layernorm"),
    "qwen2": ("self_attn", "o_proj", "input_layernorm"),
    "opt": ("self_attn", "out_proj", "self_attn_layer_norm"),
    "phi3": ("self_attn", "o_proj", "input_layernorm"),
    "gpt_bigcode": ("attn", "c_proj", "ln_1"),  # multi-query: one key/value head (tiny_configs.build)
}
ATOL = 1e-5  # of the largest |value|: the models' eager softmax runs in float32 (we compare in float64)


def _sharpened(arch: str) -> torch.nn.Module:
    """A tiny model with every weight redrawn at std 0.7 (norms included: gamma and beta far from 1 and 0), so
    that its attention is far from uniform (the largest weight of a row is 0.7 to 0.9 on average) and an error in
    W_Q or W_K shows in the pattern."""
    model = make_hf(arch) if arch in ARCHS else build(arch)
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.7)
    return model.double()  # the reference in float64: a 1e-5 bound then tests the layout, not the rounding


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        try:
            return model.get_submodule(path)
        except AttributeError:
            continue
    raise AssertionError("no layer list")


def _hooked(model: torch.nn.Module, block: torch.nn.Module, names: tuple[str, str, str], tokens: torch.Tensor):
    """``{x: norm input, kwargs: the attention call's keyword arguments, z / y: the projection's input / output}``."""
    attention_name, out_name, norm_name = names
    attention = getattr(block, attention_name)
    seen: dict = {}

    def norm_in(module, args):
        seen["x"] = args[0].detach()

    def attention_in(module, args, kwargs):
        seen["kwargs"] = kwargs

    def out(module, args, output):
        seen["z"], seen["y"] = args[0].detach(), output.detach()

    hooks = [
        getattr(block, norm_name).register_forward_pre_hook(norm_in),
        attention.register_forward_pre_hook(attention_in, with_kwargs=True),
        getattr(attention, out_name).register_forward_hook(out),
    ]
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _normalised(norm: torch.nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", None) or 1e-5
    if kind == "rms":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)


def _project(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``x [batch, seq, d_model]`` through ``w [head, d_model, d_head]``: ``[batch, head, seq, d_head]``."""
    out = torch.einsum("bsd,hde->bhse", x, w)
    return out if b is None else out + b[None, :, None, :]


@pytest.mark.parametrize("arch", sorted(PARITY))
def test_heads_reproduce_the_models_attention_output(arch):
    model = _sharpened(arch)
    weights = read_head_weights(model)
    tokens = random_tokens()
    assert len(weights.layers) == len(_layers(model))
    for layer, block in zip(weights.layers, _layers(model)):
        seen = _hooked(model, block, PARITY[arch], tokens)
        attention = getattr(block, PARITY[arch][0])
        norm = getattr(block, PARITY[arch][2])
        x = _normalised(norm, seen["x"], norm_affine(norm, weights.d_model)[2])
        q, k, v = (_project(x, getattr(layer, f"W_{n}"), getattr(layer, f"b_{n}")) for n in "QKV")
        if "position_embeddings" in seen["kwargs"]:  # the model's own rotary function on our q and k
            cos, sin = seen["kwargs"]["position_embeddings"]
            q, k = sys.modules[type(attention).__module__].apply_rotary_pos_emb(q, k, cos, sin)
        scale = getattr(attention, "scaling", layer.W_Q.shape[2] ** -0.5)
        n = tokens.shape[1]
        scores = (q @ k.transpose(-1, -2) * scale).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -torch.inf)
        z = (scores.softmax(-1) @ v).transpose(1, 2).reshape(seen["z"].shape)
        assert (z - seen["z"]).abs().max() < ATOL * seen["z"].abs().max(), f"{arch} L{layer.layer}: head outputs"
        heads = seen["z"].view(*seen["z"].shape[:2], layer.n_heads, -1)
        y = torch.einsum("bshe,hed->bsd", heads, layer.W_O) + (0 if layer.b_O is None else layer.b_O)
        assert (y - seen["y"]).abs().max() < ATOL * seen["y"].abs().max(), f"{arch} L{layer.layer}: output projection"


def test_bloom_values_and_output_through_the_models_own_pattern():
    """BLOOM's ALiBi bias is not in the weights: its pattern is the model's (output_attentions), its values ours."""
    model = _sharpened("bloom_alibi")
    weights = read_head_weights(model)
    tokens = random_tokens()
    with torch.no_grad():
        patterns = model(tokens, output_attentions=True).attentions
    for layer, block, pattern in zip(weights.layers, model.transformer.h, patterns):
        seen = _hooked(model, block, ("self_attention", "dense", "input_layernorm"), tokens)
        v = _project(_normalised(block.input_layernorm, seen["x"], "layer"), layer.W_V, layer.b_V)
        z = (pattern @ v).transpose(1, 2).reshape(seen["z"].shape)
        assert (z - seen["z"]).abs().max() < ATOL * seen["z"].abs().max()


def test_grouped_kv_heads_are_expanded_to_the_query_heads_they_serve():
    layer = read_head_weights(make_hf("llama_gqa")).layers[0]  # 6 query heads, 2 kv heads
    assert layer.n_kv_heads == 2 and layer.W_K.shape == (6, 48, 8)
    assert torch.equal(layer.W_K[0], layer.W_K[2]) and not torch.equal(layer.W_K[2], layer.W_K[3])


def test_the_hand_built_transformer_is_read_as_built():
    model = HandBuiltInduction()
    weights = read_head_weights(model)
    assert [(l.layer, l.path, l.layout, l.norm) for l in weights.layers] == [
        (0, "layers.0", "per_head_params", None),
        (1, "layers.1", "per_head_params", None),
    ]
    assert torch.equal(weights.layers[1].W_Q, model.layers[1].W_Q)
    block = model.layers[0].o_proj.weight[:, :48].T  # head 0's slice of o_proj, row convention
    assert torch.equal(weights.layers[0].W_O[0], block)
    assert torch.equal(weights.W_E, model.embed.weight) and torch.equal(weights.W_U, model.unembed.weight.T)
    assert any("pos_embed" in note for note in weights.notes)


@pytest.mark.parametrize(
    "norm, gamma, beta",
    [
        ("gemma", lambda n: 1 + n.weight, None),  # Gemma's RMSNorm multiplies by 1 + weight
        ("layer", lambda n: n.weight, lambda n: n.bias),
        ("bare", lambda n: torch.ones(7), None),  # OLMo's LayerNorm has no parameters; an odd width
    ],
)
def test_norm_weights_are_measured_whatever_the_parametrisation(norm, gamma, beta):
    torch.manual_seed(0)
    if norm == "gemma":
        from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

        module = GemmaRMSNorm(8)
        torch.nn.init.normal_(module.weight)
    elif norm == "layer":
        module = torch.nn.LayerNorm(8)
        torch.nn.init.normal_(module.weight), torch.nn.init.normal_(module.bias)
    else:
        module = torch.nn.LayerNorm(7, elementwise_affine=False)
    got_gamma, got_beta, _ = norm_affine(module, 7 if norm == "bare" else 8)
    assert torch.allclose(got_gamma, gamma(module).detach().double(), atol=1e-5)
    assert (got_beta is None) if beta is None else torch.allclose(got_beta, beta(module).detach().double(), atol=1e-5)


def test_a_norm_that_is_not_elementwise_is_refused():
    with pytest.raises(InputError, match="not an elementwise RMSNorm or LayerNorm.*fold_norms=False"):
        norm_affine(torch.nn.Linear(8, 8), 8)


class _FusedAttention(torch.nn.Module):
    def __init__(self, d: int = 16):
        super().__init__()
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d)


class _Unknown(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.blocks = torch.nn.ModuleList([_FusedAttention(), _FusedAttention()])


def test_an_unknown_layout_is_an_input_error_naming_its_class():
    with pytest.raises(InputError, match=r"_FusedAttention at 'blocks\.0' has a layout no reader knows.*HeadLayout"):
        read_head_weights(_Unknown())
    with pytest.raises(InputError, match="FalconAttention at 'transformer.h.0.self_attention'"):
        read_head_weights(make_hf("falcon"))  # its query_key_value is not laid out [head, 3, d_head]


def test_adapters_and_wrappers_read_as_the_model_they_compute():
    """A LoRA-adapted model reads as the model with B A merged; compiled, nnsight-wrapped and CPU-offloaded
    (accelerate: meta parameters brought in by hooks) models as the model itself."""
    from accelerate import cpu_offload
    from peft import LoraConfig, get_peft_model

    model = make_hf("llama_gqa")
    torch.manual_seed(1)
    adapted = get_peft_model(copy.deepcopy(model), LoraConfig(target_modules="all-linear", init_lora_weights=False))
    merged = copy.deepcopy(adapted).merge_and_unload()
    got, want = read_head_weights(adapted.eval()), read_head_weights(merged.eval())
    for a, b in zip(got.layers, want.layers):
        for n in ("W_Q", "W_K", "W_V", "W_O"):
            assert torch.allclose(getattr(a, n), getattr(b, n), atol=1e-5), n
    assert not torch.allclose(got.layers[0].W_V, read_head_weights(model).layers[0].W_V, atol=1e-3)
    import nnsight

    plain = read_head_weights(model)
    for held in (torch.compile(model, backend="eager"), nnsight.NNsight(model)):
        assert torch.equal(read_head_weights(held).layers[1].W_O, plain.layers[1].W_O)
    offloaded = copy.deepcopy(model)
    cpu_offload(offloaded, execution_device="cpu")
    assert any(p.device.type == "meta" for p in offloaded.parameters())
    got = read_head_weights(offloaded)
    assert torch.equal(got.layers[1].W_V, plain.layers[1].W_V) and torch.equal(got.W_U, plain.W_U)
