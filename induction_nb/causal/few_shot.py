"""Few-shot in-context learning accuracy on the shipped offline tasks (``probes.few_shot``), with heads
removed or their induction edges knocked out: does the model still do the task from its examples?

Accuracy is how often the model's top prediction at the query's final token is the answer's first token
(Todd et al., ICLR 2024; Yin & Steinhardt, ICML 2025, arXiv 2502.14010), with a seeded bootstrap interval
over prompts. The clean and the intervened prompts run in one forward, so their difference is paired.
Mean ablation uses each head's mean output over the task's prompts (every real token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import Ablator
from ..engine.few_shot import Copy, answer_scores, check_right_padding, prompt_mask
from ..engine.knockout import Edges
from ..errors import InputError
from ..metrics.stats import bootstrap_mean
from ..probes.few_shot import ABSTRACT_TASKS, NATURAL_TASKS, TASKS, FewShotPrompts, FewShotTask, few_shot_prompts

__all__ = ["TaskAccuracy", "FewShotAccuracy", "few_shot_accuracy", "task_prompts", "default_tasks"]

Interval = tuple[float, float]


@dataclass(frozen=True)
class TaskAccuracy:
    """One task: top-1 accuracy (fraction of prompts, 0-1) and the answer's mean probability, clean and with
    the intervention, each with its 95% bootstrap interval over prompts; ``drop`` = clean - intervened,
    paired by prompt (``NaN`` without an intervention)."""

    task: str
    n_prompts: int
    accuracy: float
    interval: Interval
    probability: float
    ablated_accuracy: float
    ablated_interval: Interval
    ablated_probability: float
    drop: float
    drop_interval: Interval


@dataclass(frozen=True)
class FewShotAccuracy:
    """Few-shot accuracy per task and over tasks, clean and with heads removed or their edges knocked out.

    Returned by ``few_shot_accuracy``. ``rows``: one ``TaskAccuracy`` per task; ``mean_*``: the means over
    tasks, with 95% intervals over prompts (resampled within each task). ``ablate`` heads were removed by
    ``method``, ``knockout`` heads lost their ``edges`` (its name; ``"mask_fn"`` for a function).
    ``result[task]`` is that task's ``TaskAccuracy`` (``KeyError`` for a task not measured); ``str(result)``
    is a table (clean, intervened and drop per task, then the mean).

    Accuracies are fractions of prompts (0-1) whose top prediction at the query's final token is the
    answer's first token. Numbers of a copy that did not run are NaN: the intervened ones (``mean_ablated``,
    ``mean_drop`` and their intervals) without ``ablate`` or ``knockout`` heads, the clean ones with
    ``baseline=False``.

    Attributes:
        rows: one ``TaskAccuracy`` per task, in the order the tasks were given (each with ``task``,
            ``n_prompts``, ``accuracy``, ``interval``, ``probability``, ``ablated_accuracy``,
            ``ablated_interval``, ``ablated_probability``, ``drop``, ``drop_interval``).
        shots: solved examples per prompt.
        ablate: the heads removed, ``(layer, head)`` pairs as checked; ``()`` for none.
        knockout: the heads whose ``edges`` were knocked out before the softmax; ``()`` for none.
        method: how the ``ablate`` heads were removed: ``"mean"`` (each head's mean output over the task's
            prompts) or ``"zero"``.
        edges: the knocked-out edges' name: ``"induction"`` (the default), ``"previous_token"``, or
            ``"mask_fn"`` for a function.
        seed: the seed of the prompts and of the bootstrap.
        mean_accuracy: clean top-1 accuracy (0-1), the mean over tasks.
        mean_interval: its 95% bootstrap interval ``(low, high)`` over prompts (resampled within each task).
        mean_ablated: top-1 accuracy (0-1) with the intervention, the mean over tasks (NaN without one).
        mean_ablated_interval: its 95% bootstrap interval ``(low, high)``.
        mean_drop: ``mean_accuracy - mean_ablated``, paired by prompt (positive: the heads helped).
        mean_drop_interval: its 95% bootstrap interval ``(low, high)``.

    Examples:
        >>> from induction_nb import HandBuiltInduction, few_shot_accuracy
        >>> model = HandBuiltInduction()  # L1H0 is an induction head: it solves "a b a b" tasks by copying
        >>> result = few_shot_accuracy(model, "repetition", shots=4, n_prompts=8, ablate=[(1, 0)], n_boot=100)
        >>> result.ablate, result.method
        (((1, 0),), 'mean')
        >>> result.mean_accuracy, result.mean_ablated, result.mean_drop
        (1.0, 0.0, 1.0)
        >>> row = result["repetition"]  # one task's numbers
        >>> row.n_prompts, row.accuracy, row.drop
        (8, 1.0, 1.0)
    """

    rows: tuple[TaskAccuracy, ...]
    shots: int
    ablate: tuple[tuple[int, int], ...]
    knockout: tuple[tuple[int, int], ...]
    method: str
    edges: str
    seed: int
    mean_accuracy: float
    mean_interval: Interval
    mean_ablated: float
    mean_ablated_interval: Interval
    mean_drop: float
    mean_drop_interval: Interval

    def __getitem__(self, task: str) -> TaskAccuracy:
        for row in self.rows:
            if row.task == task:
                return row
        raise KeyError(f"no task {task!r} here; tasks: {[r.task for r in self.rows]}")

    def __str__(self) -> str:
        what = []
        if self.ablate:
            what.append(f"{len(self.ablate)} heads {self.method}-ablated")
        if self.knockout:
            what.append(f"{len(self.knockout)} heads' {self.edges} edges knocked out")
        head = f"Few-shot accuracy ({self.shots} shots){': ' + ', '.join(what) if what else ''}"
        lines = [head, f"{'task':<18}{'clean':>22}{'intervened':>24}{'drop':>24}"]

        def cell(x: float, ci: Interval) -> str:
            return f"{x:6.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

        for r in (*self.rows, None):
            name, acc, ci, abl, aci, drop, dci = (
                (r.task, r.accuracy, r.interval, r.ablated_accuracy, r.ablated_interval, r.drop, r.drop_interval)
                if r is not None
                else ("mean", self.mean_accuracy, self.mean_interval, self.mean_ablated, self.mean_ablated_interval)
                + (self.mean_drop, self.mean_drop_interval)
            )
            lines.append(f"{name:<18}{cell(acc, ci):>22}{cell(abl, aci):>24}{cell(drop, dci):>24}")
        return "\n".join(lines)


def default_tasks(ab: Ablator) -> tuple[str, ...]:
    """Every shipped task the model can run: the natural ones need a tokenizer."""
    return (NATURAL_TASKS if ab.engine.tokenizer is not None else ()) + ABSTRACT_TASKS


def task_prompts(ab: Ablator, task: str | FewShotTask, shots: int, n_prompts: int, seed: int, shuffled: bool = False):
    """``probes.few_shot.few_shot_prompts`` for this model's tokenizer, vocabulary and special tokens."""
    eng = ab.engine
    return few_shot_prompts(
        task,
        shots=shots,
        n_prompts=n_prompts,
        seed=seed,
        tokenizer=eng.tokenizer,
        vocab_size=eng.vocab_size,
        bos_id=eng.bos_token_id(),
        special_ids=eng.special_ids,
        shuffled=shuffled,
    )


def check_tasks(ab: Ablator, tasks: Any) -> list:
    """``tasks`` as a list (``None``: ``default_tasks``); ``InputError`` for unknown names, naming them all."""
    if tasks is None:
        return list(default_tasks(ab))
    tasks = [tasks] if isinstance(tasks, (str, FewShotTask)) else list(tasks)
    if not tasks:
        raise InputError(f"tasks is empty: pass task names (e.g. {list(TASKS)[:3]}) or None for every task")
    for t in tasks:
        if isinstance(t, str):
            check_choice("task", t, TASKS)
    natural = [str(getattr(t, "name", t)) for t in tasks if (TASKS[t] if isinstance(t, str) else t).kind == "natural"]
    if natural and ab.engine.tokenizer is None:  # before any forward, not after the first tasks ran
        raise InputError(
            f"the natural-language tasks {natural} need the model's tokenizer, which this model lacks: pass "
            f"abstract tasks ({list(ABSTRACT_TASKS)}) or load the model with its tokenizer"
        )
    return tasks


def _means(ab: Ablator, p: FewShotPrompts) -> dict:
    return ab.means(p.tokens, prompt_mask(p.tokens, p.last).long(), right_padded=True)


def few_shot_accuracy(
    model: Any,
    tasks: str | Sequence[str] | None = None,
    *,
    shots: int = 10,
    n_prompts: int = 32,
    ablate: Sequence[tuple[int, int]] = (),
    knockout: Sequence[tuple[int, int]] = (),
    method: str = "mean",
    edges: Edges | None = None,
    baseline: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
) -> FewShotAccuracy:
    """Top-1 few-shot accuracy on the shipped tasks, clean and with heads removed or their edges knocked out.

    Top-1 few-shot accuracy on ``tasks`` (names in ``probes.few_shot.TASKS``, ``FewShotTask`` objects, or
    ``None``: every shipped task the model can run), ``n_prompts`` prompts of ``shots`` examples each,
    clean and with ``ablate`` heads removed (``method`` ``"mean"`` or ``"zero"``) and ``knockout`` heads'
    ``edges`` (default ``"induction"``) knocked out before the softmax, both in one forward per task
    (``baseline=False`` with an intervention: the clean copy is not run and its numbers are NaN).
    Intervals are 95% bootstraps (``n_boot`` resamples) over prompts.

    A prompt is correct where the model's top prediction at the query's final token is the answer's first
    token (Todd et al., ICLR 2024; Yin & Steinhardt, ICML 2025, arXiv 2502.14010). The abstract tasks
    (``repetition``, ``recursion``, ``centre_embedding``, ``category_pairs``) are drawn from the model's
    vocabulary and need no tokenizer; the natural ones (``country_capital``, ``antonym``, ``capitalize``,
    ``first_letter``, ``english_french``, ``present_past``: a ``Q: x`` line, then ``A: y``) need the model's
    tokenizer. Prompts are right-padded; the model's causality is proven once on the first padded task.

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); a causal language model in eval mode.
        tasks: one task or a list: names in ``probes.few_shot.TASKS`` or ``FewShotTask`` objects (a task of
            your own: ``kind="natural"`` with its ``(x, y)`` pairs); ``None`` (default) for every shipped
            task the model can run (the natural ones only with a tokenizer).
        shots: solved examples per prompt (default 10); at least 2 for ``category_pairs``, and at most the
            natural task's usable rows minus one.
        n_prompts: prompts per task (default 32), each with its own shots and query.
        ablate: heads removed while measuring, ``(layer, head)`` pairs (0-based); default none.
        knockout: heads whose ``edges`` are knocked out before the softmax (the rest of each head kept);
            default none. Composes with ``ablate`` in the same intervened copy.
        method: what replaces the ``ablate`` heads' outputs: ``"mean"`` (default: each head's mean output
            over the task's prompts, every real token) or ``"zero"``.
        edges: with ``knockout`` heads only: the edges removed, ``"induction"`` (``None``, the default:
            each query's edges to the tokens after its earlier copies), ``"previous_token"`` or a
            ``mask_fn(tokens [batch, seq]) -> bool [batch, q, k]`` (or ``[q, k]``); see ``ablate_heads``.
        baseline: also run the clean copy beside the intervened one (default ``True``); ``False`` with an
            intervention saves that copy and leaves the clean numbers NaN.
        n_boot: bootstrap resamples of the 95% intervals (at least 10; default 1000).
        seed: seed of the prompts and of the bootstrap (default 0).
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        FewShotAccuracy: one ``TaskAccuracy`` per task (accuracy 0-1 and the answer's mean probability,
        clean and intervened, and the paired drop, each with its 95% interval over prompts) and the means
        over tasks (``mean_accuracy``, ``mean_ablated``, ``mean_drop`` with their intervals).

    Raises:
        InputError: for unknown tasks, an empty task list, tables with fewer rows than ``shots + 1``, ``shots < 2`` for
            ``category_pairs``, bad heads (one named twice too), an unknown ``method``, ``n_boot < 10``, ``edges``
            without ``knockout`` heads, a natural task on a model without a tokenizer, a model whose final token sees
            the right padding (bidirectional attention), a kernel that cannot take the knockout (``ablate_heads``'
            knockout refusals), or a model in training mode.
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, few_shot_accuracy
        >>> model = HandBuiltInduction()  # L1H0 is an induction head: "a b ... a" -> "b"
        >>> result = few_shot_accuracy(model, "repetition", shots=4, n_prompts=8, knockout=[(1, 0)], n_boot=100)
        >>> result.mean_accuracy  # the clean copy: every prompt right
        1.0
        >>> result.mean_ablated, result.mean_drop  # L1H0's induction edges knocked out: none right
        (0.0, 1.0)
        >>> "knocked out" in str(result)
        True

        The natural-language tasks need the model's tokenizer (``load_model()`` loads SmolLM2 with it):

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> result = few_shot_accuracy(load_model(), ["country_capital", "antonym"])  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
        Few-shot accuracy (10 shots)
        ...
    """
    check_choice("ablation method", method, ("zero", "mean"))
    check_int("n_boot", n_boot, 10)
    if edges is not None and not knockout:
        raise InputError("edges= chooses the edges the knockout heads lose; name them with knockout=[(layer, head)]")
    ab = Ablator(model, projections, remote)
    names = check_tasks(ab, tasks)
    cut = tuple(ab.check_heads(ablate)) if ablate else ()
    knock = tuple(ab.check_heads(knockout, "knockout")) if knockout else ()
    intervened = bool(cut or knock)
    rows, hits, proven = [], [], False
    for i, task in enumerate(names):
        p = task_prompts(ab, task, shots, n_prompts, seed)
        if not proven:  # the model's causality, proven once on the first padded task
            proven = check_right_padding(ab, p.tokens, p.last)
        means = _means(ab, p) if cut and method == "mean" else None
        clean = baseline or not intervened
        copies = ([Copy()] if clean else []) + ([Copy(ablate=cut, knockout=knock)] if intervened else [])
        prob, hit = answer_scores(ab, p.tokens, p.last, p.answer, copies, method, means, edges)
        hit = hit.float()
        if len(copies) == 1:  # the one copy stands in both rows; a clean row not run is NaN
            prob, hit = prob.repeat(2, 1), hit.repeat(2, 1)
            if not clean:
                prob[0], hit[0] = float("nan"), float("nan")
        rows.append(_row(p.task, prob, hit, n_boot, seed + i, intervened))
        hits.append(hit)
    return _summary(rows, hits, shots, cut, knock, method, edges, seed, n_boot, intervened)


def _interval(values: torch.Tensor, n_boot: int, seed: int) -> Interval:
    low, high = bootstrap_mean(values, n_boot, seed)
    return float(low), float(high)


def _row(task: str, prob: torch.Tensor, hit: torch.Tensor, n_boot: int, seed: int, intervened: bool) -> TaskAccuracy:
    nan = float("nan")
    drop = hit[0] - hit[1]
    return TaskAccuracy(
        task,
        hit.shape[1],
        float(hit[0].mean()),
        _interval(hit[0], n_boot, seed),
        float(prob[0].mean()),
        float(hit[1].mean()) if intervened else nan,
        _interval(hit[1], n_boot, seed) if intervened else (nan, nan),
        float(prob[1].mean()) if intervened else nan,
        float(drop.mean()) if intervened else nan,
        _interval(drop, n_boot, seed) if intervened else (nan, nan),
    )


def _summary(rows, hits, shots, cut, knock, method, edges, seed, n_boot, intervened) -> FewShotAccuracy:
    """Means over tasks; intervals from resampling prompts within each task (a task's prompts are paired)."""
    stacked = torch.stack([h[:, : min(x.shape[1] for x in hits)] for h in hits])  # [task, 2, prompts]
    g = torch.Generator().manual_seed(seed)
    n = stacked.shape[-1]
    idx = torch.randint(n, (n_boot, stacked.shape[0], n), generator=g)
    draws = torch.stack([stacked[t][:, idx[:, t]].mean(-1) for t in range(stacked.shape[0])]).mean(0)  # [2, boot]
    draws = torch.cat([draws, (draws[0] - draws[1])[None]])

    def ci(k: int) -> Interval:
        if k > 0 and not intervened:
            return float("nan"), float("nan")
        low, high = torch.quantile(draws[k], torch.tensor([0.025, 0.975]))
        return float(low), float(high)

    means = stacked.mean(-1).mean(0)
    nan = float("nan")
    return FewShotAccuracy(
        tuple(rows),
        shots,
        cut,
        knock,
        method,
        edges if isinstance(edges, str) else ("induction" if edges is None else "mask_fn"),
        seed,
        float(means[0]),
        ci(0),
        float(means[1]) if intervened else nan,
        ci(1),
        float(means[0] - means[1]) if intervened else nan,
        ci(2),
    )
