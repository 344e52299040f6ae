"""Induction-head metrics, vectorised over ``A[batch, ..., q, k]`` (``...`` = any head dims, e.g.
``[layer, head]`` or ``[head]``). Definitions: shared/notes/metrics.md.

* ``match_mask(tokens)``: ``M[b, q, k] = t[k-1] == t[q]`` for ``1 <= k <= q`` (the induction targets:
  the token *after* an earlier copy of the current token; on a repeated block of period ``P`` this is
  the stripe at ``k = q - P + 1``, i.e. offset ``-(P-1)``).
* ``stripe_attention(A, M)``: mean over scored queries (non-empty ``M(q)``) of ``sum_{k in M(q)} A[q, k]``.
  With ``M = match_mask(tokens)`` it is the prefix-matching score; on a control batch with the
  *repeated* batch's mask it is the attention the head puts on those positions without a match.
* ``copying(A, tokens, M)``: fraction of scored queries ``q`` (with ``q + 1 < T``) whose arg-max key
  holds the token that comes next, ``t[k*] == t[q + 1]``.
* ``previous_token``, ``duplicate_token``, ``diagonal``: the companions.
* ``overall_score``: ``clamp(prefix - control, 0, 1) * copying`` (documented in ``combine``).

One spelling per metric: the names of ``METRICS`` (and ``overall_score``) are the keys everywhere, in
``HeadScore``, JSON, DataFrame columns and ``combine``'s result; ``LABELS`` gives each its display name for
reports, tables and figures.

Every function returns one value per sequence and head, ``[batch, ...]`` (float32; NaN where a
sequence has no scored query), and never modifies its inputs. Sums over a mask gather only the masked
entries, so no temporary as large as ``A`` is created: these run inside the trace on every layer.
"""

from __future__ import annotations

import torch

__all__ = [
    "match_mask",
    "duplicate_mask",
    "stripe_attention",
    "copying",
    "previous_token",
    "duplicate_token",
    "diagonal",
    "combine",
    "stripe_profile",
    "all_mass",
    "block_max",
    "pattern_metrics",
    "METRICS",
    "LABELS",
]

METRICS = ("prefix_matching", "contrast", "copying", "previous_token", "duplicate_token", "diagonal")
LABELS = {m: m.replace("_", " ") for m in ("overall_score", *METRICS, "causal_effect")}


def all_mass(A: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
    """``A [batch, head, q, k]`` as each key's share of the whole softmax, a learned sink included:
    ``A / rowsum(A) * (1 - sink)`` with ``sink [batch, head, q]`` (the same as ``A`` where the model's
    weights already are such shares, as gpt-oss's; rescaled where the kernel renormalised them over the
    tokens, as granite's). A new tensor; ``A`` is not modified."""
    rows = A.sum(-1, keepdim=True).clamp_min(1e-30)
    return A / rows * (1 - sink.to(A.dtype))[..., None]


def block_max(A: torch.Tensor, factor: int) -> torch.Tensor:
    """``A [n, n]`` pooled to ``[ceil(n / factor)]^2`` by the maximum of each ``factor x factor`` block: a
    stripe one position wide stays visible when a long pattern is drawn small. A new tensor."""
    if factor == 1:
        return A
    pad = (-A.shape[0]) % factor
    A = torch.nn.functional.pad(A, (0, pad, 0, pad))
    return torch.nn.functional.max_pool2d(A[None, None], factor)[0, 0]


def match_mask(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, seq] -> [batch, q, k]`` bool: ``t[k-1] == t[q]`` and ``1 <= k <= q``."""
    b, n = tokens.shape
    mask = torch.zeros(b, n, n, dtype=torch.bool, device=tokens.device)
    mask[:, :, 1:] = tokens[:, :, None] == tokens[:, None, :-1]
    return mask & torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()


def duplicate_mask(tokens: torch.Tensor) -> torch.Tensor:
    """``[batch, seq] -> [batch, q, k]`` bool: an earlier copy of the current token, ``t[k] == t[q]``, ``k < q``."""
    n = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]
    return same & torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril(-1)


def _flat(A: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[batch, ..., q, k] -> [batch, X, q, k]`` (a view where possible) and the ``...`` shape."""
    return A.reshape(A.shape[0], -1, A.shape[-2], A.shape[-1]), tuple(A.shape[1:-2])


def _per_query_sum(A: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_k A[b, x, q, k] * mask[b, q, k]`` as ``[batch, q, X]``, gathering only masked entries."""
    flat, _ = _flat(A)
    b, x, n_q, _ = flat.shape
    bi, qi, ki = mask.nonzero(as_tuple=True)
    values = flat[bi, :, qi, ki].float()  # [nnz, X]
    out = torch.zeros(b * n_q, x, dtype=torch.float32, device=A.device)
    out.index_add_(0, bi * n_q + qi, values)
    return out.view(b, n_q, x)


def _masked_mean(values: torch.Tensor, scored: torch.Tensor, rest: tuple[int, ...]) -> torch.Tensor:
    """Mean of ``values[b, q, X]`` over queries where ``scored[b, q]``; NaN where none is."""
    w = scored.float().unsqueeze(-1)
    total = (values * w).sum(1)
    count = w.sum(1)
    mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
    return mean.view(values.shape[0], *rest)


def stripe_attention(A: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over scored queries of the attention on the masked keys: ``[batch, ..., q, k] -> [batch, ...]``."""
    _, rest = _flat(A)
    return _masked_mean(_per_query_sum(A, mask), mask.any(-1), rest)


def copying(A: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of scored queries (``q + 1 < T``) whose arg-max key holds ``t[q + 1]``: ``[batch, ...]``."""
    flat, rest = _flat(A)
    b, x, n_q, _ = flat.shape
    k_star = flat.argmax(-1)  # [b, X, q]
    attended = torch.gather(tokens[:, None, :].expand(b, x, -1), 2, k_star)
    following = torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], -1)], dim=1)  # t[q+1]; -1 past the end
    correct = (attended == following[:, None, :]).float().transpose(1, 2)  # [b, q, X]
    scored = mask.any(-1).clone()
    scored[:, -1] = False
    return _masked_mean(correct, scored, rest)


def previous_token(A: torch.Tensor, first_query: int = 1) -> torch.Tensor:
    """Mean of ``A[q, q-1]`` over ``q >= first_query`` (1, or 2 with a BOS token): ``[batch, ...]``."""
    sub = A.diagonal(offset=-1, dim1=-2, dim2=-1)[..., first_query - 1 :]
    return sub.float().mean(-1)


def diagonal(A: torch.Tensor) -> torch.Tensor:
    """Mean of ``A[q, q]``: ``[batch, ...]``."""
    return A.diagonal(dim1=-2, dim2=-1).float().mean(-1)


def duplicate_token(A: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Attention on earlier copies of the current token, over queries that have one: ``[batch, ...]``."""
    return stripe_attention(A, duplicate_mask(tokens))


def combine(prefix: torch.Tensor, control: torch.Tensor, copy: torch.Tensor) -> dict[str, torch.Tensor]:
    """Head-level scores from per-sequence values ``[batch, ...]`` (NaN-aware means over the batch).

    ``contrast = clamp(mean(prefix) - mean(control), 0, 1)``: attention on the targets that is caused by
    the prefix match (a head that attends by position alone has the same attention on the control).
    ``overall = contrast * copying``: the matched attention, discounted by how often the attended token
    is not the one that comes next. In [0, 1]; an ideal induction head scores ~1, a positional or
    previous-token head ~0.
    """
    p, c, y = (torch.nanmean(t, dim=0) for t in (prefix, control, copy))
    contrast = (p - c).clamp(0, 1)
    return {"prefix_matching": p, "control": c, "contrast": contrast, "copying": y, "overall_score": contrast * y}


def pattern_metrics(A: torch.Tensor, tokens: torch.Tensor, first_query: int = 1) -> dict[str, float]:
    """The pattern-level metrics of one head's attention ``A [seq, seq]`` on ``tokens [seq]``: prefix
    matching, copying, previous-token, duplicate-token, diagonal (NaN where no query is scored). What a
    view shows next to a pattern that is not the detection probe; ``contrast`` needs a control and is
    left out."""
    A, t = A[None].float(), tokens[None]
    match = match_mask(t)
    values = {"prefix_matching": stripe_attention(A, match), "copying": copying(A, t, match),
              "previous_token": previous_token(A, first_query), "duplicate_token": duplicate_token(A, t),
              "diagonal": diagonal(A)}
    return {k: float(v[0]) for k, v in values.items()}


def stripe_profile(A: torch.Tensor, period: int, offset: int = 0) -> tuple[torch.Tensor, ...]:
    """One head ``A[seq, seq]`` along the induction stripe: for the repeat's queries ``q >= offset + period``,
    ``(q, A[q, q - period + 1], the largest weight elsewhere in the row, the mean weight elsewhere)``."""
    q = torch.arange(offset + period, A.shape[0])
    k = q - period + 1
    stripe = A[q, k]
    rest = A[q].clone()
    rest[torch.arange(len(q)), k] = float("nan")
    rest_max = torch.nan_to_num(rest, nan=-1.0).amax(-1).clamp_min(0)
    rest_mean = torch.nansum(rest, -1) / q.clamp_min(1).float()  # the q + 1 keys up to q, less the stripe key
    return q, stripe, rest_max, rest_mean


def token_pairs(tokens: torch.Tensor, kind: str = "match") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The nonzero entries ``(batch, q, k)`` of ``match_mask`` (``kind="match"``: ``t[k-1] == t[q]``,
    ``1 <= k <= q``) or of ``duplicate_mask`` (``"duplicate"``: ``t[k] == t[q]``, ``k < q``), without
    building the ``[batch, T, T]`` mask: each position is paired with the earlier positions holding its
    token (a stable sort groups them). Sorted by ``q``."""
    bs, qs, ks = [], [], []
    for b, t in enumerate(tokens.cpu()):
        values, order = torch.sort(t, stable=True)  # equal tokens grouped, in position order
        n = t.shape[0]
        new = torch.ones(n, dtype=torch.bool)
        new[1:] = values[1:] != values[:-1]
        start = torch.where(new, torch.arange(n), torch.zeros(n, dtype=torch.long)).cummax(0).values
        earlier = torch.arange(n) - start  # how many earlier positions hold the same token
        total = int(earlier.sum())
        first = torch.repeat_interleave(start, earlier)
        within = torch.arange(total) - torch.repeat_interleave(torch.cumsum(earlier, 0) - earlier, earlier)
        q, k = torch.repeat_interleave(order, earlier), order[first + within]
        bs.append(torch.full((total,), b, dtype=torch.long))
        qs.append(q)
        ks.append(k + 1 if kind == "match" else k)
    b, q, k = torch.cat(bs), torch.cat(qs), torch.cat(ks)
    order = torch.argsort(q, stable=True)
    return b[order], q[order], k[order]


class RowScorer:
    """The metrics of one layer, fed a block of query rows at a time (see ``_rows``): per-query values
    ``[batch, head, T]`` are filled block by block, then averaged as the whole-pattern functions above do
    (same definitions, same results up to float summation order). ``tokens`` ``[n, T]`` are the probes;
    a control batch ``[n, head, rows, T]`` may ride along and is scored on the probes' match positions."""

    def __init__(self, tokens: torch.Tensor, n_heads: int, first_query: int = 1):
        self.tokens, self.first_query = tokens, first_query
        n, T = tokens.shape
        self.match = [x.to(tokens.device) for x in token_pairs(tokens, "match")]
        self.dup = [x.to(tokens.device) for x in token_pairs(tokens, "duplicate")]
        zeros = lambda: torch.zeros(n * T, n_heads, device=tokens.device)  # noqa: E731
        self.prefix, self.control, self.duplicate = zeros(), zeros(), zeros()
        self.copy = torch.zeros(n, n_heads, T, device=tokens.device)
        self.previous = torch.zeros(n, n_heads, T, device=tokens.device)
        self.diagonal = torch.zeros(n, n_heads, T, device=tokens.device)

    def add(self, start: int, probe: torch.Tensor, control: torch.Tensor | None = None, lo: int = 0) -> None:
        """Rows ``start .. start + rows`` of the probes' pattern over keys ``lo .. lo + width``
        ``[n, head, rows, width]`` (every other key of these rows is 0), and the control's likewise."""
        n, n_heads, rows, width = probe.shape
        T = self.tokens.shape[1]
        stop = start + rows
        for pairs, out, source in ((self.match, self.prefix, probe), (self.dup, self.duplicate, probe),
                                   (self.match, self.control, control)):
            if source is None:
                continue
            b, q, k = pairs
            first, last = torch.searchsorted(q, torch.tensor([start, stop], device=q.device)).tolist()
            b, q, k = b[first:last], q[first:last], k[first:last]
            seen = (k >= lo) & (k < lo + width)  # keys outside the columns hold 0
            b, q, k = b[seen], q[seen], k[seen]
            out.index_add_(0, b * T + q, source[b, :, q - start, k - lo].float())
        following = torch.cat([self.tokens[:, 1:], torch.full_like(self.tokens[:, :1], -1)], 1)[:, start:stop]
        attended = torch.gather(self.tokens[:, None, :].expand(n, n_heads, T), 2, probe.argmax(-1) + lo)
        self.copy[:, :, start:stop] = (attended == following[:, None, :]).float()
        self.diagonal[:, :, start:stop] = torch.diagonal(probe, offset=start - lo, dim1=-2, dim2=-1).float()
        previous = torch.diagonal(probe, offset=start - 1 - lo, dim1=-2, dim2=-1).float()
        self.previous[:, :, stop - previous.shape[-1] : stop] = previous

    def finish(self) -> dict[str, torch.Tensor]:
        """``{metric: [n, head]}``: prefix_matching, control, copying, previous_token, duplicate_token,
        diagonal (NaN where a sequence has no scored query)."""
        n, T = self.tokens.shape
        scored = torch.zeros(n * T, dtype=torch.bool, device=self.tokens.device)
        scored[self.match[0] * T + self.match[1]] = True
        scored = scored.view(n, T)
        dup_scored = torch.zeros(n * T, dtype=torch.bool, device=self.tokens.device)
        dup_scored[self.dup[0] * T + self.dup[1]] = True
        copy_scored = scored.clone()
        copy_scored[:, -1] = False
        per_q = lambda x: x.view(n, T, -1)  # noqa: E731  [n * T, head] -> [n, T, head]
        return {
            "prefix_matching": _masked_mean(per_q(self.prefix), scored, (-1,)).view(n, -1),
            "control": _masked_mean(per_q(self.control), scored, (-1,)).view(n, -1),
            "copying": _masked_mean(self.copy.transpose(1, 2), copy_scored, (-1,)).view(n, -1),
            "previous_token": self.previous[:, :, self.first_query:].mean(-1),
            "duplicate_token": _masked_mean(per_q(self.duplicate), dup_scored.view(n, T), (-1,)).view(n, -1),
            "diagonal": self.diagonal.mean(-1),
        }


def lse_metrics(source, tokens: torch.Tensor, first_query: int = 1, rows: int = 128,
                chunk: int = 1 << 16) -> dict[str, torch.Tensor]:
    """The same metrics as ``RowScorer`` from a layer whose row logsumexp is known (``_rows.LseScores``:
    the model's flash kernel returned it): the probes are the first ``n = len(tokens)`` sequences of
    ``source``, their controls the next ``n``. Only the needed weights are computed (one dot product
    each) and, for copying, the arg-max of the scored probe rows, ``rows`` at a time."""
    n, T = tokens.shape
    h = source.shape[1]
    device = tokens.device

    def summed(pairs, shift: int = 0) -> torch.Tensor:
        b, q, k = (x.to(device) for x in pairs)
        out = torch.zeros(n * T, h, device=device)
        for i in range(0, len(b), chunk):  # bounded gathers of [chunk, head, d]
            bb, qq, kk = b[i : i + chunk], q[i : i + chunk], k[i : i + chunk]
            out.index_add_(0, bb * T + qq, source.entries(bb + shift, qq, kk))
        return out.view(n, T, h)

    match, dup = token_pairs(tokens, "match"), token_pairs(tokens, "duplicate")
    scored = torch.zeros(n * T, dtype=torch.bool, device=device)
    scored[(match[0] * T + match[1]).to(device)] = True
    scored = scored.view(n, T)
    dup_scored = torch.zeros(n * T, dtype=torch.bool, device=device)
    dup_scored[(dup[0] * T + dup[1]).to(device)] = True
    dup_scored = dup_scored.view(n, T)
    copy_scored = scored.clone()
    copy_scored[:, -1] = False
    correct = torch.zeros(n, T, h, device=device)
    following = torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], -1)], 1)
    wanted = copy_scored.any(0).nonzero().flatten().tolist()
    if wanted:
        for start in range(wanted[0], wanted[-1] + 1, rows):
            stop = min(wanted[-1] + 1, start + rows)
            k_star = source.argmax(slice(0, n), start, stop)  # [n, head, rows]
            attended = torch.gather(tokens[:, None, :].expand(n, h, T), 2, k_star)
            correct[:, start:stop] = (attended == following[:, None, start:stop]).float().transpose(1, 2)
    return {
        "prefix_matching": _masked_mean(summed(match), scored, (-1,)).view(n, -1),
        "control": _masked_mean(summed(match, shift=n), scored, (-1,)).view(n, -1),
        "copying": _masked_mean(correct, copy_scored, (-1,)).view(n, -1),
        "previous_token": source.diagonal(-1)[:n, :, first_query - 1 :].mean(-1),
        "duplicate_token": _masked_mean(summed(dup), dup_scored, (-1,)).view(n, -1),
        "diagonal": source.diagonal(0)[:n].mean(-1),
    }
