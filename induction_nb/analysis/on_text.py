"""Induction on the user's own text: what each head does over the natural repeats of real documents.

``detect_on_text(model, texts)`` scores every head on documents that were not built as probes, with every
registered pattern metric (``metrics.REGISTRY``) pooled over all scored queries of all documents: for
prefix matching a query is *scored* where its token occurred earlier in the same document (the probes'
match mask, ``metrics.match_mask``: the keys right after each earlier copy), and the prefix-matching score
is the ``overall_score`` (there is no control on natural text, so no contrast); copying, previous-token,
duplicate-token and diagonal scores likewise, each over the queries it scores.

The interval is a seeded bootstrap over documents (queries of one document are not independent). The
number of scored queries (``settings["scored_queries"]``) is the same for every head: it depends on the
tokens only. Documents are sorted into length buckets and run as padded batches (``engine.batch``), so
padding stays small; a document longer than ``max_length`` is cut (``overflow="truncate"``, a warning) or split
into windows (``"chunk"``: each window then counts, and is resampled, as a document of its own, and
only the first keeps the tokenizer's BOS). Limits: each batch's layer pattern is held whole (``[batch, head, T, T]``,
float32): keep ``max_length * batch_size`` moderate (the defaults: 1024 x 4).
"""

from __future__ import annotations

from typing import Any

import torch

from .._validate import check_int, check_probability
from ..engine.batch import Overflow
from ..engine.capture import stream_attention
from ..engine.documents import document_limit, length_buckets, tokenize_documents
from ..engine.engine import Engine
from ..errors import InputError
from ..metrics import REGISTRY, combine_heads, document_sums, pattern_metric_list
from ..metrics.stats import bootstrap_ratio
from .head_score import HeadScore
from .results import TextScanResult

__all__ = ["detect_on_text"]


class _TextSums:
    """Inside the trace, per layer: per-document sums of each pattern metric ``[batch, head]`` over its
    scored queries, and their counts (``metrics.document_sums``). Shipped by value with a remote request."""

    def __init__(self, tokens: torch.Tensor, valid: torch.Tensor, metrics: tuple):
        self.tokens, self.valid, self.metrics = tokens, valid, metrics

    def __call__(self, layer: int, A: torch.Tensor) -> dict[str, torch.Tensor]:
        return document_sums(A, self.tokens, self.valid, self.metrics)


def detect_on_text(
    model: Any,
    texts: Any,
    *,
    threshold: float = 0.1,
    batch_size: int = 4,
    max_length: int | None = None,
    overflow: Overflow = "truncate",
    n_bootstrap: int = 1000,
    seed: int = 0,
    remote: Any = False,
    progress: bool | None = None,
) -> TextScanResult:
    """Every head's induction scores on natural text (see the module docstring), as a ``TextScanResult``
    whose ``overall_score`` is the prefix-matching score with its bootstrap interval over documents;
    report, JSON, CSV, figures and the explorer work as for detection.

    ``texts``: a file, folder, list of strings, pandas/Arrow column or ``datasets.Dataset`` (see
    ``load_texts``). ``threshold``: on the prefix-matching score (0.1: several times what a head that
    ignores the match puts there on typical text). Raises ``InputError`` for empty documents, a model
    without a tokenizer, documents too long (``overflow="error"``)."""
    check_probability("threshold", threshold)
    check_int("batch_size", batch_size, 1)
    check_int("n_bootstrap", n_bootstrap, 10)
    engine = Engine.of(model, remote)
    docs = tokenize_documents(engine, texts, max_length, overflow)
    per_doc = _run_buckets(engine, docs, batch_size, progress)
    return _result(
        engine,
        per_doc,
        docs,
        threshold,
        n_bootstrap,
        seed,
        dict(batch_size=batch_size, max_length=document_limit(engine, max_length), overflow=overflow),
    )


def _run_buckets(engine: Engine, docs: list[list[int]], batch_size: int, progress: bool | None) -> dict:
    """Length-sorted padded batches; per layer ``{metric: [docs, head]}`` in the documents' order."""
    rows: dict[int, list] = {}
    layers = None
    for bucket in length_buckets(docs, batch_size, progress):
        batch = engine.batch([docs[i] for i in bucket])
        reducer = _TextSums(batch.tokens, batch.valid(), pattern_metric_list())
        sums = stream_attention(
            engine.model, batch.tokens, reducer, attention_mask=batch.mask, remote=engine.remote or False
        )
        layers = engine.layers
        for j, i in enumerate(bucket):
            rows[i] = [{k: v[j] for k, v in layer.items()} for layer in sums]
    per_doc = [rows[i] for i in range(len(docs))]
    return {"layers": layers, "docs": per_doc}


def _result(
    engine: Engine, per_doc: dict, docs: list[list[int]], threshold: float, n_bootstrap: int, seed: int, settings: dict
) -> TextScanResult:
    layers, rows = per_doc["layers"], per_doc["docs"]
    means, counts = {}, {}
    for m in rows[0][0]:  # every metric, pooled: sum over documents of the sums / of the counts
        if m.endswith("_n"):
            continue
        sums = torch.stack([torch.stack([layer[m] for layer in doc]) for doc in rows])  # [docs, layer, head]
        counts[m] = torch.stack([doc[0][m + "_n"] for doc in rows])  # [docs]
        total = counts[m].sum()  # no scored query anywhere: undefined, NaN (not 0)
        means[m] = sums.sum(0) / total if total > 0 else torch.full(sums.shape[1:], float("nan"))
        if m == "prefix_matching":
            low, high = bootstrap_ratio(sums, counts[m], n_bootstrap, seed)
    scored = int(counts["prefix_matching"].sum())
    if scored == 0:
        raise InputError("no token repeats within any document, so no query can be scored; pass longer documents")
    means = combine_heads({"overall_score": means["prefix_matching"], **means})  # head metrics whose needs are here
    names = [m for m in REGISTRY if m in means]
    scores = tuple(
        HeadScore(layer, h, {m: float(means[m][i, h]) for m in names}, float(low[i, h]), float(high[i, h]))
        for i, layer in sorted(enumerate(layers), key=lambda x: x[1])
        for h in range(means["prefix_matching"].shape[1])
    )
    settings = {
        "score": "prefix matching on the natural repeats of the documents (no control)",
        "documents": len(docs),
        "tokens": sum(len(d) for d in docs),
        "scored_queries": scored,
        "n_bootstrap": n_bootstrap,
        "remote": engine.remote is not None,
        **settings,
    }
    return TextScanResult(scores, threshold, engine.name, engine.n_layers, engine.n_heads or 0, settings, seed)
