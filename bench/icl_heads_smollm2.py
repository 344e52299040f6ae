"""Issue 24's SmolLM2 tables, in one run: edge knockout of the top induction heads against their full
ablation and against random heads (repeated-token loss, over probe seeds, and few-shot accuracy per task);
function-vector scores exact vs attribution (forward-equivalents, Spearman, top-10 agreement); the protocol
(``icl_heads``): FV vs induction top heads (overlap, depth) and exclusion ablation. Each step's seconds.
``python bench/icl_heads_smollm2.py [--threads 2] [--skip-exact] [--fv-tasks 3]`` (about an hour on 2 cores;
``--skip-*`` leaves parts out).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import induction_nb as nb
from induction_nb.metrics.stats import bootstrap_mean


def ci(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    low, high = bootstrap_mean(t, 1000, 0)
    return f"{float(t.mean()):.3f} [{float(low):.3f}, {float(high):.3f}]"


def loss_table(model, top: list, heads_total: list, seeds: range) -> dict:
    """Repeated-half loss (nats) for each condition over probe seeds: mean and bootstrap interval over seeds."""
    rows: dict[str, list[float]] = {"clean": []}
    for k in (3, 8):
        for name in (f"knockout top{k}", f"mean top{k}", f"zero top{k}", f"knockout random{k}", f"mean random{k}"):
            rows[name] = []
    for s in seeds:
        g = torch.Generator().manual_seed(100 + s)
        for k in (3, 8):
            rand = [heads_total[i] for i in torch.randperm(len(heads_total), generator=g)[:k].tolist()]
            for name, heads, method in (
                (f"knockout top{k}", top[:k], "knockout"),
                (f"mean top{k}", top[:k], "mean"),
                (f"zero top{k}", top[:k], "zero"),
                (f"knockout random{k}", rand, "knockout"),
                (f"mean random{k}", rand, "mean"),
            ):
                r = nb.ablate_heads(model, heads, method, seed=s, batch_size=8)
                rows[name].append(r.ablated_loss)
                if name == "knockout top3":
                    rows["clean"].append(r.baseline_loss)
    for name, values in rows.items():
        print(f"  {name:<20} {ci(values)}")
    return rows


def fv_compare(model, n_tasks: int, out: dict, lap) -> None:
    """FV scores by attribution (top 10 verified) and exact on the same prompts: cost and agreement."""
    from induction_nb.causal.effects import spearman

    tasks = ["country_capital", "antonym", "capitalize"][:n_tasks]
    small = dict(shots=5, n_prompts=8)
    t0 = time.perf_counter()
    attr = nb.fv_scores(model, tasks, estimator="attribution", verify_top=10, **small)
    t_attr = time.perf_counter() - t0
    print(attr, f"\n  {t_attr:.1f} s")
    t0 = time.perf_counter()
    exact = nb.fv_scores(model, tasks, estimator="exact", **small)
    t_exact = time.perf_counter() - t0
    print(exact, f"\n  {t_exact:.1f} s")
    rho = spearman(attr.estimate.flatten(), exact.scores.flatten())
    rho_abs = spearman(attr.estimate.flatten().abs(), exact.scores.flatten().abs())
    top_exact = {(l, h) for l, h, _ in exact.top(10)}
    top_est = {(l, h) for l, h, _ in attr.top(10)}
    print(
        f"FV on {tasks}: exact {exact.n_forward} vs attribution {attr.n_forward} forward-equivalents ({t_exact:.0f} s "
        f"vs {t_attr:.0f} s); Spearman of the plain estimate with exact over all heads {rho:.3f} (|.|: {rho_abs:.3f}); "
        f"top-10 shared after verification: {len(top_exact & top_est)}/10"
    )
    out["fv_cost"] = dict(
        exact=exact.n_forward, attribution=attr.n_forward, spearman=rho, shared=len(top_exact & top_est)
    )
    lap("FV exact vs attribution")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-exact", action="store_true")
    parser.add_argument("--skip-loss", action="store_true")
    parser.add_argument("--skip-few-shot", action="store_true")
    parser.add_argument("--skip-protocol", action="store_true")
    parser.add_argument("--fv-tasks", type=int, default=3, help="tasks of the FV exact-vs-attribution comparison")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = nb.load_model()
    out: dict = {}
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        print(f"[{what}: {now - clock:.1f} s]\n", flush=True)
        clock = now

    det = nb.detect_induction_heads(model)
    top = [(s.layer, s.head) for s in det.get_top_heads(10, metric="prefix_matching")]
    print("top induction heads (prefix matching):", top)
    lap("detection")
    every = [(l, h) for l in range(30) for h in range(9)]
    if not args.skip_loss:
        print("Repeated-token loss (nats; mean over 5 probe seeds, interval over seeds)")
        out["loss"] = loss_table(model, top, every, range(5))
        lap("knockout vs ablation vs random, repeated tokens")
    rand8 = [every[i] for i in torch.randperm(len(every), generator=torch.Generator().manual_seed(7))[:8].tolist()]
    for name, kw in (
        ()
        if args.skip_few_shot
        else (
            ("knockout random8", dict(knockout=rand8)),
            ("knockout top3", dict(knockout=top[:3])),
            ("mean top3", dict(ablate=top[:3])),
            ("knockout top8", dict(knockout=top[:8])),
            ("mean top8", dict(ablate=top[:8])),
        )
    ):
        few = nb.few_shot_accuracy(model, n_prompts=16, **kw)
        print(name)
        print(few)
        out[f"few_shot {name}"] = {r.task: [r.accuracy, r.ablated_accuracy, *r.drop_interval] for r in few.rows}
    if not args.skip_few_shot:
        lap("few-shot: knockout vs ablation")
    if not args.skip_exact:
        fv_compare(model, args.fv_tasks, out, lap)
    if not args.skip_protocol:
        result = nb.icl_heads(model, fractions=(0.01, 0.03), n_prompts=16, shots=10, induction=det)
        print(result)
        print(result.fv_result)
        lap("icl_heads protocol")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
