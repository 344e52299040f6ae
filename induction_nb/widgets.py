"""HeadExplorer: an ipywidgets 8 explorer of one model's heads, with an ASCII fallback.

Standard widgets only (no custom JavaScript): a clickable layer x head grid of buttons coloured by
overall score, layer/head/pattern/example/window controls and a stripe toggle; the selected head's
attention heatmap as a PNG in an ``Image``, its metrics, and the tokens with the ``[A][B] ... [A]``
matches highlighted (every token HTML-escaped: ``<s>`` is a real token). Where widgets cannot render
(terminal IPython, nbconvert to text, ``str()``), the text/plain form is the ASCII report and the
selected head's ASCII pattern.

Patterns come from the model (captured on demand, one layer per capture, cached) or, for a bare
``DetectionResult``, from the heads it kept (``detect(keep_patterns=...)``). Stable CSS classes
(``inb-explorer``, ``inb-cell-L{l}-H{h}``, ``inb-image``, ``inb-title``, ``inb-layer`` ...) let
browser tests find the parts.
"""

from __future__ import annotations

import html
import io
from typing import Any, Sequence

import torch

from ._engine import Engine, token_labels
from ._colors import cividis_hex, text_color
from ._labels import escape_label
from .errors import InputError
from .results import DetectionResult

__all__ = ["HeadExplorer"]


class HeadExplorer:
    """Explore the heads of ``result_or_model`` (a ``DetectionResult``, or anything ``load_model``
    accepts: detection runs first). ``model``: where patterns come from for a result. ``texts``: your
    documents (anything ``load_texts`` reads), shown as the pattern ``"text"`` (the first ``n_examples``,
    each cut to ``text_length`` tokens, run as one padded batch; e.g. with ``detect_on_text``'s result)."""

    def __init__(self, result_or_model: Any, model: Any = None, *, patterns: Sequence[str] = ("repeated", "copy", "random"),
                 sequence_length: int | None = None, n_examples: int = 4, seed: int = 0,
                 layer: int | None = None, head: int | None = None, texts: Any = None, text_length: int = 256):
        from .detector import InductionHeadDetector

        if isinstance(result_or_model, DetectionResult):
            self.result, self.model = result_or_model, model
        else:
            detector = InductionHeadDetector(result_or_model, seed=seed, batch_size=n_examples)
            self.model = detector.model
            self.result = detector.detect(sequence_length=sequence_length or 48)
        if not self.result.head_scores:
            raise InputError("the result is empty (no head scores): run detect() first")
        self._engine = Engine.of(self.model) if self.model is not None else None
        self.seed, self.n_examples = seed, n_examples
        self.sequence_length = sequence_length or int(self.result.settings.get("sequence_length", 48))
        self.patterns = tuple(patterns) if self.model is not None else ("repeated",)
        self.texts, self.text_length, self._text_masks = texts, text_length, None
        if texts is not None:
            if self.model is None:
                raise InputError("texts need the model to run them: HeadExplorer(result, model=model, texts=...)")
            self.patterns = ("text", *self.patterns)
        self._cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, int | None]] = {}
        top = self.result.get_top_heads(1)[0]
        self._build()
        self.select(top.layer if layer is None else layer, top.head if head is None else head)

    # -- public ---------------------------------------------------------------------------------------

    @property
    def layer(self) -> int:
        return self._layer.value

    @property
    def head(self) -> int:
        return self._head.value

    def select(self, layer: int, head: int) -> None:
        """Show ``(layer, head)``; raises ``InputError`` when out of range or without patterns."""
        self._check_head(layer, head)
        self._pattern_for(self._pattern.value, layer, head)  # raise here, not inside a widget callback
        self._quiet = True
        self._layer.value, self._head.value = layer, head
        self._quiet = False
        self._refresh()

    def attention(self) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """The shown pattern ``[seq, seq]``, its tokens ``[seq]`` and the pattern's period."""
        patterns, tokens, period = self._pattern_for(self._pattern.value, self.layer, self.head)
        i = min(self._example.value, patterns.shape[0] - 1)
        if self._pattern.value == "text":  # the document's own tokens, padding cut off
            real = self._text_masks[i]
            return patterns[i, self.head][real][:, real], tokens[i][real], None
        return patterns[i, self.head], tokens[i], period

    def text(self, width: int = 80) -> str:
        """The ASCII stand-in: report plus the selected head's pattern and stripe."""
        from .ascii import create_analysis_report, plot_attention_pattern, plot_induction_stripe

        parts = [str(create_analysis_report(self.result, width=width))]
        try:
            attention, tokens, period = self.attention()
        except InputError as e:
            parts.append(f"L{self.layer}H{self.head}: {e}")
        else:
            labels = self._labels(tokens)
            parts.append(str(plot_attention_pattern(attention, labels, width, title=self._title_text())))
            if period is not None:
                parts.append(str(plot_induction_stripe(attention, period, width, tokens=labels,
                                                       offset=getattr(self, "_offset", 0))))
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
        import ipywidgets as W

        r = self.result
        self._quiet = False
        self.cells: dict[tuple[int, int], Any] = {}
        grid_items = [W.Label("")] + [W.Label(f"H{h}", layout=W.Layout(width="26px")) for h in range(r.n_heads)]
        for layer in range(r.n_layers):
            grid_items.append(W.Label(f"L{layer}", layout=W.Layout(width="30px")))
            for head in range(r.n_heads):
                if not r.has_head(layer, head):  # a layer without attention, or with fewer heads
                    grid_items.append(W.Label("", layout=W.Layout(width="26px", height="14px")))
                    continue
                s = r.score(layer, head)
                b = W.Button(description="", tooltip=f"L{layer}H{head}: overall {s.overall_score:.3f}",
                             layout=W.Layout(width="26px", height="14px", padding="0", margin="0"))
                b.style.button_color = cividis_hex(s.overall_score)
                b.add_class("inb-cell")
                b.add_class(f"inb-cell-L{layer}-H{head}")
                if (layer, head) in r.induction_heads:
                    b.add_class("inb-detected")
                    b.layout.border = "2px solid #e66100"
                b.on_click(lambda _b, l=layer, h=head: self._clicked(l, h))
                self.cells[(layer, head)] = b
                grid_items.append(b)
        self.grid = W.GridBox(grid_items, layout=W.Layout(
            grid_template_columns=f"30px repeat({r.n_heads}, 26px)", grid_gap="1px"))
        self.grid.add_class("inb-grid")
        self._layer = W.BoundedIntText(value=0, min=0, max=r.n_layers - 1, description="layer",
                                       layout=W.Layout(width="140px"))
        self._head = W.BoundedIntText(value=0, min=0, max=r.n_heads - 1, description="head",
                                      layout=W.Layout(width="140px"))
        self._pattern = W.Dropdown(options=list(self.patterns), value=self.patterns[0], description="pattern")
        self._example = W.IntSlider(value=0, min=0, max=max(0, self._n_examples() - 1), description="example")
        n = self.sequence_length + 1
        self._window = W.IntRangeSlider(value=(0, n), min=0, max=n, description="window")
        self._stripe = W.Checkbox(value=True, description="highlight stripe")
        for control, name in ((self._layer, "layer"), (self._head, "head"), (self._pattern, "pattern"),
                              (self._example, "example"), (self._window, "window"), (self._stripe, "stripe")):
            control.add_class(f"inb-{name}")
            control.observe(self._changed, names="value")
        self.title = W.HTML()
        self.title.add_class("inb-title")
        self.image = W.Image(format="png", layout=W.Layout(width="420px"))
        self.image.add_class("inb-image")
        self.metrics = W.HTML()
        self.metrics.add_class("inb-metrics")
        self.tokens = W.HTML()
        self.tokens.add_class("inb-tokens")
        self.message = W.HTML()
        self.message.add_class("inb-message")
        controls = W.VBox([self._layer, self._head, self._pattern, self._example, self._window, self._stripe])
        left = W.VBox([W.HTML(f"<b>{html.escape(escape_label(r.model_name))}</b>: overall score, click a head"), self.grid])
        right = W.VBox([self.title, W.HBox([self.image, W.VBox([controls, self.metrics])]), self.message, self.tokens])
        self.widget = W.HBox([left, right])
        self.widget.add_class("inb-explorer")

    def _n_examples(self) -> int:
        if self._engine is not None:
            return self.n_examples
        kept = self.result.kept_tokens
        return 1 if kept is None else int(kept.shape[0])

    # -- events ---------------------------------------------------------------------------------------

    def _clicked(self, layer: int, head: int) -> None:
        self._quiet = True
        self._layer.value, self._head.value = layer, head
        self._quiet = False
        self._refresh()

    def _changed(self, change: dict) -> None:
        if not self._quiet:
            self._refresh()

    def _refresh(self) -> None:
        """Redraw for the current controls; problems go to the message line (callbacks must not raise).
        The title is set last: a front end that shows the new title has already received the image."""
        s = self.result.score(self.layer, self.head)
        for (l, h), b in self.cells.items():
            b.description = "●" if (l, h) == (self.layer, self.head) else ""
            b.style.text_color = text_color(self.result.score(l, h).overall_score)
        self.metrics.value = _metrics_html(s, self.result.threshold)
        try:
            attention, tokens, period = self.attention()
        except InputError as e:
            self.message.value = f"<span style='color:#b00020'>{html.escape(str(e))}</span>"
            self.image.value = b""
            self.tokens.value = ""
        else:
            self.message.value = ""
            n = attention.shape[0]
            self._quiet = True
            self._window.max = n
            self._quiet = False
            start, stop = self._window.value
            stop = min(stop, n)
            if stop - start < 2:
                start, stop = 0, n
            labels = self._labels(tokens)
            self.image.value = _png(attention, labels, period if self._stripe.value else None, (start, stop),
                                    self._title_text())
            self.tokens.value = _tokens_html(labels, tokens)
        self.title.value = f"<h4 class='inb-head-name'>{html.escape(escape_label(self._title_text()))}</h4>"

    # -- data ---------------------------------------------------------------------------------------------

    def _check_head(self, layer: int, head: int) -> None:
        r = self.result
        if not (isinstance(layer, int) and isinstance(head, int) and r.has_head(layer, head)):
            r.score(layer, head)  # raises the result's own "out of range" error
            raise InputError(f"L{layer}H{head} is out of range: layer and head must be integers")

    def _pattern_for(self, name: str, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """``[example, head, q, k]`` patterns of ``layer`` on pattern ``name``, their tokens and period
        (without a model: only the heads the result kept; asking for another ``head`` raises)."""
        key = (name, layer)
        if key in self._cache:
            return self._cache[key]
        if self.model is None:
            heads = {h for (l, h) in self.result.kept_patterns if l == layer}
            if head not in heads or self.result.kept_tokens is None:
                raise InputError(
                    f"this result holds no attention patterns for L{layer}H{head}: pass the model, "
                    f"HeadExplorer(result, model=model), or detect with keep_patterns=[({layer}, {head})]"
                )
            n_heads = self.result.n_heads
            stacked = torch.zeros(self.result.kept_tokens.shape[0], n_heads, *self.result.kept_patterns[(layer, head)].shape[1:])
            for h in heads:
                stacked[:, h] = self.result.kept_patterns[(layer, h)]
            period = int(self.result.settings.get("sequence_length", 2)) // int(self.result.settings.get("n_repeats", 2))
            return stacked, self.result.kept_tokens, period
        from .capture import capture_attention

        if name == "text":
            return self._text_patterns(layer)
        probe = self._engine.generator(self.seed).generate(name, self.sequence_length, self.n_examples)
        captured = capture_attention(self._engine, probe.tokens, layers=[layer])
        self._cache[key] = (captured.pattern[:, 0].cpu(), probe.tokens.cpu(), probe.period)
        self._offset = probe.offset
        return self._cache[key]

    def _text_patterns(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        from .capture import capture_attention
        from .on_text import tokenize_documents

        if not hasattr(self, "_text_docs"):  # read and tokenized once, not per layer
            length = min(self.text_length, self._engine.max_positions or self.text_length)
            self._text_docs = tokenize_documents(self._engine, self.texts, length, "truncate")[: self.n_examples]
        docs = self._text_docs
        captured = capture_attention(self._engine, docs, layers=[layer])
        mask = captured.attention_mask
        self._text_masks = (torch.ones(captured.tokens.shape, dtype=torch.bool) if mask is None else mask).cpu()
        self._cache[("text", layer)] = (captured.pattern[:, 0].cpu(), captured.tokens.cpu(), None)
        return self._cache[("text", layer)]

    def _labels(self, tokens: torch.Tensor) -> list[str]:
        return token_labels(self.model, tokens.tolist())

    def _title_text(self) -> str:
        s = self.result.score(self.layer, self.head)
        mark = "induction head" if (self.layer, self.head) in self.result.induction_heads else "not detected"
        return f"L{self.layer}H{self.head} ({mark}) on '{self._pattern.value}': overall {s.overall_score:.3f}"


def _metrics_html(s: Any, threshold: float) -> str:
    from .scores import LABELS

    body = "".join(f"<tr><td>{label}</td><td>{'-' if getattr(s, m) is None else f'{getattr(s, m):.3f}'}</td></tr>"
                   for m, label in LABELS.items())
    return (f"<table class='inb-metric-table'>{body}</table>"
            f"<small>95% CI [{s.ci_low:.3f}, {s.ci_high:.3f}]; threshold {threshold:.2f}</small>")


def _tokens_html(labels: list[str], tokens: torch.Tensor) -> str:
    """Tokens with queries that have an earlier copy underlined and their induction targets marked."""
    from .scores import match_mask

    match = match_mask(tokens[None].cpu())[0]
    queries = set(match.any(-1).nonzero().flatten().tolist())
    targets = set(match.any(0).nonzero().flatten().tolist())
    spans = []
    for i, label in enumerate(labels):
        style = []
        if i in targets:
            style.append("background:#fdb863")
        if i in queries:
            style.append("text-decoration:underline;font-weight:bold")
        text = html.escape(escape_label(label)) or "&nbsp;"
        spans.append(f"<span class='inb-tok' title='position {i}' style='{';'.join(style)}'>{text}</span>")
    legend = ("<small><b>bold</b>: [A] whose earlier copy exists; <span style='background:#fdb863'>marked</span>: "
              "[B], the token after an earlier [A] (the induction target)</small>")
    return f"<div style='font-family:monospace;line-height:1.6'>{' '.join(spans)}</div>{legend}"


def _png(attention: torch.Tensor, labels: list[str], period: int | None, window: tuple[int, int], title: str) -> bytes:
    # a bare Figure (no pyplot): leaves the notebook's backend and current figure alone
    from matplotlib.figure import Figure

    from .figures import plot_attention_heatmap, style

    with style():
        fig = Figure(figsize=(4.2, 4.2), layout="constrained")
        plot_attention_heatmap(attention, labels, ax=fig.subplots(), period=period, window=window, title=title)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()
