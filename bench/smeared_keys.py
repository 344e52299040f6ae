"""Olsson et al.'s co-perturbation on our trainer: when do induction heads (and the ICL gain) appear with and
without smeared keys, over seeds? Prints ``compare_smeared_keys``' table for each layer count and, with
``--json``, writes the steps.

    OMP_NUM_THREADS=1 python bench/smeared_keys.py --layers 2 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import time

from induction_nb.analysis.co_perturbation import compare_smeared_keys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--layers", type=int, nargs="+", default=[2, 1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    out = {}
    for n_layers in args.layers:
        start = time.perf_counter()
        c = compare_smeared_keys(args.seeds, n_layers=n_layers, steps=args.steps, every=args.every)
        seconds = time.perf_counter() - start
        print(c)
        print(f"  ({seconds:.0f} s for {2 * len(args.seeds)} runs)\n", flush=True)
        out[n_layers] = {"formed": c.formed, "icl": c.icl, "earlier": c.earlier, "later": c.later, "seconds": seconds}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
