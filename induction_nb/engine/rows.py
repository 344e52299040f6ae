"""One layer's attention pattern ``[batch, head, T, T]``, row block by row block.

At 8k tokens a layer's full float32 pattern is ``T^2`` floats per head (2.4 GB for 9 heads and two
sequences), more than the whole forward pass holds. ``QKRows`` keeps the query, key and mask that the
kernel received and computes any block of query rows exactly (each row's softmax is over all of its keys,
so a block needs nothing from the others): at most ``[batch, head, block, T]`` exists at a time. Under a
causal mask only the keys up to the block's last query are multiplied, within a sliding window only the
window. ``DenseRows`` serves the same interface from a pattern that exists already (eager weights).

``blocks()`` yields blocks within a memory budget; ``checked()`` wraps them in the self-check (rows plus
sink sum to 1, nothing above the diagonal of a causal layer), one block at a time.
Limits: the model kernel's own row logsumexp is not reused: the copying metric needs each row's arg-max,
which needs every score of the row anyway.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..errors import CaptureCheckError
from .attention_math import attention_from_qk, repeat_kv_heads

__all__ = ["Rows", "QKRows", "DenseRows", "BLOCK_BYTES"]

BLOCK_BYTES = 32 << 20  # one float32 block [batch, head, rows, T] at most this large


class Rows:
    """The interface: ``shape`` ``(batch, head, T, T)``, ``causal``, and ``columns(start, stop)`` ->
    ``(pattern [batch, head, stop - start, width], sink share [batch, head, stop - start] or None, lo)``:
    query rows ``start:stop`` over keys ``lo:lo + width``, every other key of these rows being 0 (masked)."""

    shape: tuple[int, int, int, int]
    causal: bool

    def columns(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        raise NotImplementedError

    def block(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows ``start:stop`` over every key ``[batch, head, stop - start, T]``."""
        pattern, sink, lo = self.columns(start, stop)
        if pattern.shape[-1] != self.shape[3]:
            full = pattern.new_zeros(*pattern.shape[:-1], self.shape[3])
            full[..., lo : lo + pattern.shape[-1]] = pattern
            pattern = full
        return pattern, sink

    def full(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.block(0, self.shape[2])

    def blocks(self, budget: int | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """``(start, rows [batch, head, rows, T], sink)`` covering every query row, each block within
        ``budget`` bytes (default ``BLOCK_BYTES``)."""
        for start, pattern, sink, lo in self.column_blocks(budget):
            if pattern.shape[-1] != self.shape[3]:
                full = pattern.new_zeros(*pattern.shape[:-1], self.shape[3])
                full[..., lo : lo + pattern.shape[-1]] = pattern
                pattern = full
            yield start, pattern, sink

    def column_blocks(self, budget: int | None = None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None, int]]:
        """``(start, rows over keys lo:lo + width, sink, lo)``: ``blocks`` without the masked keys, so
        that a causal block of rows costs only the keys its queries can see."""
        budget = BLOCK_BYTES if budget is None else budget
        b, h, n_q, n_k = self.shape
        step = max(1, budget // max(1, 4 * b * h * n_k))
        for start in range(0, n_q, step):
            pattern, sink, lo = self.columns(start, min(n_q, start + step))
            yield start, pattern, sink, lo

    def checked(self, layer: int, tolerance: float) -> CheckedRows:
        return CheckedRows(self, layer, tolerance)


class DenseRows(Rows):
    """Rows of a pattern that exists already: blocks are views."""

    def __init__(self, pattern: torch.Tensor, causal: bool, sink: torch.Tensor | None = None):
        self.pattern, self.causal, self.sink = pattern, causal, sink
        self.shape = tuple(pattern.shape)

    def columns(self, start: int, stop: int):
        return self.pattern[..., start:stop, :], None if self.sink is None else self.sink[..., start:stop], 0

    def full(self):
        return self.pattern, self.sink


class QKRows(Rows):
    """Rows recomputed from a kernel's inputs (see ``attention_from_qk`` for the semantics of each
    argument); grouped key heads are repeated once, up front."""

    def __init__(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        *,
        causal: bool,
        mask: torch.Tensor | None = None,
        scaling: float | None = None,
        is_causal: bool = False,
        softcap: float | None = None,
        sliding_window: int | None = None,
        position_bias: torch.Tensor | None = None,
        sinks: torch.Tensor | None = None,
    ):
        # contiguous once: kernels receive [b, T, h, d].transpose(1, 2), which every block would copy again
        self.query = query.contiguous()
        self.key = repeat_kv_heads(key, query.shape[1]).contiguous()
        self.causal, self.mask, self.scaling, self.is_causal = causal, mask, scaling, is_causal
        self.softcap, self.window, self.bias, self.sinks = softcap, sliding_window, position_bias, sinks
        self.shape = (query.shape[0], query.shape[1], query.shape[2], key.shape[2])

    def columns(self, start: int, stop: int):
        b, h, n_q, n_k = self.shape
        lo, hi = 0, n_k
        if self.is_causal and self.mask is None and n_q == n_k:  # keys after the last query are masked anyway
            hi = stop
            if self.window is not None:
                lo = max(0, start - int(self.window) + 1)
        sinks = self.sinks
        if sinks is not None and sinks.dim() == 4:  # per-query sink logits [batch, head, q, 1]
            sinks = sinks[..., start:stop, :]
        pattern, sink = attention_from_qk(
            self.query[:, :, start:stop],
            self.key[:, :, lo:hi],
            mask=_rows_of(self.mask, start, stop, lo, hi),
            scaling=self.scaling,
            is_causal=self.is_causal and self.mask is None and n_q > 1,
            softcap=self.softcap,
            sliding_window=self.window,
            position_bias=_rows_of(self.bias, start, stop, lo, hi),
            sinks=sinks,
            return_sink=True,
            q_offset=start - lo,
        )
        return pattern, sink, lo


def _rows_of(x: torch.Tensor | None, start: int, stop: int, lo: int, hi: int) -> torch.Tensor | None:
    """Query rows ``start:stop`` and key columns ``lo:hi`` of a mask or bias (broadcast dims kept)."""
    if x is None:
        return None
    if x.dim() >= 2 and x.shape[-2] > 1:
        x = x[..., start:stop, :]
    return x[..., lo:hi] if x.shape[-1] > 1 else x


class CheckedRows(Rows):
    """The self-check, block by block, as a reducer consumes the rows: finite, rows (plus sink) summing
    to 1 within ``tolerance`` (or to 1 where the kernel renormalises over the tokens), and nothing above
    the diagonal of a causal layer. Raises ``CaptureCheckError`` naming the layer."""

    def __init__(self, rows: Rows, layer: int, tolerance: float):
        self.rows, self.layer, self.tolerance = rows, layer, tolerance
        self.shape, self.causal = rows.shape, rows.causal

    def columns(self, start: int, stop: int):
        pattern, sink, lo = self.rows.columns(start, stop)
        check_block(pattern, sink, start, self.causal, self.layer, self.tolerance, lo)
        return pattern, sink, lo


def check_block(
    pattern: torch.Tensor,
    sink: torch.Tensor | None,
    start: int,
    causal: bool,
    layer: int,
    tolerance: float,
    lo: int = 0,
) -> None:
    """One block of rows ``start:`` over keys ``lo:``: finite, rows (plus sink) summing to 1, and, for a
    causal layer, nothing on a key after its query (only the columns that can hold one are read)."""
    rows = pattern.sum(-1)
    if not torch.isfinite(rows).all():
        raise CaptureCheckError(f"layer {layer}: the attention pattern contains NaN or inf")
    off = (rows - 1).abs()
    if sink is not None:
        off = torch.minimum(off, (rows + sink - 1).abs())
    err = float(off.max()) if off.numel() else 0.0
    if err > tolerance:
        raise CaptureCheckError(
            f"layer {layer}: attention rows do not sum to 1{' (with the sink)' if sink is not None else ''} "
            f"(worst row off by {err:.2e}, tolerance {tolerance:.0e}); the site may not be a softmax attention "
            "pattern (a wrong custom reader, an attention variant the reader does not know)"
        )
    # row i is query start + i; column c is key lo + c: key after query where c >= start - lo + 1 + i
    first = max(0, start - lo + 1)
    if causal and first < pattern.shape[-1]:
        ahead = torch.triu(pattern[..., first:], diagonal=start - lo + 1 - first)
        leak = float(ahead.amax()) if ahead.numel() else 0.0  # weights are >= 0 (NaN was caught above)
        if leak > 1e-6:
            raise CaptureCheckError(
                f"layer {layer}: a causal layer attends to future positions (weight {leak:.2e} above the diagonal)"
            )


class LseScores:
    """One layer's attention from the query, the key and the row logsumexp the model's own flash kernel
    returned (``A[q, k] = exp(s[q, k] - lse[q])``, ``s = q . k * scaling``): any entry costs one dot product,
    a row's arg-max one row of scores. Nothing of size ``T x T`` is ever built. ``query``, ``key``
    ``[batch, head, T, d]`` (grouped key heads already repeated), ``lse`` ``[batch, head, T]``, causal."""

    causal = True

    def __init__(self, query: torch.Tensor, key: torch.Tensor, lse: torch.Tensor, scaling: float):
        self.query, self.key, self.lse, self.scaling = query.float(), key.float(), lse.float(), float(scaling)
        b, h, n, _ = query.shape
        self.shape = (b, h, n, n)

    def entries(self, b: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``A[b, :, q, k]`` for index vectors ``b, q, k`` (``k <= q``): ``[nnz, head]``."""
        s = (self.query[b, :, q] * self.key[b, :, k]).sum(-1) * self.scaling
        return torch.exp(s - self.lse[b, :, q])

    def argmax(self, batch: slice, start: int, stop: int) -> torch.Tensor:
        """The arg-max key of query rows ``start:stop`` of sequences ``batch``: ``[b, head, rows]`` (the
        largest weight is the largest score; keys after the query are excluded)."""
        s = torch.matmul(self.query[batch, :, start:stop], self.key[batch, :, :stop].transpose(-1, -2))
        s.mul_(self.scaling)
        if stop > start + 1:
            rows = torch.arange(start, stop, device=s.device)[:, None]
            keys = torch.arange(start + 1, stop, device=s.device)[None, :]
            s[..., start + 1 :].masked_fill_(keys > rows, float("-inf"))
        return s.argmax(-1)

    def check(self, layer: int, tolerance: float, rows: int = 4) -> None:
        """Spot check: for a few query rows, the logsumexp of the recomputed scores equals the kernel's
        (our ``q . k * scaling`` is the kernel's), and every lse is finite."""
        if not torch.isfinite(self.lse).all():
            raise CaptureCheckError(f"layer {layer}: the kernel's row logsumexp holds NaN or inf")
        n = self.shape[2]
        for q in sorted({n - 1, n // 2, max(1, n // 8)}):
            s = torch.matmul(self.query[:, :, q : q + 1], self.key[:, :, : q + 1].transpose(-1, -2)) * self.scaling
            err = float((torch.logsumexp(s, -1)[..., 0] - self.lse[:, :, q]).abs().max())
            if err > tolerance * 10:
                raise CaptureCheckError(
                    f"layer {layer}: the kernel's normalisation does not match the recomputed scores (row {q} off "
                    f"by {err:.2e} in logsumexp): the captured query and key are not what the kernel used"
                )


def flash_with_lse(args: tuple, kwargs: dict, n_tokens: int):
    """For HF's sdpa attention call ``(module, query, key, value, mask, ...)`` on the CPU with no mask (causal
    by flag), no dropout, bias, soft-cap or sink: ``(output as the interface returns it, LseScores)`` from
    the flash kernel that ``F.scaled_dot_product_attention`` runs for such a call, which also returns the
    row logsumexp. ``None`` where any condition fails (the caller reads the pattern row by row instead)."""
    if len(args) < 4:
        return None
    module, query, key, value = args[0], args[1], args[2], args[3]
    mask = args[4] if len(args) > 4 else kwargs.get("attention_mask")
    blocked = ("softcap", "s_aux", "sinks", "position_bias", "sliding_window")
    if mask is not None or any(kwargs.get(name) is not None for name in blocked) or kwargs.get("dropout", 0.0):
        return None
    if not all(isinstance(x, torch.Tensor) and x.dim() == 4 for x in (query, key, value)):
        return None
    if query.device.type != "cpu" or query.shape[2] != n_tokens or key.shape[2] != n_tokens or n_tokens < 2:
        return None
    causal = kwargs.get("is_causal")
    if not (getattr(module, "is_causal", True) if causal is None else bool(causal)):
        return None
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or query.shape[1] % key.shape[1]:
        return None
    key, value = repeat_kv_heads(key, query.shape[1]), repeat_kv_heads(value, query.shape[1])
    scaling = kwargs.get("scaling")
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    out, lse = op(query, key, value, 0.0, True, attn_mask=None, scale=scaling)[:2]
    return out.transpose(1, 2).contiguous(), LseScores(query, key, lse, scaling)
