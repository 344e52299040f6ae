"""Edge knockout (Crosbie & Shutova, NAACL Findings 2025, arXiv 2407.07011): chosen *edges* ``(query, key)``
of chosen heads removed before the softmax (their logit set to the dtype's lowest value, the row renormalised
over the keys left), the rest of the head untouched.

The edit has to sit before the softmax: overwriting a module's output or its returned weights afterwards
changes nothing the model computes (goodfire-ai/causalab#53). Each site kind places it where its kernel
takes an additive mask: the attention mask of an HF attention interface (eager or sdpa), ``attn_mask`` of an
``F.scaled_dot_product_attention`` call (its ``is_causal`` turned into the equivalent mask), or the input of
a bare softmax. Kernels that take no per-edge mask (flash attention, flex attention's block masks, helpers
that mask and softmax inside, ``nn.MultiheadAttention``, custom sites) are refused with ``InputError``.

Edges come from the tokens: ``"induction"`` (query ``q`` to every key ``k <= q`` whose previous token
equals ``t[q]``: the token after an earlier copy of the query), ``"previous_token"`` (``q`` to ``q - 1``) or
your ``mask_fn(tokens [batch, seq]) -> bool [batch, q, k]`` (or ``[q, k]``). A query row whose every key at or
before it would be knocked out has no softmax; it is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from ..errors import InputError

__all__ = [
    "check_edges",
    "EdgeKind",
    "EDGE_KINDS",
    "Edges",
    "edge_mask",
    "KnockPlan",
    "knock_interface",
    "knock_sdpa",
    "knock_softmax",
]

EdgeKind = Literal["induction", "previous_token"]
EDGE_KINDS = ("induction", "previous_token")
Edges = EdgeKind | Callable[[torch.Tensor], torch.Tensor]


def check_edges(method: str, edges: Any, estimator: str = "exact") -> None:
    """``edges=`` is knockout's: given with another ablation method it would be ignored, so it is refused;
    knockout is measured, not estimated (the attribution estimator linearises removing whole heads)."""
    if edges is not None and method != "knockout":
        raise InputError(f"edges= chooses the edges method='knockout' removes; method={method!r} removes whole heads")
    if method == "knockout" and estimator != "exact":
        raise InputError(
            f"estimator={estimator!r} estimates removing whole heads; each head's edge knockout is measured with "
            "estimator='exact'"
        )


def edge_mask(
    edges: Edges | None, tokens: torch.Tensor, valid: torch.Tensor | None = None, *, allow_empty: bool = False
) -> torch.Tensor:
    """The edges to knock out, ``bool [batch, q, k]`` (True: removed), for ``tokens`` ``[batch, seq]``
    (``edges=None``: ``"induction"``, every tool's default);
    edges touching padding (``valid`` ``[batch, seq]`` False) are dropped, and an induction edge whose
    copy is padding too. Raises ``InputError`` for an unknown kind, a ``mask_fn`` result of the wrong shape
    or type, edges that select nothing (unless ``allow_empty``: one batch of several), or a query row left
    with no key at or before it."""
    b, n = tokens.shape
    edges = "induction" if edges is None else edges
    if isinstance(edges, str):
        if edges == "induction":
            same = tokens[:, None, :-1] == tokens[:, :, None]  # [b, q, j]: t[j] == t[q]
            if valid is not None:  # a pad is no earlier copy (left padding: the pad id may occur in the text)
                same = same & valid[:, None, :-1].bool()
            mask = torch.zeros(b, n, n, dtype=torch.bool, device=tokens.device)
            mask[:, :, 1:] = same  # key k = j + 1: the token after the copy
        elif edges == "previous_token":
            mask = torch.zeros(b, n, n, dtype=torch.bool, device=tokens.device)
            mask[:, torch.arange(1, n), torch.arange(n - 1)] = True
        else:
            raise InputError(f"unknown edges {edges!r}: use one of {list(EDGE_KINDS)} or a mask_fn(tokens) -> bool")
    elif callable(edges):
        mask = edges(tokens)
        batch_ok = isinstance(mask, torch.Tensor) and (mask.dim() == 2 or (mask.dim() == 3 and mask.shape[0] in (1, b)))
        if not batch_ok or mask.dtype != torch.bool or mask.shape[-2:] != (n, n):
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise InputError(
                f"mask_fn must return a bool tensor [batch, {n}, {n}] or [{n}, {n}] (True: knock out); got {got}"
            )
        mask = mask.expand(b, n, n).to(tokens.device)
    else:
        raise InputError(f"edges must be one of {list(EDGE_KINDS)} or a mask_fn(tokens) -> bool, got {edges!r:.60}")
    causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()
    keys = causal.expand(b, n, n) if valid is None else causal & valid[:, None, :].bool()
    mask = mask & keys
    if valid is not None:
        mask = mask & valid[:, :, None].bool()
    _check(mask, keys, valid, edges, allow_empty)
    return mask


def _check(mask: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor | None, edges: Any, allow_empty: bool) -> None:
    name = edges if isinstance(edges, str) else "mask_fn"
    if not allow_empty and not bool(mask.any()):
        why = {"induction": "no query has an earlier copy of itself", "previous_token": "one token per sequence"}
        raise InputError(
            f"the {name} edges select nothing on these tokens ({why.get(name, 'the mask_fn returned no True edge')})"
            ": use sequences with repeats, or other edges"
        )
    rows = keys.any(-1) & ~(keys & ~mask).any(-1)  # [b, q]: keys there, every one knocked out
    if valid is not None:
        rows = rows & valid.bool()
    if bool(rows.any()):
        b, q = (int(i) for i in rows.nonzero()[0])
        raise InputError(
            f"the {name} edges knock out every key of query {q} in sequence {b} ({int(rows.sum())} such rows): a "
            "softmax over no key is undefined; leave at least one key per query row (e.g. BOS first)"
        )


class KnockPlan:
    """Inside a trace: which heads of which batch copies lose ``edges`` ``[batch, q, k]``. ``blocks``: ``(copy,
    head)`` pairs; the batch run is ``copies`` copies of the tokens."""

    def __init__(self, blocks: list[tuple[int, int]], edges: torch.Tensor, copies: int):
        self.blocks, self.edges, self.copies = blocks, edges, copies

    def build(self, n_heads: int, device: Any) -> torch.Tensor:
        """``bool [copies * batch, n_heads, q, k]``."""
        b, n, _ = self.edges.shape
        knock = torch.zeros(self.copies * b, n_heads, n, n, dtype=torch.bool, device=device)
        edges = self.edges.to(device)
        for copy, head in self.blocks:
            if head >= n_heads:
                raise InputError(f"head {head} is out of range: this attention call has {n_heads} query heads")
            knock[copy * b : (copy + 1) * b, head] = edges
        return knock


# -- per kernel: the new inputs -------------------------------------------------------------------------------


def _lowest(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min


def _knocked(base: torch.Tensor, knock: torch.Tensor) -> torch.Tensor:
    """``base`` (an additive mask broadcastable to ``[batch, head, q, K]``, K >= the tokens) with ``knock``
    ``[batch, head, q, k]`` set to the lowest value; keys beyond the tokens are left as they are."""
    q, k = knock.shape[-2:]
    if base.shape[-2] not in (1, q) or base.shape[-1] < k:
        raise InputError(
            f"edge knockout: the attention call sees {base.shape[-2]} queries x {base.shape[-1]} keys, the tokens are "
            f"{q}: knockout needs the tokens to be the keys (no cache, memory or prefix)"
        )
    if base.shape[-1] > k:
        knock = torch.nn.functional.pad(knock, (0, base.shape[-1] - k))
    low = _lowest(base.dtype)
    new = torch.where(knock, torch.tensor(low, dtype=base.dtype, device=base.device), base)
    emptied = (base > low).any(-1) & ~(new > low).any(-1)  # rows with keys before the edit, none after
    if bool(emptied.any()):
        raise InputError(
            f"edge knockout would leave {int(emptied.sum())} query rows with no key the model lets them see (its "
            "mask or sliding window already hides the others): a softmax over no key is undefined; knock out "
            "fewer edges"
        )
    return new


def _additive(mask: Any, dtype: torch.dtype, q: int, k: int, causal: bool, device: Any) -> torch.Tensor:
    """The mask a kernel applies, as an additive float mask ``[b|1, h|1, q, k]``."""
    low = _lowest(dtype)
    if mask is None:
        base = torch.zeros(1, 1, q, k, dtype=dtype, device=device)
        if causal and q > 1:
            future = ~torch.ones(q, k, dtype=torch.bool, device=device).tril(k - q)
            base = base.masked_fill(future, low)
        return base
    if mask.dtype == torch.bool:  # True: attend
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, low)
    return mask.to(dtype)


def knock_interface(args: tuple, kwargs: dict, module: Any, plan: KnockPlan) -> tuple[tuple, dict]:
    """HF ``attention_interface(module, query, key, value, attention_mask, ...)``, eager or sdpa: the knocked
    edges added to ``attention_mask`` (``None`` becomes the causal mask the kernel would have used)."""
    attention, query, key = args[0], args[1], args[2]
    impl = str(getattr(getattr(attention, "config", None), "_attn_implementation", None) or "")
    in_args = len(args) > 4
    mask = args[4] if in_args else kwargs.get("attention_mask")
    if (impl and impl not in ("eager", "sdpa")) or (
        mask is not None and not (torch.is_tensor(mask) and mask.dim() == 4)
    ):
        raise InputError(
            f"edge knockout needs a per-edge attention mask, which the {impl or type(mask).__name__} kernel does not "
            "take; load the model with attn_implementation='eager' or 'sdpa'"
        )
    causal = kwargs.get("is_causal")
    causal = bool(getattr(attention, "is_causal", True)) if causal is None else bool(causal)
    base = _additive(mask, query.dtype, query.shape[2], key.shape[2], causal, query.device)
    new = _knocked(base, plan.build(query.shape[1], query.device))
    if in_args:
        return (*args[:4], new, *args[5:]), kwargs
    return args, {**kwargs, "attention_mask": new}


def knock_sdpa(args: tuple, kwargs: dict, module: Any, plan: KnockPlan) -> tuple[tuple, dict]:
    """``F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)``: the knocked edges
    added to ``attn_mask``, ``is_causal`` turned into the equivalent mask."""
    query, key = args[0], args[1]
    args, kwargs = list(args), dict(kwargs)
    mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
    causal = bool(args[5] if len(args) > 5 else kwargs.get("is_causal", False))
    base = _additive(mask, query.dtype, query.shape[2], key.shape[2], causal, query.device)
    new = _knocked(base, plan.build(query.shape[1], query.device))
    for index, name, value in ((3, "attn_mask", new), (5, "is_causal", False)):
        if len(args) > index:
            args[index] = value
        else:
            kwargs[name] = value
    return tuple(args), kwargs


def knock_softmax(args: tuple, kwargs: dict, module: Any, plan: KnockPlan) -> tuple[tuple, dict]:
    """A bare softmax site (``[batch, head, q, k]`` or ``[batch * head, q, k]``). Where the operation takes
    the logits (a softmax over the last dim), the knocked edges are set to the lowest value; where it takes
    the softmax's result (a cast or dropout after it: nonnegative rows summing to 1), the knocked weights
    are set to 0 and their rows renormalised, which is the same pattern."""
    x = args[0] if args else next(iter(kwargs.values()))
    heads = x.shape[1] if x.dim() == 4 else x.shape[0] // (plan.copies * plan.edges.shape[0])
    knock = plan.build(heads, x.device).reshape(x.shape[:-2] + plan.edges.shape[-2:])
    tolerance = 1e-3 if torch.finfo(x.dtype).bits > 16 else 5e-2  # half-precision rows sum to 1 less closely
    if bool((x >= 0).all()) and bool(((x.float().sum(-1) - 1).abs() < tolerance).all()):
        knock = torch.nn.functional.pad(knock, (0, x.shape[-1] - knock.shape[-1]))
        kept = x.masked_fill(knock, 0)
        total = kept.sum(-1, keepdim=True)
        touched = knock.any(-1, keepdim=True)
        if bool((touched & (total <= 0)).any()):
            raise InputError(
                "edge knockout: the weights left in a knocked row underflow to 0 after this site's softmax; load "
                "the model with attn_implementation='eager' or 'sdpa' so that the edit goes before the softmax"
            )
        new = torch.where(touched, kept / total.clamp_min(torch.finfo(x.dtype).tiny), x)
    else:
        dim = args[1] if len(args) > 1 else kwargs.get("dim", -1)
        if dim not in (-1, x.dim() - 1):
            raise InputError(f"edge knockout: this softmax runs over dim {dim}, not the keys (the last dim)")
        new = _knocked(x, knock)
    if args:
        return (new, *args[1:]), kwargs
    first = next(iter(kwargs))
    return args, {**kwargs, first: new}
