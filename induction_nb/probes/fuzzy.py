"""Probes for fuzzy copying (Olsson, Elhage, Nanda et al. 2022, "In-context Learning and Induction Heads",
the argument that induction heads also copy fuzzily and abstractly: the current token need only be
*similar* to the earlier one, e.g. another case of the same word; translation is the extreme case).

Word pairs (``word_pairs``): the distinct words of three or more letters of the shipped public-domain passages
(``probes.passages``), each in two surface forms: form 1 lowercase (``" cat"``), form 2 capitalised
(``" Cat"``). A pair is kept where the tokenizer encodes each form as ONE token that decodes back to it, both
after a space (or, where the space does not give one token, e.g. a SentencePiece tokenizer adding its own,
both without), the two ids differ, neither is a special token, and neither id is used by an earlier pair (so
every id names one form of one word). A case-folding tokenizer keeps none.

Each probe (``fuzzy_probes``) is ``[BOS] + block1 + block2`` with ``n`` distinct pairs: ``block1`` the words in
form 1, ``block2`` the same words in form 2 in another random order (a fresh permutation per probe, so a head
attending by position alone cannot follow the targets). The query is each form-2 word ``w_i`` whose form-1 copy
is not last in ``block1``; its target is the position right after form-1 ``w_i`` (the token that followed the
earlier *similar* token; metrics.md's prefix matching under a fuzzy match). No token id of ``block2`` occurs in
``block1`` (checked while building), so exact-match induction cannot reach the targets. The exact control is the
same probe with form 1 in both blocks: ordinary prefix matching on the same words, positions and targets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_int, is_int
from ..errors import InputError
from .passages import PASSAGES

__all__ = ["FuzzyProbes", "WordPair", "candidate_words", "word_pairs", "given_pairs", "fuzzy_probes", "MIN_WORDS"]

MIN_WORDS = 4  # words per block: at least three scored queries per probe


@dataclass(frozen=True)
class WordPair:
    """One word in two surface forms, each one token: ``form1`` (lowercase) is ``id1``, ``form2`` (capitalised)
    is ``id2``."""

    form1: str
    form2: str
    id1: int
    id2: int


@dataclass(frozen=True)
class FuzzyProbes:
    """``fuzzy`` ``[n, length]``: form 1 then form 2; ``exact`` ``[n, length]``: form 1 in both blocks (the
    control); ``queries``/``targets`` ``[n, m]``: the scored query positions and each one's target (the
    position after the earlier copy of the query's word), the same in both; ``pairs``: the word pairs that
    occur, in the order of the pool."""

    fuzzy: torch.Tensor
    exact: torch.Tensor
    queries: torch.Tensor
    targets: torch.Tensor
    pairs: tuple[WordPair, ...]


def candidate_words(texts: Iterable[str] | None = None) -> list[str]:
    """The distinct lowercase words (letters only, three or more) of ``texts`` (default: the shipped passages),
    in order of first appearance."""
    seen: dict[str, None] = {}
    for text in PASSAGES.values() if texts is None else texts:
        for word in re.findall(r"[A-Za-z]{3,}", text):
            seen.setdefault(word.lower(), None)
    return list(seen)


def word_pairs(tokenizer: Any, words: Sequence[str] | None = None, exclude: Iterable[int] = ()) -> list[WordPair]:
    """The usable pairs of ``words`` (default ``candidate_words()``) under ``tokenizer`` (the rule of the module
    docstring), in the order of ``words``; ``exclude``: ids no form may have (the model's BOS)."""
    special = {int(i) for i in (*(getattr(tokenizer, "all_special_ids", None) or ()), *exclude)}
    unk = getattr(tokenizer, "unk_token_id", None)
    special |= {int(unk)} if isinstance(unk, int) else set()
    used: set[int] = set()
    out = []
    for word in candidate_words() if words is None else words:
        lower, upper = word.lower(), word[:1].upper() + word[1:].lower()
        for prefix in (" ", ""):
            ids = (_one_token(tokenizer, prefix + lower, lower), _one_token(tokenizer, prefix + upper, upper))
            if None not in ids:
                break
        if None in ids or ids[0] == ids[1] or {*ids} & (special | used):
            continue
        used.update(ids)
        out.append(WordPair(lower, upper, ids[0], ids[1]))
    return out


def given_pairs(pairs: Any, tokenizer: Any, vocab: int | None, exclude: Iterable[int] = ()) -> list[WordPair]:
    """The user's ``pairs``: ``(form 1, form 2)`` token ids (a word and its other case, or its translation), or
    strings the ``tokenizer`` writes as one token each. ``InputError`` for a pair that is not two distinct
    one-token forms, an id outside the vocabulary or in ``exclude`` (the BOS), or an id in two pairs (then an
    exact match could join the blocks)."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InputError(f"pairs must be a list of (form 1, form 2) pairs, got {type(pairs).__name__}")
    out, used = [], set(int(i) for i in exclude)
    for k, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputError(f"pairs[{k}] must be two forms (token ids or strings), got {pair!r}")
        ids = [_given_id(form, tokenizer, vocab, f"pairs[{k}]") for form in pair]
        if ids[0] == ids[1] or {*ids} & used:
            raise InputError(
                f"pairs[{k}] {pair!r}: its two forms must be different tokens, neither the BOS nor in another pair"
            )
        used.update(ids)
        out.append(WordPair(*(str(f) if isinstance(f, str) else str(i) for f, i in zip(pair, ids)), ids[0], ids[1]))
    return out


def _given_id(form: Any, tokenizer: Any, vocab: int | None, where: str) -> int:
    if isinstance(form, str):
        if tokenizer is None:
            raise InputError(f"{where}: {form!r} is a string but the model has no tokenizer; give token ids")
        ids = list(tokenizer.encode(form, add_special_tokens=False))
        if len(ids) != 1:
            raise InputError(f"{where}: {form!r} is {len(ids)} tokens ({ids}); each form must be one token")
        return int(ids[0])
    if isinstance(form, torch.Tensor) and form.numel() == 1:
        form = form.item()
    if not is_int(form):  # numpy integers too; not bools
        raise InputError(f"{where}: a form must be a token id or a string, got {form!r}")
    value = int(form)
    if value < 0 or (vocab is not None and value >= vocab):
        raise InputError(f"{where}: token id {value} is outside the vocabulary (0..{vocab - 1 if vocab else '?'})")
    return value


def _one_token(tokenizer: Any, text: str, word: str) -> int | None:
    """The id of ``text`` where it is one token that decodes back to ``word``; else ``None``."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    if len(ids) != 1 or tokenizer.decode(ids).strip() != word:
        return None
    return int(ids[0])


def fuzzy_probes(pairs: Sequence[WordPair], n: int, n_words: int, bos: int | None, seed: int) -> FuzzyProbes:
    """``n`` probes of ``n_words`` pairs per block (``[BOS] + 2 * n_words`` tokens; see the module docstring),
    drawn with a ``torch.Generator`` seeded by ``seed``. ``InputError`` where ``pairs`` hold fewer than
    ``n_words`` pairs or ``n_words`` is below ``MIN_WORDS``."""
    check_int("n_probes", n, 1)
    check_int("words per block", n_words, MIN_WORDS)
    if len(pairs) < n_words:
        raise InputError(f"the probe needs {n_words} word pairs per block but only {len(pairs)} are usable")
    g = torch.Generator().manual_seed(seed)
    head = [] if bos is None else [int(bos)]
    off = len(head)
    fuzzy, exact, queries, targets, seen = [], [], [], [], set()
    for _ in range(n):
        chosen = torch.randperm(len(pairs), generator=g)[:n_words].tolist()
        order = torch.randperm(n_words, generator=g).tolist()  # block 2: block 1's word at order[j]
        first = [pairs[i].id1 for i in chosen]
        second = [pairs[chosen[i]].id2 for i in order]
        _check_blocks(head, first, second)
        fuzzy.append(head + first + second)
        exact.append(head + first + [first[i] for i in order])
        scored = [j for j, i in enumerate(order) if i < n_words - 1]  # the last form-1 word has no follower
        queries.append([off + n_words + j for j in scored])
        targets.append([off + order[j] + 1 for j in scored])
        seen.update(chosen)
    as_long = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    used = tuple(p for i, p in enumerate(pairs) if i in seen)
    return FuzzyProbes(as_long(fuzzy), as_long(exact), as_long(queries), as_long(targets), used)


def _check_blocks(head: list[int], first: list[int], second: list[int]) -> None:
    """The probe's invariant: distinct words, and no token of block 2 (or the BOS) in block 1, so that no
    exact match joins the blocks. A failure is a bug in the pair rule, never the user's input."""
    one, two = set(first), set(second)
    if len(one) != len(first) or len(two) != len(second) or one & two or (one | two) & set(head):
        raise RuntimeError(f"fuzzy probe with an exact match between its blocks: {first} / {second}")
