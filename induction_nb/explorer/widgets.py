"""HeadExplorer: explore one model's heads in a notebook, with an ASCII fallback and a static export.

The layer x head grid is one canvas (``explorer.canvas.HeadGrid``, an anywidget with an inline ES module: works
offline, scales to 80 x 64 heads), coloured by a chosen metric with a legend, detected heads outlined,
hover naming the head and its value, a click selecting it. Beside it (stacked on narrow outputs) the
selected head's attention heatmap as a PNG at its natural size, its metrics (the detection's scores
beside those of the pattern shown), and the tokens with the ``[A][B] ... [A]`` matches marked.

It opens on any scan result (``DetectionResult``, ``TextScanResult``, ``RetrievalResult``): without a
model and without kept patterns it shows the grid, the metrics and the report, and the heatmap panel
lists the heads it can show. Where widgets cannot render
(terminal IPython, nbconvert to text, ``str()``), the text/plain form is the ASCII report and the
selected head's ASCII pattern. ``save_html`` writes a self-contained offline HTML page of what is seen;
``save_figure`` the current heatmap. Stable CSS classes (``inb-explorer``, ``inb-grid``, ``inb-heatmap``,
``inb-title`` ...) let browser tests find the parts.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .._validate import is_int
from ..analysis.detector import InductionHeadDetector
from ..analysis.results import ScanResult
from ..draw.ascii import (
    text_attention_pattern,
    text_induction_stripe,
)
from ..draw.canvas_state import grid_colours, grid_selection, heatmap_state
from ..draw.evidence_views import check_report, evidence_head_html, text_evidence_head
from ..draw.labels import escape_label, token_labels
from ..draw.panels import head_title, metrics_html, tokens_html
from ..draw.report import create_analysis_report
from ..engine.engine import Engine
from ..errors import InputError
from ..metrics import pattern_metrics
from ..probes.patterns import PATTERN_NAMES
from .export import compare, save_figure, save_html
from .layout import build
from .pattern_source import PatternSource

__all__ = ["HeadExplorer"]


class HeadExplorer:
    """Explore the heads of ``result_or_model`` (a scan result, or anything ``load_model``
    accepts: detection runs first). ``model``: where patterns come from for a result (without it, only
    the heads the result kept can be shown). ``texts``: your documents (anything ``load_texts`` reads),
    shown as the pattern ``"text"`` (the first ``n_examples``, each cut to ``text_length`` tokens).
    ``evidence``: an evidence report of the same model (``evidence_report``, or ``EvidenceReport.load``): the
    selected head's evidence is shown under its metrics (``self.evidence``) and in ``text()``.

    Displayed in Jupyter it is the interactive widget; where widgets cannot render (terminal IPython,
    nbconvert to text, ``str()``) its ``text()`` stands in: the ASCII report (``create_analysis_report``) and
    the selected head's ASCII pattern (``text_attention_pattern``) and stripe (``text_induction_stripe``).
    ``select(layer, head)`` changes the head; ``save_html`` and ``save_figure`` export what is seen.

    Args:
        result_or_model: a scan result (``DetectionResult``, ``TextScanResult``, ``RetrievalResult``), or a
            model (anything ``load_model`` accepts: a Hugging Face model, an nnsight ``LanguageModel``, a
            plain ``torch.nn.Module``, a name or path): detection (``InductionHeadDetector``) runs on it first.
        model: the model the result came from, so any head's attention can be captured on the probe
            patterns; ``None`` (default; ignored when a model is passed first): only the heads the result
            kept (``detect(keep_patterns=...)``) can be shown, on the pattern they were kept on.
        patterns: the probe patterns offered, by name (from ``PATTERN_NAMES``; default ``("repeated",
            "copy", "random")``); used only where there is a model.
        sequence_length: the probe length in tokens; ``None`` (default): a result's own
            ``settings["sequence_length"]`` (else 48), or, on a model, 48 where its positions and
            vocabulary allow.
        n_examples: examples captured per pattern (and the detection's batch size on a model; default 4).
        seed: seed of the probe tokens and of the detection on a model (default 0).
        layer: the layer selected first; ``None`` (default): the top head's by overall score (with neither
            ``layer`` nor ``head`` and without a model: the best head the result kept).
        head: the head selected first; ``None`` (default): the top head's, as for ``layer``.
        texts: your documents (anything ``load_texts`` reads), shown as the pattern ``"text"``; needs the
            model. ``None`` (default): probe patterns only.
        text_length: each document is cut to this many tokens (default 256; at most the model's positions).
        evidence: an ``EvidenceReport`` of the same model (``evidence_report``, or ``EvidenceReport.load``),
            shown with the selected head; ``None`` (default): none.

    Raises:
        InputError: when the result is empty (no head scores), ``texts`` is given without a model, the model
            does not match the result (layers, heads per layer), ``patterns`` names an unknown probe
            pattern, ``evidence`` is not an evidence report or is of another model, or ``layer``/``head``
            is out of range. On a model, the errors of ``load_model`` and ``detect_induction_heads``
            (``ModelLoadError``, ``AttentionNotFoundError``, ``InputError``).

    Examples:
        >>> from induction_nb import HandBuiltInduction, HeadExplorer, detect_induction_heads
        >>> model = HandBuiltInduction()  # L1H0 is an induction head, L0H0 a previous-token head
        >>> result = detect_induction_heads(model, sequence_length=32)
        >>> explorer = HeadExplorer(result, model=model)  # in Jupyter: display(explorer)
        >>> (explorer.layer, explorer.head)  # it opens on the top head
        (1, 0)
        >>> print(explorer.text())  # what str(explorer) and a terminal show
        INDUCTION HEAD ANALYSIS REPORT
        ==============================
        ...
        Induction heads: L1H0
        ...
        L1H0 (induction head): attention on 'repeated', example 1 of 4
        queries 0..31 (rows) x keys 0..31 (columns)
        ...
        induction stripe k = q - 15 (period 16), queries 16..31
        ...
        >>> explorer.select(0, 0)
        >>> explorer.text().count("L0H0 (not detected)")
        1
    """

    def __init__(
        self,
        result_or_model: Any,
        model: Any = None,
        *,
        patterns: Sequence[str] = ("repeated", "copy", "random"),
        sequence_length: int | None = None,
        n_examples: int = 4,
        seed: int = 0,
        layer: int | None = None,
        head: int | None = None,
        texts: Any = None,
        text_length: int = 256,
        evidence: Any = None,
    ):
        if isinstance(result_or_model, ScanResult):
            self.result, self.model = result_or_model, model
        else:
            detector = InductionHeadDetector(result_or_model, seed=seed, batch_size=n_examples)
            self.model = detector.model
            # the explorer's short default (48 tokens) by the rule every tool follows
            length, _ = detector.engine.probe_length(sequence_length, preferred=48, tool="HeadExplorer", seed=seed)
            self.result = detector.detect(sequence_length=length)
        if not self.result.head_scores:
            raise InputError("the result is empty (no head scores): run detect() first")
        self.evidence_report = _check_evidence(evidence, self.result)
        if texts is not None and self.model is None:
            raise InputError("texts need the model to run them: HeadExplorer(result, model=model, texts=...)")
        engine = Engine.of(self.model) if self.model is not None else None
        if engine is not None:
            _check_model_matches(self.result, engine)
        self.sequence_length = sequence_length or int(self.result.settings.get("sequence_length", 48))
        self.source = PatternSource(
            self.result,
            engine,
            seed=seed,
            n_examples=n_examples,
            sequence_length=self.sequence_length,
            texts=texts,
            text_length=text_length,
        )
        self.patterns = _check_patterns(patterns) if engine is not None else (self.source.kept_pattern,)
        if texts is not None:
            self.patterns = ("text", *self.patterns)
        self.viewed: list[tuple[int, int]] = []
        self._sel, self._window_n, self._colours = (0, 0), -1, {}
        top = self.result.get_top_heads(1)[0]
        if layer is None and head is None and engine is None and self.source.kept():
            top = self.result.score(*max(self.source.kept(), key=lambda k: self.result.score(*k).overall_score))
        self._build()
        self.select(top.layer if layer is None else layer, top.head if head is None else head)

    # -- public ---------------------------------------------------------------------------------------

    @property
    def layer(self) -> int:
        return self._sel[0]

    @property
    def head(self) -> int:
        return self._sel[1]

    @property
    def pattern(self) -> str:
        return self._pattern.value

    def select(self, layer: int, head: int) -> None:
        """Show ``(layer, head)``; ``InputError`` when out of range. A head whose attention cannot be
        shown (no model, not kept) is selected all the same: the panel says how to get its patterns."""
        self._sel = self._check_head(layer, head)
        self._quiet = True
        self._layer.value, self._head.value = self._sel
        self._quiet = False
        self._refresh()

    def attention(self) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """The shown pattern ``[seq, seq]``, its tokens ``[seq]`` and the pattern's period (None on text);
        ``InputError`` when the selected head's attention is not available."""
        patterns = self.source.get(self.pattern, self.layer, self.head)
        i = min(self._example_index(), patterns.attention.shape[0] - 1)
        attention, tokens = patterns.example(i, self.head)
        return attention, tokens, patterns.period

    def compare(
        self, heads: Sequence[tuple[int, int]], *, pattern: str | None = None, example: int | None = None
    ) -> Any:
        """A matplotlib figure of ``heads``' attention side by side (at most 6) on the same pattern and
        example (default: the shown ones; ``example`` counts from 1, as the slider does)."""
        return compare(self, heads, pattern, example)

    def save_html(self, path: str | Path, heads: Sequence[tuple[int, int]] | None = None) -> Path:
        """One self-contained HTML file (no network, no kernel): the grid, the top heads, the report and
        the heatmaps of ``heads`` on the shown pattern and example (default: the heads viewed here, the
        selected one first; at most 24). Heads whose attention cannot be shown are listed, not drawn."""
        return save_html(self, path, heads)

    def save_figure(self, path: str | Path, formats: Sequence[str] | None = None) -> list[Path]:
        """The current heatmap as PNG / SVG / PDF (``figures.save_figure``)."""
        return save_figure(self, path, formats)

    def save(self, path: str | Path) -> list[Path] | Path:
        """``save_html`` for ``.html``, else ``save_figure`` (``.png``, ``.svg``, ``.pdf``)."""
        return self.save_html(path) if str(path).lower().endswith((".html", ".htm")) else self.save_figure(path)

    def text(self, width: int = 80) -> str:
        """The ASCII stand-in: report plus the selected head's pattern and stripe."""
        parts = [str(create_analysis_report(self.result, width=width))]
        try:
            attention, tokens, period = self.attention()
        except InputError as e:
            parts.append(f"L{self.layer}H{self.head}: {e}")
        else:
            labels = self._labels(tokens)
            parts.append(str(text_attention_pattern(attention, labels, width, title=self._title_text())))
            if period is not None:
                offset = self.source.get(self.pattern, self.layer, self.head).offset
                parts.append(str(text_induction_stripe(attention, period, width, tokens=labels, offset=offset)))
        if self.evidence_report is not None:
            parts.append(text_evidence_head(self.evidence_report, self.layer, self.head, width))
        return "\n\n".join(parts)

    def __repr__(self) -> str:
        return self.text()

    __str__ = __repr__

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):  # (data, metadata)
            bundle = bundle[0]
        return {**bundle, "text/plain": self.text()}

    # -- building ---------------------------------------------------------------------------------------

    def _build(self) -> None:
        self._quiet = False
        build(self)
        self.grid.observe(self._grid_clicked, names="selected")
        self._metric.observe(self._recolour, names="value")
        self._offer.observe(self._offered, names="value")
        for control in (self._layer, self._head, self._pattern, self._example, self._window, self._stripe):
            control.observe(self._changed, names="value")

    # -- events ---------------------------------------------------------------------------------------

    def _grid_clicked(self, change: dict) -> None:
        layer, head = change["new"]
        if not self._quiet and (layer, head) != (self.layer, self.head):
            self.select(layer, head)

    def _offered(self, change: dict) -> None:
        if change["new"]:
            layer, head = change["new"]
            self.select(layer, head)

    def _recolour(self, change: dict) -> None:
        self._sync_grid()

    def _changed(self, change: dict) -> None:
        if self._quiet:
            return
        if change["owner"] in (self._layer, self._head):
            try:  # a layer without attention (hybrid models) or a head it lacks: say so, keep the view
                self.select(self._layer.value, self._head.value)
            except InputError as e:
                self._quiet = True
                self._layer.value, self._head.value = self._sel
                self._quiet = False
                self.message.value = f"<span style='color:#b00020'>{html.escape(str(e))}</span>"
            return
        self._refresh()

    def _refresh(self) -> None:
        """Redraw for the current controls; problems go to the message line (callbacks must not raise).
        The title is set last: a front end that shows the new title has already received the heatmap."""

        key = (self.layer, self.head)
        if key in self.viewed:
            self.viewed.remove(key)
        self.viewed.append(key)
        s = self.result.score(*key)
        shown = None
        try:
            attention, tokens, period = self.attention()
        except InputError as e:
            self._show_missing(str(e))
        else:
            offset = self.source.get(self.pattern, *key).offset
            self._fit_controls(attention.shape[0])
            labels = self._labels(tokens)
            self.heatmap.update(
                heatmap_state(
                    attention,
                    labels,
                    period if self._stripe.value else None,
                    self._window_range(attention.shape[0]),
                    self._short_title(),
                    offset=offset,
                )
            )
            self.heatmap.layout.display = None
            self.tokens.value = tokens_html(labels, tokens)
            self.message.value = ""
            shown = pattern_metrics(attention, tokens, 1 + offset)
        self.metrics.value = metrics_html(self.result, s, shown, self._shown_label())
        if self.evidence_report is not None:
            self.evidence.value = evidence_head_html(self.evidence_report, *key)
        self._sync_grid()
        self.title.value = f"<h4 class='inb-head-name'>{html.escape(escape_label(self._title_text()))}</h4>"

    def _fit_controls(self, n: int) -> None:
        """The window spans a new pattern's length whole (a crop is the user's, kept while the length
        stays); the example slider ends at the examples there are."""
        self._quiet = True
        if n != self._window_n:
            self._window.max = max(n, self._window.min + 1)
            self._window.value = (0, n)
            self._window_n = n
        self._example.max = max(1, self.source.n_examples_of(self.pattern))
        self._quiet = False

    def _show_missing(self, why: str) -> None:
        ready = sorted(self.source.ready(self.pattern))
        self.heatmap.update({"n": 0, "data": b"", "labels": [], "period": 0, "title": ""})
        self.heatmap.layout.display = "none"  # an empty panel, not a stale head's pattern
        self.tokens.value = ""
        offer = (
            "; heads that can be shown: choose one below"
            if ready
            else "; this result kept no patterns (detect(keep_patterns=...)) and no model was given"
        )
        self.message.value = f"<span style='color:#b00020'>{html.escape(why)}{offer}</span>"
        self._quiet = True
        self._offer.options = [("", None)] + [(f"L{l}H{h}", (l, h)) for l, h in ready]
        self._offer.value = None
        self._offer.layout.display = None if ready else "none"
        self._quiet = False

    def _sync_grid(self) -> None:
        metric = self._metric.value
        if metric not in self._colours:  # 5,120 values for an 80 x 64 grid: once per metric, not per click
            self._colours[metric] = grid_colours(self.result, metric)
        self._quiet = True
        self.grid.update(
            {
                **self._colours[metric],
                **grid_selection(self.result, (self.layer, self.head), self.source.ready(self.pattern)),
            }
        )
        self._quiet = False
        if self.heatmap.layout.display is None:
            self._offer.layout.display = "none"

    # -- data ---------------------------------------------------------------------------------------------

    def _example_index(self) -> int:
        """The example shown, 0-based (the slider counts from 1, as the titles do)."""
        return self._example.value - 1

    def _window_range(self, n: int) -> tuple[int, int]:
        start, stop = self._window.value
        stop = min(stop, n)
        return (0, n) if stop - start < 2 else (start, stop)

    def _check_head(self, layer: Any, head: Any) -> tuple[int, int]:
        if not (is_int(layer) and is_int(head)):
            raise InputError(f"layer and head must be integers, got {layer!r} and {head!r}")
        self.result.score(int(layer), int(head))  # the result's own "out of range" error
        return int(layer), int(head)

    def _labels(self, tokens: torch.Tensor) -> list[str]:
        if self.model is None:
            return [str(t) for t in tokens.tolist()]  # no tokenizer: the ids themselves
        return token_labels(self.model, tokens.tolist())

    def _shown_label(self) -> str:
        n = self.source.n_examples_of(self.pattern)
        return f"'{self.pattern}'" + (f", example {self._example.value} of {n}" if n > 1 else "")

    def _short_title(self) -> str:
        n = self._window_n
        start, stop = self._window_range(n) if n > 0 else (0, 0)
        crop = f", positions {start}-{stop - 1} of {n}" if n > 0 and (start, stop) != (0, n) else ""
        return f"L{self.layer}H{self.head} on {self._shown_label()}{crop}"

    def _title_text(self) -> str:
        return head_title(
            self.result,
            self.result.score(self.layer, self.head),
            self.pattern,
            self._example_index(),
            self.source.n_examples_of(self.pattern),
        )


def _check_patterns(patterns: Any) -> tuple[str, ...]:
    names = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    bad = [p for p in names if p not in PATTERN_NAMES]
    if not names or bad:
        raise InputError(f"patterns must name probe patterns from {sorted(PATTERN_NAMES)}, got {list(names)!r}")
    return names


def _check_evidence(report: Any, result: ScanResult) -> Any:
    """``report`` (or ``None``) if it is an evidence report of the result's model, else ``InputError``."""
    if report is not None and check_report(report, "HeadExplorer(evidence=)").model_name != result.model_name:
        raise InputError(
            f"the evidence report is of {report.model_name!r}, the result of {result.model_name!r}: pass "
            "evidence_report(model) of the model the result came from"
        )
    return report


def _check_model_matches(result: ScanResult, engine: Any) -> None:
    """The model must be the one the result describes: its attention layers, each layer's head count."""
    have = engine.heads_per_layer()
    want = result.heads_per_layer
    bad = sorted(l for l, n in want.items() if l not in have or (have[l] is not None and n > have[l]))
    if bad:
        layers = sorted(have)
        raise InputError(
            f"the model given does not match the result ({result.model_name}, {result.n_layers} layers x "
            f"{result.n_heads} heads): it has no layer {bad[0]} or fewer heads there (attention in layers "
            f"{layers[:8]}{'...' if len(layers) > 8 else ''}, {have.get(bad[0])} heads in layer {bad[0]}); pass "
            "the model the result came from"
        )
