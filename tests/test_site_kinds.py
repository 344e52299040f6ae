"""Site kinds (one reader class each) on hand-made calls: flash-style padding masks, MHA masks, rejection of
non-attention, and each kind's last-row read while decoding against its whole pattern."""

from types import SimpleNamespace

import pytest
import torch

from induction_nb.engine import discovery
from induction_nb.engine.reads import Read
from induction_nb.engine.site_kinds import KINDS, SiteKind, discoverable, register_kind
from induction_nb.errors import InputError


class _Module(torch.nn.Module):
    is_causal = True


def _qkv(seed=0, b=2, h=4, kv=2, t=5, d=8):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, t, d, generator=g),
        torch.randn(b, kv, t, d, generator=g),
        torch.randn(b, kv, t, d, generator=g),
    )


def test_flash_style_2d_padding_mask_with_implicit_causal_and_window():
    q, k, v = _qkv()
    keep = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])  # second sequence is left-padded by one
    pattern, causal, _, _ = KINDS["hf_interface"].read(
        (_Module(), q, k, v, keep), {"scaling": 0.25, "sliding_window": 3}, (None, None), None
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
    got, is_causal, _, _ = KINDS["mha"].read((x, x, x), {"key_padding_mask": kpm, "attn_mask": causal}, None, mha)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert is_causal


def test_non_attention_calls_are_rejected():
    q, k, v = _qkv()
    # shaped like attention, but the output is not softmax(qk^T) v: e.g. a call returning v unchanged
    assert KINDS["sdpa_call"].looks_like((q, k, v), {}, v.repeat_interleave(2, 1))
    read = KINDS["sdpa_call"].read((q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)), {}, None, None)
    assert not KINDS["sdpa_call"].reproduces((q, k, v), {}, v.repeat_interleave(2, 1), read)
    # a linear layer's inputs are not (module, q, k, ...)
    assert not KINDS["hf_interface"].looks_like((torch.randn(2, 5, 8),), {}, torch.randn(2, 5, 8))
    # row-stochastic but not square: not a self-attention pattern
    assert not KINDS["softmax"].looks_like((), {}, torch.softmax(torch.randn(2, 4, 5, 6), -1))
    # square but not a distribution
    assert not KINDS["softmax"].looks_like((), {}, torch.randn(2, 4, 5, 5))


def test_sdpa_call_with_bool_mask_reports_causality_from_the_mask():
    q, k, v = _qkv(kv=4)
    tri = torch.ones(5, 5, dtype=torch.bool).tril()
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=tri)
    read = KINDS["sdpa_call"].read((q, k, v), {"attn_mask": tri}, out, None)
    assert read.causal and KINDS["sdpa_call"].reproduces((q, k, v), {"attn_mask": tri}, out, read)
    full = torch.ones(5, 5, dtype=torch.bool)
    _, causal, _, _ = KINDS["sdpa_call"].read((q, k, v), {"attn_mask": full}, None, None)
    assert not causal


def test_last_row_equals_the_last_row_of_the_whole_pattern():
    """Decoding reads only each head's last query row; every kind gives the arg-max of its full pattern's."""
    q, k, v = _qkv(kv=4)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    sdpa = KINDS["sdpa_call"]
    whole = sdpa.read((q, k, v), {"is_causal": True}, out)
    assert torch.equal(sdpa.last_row((q, k, v), {"is_causal": True}, out), whole.pattern[:, :, -1].argmax(-1))
    hf = KINDS["hf_interface"]
    call = ((_Module(), q, k, v, None), {"scaling": 0.3})
    assert torch.equal(hf.last_row(*call, (None, None)), hf.read(*call, (None, None)).pattern[:, :, -1].argmax(-1))
    assert KINDS["hf_interface"] == "hf_interface" and KINDS["mha"] != "sdpa_call", "a kind equals its name"


def test_a_new_kind_is_one_class_that_discovery_then_tries():
    """A ``SiteKind`` subclass with a name, decorated with ``register_kind``, is registered; its
    ``discovery_rank`` puts it in the order discovery's judge tries kinds; a second class under a taken name
    is refused with both names."""
    pattern = torch.softmax(torch.randn(1, 2, 4, 4), -1)
    try:

        @register_kind
        class Tagged(SiteKind):  # a kernel that hands its weights back under a key of its own
            name = "tagged_kernel"
            discovery_rank = 5

            def looks_like(self, args, kwargs, output):
                return "my_weights" in kwargs

            def read(self, args, kwargs, output, module=None, batch=None, lazy=False):
                return Read(kwargs["my_weights"], True)

        assert KINDS["tagged_kernel"] == "tagged_kernel" and discoverable()[0] == "tagged_kernel"
        assert [k.name for k in discoverable()][1:] == ["hf_interface", "sdpa_call", "softmax", "returned_weights"]
        node = SimpleNamespace(inputs=((), {"my_weights": pattern}), output=None)
        assert discovery._judge(node, 1, 4) == "tagged_kernel"
        assert discovery._judge(SimpleNamespace(inputs=((), {}), output=None), 1, 4) is None
        with pytest.raises(InputError, match=r"'softmax' exists already .*Softmax.*another name"):

            @register_kind
            class Clash(SiteKind):
                name = "softmax"

        @register_kind
        class Tagged(SiteKind):  # noqa: F811 - re-running the definition (a notebook cell) replaces it
            name = "tagged_kernel"

        assert type(KINDS["tagged_kernel"]) is Tagged and "tagged_kernel" not in discoverable()
    finally:
        KINDS.pop("tagged_kernel", None)
    assert "tagged_kernel" not in KINDS and KINDS["softmax"].__class__.__name__ == "Softmax"


@pytest.mark.parametrize(
    "attrs, match",
    [
        ({"name": "mine", "discovery_rank": "5"}, "discovery_rank must be a finite number or None, got '5'"),
        ({"name": "mine", "discovery_rank": float("nan")}, "discovery_rank must be a finite number"),
        ({"name": 5}, "needs a name \\(a non-empty string\\), got 5"),
        ({"name": ""}, "needs a name"),
    ],
)
def test_a_malformed_site_kind_is_refused_when_registered(attrs, match):
    with pytest.raises(InputError, match=match):
        register_kind(type("Mine", (SiteKind,), attrs))
    assert "mine" not in KINDS and 5 not in KINDS
    with pytest.raises(InputError, match="register_kind takes a SiteKind subclass"):
        register_kind(type("Plain", (), {"name": "plain"}))
