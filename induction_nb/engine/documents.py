"""Documents as token ids for the model: read (anything ``load_texts`` reads), tokenized with the model's
tokenizer, cut or split at a length, and grouped into length buckets for padded batches.

Documents already tokenized are taken as they are, with or without a tokenizer: a list (or tuple) of
documents, each a sequence of integer ids (Python or NumPy integers) or a 1-D integer tensor or array, or
one 2-D integer tensor or array (a row per document). Floating-point or boolean values are refused.
A document longer than ``max_length`` goes by the package's one overflow rule (``engine.batch.fit_length``):
``"truncate"`` (keep the first ``max_length`` tokens, with a warning), ``"chunk"`` (windows of
``max_length``, each counted as a document of its own; only the first keeps the tokenizer's BOS) or
``"error"``. Documents of fewer than 2 tokens are dropped (no attention).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from .._validate import check_choice, check_int, is_int
from ..errors import InputError, warn_user
from ..probes.texts import load_texts
from .batch import OVERFLOWS, Overflow, fit_length, takes_attention_mask
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
    """Documents given as token ids (see the module docstring), checked against the vocabulary; ``None``
    where ``texts`` is text for the tokenizer. An empty document comes back empty (dropped later, as
    every document of fewer than 2 tokens). Raises ``InputError`` for ids outside ``[0, vocab_size)``,
    non-integer values, one flat document, or mixed ids and text."""
    if _is_array(texts) and _numeric(texts):
        if texts.ndim != 2:
            raise InputError(
                f"documents as one array must be 2-D (a row of token ids per document), got {texts.ndim}-D; "
                "a single document goes as [ids]"
            )
        texts = list(texts)
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)) or not texts:
        return None
    if all(is_int(t) for t in texts):
        raise InputError(
            "documents are a list of documents, and this is one flat list of token ids; pass [ids] for a "
            "single document"
        )
    is_ids = [_ids(i, doc) for i, doc in enumerate(texts)]
    if all(d is None or not d for d in is_ids) and any(d is None for d in is_ids):
        return None
    if any(d is None for d in is_ids):
        raise InputError("documents mix token ids and text; pass all of them as lists of token ids, or all as text")
    for i, doc in enumerate(is_ids):
        bad = [t for t in doc if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            raise InputError(f"document {i} holds token ids outside the vocabulary [0, {vocab_size}): {bad[:5]}")
    return is_ids


def _is_array(x: Any) -> bool:
    """A tensor or an array (NumPy's, or anything with ``ndim``, ``dtype`` and ``tolist``)."""
    return isinstance(x, torch.Tensor) or all(hasattr(x, a) for a in ("ndim", "dtype", "tolist"))


def _ids(i: int, doc: Any) -> list[int] | None:
    """Document ``i`` as token ids (``[]`` where empty), ``None`` where it is not ids (text)."""
    if _is_array(doc) and _numeric(doc):
        if doc.ndim != 1:
            raise InputError(f"document {i} is a {doc.ndim}-D array; each document is a 1-D sequence of token ids")
        values = doc.tolist()
        if _integer_dtype(doc) or not values:
            return [int(t) for t in values]
        raise InputError(_not_integer(i, f"dtype {doc.dtype}"))
    if not isinstance(doc, (list, tuple)):
        return None
    if all(is_int(t) for t in doc):
        return [int(t) for t in doc]
    if all(isinstance(t, numbers.Number) or _is_array(t) and _numeric(t) and t.ndim == 0 for t in doc):
        kinds = sorted({type(t).__name__ for t in doc if not is_int(t)})
        raise InputError(_not_integer(i, ", ".join(kinds)))
    return None


def _numeric(array: Any) -> bool:
    """Numbers (of any kind), not strings or objects: a tensor, or an array of integers, floats or bools."""
    return isinstance(array, torch.Tensor) or getattr(array.dtype, "kind", "") in ("i", "u", "f", "c", "b")


def _integer_dtype(array: Any) -> bool:
    if isinstance(array, torch.Tensor):
        return not (array.is_floating_point() or array.is_complex() or array.dtype == torch.bool)
    return getattr(array.dtype, "kind", "") in ("i", "u")


def _not_integer(i: int, what: str) -> str:
    return (
        f"document {i} holds {what} values, not token ids (integers); pass integer ids (tensor.long(), "
        "array.astype(int)) if these are ids, or text for the tokenizer"
    )


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


def length_buckets(engine: Engine, docs: list[list[int]], batch_size: int, progress: bool | None = None) -> Any:
    """Document indices sorted by length, at most ``batch_size`` at a time and at most ``batch_size * 256``
    padded tokens (long documents go in smaller batches: a layer's pattern grows with the square of the
    padded length); with a progress bar where ``progress`` (default: more than two batches). For a model
    whose forward takes no ``attention_mask`` (``batch.takes_attention_mask``), only documents of one exact
    length share a batch, so that none is padded."""
    same_length = not takes_attention_mask(engine.module)
    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    buckets: list[list[int]] = []
    for i in order:  # ascending lengths: the newest document is the longest of its batch
        last = buckets[-1] if buckets else []
        fits = bool(last) and len(last) < batch_size and (len(last) + 1) * len(docs[i]) <= batch_size * 256
        if fits and (not same_length or len(docs[last[0]]) == len(docs[i])):
            buckets[-1].append(i)
        else:
            buckets.append([i])
    if progress or (progress is None and len(buckets) > 2):
        from tqdm.auto import tqdm

        return tqdm(buckets, desc="documents", unit="batch")
    return buckets
