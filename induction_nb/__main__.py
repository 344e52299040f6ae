"""``python -m induction_nb``: the main job. For now: load a model (default: the embedded SmolLM2),
capture its attention on repeated random tokens and print a short summary with the heads that attend
most along the induction stripe. The full scan with the detector's metrics replaces this later."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m induction_nb", description=__doc__.split(".")[0])
    p.add_argument("model", nargs="?", default=None, help="model folder, .gguf file or hub id (default: embedded SmolLM2)")
    p.add_argument("--seq-len", type=int, default=50, help="length of the random block, repeated twice (default 50)")
    p.add_argument("--batch", type=int, default=4, help="number of sequences (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tokens (default 0)")
    p.add_argument("--top", type=int, default=8, help="how many heads to list (default 8)")
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
    import torch

    from . import _model_info as info
    from .capture import check_tokens, stream_attention
    from .errors import InputError
    from .models import EMBEDDED_MODEL_NAME, load_model

    if args.seq_len < 2 or args.batch < 1 or args.top < 1:
        raise InputError("--seq-len must be >= 2, --batch and --top >= 1")
    t0 = time.perf_counter()
    model = load_model(args.model)
    module = info.torch_module(model)
    load_s = time.perf_counter() - t0
    vocab = info.vocab_size(module) or 50
    low, high = (1000, 10000) if vocab > 10000 else (vocab // 10, vocab)
    g = torch.Generator().manual_seed(args.seed)
    block = torch.randint(low, high, (args.batch, args.seq_len), generator=g)
    tokens = check_tokens(torch.cat([block, block], dim=1), module)
    P = args.seq_len
    q = torch.arange(P, 2 * P)

    def stripe(layer: int, pattern: torch.Tensor) -> torch.Tensor:
        # attention from each token of the repeat to the token after its first occurrence: offset -(P-1)
        return pattern[:, :, q, q - P + 1].mean(dim=(0, 2))

    with torch.no_grad():
        module(tokens)  # warm-up, so that neither timing below pays for first-call allocations
        t0 = time.perf_counter()
        module(tokens)
        bare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_layer = stream_attention(model, tokens, stripe)
    capture_s = time.perf_counter() - t0
    scores = torch.stack(per_layer)  # [layer, head]
    n_layers, n_heads = scores.shape
    name = EMBEDDED_MODEL_NAME if args.model is None else info.model_name(model)
    lines = [
        f"model: {name} ({type(module).__name__}, {n_layers} layers x {n_heads} heads), loaded in {load_s:.1f} s",
        f"input: {args.batch} sequences of {P} random token ids in [{low}, {high}) repeated twice, seed {args.seed}"
        f" -> tokens [{args.batch}, {2 * P}]",
        f"capture: pattern [batch, layer, head, q, k] = [{args.batch}, {n_layers}, {n_heads}, {2 * P}, {2 * P}], "
        f"self-checked (rows sum to 1, causal, finite)",
        f"time: capture {capture_s:.2f} s vs bare forward {bare_s:.2f} s ({capture_s / bare_s:.2f}x)",
        "",
        f"top {min(args.top, scores.numel())} heads by induction-stripe attention "
        "(mean attention from a repeated token to the token after its first occurrence):",
    ]
    values, order = torch.sort(scores.flatten(), descending=True)
    for value, index in zip(values[: args.top].tolist(), order[: args.top].tolist()):
        bar = "#" * round(value * 30)
        lines.append(f"  L{index // n_heads:02d}H{index % n_heads:02d}  {value:.3f}  {bar}")
    lines.append(f"heads above 0.4: {int((scores > 0.4).sum())} of {scores.numel()}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
