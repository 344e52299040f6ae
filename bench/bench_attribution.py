"""Attribution patching against exact ablation on the embedded SmolLM2 (270 heads), in one run.

Prints: a bare forward of the probe batch (the model as loaded), a forward + backward in forward-
equivalents, attribution's time and forward-equivalents, exact ablation of every head packed 32
sequences per forward and one head per forward (the naive loop), the ratios, and the agreement:
Spearman over all heads, recall of the exact top 10 within the estimate's top 20, the largest gaps.
Not a test: ``python bench/bench_attribution.py [--method zero|mean|corrupt]``.
"""

from __future__ import annotations

import argparse
import time

import torch

from induction_nb import InductionHeadDetector, head_effects, load_model
from induction_nb.causal.effects import spearman, top_recall


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(method: str = "zero", batch: int = 4, sequence_length: int = 64) -> None:
    model = load_model()
    hf = model._module
    probe = InductionHeadDetector(model, batch_size=batch).generator().generate("repeated", sequence_length, batch)
    with torch.no_grad():
        hf(probe.tokens)
        _, bare = _timed(lambda: hf(probe.tokens))

    def forward_backward():
        hf(probe.tokens).logits[:, -1].float().logsumexp(-1).sum().backward()
        hf.zero_grad(set_to_none=True)

    _, fb = _timed(forward_backward)
    kwargs = dict(sequence_length=sequence_length, batch_size=batch, progress=False)
    attr, t_attr = _timed(lambda: head_effects(model, method, estimator="attribution", **kwargs))
    packed, t_packed = _timed(lambda: head_effects(model, method, chunk=32, **kwargs))
    naive, t_naive = _timed(lambda: head_effects(model, method, chunk=batch, **kwargs))
    est, exact = attr.effects, naive.effects
    print(f"SmolLM2, {exact.numel()} heads, batch {batch} x {probe.tokens.shape[1]} tokens, method {method}")
    print(f"  bare forward {bare:.2f} s; forward + backward {fb:.2f} s = {fb / bare:.1f} forward-equivalents")
    print(f"  attribution: {t_attr:.1f} s = {t_attr / bare:.1f} forward-equivalents ({attr.n_forward} counted)")
    print(
        f"  exact, packed 32 per forward: {t_packed:.1f} s ({packed.n_forward} forwards); one head per forward: "
        f"{t_naive:.1f} s ({naive.n_forward} forwards)"
    )
    print(f"  attribution is {t_naive / t_attr:.0f}x faster than exact (naive), {t_packed / t_attr:.0f}x than packed")
    print(
        f"  agreement: Spearman {spearman(est, exact):.3f} over all heads; recall of the exact top 10 in the "
        f"estimate's top 20 {top_recall(est, exact, 10, 20):.2f}, in its top 20 by magnitude (what verify_top "
        f"checks) {top_recall(est.abs(), exact, 10, 20):.2f}; packed vs naive max gap "
        f"{float((packed.effects - exact).abs().max()):.1e}"
    )
    gap = (est - exact).abs().flatten()
    worst = gap.argsort(descending=True)[:5].tolist()
    n = exact.shape[1]
    print(
        "  largest gaps: "
        + ", ".join(
            f"L{i // n}H{i % n} est {float(est.flatten()[i]):+.3f} exact {float(exact.flatten()[i]):+.3f}"
            for i in worst
        )
    )
    top = exact.flatten().argsort(descending=True)[:10].tolist()
    print(
        "  exact top 10: "
        + ", ".join(
            f"L{i // n}H{i % n} {float(exact.flatten()[i]):+.3f} (est {float(est.flatten()[i]):+.3f})" for i in top
        )
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="zero", choices=["zero", "mean", "corrupt"])
    main(p.parse_args().method)
