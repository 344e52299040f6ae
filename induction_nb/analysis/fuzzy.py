"""Fuzzy copying, one call (Olsson, Elhage, Nanda et al. 2022, "In-context Learning and Induction Heads",
the generality argument: the same heads also copy fuzzily and abstractly, matching an earlier token that is
only *similar* to the current one; translation is the extreme case): ``fuzzy_copy(model)`` returns a
``FuzzyCopyResult``.

Measured on the probes of ``probes.fuzzy``: ``[BOS] + block1 + block2``, ``n`` words in lowercase form
(``" cat"``) then the same words capitalised (``" Cat"``) in a fresh random order, every word one token in
both forms and no token id shared by the blocks. For a query at form-2 word ``w_i``, the target is the
position right after form-1 ``w_i``. A head's score is the mean over scored queries of its attention on
the target (metrics.md's prefix matching under a fuzzy match), averaged over probes, with a seeded bootstrap
95% interval over probes. The exact-match control (``exact``) is the same probe with form 1 in both blocks:
ordinary prefix matching on the same words, positions and targets; ``scores / exact`` is how much of a
head's matching survives a change of surface form. One length, no padding; a uniform head scores about
``mean(1 / (q + 1))`` over the query positions ``q`` (counted from 0), a head that always attends to the
target 1. Cost: ``2 * n_probes`` sequences, 64 per forward. Limits: causal self-attention (a query that
attends to later keys is refused); an encoder-decoder is measured on its decoder; the tokenizer must be
cased (a case-folding one gives no word pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_int, is_int
from ..engine.capture import stream_attention
from ..engine.engine import Engine
from ..engine.sites import CustomSites
from ..errors import InputError
from ..metrics.stats import bootstrap_mean
from ..probes.fuzzy import MIN_WORDS, FuzzyProbes, fuzzy_probes, given_pairs, word_pairs

__all__ = ["FuzzyCopyResult", "fuzzy_copy", "MAX_PROBES", "WORDS_PER_BLOCK"]

MAX_PROBES = 100_000
WORDS_PER_BLOCK = 24  # the default block: 49 tokens with a BOS, about Olsson et al.'s 25 repeated tokens
_PER_FORWARD = 64  # sequences per forward (fuzzy and exact together)
_AHEAD = 1e-3  # attention a query may put on later keys before the model counts as bidirectional


@dataclass(frozen=True, repr=False)
class FuzzyCopyResult:
    """Every head's fuzzy-copy score and its exact-match control (``fuzzy_copy``).

    ``scores``, ``ci_low``, ``ci_high``: ``[n_layers, n_heads]`` float32, the mean attention on the fuzzy
    targets (a share of the query's attention, in [0, 1]) and its bootstrap 95% interval over probes; rows
    are the model's layer indices, NaN for a layer without attention (and beyond a smaller layer's heads).
    ``exact``, ``exact_ci_low``, ``exact_ci_high``: the same on the exact-match control. ``layers``: the layers
    measured. ``words``: the ``(form 1, form 2)`` pairs that occur in the probes. ``n_probes``, ``length`` (tokens
    per probe, the BOS included), ``seed``: as run; ``queries``: scored queries per probe; ``model_name``.
    ``top(n, exact=False)`` lists the ``n`` best heads as ``((layer, head), score)``; ``scores / exact`` is how
    much of a head's matching survives a change of surface form (Olsson et al. 2022, "In-context Learning and
    Induction Heads", arXiv 2209.11895: induction heads also copy fuzzily).

    Attributes:
        scores: ``[n_layers, n_heads]`` float32: each head's mean attention from a form-2 word's query on the
            position right after its form-1 twin (a share of the query's attention, in [0, 1]), averaged over
            probes; NaN for a layer without attention and beyond a smaller layer's heads.
        ci_low: ``[n_layers, n_heads]`` float32: the lower bound of the bootstrap 95% interval of ``scores``
            over probes.
        ci_high: ``[n_layers, n_heads]`` float32: the upper bound of that interval.
        exact: ``[n_layers, n_heads]`` float32: the same score on the exact-match control (form 1 in both
            blocks: ordinary prefix matching on the same words, positions and targets).
        exact_ci_low: ``[n_layers, n_heads]`` float32: the lower bound of the 95% interval of ``exact``.
        exact_ci_high: ``[n_layers, n_heads]`` float32: the upper bound of the 95% interval of ``exact``.
        layers: the layer indices measured (the rows of the grids that hold numbers).
        words: the ``(form 1, form 2)`` pairs that occur in the probes, as strings (token ids written as
            strings where the pairs were given as ids).
        n_probes: probe sequences run (each also run as its exact control).
        length: tokens per probe, the BOS included.
        seed: the seed of the probes and the bootstrap.
        queries: scored queries per probe.
        model_name: the model's name, as the repr prints it.

    Examples:
        >>> from induction_nb import HandBuiltInduction, fuzzy_copy
        >>> pairs = [(i, i + 20) for i in range(2, 12)]  # (form 1, form 2) token ids: unrelated in this model
        >>> result = fuzzy_copy(HandBuiltInduction(), pairs=pairs, n_probes=4, n_boot=20, length=16)
        >>> tuple(result.scores.shape), result.layers, result.length, len(result.words)
        ((2, 4), (0, 1), 16, 10)
        >>> result.top(1, exact=True)[0][0]  # the exact-match induction head leads the control
        (1, 0)
        >>> bool(result.exact_ci_low[1, 0] <= result.exact[1, 0] <= result.exact_ci_high[1, 0])
        True
    """

    scores: torch.Tensor
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    exact: torch.Tensor
    exact_ci_low: torch.Tensor
    exact_ci_high: torch.Tensor
    layers: tuple[int, ...]
    words: tuple[tuple[str, str], ...]
    n_probes: int
    length: int
    seed: int
    queries: int = 0
    model_name: str = ""

    def top(self, n: int = 10, exact: bool = False) -> list[tuple[tuple[int, int], float]]:
        """The ``n`` heads with the highest fuzzy score (``exact=True``: exact-control score) as
        ``((layer, head), score)``, highest first (NaN entries skipped; ties by layer, then head)."""
        n = check_int("n", n, 0)
        grid = self.exact if exact else self.scores
        found = [((l, h), float(grid[l, h])) for l, h in torch.nonzero(~grid.isnan()).tolist()]
        return sorted(found, key=lambda x: (-x[1], x[0]))[:n]

    def __repr__(self) -> str:
        best = ", ".join(f"L{l}H{h} {s:.2f} (exact {float(self.exact[l, h]):.2f})" for (l, h), s in self.top(3))
        return (
            f"FuzzyCopyResult({self.model_name or 'model'}: {self.n_probes} probes of {self.length} tokens, "
            f"{len(self.words)} word pairs; top fuzzy: {best or 'none'})"
        )


def fuzzy_copy(
    model: Any,
    *,
    n_probes: int = 32,
    length: int | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    sites: CustomSites | None = None,
    remote: Any = False,
    pairs: Sequence[tuple[Any, Any]] | None = None,
) -> FuzzyCopyResult:
    """Fuzzy-copy and exact-control prefix-matching scores of every head (see the module docstring).

    Olsson, Elhage, Nanda et al. (2022, "In-context Learning and Induction Heads", arXiv 2209.11895), the
    generality argument: the same heads also copy fuzzily, matching an earlier token that is only *similar*
    to the current one. Probes ``[BOS] + block1 + block2``: ``n`` words in lowercase form (``" cat"``), then
    the same words capitalised (``" Cat"``) in a fresh random order, every word one token in both forms and no
    token id shared by the blocks. For a query at form-2 word ``w_i`` the target is the position right after
    form-1 ``w_i``; a head's score is the mean over scored queries of its attention on the target, averaged
    over probes, with a seeded bootstrap 95% interval over probes. The exact-match control runs the same probe
    with form 1 in both blocks. A uniform head scores about ``mean(1 / (q + 1))`` over the query positions
    ``q`` (counted from 0), a head that always attends to the target 1. Cost: ``2 * n_probes`` sequences, 64
    per forward. Limits: causal self-attention (a query that attends to later keys is refused); an
    encoder-decoder is measured on its decoder; the tokenizer must be cased (a case-folding one gives no word
    pairs). The model is not modified.

    Args:
        model: anything ``load_model`` accepts, with its tokenizer (a Hugging Face model, an nnsight
            ``LanguageModel``/``NNsight``, or a plain ``torch.nn.Module`` in eval mode; without a tokenizer,
            pass ``pairs``).
        n_probes: probe sequences (2..100000; default 32), each also run as its exact control.
        length: tokens per probe, the BOS included (default: 2 x 24 words plus the BOS, fewer where the
            model's positions or the word pairs demand); ``length`` minus the BOS must be even (two equal
            blocks of at least 4 words).
        seed: the probes and the bootstrap (an integer, used through a ``torch.Generator``; global RNGs are
            untouched; default 0).
        n_boot: bootstrap resamples of the 95% intervals (>= 1; default 1000).
        sites: a ``CustomSites`` naming the attention (default: the sites discovery finds).
        remote: ``False`` (default) runs locally; ``True`` or a ``RemoteConfig`` runs on NDIF.
        pairs: your own ``(form 1, form 2)`` pairs instead of the case pairs, as token ids or one-token strings
            (e.g. words and their translations, Olsson et al.'s abstract case; needed for a model without a
            tokenizer); at least 4 pairs, two different tokens per pair, no token in two pairs.

    Returns:
        FuzzyCopyResult: tensors ``[n_layers, n_heads]``: ``scores`` (fuzzy, a share of the query's attention
            in [0, 1]) and ``exact`` (the exact-match control), each with its bootstrap 95% interval over
            probes, and the word pairs, probe length and scored queries per probe as run.

    Raises:
        InputError: for a model without a tokenizer (and no ``pairs``), bad ``pairs``, fewer usable word pairs
            than the probe needs (a case-folding or tiny tokenizer), a model with too few positions, a bad
            ``n_probes``/``n_boot``/``length``/``seed`` (``length`` beyond the model's positions or not a BOS
            plus two equal blocks), ``sites`` that are not a ``CustomSites``, a model in training mode, or
            attention on later keys (bidirectional).
        AttentionNotFoundError: when no attention module can be found (name it with ``CustomSites``).
        CaptureCheckError: when a captured attention pattern fails its self-check.
        RemoteExecutionError: when a remote (NDIF) run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, fuzzy_copy
        >>> pairs = [(i, i + 20) for i in range(2, 12)]  # (form 1, form 2) token ids: unrelated in this model
        >>> result = fuzzy_copy(HandBuiltInduction(), pairs=pairs, n_probes=4, n_boot=20, length=16)
        >>> tuple(result.scores.shape), result.queries
        ((2, 4), 7)
        >>> exact, fuzzy = float(result.exact[1, 0]), float(result.scores[1, 0])
        >>> exact > 0.9, fuzzy < 0.1  # L1H0 matches exact tokens only: no fuzzy copying
        (True, True)

        On a real model with a cased tokenizer (the case pairs of the shipped passages):

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> result = fuzzy_copy(load_model())  # doctest: +SKIP
        >>> result.top(5)  # doctest: +SKIP
    """
    engine = Engine.of(model, remote)
    tokenizer = _check_inputs(engine, n_probes, n_boot, seed, sites, pairs is not None)
    bos = engine.bos_token_id()
    exclude, given = () if bos is None else (bos,), pairs is not None
    if given:
        pairs = given_pairs(pairs, tokenizer, engine.vocab_size, exclude)
    else:
        pairs = word_pairs(tokenizer, exclude=exclude)
    n_words = _words_per_block(engine.max_positions, length, len(pairs), bos is not None, given)
    probes = fuzzy_probes(pairs, n_probes, n_words, bos, seed)
    per_probe, layers = _measure(engine, probes, sites)  # {"fuzzy"/"exact": [n, site, head]}
    grid = _grids(per_probe, layers, engine.n_layers, n_boot, seed)
    return FuzzyCopyResult(
        *(grid[f"{name}{end}"] for name in ("fuzzy", "exact") for end in ("", "_low", "_high")),
        layers=layers,
        words=tuple((p.form1, p.form2) for p in probes.pairs),
        n_probes=n_probes,
        length=probes.fuzzy.shape[1],
        seed=seed,
        queries=probes.queries.shape[1],
        model_name=engine.name,
    )


def _check_inputs(engine: Engine, n_probes: Any, n_boot: Any, seed: Any, sites: Any, given: bool) -> Any:
    """The model's tokenizer, after ``InputError`` for a setting out of range or a model without one."""
    check_int("n_probes", n_probes, 2, MAX_PROBES)
    check_int("n_boot", n_boot, 1)
    if not is_int(seed):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if sites is not None and not isinstance(sites, CustomSites):
        raise InputError(f"sites must be a CustomSites(...), got {type(sites).__name__}")
    if engine.tokenizer is None and not given:
        raise InputError(
            f"fuzzy copy needs a tokenizer: {engine.name} has none, so no word can be written in two surface "
            "forms; pass pairs=[(id, id), ...] (two one-token forms of each word), or load the model from a "
            "folder or hub id with its tokenizer files (load_model(path)), or set "
            "model.tokenizer = AutoTokenizer.from_pretrained(...) before the call"
        )
    return engine.tokenizer


def _grids(
    per_probe: dict[str, torch.Tensor], layers: tuple[int, ...], n_layers: int, n_boot: int, seed: int
) -> dict[str, torch.Tensor]:
    """``{name, name_low, name_high}`` for each ``per_probe`` entry ``[n, site, head]``: the mean over probes and
    its bootstrap 95% interval, on the ``[n_layers, head]`` grid (NaN rows for layers without attention)."""
    grid: dict[str, torch.Tensor] = {}
    for name, values in per_probe.items():
        low, high = bootstrap_mean(values, n=n_boot, seed=seed)
        for key, t in ((name, values.mean(0)), (f"{name}_low", low), (f"{name}_high", high)):
            grid[key] = torch.full((n_layers, values.shape[2]), float("nan"))
            grid[key][list(layers)] = t.float()
    return grid


def _words_per_block(top: int | None, length: int | None, n_pairs: int, bos: bool, given: bool = False) -> int:
    """Words per block for ``length`` (``None``: the default, fit to the positions ``top`` and the pairs)."""
    off = int(bos)
    shortest = off + 2 * MIN_WORDS
    if top is not None and top < shortest:
        raise InputError(
            f"the model has {top} positions; the fuzzy-copy probe needs at least {shortest} "
            f"({'a BOS and ' if bos else ''}two blocks of {MIN_WORDS} words)"
        )
    if n_pairs < MIN_WORDS and given:
        raise InputError(f"pairs= holds {n_pairs} pairs and the probe needs at least {MIN_WORDS}: give more pairs")
    if n_pairs < MIN_WORDS:
        raise InputError(
            f"too few usable word pairs: the tokenizer writes {n_pairs} words of the shipped passages as one token "
            f"each in lowercase and in capitalised form, and the probe needs at least {MIN_WORDS}; fuzzy copy needs "
            "a cased tokenizer whose vocabulary holds common English words whole (a case-folding or tiny one fails)"
        )
    if length is None:
        return min(WORDS_PER_BLOCK, n_pairs, (top - off) // 2 if top is not None else WORDS_PER_BLOCK)
    length = check_int("length", length, shortest)
    if top is not None and length > top:
        raise InputError(f"length {length} exceeds the model's {top} positions: pass length<={top}")
    if (length - off) % 2:
        what = "a BOS and two equal blocks" if bos else "two equal blocks"
        raise InputError(f"length {length} does not split into {what} of words: pass length={length - 1}")
    n_words = (length - off) // 2
    if n_words > n_pairs:
        raise InputError(
            f"too few usable word pairs for length {length}: it needs {n_words} per block and "
            f"{'pairs= holds' if given else 'the tokenizer gives'} {n_pairs}: pass length<={off + 2 * n_pairs}"
        )
    return n_words


class _TargetAttention:
    """Inside the trace: per sequence and head, the mean attention of the queries ``queries`` ``[batch, m]`` on
    their targets ``targets`` ``[batch, m]``; with the layer and the most any query puts on later keys."""

    def __init__(self, queries: torch.Tensor, targets: torch.Tensor):
        self.queries, self.targets = queries, targets

    def __call__(self, layer: int, pattern: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
        b, device = pattern.shape[0], pattern.device
        q, k = self.queries.to(device), self.targets.to(device)
        rows = pattern[torch.arange(b, device=device)[:, None], :, q]  # [batch, m, head, key]
        on = rows.gather(-1, k[:, :, None, None].expand(*rows.shape[:3], 1))[..., 0]  # [batch, m, head]
        later = torch.arange(rows.shape[-1], device=device) > q[..., None]  # [batch, m, key]
        ahead = (rows * later[:, :, None, :]).sum(-1).amax()
        return layer, on.float().mean(1).cpu(), ahead.float().cpu()


def _measure(
    engine: Engine, probes: FuzzyProbes, sites: CustomSites | None
) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """``({"fuzzy": [n, site, head], "exact": [n, site, head]}, layers)``: each probe's mean target attention,
    ``_PER_FORWARD`` sequences per forward (NaN beyond a smaller layer's heads)."""
    n, step = probes.fuzzy.shape[0], _PER_FORWARD // 2
    fuzzy, exact, layers = [], [], ()
    for s in range(0, n, step):
        part = slice(s, s + step)
        tokens = torch.cat([probes.fuzzy[part], probes.exact[part]])
        reducer = _TargetAttention(probes.queries[part].repeat(2, 1), probes.targets[part].repeat(2, 1))
        out = stream_attention(engine, tokens, reducer, sites=sites)
        for layer, _, ahead in out:
            if float(ahead) > _AHEAD:
                raise InputError(
                    f"layer {layer} attends to keys after the query ({float(ahead):.3f} of a row): fuzzy copy measures "
                    "causal self-attention, where a query sees only earlier tokens; this model's is bidirectional"
                )
        width = max(v.shape[1] for _, v, _ in out)
        values = torch.stack([_pad(v, width) for _, v, _ in out], 1)  # [2 * part, site, head]
        half = values.shape[0] // 2
        fuzzy.append(values[:half])
        exact.append(values[half:])
        layers = tuple(layer for layer, _, _ in out)
    return {"fuzzy": torch.cat(fuzzy), "exact": torch.cat(exact)}, layers


def _pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[batch, head]`` padded with NaN to ``n`` heads."""
    if x.shape[1] == n:
        return x
    return torch.cat([x, torch.full((x.shape[0], n - x.shape[1]), float("nan"))], 1)
