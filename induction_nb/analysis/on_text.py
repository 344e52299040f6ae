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

    For prefix matching a query is scored where its token occurred earlier in the same document (the
    probes' match mask); the score is the attention it puts on the tokens right after those earlier copies,
    pooled over all scored queries of all documents. There is no control on natural text, so no contrast;
    copying, previous-token, duplicate-token, diagonal and n-prefix matching are pooled likewise, each over
    the queries it scores. The interval is a seeded 95% bootstrap over documents (queries of one document
    are not independent). Documents run in length-sorted padded batches (on a model whose forward takes no
    ``attention_mask``, batches of one exact length, unpadded: the scores equal those of one document at a
    time); each batch's layer pattern is held whole (``[batch, head, T, T]``, float32): keep
    ``max_length * batch_size`` moderate.

    ``texts``: a file, folder, list of strings, pandas/Arrow column or ``datasets.Dataset`` (see
    ``load_texts``). ``threshold``: on the prefix-matching score (0.1: several times what a head that
    ignores the match puts there on typical text). Raises ``InputError`` for empty documents, a model
    without a tokenizer, documents too long (``overflow="error"``).

    Args:
        model: the model to scan: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module``, or a name or path (see ``load_model``). Text needs the model's tokenizer
            (a model loaded by name or path has one); without one, pass token ids.
        texts: the documents: a file, folder, list of strings, pandas/Arrow column or ``datasets.Dataset``
            (see ``load_texts``), or documents already tokenised: a list of token-id lists (or 1-D tensors
            or arrays), or a 2-D tensor or array with a row per document. A document of fewer than 2 tokens
            is dropped; a single document goes as ``[ids]``.
        threshold: the prefix-matching score (0-1) at or above which a head counts as detected (default
            0.1).
        batch_size: documents per forward pass (default 4; long documents go in smaller batches).
        max_length: tokens per document at most; ``None`` (the default): the model's positions, at most
            1024. At least 2, at most the model's positions.
        overflow: what happens to a longer document: ``"truncate"`` (the default: cut to its first
            ``max_length`` tokens, with a warning), ``"chunk"`` (split into windows, each then a document of
            its own, only the first keeping the tokenizer's BOS) or ``"error"`` (``InputError``).
        n_bootstrap: resamples of documents for the 95% interval (default 1000, at least 10).
        seed: seeds the bootstrap (default 0).
        remote: run on NDIF (``True`` or a ``RemoteConfig``); default ``False``: locally.
        progress: show a progress bar over batches; ``None`` (the default): where there are more than two.

    Returns:
        TextScanResult: one ``HeadScore`` per head: ``overall_score`` (= ``prefix_matching``, in [0, 1]) with
            its interval over documents, and the other pooled metrics; ``settings`` holds ``documents``,
            ``tokens`` and ``scored_queries`` (the same for every head: it depends on the tokens only).

    Raises:
        InputError: for empty documents (or none with at least 2 tokens); text given to a model without a
            tokenizer; token ids outside the vocabulary, not integers, one flat list, or mixed with text;
            documents too long with ``overflow="error"``; an unknown ``overflow``; ``max_length`` beyond
            the model's positions; ``threshold`` outside [0, 1], ``batch_size`` below 1, ``n_bootstrap``
            below 10; no token repeated within any document (nothing to score); or a model in training mode.
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        AttentionNotFoundError: when no attention module can be found (use ``CustomSites``).
        CaptureCheckError: when a captured pattern fails its self-check.
        RemoteExecutionError: with ``remote``, when the NDIF run fails.

    Examples:
        A model without a tokenizer takes token ids (here two documents of one length, each a block
        repeated):

        >>> from induction_nb import HandBuiltInduction, detect_on_text
        >>> docs = [[5, 6, 7, 8, 9, 5, 6, 7, 8, 9], [20, 21, 22, 23, 24, 20, 21, 22, 23, 24]]
        >>> result = detect_on_text(HandBuiltInduction(), docs, n_bootstrap=100)
        >>> result.get_top_heads(1)[0].name
        'L1H0'
        >>> result.settings["documents"], result.settings["scored_queries"]
        (2, 10)
        >>> head = result.score(1, 0)
        >>> head.overall_score == head.prefix_matching
        True

        A long document split into windows of ``max_length`` tokens, each scored as a document:

        >>> result = detect_on_text(HandBuiltInduction(), [[5, 6, 7, 8, 9] * 4], max_length=10, overflow="chunk")
        >>> result.settings["documents"]
        2

        On your own text, with a real model and its tokenizer (downloads SmolLM2):

        >>> from induction_nb import load_model
        >>> model = load_model()  # doctest: +SKIP
        >>> result = detect_on_text(model, ["The cat sat on the mat. The cat sat on the mat."])  # doctest: +SKIP
        >>> result.get_top_heads(3)  # doctest: +SKIP
    """
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
    for bucket in length_buckets(engine, docs, batch_size, progress):
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
