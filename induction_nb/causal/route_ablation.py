"""The dual-route causal check (Feucht, Todd, Wallace and Bau, COLM 2025, arXiv 2504.03022): remove the top
token induction heads, or as many top concept induction heads, and see which part of copying a word each
route carries.

On the concept route's probes (``probes.dual_route``, real multi-token words ``e``) extended by ``e[1]``
(``[BOS] r1 e r2 [sep] r1 e[0] e[1]``), two probabilities are read at once: ``P(e[0])`` after the repeated
prefix (*verbatim copying* of the word's first token: the next token of an earlier repeat) and
``P(e[1])`` after ``e[0]`` (*word completion*: the rest of the word once it has started, which Feucht et
al.'s causal form ties to concept heads). Each head set is removed at the output projection's input (zero
or mean ablation, ``engine.ablator``), all sets in one forward; every number is a mean over probes with a
seeded bootstrap interval. What the paper shows beyond this (paraphrase and translation instead of verbatim
copies) needs parallel text, which is not shipped: this check measures copying and completion only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_choice, check_int
from ..analysis.dual_route import MAX_PROBES, DualRouteResult, probe_words, separator_id
from ..engine.ablator import Ablator
from ..errors import InputError
from ..metrics.stats import bootstrap_mean
from ..probes.dual_route import dual_route_probes

__all__ = ["route_ablation", "RouteAblation"]

_READS = ("copy", "completion")


@dataclass(frozen=True)
class RouteAblation:
    """``probabilities[condition][read]``: mean probability over probes, ``intervals`` the same keys with
    ``(low, high)``; conditions ``"none"``, ``"token heads"``, ``"concept heads"`` (the heads in
    ``token_heads``/``concept_heads``); reads ``"copy"`` (``P(e[0])`` after the prefix) and ``"completion"``
    (``P(e[1])`` after ``e[0]``). ``drop(condition, read)``: the fall from ``"none"``.

    Returned by ``route_ablation`` (the dual-route check of Feucht, Todd, Wallace and Bau, COLM 2025, arXiv
    2504.03022); printing it gives a table of every condition and read with its interval and fall.

    Attributes:
        token_heads: the top-``k`` token induction heads removed in ``"token heads"``, ``(layer, head)`` pairs.
        concept_heads: the top-``k`` concept induction heads removed in ``"concept heads"``.
        method: what replaced the removed heads' outputs: ``"zero"`` or ``"mean"``.
        n_probes: the word probes measured.
        probabilities: ``{condition: {read: mean probability (0-1) over the probes}}``.
        intervals: ``{condition: {read: (low, high)}}``, the seeded 95% bootstrap interval of each mean.
        drops: ``{condition: {read: (fall, low, high)}}`` for ``"token heads"`` and ``"concept heads"``:
            the mean fall of the probability from ``"none"`` (paired per probe; positive: the heads helped)
            and its bootstrap interval.

    Examples:
        >>> from induction_nb import HandBuiltInduction, concept_induction, route_ablation
        >>> model = HandBuiltInduction()
        >>> dual = concept_induction(model, [[5, 6], [7, 8, 9], [10, 11, 12]], n_probes=4, n_boot=20, effects=None)
        >>> ablated = route_ablation(model, dual, k=1, n_probes=4, method="zero", n_boot=20)
        >>> sorted(ablated.probabilities), sorted(ablated.drops)
        (['concept heads', 'none', 'token heads'], ['concept heads', 'token heads'])
        >>> ablated.drop("token heads", "copy") == ablated.drops["token heads"]["copy"][0]
        True
    """

    token_heads: tuple[tuple[int, int], ...]
    concept_heads: tuple[tuple[int, int], ...]
    method: str
    n_probes: int
    probabilities: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, tuple[float, float]]]
    drops: dict[str, dict[str, tuple[float, float, float]]]

    def drop(self, condition: str, read: str) -> float:
        """Mean fall of the probability (``none`` minus ``condition``, paired per probe)."""
        return self.drops[condition][read][0]

    def __str__(self) -> str:
        lines = [f"Route ablation ({self.method}, {self.n_probes} word probes): P(next) and its fall"]
        for condition, probs in self.probabilities.items():
            cells = []
            for read in _READS:
                low, high = self.intervals[condition][read]
                cell = f"{read} {probs[read]:.3f} [{low:.3f}, {high:.3f}]"
                if condition != "none":
                    d, dl, dh = self.drops[condition][read]
                    cell += f" (fall {d:+.3f} [{dl:+.3f}, {dh:+.3f}])"
                cells.append(cell)
            lines.append(f"  {condition:>13}: " + "; ".join(cells))
        return "\n".join(lines)

    __repr__ = __str__


def route_ablation(
    model: Any,
    result: DualRouteResult,
    k: int = 10,
    words: Sequence[Any] | None = None,
    *,
    n_probes: int = 32,
    method: str = "mean",
    n_boot: int = 1000,
    seed: int = 0,
    remote: Any = False,
) -> RouteAblation:
    """The dual-route causal check: remove the top token or concept induction heads, read copying and completion.

    Remove the ``k`` top token heads, or the ``k`` top concept heads of ``result`` (a head in both lists
    is removed in both), and read verbatim copying and word completion on ``n_probes`` word probes (see the
    module docstring) of the result's length, separator and words (``words=`` overrides them). Feucht, Todd,
    Wallace and Bau (COLM 2025, arXiv 2504.03022): on probes ``[BOS] r1 e r2 [sep] r1 e[0] e[1]`` (``e`` a
    real multi-token word), ``P(e[0])`` after the repeated prefix is verbatim copying, ``P(e[1])`` after
    ``e[0]`` word completion. The three conditions (nothing, token heads, concept heads removed) run in one
    forward; every number is a mean over probes with a seeded bootstrap interval. Paraphrase and translation
    need parallel text, which is not shipped: this measures copying and completion only.

    Args:
        model: the model ``result`` was made on: a Hugging Face model, an nnsight ``LanguageModel``/
            ``NNsight``, a plain ``torch.nn.Module`` or a name or path (see ``load_model``); in eval mode.
        result: the ``DualRouteResult`` of ``concept_induction`` on this model; its top heads are removed.
        k: how many top heads of each route to remove, from 1 to the number of heads (default 10).
        words: the words of the probes: strings through the tokenizer or token-id lists (2 to 5 tokens
            each); ``None`` (default) for the result's own words and separator.
        n_probes: word probes, from 2 to 100,000 (default 32).
        method: what replaces a removed head's output: ``"mean"`` (default: its mean output over the
            probes) or ``"zero"``.
        n_boot: bootstrap resamples of the intervals (at least 1; default 1000).
        seed: seed of the probes, the separator (where chosen) and the bootstrap.
        remote: ``False`` (local), ``True`` or a ``RemoteConfig`` to run on NDIF.

    Returns:
        RouteAblation: the probability (0-1) of each read (``"copy"``, ``"completion"``) under each condition
            (``"none"``, ``"token heads"``, ``"concept heads"``), with bootstrap intervals and the falls from
            ``"none"``.

    Raises:
        InputError: for a result that is not ``concept_induction``'s (without both routes), a result of
            another model, a ``k`` out of range, an unknown ``method``, ``n_probes`` outside
            ``[2, 100000]``, ``n_boot`` below 1, heads the model does not have, ``words`` that are not 2 to
            5 tokens (or text without a tokenizer), no usable separator token, or a model in training mode.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when reading the model inside the trace fails.
        RemoteExecutionError: when a ``remote=`` run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, concept_induction, route_ablation
        >>> model = HandBuiltInduction()  # no tokenizer: words as token ids
        >>> words = [[5, 6], [7, 8, 9], [10, 11, 12, 13]]
        >>> dual = concept_induction(model, words, n_probes=4, n_boot=20, effects=None)
        >>> ablated = route_ablation(model, dual, k=1, n_probes=4, method="zero", n_boot=20)
        >>> ablated.token_heads, ablated.concept_heads
        (((1, 0),), ((0, 0),))
        >>> ablated.drop("token heads", "copy") > 0  # without the induction head, P(e[0]) falls
        True
        >>> str(ablated).splitlines()[0]
        'Route ablation (zero, 4 word probes): P(next) and its fall'

        On SmolLM2, with the shipped words:

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> model = load_model()  # doctest: +SKIP
        >>> ablated = route_ablation(model, concept_induction(model), k=10, n_probes=16)  # doctest: +SKIP
        >>> print(ablated)  # doctest: +SKIP
        Route ablation (mean, 16 word probes): P(next) and its fall
        ...
    """
    if not isinstance(result, DualRouteResult):
        raise InputError(f"route_ablation needs a concept_induction result, got {type(result).__name__}")
    check_choice("method", method, ("zero", "mean"))
    k = check_int("k", k, 1, len(result.head_scores))
    check_int("n_probes", n_probes, 2, MAX_PROBES)
    check_int("n_boot", n_boot, 1)
    ab = Ablator(model, remote=remote)
    if result.model_name != ab.engine.name:
        raise InputError(
            f"the result is of {result.model_name!r}, the model is {ab.engine.name!r}: pass its own result"
        )
    token = tuple((s.layer, s.head) for s in result.top_token(k))
    concept = tuple((s.layer, s.head) for s in result.top_concept(k))
    ab.check_heads(list(dict.fromkeys(token + concept)))
    gen = ab.engine.generator(seed)
    length = int(result.settings.get("length", 32))
    kept = result.settings.get("words") if words is None else None
    ids = [tuple(w) for w in kept] if kept else probe_words(ab.engine, words)
    sep = result.settings.get("separator") if words is None else None
    sep = separator_id(ab.engine, sep if isinstance(sep, int) else None, gen, ids)
    probes = dual_route_probes(gen, ids, n_probes, length, sep, seed + 2)
    tokens = torch.cat([probes.clean, probes.targets[:, 1:]], 1)  # ... r1 e[0] e[1]
    positions = torch.tensor([length - 2, length - 1])
    means = ab.means(tokens) if method == "mean" else None
    (lp, _), _ = ab.run(tokens, [[], list(token), list(concept)], method, means, positions)
    p = lp.float().exp().reshape(3, n_probes, 2)  # [condition, probe, read]
    names = ("none", "token heads", "concept heads")
    probabilities, intervals, drops = {}, {}, {}
    low, high = bootstrap_mean(p.transpose(0, 1), n=n_boot, seed=seed)  # [condition, read]
    fall = p[:1] - p[1:]  # [2, probe, read]
    f_low, f_high = bootstrap_mean(fall.transpose(0, 1), n=n_boot, seed=seed)
    for i, name in enumerate(names):
        probabilities[name] = {r: float(p[i, :, j].mean()) for j, r in enumerate(_READS)}
        intervals[name] = {r: (float(low[i, j]), float(high[i, j])) for j, r in enumerate(_READS)}
        if i:
            drops[name] = {
                r: (float(fall[i - 1, :, j].mean()), float(f_low[i - 1, j]), float(f_high[i - 1, j]))
                for j, r in enumerate(_READS)
            }
    return RouteAblation(token, concept, method, n_probes, probabilities, intervals, drops)
