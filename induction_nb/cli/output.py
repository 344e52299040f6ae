"""What a command writes besides its report: progress on stderr, warnings as notes, the exports (JSON, CSV,
the HTML page with the top heads' panels) and the figures, each path checked before the work starts."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["status", "noting", "finish", "check_exports", "export", "remote_config"]


def status(args: Any, message: str) -> None:
    if not getattr(args, "no_progress", False):
        print(message, file=sys.stderr, flush=True)


def noting(run: Any) -> Any:
    """``run()``, its warnings printed as one ``note:`` line each on stderr (stdout carries the report alone),
    even with --no-progress."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = run()
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    return value


def finish(args: argparse.Namespace, model: Any, detector: Any, result: Any) -> str:
    """The report of ``result``, its exports and figures (``detector`` ``None``: no probe to draw)."""
    from ..draw.report import create_analysis_report

    text = create_analysis_report(result, detailed=not args.brief, width=args.width, top=args.top, charset=args.charset)
    export(args, result, text, model)
    if getattr(args, "figures", None):  # the retrieval command has no --figures
        written = write_figures(model, detector, result, args.figures, remote_config(args))
        status(args, f"wrote {len(written)} figure files into {args.figures}")
    return text


def write_figures(model: Any, detector: Any, result: Any, folder: Path, remote: Any) -> list[Path]:
    """Score heatmaps (overall and per metric), the metric scatter, and the top head's pattern and
    stripe profile (probes only), each as PDF and PNG."""
    from ..draw import figures as F
    from ..draw.html_repr import table_metrics
    from ..engine.capture import capture_attention

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the figures folder {folder}: {e.strerror or e}") from None
    plots = {f"heatmap_{m}": (lambda ax, m=m: F.plot_score_heatmap(result, m, ax=ax)) for m in table_metrics(result)}
    plots["scatter_prefix_vs_copying"] = lambda ax: F.plot_metric_scatter(result, ax=ax)
    if detector is None:  # scored on the user's text: no probe to draw
        return save_figures(F, plots, folder)
    top = result.get_top_heads(1)[0]
    probe = detector.generator().generate("repeated", int(result.settings["sequence_length"]), 1)
    attention = capture_attention(model, probe.tokens, layers=[top.layer], remote=remote).head(top.layer, top.head)
    labels = [str(i) for i in probe.tokens[0].tolist()]
    plots[f"pattern_L{top.layer}H{top.head}"] = lambda ax: F.plot_attention_heatmap(
        attention, labels, ax=ax, period=probe.period, title=f"L{top.layer}H{top.head}"
    )
    plots[f"stripe_L{top.layer}H{top.head}"] = lambda ax: F.plot_stripe_profile(
        attention, probe.period, ax=ax, offset=probe.offset
    )
    return save_figures(F, plots, folder)


def save_figures(F: Any, plots: dict, folder: Path) -> list[Path]:
    from matplotlib.figure import Figure

    written = []
    for name, draw in plots.items():
        with F.style():
            fig = Figure(figsize=F.TWO_COLUMN if name.startswith("stripe") else (4.0, 3.4), layout="constrained")
            draw(fig.subplots())
        written += F.save_figure(fig, folder / name, formats=("pdf", "png"))
    return written


def check_exports(args: argparse.Namespace) -> None:
    """Export paths checked before minutes of work, not after."""
    paths = [p.resolve() for p in (args.json, args.csv, getattr(args, "html", None)) if p is not None]
    if len(set(paths)) < len(paths):
        raise InputError("--json, --csv and --html name the same file; give them different paths")
    if getattr(args, "html", None) is not None:
        import importlib.util

        if args.html.suffix.lower() not in (".html", ".htm"):
            raise InputError(f"--html writes an HTML page: give a path ending in .html, got {args.html}")
        if importlib.util.find_spec("matplotlib") is None:  # the page's heatmaps are matplotlib PNGs
            raise InputError(
                "--html draws its heatmaps with matplotlib, which is not installed: "
                "pip install matplotlib (or drop --html)"
            )
    for path in (args.json, args.csv, getattr(args, "html", None)):
        if path is not None and path.is_dir():
            raise InputError(f"cannot write {path}: it is a folder; give a file name")
        if path is not None and not path.parent.exists():
            raise InputError(f"cannot write {path}: folder {path.parent} does not exist")


def export(args: argparse.Namespace, result: Any, text: str, model: Any = None) -> None:
    """``--json`` / ``--csv`` / ``--html``: written after the work; a failed write still prints the report.
    The HTML page holds the top heads' heatmaps when a model is given (probe and text scans)."""
    try:
        if getattr(args, "html", None):
            from ..draw.html_page import save_html
            from ..explorer.export import capture_panels

            heads = [(s.layer, s.head) for s in result.get_top_heads(6)]
            texts = getattr(args, "text", None)  # a text scan's documents; probes otherwise
            panels = [] if model is None else capture_panels(result, model, heads, texts=texts, seed=args.seed)
            save_html(result, args.html, panels=panels)
            status(args, f"wrote {args.html}")
        if args.json:
            result.save(args.json)
            status(args, f"wrote {args.json}")
        if args.csv:
            result.to_dataframe().to_csv(args.csv, index=False)
            status(args, f"wrote {args.csv}")
    except OSError as e:  # the report still reaches stdout: the scan is not lost
        print(text)
        raise InputError(f"cannot write the export: {e.strerror or e} ({e.filename})") from None
    except ImportError as e:
        print(text)
        raise InputError(f"cannot write the export: {e} (pip install it, or drop the export option)") from None


def remote_config(args: argparse.Namespace) -> Any:
    if not args.remote:
        return False
    from ..engine.remote import RemoteConfig

    return RemoteConfig(host=args.host)
