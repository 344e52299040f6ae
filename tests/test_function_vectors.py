"""Few-shot accuracy (causal.few_shot), function-vector scores (causal.function_vectors) and the protocol
(causal.icl_heads): the hand-built model's induction head carries the induction-solvable tasks, the exact FV
patch equals a plain forward hook, attribution agrees with exact, every protocol number equals the tool
called alone, and the refusals."""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_hf

import induction_nb as nb
from induction_nb import InputError
from induction_nb.analysis.toy import HandBuiltInduction
from induction_nb.causal.effects import spearman
from induction_nb.probes.few_shot import few_shot_prompts

SMALL = dict(shots=4, n_prompts=8, n_boot=100)


@pytest.fixture(scope="module")
def handbuilt():
    return HandBuiltInduction()


@pytest.mark.parametrize("task", ["repetition", "category_pairs"])
def test_the_handbuilt_induction_head_carries_induction_solvable_tasks(handbuilt, task):
    clean = nb.few_shot_accuracy(handbuilt, task, **SMALL)
    assert clean.mean_accuracy > 0.9
    knocked = nb.few_shot_accuracy(handbuilt, task, knockout=[(1, 0)], **SMALL)
    ablated = nb.few_shot_accuracy(handbuilt, task, ablate=[(1, 0)], method="zero", **SMALL)
    positional = nb.few_shot_accuracy(handbuilt, task, knockout=[(1, 1)], **SMALL)
    assert knocked.mean_ablated < 0.2 and ablated.mean_ablated < 0.2
    assert knocked.mean_drop > 0.7 and knocked.mean_drop_interval[0] > 0.5
    assert positional.mean_ablated == clean.mean_accuracy, "edges of a head that writes nothing change nothing"
    assert knocked.mean_accuracy == clean.mean_accuracy, "the clean copy runs beside the intervened one"
    assert "knocked out" in str(knocked)


def test_abstract_tasks_need_no_tokenizer_and_natural_ones_do(handbuilt):
    with pytest.raises(InputError, match="tokenizer"):
        nb.few_shot_accuracy(handbuilt, "country_capital", **SMALL)
    with pytest.raises(InputError, match="unknown task"):
        nb.few_shot_accuracy(handbuilt, "contry_capital", **SMALL)
    with pytest.raises(InputError, match="tasks is empty"):
        nb.few_shot_accuracy(handbuilt, [], **SMALL)
    with pytest.raises(InputError, match="head"):
        nb.few_shot_accuracy(handbuilt, "repetition", ablate=[(2, 0)], **SMALL)


def _hook_fv(model, task, layer, head, shots=4, n=8, seed=0):
    """The reference: a plain forward pre-hook on o_proj, outside the toolkit's tracing. The head's mean
    output at the other clean prompts' final token, set at each shuffled prompt's final token."""
    proj = model.model.layers[layer].self_attn.o_proj
    d = model.config.head_dim
    cols = slice(head * d, (head + 1) * d)
    gen = dict(
        shots=shots, n_prompts=n, seed=seed, vocab_size=model.config.vocab_size, bos_id=model.config.bos_token_id
    )
    clean, shuffled = few_shot_prompts(task, **gen), few_shot_prompts(task, shuffled=True, **gen)
    seen = []
    hook = proj.register_forward_pre_hook(lambda m, a: seen.append(a[0][torch.arange(n), clean.last, cols].clone()))
    with torch.no_grad():
        model(clean.tokens)
    hook.remove()
    mean = (seen[0].sum(0, keepdim=True) - seen[0]) / (n - 1)  # leave-one-out: prompt i's from the others

    def prob(patch: bool) -> torch.Tensor:
        def edit(m, a):
            z = a[0].clone()
            z[torch.arange(n), shuffled.last, cols] = mean
            return (z,)

        hook = proj.register_forward_pre_hook(edit) if patch else None
        with torch.no_grad():
            logits = model(shuffled.tokens).logits
        if hook:
            hook.remove()
        return logits[torch.arange(n), shuffled.last].float().softmax(-1)[torch.arange(n), shuffled.answer]

    return float((prob(True) - prob(False)).mean())


def test_exact_fv_scores_equal_a_plain_hook_and_attribution_agrees():
    model = make_hf("llama_gqa", "eager")
    tasks = ["repetition", "category_pairs"]
    exact = nb.fv_scores(model, tasks, estimator="exact", **SMALL)
    for layer, head in [(0, 3), (1, 2), (1, 5)]:
        want = sum(_hook_fv(model, t, layer, head) for t in tasks) / len(tasks)
        assert float(exact.scores[layer, head]) == pytest.approx(want, abs=1e-7)
    attr = nb.fv_scores(model, tasks, estimator="attribution", verify_top=3, **SMALL)
    assert spearman(attr.estimate.flatten(), exact.scores.flatten()) > 0.8
    for layer, head in attr.verified:
        assert float(attr.scores[layer, head]) == pytest.approx(float(exact.scores[layer, head]), abs=1e-7)
    assert attr.n_forward < exact.n_forward and attr.agreement["n"] == 3
    assert exact.low.shape == exact.scores.shape and bool((exact.low <= exact.scores + 1e-9).all())
    assert [h[:2] for h in exact.top(3, by="absolute")] == [
        divmod(int(i), exact.scores.shape[1]) for i in exact.scores.abs().flatten().argsort(descending=True)[:3]
    ]
    again = nb.fv_scores(model, tasks, estimator="exact", **SMALL)
    assert torch.equal(again.scores, exact.scores), "identical calls, identical scores"


def test_icl_heads_numbers_equal_each_tool_called_alone(handbuilt):
    got = nb.icl_heads(
        handbuilt, ["repetition"], fractions=(0.125,), n_random=1, shots=4, n_prompts=8, verify_top=2, spare=0.125
    )
    kinds = [c.kind for c in got.conditions]
    assert kinds == ["clean", "induction", "fv", "knockout", "random"]
    fv_top = {(l, h) for l, h, _ in got.fv_result.top(1)}
    (ind,) = got.condition("induction", 0.125)
    assert not set(ind.heads) & fv_top, "exclusion: the other kind's top heads are spared"
    for c in got.conditions[1:]:
        knock = c.kind == "knockout"
        alone = nb.few_shot_accuracy(
            handbuilt, ["repetition"], shots=4, n_prompts=8, ablate=() if knock else c.heads,
            knockout=c.heads if knock else (),
        )  # fmt: skip
        assert c.accuracy == alone.mean_ablated
        method = "knockout" if knock else "mean"
        assert c.icl_repeated == nb.icl_score(handbuilt, ablate=c.heads, method=method)["repeated"]
        assert c.repeated_loss == pytest.approx(nb.ablate_heads(handbuilt, c.heads, method).ablated_loss, abs=1e-5)
    clean = got.condition("clean")[0]
    assert clean.repeated_loss == pytest.approx(nb.ablate_heads(handbuilt, [(0, 1)]).baseline_loss, abs=1e-5)
    (ko,) = got.condition("knockout", 0.125)
    assert ko.heads == ind.heads, "the knockout takes the induction condition's heads: edges against heads"
    assert "Which heads matter" in str(got)
    fig = nb.plot_icl_heads(got)
    assert len(fig.axes) == 3
    import matplotlib.pyplot as plt

    _, grid = plt.subplots(1, 3, squeeze=False)  # a (1, 3) array: three Axes, not one row
    assert nb.plot_icl_heads(got, grid) is grid[0, 0].figure and grid[0, 2].collections
    _, grid = plt.subplots(2, 2)
    nb.plot_icl_heads(got, grid)
    assert grid[1, 0].collections and not grid[1, 1].collections, "the first three in row order"
    with pytest.raises(InputError, match="three panels: pass three Axes .*got 2"):
        nb.plot_icl_heads(got, grid[0])
    with pytest.raises(InputError, match="label_top must be an integer >= 0"):  # a negative slice dropped heads
        nb.plot_icl_heads(got, label_top=-1)
    plt.close("all")
    with pytest.raises(InputError, match="fractions"):
        nb.icl_heads(handbuilt, ["repetition"], fractions=(0.0,))
    with pytest.raises(InputError, match="ablation method"):
        nb.icl_heads(handbuilt, ["repetition"], method="corrupt")
    with pytest.raises(InputError, match="icl_heads"):
        nb.plot_icl_heads(object())


def test_a_model_that_sees_the_padding_is_refused():
    import transformers

    from induction_nb.engine.ablator import Ablator
    from induction_nb.engine.few_shot import check_right_padding

    config = transformers.BertConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.BertForMaskedLM(config).eval()  # bidirectional: every position sees the padding
    tokens = torch.tensor([[3, 4, 5, 6, 0, 0], [3, 4, 5, 6, 7, 8]])
    with pytest.raises(InputError, match="sees the padding"):
        check_right_padding(Ablator(model), tokens, torch.tensor([3, 5]))
    check_right_padding(Ablator(make_hf("llama_gqa")), tokens, torch.tensor([3, 5]))  # causal: nothing raised


def test_models_whose_attention_layers_are_not_0_to_n(handbuilt):
    """Jamba: attention in layers 1 and 3 only. The ranking reads the detector's rows of those layers."""
    from tiny_models import make_jamba

    model = make_jamba()
    det = nb.detect_induction_heads(model, batch_size=2)
    got = nb.icl_heads(model, "category_pairs", fractions=(0.25,), n_random=0, shots=2, n_prompts=2, induction=det)
    matrix = torch.tensor(det.score_matrix("prefix_matching"))
    torch.testing.assert_close(got.induction, matrix[[1, 3], : got.induction.shape[1]], equal_nan=True)
    assert got.fv_result.layers == (1, 3) and {l for l, _, _ in got.fv_result.top(4)} <= {1, 3}


def test_defaults_fit_small_models_and_misplaced_arguments_are_refused(handbuilt):
    small = nb.fv_scores(handbuilt, "repetition", shots=2, n_prompts=2, n_boot=10)  # verify_top=10 > 8 heads
    assert len(small.verified) == 8 and not torch.isnan(small.exact).any()
    with pytest.raises(InputError, match="knockout="):
        nb.few_shot_accuracy(handbuilt, "repetition", ablate=[(1, 0)], edges="previous_token", **SMALL)
    with pytest.raises(InputError, match="n_prompts"):
        nb.fv_scores(handbuilt, "repetition", n_prompts=1)
    with pytest.raises(InputError, match="n_boot must be a positive integer, got 0"):  # not quantile's error
        nb.fv_scores(handbuilt, "repetition", n_boot=0)
    with pytest.raises(InputError, match="empty x or y"):
        few_shot_prompts(nb.FewShotTask("mine", "natural", "x to y", (("a", ""), ("b", "c"))), vocab_size=40)


def test_head_rankings_break_ties_in_layer_head_order():
    """Tied scores (here a 40 x 32 grid, large enough for an unstable sort to scramble ties) pick heads in
    (layer, head) order: the chosen heads never depend on the sort."""
    from induction_nb.causal.function_vectors import FunctionVectorScores
    from induction_nb.causal.icl_heads import _top

    scores = torch.zeros(40, 32)
    scores[5, 3] = scores[30, 1] = 1.0
    layers = list(range(40))
    want = [(5, 3), (30, 1), (0, 0), (0, 1), (0, 2), (0, 4)]
    assert list(_top(scores, layers, 6, spare={(0, 3)})) == want
    assert _top(scores, layers, 6, spare={(0, 3)}) == _top(scores.clone(), layers, 6, spare={(0, 3)})
    fv = FunctionVectorScores(
        scores, scores, scores, scores[None], ("repetition",), scores, None, "exact", (), {}, 1, 2, 2, 0
    )
    assert [(l, h) for l, h, _ in fv.top(4)] == [(5, 3), (30, 1), (0, 0), (0, 1)]
    with pytest.raises(InputError, match="n must be an integer >= 0"):
        fv.top(-1)
