"""Capture cost on the embedded SmolLM2 against a bare forward pass in the same run.

Batch 8 x 129 tokens (BOS + a random block of 64 repeated twice), eager and sdpa attention. Prints the
median of several runs of: a bare forward of the HF model (no nnsight), ``capture_attention`` (all 30
layers' patterns kept), and ``stream_attention`` with a reducer that keeps one number per head (what
the scorer does). Not a test: run ``make bench`` or ``python bench/bench_capture.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from induction_nb import capture_attention, load_model, stream_attention


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--half", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    g = torch.Generator().manual_seed(0)
    block = torch.randint(1000, 10000, (args.batch, args.half), generator=g)
    tokens = torch.cat([torch.ones(args.batch, 1, dtype=torch.long), block, block], dim=1)  # BOS id 1
    print(f"tokens {tuple(tokens.shape)}, torch threads {torch.get_num_threads()}, median of {args.repeats}")
    for impl in ("eager", "sdpa"):
        model = load_model(attn_implementation=impl)
        hf = model._module

        def bare():
            with torch.no_grad():
                hf(tokens)

        def bare_body():  # without the unembedding, which capture never reaches (it stops after the last layer)
            with torch.no_grad():
                hf.base_model(tokens)

        t_bare = median_time(bare, args.repeats)
        t_body = median_time(bare_body, args.repeats)
        t_capture = median_time(lambda: capture_attention(model, tokens), args.repeats)
        t_stream = median_time(
            lambda: stream_attention(model, tokens, lambda layer, p: p.diagonal(-1, -2, -1).mean((0, 2))),
            args.repeats,
        )
        print(
            f"{impl:5s}  bare forward {t_bare:6.3f} s (without lm_head {t_body:6.3f} s) | "
            f"capture_attention {t_capture:6.3f} s ({t_capture / t_bare:.2f}x, {t_capture / t_body:.2f}x) | "
            f"stream_attention {t_stream:6.3f} s ({t_stream / t_bare:.2f}x, {t_stream / t_body:.2f}x)"
        )
    print("ratios: (against the full forward, against the forward without lm_head)")


if __name__ == "__main__":
    main()
