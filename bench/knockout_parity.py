"""Edge knockout against a hand renormalisation, on every tiny architecture of the tests (eager and sdpa):
the last layer's head 1 loses its induction edges on a repeated sequence; its knocked pattern (read in the
same trace) must equal the clean eager pattern with those weights zeroed and the rows renormalised, and the
other heads must not move. Prints one row per model and kernel: the site kind, the largest error, the change
the edit made, or why the model was refused or could not be built. ``python bench/knockout_parity.py``
(about a minute on 2 cores).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_models import ARCHS, make_hf, random_tokens

from induction_nb.engine.ablator import Ablator
from induction_nb.engine.knockout import edge_mask


class _Keep:
    def __call__(self, layer, pattern):
        return pattern.clone()


def check(arch: str, impl: str) -> str:
    try:
        model = make_hf(arch, impl)
    except Exception as e:  # the kernel does not exist for this architecture
        return f"not built ({type(e).__name__})"
    try:
        ab = Ablator(model)
        last = ab.layers[-1]
        block = random_tokens(2, 8)
        tokens = torch.cat([block, block], 1)
        edges = edge_mask("induction", tokens)
        _, (clean,) = ab.run(tokens, [[]], "zero", None, read={last: _Keep()})
        _, (knocked,) = ab.run(tokens, [[]], "zero", None, read={last: _Keep()}, knock=[[(last, 1)]], edges=edges)
    except Exception as e:
        return f"refused: {type(e).__name__}: {str(e)[:90]}"
    before, after = clean[1], knocked[1]
    hand = before[:, 1].masked_fill(edges, 0)
    hand = hand / hand.sum(-1, keepdim=True)
    others = [h for h in range(before.shape[1]) if h != 1]
    err = float((after[:, 1] - hand).abs().max())
    moved = float((after[:, others] - before[:, others]).abs().max())
    change = float((after[:, 1] - before[:, 1]).abs().max())
    return f"{ab.sites[-1].kind.name:<13} max error {err:.1e}, other heads moved {moved:.1e}, edit changed {change:.2f}"


def main() -> None:
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    worst, n = 0.0, 0
    for arch in ARCHS:
        for impl in ("eager", "sdpa"):
            row = check(arch, impl)
            print(f"{arch:<24}{impl:<7}{row}", flush=True)
            if "max error" in row:
                n += 1
                worst = max(worst, float(row.split("max error ")[1].split(",")[0]))
    print(f"\n{n} model x kernel pairs knocked out; largest error against the hand renormalisation: {worst:.1e}")


if __name__ == "__main__":
    main()
