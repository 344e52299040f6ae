"""Induction and retrieval heads of the embedded SmolLM2 at 1k, 2k, 4k and 8k tokens, and the causal check
of its retrieval heads; writes notebooks/data/long_context_smollm2.json (notebook 09 reads it).

    python bench/long_context_smollm2.py [--lengths 1024,2048,4096,8192] [--causal-lengths 1024,2048]

Per length: the detector on one probe + control of that length (overall score of every head), and the
retrieval score of every head over needles at depths 0.25, 0.5, 0.75 (6-word needles). Causal check at the
causal lengths: needle accuracy intact, with the 5 top retrieval heads removed, and with 5 random heads of
the same layers removed (3 draws). Minutes per length on 2 CPU cores (8k: ~8 min). Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "data" / "long_context_smollm2.json"
DEPTHS = [0.25, 0.5, 0.75]
NEEDLE = 6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1024,2048,4096,8192")
    ap.add_argument("--causal-lengths", default="1024,2048")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    import torch

    from induction_nb import InductionHeadDetector, load_model, needle_accuracy, retrieval_heads

    model = load_model(attn_implementation="sdpa")
    data = {
        "model": "SmolLM2-135M-Instruct",
        "depths": DEPTHS,
        "needle_length": NEEDLE,
        "lengths": {},
        "threads": torch.get_num_threads(),
    }
    for length in [int(x) for x in args.lengths.split(",")]:
        t0 = time.perf_counter()
        det = InductionHeadDetector(model, batch_size=1, chunk_size=1, n_bootstrap=100, progress=False)
        induction = det.detect(sequence_length=min(length, 8191) - 1)
        t1 = time.perf_counter()
        context = min(length, 8192 - NEEDLE)
        retrieval = retrieval_heads(
            model, lengths=[context], depths=DEPTHS, needle_length=NEEDLE, n_bootstrap=500, progress=False
        )
        t2 = time.perf_counter()
        data["lengths"][str(length)] = {
            "context": context,
            "seconds_detect": round(t1 - t0, 1),
            "seconds_retrieval": round(t2 - t1, 1),
            "needle_accuracy": retrieval.settings["needle_accuracy"],
            "induction": {s.name: round(s.overall_score, 4) for s in induction.head_scores},
            "retrieval": {
                s.name: [round(s.overall_score, 4), round(s.ci_low, 4), round(s.ci_high, 4)]
                for s in retrieval.head_scores
            },
        }
        top_r = [s.name for s in retrieval.get_top_heads(5)]
        top_i = [s.name for s in induction.get_top_heads(5)]
        print(
            f"{length:5}: needle accuracy {retrieval.settings['needle_accuracy']:.2f}; top retrieval {top_r}; "
            f"top induction {top_i} ({t1 - t0:.0f} s + {t2 - t1:.0f} s)",
            flush=True,
        )
        if str(length) in args.causal_lengths.split(","):
            data["lengths"][str(length)]["causal"] = _causal(model, retrieval, context, needle_accuracy)
            print(f"       causal: {data['lengths'][str(length)]['causal']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1))
    print(f"wrote {args.out}")


def _causal(model, retrieval, context: int, needle_accuracy) -> dict:
    top = [(s.layer, s.head) for s in retrieval.get_top_heads(5)]
    kwargs = dict(lengths=[context], depths=DEPTHS, needle_length=NEEDLE)
    out = {
        "top5": [f"L{l}H{h}" for l, h in top],
        "intact": needle_accuracy(model, **kwargs),
        "without_top5": needle_accuracy(model, top, **kwargs),
        "without_random5": [],
    }
    for draw in range(3):
        rng = random.Random(draw)
        same_layers = []
        for layer in sorted({l for l, _ in top}):  # as many random heads per layer as top heads there
            pool = [h for h in range(retrieval.n_heads) if (layer, h) not in top]
            same_layers += [(layer, h) for h in rng.sample(pool, sum(1 for l, _ in top if l == layer))]
        out["without_random5"].append(
            [[f"L{l}H{h}" for l, h in same_layers], needle_accuracy(model, same_layers, **kwargs)]
        )
    return out


if __name__ == "__main__":
    main()
