"""Induction on the user's own text: what each head does over the natural repeats of real documents.

``detect_on_text(model, texts)`` scores every head on documents that were not built as probes. A query
is *scored* where its token occurred earlier in the same document; the match mask is the probes' one
(``scores.match_mask``: the keys right after each earlier copy). Per head, pooled over all scored queries
of all documents:

* ``prefix_matching``: attention on those keys (the ``overall_score`` here: there is no control on
  natural text, so ``contrast`` is NaN);
* ``copying``: share of scored queries whose arg-max key holds the token that comes next;
* ``duplicate_token``: attention on the earlier copies themselves; ``previous_token``: on ``q - 1``;
  ``diagonal``: on ``q``.

The interval is a seeded bootstrap over documents (queries of one document are not independent). The
number of scored queries (``settings["scored_queries"]``) is the same for every head: it depends on the
tokens only. Documents are sorted into length buckets and run as padded batches (``_batch``), so padding
stays small; a document longer than ``max_length`` is cut (``overflow="truncate"``, a warning) or split
into windows (``"chunk"``: each window then counts, and is resampled, as a document of its own, and
only the first keeps the tokenizer's BOS). Limits: each batch's layer pattern is held whole (``[batch, head, T, T]``,
float32): keep ``max_length * batch_size`` moderate (the defaults: 1024 x 4).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch

from ._engine import Engine
from ._stats import bootstrap_ratio
from ._validate import check_choice, check_int, check_probability
from .capture import stream_attention
from .errors import InputError
from .results import DetectionResult, HeadScore
from .scores import token_pairs

__all__ = ["detect_on_text", "tokenize_documents", "length_buckets", "TEXT_METRICS"]

TextOverflow = Literal["truncate", "chunk", "error"]
TEXT_METRICS = ("prefix_matching", "copying", "duplicate_token", "previous_token", "diagonal")


def tokenize_documents(engine: Engine, texts: Any, max_length: int | None = None,
                       overflow: TextOverflow = "truncate") -> list[list[int]]:
    """Each document's token ids (the model's tokenizer, its special tokens), cut or split at
    ``max_length`` (default: the model's positions, at most 1024). Anything ``load_texts`` reads."""
    from .texts import load_texts

    check_choice("overflow", overflow, TextOverflow.__args__)
    tok = engine.tokenizer
    if tok is None:
        raise InputError("scoring text needs the model's tokenizer and this model has none; load the model by name "
                         "or path (load_model), or tokenize the documents yourself and pass lists of token ids")
    docs = load_texts(texts)
    limit = _limit(engine, max_length)
    out, long = [], 0
    for doc in docs:
        ids = list(tok(doc)["input_ids"])
        if len(ids) > limit:
            long += 1
            if overflow == "error":
                raise InputError(f"a document has {len(ids)} tokens, more than max_length={limit}; pass "
                                 "overflow='truncate' or 'chunk', or a larger max_length")
            pieces = [ids[:limit]] if overflow == "truncate" else [ids[i:i + limit] for i in range(0, len(ids), limit)]
            out += [p for p in pieces if len(p) >= 2]
        elif len(ids) >= 2:
            out.append(ids)
    if long and overflow == "truncate":
        warnings.warn(f"{long} document(s) longer than {limit} tokens were cut to their first {limit}; pass "
                      "overflow='chunk' to score every window", stacklevel=3)
    if not out:
        raise InputError("no document has at least 2 tokens")
    return out


def _limit(engine: Engine, max_length: int | None) -> int:
    positions = engine.max_positions
    if max_length is None:
        return min(1024, positions or 1024)
    check_int("max_length", max_length, 2)
    if positions is not None and max_length > positions:
        raise InputError(f"max_length={max_length} exceeds the model's {positions} positions")
    return max_length


class _TextSums:
    """Inside the trace, per layer: per-document sums of each metric ``[batch, head]`` over its scored
    queries. Shipped by value with a remote request (plain tensors, module-level functions)."""

    def __init__(self, tokens: torch.Tensor, valid: torch.Tensor):
        self.valid = valid
        # padding gets ids no real token has, so that it matches nothing
        fill = -1 - torch.arange(tokens.numel(), device=tokens.device).view(tokens.shape)
        self.tokens = torch.where(valid, tokens, fill)

    def __call__(self, layer: int, A: torch.Tensor) -> dict[str, torch.Tensor]:
        return text_sums(A, self.tokens, self.valid)


def text_sums(A: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """``A [batch, head, T, T]`` (padding zeroed), ``tokens [batch, T]`` (padding ids unique and negative),
    ``valid [batch, T]``: ``{metric: per-document sum [batch, head]}`` and ``{metric + "_n": count [batch]}``."""
    b, h, T, _ = A.shape
    out: dict[str, torch.Tensor] = {}
    for name, kind in (("prefix_matching", "match"), ("duplicate_token", "duplicate")):
        bi, qi, ki = (x.to(A.device) for x in token_pairs(tokens, kind))
        per_query = torch.zeros(b * T, h, device=A.device)
        per_query.index_add_(0, bi * T + qi, A[bi, :, qi, ki].float())
        scored = torch.zeros(b * T, dtype=torch.bool, device=A.device)
        scored[bi * T + qi] = True
        out[name] = per_query.view(b, T, h).sum(1)
        out[name + "_n"] = scored.view(b, T).sum(1).float()
        if kind == "match":
            nxt = torch.zeros_like(valid)
            nxt[:, :-1] = valid[:, 1:]
            copy_rows = scored.view(b, T) & nxt  # a next token to compare with
            following = torch.cat([tokens[:, 1:], tokens[:, :1]], 1)
            attended = torch.gather(tokens[:, None, :].expand(b, h, T), 2, A.argmax(-1))
            hits = (attended == following[:, None, :]) & copy_rows[:, None, :]
            out["copying"], out["copying_n"] = hits.float().sum(-1), copy_rows.sum(1).float()
    prev_rows = valid[:, 1:] & valid[:, :-1]
    out["previous_token"] = (A.diagonal(-1, -2, -1).float() * prev_rows[:, None, :]).sum(-1)
    out["previous_token_n"] = prev_rows.sum(1).float()
    out["diagonal"] = (A.diagonal(0, -2, -1).float() * valid[:, None, :]).sum(-1)
    out["diagonal_n"] = valid.sum(1).float()
    return {k: v.cpu() for k, v in out.items()}


def detect_on_text(model: Any, texts: Any, *, threshold: float = 0.1, batch_size: int = 4,
                   max_length: int | None = None, overflow: TextOverflow = "truncate", n_bootstrap: int = 1000,
                   seed: int = 0, remote: Any = False, progress: bool | None = None) -> DetectionResult:
    """Every head's induction scores on natural text (see the module docstring), as a ``DetectionResult``
    (``settings["kind"] == "text"``) whose ``overall_score`` is the prefix-matching score with its
    bootstrap interval over documents; report, JSON, CSV and figures work as for detection.

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
    return _result(engine, per_doc, docs, threshold, n_bootstrap, seed,
                   dict(batch_size=batch_size, max_length=_limit(engine, max_length), overflow=overflow))


def _run_buckets(engine: Engine, docs: list[list[int]], batch_size: int, progress: bool | None) -> dict:
    """Length-sorted padded batches; per layer ``{metric: [docs, head]}`` in the documents' order."""
    rows: dict[int, list] = {}
    layers = None
    for bucket in length_buckets(docs, batch_size, progress):
        batch = engine.batch([docs[i] for i in bucket])
        reducer = _TextSums(batch.tokens, batch.valid())
        sums = stream_attention(engine.model, batch.tokens, reducer, attention_mask=batch.mask,
                                remote=engine.remote or False)
        layers = engine.layers
        for j, i in enumerate(bucket):
            rows[i] = [{k: v[j] for k, v in layer.items()} for layer in sums]
    per_doc = [rows[i] for i in range(len(docs))]
    return {"layers": layers, "docs": per_doc}


def length_buckets(docs: list[list[int]], batch_size: int, progress: bool | None = None) -> Any:
    """Document indices sorted by length, at most ``batch_size`` at a time and at most ``batch_size * 256``
    padded tokens (long documents go in smaller batches: a layer's pattern grows with the square of the
    padded length); with a progress bar where ``progress`` (default: more than two batches)."""
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    buckets: list[list[int]] = []
    for i in order:  # ascending lengths: the newest document is the longest of its batch
        if buckets and len(buckets[-1]) < batch_size and (len(buckets[-1]) + 1) * len(docs[i]) <= batch_size * 256:
            buckets[-1].append(i)
        else:
            buckets.append([i])
    if progress or (progress is None and len(buckets) > 2):
        from tqdm.auto import tqdm

        return tqdm(buckets, desc="documents", unit="batch")
    return buckets


def _result(engine: Engine, per_doc: dict, docs: list[list[int]], threshold: float, n_bootstrap: int, seed: int,
            settings: dict) -> DetectionResult:
    layers, rows = per_doc["layers"], per_doc["docs"]
    nan = float("nan")
    values: dict[str, list] = {}
    for m in TEXT_METRICS:  # [docs, layer, head] sums and [docs] counts
        sums = torch.stack([torch.stack([layer[m] for layer in doc]) for doc in rows])
        counts = torch.stack([doc[0][m + "_n"] for doc in rows])
        mean = sums.sum(0) / counts.sum().clamp_min(1)
        values[m] = [mean, sums, counts]
    low, high = bootstrap_ratio(values["prefix_matching"][1], values["prefix_matching"][2], n_bootstrap, seed)
    scores = []
    for i, layer in sorted(enumerate(layers), key=lambda x: x[1]):
        for h in range(values["prefix_matching"][0].shape[1]):
            get = {m: float(values[m][0][i, h]) for m in TEXT_METRICS}
            scores.append(HeadScore(layer=layer, head=h, prefix_matching=get["prefix_matching"], contrast=nan,
                                    copying=get["copying"], previous_token=get["previous_token"],
                                    duplicate_token=get["duplicate_token"], diagonal=get["diagonal"],
                                    overall_score=get["prefix_matching"], ci_low=float(low[i, h]),
                                    ci_high=float(high[i, h])))
    scored = int(values["prefix_matching"][2].sum())
    if scored == 0:
        raise InputError("no token repeats within any document, so no query can be scored; pass longer documents")
    settings = {"kind": "text", "score": "prefix matching on the natural repeats of the documents (no control)",
                "documents": len(docs), "tokens": sum(len(d) for d in docs), "scored_queries": scored,
                "n_bootstrap": n_bootstrap, "remote": engine.remote is not None, **settings}
    return DetectionResult(tuple(scores), threshold, engine.name, engine.n_layers, engine.n_heads or 0,
                           settings, seed)
