"""``python -m induction_nb``: the main job. Loads a model (default: the embedded SmolLM2), runs the
induction-head detector on repeated random tokens with their controls, and prints the heads found with
their metrics. The full ASCII report and the ``scan``/``show`` CLI replace this summary later."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m induction_nb", description=__doc__.split(".")[0])
    p.add_argument("model", nargs="?", default=None, help="model folder, .gguf file or hub id (default: embedded SmolLM2)")
    p.add_argument("--threshold", type=float, default=0.4, help="on the overall score (default 0.4)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence, BOS not counted (default 128)")
    p.add_argument("--batch", type=int, default=8, help="number of sequences (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--top", type=int, default=10, help="how many heads to list (default 10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .errors import InductionNBError

    try:
        print(_summary(args))
    except InductionNBError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _summary(args: argparse.Namespace) -> str:
    from .detector import InductionHeadDetector
    from .errors import InputError
    from .models import load_model

    if args.top < 1:
        raise InputError("--top must be >= 1")
    t0 = time.perf_counter()
    model = load_model(args.model)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    detector = InductionHeadDetector(model, args.threshold, batch_size=args.batch, seed=args.seed)
    result = detector.detect(sequence_length=args.seq_len)
    detect_s = time.perf_counter() - t0
    s = result.settings
    name = result.model_name
    lines = [
        f"model: {name} ({result.n_layers} layers x {result.n_heads} heads, {s['attn_implementation']} attention), "
        f"loaded in {load_s:.1f} s",
        f"probe: {s['batch_size']} x {s['sequence_length']} tokens (a random block of {s['sequence_length'] // 2} "
        f"ids in [{s['token_range'][0]}, {s['token_range'][1]}) repeated twice, BOS {s['bos_token_id']}), each with a "
        f"control; seed {result.seed}; {detect_s:.1f} s",
        f"induction heads (overall >= {result.threshold:.2f}): {result.num_heads_detected}  "
        + " ".join(f"L{l}H{h}" for l, h in result.induction_heads),
        "",
        "head     overall [95% CI]       prefix  contrast  copying  prev-tok",
    ]
    for x in result.get_top_heads(args.top):
        mark = "*" if x.overall_score >= result.threshold else " "
        lines.append(
            f"{mark}L{x.layer:02d}H{x.head:02d}  {x.overall_score:.3f} [{x.ci_low:.3f}, {x.ci_high:.3f}]  "
            f"{x.prefix_matching:6.3f}  {x.contrast:8.3f}  {x.copying:7.3f}  {x.previous_token:8.3f}"
        )
    prev = result.previous_token_heads(0.5)[:5]
    lines.append("previous-token heads (>= 0.5): " + (" ".join(f"L{l}H{h}" for l, h in prev) or "none"))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
