"""The recompute path against hand-written reference loops (no shared code with the module)."""

import math

import pytest
import torch

from induction_nb.engine.attention_math import attention_from_qk, repeat_kv_heads
from induction_nb.errors import CaptureCheckError


def reference(q, k, scaling, softcap=None, causal=False, window=None, add=None, sink=None):
    """Row-by-row softmax over plain Python loops: the definition, written independently."""
    b, h, n_q, d = q.shape
    group = h // k.shape[1]
    out = torch.zeros(b, h, n_q, k.shape[2], dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            for i in range(n_q):
                scores = []
                for j in range(k.shape[2]):
                    s = float((q[bi, hi, i].double() * k[bi, hi // group, j].double()).sum()) * scaling
                    if softcap:
                        s = math.tanh(s / softcap) * softcap
                    if add is not None:
                        s += float(add[bi, 0, i, j])
                    allowed = not (causal and j > i) and not (window and i - j >= window)
                    scores.append(s if allowed else -math.inf)
                m = max(scores + ([float(sink[hi])] if sink is not None else []))
                e = [math.exp(s - m) for s in scores]
                z = sum(e) + (math.exp(float(sink[hi]) - m) if sink is not None else 0.0)
                out[bi, hi, i] = torch.tensor(e) / z
    return out


@pytest.fixture
def qk():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 6, 7, 4, generator=g), torch.randn(2, 2, 7, 4, generator=g)


def test_gqa_causal_matches_reference(qk):
    q, k = qk
    got = attention_from_qk(q, k, is_causal=True)
    torch.testing.assert_close(got.double(), reference(q, k, 0.5, causal=True), atol=1e-6, rtol=0)


def test_softcap_and_sliding_window(qk):
    q, k = qk
    got = attention_from_qk(q, k, scaling=0.3, is_causal=True, softcap=1.5, sliding_window=3)
    want = reference(q, k, 0.3, softcap=1.5, causal=True, window=3)
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=0)
    assert (got[..., 6, :4] == 0).all(), "keys 4+ steps back are outside a window of 3"


def test_float_mask_is_added_and_bool_mask_means_may_attend(qk):
    q, k = qk
    add = torch.randn(2, 1, 7, 7)
    torch.testing.assert_close(
        attention_from_qk(q, k, mask=add).double(), reference(q, k, 0.5, add=add), atol=1e-6, rtol=0
    )
    keep = torch.ones(7, 7, dtype=torch.bool).tril()
    torch.testing.assert_close(
        attention_from_qk(q, k, mask=keep).double(), reference(q, k, 0.5, causal=True), atol=1e-6, rtol=0
    )


def test_sinks_take_part_of_the_denominator(qk):
    q, k = qk
    sink = torch.linspace(-1, 1, 6)
    got = attention_from_qk(q, k, is_causal=True, sinks=sink)
    torch.testing.assert_close(got.double(), reference(q, k, 0.5, causal=True, sink=sink), atol=1e-6, rtol=0)
    assert (got.sum(-1) < 1).all()


def test_inputs_are_not_modified(qk):
    q, k = qk
    q0, k0 = q.clone(), k.clone()
    attention_from_qk(q, k, is_causal=True, softcap=2.0)
    assert torch.equal(q, q0) and torch.equal(k, k0)


def test_repeat_kv_heads_groups_consecutive_query_heads():
    k = torch.arange(2).view(1, 2, 1, 1).float()
    assert repeat_kv_heads(k, 6).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(CaptureCheckError, match="5 query heads cannot share 2 key/value heads evenly"):
        repeat_kv_heads(k, 5)
