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
    (``P(e[1])`` after ``e[0]``). ``drop(condition, read)``: the fall from ``"none"``."""

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
    """Remove the ``k`` top token heads, or the ``k`` top concept heads of ``result`` (a head in both lists
    is removed in both), and read verbatim copying and word completion on ``n_probes`` word probes (see the
    module docstring) of the result's length, separator and words (``words=`` overrides them). ``method``:
    ``"zero"`` or ``"mean"`` (each head's mean output over the probes). Raises ``InputError`` for a result
    without both routes, of another model, a ``k`` out of range or bad settings."""
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
