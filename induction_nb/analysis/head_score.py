"""One head's scores (``HeadScore``) and one head's behaviour on one sequence (``HeadBehavior``).

A head's scores are a mapping from metric name (``metrics.REGISTRY``) to value, with the interval of its
overall score. A metric the scan measured but could not define for the head (no scored query) is NaN; a
metric the scan did not measure is absent (reading it gives ``None``). Every metric reads as an attribute
(``score.prefix_matching``), its one spelling everywhere (JSON, DataFrame columns, ``get_top_heads``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._validate import is_int
from ..errors import InputError
from ..metrics import REGISTRY, RESERVED, bootstrap_head, head_means, is_metric_name

__all__ = ["HeadScore", "HeadBehavior", "Values"]


def _num(x: Any) -> float | None:
    """A value for JSON: ``None`` for NaN (JSON has no NaN)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _number(value: Any, name: Any, where: str) -> float:
    """A metric's value as a float (``None``: NaN, undefined); ``InputError`` for a bad name or value."""
    if not is_metric_name(name):
        raise InputError(
            f"{where}: {name!r} is not a metric name (lower case letters, digits and '_'; not one of "
            f"{', '.join(sorted(RESERVED))})"
        )
    if value is None:
        return float("nan")
    if isinstance(value, (bool, str, bytes)):
        raise InputError(f"{where}: metric {name!r} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: metric {name!r} must be a number, got {value!r}") from None


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


class Values(Mapping):
    """An immutable ``{metric: float}`` in the registry's display order; equal where NaN meets NaN."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None, where: str = "a head score"):
        if items is None:
            items = {}
        if not isinstance(items, Mapping):
            raise InputError(
                f"{where}: values must be a mapping {{metric name: value}}, got {type(items).__name__} "
                "(HeadScore(layer, head, {'overall_score': ...}, ci_low, ci_high))"
            )
        order = list(REGISTRY)
        ranked = sorted(items, key=lambda k: (order.index(k) if k in order else len(order), str(k)))
        self._items = {k: _number(items[k], k, where) for k in ranked}

    def __getitem__(self, key: str) -> float:
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, Mapping) or set(self) != set(other):
            return False
        return all(_same(self[k], other[k]) for k in self)

    def __hash__(self) -> int:
        return hash(tuple(self._items))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k}: {v:.4g}" for k, v in self._items.items()) + "}"

    def __getstate__(self):
        return self._items

    def __setstate__(self, state):
        self._items = state


class _ReadsValues:
    """Metrics read as attributes from ``values`` (``score.prefix_matching``)."""

    _absent_is_none: bool = False  # a registered metric the scan did not measure reads as None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            values = object.__getattribute__(self, "values")
        except AttributeError:  # while unpickling
            raise AttributeError(name) from None
        if name in values:
            return values[name]
        if self._absent_is_none and name in REGISTRY:
            return None
        raise AttributeError(f"{type(self).__name__} has no {name!r}; its metrics: {', '.join(values)}")


@dataclass(frozen=True, eq=False)
class HeadScore(_ReadsValues):
    """Scores of one head, as every scan returns them (``DetectionResult.head_scores``, ``score(layer, head)``).

    ``values`` ``{metric: value}`` (see ``metrics.REGISTRY``; ``overall_score`` always there; ``None`` or NaN
    where undefined) and the 95% interval ``[ci_low, ci_high]`` of the overall score; ``intervals``
    ``{metric: (low, high)}``: the 95% intervals of other metrics where the scan measured them. Metrics read
    as attributes (``s.prefix_matching``; NaN where undefined, ``None`` where not measured); ``induction_score``
    is an alias of ``prefix_matching`` (TransformerLens' and ARENA's name). Two scores are equal where every
    number is (NaN equal to NaN). Frozen; ``with_values`` makes a changed copy, ``to_dict``/``from_dict`` a
    JSON round trip.

    Attributes:
        layer: the model's layer index (an attention layer of a hybrid model keeps its own index).
        head: the head's index within its layer.
        values: ``{metric: value}`` in the registry's display order, read-only: ``overall_score`` (always;
            for a probe scan ``contrast x copying`` in [0, 1]) and every other metric the scan measured
            (``prefix_matching``, ``contrast``, ``copying``, ``previous_token``, ... ; fractions of attention
            in [0, 1], ``causal_effect`` in nats); NaN where a metric is undefined for this head.
        ci_low: lower end of the 95% bootstrap interval of ``overall_score`` (NaN where none).
        ci_high: upper end of the 95% bootstrap interval of ``overall_score`` (NaN where none).
        intervals: ``{metric: (low, high)}``: 95% intervals of other metrics, where the scan was asked for
            them (``detect_induction_heads(..., intervals=[...])``); empty otherwise.

    Raises:
        InputError: for a layer or head that is not an integer, a name that is not a metric name, a value
            that is not a number, no overall score, or ``intervals`` for metrics not in ``values``.

    Examples:
        >>> from induction_nb import HeadScore
        >>> s = HeadScore(1, 0, {"overall_score": 0.86, "prefix_matching": 0.97}, ci_low=0.8, ci_high=0.9)
        >>> s.name, s.prefix_matching, s.induction_score
        ('L1H0', 0.97, 0.97)
        >>> s.contrast is None  # a registered metric this score was not measured with
        True
        >>> HeadScore.from_dict(s.to_dict()) == s
        True
    """

    layer: int
    head: int
    values: Mapping[str, float]
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    _absent_is_none = True

    def __post_init__(self):
        for field_name in ("layer", "head"):
            if not is_int(getattr(self, field_name)):
                raise InputError(f"a head score's {field_name} must be an integer, got {getattr(self, field_name)!r}")
            object.__setattr__(self, field_name, int(getattr(self, field_name)))  # numpy ints: JSON needs int
        where = f"head score L{self.layer}H{self.head}"
        object.__setattr__(self, "values", Values(self.values, where))
        if "overall_score" not in self.values:
            raise InputError(f"{where} has no 'overall_score' (every scan's headline score)")
        object.__setattr__(self, "ci_low", _number(self.ci_low, "ci", where))
        object.__setattr__(self, "ci_high", _number(self.ci_high, "ci", where))
        if not isinstance(self.intervals, Mapping) or any(k not in self.values for k in self.intervals):
            raise InputError(f"{where}: intervals must map metrics it has to (low, high), got {self.intervals!r}")
        bounds = {k: (_number(v[0], k, where), _number(v[1], k, where)) for k, v in self.intervals.items()}
        object.__setattr__(self, "intervals", bounds)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, HeadScore):
            return NotImplemented
        same = (self.layer, self.head, self.values) == (other.layer, other.head, other.values)
        same = same and set(self.intervals) == set(other.intervals)
        same = same and all(_same(a, b) for k in self.intervals for a, b in zip(self.intervals[k], other.intervals[k]))
        return same and _same(self.ci_low, other.ci_low) and _same(self.ci_high, other.ci_high)

    def __hash__(self) -> int:
        return hash((self.layer, self.head, self.values))

    @property
    def induction_score(self) -> float:
        """Alias of ``prefix_matching`` (the name TransformerLens and ARENA use)."""
        return self.prefix_matching

    @property
    def name(self) -> str:
        """The head's name, ``L{layer}H{head}`` (``"L1H0"``)."""
        return f"L{self.layer}H{self.head}"

    def with_values(self, **values: float) -> HeadScore:
        """A copy with ``values`` added or replaced.

        Args:
            **values: metric values by name (``causal_effect=0.3``).

        Returns:
            HeadScore: the copy (same layer, head and intervals).
        """
        return HeadScore(self.layer, self.head, {**self.values, **values}, self.ci_low, self.ci_high, self.intervals)

    def to_dict(self) -> dict[str, Any]:
        """``layer``, ``head``, each metric (``None`` where undefined) and the interval: plain JSON values.

        Returns:
            dict[str, Any]: ``layer``, ``head``, one key per metric, ``ci_low``, ``ci_high`` and, where there
                are any, ``intervals`` ``{metric: [low, high]}``.
        """
        return {
            "layer": self.layer,
            "head": self.head,
            **{k: _num(v) for k, v in self.values.items()},
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            **(
                {"intervals": {k: [_num(a), _num(b)] for k, (a, b) in self.intervals.items()}} if self.intervals else {}
            ),
        }

    @classmethod
    def from_dict(cls, d: Any) -> HeadScore:
        """The inverse of ``to_dict``; ``InputError`` naming what is wrong with a damaged entry.

        Args:
            d: a dict as ``to_dict`` writes it.

        Returns:
            HeadScore: the score it holds.

        Raises:
            InputError: for a damaged entry (not a dict, a layer or head that is not an integer, bad
                intervals or values).
        """
        if not isinstance(d, dict):
            raise InputError(f"a head score must be an object, got {type(d).__name__}")
        for k in ("layer", "head"):
            if isinstance(d.get(k), bool) or not isinstance(d.get(k), int):
                raise InputError(f"head score field {k!r} must be an integer, got {d.get(k)!r}")
        values = {k: v for k, v in d.items() if k not in ("layer", "head", "ci_low", "ci_high", "intervals")}
        intervals = d.get("intervals") or {}
        if not isinstance(intervals, dict) or not all(isinstance(v, list) and len(v) == 2 for v in intervals.values()):
            raise InputError(f"head score field 'intervals' must map metrics to [low, high], got {intervals!r}")
        return cls(d["layer"], d["head"], values, d.get("ci_low"), d.get("ci_high"), intervals)


@dataclass(frozen=True)
class HeadBehavior(_ReadsValues):
    """What one head does on one sequence (``analyze_head_attention``, ``InductionHeadAnalyzer.analyze_head``).

    Every pattern metric in ``values`` (NaN where undefined), read as attributes, and
    ``induction_stripe_score``: the mean of ``A[q, q - P + 1]`` over the repeat's queries where a period ``P``
    was given (``None`` otherwise). ``diagonal_score`` and ``previous_token_score`` are the original spec's
    names of ``diagonal`` and ``previous_token``.

    Attributes:
        values: ``{metric: value}``, read-only: every pattern metric of the registry (``prefix_matching``,
            ``copying``, ``previous_token``, ``duplicate_token``, ``diagonal``, ``prefix_matching_2`` ..
            ``_4``), fractions of the head's attention in [0, 1] (copying: a fraction of queries); NaN where
            the metric scores no query of the sequence.
        induction_stripe_score: mean attention on the induction stripe ``A[q, q - P + 1]`` over the repeat's
            queries, in [0, 1]; ``None`` where no period was given.

    Examples:
        >>> from induction_nb import HeadBehavior
        >>> b = HeadBehavior({"prefix_matching": 0.9, "previous_token": 0.1}, induction_stripe_score=0.95)
        >>> b.prefix_matching, b.previous_token_score, b.induction_stripe_score
        (0.9, 0.1, 0.95)
    """

    values: Mapping[str, float]
    induction_stripe_score: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "values", Values(self.values, "a head's behaviour"))

    @property
    def diagonal_score(self) -> float:
        """The ``diagonal`` score (``mean_q A[q, q]``), by the original spec's name."""
        return self.values["diagonal"]

    @property
    def previous_token_score(self) -> float:
        """The ``previous_token`` score (``mean_q A[q, q-1]``), by the original spec's name."""
        return self.values["previous_token"]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values.

        Returns:
            dict[str, Any]: each metric and ``induction_stripe_score`` (``None`` where NaN or not given).
        """
        return {
            **{k: _num(v) for k, v in self.values.items()},
            "induction_stripe_score": _num(self.induction_stripe_score),
        }


# the overall score's parts: their per-sequence values are what the bootstrap resamples (local and remote alike)
INTERVAL_METRICS = ("prefix_matching", "contrast", "copying")


def scores_from_sequences(
    per_seq: dict, layers: list[int], heads: list[int], n_bootstrap: int, seed: int, intervals: tuple = ()
) -> tuple[HeadScore, ...]:
    """Each head's scores (every registered metric the scan measured, means over sequences, and the head
    metrics) with the bootstrap interval of its overall score (and of the ``intervals`` metrics, from the
    same resamples), layer by layer."""
    means = head_means(per_seq)  # {key: [site, head]}
    low, high = bootstrap_head(per_seq, "overall_score", n=n_bootstrap, seed=seed)
    extra = {m: bootstrap_head(per_seq, m, n=n_bootstrap, seed=seed) for m in intervals}
    names = [m for m in REGISTRY if m in means]
    return tuple(
        HeadScore(
            l,
            h,
            {m: float(means[m][i, h]) for m in names},
            float(low[i, h]),
            float(high[i, h]),
            {m: (float(lo[i, h]), float(hi[i, h])) for m, (lo, hi) in extra.items()},
        )
        for i, (l, n) in sorted(enumerate(zip(layers, heads)), key=lambda x: x[1][0])
        for h in range(n)
    )
