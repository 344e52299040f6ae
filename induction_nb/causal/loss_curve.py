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
    ``icl_score``: their mean, with a bootstrap interval ``(ci_low, ci_high)``; NaN without such documents."""

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
    """The loss-by-position curve and ICL score of ``model`` on ``texts`` (anything ``load_texts``
    reads), with the heads ``ablate`` removed (``method`` ``"zero"`` or ``"mean"``; mean ablation uses
    each layer's mean head output over every real token of all the documents, one extra forward per
    batch; ``"knockout"``: only their ``edges`` removed, ``engine.knockout``). ``window``: odd, the tokens
    averaged around ``early`` and ``late``. Raises ``InputError`` for ``early >= late``, an even window,
    bad heads, documents that ``detect_on_text`` also refuses."""
    half = _check(method, edges, window, n_bootstrap, early, late, batch_size)
    ab = Ablator(model, projections, remote)
    plan = ab.check_heads(ablate) if ablate else []
    docs = tokenize_documents(ab.engine, texts, max_length, overflow)
    T = max(len(d) for d in docs)
    sums, counts = torch.zeros(T, dtype=torch.float64), torch.zeros(T, dtype=torch.float64)
    per_doc: dict[int, torch.Tensor] = {}  # by the document's index, reported in the documents' order
    buckets = list(length_buckets(docs, batch_size, progress=False))
    means = _global_means(ab, docs, buckets) if method == "mean" and plan else None
    knocked = _bucket_edges(ab, docs, buckets, edges) if method == "knockout" and plan else None
    for n_bucket, bucket in enumerate(length_buckets(docs, batch_size, progress)):
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
