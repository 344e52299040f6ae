"""AtP* against plain attribution patching and exact ablation, per model and method, with the cost.

For each model and ablation method: every head's exact effect (``head_effects``, the reference), plain
attribution (``estimator="attribution"``) and AtP* (``estimator="atp*"``, its default ``targets`` and every
later head as a target); for each estimate Spearman over all heads, the share of the exact top ``k`` heads
(``k`` = 10, or a quarter of the heads on the small models) found in the estimate's top ``1.5 k`` by signed
value, the largest gaps, and the cost in forward-equivalents: its time over a bare forward of the same
batch, the bare forwards timed between the estimates (interleaved, so other load on the machine hits both).
Models: the embedded SmolLM2 (270 heads), the hand-built induction transformer, a model of ours trained
until its induction heads form (``train_induction_model``, 1000 steps), and tiny random Llama and GPT-2.
Not a test: ``python bench/bench_atp_star.py [--models smollm2,handbuilt,trained,llama,gpt2] [--methods
zero,corrupt]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from induction_nb import head_effects, load_model
from induction_nb.analysis.toy import HandBuiltInduction
from induction_nb.analysis.training import train_induction_model
from induction_nb.causal.effects import spearman, top_recall
from induction_nb.engine.ablator import Ablator
from induction_nb.engine.model_info import torch_module


def _tiny(kind: str) -> torch.nn.Module:
    import transformers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if kind == "llama":
            config = transformers.LlamaConfig(
                vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=128,
            )  # fmt: skip
            return transformers.LlamaForCausalLM(config).eval()
        config = transformers.GPT2Config(vocab_size=128, n_embd=64, n_layer=3, n_head=4, n_positions=128)
        return transformers.GPT2LMHeadModel(config).eval()


def _models(names: list[str]) -> dict:
    """``{name: (model, sequence_length, batch_size)}``."""
    out = {}
    for name in names:
        if name == "smollm2":
            out[name] = (load_model(), 64, 4)
        elif name == "handbuilt":
            out[name] = (HandBuiltInduction(), 32, 4)
        elif name == "trained":
            out[name] = (train_induction_model(0, steps=1000, every=1000).model, 24, 8)
        else:
            out[name] = (_tiny(name), 32, 4)
    return out


def _bare(model, tokens) -> float:
    module = torch_module(model)
    with torch.no_grad():
        t0 = time.perf_counter()
        module(tokens)
        return time.perf_counter() - t0


def main(names: list[str], methods: list[str]) -> None:
    for name, (model, length, batch) in _models(names).items():
        ab = Ablator(model, None, False)
        tokens = ab.engine.generator(0).generate("repeated", length, batch).tokens
        _bare(model, tokens)  # warm
        n_heads = len(ab.heads)
        k = 10 if n_heads >= 40 else max(1, n_heads // 4)
        within = k * 3 // 2
        kw = dict(sequence_length=length, batch_size=batch)
        print(f"\n{name}: {n_heads} heads, batch {batch} x {tokens.shape[1]} tokens; top {k} in top {within}")
        for method in methods:
            exact = head_effects(model, method, progress=False, **kw).effects
            rows = [("attribution", dict(estimator="attribution")), ("atp*", dict(estimator="atp*"))]
            rows.append(("atp* all targets", dict(estimator="atp*", targets=n_heads)))
            for label, extra in rows:
                bares = [_bare(model, tokens) for _ in range(3)]
                t0 = time.perf_counter()
                result = head_effects(model, method, **kw, **extra)
                took = time.perf_counter() - t0
                bares += [_bare(model, tokens) for _ in range(3)]
                fe = took / statistics.median(bares)
                _row(name, method, label, result, exact, k, within, fe)


def _row(name, method, label, result, exact, k, within, fe) -> None:
    est = result.effects
    n = exact.shape[1]
    gaps = (est - exact).abs().nan_to_num(0).flatten().argsort(descending=True)[:3].tolist()
    worst = ", ".join(
        f"L{i // n}H{i % n} {float(est.flatten()[i]):+.3f} vs {float(exact.flatten()[i]):+.3f}" for i in gaps
    )
    print(
        f"  {method:8s} {label:17s} spearman {spearman(est, exact):.3f}  top {top_recall(est, exact, k, within):.2f}"
        f"  cost {fe:5.1f} fwd  largest gaps: {worst}"
    )
    if name == "smollm2" and label == "atp*":
        print(
            f"  {'':8s} L16H0: plain {float(result.plain[16, 0]):+.3f}, atp* {float(est[16, 0]):+.3f}, exact "
            f"{float(exact[16, 0]):+.3f}; qk_missed bound (largest) {float(result.qk_missed.nan_to_num(0).max()):.3f}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="smollm2,handbuilt,trained,llama,gpt2")
    p.add_argument("--methods", default="zero,corrupt")
    args = p.parse_args()
    main(args.models.split(","), args.methods.split(","))
