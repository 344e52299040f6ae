"""Coverage of ``concept_induction`` (value-weighted attention, both routes, and the exact causal form on a
few heads) on every causal-LM architecture of the installed transformers, each built tiny from its config
(``tests/tiny_configs.build``), eager and sdpa.

    python bench/dual_route_sweep.py                      # the table, ~5 min on 2 cores
    python bench/dual_route_sweep.py --only llama,gpt2 --backends eager

Each architecture ends in one outcome for the attention form (``effects=None``) and, where that ran, one
for the exact causal form: ``ok`` (the scores came back), ``refused`` (an ``InductionNBError`` naming the
reason, e.g. a site that passes no value vectors), ``no_model`` (the tiny model cannot be built or run on
plain token ids: nothing to measure) or ``crash`` (anything else). The value vectors used are proven inside
every read (``pattern @ values`` reproduces the attention call's output) and the patched probabilities
equal plain hooks on three architectures (``tests/test_dual_route.py``); this sweep measures where the
whole call runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from arch_sweep import _preload, model_types
from tiny_configs import build

WORDS = [[5, 6], [7, 8, 9], [10, 11, 12, 13]]


def run_one(model_type: str, backend: str) -> dict:
    import torch

    import induction_nb as nb
    from induction_nb.errors import InductionNBError

    try:
        model = build(model_type, "causal", backend)
        with torch.no_grad():
            model(torch.arange(3, 19)[None])
    except Exception as e:
        return {"outcome": "no_model", "why": f"{type(e).__name__}: {str(e)[:120]}"}
    row = {}
    for form, effects in (("attention", None), ("causal", "exact")):
        try:
            r = nb.concept_induction(model, WORDS, n_probes=3, n_boot=10, effects=effects, length=24)
        except InductionNBError as e:
            row[form] = ("refused", str(e).splitlines()[0][:140])
            continue
        except Exception as e:
            row[form] = ("crash", f"{type(e).__name__}: {str(e)[:140]}")
            continue
        finite = sum(s.values["token_induction"] == s.values["token_induction"] for s in r.head_scores)
        row[form] = ("ok", f"{finite}/{len(r.head_scores)} heads with a value-weighted score")
    return {"outcome": row["attention"][0], "why": row["attention"][1], "causal": row["causal"]}


def _child(queue, model_type, backend):
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    queue.put(run_one(model_type, backend))


def sweep_one(model_type: str, backend: str, timeout: float) -> dict:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, model_type, backend))
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception:
        result = {"outcome": "crash", "why": f"no answer within {timeout:.0f} s"}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="")
    parser.add_argument("--backends", default="eager,sdpa")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    _preload()
    names = [n for n in args.only.split(",") if n] or model_types("causal")
    counts: dict[str, Counter] = {}
    start = time.perf_counter()
    for backend in args.backends.split(","):
        counts[backend] = Counter()
        for name in names:
            row = sweep_one(name, backend, args.timeout)
            counts[backend][row["outcome"]] += 1
            causal = row.get("causal", ("-", ""))
            if row["outcome"] == "ok":
                counts[backend]["causal " + causal[0]] += 1
            if row["outcome"] != "ok" or causal[0] != "ok":
                why = f"{row['why'][:90]} | causal {causal[0]} {causal[1][:80]}"
                print(f"{backend:6} {name:28} {row['outcome']:9} {why}", flush=True)
    print(f"\n{len(names)} causal architectures, {time.perf_counter() - start:.0f} s")
    for backend, c in counts.items():
        measured = c["ok"] + c["refused"] + c["crash"]
        share = c["ok"] / measured if measured else float("nan")
        print(
            f"{backend:6} attention form: ok {c['ok']}, refused {c['refused']}, crash {c['crash']}, no model "
            f"{c['no_model']} ({share:.1%} of the buildable run); causal form where the attention form ran: ok "
            f"{c['causal ok']}, refused {c['causal refused']}, crash {c['causal crash']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
