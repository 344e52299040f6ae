"""Result types: every head's scores from one scan and the settings that produced them, as frozen
dataclasses with JSON round trips.

One base, ``ScanResult`` (the grid of heads, ranking, detection at a threshold, JSON, a DataFrame, the
report as its text form), and one type per kind of scan, each saying what its scores mean (its report's
title, what its overall score is, what it was measured on), so that no view asks which kind it holds:

* ``DetectionResult``: probes, repeated random tokens with their controls (the original API); it may keep
  some heads' patterns (``detect(keep_patterns=...)``, not serialised).
* ``TextScanResult``: natural repeats in your documents (``detect_on_text``); no control, so no contrast;
  its overall score is the prefix-matching score.
* ``RetrievalResult``: needle retrieval (``retrieval_heads``); its overall score is the retrieval score.

Heads are named by the model's own layer index: a hybrid model's attention layers keep their indices
(``L1``, ``L3``) and its other layers have no scores; ``n_layers x n_heads`` is the grid the heads live in.
``ScanResult.load`` (``induction_nb.load_result``) returns the kind a file holds; format versions 1 and 2
(a fixed set of fields per head, the kind in ``settings``) still load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from .._validate import check_int, describe_heads, is_int
from ..draw.html_page import save_html
from ..draw.html_repr import result_html
from ..draw.report import create_analysis_report
from ..errors import InputError
from ..metrics import REGISTRY
from .head_score import HeadScore
from .kept import Patterns, kept_heads, kept_layer
from .result_format import (
    FORMAT,
    VERSION,
    check_grid,
    read_fields,
    read_header,
    read_json,
    warn_unregistered,
    write_json,
)

__all__ = ["ScanResult", "DetectionResult", "TextScanResult", "RetrievalResult", "load_result", "FORMAT"]

_KINDS: dict[str, type[ScanResult]] = {}
_ENDS = ("low", "high")


@dataclass(frozen=True)
class ScanResult:
    """Every head's scores from one scan: which heads are detected (``overall_score >= threshold``), with
    the settings that produced them. Subclasses are the kinds of scan (see the module docstring).

    The kinds: ``DetectionResult`` (probes, ``detect_induction_heads``), ``TextScanResult`` (your text,
    ``detect_on_text``) and ``RetrievalResult`` (``retrieval_heads``); each says what its overall score
    means (class attributes ``kind``: the JSON tag, ``title``, ``head_noun``, ``overall_meaning``). Frozen:
    ``with_causal_effects`` returns a copy. Printed, a result is its ASCII report; in a notebook, an HTML
    summary with a heatmap. Heads are named by the model's own layer index. ``save``/``load`` (and
    ``load_result``) round-trip it through JSON, ``to_dataframe`` gives one row per head.

    Attributes:
        head_scores: one ``HeadScore`` per head the model has, layer by layer: ``overall_score`` (the kind's headline
            score), its 95% interval ``[ci_low, ci_high]`` and every other metric the scan measured.
        threshold: the overall score (0-1) at or above which a head counts as detected (``induction_heads``).
        model_name: the model's name (its Hub id, path or class name).
        n_layers: layers of the grid the heads live in (the model's layer count; a layer without attention has no
            scores).
        n_heads: heads per layer of that grid (the most any layer has).
        settings: what produced the scores, for the record (plain JSON values).
        seed: the seed of the scan's random tokens and bootstrap.

    Examples:
        >>> from induction_nb import HandBuiltInduction, ScanResult, detect_induction_heads
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32, n_bootstrap=100)
        >>> isinstance(result, ScanResult), result.n_layers, result.n_heads
        (True, 2, 4)
        >>> result.induction_heads, result.num_heads_detected, result.has_head(1, 0)
        ([(1, 0)], 1, True)
        >>> [h.name for h in result.get_top_heads(2, metric="prefix_matching")]
        ['L1H1', 'L1H0']
    """

    head_scores: tuple[HeadScore, ...]
    threshold: float
    model_name: str
    n_layers: int
    n_heads: int
    settings: dict = field(default_factory=dict)
    seed: int = 0

    kind: ClassVar[str] = ""  # the JSON tag
    title: ClassVar[str] = "HEAD ANALYSIS REPORT"
    head_noun: ClassVar[str] = "head"  # what a detected head is called ("induction head")
    overall_meaning: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    def __post_init__(self):
        index = {(s.layer, s.head): i for i, s in enumerate(self.head_scores)}
        object.__setattr__(self, "_index", index)

    # -- what the scores mean (the kind's own words) ---------------------------------------------------

    def measured_on(self) -> str:
        """What the scores were measured on, in a few words."""
        return "a scan"

    def notes(self) -> list[str]:
        """Lines the report prints under its summary (what was scored, warnings)."""
        return []

    # -- the heads ------------------------------------------------------------------------------------

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this result's heads carry, in the registry's display order."""
        names = {k for s in self.head_scores for k in s.values}
        return tuple(k for k in REGISTRY if k in names)

    @property
    def layers(self) -> list[int]:
        """The model's layer indices that have attention heads (and so scores)."""
        return sorted({s.layer for s in self.head_scores})

    def has_head(self, layer: int, head: int) -> bool:
        """Whether the result has scores for head ``(layer, head)`` (the model's layer index).

        Args:
            layer: the model's layer index.
            head: the head within the layer.

        Returns:
            bool: ``True`` where the model has that head (and so the result scores it).
        """
        return (layer, head) in self._index

    @property
    def induction_heads(self) -> list[tuple[int, int]]:
        """``(layer, head)`` of the detected heads (overall score at or above the threshold), best first."""
        return [(s.layer, s.head) for s in self.get_top_heads() if s.overall_score >= self.threshold]

    @property
    def num_heads_detected(self) -> int:
        """How many heads are detected (``len(induction_heads)``)."""
        return len(self.induction_heads)

    def _check_metric(self, metric: Any) -> str:
        if not isinstance(metric, str):
            raise InputError(f"metric must be a metric's name (e.g. 'overall_score'), got {metric!r:.40}")
        if metric not in self.metrics:
            have = ", ".join(self.metrics) or "none"
            if metric in REGISTRY:
                hint = "; add it with result.with_causal_effects(...)" if metric == "causal_effect" else ""
                raise InputError(f"this {type(self).__name__} has no {metric!r} (its metrics: {have}){hint}")
            raise InputError(f"unknown metric {metric!r}; this result's metrics: {have}")
        return metric

    def get_top_heads(self, n: int | None = None, metric: str = "overall_score") -> list[HeadScore]:
        """Heads sorted by ``metric`` (descending, NaN last; ties by layer, head), the first ``n`` (all with
        ``None``).

        Args:
            n: how many heads (``None``, the default: all), at least 0.
            metric: the metric to rank by (default ``"overall_score"``), one of ``metrics``.

        Returns:
            list[HeadScore]: the heads, best first.

        Raises:
            InputError: for a metric this result does not hold, or ``n`` that is not an integer >= 0.
        """
        self._check_metric(metric)
        if n is not None:
            check_int("n", n, 0)

        def key(s: HeadScore):
            v = s.values.get(metric, float("nan"))
            return (-(v if not math.isnan(v) else -math.inf), s.layer, s.head)

        ranked = sorted(self.head_scores, key=key)
        return ranked if n is None else ranked[:n]

    def score(self, layer: int, head: int) -> HeadScore:
        """The scores of head ``(layer, head)`` (the model's layer index); ``InputError`` where there is none.

        Args:
            layer: the model's layer index.
            head: the head within the layer.

        Returns:
            HeadScore: that head's scores.

        Raises:
            InputError: for a layer or head that is not an integer, or a head the model does not have.
        """
        if not (is_int(layer) and is_int(head)):
            raise InputError(f"layer and head must be integers, got {layer!r} and {head!r}")
        i = self._index.get((int(layer), int(head)))
        if i is None:
            raise InputError(f"L{layer}H{head} is out of range: {describe_heads(self.heads_per_layer)}")
        return self.head_scores[i]

    @property
    def heads_per_layer(self) -> dict[int, int]:
        """``{layer: number of heads}`` of the layers that have attention."""
        out: dict[int, int] = {}
        for s in self.head_scores:
            out[s.layer] = max(out.get(s.layer, 0), s.head + 1)
        return out

    def score_matrix(self, metric: str = "overall_score") -> list[list[float]]:
        """``[layer][head]`` values of ``metric`` over the ``n_layers x n_heads`` grid; NaN where the model has
        no such head (a layer without attention, a layer with fewer heads) or the value is undefined.

        Args:
            metric: the metric (default ``"overall_score"``), one of ``metrics``.

        Returns:
            list[list[float]]: ``n_layers`` rows of ``n_heads`` values.

        Raises:
            InputError: for a metric this result does not hold.
        """
        self._check_metric(metric)
        nan = float("nan")
        return [
            [
                self.head_scores[self._index[(l, h)]].values.get(metric, nan) if (l, h) in self._index else nan
                for h in range(self.n_heads)
            ]
            for l in range(self.n_layers)
        ]

    def previous_token_heads(self, threshold: float = 0.4) -> list[tuple[int, int]]:
        """``(layer, head)`` of the heads whose previous-token score reaches ``threshold``, best first.

        Args:
            threshold: the previous-token score (0-1) a head must reach (default 0.4).

        Returns:
            list[tuple[int, int]]: the heads, best first; empty where the scan did not measure the score.
        """
        if "previous_token" not in self.metrics:
            return []
        return [(s.layer, s.head) for s in self.get_top_heads(metric="previous_token") if s.previous_token >= threshold]

    def with_causal_effects(self, effects: Any, method: str = "zero") -> ScanResult:
        """A copy whose head scores carry ``causal_effect``: ``head_effects(model)`` itself (exact or
        attribution estimate) or any ``[layer][head]`` values (nats).

        Args:
            effects: ``head_effects(model)``'s result, or ``[layer][head]`` values (nats; a tensor, an array
                or nested lists) over the ``n_layers x n_heads`` grid, finite for every scored head.
            method: the ablation the plain values came from, for ``settings["causal_effect"]`` (default
                ``"zero"``; ignored for ``head_effects``' result, which says its own).

        Returns:
            ScanResult: a copy of the same kind with ``causal_effect`` in every head's values.

        Raises:
            InputError: for effects of another shape, not indexable as ``[layer][head]``, or without a
                finite value for a scored head.
        """
        if effects is None or isinstance(effects, (str, bytes, int, float)):
            raise InputError(f"effects must be head_effects(...) or [layer][head] values, got {effects!r:.40}")
        if hasattr(effects, "estimator"):  # a causal.effects.HeadEffects
            estimate = f", {effects.estimator} estimate" if effects.estimator != "exact" else ""
            method, effects = f"{effects.method} ablation{estimate}", effects.effects
        else:
            method = f"{method} ablation"
        shape = tuple(getattr(effects, "shape", ())) or (len(effects), len(effects[0]) if len(effects) else 0)
        if shape != (self.n_layers, self.n_heads):
            raise InputError(f"effects has shape {shape}, expected [layer, head] = ({self.n_layers}, {self.n_heads})")
        try:
            values = [[float(effects[l][h]) for h in range(self.n_heads)] for l in range(self.n_layers)]
        except (IndexError, TypeError, ValueError):
            raise InputError(
                f"effects must be indexable as [layer][head] over {self.n_layers} x {self.n_heads}"
            ) from None
        missing = [s.name for s in self.head_scores if not math.isfinite(values[s.layer][s.head])]
        if missing:
            raise InputError(
                f"effects has no finite value (NaN or inf) for heads the result scores: {', '.join(missing[:6])}"
            )
        scores = tuple(s.with_values(causal_effect=values[s.layer][s.head]) for s in self.head_scores)
        settings = {**self.settings, "causal_effect": f"loss increase on repeated tokens, {method}"}
        return replace(self, head_scores=scores, settings=settings)

    # -- export ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and strings only (JSON-safe); ``load``/``from_dict`` read it back as this type.

        Returns:
            dict[str, Any]: the format, version and kind, the model, threshold, seed, settings, metrics,
                detected heads and every head's scores (``HeadScore.to_dict``).
        """
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "model": {
                "name": self.model_name,
                "n_layers": self.n_layers,
                "n_heads": self.n_heads,
                "heads_per_layer": {str(l): n for l, n in self.heads_per_layer.items()},
            },
            "threshold": self.threshold,
            "seed": self.seed,
            "settings": dict(self.settings),
            "metrics": list(self.metrics),
            "induction_heads": [list(x) for x in self.induction_heads],
            "head_scores": [s.to_dict() for s in self.head_scores],
        }

    @classmethod
    def from_dict(cls, d: Any) -> ScanResult:
        """The result a ``to_dict`` (or a saved file) holds, as its own kind; ``InputError`` for a foreign or
        damaged one, or for another kind than ``cls`` asks for (``ScanResult.from_dict`` takes any).

        Args:
            d: a dict as ``to_dict`` writes it (format versions 1 to 3).

        Returns:
            ScanResult: the result, as the kind it holds.

        Raises:
            InputError: for a foreign or damaged dict, or another kind than ``cls``.
        """
        version, kind, settings = read_header(d)
        target = _KINDS.get(kind) if isinstance(kind, str) else None
        if target is None:
            raise InputError(f"damaged detection result: unknown kind {kind!r} (known: {', '.join(_KINDS)})")
        if not issubclass(target, cls):
            raise InputError(
                f"this file holds a {target.__name__} ({target.title.lower()}), not a {cls.__name__}; "
                f"load it with induction_nb.load_result(path) or {target.__name__}.load(path)"
            )
        try:
            heads = [s if version >= 3 else target._migrate(s) for s in d["head_scores"]]
            scores = tuple(HeadScore.from_dict(s) for s in heads)
            threshold, name, n_layers, n_heads, seed = read_fields(d)
            result = target(scores, threshold, name, n_layers, n_heads, settings, seed)
        except InputError as e:
            raise InputError(f"damaged detection result: {e}") from None
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise InputError(f"damaged detection result: {type(e).__name__}: {e}") from None
        check_grid(d, result)
        warn_unregistered(scores)
        return result

    @classmethod
    def _migrate(cls, d: Any) -> Any:
        """A version 1 or 2 head entry (every field, NaN or null where a kind has none) as version 3."""
        if not isinstance(d, dict):
            return d
        return {k: v for k, v in d.items() if not (k == "causal_effect" and v is None)}

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (kept patterns are not written).

        Args:
            path: the file to write.

        Returns:
            Path: the path written.
        """
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ScanResult:
        """The result saved at ``path`` (``ScanResult.load``: whatever kind it holds).

        Args:
            path: a JSON file written by ``save``.

        Returns:
            ScanResult: the result, as the kind the file holds.

        Raises:
            InputError: for a file that is not a saved result, is damaged, or holds another kind than
                ``cls`` (``DetectionResult.load`` of a text scan).
        """
        return cls.from_dict(read_json(path))

    def to_html(self, path: str | Path, model: Any = None) -> Path:
        """One self-contained offline HTML page: grid, top heads, report, and the heatmaps of the heads whose
        patterns the result holds (tokens spelled by ``model``'s tokenizer when given). For the heads viewed
        in an explorer, ``HeadExplorer.save_html``.

        Args:
            path: the HTML file to write.
            model: the model, to spell the tokens (optional).

        Returns:
            Path: the path written.
        """
        return save_html(self, path, model=model)

    def kept_heads(self) -> set[tuple[int, int]]:
        """``(layer, head)`` of the heads whose patterns this result holds (none but a detection's)."""
        return set()

    def kept_layer(self, layer: int, head: int) -> Patterns:
        """The held patterns of ``layer`` (``analysis.kept.Patterns``); ``InputError`` where there are none.

        Args:
            layer: the model's layer index.
            head: a head of that layer whose patterns are held.

        Returns:
            Patterns: the layer's held patterns.
        """
        return kept_layer(self, layer, head)

    def to_dataframe(self):
        """One row per head (pandas): ``layer``, ``head``, every metric, the interval, ``detected``.

        Returns:
            pandas.DataFrame: columns ``layer``, ``head``, each metric, ``ci_low``, ``ci_high``, other
                metrics' intervals as ``{metric}_ci_low``/``{metric}_ci_high``, and ``detected`` (overall score
                at or above the threshold).
        """
        import pandas as pd

        rows = [s.to_dict() for s in self.head_scores]
        for row in rows:  # other metrics' intervals as columns of their own: {metric}_ci_low, {metric}_ci_high
            row.update({f"{k}_ci_{e}": v for k, b in row.pop("intervals", {}).items() for e, v in zip(_ENDS, b)})
        columns = ["layer", "head", *self.metrics, "ci_low", "ci_high"]
        df = pd.DataFrame(rows, columns=list(dict.fromkeys(columns + [k for r in rows for k in r])))
        df = df.astype({"layer": int, "head": int})
        df["detected"] = df["overall_score"] >= self.threshold
        return df

    def summary(self) -> str:
        """One line: model, heads detected, the best five.

        Returns:
            str: the line.
        """
        top = ", ".join(f"{s.name} {s.overall_score:.3f}" for s in self.get_top_heads(5))
        return (
            f"{type(self).__name__}({self.model_name}: {self.num_heads_detected} {self.head_noun}s at threshold "
            f"{self.threshold:.2f} of {self.n_layers}x{self.n_heads}; top: {top})"
        )

    def __repr__(self) -> str:
        """The ASCII report: what a terminal, a log or a notebook without HTML shows."""
        return str(create_analysis_report(self, detailed=False))

    __str__ = __repr__

    def _repr_html_(self) -> str:
        """Notebook display: summary, the top heads' metrics, and a layer x head heatmap of the overall score."""
        return result_html(self)


@dataclass(frozen=True, repr=False)  # repr: the report, as the base's
class DetectionResult(ScanResult):
    """Which heads are induction heads on probes (repeated random tokens, each with its control), with
    every head's scores. ``kept_patterns``: ``{(layer, head): [batch, q, k]}`` of the heads asked for with
    ``detect(keep_patterns=...)`` on ``kept_tokens [batch, seq]`` (not serialised).

    What ``detect_induction_heads`` returns. Its overall score is ``contrast x copying`` in [0, 1] (see
    ``detect_induction_heads``), detected at ``threshold`` (0.4 by default).

    Attributes:
        head_scores: one ``HeadScore`` per head the model has, layer by layer: ``overall_score``
            (``contrast x copying``, in [0, 1]), its 95% interval ``[ci_low, ci_high]`` and every other metric
            the scan measured.
        threshold: the overall score (0-1) at or above which a head counts as detected (``induction_heads``).
        model_name: the model's name (its Hub id, path or class name).
        n_layers: layers of the grid the heads live in (the model's layer count; a layer without attention has no
            scores).
        n_heads: heads per layer of that grid (the most any layer has).
        settings: what produced the scores, for the record (plain JSON values): ``sequence_length``, ``n_repeats``,
            ``batch_size``, ``patterns``, ``bos_token_id``, ``token_range``, ``n_bootstrap``, ``chunk_size``, ``stack``,
            ``control`` and more.
        seed: the seed of the scan's random tokens and bootstrap.
        kept_patterns: ``{(layer, head): tensor [batch, q, k]}``: the full patterns of the heads asked for with
            ``detect(keep_patterns=...)``, on the first pattern's sequences (not the controls); empty otherwise. Not
            serialised.
        kept_tokens: the tokens ``[batch, seq]`` of those sequences (``None`` where nothing is kept). Not serialised.

    Examples:
        >>> from induction_nb import DetectionResult, HandBuiltInduction, detect_induction_heads, load_result
        >>> result = detect_induction_heads(
        ...     HandBuiltInduction(), sequence_length=32, batch_size=4, n_bootstrap=100, keep_patterns=[(1, 0)]
        ... )
        >>> isinstance(result, DetectionResult), result.induction_heads
        (True, [(1, 0)])
        >>> tuple(result.kept_patterns[(1, 0)].shape), tuple(result.kept_tokens.shape)
        ((4, 32, 32), (4, 32))
        >>> df = result.to_dataframe()
        >>> len(df), int(df["detected"].sum())
        (8, 1)
        >>> import os, tempfile
        >>> path = result.save(os.path.join(tempfile.mkdtemp(), "scan.json"))
        >>> load_result(path) == result  # the scores round-trip (kept patterns are not written)
        True
    """

    kept_patterns: dict = field(default_factory=dict, compare=False, repr=False)
    kept_tokens: Any = field(default=None, compare=False, repr=False)

    kind: ClassVar[str] = "probe"
    title: ClassVar[str] = "INDUCTION HEAD ANALYSIS REPORT"
    head_noun: ClassVar[str] = "induction head"
    overall_meaning: ClassVar[str] = "overall = contrast x copying"

    def measured_on(self) -> str:
        """What the scores were measured on: the probe, its batch and length.

        Returns:
            str: e.g. ``"repeated-token probe, 8 x 32 tokens"``.
        """
        batch, length, names = (self.settings.get(k) for k in ("batch_size", "sequence_length", "patterns"))
        kind = "+".join(names) if isinstance(names, list) and names != ["repeated"] else "repeated-token"
        return f"{kind} probe" + (f", {batch} x {length} tokens" if batch and length else "")

    def kept_heads(self) -> set[tuple[int, int]]:
        """``(layer, head)`` of the heads whose patterns this result holds (``detect(keep_patterns=...)``).

        Returns:
            set[tuple[int, int]]: the heads (empty where none were kept).
        """
        return kept_heads(self)


@dataclass(frozen=True, repr=False)  # repr: the report, as the base's
class TextScanResult(ScanResult):
    """Every head's induction scores on the natural repeats of your documents (``detect_on_text``): no
    control, so no contrast; the overall score is the prefix-matching score, its interval over documents.

    Attributes:
        head_scores: one ``HeadScore`` per head the model has, layer by layer: ``overall_score`` (the prefix-matching
            score on your text, in [0, 1]; its interval a bootstrap over documents), its 95% interval ``[ci_low,
            ci_high]`` and every other metric the scan measured.
        threshold: the overall score (0-1) at or above which a head counts as detected (``induction_heads``).
        model_name: the model's name (its Hub id, path or class name).
        n_layers: layers of the grid the heads live in (the model's layer count; a layer without attention has no
            scores).
        n_heads: heads per layer of that grid (the most any layer has).
        settings: what produced the scores, for the record (plain JSON values): ``documents``, ``tokens``,
            ``scored_queries`` (queries whose token occurred earlier in their document), ``n_bootstrap``,
            ``batch_size``, ``max_length``, ``overflow``, ``score``, ``remote``.
        seed: the seed of the scan's random tokens and bootstrap.

    Examples:
        >>> from induction_nb import HandBuiltInduction, TextScanResult, detect_on_text
        >>> docs = [[5, 6, 7, 8, 9, 5, 6, 7, 8, 9], [20, 21, 22, 23, 24, 20, 21, 22, 23, 24]]  # token ids
        >>> result = detect_on_text(HandBuiltInduction(), docs, n_bootstrap=100)
        >>> isinstance(result, TextScanResult), result.get_top_heads(1)[0].name
        (True, 'L1H0')
        >>> result.settings["documents"], result.settings["tokens"], result.settings["scored_queries"]
        (2, 20, 10)
        >>> "contrast" in result.metrics
        False
    """

    kind: ClassVar[str] = "text"
    title: ClassVar[str] = "INDUCTION ON TEXT REPORT"
    head_noun: ClassVar[str] = "induction head"
    overall_meaning: ClassVar[str] = "overall = prefix matching on your text"

    def measured_on(self) -> str:
        """What the scores were measured on.

        Returns:
            str: ``"your text (N documents)"``.
        """
        n = self.settings.get("documents", "?")
        return f"your text ({n} document{'' if n == 1 else 's'})"

    def notes(self) -> list[str]:
        """The report's line under its summary: scored queries of tokens in documents.

        Returns:
            list[str]: one line.
        """
        st = self.settings
        return [
            f"Scored queries: {st.get('scored_queries')} (tokens seen earlier in their document) of "
            f"{st.get('tokens')} tokens in {st.get('documents')} documents; score = prefix matching"
        ]

    @classmethod
    def _migrate(cls, d: Any) -> Any:
        d = super()._migrate(d)
        return {k: v for k, v in d.items() if k != "contrast"} if isinstance(d, dict) else d


@dataclass(frozen=True, repr=False)  # repr: the report, as the base's
class RetrievalResult(ScanResult):
    """Every head's retrieval score (Wu et al. 2024, ``retrieval_heads``): needle tokens it copied over the
    needle's length, as the overall score, with its interval over the runs; retrieval heads reach 0.1.

    Attributes:
        head_scores: one ``HeadScore`` per head the model has, layer by layer: ``overall_score`` (the retrieval score:
            needle tokens copied / needle length, in [0, 1]), its 95% interval ``[ci_low, ci_high]`` and every other
            metric the scan measured.
        threshold: the overall score (0-1) at or above which a head counts as detected (``induction_heads``).
        model_name: the model's name (its Hub id, path or class name).
        n_layers: layers of the grid the heads live in (the model's layer count; a layer without attention has no
            scores).
        n_heads: heads per layer of that grid (the most any layer has).
        settings: what produced the scores, for the record (plain JSON values), among them ``needle_accuracy`` (needle
            tokens the model reproduced; below 0.5 the report warns that the scores are uninformative).
        seed: the seed of the scan's random tokens and bootstrap.

    Examples:
        >>> from induction_nb import HeadScore, RetrievalResult
        >>> scores = (HeadScore(0, 0, {"overall_score": 0.3}), HeadScore(0, 1, {"overall_score": 0.02}))
        >>> result = RetrievalResult(scores, 0.1, "toy", 1, 2, {"needle_accuracy": 0.9})
        >>> result.induction_heads, result.measured_on()
        ([(0, 0)], 'needle retrieval')
    """

    kind: ClassVar[str] = "retrieval"
    title: ClassVar[str] = "RETRIEVAL HEAD ANALYSIS REPORT"
    head_noun: ClassVar[str] = "retrieval head"
    overall_meaning: ClassVar[str] = "overall = retrieval score (needle tokens copied / needle length)"

    def measured_on(self) -> str:
        """What the scores were measured on.

        Returns:
            str: ``"needle retrieval"``.
        """
        return "needle retrieval"

    def notes(self) -> list[str]:
        """The report's lines under its summary: the needle accuracy, and a warning below 0.5.

        Returns:
            list[str]: one or two lines.
        """
        accuracy = self.settings.get("needle_accuracy")
        if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):  # a damaged or foreign file
            accuracy = float("nan")
        lines = [f"Needle accuracy: {accuracy:.2f} (needle tokens the model reproduced)"]
        if not accuracy >= 0.5:
            lines.append(
                "warning: the model rarely repeats the needle, so few steps could show a copy; retrieval "
                "scores are uninformative: use longer contexts or a longer needle"
            )
        return lines

    @classmethod
    def _migrate(cls, d: Any) -> Any:
        keep = ("layer", "head", "overall_score", "ci_low", "ci_high", "causal_effect")
        d = super()._migrate(d)
        return {k: v for k, v in d.items() if k in keep} if isinstance(d, dict) else d


def load_result(path: str | Path) -> ScanResult:
    """The result saved at ``path`` as the kind it holds (``DetectionResult``, ``TextScanResult`` or
    ``RetrievalResult``); ``InputError`` for a file that is not one.

    The same as ``ScanResult.load``. Format versions 1 and 2 (a fixed set of fields per head, the kind in
    ``settings``) still load. Kept patterns are not saved, so a loaded ``DetectionResult`` has none.

    Args:
        path: a JSON file written by a result's ``save`` (or by the command line's ``--json``).

    Returns:
        ScanResult: the result, as the kind the file holds (``DetectionResult``, ``TextScanResult`` or
            ``RetrievalResult``).

    Raises:
        InputError: for a file that is not a saved result (missing, not JSON, a foreign format) or is
            damaged (the message names what is wrong).

    Examples:
        >>> import os, tempfile
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads, load_result
        >>> result = detect_induction_heads(HandBuiltInduction(), sequence_length=32, n_bootstrap=100)
        >>> path = result.save(os.path.join(tempfile.mkdtemp(), "scan.json"))
        >>> loaded = load_result(path)
        >>> type(loaded).__name__, loaded.induction_heads, loaded == result
        ('DetectionResult', [(1, 0)], True)
    """
    return ScanResult.load(path)
