"""The lines of ``causal.evidence``'s report, each from the public tools called as a user would call them
(Olsson, Elhage, Nanda et al. 2022, "In-context Learning and Induction Heads", arXiv 2209.11895): (1)-(2)
from training (``causal.evidence_training``), (3) ablation (``ablation_line``), (4) generality (``generality_line``),
(5) mechanism (``mechanism_line``). Each line keeps the exact calls and their raw numbers; the verdict rules
are in each builder's docstring.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..analysis.dual_route import concept_induction
from ..analysis.fuzzy import fuzzy_copy
from ..analysis.weights_evidence import weight_evidence
from ..errors import InputError
from .ablation import icl_score
from .circuit import find_circuit

__all__ = ["EvidenceLine", "Verdict", "VERDICTS", "LINES", "MARGIN", "COPYING", "head_name", "plain"]

Verdict = Literal["supports", "against", "inconclusive", "not measured"]
VERDICTS: tuple[str, ...] = Verdict.__args__
Head = tuple[int, int]
NAN = float("nan")
MARGIN = 0.1  # line 3: the heads' change must beat every random set's by this share of |clean ICL score|
FLOOR = 0.1  # line 3, nats: a clean ICL score above -FLOOR is no in-context learning to remove (and the least margin)
COPYING = 0.5  # line 5: the mean OV copying score (in [-1, 1]) a copying set of heads exceeds
LINES = {
    1: ("co-occurrence", "Do induction heads form in a phase change at the same time as in-context learning improves?"),
    2: ("co-perturbation", "Does letting induction heads form earlier (smeared keys) move the ICL gain with them?"),
    3: ("ablation", "Does removing the induction heads at test time remove much of in-context learning, more than "
        "removing as many other heads?"),
    4: ("generality", "Do the same heads also do more abstract copying (concept induction, fuzzy copying)?"),
    5: ("mechanism", "Is the mechanism there: a previous-token head feeding the heads' keys (K-composition) and a "
        "copying OV circuit?"),
    6: ("continuity", "Does the picture hold on the other models?"),
}  # fmt: skip


def head_name(head: Sequence[int] | None) -> str | None:
    return None if head is None else f"L{head[0]}H{head[1]}"


def plain(x: Any) -> Any:
    """``x`` as JSON values (dicts with string keys, lists, floats, ints, strings, bools, ``None``) so that a
    line equals itself after a JSON round trip; tensors and numpy scalars become numbers or lists."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return plain(x.tolist())
    if isinstance(x, (bool, str, int, float)) or x is None:
        return x
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"not a JSON value: {type(x).__name__}")


@dataclass(frozen=True, eq=False)
class EvidenceLine:
    """One of Olsson et al.'s six lines of evidence for induction heads: a number, its baseline and a verdict.

    ``EvidenceReport.line(n)`` (``evidence_report``). One line of evidence: ``number`` (Olsson et al.'s 1-6),
    ``name``, the ``question`` it answers, its headline ``value`` with an ``interval`` (``(nan, nan)`` where
    none; each builder says what it is) and the ``baseline`` it is read against (``None`` where none), the
    ``verdict``, a ``detail`` in words, the exact ``calls`` that reproduce it and their raw ``values`` (plain
    JSON). Equal where every field is (NaN equal to NaN). ``to_dict``/``from_dict`` give and read plain JSON.
    A verdict other than the four raises ``InputError``.

    Attributes:
        number: Olsson et al.'s line, 1-6: (1) co-occurrence, (2) co-perturbation, (3) ablation,
            (4) generality, (5) mechanism, (6) continuity.
        name: the line's name (``"co-occurrence"``, ``"co-perturbation"``, ``"ablation"``, ``"generality"``,
            ``"mechanism"``, ``"continuity"``).
        question: the question the line answers, in words.
        value: the headline number (NaN where not measured): (1) the share of the ICL improvement inside
            the best head's rise window, (2) the share of seeds whose induction heads form earlier with
            smeared keys, (3) the ICL-score change with the induction heads removed (nats; positive: less
            in-context learning), (4) the heads' mean fuzzy-copy score (the concept-induction score's where
            fuzzy copying is not measured), (5) their mean OV copying score (-1..1), (6) the share of models
            whose lines 3 and 5 both support.
        interval: ``(low, high)`` around ``value`` (``(nan, nan)`` where none, as for lines 1, 2 and 6): for
            (3) the random head sets' range of changes, for (4) the mean of the heads' 95% interval bounds,
            for (5) the OV copying range over the heads.
        baseline: what ``value`` is read against (``None`` where none): for (1) the window's share of
            training, for (2) the share of seeds where they form later, for (3) the random sets' mean
            change, for (4) the median score over all heads, for (5) 0 (a random OV circuit).
        verdict: ``"supports"``, ``"against"``, ``"inconclusive"`` or ``"not measured"``.
        detail: the numbers behind the verdict, in words (or why the line was not measured).
        calls: the exact calls that reproduce the numbers, as a user types them (e.g.
            ``"icl_score(model, ablate=[(1, 0)], method='mean', ...)"``).
        values: the calls' raw numbers, as plain JSON values (dicts, lists, floats, strings).

    Examples:
        >>> from induction_nb import EvidenceLine, HandBuiltInduction, evidence_report
        >>> model = HandBuiltInduction()  # L1H0 induction head; only L0H0 and L1H0 write anything
        >>> report = evidence_report(model, n_random=1, sequence_length=32, batch_size=4, concept=False,
        ...                          fuzzy=False, weights=False, circuit=False)
        >>> line = report.line(3)
        >>> line.number, line.name, line.verdict
        (3, 'ablation', 'supports')
        >>> line.value > 0.5, abs(line.baseline) < 1e-6  # nats: L1H0 removed vs a random head removed
        (True, True)
        >>> line.calls[1]
        "icl_score(model, ablate=[(1, 0)], method='mean', sequence_length=32, batch_size=4, seed=0)"
        >>> EvidenceLine.from_dict(line.to_dict()) == line
        True
        >>> report.line(5).verdict, report.line(5).interval  # weights=False, circuit=False
        ('not measured', (nan, nan))
    """

    number: int
    name: str
    question: str
    value: float
    interval: tuple[float, float]
    baseline: float | None
    verdict: Verdict
    detail: str
    calls: tuple[str, ...] = ()
    values: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise InputError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))
        object.__setattr__(self, "baseline", None if self.baseline is None else float(self.baseline))
        object.__setattr__(self, "calls", tuple(str(c) for c in self.calls))
        object.__setattr__(self, "values", plain(dict(self.values)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "question": self.question,
            "value": self.value,
            "interval": list(self.interval),
            "baseline": self.baseline,
            "verdict": self.verdict,
            "detail": self.detail,
            "calls": list(self.calls),
            "values": self.values,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EvidenceLine:
        return cls(**{**d, "interval": tuple(d["interval"]), "calls": tuple(d["calls"])})

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, EvidenceLine):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(other.to_dict(), sort_keys=True)

    __hash__ = None  # type: ignore[assignment]


def line(number: int, value: float, interval: Any, baseline: Any, verdict: str, detail: str, calls=(), values=None):
    name, question = LINES[number]
    return EvidenceLine(number, name, question, value, interval, baseline, verdict, detail, tuple(calls), values or {})


def not_measured(number: int, reason: str, calls: Sequence[str] = (), values: dict | None = None) -> EvidenceLine:
    return line(number, NAN, (NAN, NAN), None, "not measured", reason, calls, values)


def call(tool: str, target: str = "model", **kwargs: Any) -> str:
    """The call as a user types it: ``icl_score(model, ablate=[(1, 0)], method='mean', seed=0)``."""
    return f"{tool}({target}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"


def ablation_line(model: Any, heads: list[Head], pool: list[Head], method: str, n_random: int, common: dict):
    """Line (3): ``icl_score`` (late minus early loss, nats; negative = in-context learning) clean, with the
    induction ``heads`` removed (``method``), with their induction edges knocked out, and with ``n_random``
    random sets of as many heads drawn (``torch.Generator`` seeded by ``seed``) from ``pool`` (the report's:
    the heads that are neither induction nor previous-token heads). Value: the
    change ablated minus clean on repeated random tokens (positive = less ICL); interval: the random sets'
    range of changes; baseline: their mean. Verdict (repeated tokens): "supports" where the change exceeds
    every random set's by ``MARGIN`` x |clean score| (at least ``FLOOR``, 0.1 nats) on a model that shows in-context
    learning (clean score below -``FLOOR``; else "inconclusive": nothing to remove), "against" where it does not
    exceed the random sets' mean,
    "inconclusive" between, or where the pool has fewer heads than the set; the natural-text numbers (with a
    tokenizer) are reported beside it, not voted."""
    g = torch.Generator().manual_seed(common["seed"])
    k, enough = len(heads), len(pool) >= len(heads)
    sets = [sorted(pool[i] for i in torch.randperm(len(pool), generator=g)[:k].tolist()) for _ in range(n_random)]
    plans = [("clean", [], method), ("induction", heads, method), ("knockout", heads, "knockout")]
    plans += [("random", s, method) for s in sets] if enough else []
    calls, runs = [], []
    for _, ablate, m in plans:
        kwargs = dict(ablate=ablate, method=m, **common)
        calls.append(call("icl_score", **kwargs))
        runs.append(icl_score(model, **kwargs))
    clean = runs[0]
    change = {read: _changes(clean, runs, read) for read in ("repeated", "natural")}
    ind, knock, rand = (change["repeated"][k] for k in ("induction", "knockout", "random"))
    values = {
        "clean": clean,
        "induction": runs[1],
        "knockout": runs[2],
        "random": [{"heads": s, **r} for s, r in zip(sets if enough else [], runs[3:])],
        "change": change,
        "share_removed": {r: c["induction"] / -clean[r] if c and clean[r] < 0 else NAN for r, c in change.items()},
        "margin": max(MARGIN * abs(clean["repeated"]), FLOOR),
        "pool": pool,
    }
    learns = clean["repeated"] < -FLOOR
    verdict = _ablation_verdict(ind, rand, values["margin"]) if enough and learns else "inconclusive"
    interval = (min(rand), max(rand)) if rand else (NAN, NAN)
    removed = values["share_removed"]["repeated"]
    detail = (
        f"removing {k} induction head(s) ({method}) changes the ICL score by {ind:+.3f} nats (clean "
        f"{clean['repeated']:+.3f}; "
        + ("no in-context learning to remove" if not learns else f"{removed:.0%} of it removed")
        + "), knocking out their "
        f"induction edges by {knock:+.3f}; {len(rand)} random sets of {k} other heads: "
        + (f"{interval[0]:+.3f} to {interval[1]:+.3f}" if rand else f"none (only {len(pool)} other heads)")
    )
    if clean["natural"] is not None:
        detail += f"; natural text: {change['natural']['induction']:+.3f} (clean {clean['natural']:+.3f})"
    baseline = statistics.fmean(rand) if rand else None
    return line(3, ind, interval, baseline, verdict, detail, calls, values)


def _changes(clean: dict, runs: list[dict], read: str) -> dict | None:
    """Ablated minus clean ICL score on ``read`` of the ``induction`` heads, their ``knockout`` and each
    ``random`` set (``None`` where the read was not measured: natural text without a tokenizer)."""
    if clean[read] is None:
        return None
    ind, knock, *rand = (r[read] - clean[read] for r in runs[1:])
    return {"induction": ind, "knockout": knock, "random": rand}


def _ablation_verdict(change: float, random: list[float], margin: float) -> str:
    if not random:
        return "inconclusive"
    if change > max(random) + margin and change > 0:
        return "supports"
    return "against" if change <= statistics.fmean(random) else "inconclusive"


def generality_line(model: Any, heads: list[Head], tokenizer: bool, concept: bool, fuzzy: bool, seed: int):
    """Line (4): the heads' mean concept-induction score (``concept_induction(effects=None)``: value-weighted
    attention on the end of an earlier multi-token word) and mean fuzzy-copy score (``fuzzy_copy``), each
    against the median over all heads. Value: the fuzzy-copy mean (Olsson et al.'s own kind of evidence; the
    concept score's where fuzzy is not measured, ``values["headline"]`` says which); interval: the mean of the
    heads' 95% interval bounds (wider than the mean's own interval); baseline: the all-head median. Per score:
    "supports" where that lower bound exceeds the median, "against" where the mean does not; the line supports
    (is against) where every measured score does, else "inconclusive". Returns the line and ``{head:
    {"concept": .., "fuzzy": ..}}``."""
    parts, calls, per_head = {}, [], {h: {} for h in heads}
    for name, wanted in (("concept", concept), ("fuzzy", fuzzy)):
        reason = _skip_reason(name, wanted, tokenizer)
        if reason is None:
            try:
                text, scores = _generality_scores(name, model, seed)
                calls.append(text)
            except InputError as e:
                reason = f"not measured: {e}"
        if reason is not None:
            parts[name] = {"measured": False, "reason": reason}
            continue
        parts[name] = _versus_all(scores, heads)
        for h in heads:
            per_head[h][name] = scores[h][0] if h in scores else NAN
            per_head[h][f"{name}_interval"] = list(scores[h][1:]) if h in scores else [NAN, NAN]
    measured = [p for p in parts.values() if p["measured"]]
    detail = "; ".join(f"{n}: " + (_describe(p) if p["measured"] else p["reason"]) for n, p in parts.items())
    if not measured:
        return not_measured(4, detail, calls, parts), per_head
    verdicts = {p["verdict"] for p in measured}
    verdict = verdicts.pop() if len(verdicts) == 1 and "inconclusive" not in verdicts else "inconclusive"
    parts["headline"] = "fuzzy" if parts["fuzzy"]["measured"] else "concept"
    top = parts[parts["headline"]]
    return line(4, top["mean"], (top["low"], top["high"]), top["median"], verdict, detail, calls, parts), per_head


def _skip_reason(name: str, wanted: bool, tokenizer: bool) -> str | None:
    if not wanted:
        return f"not measured: skipped ({name}=False)"
    return None if tokenizer else "not measured: needs a tokenizer"


def _generality_scores(name: str, model: Any, seed: int) -> tuple[str, dict]:
    """``(the call, {head: (score, low, high)})`` of every head with a finite score."""
    if name == "concept":
        result = concept_induction(model, effects=None, seed=seed)
        out = {}
        for s in result.head_scores:
            low, high = s.intervals.get("concept_induction", (NAN, NAN))
            out[(s.layer, s.head)] = (s.values["concept_induction"], low, high)
        return call("concept_induction", effects=None, seed=seed), out
    result = fuzzy_copy(model, seed=seed)
    grid = torch.stack([result.scores, result.ci_low, result.ci_high], -1).tolist()  # [layer, head, 3]
    out = {(l, h): tuple(v) for l, row in enumerate(grid) for h, v in enumerate(row) if not math.isnan(v[0])}
    return call("fuzzy_copy", seed=seed), out


def _versus_all(scores: dict, heads: list[Head]) -> dict:
    """The heads' mean score and mean interval bounds against the median over all heads, and the verdict."""
    mine = [scores.get(h, (NAN, NAN, NAN)) for h in heads]
    mean, low, high = (statistics.fmean(v[i] for v in mine) for i in range(3))
    median = statistics.median(v[0] for v in scores.values() if not math.isnan(v[0]))
    verdict = "supports" if low > median else "against" if not mean > median else "inconclusive"
    return {"measured": True, "mean": mean, "low": low, "high": high, "median": median, "verdict": verdict}


def _describe(p: dict) -> str:
    return f"heads' mean {p['mean']:.3f} [{p['low']:.3f}, {p['high']:.3f}] vs median of all heads {p['median']:.3f}"


def mechanism_line(model: Any, heads: list[Head], previous: list[Head], weights: bool, circuit: bool, kw: dict):
    """Line (5): per induction head, its OV copying and top K-composing earlier head with score / baseline
    (``weight_evidence``), its top feeder in the behavioural circuit (``find_circuit``: the earlier head whose
    removal lowers its prefix matching most) and whether that feeder is a previous-token head (``previous``:
    the detection's ``previous_token_heads()``). A head is *explained* where its top feeder is a previous-token
    head whose K-composition with it is above the random baseline (ratio > 1). Value: the heads' mean OV
    copying (a random OV circuit scores about 0: the baseline); interval: its range over the heads. Verdict:
    "supports" where the mean OV copying exceeds ``COPYING`` (0.5) and at least half the heads are explained
    (needs both tools), "against" where the mean OV copying is <= 0 or no head's top feeder is a previous-token
    head, else "inconclusive". Returns the line and each head's row."""
    calls, rows = [], {h: {} for h in heads}
    parts = {"weights": _skipped("weights"), "circuit": _skipped("circuit")}
    evidence = found = None
    if weights:
        try:
            evidence = weight_evidence(model, seed=kw["seed"])
            calls.append(call("weight_evidence", seed=kw["seed"]))
            parts["weights"] = {"measured": True, "baseline": evidence.baseline, "notes": list(evidence.notes)}
        except InputError as e:
            parts["weights"] = {"measured": False, "reason": f"not measured: {e}"}
    if circuit:
        found = find_circuit(model, heads, **kw)
        calls.append(call("find_circuit", induction_heads=heads, **kw))
        parts["circuit"] = {"measured": True, "n_forward": found.n_forward}
    for h in heads:
        rows[h] = _mechanism_row(h, evidence, found, previous)
    ov = [r["ov_copying"] for r in rows.values() if "ov_copying" in r and not math.isnan(r["ov_copying"])]
    explained = [r.get("explained", False) for r in rows.values()]
    fed = [r.get("feeder_is_previous_token", False) for r in rows.values()]
    mean = statistics.fmean(ov) if ov else NAN
    values = {**parts, "per_head": {head_name(h): r for h, r in rows.items()}, "previous_token_heads": previous}
    values.update(mean_ov_copying=mean, share_explained=sum(explained) / len(heads), copying_threshold=COPYING)
    values["agreement"] = sum(r.get("agree", False) for r in rows.values()) / len(heads)  # weights' top = circuit's
    if (ov and mean <= 0) or (found is not None and not any(fed)):
        verdict = "against"
    elif evidence is not None and found is not None and mean > COPYING and 2 * sum(explained) >= len(heads):
        verdict = "supports"
    else:
        verdict = "inconclusive"
    detail = "; ".join(_row_text(h, r) for h, r in rows.items())
    skipped = [p["reason"] for p in parts.values() if not p["measured"]]
    detail = "; ".join([detail, *skipped]) if skipped else detail
    if evidence is None and found is None:
        return not_measured(5, detail, calls, values), rows
    if not any(r.get("feeder") or r.get("k_composer") for r in rows.values()):  # all in the first attention layer
        why = (
            "the heads are in the first attention layer: no earlier head can feed their keys (a one-layer model "
            "with smeared keys carries the previous token in its keys instead)"
        )
        return not_measured(5, why, calls, values), rows
    interval = (min(ov), max(ov)) if ov else (NAN, NAN)
    return line(5, mean, interval, 0.0, verdict, detail, calls, values), rows


def _skipped(name: str) -> dict:
    return {"measured": False, "reason": f"not measured: skipped ({name}=False)"}


def _mechanism_row(h: Head, evidence: Any, found: Any, previous: list[Head]) -> dict:
    """One induction head's numbers from the weights' evidence and the circuit (either may be ``None``)."""
    row: dict[str, Any] = {}
    if evidence is not None:
        row["ov_copying"] = evidence.ov_copying.get(h, NAN)
        top = evidence.composing(h, 1, "k")
        row["k_composer"], row["k_score"], row["k_ratio"] = (head_name(top[0][0]), *top[0][1:]) if top else (None,) * 3
    if found is not None:
        feeder = found.feeding(h, 1)
        row["feeder"], row["feeder_drop"] = (head_name(feeder[0][0]), feeder[0][1]) if feeder else (None, NAN)
        row["feeder_is_previous_token"] = bool(feeder) and feeder[0][0] in previous
        if evidence is not None and feeder:
            k = evidence.composition("k")[evidence.heads.index(h), evidence.heads.index(feeder[0][0])]
            row["feeder_k_ratio"] = float(k) / evidence.baseline
            row["agree"] = row["k_composer"] == row["feeder"]
            row["explained"] = row["feeder_is_previous_token"] and row["feeder_k_ratio"] > 1
    return row


def _row_text(h: Head, r: dict) -> str:
    parts = []
    if "ov_copying" in r:
        ratio = NAN if r["k_ratio"] is None else r["k_ratio"]
        parts.append(f"OV copying {r['ov_copying']:+.2f}, top K-composer {r['k_composer']} ({ratio:.1f}x baseline)")
    if r.get("feeder") is not None:
        prev = "a previous-token head" if r["feeder_is_previous_token"] else "not a previous-token head"
        parts.append(f"circuit's top feeder {r['feeder']} ({prev})")
    return f"{head_name(h)}: " + (", ".join(parts) or "nothing measured")
