"""The commands: ``scan`` (probes, ``--text`` documents), ``show`` (one head), ``retrieval``, ``report`` (a
saved scan). Each returns the text for stdout. The package is imported inside the commands, so that a usage
error or ``--help`` answers before torch loads."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InputError
from .output import check_exports, finish, noting, remote_config, status

__all__ = ["scan", "show", "retrieval", "report"]


def load(args: argparse.Namespace) -> Any:
    import torch

    from ..engine.models import load_model

    if args.host and not args.remote:
        raise InputError("--host only applies with --remote")
    if args.remote:
        if args.model is None:
            raise InputError(
                "--remote needs MODEL: the repo id of a model the server hosts, e.g. openai-community/gpt2"
            )
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
    longest = max([getattr(args, "seq_len", None) or 0] + ints(getattr(args, "lengths", None) or "0"))
    if attn is None:
        attn = "sdpa" if longest > 2048 else "eager"
        if attn == "sdpa":
            print(
                f"note: {longest} tokens: loading with sdpa attention (eager would hold every layer's pattern); "
                "--attn eager to override",
                file=sys.stderr,
            )
    status(args, f"loading {args.model or 'the embedded SmolLM2'} ...")
    return load_model(args.model, attn_implementation=attn, device=device)


def ints(text: str, option: str = "--lengths") -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option} must be comma-separated integers, got {text!r}") from None


def scan(args: argparse.Namespace) -> str:
    from ..analysis.detector import InductionHeadDetector

    check_exports(args)
    patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    if not patterns:
        raise InputError("--patterns is empty; give one or more of: repeated, abab, copy, natural, ngram")
    if args.text is not None and (args.effects or args.seq_len or args.patterns != "repeated"):
        raise InputError(
            "--text scores your documents; --effects, --seq-len and --patterns are for probes: "
            "drop them, or drop --text"
        )
    model = load(args)
    if args.text is not None:
        return scan_text(args, model)
    detector = InductionHeadDetector(
        model,
        0.4 if args.threshold is None else args.threshold,
        batch_size=args.batch,
        seed=args.seed,
        progress=False if args.no_progress else None,
        remote=remote_config(args),
    )
    length = args.seq_len or "default-length"
    status(args, f"detecting on {args.batch} x {length} tokens per pattern ({', '.join(patterns)}) ...")
    result = noting(lambda: detector.detect(sequence_length=args.seq_len, patterns=patterns))
    if args.effects:
        from ..causal.effects import head_effects

        status(args, f"every head's ablation effect ({args.effects}) ...")
        top = min(10, len(result.head_scores)) if args.effects != "exact" else 0
        effects = head_effects(
            model,
            estimator=args.effects,
            verify_top=top,
            seed=args.seed,
            remote=remote_config(args),
            sequence_length=int(result.settings["sequence_length"]),
            batch_size=args.batch,
            progress=False if args.no_progress else None,
        )
        result = result.with_causal_effects(effects)
    return finish(args, model, detector, result)


def scan_text(args: argparse.Namespace, model: Any) -> str:
    from ..analysis.on_text import detect_on_text

    status(args, f"scoring natural repeats in {args.text} ...")
    threshold = 0.1 if args.threshold is None else args.threshold
    result = noting(
        lambda: detect_on_text(
            model,
            args.text,
            threshold=threshold,
            seed=args.seed,
            remote=remote_config(args),
            progress=False if args.no_progress else None,
        )
    )
    return finish(args, model, None, result)


def show(args: argparse.Namespace) -> str:
    from ..draw.ascii import text_attention_pattern, text_induction_stripe
    from ..draw.labels import token_labels
    from ..engine.capture import capture_head
    from ..engine.engine import Engine

    window = None
    if args.window:
        try:
            start, stop = (int(x) for x in args.window.split(":"))
        except ValueError:
            raise InputError(f"--window must be START:STOP, e.g. 10:50, got {args.window!r}") from None
        window = (start, stop)
    engine = Engine.of(load(args), remote_config(args))
    probe = engine.generator(args.seed).generate(args.pattern, args.seq_len, 1)
    n_layers = engine.config_layers
    if n_layers is not None and not 0 <= args.layer < n_layers:
        raise InputError(f"--layer {args.layer} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
    attention = capture_head(engine, probe.tokens, args.layer, args.head)[0]  # one head, row block by row block
    labels = token_labels(engine.model, probe.tokens[0].tolist())
    title = f"L{args.layer}H{args.head} on '{args.pattern}' ({probe.tokens.shape[1]} tokens, seed {args.seed})"
    parts = [text_attention_pattern(attention, labels, args.width, window=window, charset=args.charset, title=title)]
    if probe.period is not None:
        parts.append(
            text_induction_stripe(
                attention, probe.period, args.width, tokens=labels, charset=args.charset, offset=probe.offset
            )
        )
    return "\n\n".join(parts)


def retrieval(args: argparse.Namespace) -> str:
    from ..analysis.retrieval import retrieval_heads

    lengths = ints(args.lengths)
    try:
        depths = [float(x) for x in args.depths.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--depths must be comma-separated numbers in [0, 1], got {args.depths!r}") from None
    if not lengths or not depths:
        raise InputError("--lengths and --depths need at least one value each")
    check_exports(args)
    model = load(args)
    status(args, f"decoding needles at lengths {lengths} x depths {depths} ...")
    result = retrieval_heads(
        model,
        lengths=lengths,
        depths=depths,
        needle_length=args.needle_length,
        seed=args.seed,
        remote=remote_config(args),
        progress=False if args.no_progress else None,
    )
    return finish(args, None, None, result)  # no probe pattern to draw


def report(args: argparse.Namespace) -> str:
    from ..analysis.results import load_result
    from ..draw.report import create_analysis_report

    if args.html is not None:
        check_exports(argparse.Namespace(json=None, csv=None, html=args.html))
    result = load_result(args.path)
    if args.html is not None:
        from ..draw.html_page import save_html

        save_html(result, args.html, panels=[])
        print(f"wrote {args.html}", file=sys.stderr)
    return create_analysis_report(result, detailed=not args.brief, width=args.width, top=args.top, charset=args.charset)
