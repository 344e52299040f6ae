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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._validate import check_choice
from ..errors import InputError, warn_user
from . import model_info as info

__all__ = ["Batch", "make_batch", "fit_length", "takes_attention_mask", "Overflow", "OVERFLOWS"]

Overflow = Literal["error", "truncate", "chunk"]
OVERFLOWS: tuple[str, ...] = Overflow.__args__


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
            raise InputError(
                f"{type(module).__name__}.forward takes no attention_mask, so a padded batch cannot be "
                "run on it; pass sequences of one length (one call per length)"
            )
        kwargs = {"attention_mask": self.mask.long()}
        if self.left_padded and "position_ids" in params:  # positions count real tokens only
            offset = _position_offset(module)  # RoBERTa-style positions start after the padding index
            kwargs["position_ids"] = (self.mask.long().cumsum(1) - 1).clamp_min(0) + offset
        return kwargs


def takes_attention_mask(module: torch.nn.Module) -> bool:
    """Whether ``module.forward`` takes an ``attention_mask`` (else only batches without padding run)."""
    return "attention_mask" in _forward_params(module)


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


def make_batch(
    tokens: Any,
    attention_mask: Any,
    module: torch.nn.Module,
    tokenizer: Any = None,
    *,
    max_length: int | None = None,
    overflow: Overflow = "error",
) -> Batch:
    """A checked ``Batch`` from ``tokens`` (a tensor or nested list of ids, a ragged list of id lists, a
    string or a list of strings) and an optional ``attention_mask`` ``[batch, seq]`` (1 = real token).
    Strings go through ``tokenizer`` (its padding side, its special tokens); a ragged id list is padded on
    the right. ``overflow``: a sequence longer than ``max_length`` (default: the model's positions) is an
    error, is cut to its first ``max_length`` tokens with a warning (``"truncate"``) or split into windows
    that become rows of their own (``"chunk"``; see ``fit_length``)."""
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
        raise InputError(
            "strings need the model's tokenizer, and this model has none; tokenize them yourself and "
            "pass token ids (with attention_mask for a padded batch), or load the model by name"
        )
    if attention_mask is not None:
        raise InputError("attention_mask was given with strings; the tokenizer makes the mask, pass no mask")
    texts = [texts] if isinstance(texts, str) else list(texts)
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise InputError(
            f"text {empty[0]} is empty{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}; "
            "drop empty strings before scoring"
        )
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


def fit_length(
    rows: Sequence[Sequence[int]], limit: int, overflow: Overflow, what: str = "a sequence"
) -> tuple[list[list[int]], int]:
    """Id lists at most ``limit`` long, by the one overflow rule of the package: ``"error"`` refuses a
    longer one (``InputError`` naming ``what``), ``"truncate"`` keeps its first ``limit`` ids, ``"chunk"``
    splits it into windows of ``limit`` (a row becomes several, in order). Returns the rows and how many
    were longer."""
    check_choice("overflow", overflow, OVERFLOWS)
    out, long = [], 0
    for ids in rows:
        ids = list(ids)
        if len(ids) <= limit:
            out.append(ids)
            continue
        long += 1
        if overflow == "error":
            raise InputError(
                f"{what} has {len(ids)} tokens, more than max_length={limit}; pass overflow='truncate' "
                "or 'chunk', or a larger max_length"
            )
        out += [ids[:limit]] if overflow == "truncate" else [ids[i : i + limit] for i in range(0, len(ids), limit)]
    return out, long


def _limit(
    tokens: Any, mask: Any, module: torch.nn.Module, max_length: int | None, overflow: Overflow
) -> tuple[Any, Any]:
    """Sequences longer than ``max_length`` (the model's positions where not given) fitted by ``overflow``
    (``fit_length``) and padded again on their side; beyond the model's positions without ``max_length``
    the tokens are left for ``check_tokens`` to refuse."""
    check_choice("overflow", overflow, OVERFLOWS)
    limit = max_length or info.max_positions(module)
    if limit is None:
        return tokens, mask
    try:
        tokens = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError):
        return tokens, mask  # check_tokens says what is wrong with them
    if tokens.dim() == 0 or tokens.shape[-1] <= limit or (overflow == "error" and max_length is None):
        return tokens, mask
    n = tokens.shape[-1]
    keep = (torch.ones_like(tokens) if mask is None else torch.as_tensor(mask)).reshape(-1, n).bool()
    rows, _ = fit_length([t[k].tolist() for t, k in zip(tokens.reshape(-1, n), keep)], limit, overflow)
    if overflow == "truncate":
        warn_user(
            f"sequences of up to {int(keep.sum(1).max())} tokens truncated to {limit} (the model's "
            "positions or max_length)"
        )
    return _pad(rows, left=bool((~keep[:, 0]).any()))


def check_tokens(tokens: Any, module: torch.nn.Module) -> torch.Tensor:
    """Validate token ids against ``module`` and return them as ``[batch, seq]`` long on its device."""
    if not isinstance(tokens, torch.Tensor):
        try:
            tokens = torch.as_tensor(tokens)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(
                f"tokens must be a tensor of token ids [batch, seq], got {type(tokens).__name__}"
            ) from None
    if tokens.dtype == torch.bool or tokens.is_floating_point() or tokens.is_complex():
        raise InputError(
            f"tokens must be integer token ids, got dtype {tokens.dtype}; convert with tokens.long() "
            "(embeddings are not accepted: pass the ids the model embeds)"
        )
    if tokens.dim() == 1:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 2:
        raise InputError(f"tokens must have shape [batch, seq] or [seq], got {tuple(tokens.shape)}")
    batch, seq = tokens.shape
    if batch == 0:
        raise InputError("tokens is an empty batch (batch size 0); pass at least one sequence")
    if seq < 2:
        raise InputError(f"sequences must have at least 2 tokens to have an attention pattern, got {seq}")
    device = info.model_device(module)
    if tokens.device != device and device.type != "meta":  # a meta model runs remotely: keep ids local
        if tokens.device.type == "meta":
            raise InputError("tokens are on the meta device and hold no values; create them on a real device")
        tokens = tokens.to(device)
    tokens = tokens.long()
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0:
        raise InputError(f"token ids must be >= 0, found {low}")
    vocab = info.vocab_size(module)
    if vocab is not None and high >= vocab:
        raise InputError(
            f"token id {high} is out of range: the model's vocabulary has {vocab} entries (ids 0..{vocab - 1})"
        )
    limit = info.max_positions(module)
    if limit is not None and seq > limit:
        raise InputError(
            f"sequence length {seq} exceeds the model's {limit} positions; use sequences of at most {limit} tokens"
        )
    return tokens


def check_attention_mask(mask: Any, tokens: torch.Tensor) -> torch.Tensor | None:
    """``mask`` (1 = a real token, 0 = padding; ``[batch, seq]`` like ``tokens``) as a bool tensor on the
    tokens' device, or ``None`` where there is no padding. Padding must be contiguous at one end of a row."""
    if mask is None:
        return None
    try:
        mask = torch.as_tensor(mask)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"attention_mask must be a tensor [batch, seq] of 0/1, got {type(mask).__name__}") from None
    if mask.dim() == 1:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape) != tuple(tokens.shape):
        raise InputError(
            f"attention_mask has shape {tuple(mask.shape)} but tokens have {tuple(tokens.shape)}; "
            "they must match (1 for each real token, 0 for padding)"
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise InputError("attention_mask must hold only 0 (padding) and 1 (a real token)")
    mask = mask.to(tokens.device).bool()
    real = mask.sum(1)
    short = (real < 2).nonzero().flatten().tolist()
    if short:
        what = "is all padding" if int(real[short[0]]) == 0 else "has a single real token"
        raise InputError(
            f"row {short[0]} of attention_mask {what}; every sequence needs at least 2 real tokens (drop that row)"
        )
    runs = (mask[:, 1:] != mask[:, :-1]).sum(1)
    holes = ((runs > 1) | ((runs == 1) & mask[:, 0] & mask[:, -1])).nonzero().flatten().tolist()
    if holes:
        raise InputError(
            f"row {holes[0]} of attention_mask has padding between real tokens; padding must sit at one "
            "end of each row (left or right)"
        )
    return None if bool(mask.all()) else mask
