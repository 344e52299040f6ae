"""Lines (1) and (2) of the evidence report: what training says (Olsson et al. 2022, arguments 1 and 2).

* (1) co-occurrence, from a ``formation`` scan: the share of the ICL score's improvement (first to last
  checkpoint) that happens inside the best head's rise window (``causal.phase_change``), against the share of
  training the window covers (what an improvement spread evenly over training would give). "supports" where the
  window is a phase change and holds at least half of the improvement and at least twice its share of training;
  "against" where the window is a phase change but the improvement inside it is no more than its share of
  training (the ICL gain does not come with the heads), or where the ICL score improves by 0.1 nats or more
  with no rise of the induction score; "inconclusive" otherwise (a gradual rise, or no ICL improvement to share).
* (2) co-perturbation, from ``compare_smeared_keys``: seeds where smeared keys formed an induction head at an
  earlier checkpoint than plain keys (or formed one where plain keys never did), and where the ICL gain came
  earlier too. "supports" where both hold in at least two thirds of the seeds and neither is later in any seed;
  "against" where induction heads form later with smeared keys in more seeds than earlier; else "inconclusive".
  The value is the share of seeds with earlier heads; the baseline the share with later heads.
"""

from __future__ import annotations

import math
from typing import Any

from ..analysis.co_perturbation import earlier_than
from ..errors import InputError
from .evidence_lines import EvidenceLine, call, line, not_measured

__all__ = ["training_lines"]

NAN = float("nan")


def training_lines(formation: Any, smeared: Any) -> tuple[EvidenceLine, EvidenceLine]:
    """Lines (1) and (2) from a ``FormationResult`` and a ``SmearedKeysComparison`` (either may be ``None``:
    that line is "not measured"). Raises ``InputError`` for anything else passed as either."""
    if formation is not None and not all(hasattr(formation, k) for k in ("window", "icl", "steps")):
        raise InputError(f"formation= takes formation(checkpoints)'s result, got {type(formation).__name__}")
    if smeared is not None and not all(hasattr(smeared, k) for k in ("formed", "icl", "seeds")):
        raise InputError(f"smeared= takes compare_smeared_keys(...)'s result, got {type(smeared).__name__}")
    one = not_measured(1, "pass formation=formation(checkpoints) (a training run or saved checkpoints)")
    two = not_measured(2, "pass smeared=compare_smeared_keys(seeds) (training with and without smeared keys)")
    return (one if formation is None else _co_occurrence(formation), two if smeared is None else _smeared(smeared))


def _co_occurrence(f: Any) -> EvidenceLine:
    w = f.window
    icl_gain = float(f.icl[0] - f.icl[-1])  # positive: more in-context learning at the end
    values = {"steps": list(f.steps), "icl": [float(v) for v in f.icl], "icl_gain": icl_gain}
    values["best"] = [float(v) for v in f.best]  # the highest induction score over heads, per checkpoint
    keys = ("threshold", "sequence_length", "batch_size", "seed", "n_bootstrap", "min_rise", "max_share", "log_steps")
    given = {k: f.settings[k] for k in keys if k in getattr(f, "settings", {})}
    if getattr(f, "settings", {}).get("texts"):
        given["texts"] = "documents"  # Olsson's token-500 score on the documents the scan was given
    calls = (call("formation", "checkpoints", **given),)
    values["log_steps"] = bool(getattr(f, "settings", {}).get("log_steps", False))
    if w is None:
        verdict = "against" if icl_gain >= 0.1 else "inconclusive"
        detail = f"no rise of the induction score; the ICL score improves by {icl_gain:+.2f} nats over training"
        return line(1, NAN, (NAN, NAN), None, verdict, detail, calls, values)
    values.update(start=w.start, end=w.end, rise=w.rise, share=w.share, abrupt=w.abrupt, icl_share=w.icl_share)
    values.update(linear_share=w.linear_share, log_steps=w.log_steps)
    kind = "phase change" if w.abrupt else "gradual rise"
    span = f"{w.linear_share:.0%} of training" + (f", {w.share:.0%} in log steps" if w.log_steps else "")
    detail = f"{kind} at steps {w.start}-{w.end} (+{w.rise:.2f} induction score over {span}); " + (
        f"{w.icl_share:.0%} of the ICL improvement ({icl_gain:.2f} nats) inside it"
        if not math.isnan(w.icl_share)
        else "the ICL score does not improve"
    )
    if math.isnan(w.icl_share):
        verdict = "inconclusive"
    elif w.abrupt and w.icl_share >= 0.5 and w.icl_share >= 2 * w.share:
        verdict = "supports"
    elif w.abrupt and w.icl_share <= w.share + 1e-9:  # (rounding: an evenly spread gain is "no more")
        verdict = "against"
    else:
        verdict = "inconclusive"
    return line(1, w.icl_share, (NAN, NAN), w.share, verdict, detail, calls, values)


def _smeared(c: Any) -> EvidenceLine:
    n = len(c.seeds)
    earlier, later = c.earlier, c.later
    icl_earlier = sum(earlier_than(s, p) for s, p in zip(c.icl["smeared"], c.icl["plain"]))
    icl_later = sum(earlier_than(p, s) for s, p in zip(c.icl["smeared"], c.icl["plain"]))
    values = {"seeds": list(c.seeds), "formed": c.formed, "icl": c.icl, "n_layers": c.n_layers}
    values.update(earlier=earlier, later=later, icl_earlier=icl_earlier, icl_later=icl_later)
    formed = {k: sum(v is not None for v in c.formed[k]) for k in ("plain", "smeared")}
    detail = (
        f"{c.n_layers}-layer models, {n} seeds: induction heads formed with smeared keys in {formed['smeared']}/{n}, "
        f"plain keys in {formed['plain']}/{n}; earlier with smeared keys in {earlier}/{n} (later in {later}), "
        f"ICL gain earlier in {icl_earlier}/{n} (later in {icl_later})"
    )
    if 3 * earlier >= 2 * n and 3 * icl_earlier >= 2 * n and later == 0 and icl_later == 0:
        verdict = "supports"
    elif later > earlier:
        verdict = "against"
    else:
        verdict = "inconclusive"
    made = call(
        "compare_smeared_keys",
        "seeds=" + repr(list(c.seeds)),
        n_layers=c.n_layers,
        steps=c.steps,
        every=c.every,
        icl_drop=c.icl_drop,
        **getattr(c, "train_kwargs", {}),
    )
    return line(2, earlier / n, (NAN, NAN), later / n, verdict, detail, (made,), values)
