"""Per-token loss by position on the user's documents, and the in-context-learning score on them.

Olsson et al. (2022), "In-context learning and induction heads": the ICL score is the loss at a late
token minus the loss at an early one (their choice: token 500 minus token 50; tokens counted from 0),
averaged over documents; negative means the model predicts better with more context. Removing the
induction heads should push it towards 0. ``loss_by_position`` measures the whole curve
``loss[i] = -log p(t_i | t_<i)`` (nats, ``i >= 1``) with heads optionally ablated (zero or mean, as
``causal.ablate_heads``), documents in length-bucketed padded batches, log-probabilities computed inside
the trace (a remote run ships ``[batch, T]`` numbers, never logits). The score uses only documents with
at least ``late + 1`` tokens; its interval is a seeded bootstrap over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import ABLATION_METHODS, Ablator
from ..engine.batch import Overflow
from ..engine.documents import length_buckets, tokenize_documents
from ..engine.knockout import Edges, check_edges, edge_mask
from ..errors import InputError
from ..metrics.stats import bootstrap_mean

__all__ = ["LossCurve", "loss_by_position", "require_long_documents"]

_BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class LossCurve:
    """``loss`` ``[T]``: mean next-token loss (nats) of token ``i`` over the documents that reach it
    (``counts`` ``[T]``; ``loss[0]`` is NaN: the first token is not predicted). ``per_document``
    ``[n]``: ``loss[late] - loss[early]`` of each document with at least ``late + 1 + window // 2``
    tokens (each a mean over the ``window`` tokens centred there: 1 is Olsson et al.'s single token).
    ``icl_score``: their mean, with a bootstrap interval ``(ci_low, ci_high)``; NaN without such documents.

    Returned by ``loss_by_position`` (and by ``icl_score`` with ``texts=``). Olsson et al. 2022
    (arXiv 2209.11895): negative means the model predicts better with more context; removing the induction
    heads should push it towards 0. ``sparkline()`` draws the curve as one line of text.

    Attributes:
        loss: ``[T]`` float, mean next-token loss ``-log p(t_i | t_<i)`` (nats) of token ``i`` over the
            documents that reach it; ``T`` is the longest document's length; ``loss[0]`` is NaN.
        counts: ``[T]`` float, how many documents reach token ``i`` (``counts[0]`` is 0).
        per_document: ``[n]`` float, ``loss[late] - loss[early]`` (nats) of each of the ``n`` documents long
            enough (at least ``late + 1 + window // 2`` tokens), in the documents' order; each a mean over
            the ``window`` tokens centred at ``late`` and at ``early``.
        early: the early token (counted from 0; Olsson et al.: 50).
        late: the late token (counted from 0; Olsson et al.: 500).
        window: odd number of tokens averaged around ``early`` and ``late`` (1: single tokens).
        ablated: the heads removed, ``(layer, head)`` pairs; empty for the intact model.
        method: what replaced the removed heads' outputs: ``"zero"``, ``"mean"`` or ``"knockout"``.
        documents: the documents scored (after tokenizing, cutting or chunking; each of at least 2 tokens).
        ci_low: lower end of the 95% bootstrap interval of ``icl_score`` (nats); NaN without documents
            long enough.
        ci_high: upper end of that interval (nats); NaN without documents long enough.
        seed: seed of the bootstrap.
        icl_score: mean of ``per_document`` (nats; negative: context helps); NaN without documents long
            enough.

    Examples:
        >>> import random
        >>> from induction_nb import HandBuiltInduction, loss_by_position
        >>> rng = random.Random(0)
        >>> docs = [[rng.randrange(40) for _ in range(16)] * 2 for _ in range(4)]  # token ids, a block read twice
        >>> curve = loss_by_position(HandBuiltInduction(), docs, early=4, late=20)
        >>> tuple(curve.loss.shape), curve.documents, len(curve.per_document)
        ((32,), 4, 4)
        >>> curve.icl_score < -0.5 and curve.ci_low <= curve.icl_score <= curve.ci_high
        True
        >>> curve
        LossCurve(intact, 4 documents, ICL score (loss[20] - loss[4]) ...)
        >>> curve.sparkline(width=20).startswith("loss ")
        True
    """

    loss: torch.Tensor
    counts: torch.Tensor
    per_document: torch.Tensor
    early: int
    late: int
    window: int
    ablated: tuple[tuple[int, int], ...]
    method: str
    documents: int
    ci_low: float
    ci_high: float
    seed: int

    @property
    def icl_score(self) -> float:
        return float(self.per_document.mean()) if len(self.per_document) else float("nan")

    def sparkline(self, width: int = 60) -> str:
        """The curve in ``width`` characters (the mean loss of each run of positions), labelled with its
        range: one line for a terminal or a notebook's text output."""
        check_int("width", width, 8)
        y = self.loss[1:]
        keep = torch.isfinite(y)
        if not keep.any():
            return "(no predicted token)"
        n = len(y)
        edges = torch.linspace(0, n, min(width, n) + 1).long()
        bins = torch.stack(
            [torch.nanmean(y[a:b]) if b > a else torch.tensor(float("nan")) for a, b in zip(edges[:-1], edges[1:])]
        )
        finite = bins[torch.isfinite(bins)]
        lo, hi = float(finite.min()), float(finite.max())
        scale = (bins - lo) / max(hi - lo, 1e-9) * (len(_BARS) - 1)
        line = "".join(" " if not torch.isfinite(v) else _BARS[int(round(float(v)))] for v in scale)
        return f"loss {hi:.2f}..{lo:.2f} nats over tokens 1..{n}: {line}"

    def __repr__(self) -> str:
        what = f"without {len(self.ablated)} heads ({self.method})" if self.ablated else "intact"
        at = "" if self.window == 1 else f", windows of {self.window}"
        return (
            f"LossCurve({what}, {self.documents} documents, ICL score (loss[{self.late}] - loss[{self.early}]{at}) "
            f"{self.icl_score:+.3f} [{self.ci_low:+.3f}, {self.ci_high:+.3f}] over {len(self.per_document)})"
        )


def loss_by_position(
    model: Any,
    texts: Any,
    *,
    ablate: Sequence[tuple[int, int]] = (),
    method: str = "zero",
    edges: Edges | None = None,
    early: int = 50,
    late: int = 500,
    window: int = 1,
    max_length: int | None = None,
    overflow: Overflow = "truncate",
    batch_size: int = 4,
    n_bootstrap: int = 1000,
    seed: int = 0,
    projections: Sequence[str] | None = None,
    remote: Any = False,
    progress: bool | None = None,
) -> LossCurve:
    """The loss-by-position curve and ICL score of ``model`` on ``texts``, with heads optionally removed.

    ``texts``: anything ``load_texts`` reads, with the heads ``ablate`` removed (``method`` ``"zero"`` or
    ``"mean"``; mean ablation uses each layer's mean head output over every real token of all the documents,
    one extra forward per batch; ``"knockout"``: only their ``edges`` removed, ``engine.knockout``).
    ``window``: odd, the tokens averaged around ``early`` and ``late``. The curve is
    ``loss[i] = -log p(t_i | t_<i)`` (nats, ``i >= 1``) averaged over the documents that reach token ``i``;
    the ICL score (Olsson et al. 2022, arXiv 2209.11895) is ``loss[late] - loss[early]`` averaged over the
    documents with at least ``late + 1 + window // 2`` tokens, with a seeded bootstrap interval over them.
    Documents run in length-bucketed padded batches (on a model whose forward takes no ``attention_mask``,
    batches of one exact length, unpadded) and the log-probabilities are computed inside the trace (a remote
    run ships ``[batch, T]`` numbers, never logits).

    Args:
        model: the model: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode.
        texts: the documents: anything ``load_texts`` reads (strings, a file or folder, for the model's
            tokenizer), or token ids (lists of ints, or a 2-D array, one row per document).
        ablate: heads removed, ``(layer, head)`` pairs; default none (the intact model).
        method: ``"zero"`` (default), ``"mean"`` or ``"knockout"`` (no ``"corrupt"``: documents have no
            corrupted version).
        edges: with ``method="knockout"`` only: the edges knocked out (``"induction"`` by default,
            ``"previous_token"`` or a ``mask_fn``; see ``ablate_heads``).
        early: the early token, counted from 0 (default 50, Olsson et al.'s); at least ``1 + window // 2``.
        late: the late token (default 500, Olsson et al.'s); at least ``early + window``.
        window: odd number of tokens averaged, centred on ``early`` and on ``late`` (default 1: single tokens).
        max_length: the longest document in tokens (default: the model's positions, at most 1024).
        overflow: what to do with longer documents: ``"truncate"`` (default: keep the first ``max_length``
            tokens, with a warning) or ``"chunk"`` (score every window).
        batch_size: documents per forward (default 4).
        n_bootstrap: bootstrap resamples of the score's interval (at least 10; default 1000).
        seed: seed of the bootstrap.
        projections: one output-projection module path per attention layer, where it cannot be found
            (see ``ablate_heads``); ``None`` to find it.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.
        progress: show a progress bar over the batches; ``None`` (default): where there are more than two.

    Returns:
        LossCurve: ``loss`` and ``counts`` ``[T]`` by position, ``per_document`` ``[n]`` late-minus-early
            losses (nats), ``icl_score`` with its interval ``(ci_low, ci_high)``. A score is NaN where no document
            reaches ``late`` (``icl_score(texts=...)`` refuses that instead).

    Raises:
        InputError: for ``early >= late``, an even window, bad heads (one named twice too), documents that
            ``detect_on_text`` also refuses (no tokenizer for text, token ids outside the vocabulary, no document of 2
            tokens), an unknown ``method`` or ``"corrupt"``, ``edges`` with another method, knockout edges that select
            nothing, ``n_bootstrap`` below 10, ``batch_size`` below 1, or a model in training mode.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> import random
        >>> from induction_nb import HandBuiltInduction, loss_by_position
        >>> model = HandBuiltInduction()  # a 2-layer transformer with a known induction head, L1H0
        >>> rng = random.Random(0)
        >>> docs = [[rng.randrange(40) for _ in range(16)] * 2 for _ in range(4)]  # token ids, a block read twice
        >>> curve = loss_by_position(model, docs, early=4, late=20)
        >>> curve.icl_score < -0.5  # nats: token 20 (in the repeat) is predicted far better than token 4
        True
        >>> without = loss_by_position(model, docs, ablate=[(1, 0)], early=4, late=20)
        >>> abs(without.icl_score) < 0.05, without.ablated
        (True, ((1, 0),))
    """
    half = _check(method, edges, window, n_bootstrap, early, late, batch_size)
    ab = Ablator(model, projections, remote)
    plan = ab.check_heads(ablate) if ablate else []
    docs = tokenize_documents(ab.engine, texts, max_length, overflow)
    T = max(len(d) for d in docs)
    sums, counts = torch.zeros(T, dtype=torch.float64), torch.zeros(T, dtype=torch.float64)
    per_doc: dict[int, torch.Tensor] = {}  # by the document's index, reported in the documents' order
    buckets = list(length_buckets(ab.engine, docs, batch_size, progress=False))
    means = _global_means(ab, docs, buckets) if method == "mean" and plan else None
    knocked = _bucket_edges(ab, docs, buckets, edges) if method == "knockout" and plan else None
    for n_bucket, bucket in enumerate(length_buckets(ab.engine, docs, batch_size, progress)):
        batch = ab.engine.batch([docs[i] for i in bucket])
        positions = torch.arange(batch.tokens.shape[1] - 1)
        here = None if knocked is None else knocked[n_bucket]
        (lp, _), _ = ab.run(batch.tokens, [plan], method, means, positions, mask=batch.mask, edges=here)
        valid = batch.valid().cpu()
        real = valid[:, 1:] & valid[:, :-1]  # predicting token i + 1 from a real token i
        for index, row, ok in zip(bucket, -lp.double(), real):
            losses = row[ok]  # tokens 1 .. n-1 of the document, in order (padding on either side dropped)
            sums[1 : len(losses) + 1] += losses
            counts[1 : len(losses) + 1] += 1
            if len(losses) >= late + half:  # losses[i - 1] is token i's
                per_doc[index] = (
                    losses[late - 1 - half : late + half].mean() - losses[early - 1 - half : early + half].mean()
                )
    loss = torch.where(counts > 0, sums / counts.clamp_min(1), torch.tensor(float("nan"), dtype=torch.float64))
    per_document = torch.stack([per_doc[i] for i in sorted(per_doc)]).float() if per_doc else torch.zeros(0)
    low, high = _interval(per_document, n_bootstrap, seed)
    return LossCurve(
        loss.float(), counts.float(), per_document, early, late, window, tuple(plan), method, len(docs), low, high, seed
    )


def _check(method: str, edges: Any, window: Any, n_bootstrap: Any, early: Any, late: Any, batch_size: Any) -> int:
    """``loss_by_position``'s argument checks; returns half the window."""
    check_choice("ablation method", method, [m for m in ABLATION_METHODS if m != "corrupt"])  # no corrupted documents
    check_edges(method, edges)
    check_int("window", window, 1)
    if window % 2 == 0:
        raise InputError(f"window must be odd (tokens centred on early and late), got {window}")
    check_int("n_bootstrap", n_bootstrap, 10)
    check_int("early", early, 1 + window // 2)
    check_int("late", late, early + window)
    check_int("batch_size", batch_size, 1)
    return window // 2


def _bucket_edges(ab: Ablator, docs: list[list[int]], buckets: list[list[int]], edges: Any) -> list:
    """Each bucket's knocked-out edges ``bool [batch, q, k]``; a bucket may have none (a document without
    repeats), the documents together must have some."""
    masks = []
    for bucket in buckets:
        batch = ab.engine.batch([docs[i] for i in bucket])
        masks.append(edge_mask(edges, batch.tokens, batch.mask, allow_empty=True))
    if not any(bool(m.any()) for m in masks):
        edge_mask(edges, batch.tokens, batch.mask)  # raises, naming why
    return masks


def _global_means(ab: Ablator, docs: list[list[int]], buckets: list[list[int]]) -> dict[int, torch.Tensor]:
    """Each layer's mean head output over every real token of all documents (one forward per batch)."""
    sums: dict[int, torch.Tensor] = {}
    total = 0
    for bucket in buckets:
        batch = ab.engine.batch([docs[i] for i in bucket])
        n = int(batch.valid().sum())
        for layer, mean in ab.means(batch.tokens, batch.mask).items():
            sums[layer] = sums.get(layer, 0) + mean.cpu().double() * n
        total += n
    return {layer: (v / total).float() for layer, v in sums.items()}


def _interval(values: torch.Tensor, n: int, seed: int) -> tuple[float, float]:
    if len(values) == 0:
        return float("nan"), float("nan")
    low, high = bootstrap_mean(values, n, seed)
    return float(low), float(high)


def require_long_documents(curve: LossCurve) -> None:
    """``InputError`` where no document reaches the late token (the score is then undefined)."""
    if len(curve.per_document) == 0:
        longest = int((curve.counts > 0).nonzero().max()) + 1 if (curve.counts > 0).any() else 0
        raise InputError(
            f"the ICL score needs documents of at least {curve.late + 1 + curve.window // 2} tokens, "
            f"the longest has "
            f"{longest}; pass longer documents, or early= and late= that fit"
        )
