"""Which heads matter for in-context learning: induction heads or function-vector heads? Yin & Steinhardt's
protocol (ICML 2025, arXiv 2502.14010) as one call, with Crosbie & Shutova's edge knockout (NAACL Findings
2025, arXiv 2407.07011) beside it.

Heads are ranked by induction score (prefix matching on repeated random tokens, ``detect_induction_heads``)
and by function-vector score (``fv_scores``). For each fraction ``x`` of all heads, the top ``x`` of one
kind are mean-ablated while the other kind's top ``spare`` (2%) are spared ("exclusion": an FV head that is
also an induction head is not counted against both), against ``n_random`` sets of random heads of the same
count; the same top induction heads' induction *edges* are also knocked out (edges against whole heads).
Each condition reports few-shot
accuracy on the offline task suite (``few_shot_accuracy``, mean over tasks, bootstrap interval over prompts),
the token-loss ICL score on repeated random tokens and on natural text (``icl_score``: late minus early
loss, nats; more negative = more in-context learning) and the loss on the repeated half (nats).
Limits: the heads are ranked on the same model and tasks they are evaluated on (as in the paper); a
fraction of the heads rounds to the nearest count (at least one), ``spare`` rounds up; where exclusion
leaves fewer heads of a kind than the count, the condition removes those there are. The natural-passage
ICL score compares tokens 1-10 with the last 10 of a passage half (about 30 tokens): a weak probe; for
Olsson et al.'s token-500-minus-token-50 score on your documents use ``icl_score(texts=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice, check_int
from ..analysis.detector import detect_induction_heads
from ..engine.ablator import Ablator
from ..errors import InputError
from .ablation import icl_and_loss
from .few_shot import FewShotAccuracy, check_tasks, few_shot_accuracy
from .function_vectors import FunctionVectorScores, fv_scores

__all__ = ["ICLCondition", "ICLHeads", "icl_heads"]

Heads = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ICLCondition:
    """One intervention: ``kind`` (``"clean"``, ``"induction"``, ``"fv"``, ``"random"``, ``"knockout"``), the
    ``fraction`` of all heads, the ``heads``, ``seed``: the random set's index (0 .. n_random - 1; ``None``
    for the other kinds), few-shot ``accuracy`` (mean over tasks, 0-1) with its 95% ``interval`` over
    prompts, the ICL scores ``icl_repeated`` (repeated random tokens) and ``icl_natural`` (the shipped
    passages; ``None`` without a tokenizer), both late minus early loss in nats (more negative: more
    in-context learning), ``repeated_loss`` (nats, the repeated half: ``ablate_heads``' loss on the same
    probe) and ``few_shot``: the full ``FewShotAccuracy`` (per task)."""

    kind: str
    fraction: float
    heads: Heads
    seed: int | None
    accuracy: float
    interval: tuple[float, float]
    icl_repeated: float
    icl_natural: float | None
    repeated_loss: float
    few_shot: FewShotAccuracy


@dataclass(frozen=True)
class ICLHeads:
    """The result of Yin & Steinhardt's protocol: which heads matter for in-context learning.

    Returned by ``icl_heads``. The protocol's result: ``induction`` (prefix matching) ``[layer, head]``, rows
    the attention layers in run order (``fv_result.layers``), and ``fv_result`` (the
    ``FunctionVectorScores``); the ``conditions`` (the clean one first); ``overlap``: per fraction, ``{"k":
    heads, "shared": heads in both kinds' plain top k}``; ``depth``: per kind, the mean of layer / last layer
    over its top 10 heads (0 first, 1 last). ``condition(kind, fraction)`` lists the conditions of one kind
    at one fraction (the clean one at 0; random: one per set); ``str(result)`` is the table.

    Attributes:
        induction: ``[layer, head]`` float: each head's induction (prefix-matching) score, 0-1, from
            ``detect_induction_heads``; rows the attention layers in run order (``fv_result.layers``).
        fv_result: the ``FunctionVectorScores`` the FV heads were ranked by.
        conditions: the ``ICLCondition`` of each intervention, the clean one first, then per fraction
            ``"induction"``, ``"fv"``, ``"knockout"`` and ``n_random`` ``"random"`` ones; each with its
            ``kind``, ``fraction``, ``heads``, ``seed`` (the random set's index), few-shot ``accuracy``
            (0-1) and ``interval``, ``icl_repeated`` and ``icl_natural`` (late minus early loss, nats; more
            negative: more in-context learning; ``icl_natural`` ``None`` without a tokenizer),
            ``repeated_loss`` (nats) and ``few_shot`` (the full ``FewShotAccuracy``).
        fractions: the shares of all heads removed, as given.
        spare: the share of the other kind's top heads kept in each condition (exclusion).
        overlap: ``{fraction: {"k": heads, "shared": heads in both kinds' plain top k}}``.
        depth: ``{"induction": d, "fv": d}``: the mean of layer / last layer over each kind's top 10 heads
            (0 first, 1 last).
        method: ``"mean"`` or ``"zero"``: how heads were removed.
        seed: the seed of the prompts, the probes and the random head sets.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, icl_heads
        >>> model = HandBuiltInduction()  # 2 layers x 4 heads; L1H0 is the induction head
        >>> induction = detect_induction_heads(model, sequence_length=24)
        >>> result = icl_heads(model, "repetition", fractions=(0.125,), n_random=1, shots=4, n_prompts=8,
        ...                    induction=induction)
        >>> [c.kind for c in result.conditions]
        ['clean', 'induction', 'fv', 'knockout', 'random']
        >>> tuple(result.induction.shape), result.overlap
        ((2, 4), {0.125: {'k': 1, 'shared': 0}})
        >>> (ind,) = result.condition("induction", 0.125)  # 12.5% of 8 heads: the top one
        >>> ind.heads, ind.accuracy
        (((1, 0),), 0.0)
    """

    induction: torch.Tensor
    fv_result: FunctionVectorScores
    conditions: tuple[ICLCondition, ...]
    fractions: tuple[float, ...]
    spare: float
    overlap: dict
    depth: dict
    method: str
    seed: int

    def condition(self, kind: str, fraction: float = 0.0) -> list[ICLCondition]:
        """The conditions of one ``kind`` at one ``fraction`` (the clean one at 0; random: one per set)."""
        return [c for c in self.conditions if c.kind == kind and math.isclose(c.fraction, fraction)]

    def __str__(self) -> str:
        clean = self.condition("clean")[0]
        lines = [
            f"Which heads matter for ICL ({self.method} ablation, sparing the other kind's top {self.spare:.0%})",
            f"  clean: few-shot {clean.accuracy:.3f} [{clean.interval[0]:.3f}, {clean.interval[1]:.3f}], ICL "
            f"score {clean.icl_repeated:+.2f} nats (repeated)"
            + ("" if clean.icl_natural is None else f", {clean.icl_natural:+.2f} (natural)")
            + f", repeated-half loss {clean.repeated_loss:.2f}",
            f"  {'fraction':<9}{'kind':<10}{'heads':>6}{'few-shot':>24}{'ICL (rep)':>11}{'ICL (nat)':>11}{'loss':>7}",
        ]
        for c in self.conditions[1:]:
            nat = "" if c.icl_natural is None else f"{c.icl_natural:+.2f}"
            kind = c.kind if c.seed is None else f"random{c.seed}"
            lines.append(
                f"  {c.fraction:<9.0%}{kind:<10}{len(c.heads):>6}  {c.accuracy:.3f} [{c.interval[0]:.3f}, "
                f"{c.interval[1]:.3f}]{c.icl_repeated:>+11.2f}{nat:>11}{c.repeated_loss:>7.2f}"
            )
        for f, o in self.overlap.items():
            lines.append(f"  top {f:.0%}: {o['shared']} of {o['k']} heads in both kinds")
        lines.append(f"  mean relative depth: induction {self.depth['induction']:.2f}, fv {self.depth['fv']:.2f}")
        return "\n".join(lines)


def _top(scores: torch.Tensor, layers: list[int], k: int, spare: set) -> Heads:
    h = scores.shape[1]
    order = torch.nan_to_num(scores, nan=-float("inf")).flatten().argsort(descending=True, stable=True).tolist()
    picked = [(layers[i // h], i % h) for i in order if (layers[i // h], i % h) not in spare]
    return tuple(picked[:k])


def icl_heads(
    model: Any,
    tasks: str | Sequence[str] | None = None,
    *,
    fractions: Sequence[float] = (0.01, 0.03),
    spare: float = 0.02,
    n_random: int = 3,
    method: str = "mean",
    shots: int = 10,
    n_prompts: int = 16,
    fv: FunctionVectorScores | None = None,
    induction: Any = None,
    verify_top: int = 10,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool | None = None,
    remote: Any = False,
) -> ICLHeads:
    """Which heads matter for in-context learning: induction heads or function-vector heads, as one call.

    Yin & Steinhardt's protocol (ICML 2025, "Which Attention Heads Matter for In-Context Learning?", arXiv
    2502.14010), with Crosbie & Shutova's edge knockout (NAACL Findings 2025, arXiv 2407.07011) beside it.
    Heads are ranked by induction score (prefix matching on repeated random tokens,
    ``detect_induction_heads``) and by function-vector score (``fv_scores``). For each fraction ``x`` of all
    heads, the top ``x`` of one kind are removed (``method``) while the other kind's top ``spare`` (2%) are
    spared ("exclusion": an FV head that is also an induction head is not counted against both), against
    ``n_random`` sets of random heads of the same count; the same top induction heads' induction *edges*
    are also knocked out (edges against whole heads). Each condition reports few-shot accuracy on the
    offline task suite (``few_shot_accuracy``, mean over tasks, bootstrap interval over prompts), the
    token-loss ICL score on repeated random tokens and on natural text (``icl_score``: late minus early
    loss, nats; more negative = more in-context learning) and the loss on the repeated half (nats); each
    number equals the tool called alone.

    Limits: the heads are ranked on the same model and tasks they are evaluated on (as in the paper); a
    fraction of the heads rounds to the nearest count (at least one), ``spare`` rounds up; where exclusion
    leaves fewer heads of a kind than the count, the condition removes those there are. The natural-passage
    ICL score compares tokens 1-10 with the last 10 of a passage half (about 30 tokens): a weak probe; for
    Olsson et al.'s token-500-minus-token-50 score on your documents use ``icl_score(texts=...)``.

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); a causal language model in eval mode.
        tasks: the few-shot tasks (names in ``probes.few_shot.TASKS`` or ``FewShotTask`` objects; see
            ``few_shot_accuracy``); ``None`` (default) for every shipped task the model can run.
        fractions: shares of all heads removed per condition, each in (0, 1] (default ``(0.01, 0.03)``).
        spare: share of the other kind's top heads spared from each kind's condition, in [0, 1) (default
            0.02; 0 for no exclusion).
        n_random: random head sets per fraction (default 3; 0 for none).
        method: ``"mean"`` (default) or ``"zero"`` ablation.
        shots: solved examples per few-shot prompt (default 10).
        n_prompts: few-shot prompts per task (default 16).
        fv: FV scores computed before (a ``fv_scores`` result); ``None`` (default) runs ``fv_scores`` with
            the attribution estimator and ``verify_top``.
        induction: a ``detect_induction_heads`` result computed before; ``None`` (default) runs one (with
            its default probe).
        verify_top: heads measured exactly after the attribution estimate, where ``fv`` is not given
            (default 10).
        batch_size: the repeated sequences of the ICL score and the loss (default 8).
        seed: seed of the prompts, the probes, the detection, the FV scores and the random head sets.
        progress: a progress bar over the conditions (``None``: only where there are more than 4).
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        ICLHeads: the induction and FV scores the heads were ranked by, every condition (clean first; few-shot
        accuracy 0-1 with its interval, the ICL scores and the repeated-half loss in nats), the two kinds'
        overlap per fraction and their mean relative depth.

    Raises:
        InputError: for fractions outside (0, 1] (or none), ``spare`` outside [0, 1), a negative
            ``n_random``, an unknown method, ``batch_size < 1``, or what ``few_shot_accuracy`` and
            ``fv_scores`` refuse (unknown tasks, a natural task without a tokenizer, too few shots or
            prompts, a model whose final token sees the right padding, a model in training mode).
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, icl_heads
        >>> model = HandBuiltInduction()  # 2 layers x 4 heads; L1H0 is the induction head
        >>> induction = detect_induction_heads(model, sequence_length=24)
        >>> result = icl_heads(model, "repetition", fractions=(0.125,), n_random=1, shots=4, n_prompts=8,
        ...                    induction=induction)
        >>> clean = result.condition("clean")[0]
        >>> clean.accuracy, clean.icl_repeated < -0.5  # every prompt right; the repeat is predicted better
        (1.0, True)
        >>> (ind,) = result.condition("induction", 0.125)  # the top induction head mean-ablated
        >>> ind.heads, ind.accuracy, ind.icl_repeated > -0.1
        (((1, 0),), 0.0, True)
        >>> (rand,) = result.condition("random", 0.125)  # a random set of as many heads
        >>> len(rand.heads)
        1

        The paper's setting, on SmolLM2 (minutes on a CPU):

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> print(icl_heads(load_model()))  # doctest: +SKIP
        Which heads matter for ICL (mean ablation, sparing the other kind's top 2%)
        ...
    """
    fractions = tuple(float(f) for f in fractions)
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise InputError(f"fractions must be in (0, 1] (shares of all heads), got {fractions}")
    if not 0 <= spare < 1:
        raise InputError(f"spare must be in [0, 1) (the share of the other kind's top heads kept), got {spare}")
    check_int("n_random", n_random, 0)
    check_choice("ablation method", method, ("zero", "mean"))  # before detection and FV scores (minutes)
    ab = Ablator(model, remote=remote)
    names = check_tasks(ab, tasks)
    det = induction if induction is not None else detect_induction_heads(model, seed=seed, remote=remote)
    layers = list(ab.layers)
    # the detector's matrix has a row per model layer (NaN where a layer has no attention): the attention ones
    ind = torch.tensor(det.score_matrix("prefix_matching"), dtype=torch.float32)[layers, : ab.n_heads]
    if fv is None:
        fv = fv_scores(
            model, names, shots=shots, n_prompts=n_prompts, verify_top=verify_top, seed=seed, progress=progress,
            remote=remote,
        )  # fmt: skip
    plans, overlap = _plans(ind, fv.scores, layers, ab.heads, fractions, spare, n_random, seed)
    common = dict(shots=shots, n_prompts=n_prompts, seed=seed, remote=remote)
    losses = dict(seed=seed, remote=remote, batch_size=check_int("batch_size", batch_size, 1))
    conditions = [_measure(model, names, "clean", 0.0, (), None, method, common, losses, True)]
    if progress or (progress is None and len(plans) > 4):
        from tqdm.auto import tqdm

        plans = tqdm(plans, desc="conditions", unit="condition")
    for kind, f, heads, r in plans:
        conditions.append(_measure(model, names, kind, f, heads, r, method, common, losses))
    depth = {
        kind: sum(l for l, _ in heads) / max(1, len(heads)) / max(1, layers[-1])
        for kind, heads in (("induction", _top(ind, layers, 10, set())), ("fv", _top(fv.scores, layers, 10, set())))
    }
    return ICLHeads(ind, fv, tuple(conditions), fractions, spare, overlap, depth, method, seed)


def _plans(ind, fvs, layers, every, fractions, spare, n_random, seed) -> tuple[list, dict]:
    """``[(kind, fraction, heads, random set)]`` of every condition after the clean one, and the overlap of
    the two kinds' top heads per fraction. Exclusion: each kind's top heads skip the other's top ``spare``
    (rounded up); the knockout takes the induction condition's heads."""
    total = len(every)
    n_spare = math.ceil(spare * total) if spare else 0
    spare_ind, spare_fv = set(_top(ind, layers, n_spare, set())), set(_top(fvs, layers, n_spare, set()))
    plans, overlap = [], {}
    g = torch.Generator().manual_seed(seed + 1000)  # one stream: each random set a draw of its own
    for f in fractions:
        k = max(1, round(f * total))
        plain_ind, plain_fv = _top(ind, layers, k, set()), _top(fvs, layers, k, set())
        overlap[f] = {"k": k, "shared": len(set(plain_ind) & set(plain_fv))}
        top_ind = _top(ind, layers, k, spare_fv)
        plans += [
            ("induction", f, top_ind, None),
            ("fv", f, _top(fvs, layers, k, spare_ind), None),
            ("knockout", f, top_ind, None),  # the same heads as "induction": edges against the whole heads
        ]
        for r in range(n_random):
            pick = torch.randperm(total, generator=g)[:k].tolist()
            plans.append(("random", f, tuple(sorted(every[i] for i in pick)), r))
    return plans, overlap


def _measure(model, tasks, kind, fraction, heads, seed, method, common, losses, clean: bool = False) -> ICLCondition:
    """One condition's numbers, each from the tool called alone (``clean``: nothing removed)."""
    if clean:
        few = few_shot_accuracy(model, tasks, method=method, **common)
        icl, loss = _icl(model, (), method, losses)
        return ICLCondition(kind, 0.0, (), None, few.mean_accuracy, few.mean_interval, icl["repeated"],
                            icl["natural"], loss, few)  # fmt: skip
    knock = kind == "knockout"
    few = few_shot_accuracy(
        model, tasks, ablate=() if knock else heads, knockout=heads if knock else (), method=method,
        baseline=False, **common,
    )  # fmt: skip
    icl, loss = _icl(model, heads, "knockout" if knock else method, losses)
    acc, ci = few.mean_ablated, few.mean_ablated_interval
    return ICLCondition(kind, fraction, heads, seed, acc, ci, icl["repeated"], icl["natural"], loss, few)


def _icl(model: Any, heads: Heads, method: str, losses: dict) -> tuple[dict, float]:
    """``icl_score``'s numbers and the repeated-half loss (``ablate_heads``' on the same probe), one pass."""
    ab = Ablator(model, remote=losses["remote"])
    return icl_and_loss(ab, heads, method, None, None, losses["batch_size"], losses["seed"])
