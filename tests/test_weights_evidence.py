"""analysis.weights_evidence: OV copying, QK matching and head composition from the weights alone.

Ground truth: the hand-built transformer (analysis.toy), whose L0H0 writes the previous token and whose L1H0
reads it with its keys and copies the current token. References: the same scores computed the long way
(the ``d_model x d_model`` products, the ``n x n`` token circuit's eigenvalues) on a tiny random GPT-2."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from tiny_models import make_hf

from induction_nb import (
    CircuitAgreement,
    InputError,
    compare_with_circuit,
    find_circuit,
    plot_k_composition,
    text_weight_evidence,
    weight_evidence,
)
from induction_nb.analysis.toy import HandBuiltInduction, V
from induction_nb.causal.circuit import CircuitResult
from induction_nb.draw.weights_view import induction_ranking
from induction_nb.engine.head_weights import read_head_weights

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def toy():
    return HandBuiltInduction(period=16)


@pytest.fixture(scope="module")
def evidence(toy):
    return weight_evidence(toy)


@pytest.fixture(scope="module")
def gpt2():
    return make_hf("gpt2")


def test_the_hand_built_induction_head_copies_matches_and_reads_the_previous_token_head(evidence):
    assert evidence.ov_copying[(1, 0)] > 0.99  # W_E W_OV W_U is the identity on the tokens
    assert evidence.qk_matching[(1, 0)] > 0.99 and evidence.qk_source[(1, 0)] == (0, 0)
    (top, score, ratio), *_ = evidence.composing((1, 0))
    assert top == (0, 0)
    # two rank-40 identity maps composed: 1/sqrt(40), whatever the sharpness BETA
    assert score == pytest.approx(1 / math.sqrt(V), abs=1e-9)
    assert ratio > 1.5 and score > evidence.baseline + 20 * evidence.baseline_std
    assert ratio == pytest.approx(score / evidence.baseline)


def test_the_other_heads_of_the_hand_built_model_say_what_they_are(evidence):
    i = {h: n for n, h in enumerate(evidence.heads)}
    assert evidence.k_composition[i[(1, 1)], i[(0, 0)]] == 0  # positional head: its keys read positions only
    assert evidence.q_composition[i[(1, 0)], i[(0, 0)]] == 0  # L1H0's queries read the current token
    assert evidence.v_composition[i[(1, 0)], i[(0, 0)]] == 0  # and so do its values
    assert math.isnan(evidence.ov_copying[(0, 1)])  # heads that write nothing: no score
    assert torch.isnan(evidence.k_composition[:, i[(0, 1)]]).all()
    assert torch.isnan(evidence.k_composition[i[(0, 0)]]).all()  # no earlier layer
    assert evidence.top_copying(3) == [((1, 0), pytest.approx(1.0))]
    assert "top QK matching L1H0 +1.000 via L0H0" in repr(evidence)


def test_composition_equals_the_full_products(gpt2):
    """The factored scores (QR of the d_head-wide factors) against |A B|_F / (|A|_F |B|_F) of the 32 x 32
    matrices themselves, Elhage et al.'s definitions in the row-vector convention."""
    got = weight_evidence(gpt2, n_tokens=50)
    w = read_head_weights(gpt2)
    (l0, l1), n0 = w.layers, w.layers[0].n_heads

    def full(layer, h):
        L = {k: getattr(layer, f"W_{k}")[h].double() for k in "QKVO"}
        return L["V"] @ L["O"], L["Q"] @ L["K"].T  # W_OV, W_QK

    def score(a, b):
        return float(torch.linalg.matrix_norm(a @ b) / (torch.linalg.matrix_norm(a) * torch.linalg.matrix_norm(b)))

    for h in range(l1.n_heads):
        ov_h, qk_h = full(l1, h)
        for p in range(n0):
            ov_p, _ = full(l0, p)
            row, col = n0 + h, p
            assert got.k_composition[row, col] == pytest.approx(score(ov_p, qk_h.T), abs=1e-10)
            assert got.q_composition[row, col] == pytest.approx(score(ov_p, qk_h), abs=1e-10)
            assert got.v_composition[row, col] == pytest.approx(score(ov_p, ov_h), abs=1e-10)
    assert torch.isnan(got.k_composition[:n0]).all() and torch.isnan(got.k_composition[:, n0:]).all()


def test_ov_copying_equals_the_eigenvalues_of_the_token_circuit(gpt2):
    """Re(sum lambda) / sum |lambda| of the n x n circuit W_E[s] W_OV W_U[:, s] itself (its non-zero eigenvalues
    are those of the d_head x d_head product), and of the QK circuit through the top K-composing head."""
    got = weight_evidence(gpt2, n_tokens=40, seed=3, compositions="k")
    w = read_head_weights(gpt2)
    E, U = w.W_E[got.tokens].double(), w.W_U[:, got.tokens].double()

    def positivity(m):
        eig = torch.linalg.eigvals(m)
        return float(eig.sum().real / eig.abs().sum())

    for layer in w.layers:
        for h in range(layer.n_heads):
            V, O, Q, K = (getattr(layer, f"W_{k}")[h].double() for k in "VOQK")
            assert got.ov_copying[(layer.layer, h)] == pytest.approx(positivity(E @ V @ O @ U), abs=1e-8)
            if layer.layer:
                pl, ph = got.qk_source[(layer.layer, h)]
                Vp, Op = (getattr(w.layers[pl], f"W_{k}")[ph].double() for k in "VO")
                circuit = E @ Q @ K.T @ (E @ Vp @ Op).T
                assert got.qk_matching[(layer.layer, h)] == pytest.approx(positivity(circuit), abs=1e-8)
    assert all(-1 <= v <= 1 for v in got.ov_copying.values())


def test_the_scores_repeat_exactly_and_do_not_depend_on_the_thread_count(toy):
    first, second = weight_evidence(toy), weight_evidence(toy)
    for kind in "kqv":
        assert torch.allclose(first.composition(kind), second.composition(kind), rtol=0, atol=0, equal_nan=True)
    assert _same(first.ov_copying, second.ov_copying) and _same(first.qk_matching, second.qk_matching)
    assert first.baseline == second.baseline and torch.equal(first.tokens, second.tokens)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = weight_evidence(toy)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(single.k_composition, first.k_composition, rtol=0, atol=1e-12, equal_nan=True)
    assert all(abs(single.ov_copying[h] - v) < 1e-12 for h, v in first.ov_copying.items() if v == v)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((x == y) or (x != x and y != y) for x, y in ((a[k], b[k]) for k in a))


class _Tokenizer:
    all_special_ids = [0, 1, 2]


def test_the_token_subset_is_seeded_and_leaves_out_special_tokens(gpt2):
    quick = dict(compositions="k", n_baseline=2, tokenizer=_Tokenizer())
    got = weight_evidence(gpt2, n_tokens=20, seed=5, **quick)
    assert len(got.tokens) == 20 and got.tokens.unique().numel() == 20
    assert not torch.equal(got.tokens, weight_evidence(gpt2, n_tokens=20, seed=6, **quick).tokens)
    assert weight_evidence(gpt2, tokens=[10, *range(3, 11)], **quick).tokens.tolist() == list(range(3, 11))
    with pytest.raises(InputError, match="1 distinct ids; the OV and QK scores need at least 8"):
        weight_evidence(gpt2, tokens=[3, 3, 3, 3], **quick)
    assert weight_evidence(gpt2, n_tokens=10**6, **quick).tokens.tolist() == list(range(3, 97))  # all but 0, 1, 2


def test_the_weights_agree_with_the_behavioural_circuit(toy, evidence):
    circuit = find_circuit(toy, [(1, 0)], sequence_length=32)
    agreement = compare_with_circuit(evidence, circuit)
    assert isinstance(agreement, CircuitAgreement)
    assert agreement.rows[0][:4] == ((1, 0), (0, 0), (0, 0), True) and agreement.agreement == 1.0
    flipped = CircuitResult((((0, 0), (1, 0), 0.1), ((0, 1), (1, 0), 0.9)), {(1, 0): 1.0}, 1)
    disagreement = compare_with_circuit(evidence, flipped, k=1)  # L0H1 writes nothing: no weight score
    assert disagreement.rows[0][1:4] == ((0, 0), (0, 1), False) and disagreement.agreement == 0.0
    assert disagreement.top_k_overlap == 0.0


def test_the_views(evidence):
    text = text_weight_evidence(evidence, top=5, width=60)
    (_, score, ratio), *_ = evidence.composing((1, 0))
    assert f"L1H0    QK +1.000 OV +1.000 <- L0H0 {score:.3f} ({ratio:.1f}x)" in text and "(2." in text
    assert max(map(len, text.splitlines())) <= 60 and "left out" in text
    assert text_weight_evidence(evidence, charset="ascii").isascii()
    ax = plot_k_composition(evidence)
    image = ax.get_images()[0].get_array()
    assert image.shape == (4, 4) and float(image[0, 0]) == pytest.approx(1 / math.sqrt(V))  # L1 rows x L0 columns
    plot_k_composition(evidence, kind="v", ratio=True)
    assert induction_ranking(evidence)[0] == ((1, 0), pytest.approx(1.0))  # by QK matching
    assert induction_ranking(evidence, by="both") == [((1, 0), pytest.approx(1.0))]  # heads that also copy
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ev, m: text_weight_evidence(object()), "expected the result of weight_evidence"),
        (lambda ev, m: plot_k_composition(ev, kind="x"), "composition kind must be one of"),
        (lambda ev, m: weight_evidence(m, tokens=[0, 999]), r"tokens must be integer ids in \[0, 40\)"),
        (lambda ev, m: weight_evidence(m, n_tokens=0), "n_tokens must be a positive integer"),
        (lambda ev, m: weight_evidence(m, seed="a"), "seed must be an integer >= 0, got 'a'"),  # was a RuntimeError
        (lambda ev, m: weight_evidence(m, seed=1.5), "seed must be an integer >= 0"),
        (lambda ev, m: ev.top_copying(-1), "n must be an integer >= 0"),
        (lambda ev, m: ev.composing((1, 0), n=-2), "n must be an integer >= 0"),
        (lambda ev, m: ev.composing((5, 0)), "no head L5H0"),
        (lambda ev, m: induction_ranking(ev, by="copying"), "by must be 'matching' or 'both'"),
        (lambda ev, m: weight_evidence(m, compositions=("k", "x")), "compositions must name some of"),
        (lambda ev, m: weight_evidence(m, compositions="k").composition("v"), "V-composition was not computed"),
        (lambda ev, m: compare_with_circuit(ev, CircuitResult((), {}, 0)), "the circuit has no edges"),
        (lambda ev, m: weight_evidence(torch.nn.Sequential(torch.nn.Linear(4, 4))), "no attention module"),
    ],
)
def test_bad_input(evidence, toy, call, match):
    with pytest.raises(InputError, match=match):
        call(evidence, toy)


def test_attached_weight_scores_show_in_the_report_and_json(tmp_path):
    import induction_nb as nb

    model = HandBuiltInduction()
    result = nb.detect_induction_heads(model, batch_size=2, n_bootstrap=10, sequence_length=32)
    evidence = nb.weight_evidence(model, compositions=("k",))
    both = evidence.attach(result)
    top = both.score(1, 0)
    assert top.ov_copying > 0.99 and top.qk_matching > 0.99
    assert top.prefix_matching == result.score(1, 0).prefix_matching
    assert "OVcopy" in str(nb.create_analysis_report(both, detailed=True))
    assert nb.load_result(both.save(tmp_path / "r.json")).score(1, 0).ov_copying == top.ov_copying
