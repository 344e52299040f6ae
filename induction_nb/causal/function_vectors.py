"""Function-vector heads (Todd et al., ICLR 2024, "Function Vectors in Large Language Models"; Yin &
Steinhardt, ICML 2025, arXiv 2502.14010): heads whose output at the final token carries the *task* of a
few-shot prompt.

A head's FV score is the average indirect effect of patching its mean clean output at the final token into
prompts whose labels are shuffled (the mean over the task's *other* clean prompts, so that a prompt's own
answer never enters the vector patched into it): ``P(answer | shuffled, head patched) - P(answer |
shuffled)``, averaged over prompts and tasks (units: probability, -1..1). Signed: heads that raise the
answer are FV heads in Todd et al.'s sense; heads that lower it are the other kind, which follow-up work
separates by sign; ``top(by="absolute")`` ranks by size. ``estimator="exact"`` patches every head (many
heads per forward, each a copy of the prompts); ``"attribution"`` estimates all heads from one forward and
one backward per task (``engine.few_shot.attributed_patch_effects``) and measures the ``verify_top``
largest estimates (by size) exactly, replacing them and reporting the agreement. Cost in
forward-equivalents: one forward over a task's prompts is 1, a backward counts as 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import Ablator
from ..engine.few_shot import Copy, answer_scores, attributed_patch_effects, check_right_padding, final_outputs
from ..metrics.stats import bootstrap_mean
from .effects import spearman
from .few_shot import check_tasks, task_prompts

__all__ = ["FunctionVectorScores", "fv_scores", "FV_ESTIMATORS"]

FVEstimator = Literal["exact", "attribution"]
FV_ESTIMATORS = ("exact", "attribution")


@dataclass(frozen=True)
class FunctionVectorScores:
    """Every head's function-vector score, with its interval, per task and the estimator's agreement.

    Returned by ``fv_scores``. ``scores`` ``[layer, head]`` (rows: ``layers``, the attention layers in run
    order): the signed FV score (probability change, -1..1, averaged over tasks) with its 95% bootstrap
    interval over prompts (``low``, ``high``): exact for the ``verified`` heads (every head with ``"exact"``),
    the attribution estimate elsewhere; ``per_task`` ``[task, layer, head]`` for ``tasks`` (names); ``exact``
    ``[layer, head]``: the exactly measured heads (NaN elsewhere); ``estimate`` ``[layer, head]``: the
    attribution estimate before verification (``None`` for ``"exact"``); ``agreement``: on the verified
    heads, Spearman's rho and the largest gap between estimate and exact; ``n_forward``: forward-equivalents.
    ``str()`` marks exact rows with ``*``. ``top(n, by="signed")`` lists the ``n`` best heads as
    ``(layer, head, score)`` (``by="absolute"``: the largest ``|score|``).

    Attributes:
        scores: ``[layer, head]`` float: the signed FV score, ``P(answer | shuffled, head patched) -
            P(answer | shuffled)`` averaged over prompts and tasks (probability, -1..1); positive: the head's
            mean output raises the answer (an FV head in Todd et al.'s sense).
        low: ``[layer, head]``: the lower end of each score's 95% bootstrap interval over prompts.
        high: ``[layer, head]``: the upper end of that interval.
        per_task: ``[task, layer, head]``: the score on each of ``tasks`` alone.
        tasks: the task names, in the order of ``per_task``'s rows.
        exact: ``[layer, head]``: the exactly measured scores (every head with ``"exact"``, the ``verified``
            heads with ``"attribution"``), NaN elsewhere.
        estimate: ``[layer, head]``: the attribution estimate of every head before verification; ``None``
            for ``"exact"``.
        estimator: ``"exact"`` or ``"attribution"``.
        verified: the heads measured exactly after the attribution estimate, ``(layer, head)`` pairs, the
            largest estimates (by size) first; ``()`` for ``"exact"``.
        agreement: on the verified heads, ``{"n": heads, "spearman": rho, "max_gap": largest |estimate -
            exact|}``; ``{}`` for ``"exact"`` or without verified heads.
        n_forward: the cost in forward-equivalents (one forward over a task's prompts is 1, a backward 1).
        shots: solved examples per prompt.
        n_prompts: prompts per task.
        seed: the seed of the prompts and of the bootstrap.
        layers: the model's layer index of each row (run order); ``top`` names heads by it.

    Examples:
        >>> from induction_nb import HandBuiltInduction, fv_scores
        >>> model = HandBuiltInduction()  # 2 layers x 4 heads; only L0H0 and L1H0 write anything
        >>> result = fv_scores(model, "repetition", shots=4, n_prompts=8, estimator="exact", n_boot=100)
        >>> tuple(result.scores.shape), tuple(result.per_task.shape), result.tasks
        ((2, 4), (1, 2, 4), ('repetition',))
        >>> [(layer, head) for layer, head, _ in result.top(1, by="absolute")]
        [(1, 0)]
        >>> result.estimate is None, result.verified, result.agreement  # every head measured exactly
        (True, (), {})
    """

    scores: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    per_task: torch.Tensor
    tasks: tuple[str, ...]
    exact: torch.Tensor
    estimate: torch.Tensor | None
    estimator: str
    verified: tuple[tuple[int, int], ...]
    agreement: dict
    n_forward: int
    shots: int
    n_prompts: int
    seed: int
    layers: tuple[int, ...] = ()  # the model's layer index of each row (run order)

    def top(self, n: int = 10, by: Literal["signed", "absolute"] = "signed") -> list[tuple[int, int, float]]:
        """The ``n`` heads with the highest signed score (FV heads that raise the answer) or the largest
        ``|score|``: ``[(layer, head, score)]``, ties in ``(layer, head)`` order; ``InputError`` where ``n`` is
        not an integer >= 0 or ``by`` is neither name."""
        check_int("n", n, 0)
        check_choice("by", by, ("signed", "absolute"))
        key = self.scores if by == "signed" else self.scores.abs()
        flat = torch.nan_to_num(key, nan=-float("inf")).flatten()
        order = flat.argsort(descending=True, stable=True)[:n].tolist()
        h = self.scores.shape[1]
        layers = self.layers or tuple(range(self.scores.shape[0]))
        return [(layers[i // h], i % h, float(self.scores.flatten()[i])) for i in order]

    def __str__(self) -> str:
        lines = [
            f"Function-vector heads ({self.estimator}, {len(self.tasks)} tasks x {self.n_prompts} prompts, "
            f"{self.shots} shots; {self.n_forward} forward-equivalents)"
        ]
        if self.agreement:
            a = self.agreement
            lines.append(
                f"  attribution vs exact on {a['n']} heads: Spearman {a['spearman']:.2f}, max gap {a['max_gap']:.4f}"
            )
        rows = {l: i for i, l in enumerate(self.layers or range(self.scores.shape[0]))}
        for l, h, s in self.top(10):
            lo, hi = float(self.low[rows[l], h]), float(self.high[rows[l], h])
            mark = "*" if self.estimator == "exact" or (l, h) in self.verified else " "
            lines.append(f"  L{l}H{h:<3}{mark} {s:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        return "\n".join(lines)


def fv_scores(
    model: Any,
    tasks: str | Sequence[str] | None = None,
    *,
    shots: int = 10,
    n_prompts: int = 16,
    estimator: FVEstimator = "attribution",
    verify_top: int = 10,
    heads_per_forward: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    progress: bool | None = None,
    remote: Any = False,
) -> FunctionVectorScores:
    """Every head's function-vector score: how much its mean output at the final token carries the task.

    Every head's function-vector score on ``tasks`` (default: every shipped task the model can run;
    ``few_shot_accuracy`` takes the same names). Todd et al. (ICLR 2024, "Function Vectors in Large Language
    Models", arXiv 2310.15213); Yin & Steinhardt (ICML 2025, arXiv 2502.14010). A head's FV score is the
    average indirect effect of patching its mean clean output at the final token into prompts whose labels
    are shuffled (the mean over the task's *other* clean prompts, so that a prompt's own answer never enters
    the vector patched into it): ``P(answer | shuffled, head patched) - P(answer | shuffled)``, averaged over
    prompts and tasks (units: probability, -1..1). Signed: heads that raise the answer are FV heads in Todd
    et al.'s sense; heads that lower it are the other kind; ``top(by="absolute")`` ranks by size.

    ``estimator="exact"`` patches every head (many heads per forward, each a copy of the prompts);
    ``"attribution"`` estimates all heads from one forward and one backward per task and measures the
    ``verify_top`` largest estimates (by size) exactly, replacing them and reporting the agreement. Cost in
    forward-equivalents (``n_forward``): one forward over a task's prompts is 1, a backward counts as 1.

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); a causal language model in eval mode.
        tasks: one task or a list: names in ``probes.few_shot.TASKS`` or ``FewShotTask`` objects; ``None``
            (default) for every shipped task the model can run (the natural ones only with a tokenizer).
        shots: solved examples per prompt (default 10; at least 2, for the label shuffle).
        n_prompts: prompts per task (default 16; at least 2, for the leave-one-out mean).
        estimator: ``"attribution"`` (default: one forward and one backward per task, then ``verify_top``
            heads exactly) or ``"exact"`` (every head patched).
        verify_top: with ``"attribution"``, the heads with the largest ``|estimate|`` measured exactly
            (default 10; beyond the model's heads means every head; 0 for none); unused by ``"exact"``.
        heads_per_forward: patched copies per forward in the exact measurement (default
            ``max(1, 256 // n_prompts)``); lower it where memory is short.
        n_boot: bootstrap resamples of the 95% intervals over prompts (a positive integer; default 1000).
        seed: seed of the prompts and of the bootstrap (default 0).
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        progress: a progress bar over the exact forwards (``None``: only where there are more than 8).
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        FunctionVectorScores: ``scores`` ``[layer, head]`` (signed probability change, -1..1) with 95%
        intervals (``low``, ``high``), ``per_task`` ``[task, layer, head]``, the exact and estimated grids,
        the ``verified`` heads and their ``agreement``, and the cost ``n_forward``.

    Raises:
        InputError: for an unknown estimator or task, a negative ``verify_top``, ``heads_per_forward < 1``,
            ``n_boot < 1``, ``n_prompts < 2`` (the leave-one-out mean), ``shots < 2`` (the label shuffle), tasks the
            model cannot run (``few_shot_accuracy``'s refusals: a natural task without a tokenizer, a table with
            too few rows), a model whose final token sees the right padding (bidirectional attention), or a model
            in training mode.
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, fv_scores
        >>> model = HandBuiltInduction()  # 2 layers x 4 heads; only L0H0 and L1H0 write anything
        >>> result = fv_scores(model, "repetition", shots=4, n_prompts=8, verify_top=2, n_boot=100)
        >>> result.estimator, len(result.verified), result.agreement["n"]
        ('attribution', 2, 2)
        >>> (1, 0) in result.verified  # the induction head has the largest estimate
        True
        >>> result.n_forward  # 1 clean forward, 1 forward + 1 backward, 3 exact copies
        6

        On SmolLM2 and its natural tasks (minutes on a CPU):

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> result = fv_scores(load_model(), ["country_capital", "antonym"])  # doctest: +SKIP
        >>> result.top(5)  # doctest: +SKIP
        [(..., ..., ...), ...]
    """
    check_choice("estimator", estimator, FV_ESTIMATORS)
    ab = Ablator(model, projections, remote)
    verify_top = min(check_int("verify_top", verify_top, 0), len(ab.heads))  # a small model: every head
    check_int("n_prompts", n_prompts, 2)  # a leave-one-out mean needs another prompt
    check_int("n_boot", n_boot, 1)  # checked before the forwards, not by the bootstrap after them
    default = max(1, 256 // n_prompts)
    per_forward = check_int("heads_per_forward", default if heads_per_forward is None else heads_per_forward, 1)
    names = check_tasks(ab, tasks)
    L, H = len(ab.layers), ab.n_heads  # rows: the attention layers in run order (``layers``)
    index = {l: i for i, l in enumerate(ab.layers)}
    effects, estimates, n_forward, proven = [], [], 0, False
    verify: list = []
    for task in names:
        clean = task_prompts(ab, task, shots, n_prompts, seed)
        shuffled = task_prompts(ab, task, shots, n_prompts, seed, shuffled=True)
        for p in (clean, shuffled):  # the model's causality, proven once on the first padded prompts
            proven = proven or check_right_padding(ab, p.tokens, p.last)
        # leave-one-out means [prompt, width]: a prompt's own answer never enters the vector patched into it
        outputs = final_outputs(ab, clean.tokens, clean.last)
        vectors = {l: (z.sum(0, keepdim=True) - z) / (len(z) - 1) for l, z in outputs.items()}
        n_forward += 1
        exact = torch.full((clean.tokens.shape[0], L, H), float("nan"))
        if estimator == "attribution":
            est = attributed_patch_effects(ab, shuffled.tokens, shuffled.last, shuffled.answer, vectors)
            estimates.append(est)
            n_forward += 2
        effects.append((shuffled, vectors, exact))
    est = torch.stack(estimates) if estimates else None  # [task, prompt, layer, head]
    if est is not None:
        mean_est = est.mean((0, 1))  # [layer, head]
        verify = sorted(ab.heads, key=lambda lh: -abs(float(mean_est[index[lh[0]], lh[1]])))[:verify_top]
    heads = ab.heads if estimator == "exact" else verify
    for shuffled, vectors, exact in effects:
        n_forward += _measure(ab, shuffled, vectors, heads, exact, index, per_forward, progress)
    per_prompt = torch.stack([e for _, _, e in effects])  # [task, prompt, layer, head]
    if est is not None:
        per_prompt = torch.where(torch.isnan(per_prompt), est, per_prompt)
    result = _result(per_prompt, names, estimator, verify, index, n_forward, shots, n_prompts, seed, n_boot, est)
    return replace(result, layers=tuple(ab.layers))


def _measure(ab, prompts, vectors, heads, out, index, per_forward, progress) -> int:
    """Each of ``heads`` patched alone, ``per_forward`` per forward, the unpatched shuffled run in the first;
    writes the per-prompt effect into ``out [prompt, layer, head]``; returns the forward-equivalents."""
    groups = [heads[i : i + per_forward] for i in range(0, len(heads), per_forward)]
    if progress or (progress is None and len(groups) > 8):
        from tqdm.auto import tqdm

        groups = tqdm(groups, desc="patching heads", unit="forward")
    base, cost = None, 0
    for group in groups:
        copies = ([Copy()] if base is None else []) + [Copy(patch=(h,)) for h in group]
        prob, _ = answer_scores(ab, prompts.tokens, prompts.last, prompts.answer, copies, vectors=vectors)
        cost += len(copies)
        if base is None:
            base, prob = prob[0], prob[1:]
        for i, (l, h) in enumerate(group):
            out[:, index[l], h] = prob[i] - base
    return cost


def _result(per_prompt, names, estimator, verify, index, n_forward, shots, n_prompts, seed, n_boot, est):
    t, n, L, H = per_prompt.shape
    scores = per_prompt.mean((0, 1))
    # prompts resampled within tasks alike (the tasks' prompts are drawn independently, equal in number)
    low, high = bootstrap_mean(per_prompt.transpose(0, 1).mean(1), n_boot, seed)
    exact = torch.full((L, H), float("nan"))
    estimate, agreement = None, {}
    if estimator == "exact":
        exact = scores.clone()
    else:
        estimate = est.mean((0, 1))
        for l, h in verify:
            exact[index[l], h] = scores[index[l], h]
        if verify:
            e = torch.tensor([float(estimate[index[l], h]) for l, h in verify])
            x = torch.tensor([float(exact[index[l], h]) for l, h in verify])
            agreement = {"n": len(verify), "spearman": spearman(e, x), "max_gap": float((e - x).abs().max())}
    return FunctionVectorScores(
        scores, low, high, per_prompt.mean(1), tuple(str(getattr(x, "name", x)) for x in names), exact, estimate,
        estimator, tuple(verify), agreement, n_forward, shots, n_prompts, seed,
    )  # fmt: skip
