"""Command line: ``python -m induction_nb`` / ``induction-nb``.

* ``scan [MODEL]``: detect induction heads (default: the embedded SmolLM2) and print the report;
  ``--json``/``--csv`` export. With no sub-command, ``scan`` is assumed (the README's main job).
* ``show [MODEL] --layer L --head H``: one head's attention pattern and induction stripe, with tokens.
* ``report RESULT.json``: print the report of a saved scan.

Exit status 0 on success, 2 on bad input with one line on stderr (no traceback).
"""

from __future__ import annotations

import argparse
import os
import contextlib
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["main"]

COMMANDS = ("scan", "show", "report", "retrieval")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        raise _Usage(f"{self.prog}: {message}")


class _Usage(Exception):
    pass


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help="model folder, .gguf file or hub id (default: embedded SmolLM2)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--attn", default=None, choices=["eager", "sdpa"],
                   help="attention backend (default eager; sdpa beyond 2048 tokens, where eager holds every pattern)")
    p.add_argument("--seed", type=int, default=0, help="seed of the probe tokens and the bootstrap (default 0)")
    p.add_argument("--remote", action="store_true", help="run on NDIF (MODEL is then a served model's repo id)")
    p.add_argument("--host", help="remote host URL (default: nnsight's configured NDIF host)")


def _view_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=80, help="maximum line width (default 80, minimum 40)")
    p.add_argument("--charset", default="ascii", choices=["ascii", "unicode"], help="shading characters (default ascii)")


def _result_args(p: argparse.ArgumentParser) -> None:
    """Exports, report length, progress and view options of a command that produces a result."""
    p.add_argument("--json", type=Path, help="write the result as JSON")
    p.add_argument("--csv", type=Path, help="write one row per head as CSV")
    p.add_argument("--html", type=Path, help="write one self-contained HTML page (grid, top heads' heatmaps, "
                                              "report) that opens offline in any browser")
    p.add_argument("--brief", action="store_true", help="the short report (no metric table, map, settings)")
    p.add_argument("--top", type=int, default=10, help="heads listed in the report (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    _view_args(p)


def _parser() -> _Parser:
    p = _Parser(prog="induction-nb", description="Find and analyse induction heads.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    scan = sub.add_parser("scan", help="detect induction heads and print the report")
    _model_args(scan)
    scan.add_argument("--threshold", type=float, default=None,
                      help="on the overall score (default 0.4; with --text 0.1, on the prefix-matching score)")
    scan.add_argument("--effects", choices=["exact", "attribution"],
                      help="add every head's ablation effect to the report: exact, or attribution patching (one "
                           "forward and backward, the top 10 verified exactly)")
    scan.add_argument("--text", type=Path, help="score natural repeats in your documents instead of probes: a .txt, "
                                                ".md or .jsonl file, or a folder of them")
    scan.add_argument("--seq-len", type=int, default=None,
                      help="tokens per sequence, BOS not counted (default 128, or what the model's vocabulary and "
                           "positions allow)")
    scan.add_argument("--batch", type=int, default=8, help="sequences per pattern (default 8)")
    scan.add_argument("--patterns", default="repeated", help="comma-separated periodic patterns (default repeated)")
    scan.add_argument("--figures", type=Path, help="write paper figures (PDF + PNG) into this folder")
    _result_args(scan)
    show = sub.add_parser("show", help="one head's attention pattern and stripe")
    _model_args(show)
    show.add_argument("--layer", type=int, required=True)
    show.add_argument("--head", type=int, required=True)
    show.add_argument("--pattern", default="repeated", help="probe pattern (default repeated)")
    show.add_argument("--seq-len", type=int, default=32, help="tokens, BOS not counted (default 32)")
    show.add_argument("--window", help="START:STOP positions to show (default: all, downsampled to the width)")
    _view_args(show)
    retrieval = sub.add_parser("retrieval", help="find retrieval heads (needle in a haystack, Wu et al. 2024)")
    _model_args(retrieval)
    retrieval.add_argument("--lengths", default="1024,2048", help="context lengths, comma-separated (default 1024,2048)")
    retrieval.add_argument("--depths", default="0.1,0.5,0.9", help="needle depths in [0, 1] (default 0.1,0.5,0.9)")
    retrieval.add_argument("--needle-length", type=int, default=8, help="needle tokens to copy (default 8)")
    _result_args(retrieval)
    report = sub.add_parser("report", help="print the report of a saved scan (JSON)")
    report.add_argument("path", type=Path)
    report.add_argument("--brief", action="store_true")
    report.add_argument("--top", type=int, default=10)
    report.add_argument("--html", type=Path, help="also write the scan as a self-contained HTML page (grid and report; "
                                                  "no heatmaps: a saved scan holds no patterns)")
    _view_args(report)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "scan")
    from .errors import InductionNBError

    try:
        args = _parser().parse_args(argv)
        from .ascii import check_view_options

        check_view_options(args.width, args.charset)  # before minutes of work, not after
        if getattr(args, "top", 1) < 1:
            from .errors import InputError

            raise InputError("--top must be >= 1")
        # stdout carries the report alone: nnsight's remote status lines and any library chatter go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            text = {"scan": _scan, "show": _show, "report": _report, "retrieval": _retrieval}[args.command](args)
    except (_Usage, InductionNBError) as e:
        print(f"error: {e}".replace("\n", " "), file=sys.stderr)
        return 2
    try:
        print(text)
    except BrokenPipeError:  # `induction-nb ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
    return 0


def _status(args: Any, message: str) -> None:
    if not getattr(args, "no_progress", False):
        print(message, file=sys.stderr, flush=True)


def _load(args: argparse.Namespace) -> Any:
    import torch

    from .errors import InputError
    from .models import load_model

    if args.host and not args.remote:
        raise InputError("--host only applies with --remote")
    if args.remote:
        if args.model is None:
            raise InputError("--remote needs MODEL: the repo id of a model the server hosts, e.g. openai-community/gpt2")
        if args.device != "cpu":
            raise InputError("--device and --remote conflict: a remote model runs on the server's devices")
        return load_model(args.model, remote=True)
    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError:
        raise InputError(f"--device {args.device!r} is not a torch device; use e.g. cpu or cuda") from None
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but CUDA is not available on this machine; use --device cpu")
    attn = args.attn
    longest = max([getattr(args, "seq_len", None) or 0] + _ints(getattr(args, "lengths", None) or "0"))
    if attn is None:
        attn = "sdpa" if longest > 2048 else "eager"
        if attn == "sdpa":
            print(f"note: {longest} tokens: loading with sdpa attention (eager would hold every layer's pattern); "
                  "--attn eager to override", file=sys.stderr)
    _status(args, f"loading {args.model or 'the embedded SmolLM2'} ...")
    return load_model(args.model, attn_implementation=attn, device=device)


def _ints(text: str, option: str = "--lengths") -> list[int]:
    from .errors import InputError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} must be comma-separated integers, got {text!r}") from None


def _remote(args: argparse.Namespace) -> Any:
    if not args.remote:
        return False
    from .remote import RemoteConfig

    return RemoteConfig(host=args.host)


def _scan(args: argparse.Namespace) -> str:
    from .detector import InductionHeadDetector
    from .errors import InputError

    _check_exports(args)
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    if not patterns:
        raise InputError("--patterns is empty; give one or more of: repeated, abab, copy, natural")
    if args.text is not None and (args.effects or args.seq_len or args.patterns != "repeated"):
        raise InputError("--text scores your documents; --effects, --seq-len and --patterns are for probes: "
                         "drop them, or drop --text")
    model = _load(args)
    if args.text is not None:
        return _scan_text(args, model)
    detector = InductionHeadDetector(model, 0.4 if args.threshold is None else args.threshold,
                                     batch_size=args.batch, seed=args.seed,
                                     progress=False if args.no_progress else None, remote=_remote(args))
    length = args.seq_len or "default-length"
    _status(args, f"detecting on {args.batch} x {length} tokens per pattern ({', '.join(patterns)}) ...")
    result = _noting(lambda: detector.detect(sequence_length=args.seq_len, patterns=patterns))
    if args.effects:
        from .effects import head_effects

        _status(args, f"every head's ablation effect ({args.effects}) ...")
        top = min(10, len(result.head_scores)) if args.effects == "attribution" else 0
        effects = head_effects(model, estimator=args.effects, verify_top=top, seed=args.seed, remote=_remote(args),
                               sequence_length=int(result.settings["sequence_length"]), batch_size=args.batch,
                               progress=False if args.no_progress else None)
        result = result.with_causal_effects(effects)
    return _finish(args, model, detector, result)


def _scan_text(args: argparse.Namespace, model: Any) -> str:
    from .on_text import detect_on_text

    _status(args, f"scoring natural repeats in {args.text} ...")
    threshold = 0.1 if args.threshold is None else args.threshold
    result = _noting(lambda: detect_on_text(model, args.text, threshold=threshold, seed=args.seed, remote=_remote(args),
                                            progress=False if args.no_progress else None))
    return _finish(args, model, None, result)


def _noting(run: Any) -> Any:
    """``run()``, its warnings printed as one ``note:`` line each on stderr (stdout carries the report alone),
    even with --no-progress."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = run()
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    return value


def _finish(args: argparse.Namespace, model: Any, detector: Any, result: Any) -> str:
    """The report of ``result``, its exports and figures (``detector`` ``None``: no probe to draw)."""
    from .ascii import create_analysis_report

    text = create_analysis_report(result, detailed=not args.brief, width=args.width, top=args.top, charset=args.charset)
    _export(args, result, text, model)
    if getattr(args, "figures", None):  # the retrieval command has no --figures
        written = _figures(model, detector, result, args.figures, _remote(args))
        _status(args, f"wrote {len(written)} figure files into {args.figures}")
    return text


def _figures(model: Any, detector: Any, result: Any, folder: Path, remote: Any) -> list[Path]:
    """Score heatmaps (overall and per metric), the metric scatter, and the top head's pattern and
    stripe profile (probes only), each as PDF and PNG."""
    from . import figures as F
    from .capture import capture_attention
    from .errors import InputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the figures folder {folder}: {e.strerror or e}") from None
    metrics = ("overall_score", "prefix_matching", "contrast", "copying", "previous_token")
    plots = {f"heatmap_{m}": (lambda ax, m=m: F.plot_score_heatmap(result, m, ax=ax))
             for m in metrics if detector is not None or m != "contrast"}  # no control on text
    plots["scatter_prefix_vs_copying"] = lambda ax: F.plot_metric_scatter(result, ax=ax)
    if detector is None:  # scored on the user's text: no probe to draw
        return _save(F, plots, folder)
    top = result.get_top_heads(1)[0]
    probe = detector.generator().generate("repeated", int(result.settings["sequence_length"]), 1)
    attention = capture_attention(model, probe.tokens, layers=[top.layer], remote=remote).head(top.layer, top.head)
    labels = [str(i) for i in probe.tokens[0].tolist()]
    plots[f"pattern_L{top.layer}H{top.head}"] = lambda ax: F.plot_attention_heatmap(
        attention, labels, ax=ax, period=probe.period, title=f"L{top.layer}H{top.head}")
    plots[f"stripe_L{top.layer}H{top.head}"] = lambda ax: F.plot_stripe_profile(attention, probe.period, ax=ax,
                                                                                offset=probe.offset)
    return _save(F, plots, folder)


def _save(F: Any, plots: dict, folder: Path) -> list[Path]:
    from matplotlib.figure import Figure

    written = []
    for name, draw in plots.items():
        with F.style():
            fig = Figure(figsize=F.TWO_COLUMN if name.startswith("stripe") else (4.0, 3.4), layout="constrained")
            draw(fig.subplots())
        written += F.save_figure(fig, folder / name, formats=("pdf", "png"))
    return written


def _show(args: argparse.Namespace) -> str:
    from ._engine import Engine, token_labels
    from .ascii import plot_attention_pattern, plot_induction_stripe
    from .capture import capture_head
    from .errors import InputError

    window = None
    if args.window:
        try:
            start, stop = (int(x) for x in args.window.split(":"))
        except ValueError:
            raise InputError(f"--window must be START:STOP, e.g. 10:50, got {args.window!r}") from None
        window = (start, stop)
    engine = Engine.of(_load(args), _remote(args))
    probe = engine.generator(args.seed).generate(args.pattern, args.seq_len, 1)
    n_layers = engine.config_layers
    if n_layers is not None and not 0 <= args.layer < n_layers:
        raise InputError(f"--layer {args.layer} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
    attention = capture_head(engine, probe.tokens, args.layer, args.head)[0]  # one head, row block by row block
    labels = token_labels(engine.model, probe.tokens[0].tolist())
    title = f"L{args.layer}H{args.head} on '{args.pattern}' ({probe.tokens.shape[1]} tokens, seed {args.seed})"
    parts = [plot_attention_pattern(attention, labels, args.width, window=window, charset=args.charset, title=title)]
    if probe.period is not None:
        parts.append(plot_induction_stripe(attention, probe.period, args.width, tokens=labels, charset=args.charset,
                                           offset=probe.offset))
    return "\n\n".join(parts)


def _retrieval(args: argparse.Namespace) -> str:
    from .errors import InputError
    from .retrieval import retrieval_heads

    lengths = _ints(args.lengths)
    try:
        depths = [float(x) for x in args.depths.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--depths must be comma-separated numbers in [0, 1], got {args.depths!r}") from None
    if not lengths or not depths:
        raise InputError("--lengths and --depths need at least one value each")
    _check_exports(args)
    model = _load(args)
    _status(args, f"decoding needles at lengths {lengths} x depths {depths} ...")
    result = retrieval_heads(model, lengths=lengths, depths=depths, needle_length=args.needle_length, seed=args.seed,
                             remote=_remote(args), progress=False if args.no_progress else None)
    return _finish(args, model, None, result)


def _check_exports(args: argparse.Namespace) -> None:
    """Export paths checked before minutes of work, not after."""
    from .errors import InputError

    paths = [p.resolve() for p in (args.json, args.csv, getattr(args, "html", None)) if p is not None]
    if len(set(paths)) < len(paths):
        raise InputError("--json, --csv and --html name the same file; give them different paths")
    if getattr(args, "html", None) is not None:
        import importlib.util

        if args.html.suffix.lower() not in (".html", ".htm"):
            raise InputError(f"--html writes an HTML page: give a path ending in .html, got {args.html}")
        if importlib.util.find_spec("matplotlib") is None:  # the page's heatmaps are matplotlib PNGs
            raise InputError("--html draws its heatmaps with matplotlib, which is not installed: "
                             "pip install matplotlib (or drop --html)")
    for path in (args.json, args.csv, getattr(args, "html", None)):
        if path is not None and path.is_dir():
            raise InputError(f"cannot write {path}: it is a folder; give a file name")
        if path is not None and not path.parent.exists():
            raise InputError(f"cannot write {path}: folder {path.parent} does not exist")


def _export(args: argparse.Namespace, result: Any, text: str, model: Any = None) -> None:
    """``--json`` / ``--csv`` / ``--html``: written after the work; a failed write still prints the report.
    The HTML page holds the top heads' heatmaps when the model is at hand (probe or text scans)."""
    from .errors import InputError

    try:
        if getattr(args, "html", None):
            from .export_html import capture_panels, save_html

            kind = result.settings.get("kind")
            panels = [] if model is None or kind == "retrieval" else capture_panels(
                result, model, [(s.layer, s.head) for s in result.get_top_heads(6)],
                texts=getattr(args, "text", None) if kind == "text" else None, seed=args.seed)
            save_html(result, args.html, panels=panels)
            _status(args, f"wrote {args.html}")
        if args.json:
            result.save(args.json)
            _status(args, f"wrote {args.json}")
        if args.csv:
            result.to_dataframe().to_csv(args.csv, index=False)
            _status(args, f"wrote {args.csv}")
    except OSError as e:  # the report still reaches stdout: the scan is not lost
        print(text)
        raise InputError(f"cannot write the export: {e.strerror or e} ({e.filename})") from None
    except ImportError as e:
        print(text)
        raise InputError(f"cannot write the export: {e} (pip install it, or drop the export option)") from None


def _report(args: argparse.Namespace) -> str:
    from .ascii import create_analysis_report
    from .results import DetectionResult

    if args.html is not None:
        _check_exports(argparse.Namespace(json=None, csv=None, html=args.html))
    result = DetectionResult.load(args.path)
    if args.html is not None:
        from .export_html import save_html

        save_html(result, args.html, panels=[])
        print(f"wrote {args.html}", file=sys.stderr)
    return create_analysis_report(result, detailed=not args.brief, width=args.width, top=args.top, charset=args.charset)
