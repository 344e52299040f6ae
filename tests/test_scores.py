"""Each metric on small attention matrices whose answers are worked out by hand.

Sequence ``A B C A B C`` (period P = 3): the induction target of q = 3, 4, 5 is k = 1, 2, 3, i.e. the
stripe at k = q - (P - 1). The literal reading of the original spec (k = q - P, the same token's earlier
position) is the duplicate-token stripe and must score 0 here: that pins the offset.
"""

import math

import pytest
import torch

from induction_nb import metrics as S
from induction_nb.metrics import REGISTRY, combine_heads, control_key

copying = REGISTRY["copying"].of
previous_token = REGISTRY["previous_token"].of
diagonal = REGISTRY["diagonal"].of
duplicate_token = REGISTRY["duplicate_token"].of


def combine(prefix, control, copy):
    """The head metrics from per-sequence values, as the detector combines them."""
    means = {
        "prefix_matching": prefix.nanmean(0),
        control_key("prefix_matching"): control.nanmean(0),
        "copying": copy.nanmean(0),
    }
    return combine_heads(means)


TOKENS = torch.tensor([[1, 2, 3, 1, 2, 3]])


def head(rows: dict[int, dict[int, float]], n: int = 6) -> torch.Tensor:
    """A causal [1, 1, n, n] pattern: the given rows, every other row on itself (diagonal)."""
    A = torch.zeros(1, 1, n, n)
    for q in range(n):
        for k, w in rows.get(q, {q: 1.0}).items():
            A[0, 0, q, k] = w
    return A


INDUCTION = head({3: {1: 1.0}, 4: {2: 1.0}, 5: {3: 1.0}})
SAME_TOKEN = head({3: {0: 1.0}, 4: {1: 1.0}, 5: {2: 1.0}})  # offset -P: duplicate-token, not induction
PREVIOUS = head({q: {q - 1: 1.0} for q in range(1, 6)})
HALF = head({3: {1: 0.5, 3: 0.5}, 4: {2: 0.5, 4: 0.5}, 5: {3: 0.5, 5: 0.5}})
UNIFORM = torch.tril(torch.ones(6, 6))[None, None] / torch.arange(1, 7).view(1, 1, 6, 1)


def test_match_mask_is_the_stripe_at_minus_p_plus_one():
    M = S.match_mask(TOKENS)[0]
    assert M.nonzero().tolist() == [[3, 1], [4, 2], [5, 3]]


def test_match_mask_multiple_targets_and_bos():
    M = S.match_mask(torch.tensor([[9, 1, 2, 1, 2, 1]]))  # BOS 9, then A B A B A
    assert M[0].nonzero().tolist() == [[3, 2], [4, 3], [5, 2], [5, 4]]
    assert not M[0, :, 0].any(), "position 0 (BOS) is never a target"


def test_prefix_matching_by_hand():
    M = S.match_mask(TOKENS)
    assert S.stripe_attention(INDUCTION, M).item() == pytest.approx(1.0)
    assert S.stripe_attention(SAME_TOKEN, M).item() == pytest.approx(0.0)
    assert S.stripe_attention(HALF, M).item() == pytest.approx(0.5)
    assert S.stripe_attention(PREVIOUS, M).item() == pytest.approx(0.0)
    # uniform attention: row q puts 1/(q+1) on its single target; mean over q = 3, 4, 5
    assert S.stripe_attention(UNIFORM, M).item() == pytest.approx((1 / 4 + 1 / 5 + 1 / 6) / 3)


def test_target_only_averaging_and_multi_target_sum():
    tokens = torch.tensor([[1, 2, 1, 2, 1]])
    A = head({2: {1: 1.0}, 3: {2: 0.6, 0: 0.4}, 4: {1: 0.25, 3: 0.5, 0: 0.25}}, n=5)
    # q=2: 1.0 on {1}; q=3: 0.6 on {2}; q=4: 0.25 + 0.5 on {1, 3}; rows 0, 1 have no target and do not count
    assert S.stripe_attention(A, S.match_mask(tokens)).item() == pytest.approx((1.0 + 0.6 + 0.75) / 3)


def test_no_scored_query_gives_nan():
    tokens = torch.tensor([[1, 2, 3, 4]])
    assert math.isnan(S.stripe_attention(UNIFORM[..., :4, :4], S.match_mask(tokens)).item())


def test_copying_by_hand():
    # scored q with q + 1 < T: q = 3, 4. Induction: k* = 1, 2 hold B, C = t[4], t[5]
    assert copying(INDUCTION, TOKENS).item() == pytest.approx(1.0)
    assert copying(SAME_TOKEN, TOKENS).item() == pytest.approx(0.0)
    assert copying(PREVIOUS, TOKENS).item() == pytest.approx(0.0)
    mixed = head({3: {1: 1.0}, 4: {4: 1.0}, 5: {3: 1.0}})
    assert copying(mixed, TOKENS).item() == pytest.approx(0.5)


def test_companions_by_hand():
    assert previous_token(PREVIOUS).item() == pytest.approx(1.0)
    assert previous_token(INDUCTION).item() == pytest.approx(0.0)
    assert previous_token(PREVIOUS, first_query=2).item() == pytest.approx(1.0)
    assert diagonal(INDUCTION).item() == pytest.approx(3 / 6)
    assert duplicate_token(SAME_TOKEN, TOKENS).item() == pytest.approx(1.0)
    assert duplicate_token(INDUCTION, TOKENS).item() == pytest.approx(0.0)


def test_positional_head_high_prefix_no_contrast_not_detected():
    """A head attending to q - P + 1 whatever the tokens: same pattern on the control batch."""
    control = torch.tensor([[1, 2, 3, 7, 8, 9]])  # second block fresh: no prefix match
    M = S.match_mask(TOKENS)
    prefix = S.stripe_attention(INDUCTION, M)  # positional head == INDUCTION pattern on the probe...
    on_control = S.stripe_attention(INDUCTION, M)  # ...and the same pattern on the control
    assert S.match_mask(control).sum() == 0
    out = combine(prefix, on_control, copying(INDUCTION, TOKENS))
    assert out["prefix_matching"].item() == pytest.approx(1.0)
    assert out["contrast"].item() == pytest.approx(0.0) and out["overall_score"].item() < 0.4
    genuine = combine(prefix, S.stripe_attention(UNIFORM, M), copying(INDUCTION, TOKENS))
    assert genuine["contrast"].item() == pytest.approx(1 - (1 / 4 + 1 / 5 + 1 / 6) / 3)
    assert genuine["overall_score"].item() > 0.4


def test_vectorised_over_layers_and_heads_and_pure():
    A = torch.cat([INDUCTION, PREVIOUS, HALF], dim=1).view(1, 1, 3, 6, 6).expand(2, 2, 3, 6, 6).contiguous()
    tokens = TOKENS.expand(2, 6)
    before = A.clone()
    got = S.stripe_attention(A, S.match_mask(tokens))
    assert got.shape == (2, 2, 3)
    torch.testing.assert_close(got[1, 1], torch.tensor([1.0, 0.0, 0.5]))
    assert copying(A, tokens).shape == (2, 2, 3)
    assert previous_token(A).shape == diagonal(A).shape == (2, 2, 3)
    assert torch.equal(A, before)


def test_all_mass_rescales_renormalised_rows_and_keeps_shares():
    A = torch.tensor([[[[1.0, 0.0], [0.25, 0.75]]]])  # rows sum to 1: renormalised over the tokens (granite)
    sink = torch.tensor([[[0.5, 0.2]]])
    got = S.all_mass(A, sink)
    torch.testing.assert_close(got, torch.tensor([[[[0.5, 0.0], [0.2, 0.6]]]]))
    torch.testing.assert_close(S.all_mass(got, sink), got)  # already shares of the whole softmax (gpt-oss)
    assert A[0, 0, 1, 1] == 0.75, "the input is not modified"


def test_pattern_metrics_by_hand():
    """One head's pattern on [5, 6, 5, 6], every value worked out by hand (metrics.md's definitions)."""
    from induction_nb.metrics import pattern_metrics

    A = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.6, 0.2, 0], [0.1, 0.1, 0.7, 0.1]])
    before = A.clone()
    m = pattern_metrics(A, torch.tensor([5, 6, 5, 6]))
    expected = {
        "prefix_matching": (0.6 + 0.7) / 2,
        "copying": 1.0,
        "previous_token": (0.5 + 0.6 + 0.7) / 3,
        "duplicate_token": (0.2 + 0.1) / 2,
        "diagonal": (1 + 0.5 + 0.2 + 0.1) / 4,
    }
    # the built-in metrics defined in metrics.md; a metric added later brings its own by-hand test
    assert {k: m[k] for k in expected} == pytest.approx(expected, abs=1e-6) and torch.equal(A, before)
    assert math.isnan(pattern_metrics(A, torch.tensor([1, 2, 3, 4]))["prefix_matching"]), "no repeat: undefined"
