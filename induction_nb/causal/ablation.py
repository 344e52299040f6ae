"""Head ablation and the in-context-learning score.

``ablate_heads`` removes heads (zero, mean or corrupted patching: see ``engine.ablator``) and measures the
loss increase on the repeated half of repeated random sequences (the tokens an induction head can predict)
and on the shipped natural-text passages. ``icl_score`` is Olsson et al.'s in-context-learning score on
the same probes, or on your documents (``causal.loss_curve``). All of it runs locally or with ``remote=``
(NDIF): the losses are computed inside the trace, so only per-sequence numbers come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import ABLATION_METHODS, AblationMethod, Ablator, per_plan
from ..engine.knockout import Edges, check_edges
from ..errors import InputError
from ..metrics.stats import bootstrap_mean
from .loss_curve import loss_by_position, require_long_documents
from .probe import repeat_probe

__all__ = ["AblationResult", "ablate_heads", "icl_score"]


@dataclass(frozen=True)
class AblationResult:
    """Loss with ``heads`` removed minus loss without, on the repeated half of repeated random
    sequences (``effect``) and on natural text (``natural_effect``, ``None`` without a tokenizer).
    ``per_head``: each head's own effect when ablated alone (``individually=True``). Accuracies: how
    often the top prediction on the repeated half is the next token, without and with the ablation.

    Returned by ``ablate_heads``. Losses are mean next-token cross-entropies in nats, over the queries that
    predict the repeat's 2nd..last token of every sequence.

    Attributes:
        heads: the removed heads, ``(layer, head)`` pairs, as checked (in the order given).
        method: what replaced the heads' outputs: ``"zero"``, ``"mean"``, ``"corrupt"`` or ``"knockout"``
            (only their ``edges`` removed).
        baseline_loss: loss (nats) on the repeated half with every head in place.
        ablated_loss: loss (nats) on the repeated half with all of ``heads`` removed together.
        natural_baseline_loss: loss (nats) on the repeated half of the shipped natural-text passages (each
            read twice) with every head in place; ``None`` for a model without a tokenizer.
        natural_ablated_loss: the same with ``heads`` removed; ``None`` without a tokenizer.
        per_head: ``{(layer, head): effect in nats}``, each head's ``effect`` when removed alone
            (``individually=True``); ``None`` otherwise.
        n_forward: forward passes the call ran (the ablated copies share one; mean and corrupted
            replacements and the natural passages add theirs).
        seed: the seed of the random sequences (and of the corrupted run).
        baseline_accuracy: fraction (0-1) of the repeated half's queries whose top prediction is the next
            token, every head in place (NaN when not measured).
        ablated_accuracy: the same with ``heads`` removed.
        effect: ``ablated_loss - baseline_loss`` (nats; positive: the heads helped predict the repeat).
        natural_effect: ``natural_ablated_loss - natural_baseline_loss`` (nats), ``None`` without a tokenizer.

    Examples:
        >>> from induction_nb import HandBuiltInduction, ablate_heads
        >>> model = HandBuiltInduction()  # a 2-layer transformer with a known induction head, L1H0
        >>> result = ablate_heads(model, [(1, 0)], sequence_length=32)
        >>> result.heads, result.method
        (((1, 0),), 'zero')
        >>> result.effect > 0.5, result.natural_effect  # no tokenizer: no natural text
        (True, None)
        >>> result.baseline_accuracy > 0.9, result.ablated_accuracy < 0.2
        (True, True)
    """

    heads: tuple[tuple[int, int], ...]
    method: str
    baseline_loss: float
    ablated_loss: float
    natural_baseline_loss: float | None
    natural_ablated_loss: float | None
    per_head: dict | None
    n_forward: int
    seed: int
    baseline_accuracy: float = float("nan")
    ablated_accuracy: float = float("nan")

    @property
    def effect(self) -> float:
        return self.ablated_loss - self.baseline_loss

    @property
    def natural_effect(self) -> float | None:
        if self.natural_ablated_loss is None:
            return None
        return self.natural_ablated_loss - self.natural_baseline_loss


def ablate_heads(
    model: Any,
    heads: Sequence[tuple[int, int]],
    method: AblationMethod = "zero",
    *,
    individually: bool = False,
    edges: Edges | None = None,
    sequence_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
) -> AblationResult:
    """Remove ``heads`` together (and, with ``individually``, each alone) and measure the loss increase.

    The loss is measured on the repeated half of repeated random sequences and on natural text (first
    passage half). ``method="knockout"`` removes only the heads' ``edges`` (default ``"induction"``: each
    query's edges to the tokens after its earlier copies; ``engine.knockout``) before the softmax, the rest
    of each head kept (Crosbie & Shutova 2025). Heads are removed at the input of each layer's attention
    output projection (``engine.ablator``); every ablated copy of the batch shares one forward, and only
    per-sequence numbers leave the trace, so the same runs with ``remote=`` (NDIF).

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode.
        heads: the heads to remove, ``(layer, head)`` pairs (0-based), at least one.
        method: what replaces a head's output: ``"zero"`` (default), ``"mean"`` (its mean over the clean
            batch), ``"corrupt"`` (its output on the same batch with the repeat broken) or ``"knockout"``
            (only the heads' ``edges`` removed before the softmax).
        individually: also remove each head alone (one more copy of the batch per head, same forward) and
            report ``AblationResult.per_head``. Default ``False``.
        edges: with ``method="knockout"`` only: the edges removed, ``"induction"`` (default),
            ``"previous_token"`` or a ``mask_fn(tokens [batch, seq]) -> bool [batch, q, k]`` (or ``[q, k]``).
        sequence_length: tokens per random sequence (BOS not counted), a block then its repeat; ``None``
            for the default (64, or what the model's positions allow).
        batch_size: random sequences (at least 1; default 8).
        seed: seed of the random sequences and of the corrupted run.
        projections: one module path per attention layer naming its output projection (the module whose
            input is the concatenated head outputs), for models where it cannot be found; ``None`` to find it.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        AblationResult: baseline and ablated losses (nats) and accuracies on the repeated half (``effect``:
            their difference), the same on natural text where the model has a tokenizer, ``per_head`` with
            ``individually=True``, and the forward passes used.

    Raises:
        InputError: for bad heads (out of range, not integers, an empty list, a head named twice), an unknown method,
            ``edges`` with another method than ``"knockout"``, a ``mask_fn`` result that is not ``bool [batch, q, k]``
            or ``[q, k]``, edges that select nothing, a query row left with no key it may see, or a kernel that takes no
            per-edge mask; also for a ``sequence_length`` the model cannot take (the message names one that works), a
            model in training mode, or output projections that do not split into heads (pass ``projections=``).
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails (the forward took another branch).
        RemoteExecutionError: when a ``remote=`` run fails (no API key, server unreachable, job failed).

    Examples:
        >>> from induction_nb import HandBuiltInduction, ablate_heads
        >>> model = HandBuiltInduction()  # L0H0 previous-token head, L1H0 induction head
        >>> result = ablate_heads(model, [(0, 0), (1, 0)], individually=True, sequence_length=32)
        >>> result.effect > 0.5  # nats: the repeated half is much harder to predict without them
        True
        >>> sorted(head for head, effect in result.per_head.items() if effect > 0.5)  # each matters alone
        [(0, 0), (1, 0)]
        >>> abs(ablate_heads(model, [(1, 2)], sequence_length=32).effect) < 1e-4  # a head that writes nothing
        True
    """
    check_choice("ablation method", method, ABLATION_METHODS)
    check_edges(method, edges)
    ab = Ablator(model, projections, remote)
    heads = ab.check_heads(heads)
    tokens, positions, natural = repeat_probe(ab, sequence_length, batch_size, seed, tool="ablate_heads")
    means, n_forward = ab.replacement(tokens, int(positions[0]), method, seed)
    plans = [[], heads] + ([[h] for h in heads] if individually else [])
    (lp, hit), _ = ab.run(tokens, plans, method, means, positions, edges=edges)
    losses, accuracy = -per_plan(lp, len(plans)), per_plan(hit, len(plans))
    nat_base = nat_abl = None
    n_forward += 1
    if natural is not None:  # the repeated half of natural passages; mean/corrupt with their own values
        text, text_positions = natural
        text_means, extra = ab.replacement(text, int(text_positions[0]), method, seed)
        (lp, _), _ = ab.run(text, [[], heads], method, text_means, text_positions, edges=edges)
        nat = -per_plan(lp, 2)
        nat_base, nat_abl = float(nat[0]), float(nat[1])
        n_forward += 1 + extra
    per_head = {h: float(losses[2 + i] - losses[0]) for i, h in enumerate(heads)} if individually else None
    return AblationResult(
        tuple(heads),
        method,
        float(losses[0]),
        float(losses[1]),
        nat_base,
        nat_abl,
        per_head,
        n_forward,
        seed,
        float(accuracy[0]),
        float(accuracy[1]),
    )


def icl_score(
    model: Any,
    *,
    ablate: Sequence[tuple[int, int]] = (),
    method: AblationMethod = "zero",
    edges: Edges | None = None,
    sequence_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
    texts: Any = None,
    n_bootstrap: int | None = None,
    **text_kwargs: Any,
) -> Any:
    """In-context-learning score (Olsson et al. 2022, arXiv 2209.11895): late-token loss minus early-token loss.

    The mean loss at late tokens minus the mean loss at early tokens (nats; negative: the model uses its
    context). On repeated random tokens early = the first block, late = the repeat; on natural text early =
    tokens 1-10, late = the last 10 of each passage half: ``{"repeated": float, "natural": float | None}``.
    ``ablate``: heads removed while measuring (or, with ``method="knockout"``, their ``edges`` knocked out:
    see ``ablate_heads``). ``n_bootstrap`` > 0 adds ``"repeated_interval"`` and ``"natural_interval"``: 95%
    bootstrap intervals over the sequences (seeded by ``seed``; ``None`` without a tokenizer).

    With ``texts`` (your documents: anything ``load_texts`` reads), Olsson et al.'s own definition on
    them: a ``causal.loss_curve.LossCurve`` (loss by position, ``icl_score`` = loss at token 500 minus token 50
    with its bootstrap interval); ``text_kwargs`` go to ``causal.loss_curve.loss_by_position`` (``early``,
    ``late``, ``window``, ``max_length``, ``overflow``, ``progress``; ``n_bootstrap`` defaults to 1000 there);
    ``batch_size`` is the documents per batch; ``sequence_length`` is refused (``max_length`` bounds the
    documents).

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode.
        ablate: heads removed while measuring, ``(layer, head)`` pairs; default none (the intact model).
        method: what replaces the ablated heads' outputs: ``"zero"`` (default), ``"mean"``, ``"corrupt"``
            (not with ``texts``) or ``"knockout"`` (only their ``edges``); see ``ablate_heads``.
        edges: with ``method="knockout"`` only: the edges knocked out (``"induction"`` by default,
            ``"previous_token"`` or a ``mask_fn``; see ``ablate_heads``).
        sequence_length: tokens per random sequence (at least 24, so that the early and late windows do not
            overlap); ``None`` for the default (64, or what the model allows). Not with ``texts`` (refused:
            their length is ``max_length``'s).
        batch_size: random sequences (default 8), or with ``texts`` the documents per batch.
        seed: seed of the random sequences, the corrupted run and the bootstrap.
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.
        texts: your documents (anything ``load_texts`` reads, or lists of token ids); ``None`` (default)
            for the repeated random sequences and the shipped passages.
        n_bootstrap: bootstrap resamples of the intervals: ``None`` or 0 for none on the probes; with
            ``texts``, at least 10 (default 1000).
        **text_kwargs: with ``texts`` only: passed to ``loss_by_position`` (``early``, ``late``, ``window``,
            ``max_length``, ``overflow``, ``progress``).

    Returns:
        dict | LossCurve: without ``texts``, ``{"repeated": float, "natural": float | None}`` (nats; plus
            ``"repeated_interval"`` and ``"natural_interval"`` as ``(low, high)`` or ``None`` with
            ``n_bootstrap``); with ``texts``, the ``LossCurve`` of ``loss_by_position`` (its ``icl_score`` is
            ``loss[late] - loss[early]``).

    Raises:
        InputError: where no document reaches the late token (with ``texts``), for an unknown method, ``edges`` with a
            method other than ``"knockout"``, bad heads in ``ablate`` (one named twice too), a ``sequence_length`` below
            24 or beyond the model's positions, ``sequence_length`` with ``texts`` (use ``max_length``), ``text_kwargs``
            without ``texts``, a negative ``n_bootstrap``, the settings ``loss_by_position`` refuses (with ``texts``),
            or a model in training mode.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, icl_score
        >>> model = HandBuiltInduction()  # a 2-layer transformer with a known induction head, L1H0
        >>> score = icl_score(model, sequence_length=32)
        >>> score["repeated"] < -0.5, score["natural"]  # the repeat is predicted better; no tokenizer
        (True, None)
        >>> abs(icl_score(model, ablate=[(1, 0)], sequence_length=32)["repeated"]) < 0.05  # no induction head
        True

        On your documents (here token-id lists: a random block read twice), Olsson et al.'s definition:

        >>> import random
        >>> rng = random.Random(0)
        >>> docs = [[rng.randrange(40) for _ in range(16)] * 2 for _ in range(4)]
        >>> curve = icl_score(model, texts=docs, early=4, late=20)
        >>> curve.icl_score < -0.5, len(curve.per_document)
        (True, 4)
    """
    _check_text_arguments(texts, sequence_length, text_kwargs)
    if texts is not None:
        if n_bootstrap is not None:  # loss_by_position checks it (and its own default is 1000)
            text_kwargs["n_bootstrap"] = n_bootstrap
        curve = loss_by_position(
            model,
            texts,
            ablate=ablate,
            method=method,
            edges=edges,
            batch_size=batch_size,
            seed=seed,
            projections=projections,
            remote=remote,
            **text_kwargs,
        )
        require_long_documents(curve)
        return curve
    check_choice("ablation method", method, ABLATION_METHODS)
    check_edges(method, edges)
    n_bootstrap = check_int("n_bootstrap", 0 if n_bootstrap is None else n_bootstrap, 0)
    ab = Ablator(model, projections, remote)
    return icl_and_loss(ab, ablate, method, edges, sequence_length, batch_size, seed, n_bootstrap)[0]


def _check_text_arguments(texts: Any, sequence_length: Any, text_kwargs: dict) -> None:
    """Refuse what ``icl_score`` would otherwise ignore: ``sequence_length`` (the random probes' length)
    with ``texts``, and ``loss_by_position``'s settings without them."""
    if texts is not None and sequence_length is not None:
        raise InputError(
            f"icl_score: sequence_length={sequence_length!r} is the length of the random probe sequences and does "
            "not apply to texts=; to bound your documents' length pass max_length=N (overflow='truncate' keeps "
            "the first N tokens, 'chunk' scores every window), or drop sequence_length"
        )
    if texts is None and text_kwargs:
        names = ", ".join(sorted(text_kwargs))
        raise InputError(
            f"icl_score got {names}, which apply only with texts= (they go to loss_by_position: early, late, "
            "window, max_length, overflow, progress); pass texts=[...] or drop them"
        )


def icl_and_loss(
    ab: Ablator,
    ablate: Sequence,
    method: str,
    edges: Any,
    sequence_length: Any,
    batch_size: int,
    seed: int,
    n_bootstrap: int = 0,
) -> tuple[dict, float]:
    """``icl_score``'s dict on repeated tokens and passages (with ``n_bootstrap``, their intervals), and the
    mean loss of its late window on the repeated tokens (the repeated half: ``ablate_heads``' loss on the
    same probe), from the same forwards."""
    plan = ab.check_heads(ablate) if ablate else []
    # a first block of >= 12 tokens: early and late windows that do not overlap
    tokens, late, natural = repeat_probe(ab, sequence_length, batch_size, seed, minimum=24, tool="icl_score")
    means = ab.replacement(tokens, int(late[0]), method, seed)[0] if plan else None
    start = int(late[0]) - (tokens.shape[1] - 1 - int(late[0]))
    early = torch.arange(max(1, start), int(late[0]))
    score, loss, rows = _late_minus_early(ab, tokens, early, late, plan, method, means, edges)
    out: dict = {"repeated": score, "natural": None}
    intervals: dict = {"repeated_interval": _interval(rows, n_bootstrap, seed), "natural_interval": None}
    if natural is not None:  # a passage's first 10 predictions against the last 10 of its first copy
        text, repeat = natural
        end = int(repeat[0]) - 1
        text_means = ab.replacement(text, int(repeat[0]), method, seed)[0] if plan else None
        out["natural"], _, rows = _late_minus_early(
            ab, text, torch.arange(1, 11), torch.arange(end - 10, end), plan, method, text_means, edges
        )
        intervals["natural_interval"] = _interval(rows, n_bootstrap, seed)
    if n_bootstrap:
        out.update(intervals)
    return out, loss


def _late_minus_early(
    ab: Ablator,
    tokens: torch.Tensor,
    early: torch.Tensor,
    late: torch.Tensor,
    plan: list,
    method: str,
    means: dict | None,
    edges: Edges | None,
) -> tuple[float, float, torch.Tensor]:
    """The late-minus-early loss, the late window's loss and each sequence's late-minus-early ``[batch]``."""
    (lp, _), _ = ab.run(tokens, [plan], method, means, torch.cat([early, late]), edges=edges)
    late_loss = float(-lp[:, len(early) :].mean())
    rows = lp[:, : len(early)].double().mean(1) - lp[:, len(early) :].double().mean(1)
    return late_loss + float(lp[:, : len(early)].mean()), late_loss, rows


def _interval(rows: torch.Tensor, n_bootstrap: int, seed: int) -> tuple[float, float] | None:
    """A 95% bootstrap interval of the mean of ``rows`` (``None`` for ``n_bootstrap`` 0)."""
    if not n_bootstrap:
        return None
    low, high = bootstrap_mean(rows.float(), n_bootstrap, seed)
    return float(low), float(high)
