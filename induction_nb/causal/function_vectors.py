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
    """``scores`` ``[layer, head]`` (rows: ``layers``, the attention layers in run order): the signed FV score
    (probability change, -1..1, averaged over tasks) with its 95% bootstrap interval over prompts (``low``,
    ``high``): exact for the ``verified`` heads (every head with ``"exact"``), the attribution estimate
    elsewhere; ``per_task`` ``[task, layer, head]`` for ``tasks`` (names); ``exact`` ``[layer, head]``: the
    exactly measured heads (NaN elsewhere); ``estimate`` ``[layer, head]``: the attribution estimate before
    verification (``None`` for ``"exact"``); ``agreement``: on the verified heads, Spearman's rho and the
    largest gap between estimate and exact; ``n_forward``: forward-equivalents. ``str()`` marks exact rows
    with ``*``."""

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
        ``|score|``: ``[(layer, head, score)]``."""
        check_choice("by", by, ("signed", "absolute"))
        key = self.scores if by == "signed" else self.scores.abs()
        flat = torch.nan_to_num(key, nan=-float("inf")).flatten()
        order = flat.argsort(descending=True)[:n].tolist()
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
    """Every head's function-vector score (see the module docstring) on ``tasks`` (default: every shipped
    task the model can run; ``few_shot_accuracy`` takes the same names). ``heads_per_forward``: patched
    copies per forward in the exact form (default ``max(1, 256 // n_prompts)``); ``verify_top`` beyond the
    model's heads means every head (unused by ``"exact"``). Raises ``InputError`` for an unknown estimator
    or task, a negative ``verify_top``, ``n_prompts < 2`` (the leave-one-out mean), ``shots < 2`` (the label
    shuffle), tasks the model cannot run (``few_shot_accuracy``'s refusals), or a model whose final token
    sees the right padding (bidirectional attention)."""
    check_choice("estimator", estimator, FV_ESTIMATORS)
    ab = Ablator(model, projections, remote)
    verify_top = min(check_int("verify_top", verify_top, 0), len(ab.heads))  # a small model: every head
    check_int("n_prompts", n_prompts, 2)  # a leave-one-out mean needs another prompt
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
