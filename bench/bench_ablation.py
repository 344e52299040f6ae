"""Cost of ablating every head of the embedded SmolLM2, in forward passes and seconds.

``head_effects`` packs several single-head ablations into one forward (the batch is repeated, each copy
removes its own head; the clean copy rides in the first forward). Prints the number of forwards it ran against the
naive count (one forward per head plus a baseline), and its time against one bare forward of the base
batch in the same run. Not a test: ``python bench/bench_ablation.py``.
"""

from __future__ import annotations

import time

import torch

from induction_nb import InductionHeadDetector, head_effects, load_model


def main(batch: int = 4, sequence_length: int = 64, chunk: int = 32) -> None:
    model = load_model()
    hf = model._module
    probe = InductionHeadDetector(model, batch_size=batch).generator().generate("repeated", sequence_length, batch)
    with torch.no_grad():
        hf(probe.tokens)
        t0 = time.perf_counter()
        hf(probe.tokens)
        bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    effects, n_forward = head_effects(
        model, sequence_length=sequence_length, batch_size=batch, chunk=chunk, progress=False
    )
    elapsed = time.perf_counter() - t0
    n_heads = effects.numel()
    print(f"every head of SmolLM2 ({n_heads} heads), batch {batch} x {probe.tokens.shape[1]} tokens, chunk {chunk}")
    print(
        f"  {n_forward} forward passes (of {chunk} sequences) instead of {n_heads + 1} of {batch}: "
        f"{elapsed:.1f} s = {elapsed / bare:.0f} bare forwards of the base batch ({bare:.2f} s each); "
        f"naive would be ~{(n_heads + 1) * bare:.0f} s"
    )
    top = torch.topk(effects.flatten(), 5)
    print(
        "  largest effects: "
        + ", ".join(
            f"L{i // effects.shape[1]}H{i % effects.shape[1]} +{v:.2f}"
            for v, i in zip(top.values.tolist(), top.indices.tolist())
        )
    )


if __name__ == "__main__":
    main()
