"""Token vs concept induction heads, one call (Feucht, Todd, Wallace and Bau, COLM 2025, "The Dual-Route
Model of Induction", arXiv 2504.03022): ``concept_induction(model)`` returns a ``DualRouteResult``.

Token induction heads copy the next token of an earlier repeat verbatim; concept induction heads attend to
the *end* of an earlier multi-token word and carry its meaning. Both are measured on the probes of
``probes.dual_route`` (``[BOS] r1 e r2 [sep] r1 e[0]``, one length, no padding):

* attention form: the value-weighted attention ``A[q, k] |v_k| / sum_j A[q, j] |v_j|`` of the query (the
  last token of the second ``r1``) on ``start(e)`` with ``e`` random tokens (``token_induction``) and on
  ``end(e)`` with ``e`` a real word (``concept_induction``); each head's own value vectors, grouped-query
  heads expanded (``weighting="attention"``: plain ``A[q, k]``);
* causal form (``effects=``): each head's output at the query patched from the clean run into the
  corrupted one (``e`` replaced by other random tokens), by attribution patching with the top heads
  verified exactly, or exactly for every head (``analysis.route_effects``):
  ``token_effect`` = change of ``P(e[0])`` at the query (random ``e``), ``concept_effect`` = change of
  ``P(e[1])`` one position later (real words).

Every number is a mean over probes with a seeded bootstrap interval over probes (``HeadScore.intervals``).
The overall score is the token score (its interval in ``ci_low``/``ci_high``). Cost: two forwards for the
attention form; the causal form's in ``analysis.route_effects`` (``DualRouteResult.settings["forwards"]``
counts them, a backward as a forward).
Limits: causal self-attention (bidirectional attention is refused; an encoder-decoder is measured on its
decoder, the tokens going to the encoder too, as the capture does); value weighting needs sites that pass
their value vectors (HF attention interfaces, SDPA, ``nn.MultiheadAttention``; else
``CustomSites(values=...)`` passed as ``sites=``). A head in the last layer has ``concept_effect`` 0 by
construction: patched at the query, it cannot reach the next position without a later layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from .._validate import check_choice, check_int
from ..engine.ablator import Ablator
from ..engine.batch import Batch
from ..engine.dual_route import value_weighted_keys
from ..engine.engine import Engine
from ..engine.sites import CustomSites
from ..errors import InputError
from ..metrics.stats import bootstrap_mean
from ..probes.dual_route import DualRouteProbes, check_words, dual_route_probes, words_from_text
from .head_score import HeadScore
from .results import ScanResult
from .route_effects import ESTIMATORS, ROWS, Estimator, route_effects

__all__ = [
    "concept_induction",
    "DualRouteResult",
    "Weighting",
    "WEIGHTINGS",
    "probe_words",
    "separator_id",
    "MAX_PROBES",
]
MAX_PROBES = 100_000  # probes per route: beyond it the probe building alone takes minutes

Weighting = Literal["value", "attention"]
WEIGHTINGS: tuple[str, ...] = Weighting.__args__


@dataclass(frozen=True, repr=False)  # repr: the report, as the base's
class DualRouteResult(ScanResult):
    """Every head's token and concept induction scores (``concept_induction``), with intervals; the overall
    score is the token score. ``top_token(n)``, ``top_concept(n)`` and ``overlap(n)`` compare the routes.

    The two routes are those of Feucht, Todd, Wallace and Bau (COLM 2025, "The Dual-Route Model of
    Induction", arXiv 2504.03022): token induction heads copy the next token of an earlier repeat verbatim,
    concept induction heads attend to the end of an earlier multi-token word. Views, reports, JSON and
    DataFrames work as for the other scan results.

    Attributes:
        head_scores: one ``HeadScore`` per head, each carrying ``token_induction`` and ``concept_induction``
            (shares of value-weighted attention, in [0, 1]; NaN for a head that writes nothing under value
            weighting) and, with ``effects``, ``token_effect`` and ``concept_effect`` (changes of a
            probability), each with its bootstrap 95% interval over probes in ``intervals``;
            ``overall_score`` is the token score, its interval in ``ci_low``/``ci_high``.
        threshold: the token score at or above which a head counts as a token induction head
            (``induction_heads``; default 0.3).
        model_name: the model's name, as the reports print it.
        n_layers: the model's number of layers.
        n_heads: the widest attention layer's number of heads (a config may state no single head count).
        settings: how the scores were made: ``n_probes`` (per route), ``length`` (tokens per probe),
            ``weighting`` (``"value"`` or ``"attention"``), ``n_words``, ``words`` (their token ids),
            ``separator`` (the token id between the copies), ``forwards`` (forwards run, a backward counted as
            one), ``n_boot`` and, with ``effects``, ``token_effect``/``concept_effect``: the estimator and what
            it verified.
        seed: the seed of the probes and the bootstrap.

    Examples:
        >>> from induction_nb import HandBuiltInduction, concept_induction
        >>> words = [[5, 6], [7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17, 18]]
        >>> result = concept_induction(HandBuiltInduction(), words, n_probes=8, n_boot=50, effects=None)
        >>> result.induction_heads, result.n_layers, result.n_heads
        ([(1, 0)], 2, 4)
        >>> head = result.score(1, 0)  # the hand-built induction head: a token head, not a concept head
        >>> head.token_induction > 0.99, head.concept_induction < 1e-3
        (True, True)
        >>> result.settings["n_probes"], result.settings["length"]
        (8, 32)
    """

    kind: ClassVar[str] = "dual_route"
    title: ClassVar[str] = "TOKEN VS CONCEPT INDUCTION REPORT"
    head_noun: ClassVar[str] = "token induction head"
    overall_meaning: ClassVar[str] = "overall = token induction score (value-weighted attention on start(e))"

    def measured_on(self) -> str:
        return "dual-route probes (random and real-word e)"

    def notes(self) -> list[str]:
        s = self.settings
        lines = [
            f"{s.get('n_probes')} probes per route of {s.get('length')} tokens, {s.get('n_words')} words, "
            f"{s.get('weighting')} weighting; {s.get('forwards')} forwards"
        ]
        for n in (10,):
            shared = self.overlap(n)
            lines.append(f"top-{n} token and concept heads share {len(shared)}: {_names(shared) or 'none'}")
        lines.append(f"top concept heads: {_names([(h.layer, h.head) for h in self.top_concept(5)])}")
        return lines

    def top_token(self, n: int = 10) -> list[HeadScore]:
        """The ``n`` heads with the highest token induction score."""
        return self.get_top_heads(n, "token_induction")

    def top_concept(self, n: int = 10) -> list[HeadScore]:
        """The ``n`` heads with the highest concept induction score."""
        return self.get_top_heads(n, "concept_induction")

    def overlap(self, n: int = 10) -> list[tuple[int, int]]:
        """The heads in both top-``n`` sets (Feucht et al. find 2 of 40 for Llama-2-7b)."""
        concept = {(h.layer, h.head) for h in self.top_concept(n)}
        return [(h.layer, h.head) for h in self.top_token(n) if (h.layer, h.head) in concept]


def concept_induction(
    model: Any,
    words: Sequence[str] | Sequence[Sequence[int]] | None = None,
    *,
    n_probes: int = 32,
    length: int | None = None,
    effects: Estimator | None = "attribution",
    verify_top: int = 10,
    weighting: Weighting = "value",
    separator: int | None = None,
    heads_per_forward: int | None = None,
    n_boot: int = 1000,
    threshold: float = 0.3,
    seed: int = 0,
    sites: CustomSites | None = None,
    remote: Any = False,
) -> DualRouteResult:
    """Token vs concept induction scores of every head (see the module docstring).

    Feucht, Todd, Wallace and Bau (COLM 2025, "The Dual-Route Model of Induction", arXiv 2504.03022): token
    induction heads copy the next token of an earlier repeat verbatim; concept induction heads attend to the
    *end* of an earlier multi-token word and carry its meaning. Both are measured on the probes
    ``[BOS] r1 e r2 [sep] r1 e[0]`` (one length, no padding). Attention form: the value-weighted attention
    ``A[q, k] |v_k| / sum_j A[q, j] |v_j|`` of the query (the last token) on ``start(e)`` with ``e`` random
    tokens (token score) and on ``end(e)`` with ``e`` a real word (concept score), each head's own value
    vectors, grouped-query heads expanded. Causal form (``effects``): each head's output at the query patched
    from the clean run into the corrupted one (``e`` replaced by other random tokens): ``token_effect`` =
    change of ``P(e[0])`` at the query (random ``e``), ``concept_effect`` = change of ``P(e[1])`` one position
    later (real words). Every number is a mean over probes with a seeded bootstrap interval over probes. Cost:
    two forwards for the attention form, plus the causal form's (``settings["forwards"]`` counts them, a
    backward as a forward). Limits: causal self-attention only (bidirectional attention is refused; an
    encoder-decoder is measured on its decoder); a head in the last layer has ``concept_effect`` 0 by
    construction (patched at the query, it cannot reach the next position without a later layer).

    Args:
        model: the model to scan: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, or a plain
            ``torch.nn.Module`` in eval mode (see ``load_model``).
        words: real multi-token words (strings through the tokenizer, or token-id lists; 2 to 5 tokens
            each); default: the words of the shipped public-domain passages that the tokenizer splits into 2 to
            5 tokens (a model without a tokenizer needs id lists).
        n_probes: probes per route (2..100000; default 32).
        length: the probe length in tokens (at least 17, 18 with a BOS; default 32, shorter where the model's
            positions demand).
        effects: the causal form's estimator (``analysis.route_effects``): ``"attribution"`` (default,
            attribution patching with the ``verify_top`` largest measured exactly), ``"exact"`` (every head
            patched exactly), or ``None``: the attention form only.
        verify_top: with ``effects="attribution"``, how many of the largest estimated effects are measured
            exactly (an integer >= 0; default 10).
        weighting: ``"value"`` (default: value-weighted attention, as Feucht et al.) or ``"attention"`` (plain
            attention weights ``A[q, k]``; for sites that pass no value vectors).
        separator: the token id between the copies (default: the tokenizer's newline, or a pool id in no
            word); not the BOS and in no word.
        heads_per_forward: patched copies per forward in the causal form (1..256; default: as many as fit 256
            sequences).
        n_boot: bootstrap resamples of the 95% intervals over probes (>= 1; default 1000).
        threshold: the token score at or above which a head counts as a token induction head (a finite
            number; default 0.3).
        seed: seeds the probes and the bootstrap (default 0).
        sites: a ``CustomSites`` naming the attention (with ``values=`` for value weighting); default: the
            sites discovery finds.
        remote: ``False`` (default) to run locally, ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        DualRouteResult: one ``HeadScore`` per head carrying ``token_induction``, ``concept_induction``
            (shares of value-weighted attention, in [0, 1]) and, with ``effects``, ``token_effect`` and
            ``concept_effect`` (probability changes), each with its 95% interval; the overall score is the
            token score. ``top_token(n)``, ``top_concept(n)`` and ``overlap(n)`` compare the routes.

    Raises:
        InputError: for words that do not fit (not 2 to 5 tokens, ids outside the vocabulary, strings or the
            default list without a tokenizer), a separator in a word, the BOS or outside the vocabulary,
            settings out of range (``n_probes`` 2..100000, ``n_boot`` >= 1, ``heads_per_forward`` 1..256, a
            finite ``threshold``, an unknown ``weighting`` or ``effects``, ``length`` too short or beyond the
            model's positions), a model too short or with too few token ids for the probe, a model in training
            mode, ``sites`` that are not a ``CustomSites``, sites without value vectors (pass
            ``weighting="attention"``), attention layers that differ from the patchable ones, or
            bidirectional attention.
        AttentionNotFoundError: when no attention module can be found (name the sites with ``CustomSites``).
        CaptureCheckError: when reading the model inside the trace fails (name the sites with
            ``CustomSites``).
        RemoteExecutionError: when a remote (NDIF) run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, concept_induction
        >>> words = [[5, 6], [7, 8, 9], [10, 11, 12, 13], [14, 15, 16, 17, 18]]  # token ids, 2-5 per word
        >>> result = concept_induction(HandBuiltInduction(), words, n_probes=8, n_boot=50)
        >>> top = result.top_token(1)[0]
        >>> (top.layer, top.head), top.token_induction > 0.99, top.concept_induction < 1e-3
        ((1, 0), True, True)
        >>> best = result.get_top_heads(1, "token_effect")[0]  # patching it in raises P(e[0]) most
        >>> (best.layer, best.head), best.token_effect > 0
        ((1, 0), True)

        On a real model, with its tokenizer and the shipped words:

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> result = concept_induction(load_model())  # doctest: +SKIP
        >>> [(h.layer, h.head) for h in result.top_concept(5)]  # doctest: +SKIP
    """
    engine = Engine.of(model, remote)
    _check_numbers(n_probes, n_boot, threshold, heads_per_forward, verify_top, weighting, effects)
    named = _named_sites(engine, sites)
    gen = engine.generator(seed)
    ids = probe_words(engine, words)
    length = _length(engine, length, gen.bos_token_id is not None)
    sep = separator_id(engine, separator, gen, ids)
    _check_pool(gen, length)
    token = dual_route_probes(gen, None, n_probes, length, sep, seed, [len(w) for w in ids])
    concept = dual_route_probes(gen, ids, n_probes, length, sep, seed + 1)
    per_probe, heads = _attention_form(engine, token, concept, weighting, named)
    forwards = 2
    settings = {"n_probes": n_probes, "length": length, "weighting": weighting, "n_words": len(ids), "separator": sep}
    settings.update(words=[list(w) for w in ids])  # route_ablation reads the same words
    if effects is not None:
        ab = Ablator(model, remote=remote)
        if list(ab.layers) != list(heads):
            raise InputError(f"the attention layers {list(heads)} differ from the patchable layers {ab.layers}")
        for metric, probes, j in (("token_effect", token, 0), ("concept_effect", concept, 1)):
            per_probe[metric], more, info = route_effects(ab, probes, j, effects, verify_top, heads_per_forward)
            forwards += more
            settings[metric] = {"estimator": effects, **info}
    settings.update(forwards=forwards, n_boot=n_boot)
    grid = max(heads.values())  # the widest layer (a config may state no single head count)
    scores = _head_scores(per_probe, heads, n_boot, seed)
    return DualRouteResult(scores, threshold, engine.name, engine.n_layers, grid, settings, seed)


def _attention_form(
    engine: Engine, token: DualRouteProbes, concept: DualRouteProbes, weighting: str, sites: tuple | None
) -> tuple[dict[str, torch.Tensor], dict[int, int]]:
    """``({metric: [n, layer, head]}, {layer: heads})``: the weight on ``start(e)`` (token probes) and
    ``end(e)`` (concept probes), value-weighted or plain."""
    need = weighting == "value"
    index = 0 if need else 1
    tok, heads = value_weighted_keys(engine, Batch(token.clean), token.query, token.start[:, None], need, sites)
    con, _ = value_weighted_keys(engine, Batch(concept.clean), concept.query, concept.end[:, None], need, sites)
    return {"token_induction": tok[index, ..., 0], "concept_induction": con[index, ..., 0]}, heads


def probe_words(engine: Engine, words: Any) -> list[tuple[int, ...]]:
    """The words as token-id tuples (default: the shipped passages' 2-5 token words); ``InputError`` as
    ``probes.dual_route.check_words``, or where no tokenizer can split the default list."""
    tok = engine.tokenizer
    if words is None:
        if tok is None:
            raise InputError(
                f"{engine.name} has no tokenizer, so the shipped word list cannot be tokenized: pass "
                "words=[[ids of a word], ...] (2 to 5 token ids each)"
            )
        words = words_from_text(tok)
        if not words:
            raise InputError("no word of the shipped passages is 2 to 5 tokens under this tokenizer: pass words=[...]")
    return check_words(words, tok, engine.vocab_size)


def _named_sites(engine: Engine, sites: Any) -> tuple | None:
    """The user's sites (``CustomSites``), expanded; ``None``: the sites discovery finds (found here)."""
    if sites is None:
        engine.sites()
        return None
    if not isinstance(sites, CustomSites):
        raise InputError(f"sites must be a CustomSites(...), got {type(sites).__name__}")
    engine.check_forward()
    return sites.expand()


def _check_numbers(
    n_probes: Any, n_boot: Any, threshold: Any, per_forward: Any, verify_top: Any, weighting: Any, effects: Any
) -> None:
    """``InputError`` for a setting out of range (before anything runs)."""
    check_choice("weighting", weighting, WEIGHTINGS)
    check_int("n_probes", n_probes, 2, MAX_PROBES)
    check_int("n_boot", n_boot, 1)
    check_int("verify_top", verify_top, 0)
    if per_forward is not None:
        check_int("heads_per_forward", per_forward, 1, ROWS)
    if effects is not None:
        check_choice("effects", effects, ESTIMATORS)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise InputError(f"threshold must be a finite number (a token induction score), got {threshold!r}")


def _length(engine: Engine, length: int | None, bos: bool) -> int:
    shortest = 17 + int(bos)
    top = engine.max_positions
    if top is not None and top < shortest:
        raise InputError(
            f"the model has {top} positions; the dual-route probe needs at least {shortest} "
            "(a word of up to 5 tokens, the random text around it and its repeat)"
        )
    length = check_int("length", min(32, top or 32) if length is None else length, shortest)
    if top is not None and length > top:
        raise InputError(f"length {length} exceeds the model's {top} positions: pass length<={top}")
    return length


def _check_pool(gen: Any, length: int) -> None:
    """Refuse a vocabulary too small for distinct random tokens: the query's token would recur in ``r1``
    and its induction target would be ambiguous."""
    if len(gen.pool) < length:
        raise InputError(
            f"the probe needs up to {length} distinct random token ids but the model has {len(gen.pool)} usable "
            f"ones: pass a shorter length (>= 17) or use a model with a larger vocabulary"
        )


def separator_id(engine: Engine, separator: int | None, gen: Any, words: Sequence[Sequence[int]] = ()) -> int:
    """The token between the copies: ``separator``, else the tokenizer's newline, else the first id of the
    random pool in no word. ``InputError`` for a separator outside the vocabulary, the BOS, or in a word
    (the probe's positions would no longer be the only copies of their tokens)."""
    used = {int(t) for w in words for t in w}
    if separator is None:
        tok = engine.tokenizer
        ids = tok.encode("\n", add_special_tokens=False) if tok is not None else []
        if ids and int(ids[-1]) not in used:
            return int(ids[-1])
        free = [int(t) for t in gen.pool if int(t) not in used]
        if not free:
            raise InputError("every usable token id is in a word: pass fewer words or separator=<an id in none>")
        return free[0]
    separator = check_int("separator", separator, 0, (engine.vocab_size or separator + 1) - 1)
    if separator in used or separator == gen.bos_token_id:
        raise InputError(f"separator {separator} is the BOS or a token of one of the words: pass another id")
    return separator


def _head_scores(
    per_probe: dict[str, torch.Tensor], heads: dict[int, int], n_boot: int, seed: int
) -> tuple[HeadScore, ...]:
    means = {k: v.mean(0) for k, v in per_probe.items()}
    bounds = {k: bootstrap_mean(v, n=n_boot, seed=seed) for k, v in per_probe.items()}
    scores = []
    for i, (layer, n_heads) in enumerate(heads.items()):
        for h in range(n_heads):
            values = {k: float(m[i, h]) for k, m in means.items()}
            ci = {k: (float(lo[i, h]), float(hi[i, h])) for k, (lo, hi) in bounds.items()}
            low, high = ci["token_induction"]
            scores.append(HeadScore(layer, h, {"overall_score": values["token_induction"], **values}, low, high, ci))
    return tuple(scores)


def _names(heads: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"L{l}H{h}" for l, h in heads)
