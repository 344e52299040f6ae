"""Token sequences that make induction heads show themselves, and the controls that make them honest.

``PatternGenerator(vocab_size, device, seed)`` generates, by name (``PATTERN_NAMES``):

* ``repeated``: a random block repeated ``n_repeats`` times (the classic induction probe);
* ``abab``: a random pair of tokens alternating (period 2);
* ``copy``: ``[content][SEP][content]``;
* ``random``: no token repeated (the no-match control);
* ``natural``: a public-domain passage tokenised by the model's tokenizer, repeated;
* ``bigram``: random tokens with a few bigrams ``[A][B]`` re-inserted at random places (fuzzy matching).

Each ``Pattern`` carries its tokens ``[batch, seq]``, its period (where it has one) and, derived from
the tokens themselves, the induction targets: ``match_mask(tokens)`` (see ``metrics.keys``). Random blocks
draw distinct ids, so the only matches are the intended ones. Ids come from ``[low, high)``, which by
default skips the lowest ids (special tokens live there) and, for large vocabularies, the rare tail,
as in metrics.md's reference set-up ([1000, 10000) for SmolLM2); ``exclude`` removes more ids.
Generation is deterministic for a given seed and does not depend on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .._validate import check_int
from ..errors import InputError, warn_user
from ..metrics import match_mask
from .passages import PASSAGES

__all__ = ["Pattern", "PatternGenerator", "PATTERN_NAMES", "default_token_range"]

PatternName = Literal["repeated", "abab", "copy", "random", "natural", "bigram"]
PATTERN_NAMES: tuple[str, ...] = ("repeated", "abab", "copy", "random", "natural", "bigram")


@dataclass(frozen=True)
class Pattern:
    """A batch of generated sequences. ``tokens``: ``[batch, seq]`` (BOS included when the generator has
    one). ``period``: distance between repeats, ``None`` where the pattern has none. ``offset``: index of
    the first generated token (1 with BOS). ``meta``: generation settings, for the record."""

    name: str
    tokens: torch.Tensor
    period: int | None
    offset: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def match_mask(self) -> torch.Tensor:
        """``[batch, q, k]`` bool: ``k`` is an induction target of ``q`` (``t[k-1] == t[q]``, ``1 <= k <= q``)."""
        return match_mask(self.tokens)

    @property
    def targets(self) -> torch.Tensor:
        """``[batch, q]`` bool: queries with at least one induction target (the scored queries)."""
        return self.match_mask.any(-1)

    def __repr__(self) -> str:
        return f"Pattern({self.name!r}, tokens={tuple(self.tokens.shape)}, period={self.period})"


def default_token_range(vocab_size: int) -> tuple[int, int]:
    """``[low, high)`` ids to sample from: skip the lowest tenth (special tokens) and, for vocabularies
    above 10,000, everything from 10,000 on (rare tokens the model has barely seen)."""
    if vocab_size > 10_000:
        return 1000, 10_000
    return vocab_size // 10, vocab_size


class PatternGenerator:
    """Seeded generator of induction probes. ``vocab_size``: the model's vocabulary (ids are drawn from
    ``[low, high)`` inside it). ``bos_token_id``: prepended to every sequence when given.
    ``tokenizer``: needed for ``natural`` only."""

    def __init__(
        self,
        vocab_size: int,
        device: str | torch.device = "cpu",
        seed: int = 0,
        *,
        low: int | None = None,
        high: int | None = None,
        exclude: Sequence[int] = (),
        bos_token_id: int | None = None,
        sep_token_id: int | None = None,
        tokenizer: Any = None,
    ):
        check_int("vocab_size", vocab_size, 2)
        d_low, d_high = default_token_range(vocab_size)
        self.low = d_low if low is None else low
        self.high = d_high if high is None else high
        if not 0 <= self.low < self.high <= vocab_size:
            raise InputError(f"token range [{self.low}, {self.high}) must lie inside the vocabulary [0, {vocab_size})")
        excluded = set(int(i) for i in exclude)
        if bos_token_id is not None:
            excluded.add(int(bos_token_id))
        self.pool = torch.tensor([i for i in range(self.low, self.high) if i not in excluded], dtype=torch.long)
        if len(self.pool) < 2:
            raise InputError(f"fewer than 2 usable token ids in [{self.low}, {self.high}) after exclusions")
        self.vocab_size = vocab_size
        self.device = torch.device(device)
        self.seed = seed
        self.bos_token_id = bos_token_id
        self.sep_token_id = int(self.pool[0]) if sep_token_id is None else sep_token_id
        self.tokenizer = tokenizer

    # -- public -----------------------------------------------------------------------------------

    def generate(self, name: str, seq_len: int = 64, batch_size: int = 8, n_repeats: int = 2, **kwargs) -> Pattern:
        """Generate ``batch_size`` sequences of ``seq_len`` tokens (BOS not counted) of pattern ``name``."""
        maker = _MAKERS.get(name)
        if maker is None:
            raise InputError(f"unknown pattern {name!r}; valid names: {', '.join(PATTERN_NAMES)}")
        check_int("batch_size", batch_size, 1)
        if name in ("repeated", "natural"):
            check_int("n_repeats", n_repeats, 2)  # a block must occur again
        check_int("seq_len", seq_len)
        minimum = {"repeated": 2 * n_repeats, "abab": 3, "copy": 3, "random": 2, "natural": 4, "bigram": 8}[name]
        if seq_len < minimum:
            raise InputError(
                f"seq_len {seq_len!r} is too short for pattern {name!r}: it needs at least {minimum} tokens"
            )
        distinct = {"repeated": seq_len // n_repeats, "copy": (seq_len - 1) // 2 + 1, "random": seq_len}.get(name, 0)
        if distinct > len(self.pool):
            message = (
                f"pattern {name!r} with seq_len {seq_len} needs {distinct} distinct token ids, but only "
                f"{len(self.pool)} are usable in [{self.low}, {self.high}); use seq_len <= "
                f"{len(self.pool) * (n_repeats if name == 'repeated' else 1)} or a larger vocab_size"
            )
            if name != "random":  # repeats inside the block would add matches the metrics then count
                raise InputError(message)
            warn_user(message + "; some ids repeat by chance")
        g = torch.Generator().manual_seed(self.seed + _NAME_SALT[name])
        tokens, period, meta = maker(self, g, seq_len, batch_size, n_repeats=n_repeats, **kwargs)
        offset = 0
        if self.bos_token_id is not None:
            tokens = torch.cat([torch.full((batch_size, 1), self.bos_token_id, dtype=torch.long), tokens], dim=1)
            offset = 1
        meta = {"seq_len": seq_len, "batch_size": batch_size, "seed": self.seed, **meta}
        return Pattern(name, tokens.to(self.device), period, offset, meta)

    def generate_all(self, seq_len: int = 64, batch_size: int = 8, n_repeats: int = 2) -> dict[str, Pattern]:
        """Every pattern by name; ``natural`` only when a tokenizer was given."""
        names = [n for n in PATTERN_NAMES if n != "natural" or self.tokenizer is not None]
        return {n: self.generate(n, seq_len, batch_size, n_repeats=n_repeats) for n in names}

    def control_kind(self, pattern: Pattern) -> str:
        """``"fresh"`` where the pool holds enough ids for ``pattern``'s control to use new ones after the
        first period, else ``"derangement"`` (see ``control_for``)."""
        fresh_needed = pattern.tokens.shape[1] - pattern.offset - pattern.period
        return "fresh" if fresh_needed + pattern.period <= len(self.pool) else "derangement"

    def control_for(self, pattern: Pattern) -> torch.Tensor:
        """The contrast metric's control ``[batch, seq]``: ``pattern``'s tokens with every token after the
        first period replaced so that the same ``(q, k)`` positions hold no prefix match. Same length, same
        positions, same first block.

        ``"fresh"`` (when the pool has the ids): new ids that do not occur earlier in the sequence.
        ``"derangement"`` (small vocabularies): each later block is a random permutation of the first that
        puts no token where any earlier block had it, so no stripe key (``k = q - P + 1``, ``q - 2P + 1``
        ...) follows a copy of ``t[q]``; it needs only ``period`` distinct ids."""
        if pattern.period is None:
            raise InputError(f"pattern {pattern.name!r} has no period; the control needs a periodic pattern")
        g = torch.Generator().manual_seed(self.seed + 7919)
        tokens = pattern.tokens.cpu().clone()
        start = pattern.offset + pattern.period
        if self.control_kind(pattern) == "fresh":
            for row in tokens:
                row[start:] = self._distinct(g, row.numel() - start, avoid=set(row[:start].tolist()))
            return tokens.to(self.device)
        n_blocks = -(-(tokens.shape[1] - pattern.offset) // pattern.period)
        if n_blocks > pattern.period or len(set(tokens[0, pattern.offset : start].tolist())) < pattern.period:
            raise InputError(
                f"the control of {pattern.name!r} needs a first block of {pattern.period} distinct ids to permute "
                f"into {n_blocks - 1} more blocks; only {len(self.pool)} are usable in [{self.low}, {self.high}): "
                "no valid control exists"
            )
        for row in tokens:
            first = row[pattern.offset : start].clone()
            for r, order in enumerate(_latin_rows(g, pattern.period, n_blocks)[1:], start=1):
                at = pattern.offset + r * pattern.period
                row[at : at + pattern.period] = first[order][: row.numel() - at]
        return tokens.to(self.device)

    def probe_length(self, requested: int | None, n_repeats: int = 2, preferred: int = 128) -> tuple[int, str | None]:
        """The probe length for ``requested`` (``None``: the default) and, where the default had to adapt to
        a small vocabulary, why. The default is ``preferred`` tokens; where the pool cannot fill a fresh
        control for it, the longest length that can (a period of at least 8), else ``preferred`` with a
        derangement control (at most ``pool`` ids per period). ``InputError`` where no valid probe exists."""
        if requested is not None:
            return requested, None
        usable = len(self.pool)
        period = preferred // n_repeats
        if n_repeats * period <= usable:
            return preferred, None
        fits = usable // n_repeats
        length = n_repeats * fits if fits >= 8 else n_repeats * min(period, usable)
        if length // n_repeats < 2:
            raise InputError(
                f"no valid induction probe: the vocabulary leaves {usable} usable token ids in "
                f"[{self.low}, {self.high}); a probe needs a block of at least 2 distinct ids"
            )
        control = "fresh" if fits >= 8 else "derangement"
        return length, (
            f"the default probe of {preferred} tokens needs {n_repeats * period} distinct token ids, but "
            f"only {usable} are usable in [{self.low}, {self.high}): using sequence_length={length} "
            f"(period {length // n_repeats}) with a {control} control"
        )

    # -- sampling helpers ---------------------------------------------------------------------------

    def _distinct(self, g: torch.Generator, n: int, avoid: set[int] = frozenset()) -> torch.Tensor:
        """``n`` ids from the pool, all distinct when the pool allows (else with replacement)."""
        pool = self.pool if not avoid else self.pool[~torch.isin(self.pool, torch.tensor(sorted(avoid)))]
        if len(pool) == 0:
            pool = self.pool
        if n <= len(pool):
            return pool[torch.randperm(len(pool), generator=g)[:n]]
        return pool[torch.randint(len(pool), (n,), generator=g)]


def _latin_rows(g: torch.Generator, n: int, rows: int) -> list[torch.Tensor]:
    """``rows`` orderings of ``range(n)``, the first the identity, no two with the same value at any
    position (rows of a Latin rectangle): random permutations by rejection, cyclic shifts where rejection
    takes too long (many rows of a short block)."""
    out = [torch.arange(n)]
    for r in range(1, rows):
        for _attempt in range(200):
            perm = torch.randperm(n, generator=g)
            if not any((perm == prev).any() for prev in out):
                break
        else:
            perm = (torch.arange(n) + r) % n
        out.append(perm)
    return out


def _repeated(gen: PatternGenerator, g, seq_len, batch, n_repeats=2, **_):
    period = seq_len // n_repeats
    rows = [gen._distinct(g, period).repeat(n_repeats + 1)[:seq_len] for _ in range(batch)]
    return torch.stack(rows), period, {"n_repeats": n_repeats}


def _abab(gen: PatternGenerator, g, seq_len, batch, **_):
    rows = [gen._distinct(g, 2).repeat(seq_len // 2 + 1)[:seq_len] for _ in range(batch)]
    return torch.stack(rows), 2, {}


def _copy(gen: PatternGenerator, g, seq_len, batch, **_):
    n = (seq_len - 1) // 2
    rows = []
    for _ in range(batch):
        content = gen._distinct(g, n, avoid={gen.sep_token_id})
        tail = gen._distinct(g, seq_len - 2 * n - 1, avoid=set(content.tolist()) | {gen.sep_token_id})
        rows.append(torch.cat([content, torch.tensor([gen.sep_token_id]), content, tail]))
    return torch.stack(rows), n + 1, {"sep_token_id": gen.sep_token_id}


def _random(gen: PatternGenerator, g, seq_len, batch, **_):
    return torch.stack([gen._distinct(g, seq_len) for _ in range(batch)]), None, {}


def _bigram(gen: PatternGenerator, g, seq_len, batch, n_bigrams: int | None = None, **_):
    n_bigrams = n_bigrams or max(1, seq_len // 16)
    rows = []
    for _ in range(batch):
        row = gen._distinct(g, seq_len)
        pairs = gen._distinct(g, 2 * n_bigrams, avoid=set(row.tolist())).view(n_bigrams, 2)
        for a, b in pairs:
            # each bigram at two places that do not overlap any other insertion
            for _ in range(2):
                for _attempt in range(20):
                    at = int(torch.randint(seq_len - 1, (1,), generator=g))
                    if not torch.isin(row[at : at + 2], pairs.flatten()).any():
                        row[at], row[at + 1] = a, b
                        break
        rows.append(row)
    return torch.stack(rows), None, {"n_bigrams": n_bigrams}


def _natural(gen: PatternGenerator, g, seq_len, batch, n_repeats=2, **_):
    tok = gen.tokenizer
    if tok is None:
        raise InputError("pattern 'natural' needs a tokenizer: PatternGenerator(..., tokenizer=model.tokenizer)")
    period = seq_len // n_repeats
    rows, names = [], sorted(PASSAGES)
    for i in range(batch):
        name = names[i % len(names)]
        ids = tok(PASSAGES[name], add_special_tokens=False)["input_ids"]
        if len(ids) < period:
            raise InputError(
                f"passage {name!r} has only {len(ids)} tokens; use seq_len <= {2 * len(ids)} for 'natural'"
            )
        start = int(torch.randint(len(ids) - period + 1, (1,), generator=g))
        block = torch.tensor(ids[start : start + period])
        if int(block.max()) >= gen.vocab_size:
            raise InputError(f"the tokenizer produced id {int(block.max())} >= vocab_size {gen.vocab_size}")
        rows.append(block.repeat(n_repeats + 1)[:seq_len])
    return (
        torch.stack(rows),
        period,
        {"n_repeats": n_repeats, "passages": [names[i % len(names)] for i in range(batch)]},
    )


_MAKERS: dict[str, Callable[..., tuple[torch.Tensor, int | None, dict]]] = {
    "repeated": _repeated,
    "abab": _abab,
    "copy": _copy,
    "random": _random,
    "natural": _natural,
    "bigram": _bigram,
}
# Each pattern its own random stream, so adding a pattern to a run does not change the others.
_NAME_SALT = {name: 1009 * (i + 1) for i, name in enumerate(PATTERN_NAMES)}
