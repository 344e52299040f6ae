"""Probes for token vs concept induction (Feucht, Todd, Wallace and Bau, COLM 2025, "The Dual-Route Model of
Induction", arXiv 2504.03022): a word ``e`` inside random tokens, then the random prefix again.

Each sequence is ``[BOS] + r1 + e + r2 + [sep] + r1 + e[0]`` with ``r1``, ``r2`` random tokens, ``sep`` a
separator (the tokenizer's newline) and every sequence of one length ``length`` (so no padding: the
length of ``r1`` is drawn in ``[(length - 3) / 3, (length - 3 - |e|) / 2]``, which keeps the authors' rule
that ``r1`` is between half the first segment and the first segment minus ``|e|``; ``r2`` fills the rest).
The query is the last token of the second ``r1`` (position ``length - 2``, whose continuation is
``e[0]``); the appended ``e[0]`` (position ``length - 1``, continuation ``e[1]``) serves the causal form.
The token route uses ``e`` of random tokens, the concept route real multi-token words. Random tokens are
distinct within a sequence where the vocabulary allows, and never one of the word's tokens, so the only
earlier copy of the query's context is the first ``r1``.

Words: ``words_from_text`` keeps the words of the shipped public-domain names and passages (``probes.names``,
``probes.passages``) that
the model's tokenizer splits into 2 to 5 tokens (after a space); a user list (strings, or token-id lists
for a model without a tokenizer) is checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_int, is_int
from ..errors import InputError
from .names import NAMES
from .passages import PASSAGES
from .patterns import PatternGenerator

__all__ = ["DualRouteProbes", "words_from_text", "check_words", "dual_route_probes", "MIN_WORD", "MAX_WORD"]

MIN_WORD, MAX_WORD = 2, 5  # tokens per word: at least two (a start and an end), as the authors


@dataclass(frozen=True)
class DualRouteProbes:
    """``clean`` ``[n, length]``: the sequences; ``corrupt`` ``[n, length]``: the same with the first ``e``
    replaced by other random tokens (the causal form's corrupted run); ``start``/``end`` ``[n]``: the
    positions of ``e[0]`` and ``e[-1]`` in the first copy; ``query`` ``[n]``: the attention form's query
    (``length - 2``); ``words``: each sequence's ``e`` as token ids."""

    clean: torch.Tensor
    corrupt: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    query: torch.Tensor
    words: tuple[tuple[int, ...], ...]

    @property
    def targets(self) -> torch.Tensor:
        """``[n, 2]``: ``e[0]`` (after the query) and ``e[1]`` (after the appended ``e[0]``)."""
        return torch.tensor([[w[0], w[1]] for w in self.words], dtype=torch.long)

    @property
    def at(self) -> torch.Tensor:
        """``[n, 2]``: where ``targets`` are predicted (``length - 2`` and ``length - 1``)."""
        n = self.clean.shape[1]
        return torch.tensor([[n - 2, n - 1]] * len(self.words), dtype=torch.long)


def words_from_text(tokenizer: Any, texts: Sequence[str] | None = None) -> list[str]:
    """The distinct words (letters only, 4 or more) of ``texts`` (default: the shipped names and passages,
    ``probes.names``, ``probes.passages``) that ``tokenizer`` splits into ``MIN_WORD`` to ``MAX_WORD`` tokens
    after a space, in order of appearance."""
    seen: dict[str, None] = {}
    for text in (NAMES, *PASSAGES.values()) if texts is None else texts:
        for word in re.findall(r"[A-Za-z]{4,}", text):
            seen.setdefault(word, None)
    return [w for w in seen if MIN_WORD <= len(_encode(tokenizer, w)) <= MAX_WORD]


def check_words(words: Any, tokenizer: Any, vocab_size: int | None) -> list[tuple[int, ...]]:
    """``words`` (strings through ``tokenizer`` after a space, or token-id sequences) as id tuples of
    ``MIN_WORD`` to ``MAX_WORD`` tokens. ``InputError`` for a word that does not fit (naming it and its
    length), ids out of the vocabulary, strings without a tokenizer, or no words at all."""
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence) or len(words) == 0:
        raise InputError(f"words must be a non-empty list of words (strings or token-id lists), got {words!r}")
    out = []
    for word in words:
        if isinstance(word, str):
            if tokenizer is None:
                raise InputError(
                    f"word {word!r} is a string but the model has no tokenizer: pass each word as a list of "
                    "token ids (2 to 5 ids), e.g. words=[[101, 7], [33, 4, 9]]"
                )
            ids = tuple(_encode(tokenizer, word))
        elif _is_sequence(word) and all(_is_id(i) for i in word):
            ids = tuple(int(i) for i in word)
        else:
            raise InputError(f"each word must be a string or a list of token ids, got {word!r}")
        if not MIN_WORD <= len(ids) <= MAX_WORD:
            raise InputError(
                f"word {word!r} is {len(ids)} token(s) long; concept induction needs words of {MIN_WORD} to "
                f"{MAX_WORD} tokens (a start and an end at different positions): drop it or pass another word"
            )
        if vocab_size is not None and not all(0 <= i < vocab_size for i in ids):
            raise InputError(f"word {word!r} has token ids outside the vocabulary [0, {vocab_size})")
        out.append(ids)
    return out


def dual_route_probes(
    gen: PatternGenerator,
    words: Sequence[tuple[int, ...]] | None,
    n: int,
    length: int,
    sep: int,
    seed: int,
    lengths: Sequence[int] | None = None,
) -> DualRouteProbes:
    """``n`` probes of ``length`` tokens (see the module docstring). ``words``: real words (the concept
    route), cycled in a seeded order; ``None``: random-token ``e`` (the token route) of the lengths
    ``lengths`` (cycled; default 2 to 5). ``gen`` gives the token pool and the BOS."""
    check_int("n_probes", n, 1)
    bos = [] if gen.bos_token_id is None else [int(gen.bos_token_id)]
    room = length - 2 - len(bos)  # r1 + e + r2 + r1
    if room < 3 * MAX_WORD:  # r1 >= room / 3 and r1 <= (room - |e|) / 2 must leave a choice
        raise InputError(f"length {length} is too short for the probe: use at least {3 * MAX_WORD + 2 + len(bos)}")
    g = torch.Generator().manual_seed(seed)
    order = None if words is None else torch.randperm(len(words), generator=g).tolist()
    sizes = list(lengths or range(MIN_WORD, MAX_WORD + 1))
    clean, corrupt, start, end, used = [], [], [], [], []
    for i in range(n):
        if words is None:
            e = [int(t) for t in gen._distinct(g, sizes[i % len(sizes)], {sep})]
        else:
            e = list(words[order[i % len(words)]])
        r1_len = int(torch.randint(-(-room // 3), (room - len(e)) // 2 + 1, (1,), generator=g))
        r2_len = room - 2 * r1_len - len(e)
        fill = [int(t) for t in gen._distinct(g, r1_len + r2_len + len(e), set(e) | {sep})]
        r1, r2, other = fill[:r1_len], fill[r1_len : r1_len + r2_len], fill[r1_len + r2_len :]
        clean.append(bos + r1 + e + r2 + [sep] + r1 + [e[0]])
        corrupt.append(bos + r1 + other + r2 + [sep] + r1 + [e[0]])
        start.append(len(bos) + r1_len)
        end.append(len(bos) + r1_len + len(e) - 1)
        used.append(tuple(e))
    as_long = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    query = torch.full((n,), length - 2, dtype=torch.long)
    return DualRouteProbes(as_long(clean), as_long(corrupt), as_long(start), as_long(end), query, tuple(used))


def _is_sequence(x: Any) -> bool:
    """A list, tuple, 1-d tensor or 1-d numpy array of ids."""
    return isinstance(x, (Sequence, torch.Tensor)) or (hasattr(x, "ndim") and getattr(x, "ndim", 0) == 1)


def _encode(tokenizer: Any, word: str) -> list[int]:
    return list(tokenizer.encode(" " + word.strip(), add_special_tokens=False))


def _is_id(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.dim() == 0 and not x.is_floating_point()
    return is_int(x)  # numpy integers too
