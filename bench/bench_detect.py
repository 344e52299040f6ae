"""detect() on the embedded SmolLM2 against bare eager forwards over exactly the sequences it runs.

Speed: batch 8 x (BOS + 2 x 64) tokens: detect() runs the 8 probes and their 8 controls, so the
baseline is a bare forward of those 16 sequences (same chunking: one forward of 16). Median of
several runs, in the same process.
Memory: 2 x 512 tokens, batch 4 (4 probes + 4 controls in one forward). Each case runs in a fresh
process; a sampler thread reads the resident set size every 2 ms and the peak above the level just
before the call is reported. Baselines with and without the unembedding (lm_head), which detect()
never reaches. Not a test: ``make bench``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch
from _peak import peak_mib  # bench/_peak.py (the script folder is on sys.path)

from induction_nb import InductionHeadDetector, load_model


def _tokens(det: InductionHeadDetector, sequence_length: int) -> torch.Tensor:
    gen = det.generator()
    probe = gen.generate("repeated", sequence_length, det.batch_size)
    return torch.cat([probe.tokens, gen.control_for(probe)])


def speed(repeats: int) -> None:
    model = load_model()
    hf = model._module
    det = InductionHeadDetector(model, batch_size=8, n_bootstrap=1000)
    tokens = _tokens(det, 128)

    def timed(fn):
        fn()
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    with torch.no_grad():
        t_bare = timed(lambda: hf(tokens))
        t_body = timed(lambda: hf.base_model(tokens))
    t_detect = timed(lambda: det.detect(sequence_length=128))
    print(
        f"speed: tokens {tuple(tokens.shape)} (8 probes + 8 controls), median of {repeats}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  bare eager forward {t_bare:.3f} s | without lm_head {t_body:.3f} s | detect() {t_detect:.3f} s")
    print(
        f"  detect / bare forward = {t_detect / t_bare:.2f}x   (goal <= 1.15x); "
        f"detect / forward without lm_head = {t_detect / t_body:.2f}x"
    )


def memory_case(case: str) -> None:
    model = load_model()
    hf = model._module
    det = InductionHeadDetector(model, batch_size=4, n_bootstrap=1000, progress=False)
    tokens = _tokens(det, 1024)
    with peak_mib() as mib, torch.no_grad():
        if case == "bare":
            hf(tokens)
        elif case == "body":
            hf.base_model(tokens)
        else:
            det.detect(sequence_length=1024)
    print(mib[0])


def memory() -> None:
    out = {}
    for case in ("bare", "body", "detect"):
        run = subprocess.run([sys.executable, __file__, "--memory-case", case], capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(run.stderr)
        out[case] = float(run.stdout.strip().splitlines()[-1])
    print("memory: tokens (8, 1025) (4 probes + 4 controls), peak RSS above the level before the call")
    print(
        f"  bare eager forward {out['bare']:.0f} MiB | without lm_head {out['body']:.0f} MiB | "
        f"detect() {out['detect']:.0f} MiB"
    )
    print(
        f"  detect / bare forward = {out['detect'] / out['bare']:.2f}x   (goal <= 1.3x); "
        f"detect / forward without lm_head = {out['detect'] / out['body']:.2f}x"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-case", choices=["bare", "body", "detect"])
    args = ap.parse_args()
    if args.memory_case:
        memory_case(args.memory_case)
    else:
        speed(args.repeats)
        memory()
