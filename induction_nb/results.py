"""Result types of detection and single-head analysis: frozen dataclasses with dict/JSON round trips.

``DetectionResult.to_dict()`` holds plain numbers and strings only (JSON-safe; patterns a caller asked
to keep travel in ``kept_patterns`` and are not serialised). ``from_dict`` checks the format tag and
says what is wrong with a foreign or damaged file.

Heads are named by the model's own layer index: a hybrid model's attention layers keep their indices
(``L1``, ``L3``) and its other layers have no scores; a layer with fewer heads than others has scores for
the heads it has. ``n_layers x n_heads`` is the grid the heads live in.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ._validate import describe_heads
from .errors import InputError

__all__ = ["HeadScore", "HeadBehavior", "DetectionResult", "FORMAT"]

FORMAT = "induction_nb.DetectionResult"
FORMAT_VERSION = 2  # 2: head scores may skip layers or heads the model does not have; 1 is still read
_READABLE = (1, 2)


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass(frozen=True)
class HeadScore:
    """Scores of one head (all in [0, 1]; ``None`` where undefined).

    ``prefix_matching``: attention on induction targets (metric 1). ``contrast``: the part of it caused
    by the prefix match (metric 2). ``copying``: arg-max key holds the next token (metric 3).
    ``overall_score = contrast * copying`` with a bootstrap confidence interval ``[ci_low, ci_high]``
    over sequences. Companions: ``previous_token``, ``duplicate_token``, ``diagonal``.
    """

    layer: int
    head: int
    prefix_matching: float
    contrast: float
    copying: float
    previous_token: float
    duplicate_token: float | None
    diagonal: float
    overall_score: float
    ci_low: float
    ci_high: float
    causal_effect: float | None = None  # loss increase on repeated tokens when the head is ablated (causal.py)

    @property
    def induction_score(self) -> float:
        """Alias of ``prefix_matching`` (the name TransformerLens and ARENA use)."""
        return self.prefix_matching

    @property
    def name(self) -> str:
        return f"L{self.layer}H{self.head}"

    def to_dict(self) -> dict[str, Any]:
        return {k: (_num(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeadScore":
        if not isinstance(d, dict):
            raise InputError(f"a head score must be an object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        d = {"causal_effect": None, **d}  # optional: results written before causal effects existed
        missing = names - set(d)
        if missing:
            raise InputError(f"head score is missing {sorted(missing)}")
        values = {k: d[k] for k in names}
        for k in ("layer", "head"):
            if isinstance(values[k], bool) or not isinstance(values[k], int):
                raise InputError(f"head score field {k!r} must be an integer, got {values[k]!r}")
        for k in names - {"layer", "head"}:
            v = values[k]
            if v is None:
                values[k] = None if k in ("duplicate_token", "causal_effect") else float("nan")
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"head score field {k!r} of L{values['layer']}H{values['head']} must be a number, got {v!r}")
            else:
                values[k] = float(v)
        return cls(**values)


@dataclass(frozen=True)
class HeadBehavior:
    """What one head does on one sequence (``analyze_head_attention``)."""

    diagonal_score: float
    induction_stripe_score: float | None
    previous_token_score: float
    prefix_matching: float | None
    copying: float | None
    duplicate_token: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: _num(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DetectionResult:
    """Which heads are induction heads, with every head's scores and the settings that produced them."""

    head_scores: tuple[HeadScore, ...]
    threshold: float
    model_name: str
    n_layers: int
    n_heads: int
    settings: dict = field(default_factory=dict)
    seed: int = 0
    kept_patterns: dict = field(default_factory=dict, compare=False, repr=False)
    kept_tokens: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        index = {(s.layer, s.head): i for i, s in enumerate(self.head_scores)}
        object.__setattr__(self, "_index", index)

    @property
    def layers(self) -> list[int]:
        """The model's layer indices that have attention heads (and so scores)."""
        return sorted({s.layer for s in self.head_scores})

    def has_head(self, layer: int, head: int) -> bool:
        return (layer, head) in self._index

    @property
    def induction_heads(self) -> list[tuple[int, int]]:
        """``(layer, head)`` of the heads whose overall score reaches the threshold, best first."""
        return [(s.layer, s.head) for s in self.get_top_heads() if s.overall_score >= self.threshold]

    @property
    def num_heads_detected(self) -> int:
        return len(self.induction_heads)

    def get_top_heads(self, n: int | None = None, metric: str = "overall_score") -> list[HeadScore]:
        """Heads sorted by ``metric`` (descending; ties by layer, head), the first ``n``."""
        if metric not in {f.name for f in fields(HeadScore)} - {"layer", "head"}:
            raise InputError(f"unknown metric {metric!r}; use one of the HeadScore fields, e.g. 'overall_score'")

        def key(s: HeadScore):
            v = getattr(s, metric)
            return (-(v if v is not None and not math.isnan(v) else -1.0), s.layer, s.head)

        ranked = sorted(self.head_scores, key=key)
        return ranked if n is None else ranked[:n]

    def score(self, layer: int, head: int) -> HeadScore:
        i = self._index.get((layer, head))
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
        no such head (a layer without attention, a layer with fewer heads)."""
        if metric not in {f.name for f in fields(HeadScore)} - {"layer", "head"}:
            raise InputError(f"unknown metric {metric!r}; use one of the HeadScore fields, e.g. 'overall_score'")
        nan = float("nan")
        return [[getattr(self.score(l, h), metric) if (l, h) in self._index else nan for h in range(self.n_heads)]
                for l in range(self.n_layers)]

    def with_causal_effects(self, effects: Any, method: str = "zero") -> "DetectionResult":
        """A copy whose head scores carry ``effects[layer][head]``: ``head_effects(model)`` itself (exact or
        attribution estimate) or any ``[layer][head]`` values."""
        from dataclasses import replace

        if hasattr(effects, "estimator"):  # an effects.HeadEffects
            method = f"{effects.method} ablation" + (", attribution estimate" if effects.estimator == "attribution" else "")
            effects = effects.effects
        else:
            method = f"{method} ablation"

        shape = tuple(getattr(effects, "shape", ())) or (len(effects), len(effects[0]) if len(effects) else 0)
        if shape != (self.n_layers, self.n_heads):
            raise InputError(f"effects has shape {shape}, expected [layer, head] = ({self.n_layers}, {self.n_heads})")
        try:
            values = [[float(effects[l][h]) for h in range(self.n_heads)] for l in range(self.n_layers)]
        except (IndexError, TypeError, ValueError):
            raise InputError(f"effects must be indexable as [layer][head] over {self.n_layers} x {self.n_heads}") from None
        missing = [s.name for s in self.head_scores if math.isnan(values[s.layer][s.head])]
        if missing:
            raise InputError(f"effects has no value (NaN) for heads the result scores: {', '.join(missing[:6])}")
        scores = tuple(replace(s, causal_effect=values[s.layer][s.head]) for s in self.head_scores)
        settings = {**self.settings, "causal_effect": f"loss increase on repeated tokens, {method}"}
        return replace(self, head_scores=scores, settings=settings)

    def previous_token_heads(self, threshold: float = 0.4) -> list[tuple[int, int]]:
        return [(s.layer, s.head) for s in self.get_top_heads(metric="previous_token") if s.previous_token >= threshold]

    # -- export ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": {"name": self.model_name, "n_layers": self.n_layers, "n_heads": self.n_heads,
                      "heads_per_layer": {str(l): n for l, n in self.heads_per_layer.items()}},
            "threshold": self.threshold,
            "seed": self.seed,
            "settings": dict(self.settings),
            "induction_heads": [list(x) for x in self.induction_heads],
            "head_scores": [s.to_dict() for s in self.head_scores],
        }

    @classmethod
    def from_dict(cls, d: Any) -> "DetectionResult":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError(f"not an induction_nb detection result (expected \"format\": \"{FORMAT}\")")
        if d.get("version") not in _READABLE:
            raise InputError(f"result format version {d.get('version')!r} is not supported (readable: "
                             f"{', '.join(map(str, _READABLE))})")
        try:
            model = d["model"]
            scores = tuple(HeadScore.from_dict(s) for s in d["head_scores"])
            result = cls(scores, float(d["threshold"]), str(model["name"]), int(model["n_layers"]),
                         int(model["n_heads"]), dict(d.get("settings", {})), int(d.get("seed", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"damaged detection result: {type(e).__name__}: {e}") from None
        expected = _expected_heads(d, result)
        if len(scores) != len(expected):
            where = (f"{result.n_layers} x {result.n_heads} heads" if len(expected) == result.n_layers * result.n_heads
                     else f"the {len(expected)} heads of its layers")
            raise InputError(f"damaged detection result: {len(scores)} head scores for {where}")
        for i, (s, key) in enumerate(zip(scores, expected)):
            if (s.layer, s.head) != key:
                raise InputError(f"damaged detection result: entry {i} is L{s.layer}H{s.head}, expected "
                                 f"L{key[0]}H{key[1]} (scores are stored layer by layer)")
        if not 0 <= result.threshold <= 1:
            raise InputError(f"damaged detection result: threshold {result.threshold} is outside [0, 1]")
        return result

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (``kept_patterns`` are not written)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DetectionResult":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror or e}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path} is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def to_html(self, path: str | Path, model: Any = None) -> Path:
        """One self-contained offline HTML page: grid, top heads, report, and the heatmaps of the heads
        kept by ``detect(keep_patterns=...)`` (tokens spelled by ``model``'s tokenizer when given).
        See ``export_html``; for the heads viewed in an explorer, ``HeadExplorer.save_html``."""
        from .export_html import save_html  # a view, imported only when used

        return save_html(self, path, model=model)

    def to_dataframe(self):
        """One row per head (pandas)."""
        import pandas as pd

        df = pd.DataFrame([s.to_dict() for s in self.head_scores])
        df["detected"] = df["overall_score"] >= self.threshold
        return df

    def summary(self) -> str:
        """One line: model, heads detected, the best five."""
        top = ", ".join(f"{s.name} {s.overall_score:.3f}" for s in self.get_top_heads(5))
        return (
            f"DetectionResult({self.model_name}: {self.num_heads_detected} induction heads at threshold "
            f"{self.threshold:.2f} of {self.n_layers}x{self.n_heads}; top: {top})"
        )

    def __repr__(self) -> str:
        """The ASCII report: what a terminal, a log or a notebook without HTML shows."""
        from .ascii import create_analysis_report  # display hook: views are imported only when shown

        return str(create_analysis_report(self, detailed=False))

    __str__ = __repr__

    def _repr_html_(self) -> str:
        """Notebook display: summary, the top heads' metrics, and a layer x head heatmap of the overall score."""
        from html import escape

        from ._colors import cividis_hex, text_color
        from ._labels import escape_label

        causal = any(s.causal_effect is not None for s in self.head_scores)
        rows = "".join(
            f"<tr><td><b>{s.name}</b></td>" + "".join(
                f"<td>{v:.3f}</td>" for v in (s.overall_score, s.prefix_matching, s.contrast, s.copying, s.previous_token)
            ) + f"<td>[{s.ci_low:.3f}, {s.ci_high:.3f}]</td>"
            + ((f"<td>{s.causal_effect:+.3f}</td>" if s.causal_effect is not None else "<td>-</td>") if causal else "")
            + "</tr>"
            for s in self.get_top_heads(8)
        )
        cells = []
        for layer in range(self.n_layers):
            tds = []
            for head in range(self.n_heads):
                s = self.score(layer, head)
                border = "2px solid #e66100" if (layer, head) in self.induction_heads else "1px solid #ffffff"
                tds.append(
                    f'<td title="{s.name}: {s.overall_score:.3f}" style="background:{cividis_hex(s.overall_score)};'
                    f"color:{text_color(s.overall_score)};border:{border};width:14px;height:10px;padding:0;"
                    f'font-size:7px;text-align:center"></td>'
                )
            cells.append(f'<tr><td style="font-size:8px;padding:0 3px">L{layer}</td>{"".join(tds)}</tr>')
        detected = " ".join(f"L{l}H{h}" for l, h in self.induction_heads) or "none"
        return (
            f'<div class="inb-result"><p><b>{escape(escape_label(self.model_name))}</b>: {self.num_heads_detected} induction heads '
            f"at threshold {self.threshold:.2f} ({self.n_layers} layers x {self.n_heads} heads): {escape(detected)}</p>"
            '<div style="display:flex;gap:24px;align-items:flex-start">'
            "<table><tr><th>head</th><th>overall</th><th>prefix</th><th>contrast</th><th>copying</th>"
            f"<th>prev-tok</th><th>95% CI</th>{'<th>ablation effect</th>' if causal else ''}</tr>{rows}</table>"
            f'<table style="border-collapse:collapse">{"".join(cells)}</table></div>'
            f"<p style=\"font-size:8px\">heatmap: overall score (cividis, 0 to 1); outlined: detected; "
            f"seed {self.seed}</p></div>"
        )


def _expected_heads(d: dict, result: DetectionResult) -> list[tuple[int, int]]:
    """The ``(layer, head)`` keys a stored result must hold, in order: the whole grid (version 1), or the
    layers and head counts its ``heads_per_layer`` names (version 2)."""
    per_layer = d["model"].get("heads_per_layer") if d.get("version", 1) >= 2 else None
    if per_layer is None:
        return [(l, h) for l in range(result.n_layers) for h in range(result.n_heads)]
    try:
        heads = sorted((int(l), int(n)) for l, n in per_layer.items())
    except (AttributeError, TypeError, ValueError):
        raise InputError("damaged detection result: model.heads_per_layer must map layer indices to head counts") from None
    bad = [l for l, n in heads if not (0 <= l < result.n_layers and 0 < n <= result.n_heads)]
    if bad:
        raise InputError(f"damaged detection result: heads_per_layer names layers {bad} outside the "
                         f"{result.n_layers} x {result.n_heads} grid")
    return [(l, h) for l, n in heads for h in range(n)]
