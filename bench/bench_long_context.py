"""detect() at long context on the embedded SmolLM2 against the bare forward a user would run.

One probe (BOS + a random block repeated twice) and its control, T tokens each: detect() runs both in
one forward, so the baseline is a bare forward of those 2 sequences. The model is loaded with sdpa (the
fastest forward transformers offers on a CPU); detect() scores every head from the captured query and key,
row block by row block, never holding a layer's [head, T, T] pattern. The eager rows repeat the issue's
table (eager materialises every pattern inside the model itself).

Each measurement runs in a fresh process: wall time of the call, and peak resident memory above the
level just before it (sampled every 2 ms). Ratios are against the bare sdpa forward of the same run.
Not a test: ``python bench/bench_long_context.py [--lengths 1025,2049,4096,8192]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _peak import peak_mib  # bench/_peak.py (the script folder is on sys.path)


def case(kind: str, attn: str, length: int) -> dict:
    """One measurement in this process: ``kind`` "bare" (model(tokens)), "body" (no lm_head) or "detect"."""
    import torch

    from induction_nb import InductionHeadDetector, load_model

    model = load_model(attn_implementation=attn)
    det = InductionHeadDetector(model, batch_size=1, chunk_size=1, n_bootstrap=100, progress=False)
    gen = det.generator()
    probe = gen.generate("repeated", length - 1, 1)  # BOS + length - 1 tokens
    tokens = torch.cat([probe.tokens, gen.control_for(probe)])
    hf = model._module
    with torch.no_grad():
        hf(tokens[:, :16])  # warm up kernels and the allocator outside the measurement
    if kind == "detect":
        det.detect(sequence_length=16)  # site discovery and first-call costs, outside the measurement
    with peak_mib() as mib:
        t0 = time.perf_counter()
        with torch.no_grad():
            if kind == "bare":
                hf(tokens)
            elif kind == "body":
                hf.base_model(tokens)
            else:
                result = det.detect(sequence_length=length - 1)
        seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "mib": mib[0], "tokens": list(tokens.shape)}
    if kind == "detect":
        out["top"] = [(s.name, round(s.overall_score, 3)) for s in result.get_top_heads(3)]
    return out


def _run(kind: str, attn: str, length: int) -> dict:
    cmd = [sys.executable, __file__, "--case", f"{kind},{attn},{length}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1025,2049,4096,8192")
    ap.add_argument("--eager-lengths", default="1025,2049")
    ap.add_argument("--case")
    args = ap.parse_args()
    if args.case:
        kind, attn, length = args.case.split(",")
        print(json.dumps(case(kind, attn, int(length))))
        return
    import torch

    print(f"SmolLM2, one probe + its control, {torch.get_num_threads()} torch threads; each cell a fresh process")
    print(f"{'T':>5} | {'bare sdpa forward':>20} | {'detect(), sdpa model':>34} | {'no lm_head':>12}")
    for length in [int(x) for x in args.lengths.split(",")]:
        bare, body, det = (_run(k, "sdpa", length) for k in ("bare", "body", "detect"))
        print(
            f"{length:>5} | {bare['seconds']:7.1f} s, +{bare['mib']:6.0f} MiB | "
            f"{det['seconds']:7.1f} s ({det['seconds'] / bare['seconds']:.2f}x), "
            f"+{det['mib']:6.0f} MiB ({det['mib'] / bare['mib']:.2f}x) | "
            f"{body['seconds']:5.1f} s {body['mib']:5.0f} MiB   top {det['top']}",
            flush=True,
        )
    for length in [int(x) for x in args.eager_lengths.split(",") if x]:
        bare, det = (_run(k, "eager", length) for k in ("bare", "detect"))
        print(
            f"{length:>5} | eager: bare {bare['seconds']:.1f} s, +{bare['mib']:.0f} MiB | detect() "
            f"{det['seconds']:.1f} s ({det['seconds'] / bare['seconds']:.2f}x), +{det['mib']:.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
