"""What a formation scan costs per checkpoint, against a bare forward pass of the same probe batch.

Two cases: the checkpoints of a ``train_induction_model`` run (tiny, 2 layers), and SmolLM2-135M as a
checkpoint (a Pythia-160m-sized model: what a user's series of Pythia checkpoints costs each, loading aside).
Per checkpoint: wall time of ``formation`` (detection with its intervals + the ICL score), a cached rerun, and
bare forwards (sdpa where the model has it) of the detection's batch (probes + controls), timed before and
after each measurement so that other load hits both alike.

    OMP_NUM_THREADS=2 python bench/formation_cost.py
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

from induction_nb import formation, load_model, train_induction_model


def bare(module: torch.nn.Module, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        module(tokens)
        return time.perf_counter() - start


def measure(name: str, checkpoints, module, tokens, **kw) -> None:
    with tempfile.TemporaryDirectory() as cache:
        fwd, scan = [], []
        for _ in range(2):
            fwd.append(bare(module, tokens))
            start = time.perf_counter()
            f = formation(checkpoints, cache_dir=cache if not scan else False, progress=False, **kw)
            scan.append((time.perf_counter() - start) / len(f.steps))
            fwd.append(bare(module, tokens))
        start = time.perf_counter()
        cached = formation(checkpoints, cache_dir=cache, progress=False, **kw)
        rerun = (time.perf_counter() - start) / len(cached.steps)
    f_med, s_med = statistics.median(fwd), statistics.median(scan)
    print(
        f"{name}: {s_med:.3f} s per checkpoint ({s_med / f_med:.1f} bare forwards of the {tuple(tokens.shape)} "
        f"probe batch, {f_med * 1e3:.1f} ms); cached rerun {rerun * 1e3:.1f} ms per checkpoint, "
        f"{sum(cached.cached)}/{len(cached.steps)} from the cache",
        flush=True,
    )


def main() -> None:
    torch.manual_seed(0)
    run = train_induction_model(0, steps=400, every=100)
    tiny = run.model_at(400)
    measure("tiny 2-layer run, 4 checkpoints", run, tiny, torch.randint(64, (16, 32)))
    smol = load_model(attn_implementation="sdpa")
    module = smol._module
    measure("SmolLM2-135M as a checkpoint", [smol], module, torch.randint(1000, 10000, (16, 128)))


if __name__ == "__main__":
    main()
