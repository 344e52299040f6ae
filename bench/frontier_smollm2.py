"""Issue 23's SmolLM2 tables, in one run: token vs concept induction heads with intervals and their overlap,
the probe-detected heads' place in the token ranking, the route ablation, n-prefix scores of the top heads
on the ngram probe, and the weights' evidence against the ablation circuit; each step's seconds and
forward passes. ``python bench/frontier_smollm2.py [--probes 32] [--threads 2]`` (about 10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import torch

import induction_nb as nb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = nb.load_model()
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        print(f"[{what}: {now - clock:.1f} s]\n")
        clock = now

    detected = nb.detect_induction_heads(model)
    probe_heads = detected.induction_heads
    print("probe-detected induction heads:", [f"L{l}H{h}" for l, h in probe_heads])
    lap("detect")
    dual = nb.concept_induction(model, n_probes=args.probes)
    print(nb.text_dual_route(dual, top=10))
    ranks = {(s.layer, s.head): i + 1 for i, s in enumerate(dual.top_token(None))}
    print("token-ranking places of the probe-detected heads:", {f"L{l}H{h}": ranks[(l, h)] for l, h in probe_heads})
    print("top-10 overlap:", dual.overlap(10), "| settings:", dual.settings)
    lap(f"concept_induction ({dual.settings['forwards']} forwards)")
    for k in (5, 10):
        print(nb.route_ablation(model, dual, k=k, n_probes=args.probes))
    lap("route_ablation")
    ngram = nb.detect_induction_heads(model, patterns=["ngram"])
    tops = [(s.layer, s.head) for s in dual.top_token(5)] + [(s.layer, s.head) for s in dual.top_concept(5)]
    print(nb.text_n_prefix(ngram, heads=list(dict.fromkeys(tops))))
    lap("ngram detection")
    evidence = nb.weight_evidence(model)
    print(nb.text_weight_evidence(evidence, top=10))
    lap("weight_evidence")
    circuit = nb.find_circuit(model, probe_heads, sequence_length=64, batch_size=4)
    print(nb.compare_with_circuit(evidence, circuit))
    lap("find_circuit + compare")


if __name__ == "__main__":
    main()
