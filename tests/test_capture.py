"""capture_attention / stream_attention against independent references.

HF models: the pattern captured under every backend equals eager ``output_attentions=True``.
Plain PyTorch: equals ``nn.MultiheadAttention``'s own weights, or a softmax computed here from the
projections. The real SmolLM2 shows its induction stripe where metrics.md says it is.
"""

import sys

import pytest
import torch
import transformers
from tiny_models import ARCHS, EncoderStack, NanoGPT, make_hf, random_tokens

from induction_nb import AttentionPatterns, capture_attention, stream_attention
from induction_nb.errors import CaptureCheckError, InputError

BACKENDS = ["eager", "sdpa", "noweights"]


def _register_noweights(arch: str) -> str:
    """A third backend: the architecture's own eager kernel, but returning no weights, so capture must
    recompute them (covers soft-capping and sliding windows where sdpa is not offered)."""
    name = f"noweights_{arch}"
    model_cls = getattr(transformers, ARCHS[arch][1])
    eager = getattr(sys.modules[model_cls.__module__], "eager_attention_forward", None)
    if eager is None:
        pytest.skip(f"{arch} does not route through transformers' attention interface")

    def kernel(*args, **kwargs):
        return eager(*args, **kwargs)[0], None

    transformers.AttentionInterface.register(name, kernel)
    # a custom kernel gets no mask unless one is registered: the eager (always materialised) one
    from transformers.masking_utils import eager_mask

    transformers.AttentionMaskInterface.register(name, eager_mask)
    return name


def _eager_reference(arch: str, tokens: torch.Tensor) -> torch.Tensor:
    model = make_hf(arch, "eager")
    with torch.no_grad():
        attentions = model(tokens, output_attentions=True).attentions
    return torch.stack(attentions, dim=1).float()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_hf_parity_with_output_attentions(arch, backend):
    tokens = random_tokens(batch=2, seq=12)
    impl = _register_noweights(arch) if backend == "noweights" else backend
    try:
        model = make_hf(arch, impl)
    except (ValueError, ImportError) as e:
        pytest.skip(f"transformers offers no {backend} for {arch}: {str(e)[:80]}")
    got = capture_attention(model, tokens)
    want = _eager_reference(arch, tokens)
    assert got.pattern.shape == want.shape
    torch.testing.assert_close(got.pattern, want, atol=1e-5, rtol=0)
    assert got.causal == (arch != "bert_encoder")
    if backend != "eager":
        assert got.sites[0].kind in ("hf_interface", "sdpa_call")


def test_sliding_window_and_gqa_are_really_exercised():
    tokens = random_tokens(batch=1, seq=12)
    mistral = capture_attention(make_hf("mistral_sliding", "sdpa"), tokens).pattern
    assert (mistral[0, :, :, 11, :7] == 0).all() and (mistral[0, :, :, 11, 7:] > 0).all()  # window 5
    llama = make_hf("llama_gqa", "sdpa")
    assert llama.config.num_key_value_heads < llama.config.num_attention_heads
    assert capture_attention(llama, tokens).n_heads == 6


def _mha_reference(model: EncoderStack, tokens: torch.Tensor) -> torch.Tensor:
    """Each layer's weights from nn.MultiheadAttention itself (need_weights=True, per head)."""
    x, mask, out = model.embed_tokens(tokens), model.mask(tokens.shape[1]), []
    with torch.no_grad():
        for layer in model.encoder.layers:
            a = layer.norm1(x) if layer.norm_first else x
            out.append(layer.self_attn(a, a, a, attn_mask=mask, need_weights=True, average_attn_weights=False)[1])
            x = layer(x, src_mask=mask, is_causal=model.causal)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize(
    "causal,norm_first,batch_first", [(True, False, True), (False, True, True), (True, True, False)]
)
def test_transformer_encoder_stack(causal, norm_first, batch_first):
    torch.manual_seed(0)
    model = EncoderStack(causal, norm_first, batch_first).eval()
    tokens = random_tokens(batch=3, seq=10)
    got = capture_attention(model, tokens)
    torch.testing.assert_close(got.pattern, _mha_reference(model, tokens), atol=1e-5, rtol=0)
    assert got.causal is causal
    assert torch.backends.mha.get_fastpath_enabled(), "the fast path switch is restored after capture"


@pytest.mark.parametrize("flash", [True, False])
def test_nanogpt_block(flash):
    torch.manual_seed(0)
    model = NanoGPT(flash=flash).eval()
    tokens = random_tokens(batch=2, seq=9)
    qkv = []
    hooks = [b.attn.c_attn.register_forward_hook(lambda m, i, o: qkv.append(o.detach())) for b in model.h]
    with torch.no_grad():
        model(tokens)
    for h in hooks:
        h.remove()
    want = []
    for out in qkv:  # independent: split the fused projection and softmax by hand
        q, k, _ = out.split(32, dim=2)
        q = q.view(2, 9, 4, 8).transpose(1, 2)
        k = k.view(2, 9, 4, 8).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / 8**0.5 + torch.full((9, 9), float("-inf")).triu(1)
        want.append(torch.softmax(s, -1))
    got = capture_attention(model, tokens)
    torch.testing.assert_close(got.pattern, torch.stack(want, 1), atol=1e-5, rtol=0)
    assert got.sites[0].kind == ("sdpa_call" if flash else "softmax")


def test_layers_subset_and_stream_reducer_sees_each_layer_once():
    model = make_hf("llama_gqa", "sdpa")
    tokens = random_tokens(batch=2, seq=12)
    full = capture_attention(model, tokens)
    part = capture_attention(model, tokens, layers=[1])
    assert part.layers == (1,) and torch.equal(part.pattern[:, 0], full.pattern[:, 1])
    seen = stream_attention(model, tokens, lambda layer, p: (layer, tuple(p.shape), p[..., -1, :].sum().item()))
    assert [s[0] for s in seen] == [0, 1]
    assert seen[0][1] == (2, 6, 12, 12)
    assert seen[1][2] == pytest.approx(2 * 6, abs=1e-4)  # rows sum to 1: 2 sequences x 6 heads


def test_stream_reducer_cannot_corrupt_later_results():
    model = make_hf("gpt2", "eager")
    tokens = random_tokens()
    before = capture_attention(model, tokens).pattern.clone()
    stream_attention(model, tokens, lambda layer, p: p.amax(dim=(-1, -2)))
    torch.testing.assert_close(capture_attention(model, tokens).pattern, before, atol=0, rtol=0)


def test_head_accessor_and_repr():
    p = capture_attention(make_hf("gpt2", "eager"), random_tokens())
    assert isinstance(p, AttentionPatterns) and p.head(1, 3).shape == (12, 12)
    assert "heads=4" in repr(p)
    with pytest.raises(InputError, match="out of range"):
        p.head(1, 4)


def test_half_precision_models_are_captured_in_float32():
    tokens = random_tokens()
    ref = capture_attention(make_hf("llama_gqa", "eager"), tokens).pattern
    for dtype in (torch.bfloat16, torch.float16):
        model = make_hf("llama_gqa", "eager").to(dtype)
        got = capture_attention(model, tokens)
        assert got.pattern.dtype == torch.float32
        assert (got.pattern.sum(-1) - 1).abs().max() < 1e-5
        torch.testing.assert_close(got.pattern, ref, atol=0.05, rtol=0)


# --- bad input ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return make_hf("gpt2", "eager")


@pytest.mark.parametrize(
    "tokens,match",
    [
        (torch.rand(2, 8), "integer token ids"),
        (torch.ones(2, 8, dtype=torch.bool), "integer token ids"),
        (torch.ones(2, 3, 4, dtype=torch.long), r"shape \[batch, seq\]"),
        (torch.tensor(5), r"shape \[batch, seq\]"),
        (torch.ones(0, 8, dtype=torch.long), "empty batch"),
        (torch.ones(2, 1, dtype=torch.long), "at least 2 tokens"),
        (torch.full((2, 8), 97), "token id 97 is out of range.*97 entries"),
        (torch.full((2, 8), -1), ">= 0"),
        (torch.ones(1, 65, dtype=torch.long), "exceeds the model's 64 positions"),
        (torch.ones(2, 8, dtype=torch.long, device="meta"), "meta device"),
        ("hello", "strings need the model.s tokenizer, and this model has none"),
    ],
)
def test_bad_tokens(tiny, tokens, match):
    with pytest.raises(InputError, match=match):
        capture_attention(tiny, tokens)


@pytest.mark.parametrize(
    "layers,match", [([2], r"out of range.*2 layers"), ([-1], "out of range"), ([], "empty"), ("x", "list of ints")]
)
def test_bad_layers(tiny, layers, match):
    with pytest.raises(InputError, match=match):
        capture_attention(tiny, random_tokens(), layers=layers)


def test_training_mode_is_refused():
    model = make_hf("gpt2", "eager").train()
    with pytest.raises(InputError, match=r"training mode.*eval\(\)"):
        capture_attention(model, random_tokens())


def test_list_tokens_and_1d_tokens_are_accepted(tiny):
    one = capture_attention(tiny, [5, 6, 7, 8])
    assert one.pattern.shape[:1] == (1,) and one.tokens.dtype == torch.long


def test_self_check_names_the_layer():
    from induction_nb import CustomSites

    model = make_hf("gpt2", "eager")
    broken = CustomSites(
        "transformer.h.{layer}.attn",
        n_layers=2,
        op="attention_interface_1",
        read=lambda a, k, out: out[1] * 1.5,
    )
    with pytest.raises(CaptureCheckError, match="layer 0: attention rows do not sum to 1"):
        capture_attention(model, random_tokens(), sites=broken)
    leaky = CustomSites(
        "transformer.h.{layer}.attn",
        n_layers=2,
        op="attention_interface_1",
        causal=True,
        read=lambda a, k, out: torch.full_like(out[1], 1 / out[1].shape[-1]),
    )
    with pytest.raises(CaptureCheckError, match="layer 0: a causal layer attends to future positions"):
        capture_attention(model, random_tokens(), sites=leaky)
    nan = CustomSites(
        "transformer.h.{layer}.attn",
        n_layers=2,
        op="attention_interface_1",
        read=lambda a, k, out: out[1] * float("nan"),
    )
    with pytest.raises(CaptureCheckError, match="layer 0: .*NaN"):
        capture_attention(model, random_tokens(), sites=nan)


# --- the real model ------------------------------------------------------------------------------------


def repeated_random(batch=4, half=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    block = torch.randint(1000, 10000, (batch, half), generator=g)
    return torch.cat([block, block], dim=1)


@pytest.mark.slow
def test_smollm2_shape_and_induction_stripe(smollm2):
    tokens = repeated_random()
    p = capture_attention(smollm2, tokens)
    assert p.pattern.shape == (4, 30, 9, 100, 100) and p.causal
    q = torch.arange(50, 100)
    stripe = p.pattern[:, :, :, q, q - 49].mean(dim=(0, 3))  # [layer, head], offset -(P-1)
    reference = {(18, 6): 0.92, (17, 3): 0.85, (17, 4): 0.77, (17, 5): 0.71, (18, 7): 0.63}  # metrics.md
    for (layer, head), value in reference.items():
        assert stripe[layer, head].item() == pytest.approx(value, abs=0.015), (layer, head)
    others = stripe.clone()
    for layer, head in reference:
        others[layer, head] = 0
    assert others.max() < 0.52
    same_position = p.pattern[:, :, :, q, q - 50].mean(dim=(0, 3))  # offset -P: not the induction stripe
    assert same_position[18, 6] < 0.2


@pytest.mark.slow
def test_smollm2_parity_eager_and_sdpa(smollm2):
    from induction_nb import load_model

    tokens = repeated_random(batch=2, half=16, seed=1)
    hf = smollm2._module
    with torch.no_grad():
        want = torch.stack(hf(tokens, output_attentions=True).attentions, dim=1)
    torch.testing.assert_close(capture_attention(smollm2, tokens).pattern, want, atol=1e-5, rtol=0)
    sdpa = load_model(attn_implementation="sdpa")
    got = capture_attention(sdpa, tokens)
    assert got.sites[0].kind == "hf_interface"
    torch.testing.assert_close(got.pattern, want, atol=1e-5, rtol=0)
