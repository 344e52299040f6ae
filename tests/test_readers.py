"""Site readers on hand-made calls: flash-style padding masks, MHA masks, and rejection of non-attention."""

import torch

from induction_nb._readers import check_reproduces_output, looks_like, read_site


class _Module(torch.nn.Module):
    is_causal = True


def _qkv(seed=0, b=2, h=4, kv=2, t=5, d=8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, h, t, d, generator=g), torch.randn(b, kv, t, d, generator=g), torch.randn(b, kv, t, d, generator=g))


def test_flash_style_2d_padding_mask_with_implicit_causal_and_window():
    q, k, v = _qkv()
    keep = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])  # second sequence is left-padded by one
    pattern, causal, _, _ = read_site(
        "hf_interface", (_Module(), q, k, v, keep), {"scaling": 0.25, "sliding_window": 3}, (None, None), None
    )
    assert causal
    kk = k.repeat_interleave(2, dim=1)
    s = (q @ kk.transpose(-1, -2)) * 0.25
    i, j = torch.arange(5)[:, None], torch.arange(5)[None, :]
    allowed = (j <= i) & (i - j < 3) & keep.bool()[:, None, None, :]
    want = torch.softmax(s.masked_fill(~allowed, float("-inf")), -1)
    want = torch.nan_to_num(want)  # the fully padded first row of sequence 2 has no key at all
    torch.testing.assert_close(torch.nan_to_num(pattern), want, atol=1e-6, rtol=0)
    assert (pattern[1, :, 4, 0] == 0).all() and (pattern[0, :, 4, :2] == 0).all()


def test_mha_key_padding_and_bool_masks_match_torch():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 6, 16)
    kpm = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])  # True = padding, ignored
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)  # True = may not attend
    want = mha(x, x, x, key_padding_mask=kpm, attn_mask=causal, need_weights=True, average_attn_weights=False)[1]
    got, is_causal, _, _ = read_site("mha", (x, x, x), {"key_padding_mask": kpm, "attn_mask": causal}, None, mha)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert is_causal


def test_non_attention_calls_are_rejected():
    q, k, v = _qkv()
    # shaped like attention, but the output is not softmax(qk^T) v: e.g. a call returning v unchanged
    assert looks_like("sdpa_call", (q, k, v), {}, v.repeat_interleave(2, 1))
    read = read_site("sdpa_call", (q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)), {}, None, None)
    assert not check_reproduces_output("sdpa_call", (q, k, v), {}, v.repeat_interleave(2, 1), read)
    # a linear layer's inputs are not (module, q, k, ...)
    assert not looks_like("hf_interface", (torch.randn(2, 5, 8),), {}, torch.randn(2, 5, 8))
    # row-stochastic but not square: not a self-attention pattern
    assert not looks_like("softmax", (), {}, torch.softmax(torch.randn(2, 4, 5, 6), -1))
    # square but not a distribution
    assert not looks_like("softmax", (), {}, torch.randn(2, 4, 5, 5))


def test_sdpa_call_with_bool_mask_reports_causality_from_the_mask():
    q, k, v = _qkv(kv=4)
    tri = torch.ones(5, 5, dtype=torch.bool).tril()
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=tri)
    read = read_site("sdpa_call", (q, k, v), {"attn_mask": tri}, out, None)
    assert read.causal and check_reproduces_output("sdpa_call", (q, k, v), {"attn_mask": tri}, out, read)
    full = torch.ones(5, 5, dtype=torch.bool)
    _, causal, _, _ = read_site("sdpa_call", (q, k, v), {"attn_mask": full}, None, None)
    assert not causal
