"""Padded batches: token ids ``[batch, seq]`` and which of them are real, from a tensor (with an optional
``attention_mask``), a ragged list of id lists, or strings through the model's tokenizer.

Padding is contiguous at one end of each row (left or right, as the tokenizer pads); a mask with holes
inside a row is refused (no model we know of is trained on it, and position ids would be ambiguous).
``forward_kwargs`` is what the model's forward gets: the mask and, with left padding, position ids that
count the real tokens only (0 at each row's first real token), so that RoPE, learned absolute positions
and ALiBi see each sequence as they would alone. A batch without padding has ``mask=None``: every fast
path stays open.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from ._validate import check_attention_mask, check_tokens
from .errors import InputError

__all__ = ["Batch", "make_batch", "Overflow"]

Overflow = Literal["error", "truncate"]


@dataclass(frozen=True)
class Batch:
    """``tokens`` ``[batch, seq]`` long; ``mask`` ``[batch, seq]`` bool (``True`` = a real token) or ``None``
    where every position is real."""

    tokens: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def lengths(self) -> list[int]:
        n = self.tokens.shape[1]
        return [n] * self.tokens.shape[0] if self.mask is None else self.mask.sum(1).tolist()

    @property
    def left_padded(self) -> bool:
        return self.mask is not None and bool((~self.mask[:, 0]).any())

    def valid(self) -> torch.Tensor:
        """``[batch, seq]`` bool, all ``True`` without padding."""
        return torch.ones_like(self.tokens, dtype=torch.bool) if self.mask is None else self.mask

    def forward_kwargs(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The keyword arguments of the model's forward for this batch (empty without padding)."""
        if self.mask is None:
            return {}
        params = _forward_params(module)
        if "attention_mask" not in params:
            raise InputError(f"{type(module).__name__}.forward takes no attention_mask, so a padded batch cannot be "
                             "run on it; pass sequences of one length (one batch per length)")
        kwargs = {"attention_mask": self.mask.long()}
        if self.left_padded and "position_ids" in params:  # positions count real tokens only
            offset = _position_offset(module)  # RoBERTa-style positions start after the padding index
            kwargs["position_ids"] = (self.mask.long().cumsum(1) - 1).clamp_min(0) + offset
        return kwargs


def _position_offset(module: torch.nn.Module) -> int:
    for name, sub in module.named_modules():
        if name.endswith("position_embeddings") and isinstance(sub, torch.nn.Embedding) and sub.padding_idx is not None:
            return sub.padding_idx + 1
    return 0


def _forward_params(module: torch.nn.Module) -> set[str]:
    try:
        return set(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return set()


def make_batch(tokens: Any, attention_mask: Any, module: torch.nn.Module, tokenizer: Any = None, *,
               max_length: int | None = None, overflow: Overflow = "error") -> Batch:
    """A checked ``Batch`` from ``tokens`` (a tensor or nested list of ids, a ragged list of id lists, a
    string or a list of strings) and an optional ``attention_mask`` ``[batch, seq]`` (1 = real token).
    Strings go through ``tokenizer`` (its padding side, its special tokens); a ragged id list is padded on
    the right. ``overflow``: a sequence longer than ``max_length`` (default: the model's positions) is an
    error, or is cut to its first ``max_length`` tokens with a warning (``"truncate"``)."""
    if isinstance(tokens, str) or (_is_list(tokens) and tokens and all(isinstance(t, str) for t in tokens)):
        tokens, attention_mask = _encode(tokens, tokenizer, attention_mask)
    elif _is_list(tokens) and tokens and all(_is_list(t) for t in tokens) and len({len(t) for t in tokens}) > 1:
        if attention_mask is not None:
            raise InputError("attention_mask was given with a ragged list of sequences; pass one or the other")
        tokens, attention_mask = _pad(tokens)
    elif _is_list(tokens) and tokens and any(isinstance(t, str) for t in tokens):
        raise InputError("tokens mixes strings with other items; pass a list of strings or a list of token id lists")
    tokens, attention_mask = _limit(tokens, attention_mask, module, max_length, overflow)
    if attention_mask is not None:  # padding ids (-100, an unresized [PAD]) are never embedded for real: 0
        t, m = torch.as_tensor(tokens), torch.as_tensor(attention_mask)
        if t.shape == m.shape and not t.is_floating_point():
            tokens = torch.where(m.bool(), t, torch.zeros((), dtype=t.dtype))
    ids = check_tokens(tokens, module)
    mask = check_attention_mask(attention_mask, ids)
    return Batch(ids, mask)


def _is_list(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def _encode(texts: Any, tokenizer: Any, attention_mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if tokenizer is None:
        raise InputError("strings need the model's tokenizer, and this model has none; tokenize them yourself and "
                         "pass token ids (with attention_mask for a padded batch), or load the model by name")
    if attention_mask is not None:
        raise InputError("attention_mask was given with strings; the tokenizer makes the mask, pass no mask")
    texts = [texts] if isinstance(texts, str) else list(texts)
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise InputError(f"text {empty[0]} is empty{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}; "
                         "drop empty strings before scoring")
    rows = [list(ids) for ids in tokenizer(texts)["input_ids"]]  # unpadded: the tokenizer is not touched
    return _pad(rows, getattr(tokenizer, "padding_side", "right") == "left")


def _pad(rows: Sequence[Sequence[int]], left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists padded to one length (with id 0: padding ids never reach a metric) on the right or left."""
    n = max(len(r) for r in rows)
    empty = [i for i, r in enumerate(rows) if len(r) == 0]
    if empty:
        raise InputError(f"sequence {empty[0]} is empty; every sequence needs at least 2 tokens")
    tokens = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        where = slice(n - len(r), n) if left else slice(0, len(r))
        tokens[i, where] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, where] = 1
    return tokens, mask


def _limit(tokens: Any, mask: Any, module: torch.nn.Module, max_length: int | None,
           overflow: Overflow) -> tuple[Any, Any]:
    from . import _model_info as info

    if overflow not in ("error", "truncate"):
        raise InputError(f"overflow must be 'error' or 'truncate', got {overflow!r}")
    limit = max_length or info.max_positions(module)
    if limit is None:
        return tokens, mask
    try:
        tokens = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError):
        return tokens, mask  # check_tokens says what is wrong with them
    if tokens.dim() == 0:
        return tokens, mask
    n = tokens.shape[-1]
    if n <= limit:
        return tokens, mask
    if overflow == "error":  # the model's own limit is checked with the tokens (check_tokens)
        if max_length is None:
            return tokens, mask
        raise InputError(f"sequences of {n} tokens exceed max_length={max_length}; pass overflow='truncate' or "
                         "shorter sequences")
    mask_t = torch.ones_like(tokens) if mask is None else torch.as_tensor(mask)
    longest = int(mask_t.reshape(-1, n).sum(1).max())
    warnings.warn(f"sequences of up to {longest} tokens truncated to {limit} (the model's positions or max_length)",
                  stacklevel=4)
    if mask is not None and bool((mask_t.reshape(-1, n)[:, 0] == 0).any()):  # left padded: keep each row's start
        keep = mask_t.reshape(-1, n).cumsum(1) <= limit
        rows = [t[k][:limit] for t, k in zip(tokens.reshape(-1, n), keep & mask_t.reshape(-1, n).bool())]
        width = max(len(r) for r in rows)
        out = torch.zeros(len(rows), width, dtype=torch.long)
        new_mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, width - len(r):], new_mask[i, width - len(r):] = r, 1
        return out, new_mask
    return tokens[..., :limit], (None if mask is None else mask_t[..., :limit])
