"""The n-gram probe (pattern ``"ngram"``): every 1-token context recurs with different continuations, every
2- and 3-token context is unique, so a plain (1-prefix) induction head is split across several targets and
an n-gram (2- or 3-prefix) head is not (Akyurek et al., ICML 2024, arXiv 2401.12973; metrics:
``metrics.catalog.n_prefix_matching``).

How one sequence is built (``period = seq_len // n_repeats``, ``v = ngram_alphabet(period, n_repeats)``):

1. ``v`` distinct ids are drawn from the generator's pool (``v`` is the smallest alphabet with
   ``v (v - 1) >= (n_repeats + 1) * period``: room for the probe's and the control's bigrams, about
   ``sqrt(3 * period)`` for two repeats: 15 ids for a 64-token block).
2. A first block ``B`` of ``period`` tokens is a walk over the alphabet that uses every ordered pair
   ``(x, y)``, ``x != y``, at most once; the pair that closes the block, ``(B[-1], B[0])``, is not one of them;
   each id occurs ``period // v`` or ``period // v + 1`` times (at least twice). A greedy walk (next: the id
   with most occurrences left among the pairs not yet used, ties at random), redrawn until it meets these.
3. The sequence is ``B`` repeated ``n_repeats`` times (cut at ``seq_len``), as ``"repeated"``.

The guarantee (``n_repeats = 2``; checked in tests/test_patterns.py through the registered metrics):
every query ``q`` in the second block after its first two tokens has at least 2 prefix-matching (n = 1)
targets, with at least 2 different tokens at them (the earlier copies of ``t[q]`` in ``B``, each followed by
a different token), and exactly one 2-prefix and one 3-prefix target, the same key ``q - period + 1`` (a
bigram of ``B`` occurs once in ``B``, and ``(B[-1], B[0])`` never inside it). The second block's first token
has no 2-prefix target and its second no 3-prefix target (their contexts span the pair that closes the
block); queries in the first block have prefix-matching targets (the ids recur) and no n >= 2 target. With
more repeats, block ``r`` has one n >= 2 target per earlier block, on the stripes, as ``"repeated"``.

The control (``ngram_control``, ``PatternGenerator.control_kind`` ``"rewired"``): the first block is
kept, every later block is a new walk over the same ids with the same counts as the probe's block (the
control holds exactly the probe's tokens, rearranged after the first block) whose bigrams occur nowhere
earlier in the sequence. Each 1-token context still recurs with different continuations; no query has a
2-, 3- or 4-prefix target, so the scores of real n-gram heads fall there.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError

__all__ = ["ngram_alphabet", "ngram_minimum", "make_ngram", "ngram_control"]

_TRIES = 200


def ngram_alphabet(period: int, n_repeats: int = 2) -> int:
    """The number of distinct ids of an n-gram probe's block: the smallest ``v`` with
    ``v (v - 1) >= (n_repeats + 1) * period``."""
    v = 2
    while v * (v - 1) < (n_repeats + 1) * period:
        v += 1
    return v


def ngram_minimum(n_repeats: int = 2) -> int:
    """The shortest ``seq_len`` of an n-gram probe: a block where every id can occur at least twice
    (28 tokens for 2 repeats, 54 for 3)."""
    period = 4
    while 2 * ngram_alphabet(period, n_repeats) > period:
        period += 1
    return n_repeats * period


def _walk(g: torch.Generator, counts: list[int], seen: set, prev: int | None) -> list[int] | None:
    """A walk with ``counts[x]`` occurrences of each symbol ``x``, after ``prev``, through pairs not in
    ``seen`` and none twice, never a symbol after itself; ``None`` where the greedy walk is stuck."""
    left, used, out, cur = list(counts), set(seen), [], prev
    for _ in range(sum(counts)):
        options = [y for y, c in enumerate(left) if c and y != cur and (cur, y) not in used]
        if not options:
            return None
        most = max(left[y] for y in options)
        best = [y for y in options if left[y] == most]
        y = best[int(torch.randint(len(best), (1,), generator=g))]
        used.add((cur, y))
        left[y] -= 1
        out.append(y)
        cur = y
    return out


def _pairs(walk: list[int]) -> list[tuple[int, int]]:
    return list(zip(walk, walk[1:]))


def _block(g: torch.Generator, period: int, v: int) -> list[int]:
    """The first block (step 2 of the module docstring), as symbols ``0 .. v - 1``."""
    base, extra = divmod(period, v)
    for _ in range(_TRIES):
        order = torch.randperm(v, generator=g).tolist()
        counts = [base + (order[i] < extra) for i in range(v)]  # a random few get one more
        walk = _walk(g, counts, set(), None)
        if walk is None or walk[-1] == walk[0]:
            continue
        pairs = _pairs(walk)
        if (walk[-1], walk[0]) not in pairs and len(set(pairs)) == len(pairs) and min(counts) >= 2:
            return walk
    raise InputError(f"no n-gram probe block of {period} tokens over {v} ids was found; use a longer seq_len")


def make_ngram(gen: Any, g: torch.Generator, seq_len: int, batch: int, n_repeats: int = 2, **_) -> tuple:
    """``PatternGenerator``'s maker of ``"ngram"``: ``(tokens [batch, seq_len], period, meta)``."""
    period = seq_len // n_repeats
    v = ngram_alphabet(period, n_repeats)
    rows = []
    for _ in range(batch):
        ids = gen._distinct(g, v)
        block = ids[torch.tensor(_block(g, period, v))]
        rows.append(block.repeat(n_repeats + 1)[:seq_len])
    return torch.stack(rows), period, {"n_repeats": n_repeats, "alphabet": v}


def ngram_control(tokens: torch.Tensor, offset: int, period: int, g: torch.Generator) -> torch.Tensor:
    """The control of an n-gram probe ``tokens [batch, seq]`` (see the module docstring): the first block kept,
    each later block a walk over the same ids and counts through bigrams not seen earlier in the row."""
    out = tokens.cpu().clone()
    start = offset + period
    for row in out:
        ids, symbols = torch.unique(row[offset:start], return_inverse=True)
        symbols = symbols.tolist()
        seen, prev, at = set(_pairs(symbols)), symbols[-1], start
        while at < row.numel():
            n = min(period, row.numel() - at)
            counts = torch.bincount(torch.tensor(symbols[:n]), minlength=len(ids)).tolist()
            walk = next((w for w in (_walk(g, counts, seen, prev) for _ in range(_TRIES)) if w is not None), None)
            if walk is None:
                raise InputError(
                    f"no control for this n-gram probe: its {len(ids)} ids leave too few unused bigrams for a "
                    f"block of {n} tokens (was it made by PatternGenerator.generate('ngram')?)"
                )
            row[at : at + n] = ids[torch.tensor(walk)]
            seen |= set(_pairs([prev, *walk]))
            prev, at = walk[-1], at + n
    return out.to(tokens.device)
