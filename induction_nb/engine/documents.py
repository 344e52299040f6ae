"""Documents as token ids for the model: read (anything ``load_texts`` reads), tokenized with the model's
tokenizer, cut or split at a length, and grouped into length buckets for padded batches.

Documents already tokenized (lists of token ids) are taken as they are, with or without a tokenizer.
A document longer than ``max_length`` goes by the package's one overflow rule (``engine.batch.fit_length``):
``"truncate"`` (keep the first ``max_length`` tokens, with a warning), ``"chunk"`` (windows of
``max_length``, each counted as a document of its own; only the first keeps the tokenizer's BOS) or
``"error"``. Documents of fewer than 2 tokens are dropped (no attention).
"""

from __future__ import annotations

from typing import Any

import torch

from .._validate import check_choice, check_int
from ..errors import InputError, warn_user
from ..probes.texts import load_texts
from .batch import OVERFLOWS, Overflow, fit_length
from .engine import Engine

__all__ = ["tokenize_documents", "token_id_documents", "document_limit", "length_buckets"]


def tokenize_documents(
    engine: Engine, texts: Any, max_length: int | None = None, overflow: Overflow = "truncate"
) -> list[list[int]]:
    """Each document's token ids (the model's tokenizer, its special tokens), cut or split at
    ``max_length`` (default: the model's positions, at most 1024). Anything ``load_texts`` reads."""
    check_choice("overflow", overflow, OVERFLOWS)
    ids = token_id_documents(texts, engine.vocab_size)
    tok = engine.tokenizer
    if ids is None and tok is None:
        raise InputError(
            "scoring text needs the model's tokenizer and this model has none; load the model by name "
            "or path (load_model), or tokenize the documents yourself and pass lists of token ids"
        )
    limit = document_limit(engine, max_length)
    if ids is None:
        ids = [tok(doc)["input_ids"] for doc in load_texts(texts)]
    out, long = fit_length(ids, limit, overflow, "a document")
    out = [ids for ids in out if len(ids) >= 2]  # a single token (a chunk's tail) has no attention pattern
    if long and overflow == "truncate":
        warn_user(
            f"{long} document(s) longer than {limit} tokens were cut to their first {limit}; pass "
            "overflow='chunk' to score every window"
        )
    if not out:
        raise InputError("no document has at least 2 tokens")
    return out


def token_id_documents(texts: Any, vocab_size: int | None) -> list[list[int]] | None:
    """Documents given as token ids (a sequence of int sequences or 1-D integer tensors), checked against
    the vocabulary; ``None`` where ``texts`` is text for the tokenizer. Raises ``InputError`` for ids
    outside ``[0, vocab_size)`` or mixed ids and text."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)) or not texts:
        return None
    is_ids = [_ids(doc) for doc in texts]
    if not any(d is not None for d in is_ids):
        return None
    if any(d is None for d in is_ids):
        raise InputError("documents mix token ids and text; pass all of them as lists of token ids, or all as text")
    for i, doc in enumerate(is_ids):
        bad = [t for t in doc if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            raise InputError(f"document {i} holds token ids outside the vocabulary [0, {vocab_size}): {bad[:5]}")
    return is_ids


def _ids(doc: Any) -> list[int] | None:
    if isinstance(doc, torch.Tensor):
        return doc.tolist() if doc.dim() == 1 and not doc.is_floating_point() and not doc.is_complex() else None
    if isinstance(doc, (list, tuple)) and doc and all(isinstance(t, int) and not isinstance(t, bool) for t in doc):
        return list(doc)
    return None


def document_limit(engine: Engine, max_length: int | None) -> int:
    """The length documents are cut or split at: ``max_length`` (checked against the model's positions), or
    the model's positions, at most 1024."""
    positions = engine.max_positions
    if max_length is None:
        return min(1024, positions or 1024)
    check_int("max_length", max_length, 2)
    if positions is not None and max_length > positions:
        raise InputError(f"max_length={max_length} exceeds the model's {positions} positions")
    return max_length


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
