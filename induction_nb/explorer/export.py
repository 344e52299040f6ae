"""What a HeadExplorer writes or draws beyond its widget: heads side by side (``compare``), the current
heatmap as PNG/SVG/PDF (``save_figure``), a self-contained HTML page of the heads viewed (``save_html``),
and the panels of heads captured from a model for a page (``capture_panels``, ``scan --html``). Every
argument is checked here, before anything is captured or written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._validate import check_choice, check_heads, check_int
from ..draw.figures import compare_heads, plot_attention_heatmap
from ..draw.figures import save_figure as write_figure
from ..draw.html_page import check_path, head_panel
from ..draw.html_page import save_html as write_page
from ..draw.labels import token_labels
from ..draw.style import style
from ..engine.engine import Engine
from ..errors import InputError
from .pattern_source import PatternSource

__all__ = ["compare", "save_figure", "save_html", "capture_panels", "MAX_COMPARE", "MAX_PANELS"]

MAX_COMPARE = 6  # heads in one row of heatmaps that can still be read
MAX_PANELS = 24  # heatmaps in one HTML page (each ~30-60 kB)


def _heads(ex: Any, name: str, heads: Any, limit: int) -> list[tuple[int, int]]:
    """``heads`` checked against the result's grid, duplicates dropped (first kept), at most ``limit``."""
    pairs = list(dict.fromkeys(check_heads(name, heads, ex.result.heads_per_layer)))
    if len(pairs) > limit:
        raise InputError(f"{name} names {len(pairs)} heads; at most {limit} fit (choose the ones to show)")
    return pairs


def _example(ex: Any, name: str, example: int | None, n: int) -> int:
    """0-based index of the 1-based ``example`` (``None``: the one shown), checked against ``n``."""
    if example is None:
        return min(ex._example_index(), n - 1)
    return check_int("example", example, 1, n) - 1


def compare(ex: Any, heads: Any, pattern: str | None, example: int | None) -> Any:
    pairs = _heads(ex, "heads", heads, MAX_COMPARE)
    name = ex.pattern if pattern is None else check_choice("pattern", pattern, ex.patterns)
    panels = []
    for layer, head in pairs:
        p = ex.source.get(name, layer, head)
        i = _example(ex, "example", example, p.attention.shape[0])
        attention, tokens = p.example(i, head)
        panels.append((ex.result.score(layer, head), attention, ex._labels(tokens), p.period, p.offset))
    return compare_heads(panels, pattern=name)


def save_figure(ex: Any, path: str | Path, formats: Sequence[str] | None) -> list[Path]:
    from matplotlib.figure import (
        Figure,  # not pyplot: no figure left open, no backend touched
    )

    attention, tokens, period = ex.attention()
    offset = ex.source.get(ex.pattern, ex.layer, ex.head).offset
    with style():
        fig = Figure(figsize=(4.8, 4.4), layout="constrained")
        plot_attention_heatmap(
            attention,
            ex._labels(tokens),
            fig.subplots(),
            title=ex._short_title(),
            period=period if ex._stripe.value else None,
            offset=offset,
            window=ex._window_range(attention.shape[0]),
        )
    return write_figure(fig, path, [formats] if isinstance(formats, str) else formats)


def save_html(ex: Any, path: str | Path, heads: Any) -> Path:
    check_path(path)
    current = (ex.layer, ex.head)
    pairs = (
        _heads(ex, "heads", heads, MAX_PANELS)
        if heads is not None
        else list(dict.fromkeys([current, *reversed(ex.viewed)]))[:MAX_PANELS]
    )
    panels, missing = [], []
    for layer, head in pairs:
        if not ex.source.can_show(ex.pattern, layer, head):
            missing.append((layer, head))
            continue
        p = ex.source.get(ex.pattern, layer, head)
        attention, tokens = p.example(_example(ex, "example", None, p.attention.shape[0]), head)
        panels.append(
            head_panel(
                ex.result, layer, head, attention, tokens, ex._labels(tokens), p.period, ex.pattern, offset=p.offset
            )
        )
    selected = (
        current
        if current in [(p["layer"], p["head"]) for p in panels]
        else ((panels[0]["layer"], panels[0]["head"]) if panels else current)
    )
    return write_page(ex.result, path, panels=panels, selected=selected, missing=missing)


def capture_panels(
    result: Any, model: Any, heads: Sequence[tuple[int, int]], *, texts: Any = None, seed: int = 0
) -> list[dict[str, Any]]:
    """Panels of ``heads`` captured from ``model`` (local or remote) on one repeated-token probe of the
    result's length, or on the first of ``texts`` (a text scan's documents)."""
    length = int(result.settings.get("sequence_length") or 48)
    source = PatternSource(result, Engine.of(model), seed=seed, n_examples=1, sequence_length=length, texts=texts)
    name = "text" if texts is not None else "repeated"
    panels = []
    for layer, head in heads:
        p = source.get(name, layer, head)
        attention, tokens = p.example(0, head)
        panels.append(
            head_panel(
                result, layer, head, attention, tokens, token_labels(model, tokens.tolist()), p.period, name, p.offset
            )
        )
    return panels
