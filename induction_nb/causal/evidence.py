"""Olsson et al.'s lines of evidence for one model, as one call (Olsson, Elhage, Nanda et al. 2022, "In-context
Learning and Induction Heads", arXiv 2209.11895): ``evidence_report(model)`` returns an ``EvidenceReport``.

The paper argues from six lines: (1) induction heads form in a phase change together with the in-context-
learning (ICL) gain; (2) letting them form earlier (smeared keys) moves the gain with them; (3) removing them
at test time removes much of ICL; (4) the same heads do more abstract copying; (5) their mechanism is
understood (previous-token head, K-composition, copying OV circuit); (6) the picture holds across models.
Each line here is one number with an interval, the baseline it is read against and a verdict
(``"supports"``, ``"against"``, ``"inconclusive"``, ``"not measured"``), built by calling the public tools
(``detect_induction_heads``, ``icl_score``, ``concept_induction``, ``fuzzy_copy``, ``weight_evidence``,
``find_circuit``) exactly as a user would: every number equals the tool called alone with the recorded call
(``EvidenceLine.calls``), and the raw numbers are kept (``EvidenceLine.values``). The verdict rules are in
``causal.evidence_lines`` and ``causal.evidence_training``. Lines (1)-(2) need a formation scan over checkpoints and a
smeared-keys comparison (``formation=``, ``smeared=``); without them they read "not measured".
Limits: the induction heads are chosen on the model they are tested on (the detector at ``threshold``, or
``heads=``); line (3)'s random sets avoid the induction heads (those given and those detected) and the
previous-token heads (removing a
previous-token head removes the induction heads' input: it is part of the circuit, not a random head).
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from .._validate import check_choice, check_heads, check_int, check_probability
from ..analysis.detector import detect_induction_heads
from ..analysis.result_format import read_json, write_json
from ..engine.ablator import Ablator
from ..engine.engine import Engine
from ..errors import InputError
from .evidence_lines import (
    EvidenceLine,
    ablation_line,
    call,
    generality_line,
    head_name,
    line,
    mechanism_line,
    not_measured,
    plain,
)
from .evidence_training import training_lines

__all__ = ["EvidenceLine", "EvidenceReport", "evidence_report", "EvidenceMethod"]

Head = tuple[int, int]
EvidenceMethod = Literal["mean", "zero"]
FORMAT, VERSION = "induction_nb.evidence", 1


@dataclass(frozen=True, eq=False)
class EvidenceReport:
    """Olsson et al.'s six lines of evidence for induction heads in one model, each with a verdict.

    Returned by ``evidence_report``. Olsson et al.'s lines of evidence (arXiv 2209.11895) for
    ``model_name``: ``heads``, the induction heads measured; ``lines``, the ``EvidenceLine`` of each of
    (1)-(6); ``per_head``, ``{(layer, head): that head's numbers}`` (``head(layer, head)``); ``others``, the
    report of each other model (line 6); ``settings``, the arguments and the detection's call; ``seconds``,
    wall time per step (not compared). Two reports are equal where every other field is, NaN equal to NaN (so
    a ``save``/``load`` round trip gives an equal report).

    Also: ``line(n)`` (line ``n``, 1-6; ``InputError`` for another), ``verdicts`` (``{n: verdict}``),
    ``text(width)`` and ``str(report)`` (the plain-text report: per line its value, interval, baseline,
    verdict, detail and calls), ``to_dict``/``from_dict`` (plain JSON) and ``save(path)``/``load(path)``.

    Attributes:
        model_name: the model's name.
        heads: the induction heads measured, ``(layer, head)`` pairs: ``heads=`` as given, else the heads
            ``detect_induction_heads`` finds at ``threshold``.
        lines: the ``EvidenceLine`` of each of Olsson et al.'s lines (1)-(6), in order.
        per_head: ``{(layer, head): numbers}`` for each of ``heads``: its overall induction score and
            interval, prefix matching, previous-token and copying scores, concept and fuzzy scores, OV
            copying, top K-composer and the circuit's top feeder (where measured).
        others: ``{name: EvidenceReport}``: the report of each other model (line 6); ``{}`` for none.
        settings: the arguments (``method``, ``n_random``, ``threshold``, ``sequence_length``,
            ``batch_size``, ``seed``, the skip flags, ``requested_heads``), the detection's call, where the
            heads came from and the previous-token heads.
        seconds: ``{step: wall seconds}`` per step of the call (not compared).

    Examples:
        >>> import os, tempfile
        >>> from induction_nb import EvidenceReport, HandBuiltInduction, evidence_report
        >>> model = HandBuiltInduction()  # L1H0 induction head, L0H0 the previous-token head feeding it
        >>> report = evidence_report(model, n_random=1, sequence_length=32, batch_size=4, concept=False,
        ...                          fuzzy=False, weights=False, circuit=False)
        >>> report.heads, report.verdicts[3]
        (((1, 0),), 'supports')
        >>> print(report.text().splitlines()[0])
        EVIDENCE FOR INDUCTION HEADS (Olsson et al. 2022): HandBuiltInduction
        >>> round(report.head(1, 0)["prefix_matching"], 2)
        0.97
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = report.save(os.path.join(folder, "report.json"))
        ...     EvidenceReport.load(path) == report
        True
    """

    model_name: str
    heads: tuple[Head, ...]
    lines: tuple[EvidenceLine, ...]
    per_head: dict
    others: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "heads", tuple((int(l), int(h)) for l, h in self.heads))
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "per_head", {(int(l), int(h)): plain(v) for (l, h), v in self.per_head.items()})
        object.__setattr__(self, "settings", plain(dict(self.settings)))

    def line(self, number: int) -> EvidenceLine:
        """Line ``number`` (1-6); ``InputError`` for another."""
        for x in self.lines:
            if x.number == number:
                return x
        raise InputError(f"no line {number!r} in this report: Olsson et al.'s lines are numbered 1 to 6")

    @property
    def verdicts(self) -> dict[int, str]:
        return {x.number: x.verdict for x in self.lines}

    def head(self, layer: int, head: int) -> dict:
        """The numbers of one induction head of the report (its induction score and interval, concept and
        fuzzy scores, OV copying, top K-composer, the circuit's top feeder); ``InputError`` for another head."""
        key = (layer, head)
        if key not in self.per_head:
            names = ", ".join(head_name(h) for h in self.per_head) or "none"
            raise InputError(
                f"L{layer}H{head} is not one of the report's induction heads ({names}); pass heads=[...] to "
                "evidence_report to measure it"
            )
        return dict(self.per_head[key])

    def text(self, width: int = 100) -> str:
        """The plain-text report: one block per line (number, value, interval, baseline, verdict, detail, calls)."""
        check_int("width", width, 40)
        heads = ", ".join(head_name(h) for h in self.heads) or "none"
        out = [
            f"EVIDENCE FOR INDUCTION HEADS (Olsson et al. 2022): {self.model_name}",
            textwrap.fill(f"induction heads: {heads} ({self.settings.get('heads_from', '')})", width),
        ]
        for x in self.lines:
            base = "-" if x.baseline is None else _num(x.baseline)
            out += ["", f"({x.number}) {x.name}: {x.verdict.upper()}", _wrap(x.question, width)]
            out.append(
                f"    value {_num(x.value)}  interval [{_num(x.interval[0])}, {_num(x.interval[1])}]  baseline {base}"
            )
            out.append(_wrap(x.detail, width))
            out += [_wrap("call: " + c, width, "      ") for c in x.calls]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        verdicts = ", ".join(f"{n}: {v}" for n, v in self.verdicts.items())
        heads = ", ".join(head_name(h) for h in self.heads) or "none"
        others = f", {len(self.others)} other model(s)" if self.others else ""
        return f"EvidenceReport({self.model_name}, heads {heads}{others}; {verdicts})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (no tensors); ``from_dict`` reads it back."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "model_name": self.model_name,
            "heads": [list(h) for h in self.heads],
            "lines": [x.to_dict() for x in self.lines],
            "per_head": {head_name(h): v for h, v in self.per_head.items()},
            "others": {n: r.to_dict() for n, r in self.others.items()},
            "settings": self.settings,
            "seconds": plain(self.seconds),
        }

    @classmethod
    def from_dict(cls, d: Any) -> EvidenceReport:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise InputError("not an evidence report: save one with EvidenceReport.save(path)")
        if d.get("version") != VERSION:
            raise InputError(f"evidence report version {d.get('version')!r}; this induction_nb reads {VERSION}")
        try:
            per_head = {_parse_head(k): v for k, v in d["per_head"].items()}
            lines = tuple(EvidenceLine.from_dict(x) for x in d["lines"])
            others = {n: cls.from_dict(r) for n, r in d["others"].items()}
            return cls(d["model_name"], d["heads"], lines, per_head, others, d["settings"], d.get("seconds", {}))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"damaged evidence report: {type(e).__name__}: {e}") from None

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (NaN written as ``NaN``, as ``json`` does); ``load`` reads it back."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> EvidenceReport:
        """The report saved at ``path`` (``InputError`` where it cannot be read or is not a report)."""
        return cls.from_dict(read_json(path))

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, EvidenceReport):
            return NotImplemented
        return _canonical(self) == _canonical(other)

    __hash__ = None  # type: ignore[assignment]


def _canonical(report: EvidenceReport) -> str:
    def strip(d: dict) -> dict:
        return {**d, "seconds": None, "others": {n: strip(r) for n, r in d["others"].items()}}

    return json.dumps(strip(report.to_dict()), sort_keys=True)


def _parse_head(name: str) -> Head:
    layer, _, head = name[1:].partition("H")
    if not name.startswith("L") or not layer.isdigit() or not head.isdigit():
        raise ValueError(f"head name {name!r} is not L<layer>H<head>")
    return int(layer), int(head)


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:+.4g}"


def _wrap(text: str, width: int, indent: str = "    ") -> str:
    return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "  ", break_long_words=False)


def evidence_report(
    model: Any,
    *,
    heads: Sequence[Head] | None = None,
    formation: Any = None,
    smeared: Any = None,
    others: Mapping[str, Any] | Sequence[Any] = (),
    method: EvidenceMethod = "mean",
    n_random: int = 5,
    threshold: float = 0.4,
    sequence_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    concept: bool = True,
    fuzzy: bool = True,
    weights: bool = True,
    circuit: bool = True,
    progress: bool = False,
) -> EvidenceReport:
    """Olsson et al.'s lines of evidence for ``model`` (anything ``load_model`` accepts; left unchanged).

    Olsson, Elhage, Nanda et al. 2022 ("In-context Learning and Induction Heads", arXiv 2209.11895) argue
    from six lines: (1) induction heads form in a phase change together with the in-context-learning (ICL)
    gain; (2) letting them form earlier (smeared keys) moves the gain with them; (3) removing them at test
    time removes much of ICL; (4) the same heads do more abstract copying; (5) their mechanism is understood
    (previous-token head, K-composition, copying OV circuit); (6) the picture holds across models. Each line
    here is one number with an interval, the baseline it is read against and a verdict (``"supports"``,
    ``"against"``, ``"inconclusive"``, ``"not measured"``), built by calling the public tools
    (``detect_induction_heads``, ``icl_score``, ``concept_induction``, ``fuzzy_copy``, ``weight_evidence``,
    ``find_circuit``) exactly as a user would: every number equals the tool called alone with the recorded
    call (``EvidenceLine.calls``), and the raw numbers are kept (``EvidenceLine.values``). Lines (1)-(2) need
    a formation scan over checkpoints and a smeared-keys comparison (``formation=``, ``smeared=``); without
    them they read "not measured"; line (6) needs ``others``.

    Limits: the induction heads are chosen on the model they are tested on (the detector at ``threshold``,
    or ``heads=``); line (3)'s random sets avoid the induction heads (those given and those detected) and the
    previous-token heads (removing a previous-token head removes the induction heads' input: it is part of
    the circuit, not a random head). Lines (4)'s concept-induction and fuzzy-copying scans need a tokenizer.

    Cost: one detection, ``3 + n_random`` ICL scores, one concept-induction and one fuzzy-copy scan (two
    forwards each), the weights' evidence (no forward) and the circuit (one forward per few earlier heads);
    then the same per other model.

    Args:
        model: the model: anything ``load_model`` accepts (a Hugging Face model, an nnsight
            ``LanguageModel``/``NNsight``, a plain ``torch.nn.Module``, a name or path); left unchanged.
        heads: the induction heads to test, ``(layer, head)`` pairs (default: ``detect_induction_heads`` at
            ``threshold``; where it finds none, lines 3-5 read "not measured").
        formation: a formation scan (``formation(checkpoints)``'s ``FormationResult``) for line 1; ``None``:
            "not measured".
        smeared: a smeared-keys comparison (``compare_smeared_keys``' result) for line 2; ``None``: "not
            measured".
        others: ``{name: model}`` or a list of models (named by their name) for line 6, each measured with
            the same settings (its own induction heads); default none.
        method: how line 3 removes heads and line 5's circuit ablates: ``"mean"`` (default) or ``"zero"``
            (line 3 also knocks out the heads' induction edges).
        n_random: line 3's random head sets, 1-1000 (default 5).
        threshold: the detection's overall score (0-1) at or above which a head is an induction head
            (default 0.4); used where ``heads`` is not given.
        sequence_length: the probes' tokens per sequence (detection, ``icl_score``, ``find_circuit``; at
            least 2, and 24 for ``icl_score``); ``None`` for their defaults.
        batch_size: the probes' sequences (detection, ``icl_score``, ``find_circuit``; default 8).
        seed: seed of the probes, the random sets, ``concept_induction``, ``fuzzy_copy`` and
            ``weight_evidence`` (default 0).
        concept: measure concept induction for line 4 (``False`` skips it; its line says so).
        fuzzy: measure fuzzy copying for line 4 (``False`` skips it).
        weights: measure the weights' evidence (OV copying, K-composition) for line 5 (``False`` skips it).
        circuit: find the behavioural circuit (each head's top feeder) for line 5 (``False`` skips it).
        progress: print each step's wall time.

    Returns:
        EvidenceReport: the induction heads measured, the ``EvidenceLine`` of each of lines 1-6 (value,
        interval, baseline, verdict, detail, the calls that reproduce it and their raw numbers), each head's
        numbers, the other models' reports, the settings and the wall time per step.

    Raises:
        InputError: for bad arguments, before any forward: an unknown ``method``; a flag that is not ``True``
            or ``False``; ``n_random`` outside 1-1000; ``threshold`` outside [0, 1]; ``sequence_length < 2``;
            ``batch_size < 1``; a negative ``seed``; malformed ``heads``, a head named twice or heads the
            model lacks;
            ``others`` that is neither a mapping nor a list, or has names that are not strings;
            ``formation=`` or ``smeared=`` that is not a formation scan or a smeared-keys comparison (e.g. the
            ``TrainingRun`` instead of ``formation(run)``). Also what the tools refuse (e.g. a
            ``sequence_length`` the model cannot take, a model in training mode).
        ModelLoadError: when ``model`` or one of ``others`` is a name or path that cannot be loaded.
        AttentionNotFoundError: when no attention module can be found in the model.
        CaptureCheckError: when a captured pattern fails its self-check or reading the model inside a trace
            fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, evidence_report
        >>> model = HandBuiltInduction()  # L1H0 induction head, fed by the previous-token head L0H0
        >>> report = evidence_report(model, n_random=2, sequence_length=32, batch_size=4)
        >>> report.heads  # detected at threshold 0.4
        ((1, 0),)
        >>> report.verdicts  # no checkpoints, no tokenizer, no other models: lines 1, 2, 4, 6 not measured
        {1: 'not measured', 2: 'not measured', 3: 'supports', 4: 'not measured', 5: 'supports', 6: 'not measured'}
        >>> numbers = report.head(1, 0)
        >>> numbers["k_composer"], numbers["feeder"], numbers["feeder_is_previous_token"]
        ('L0H0', 'L0H0', True)
        >>> report.line(4).detail
        'concept: not measured: needs a tokenizer; fuzzy: not measured: needs a tokenizer'

        Lines 1-2 from training runs (seconds to minutes on a CPU):

        >>> from induction_nb import compare_smeared_keys, formation, train_induction_model  # doctest: +SKIP
        >>> run = train_induction_model(0)  # doctest: +SKIP
        >>> smeared = compare_smeared_keys(seeds=[0, 1])  # doctest: +SKIP
        >>> report = evidence_report(run.model, formation=formation(run), smeared=smeared)  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
        EVIDENCE FOR INDUCTION HEADS (Olsson et al. 2022): ...
    """
    settings = _check_settings(locals())
    trained = training_lines(formation, smeared)  # first: a wrong formation= fails before any forward
    engine = Engine.of(model)  # a name or path is loaded once, here
    named = _named_others(others, engine.name)
    clock = _Clock(progress, engine.name)
    lines, per_head, used, extra = _measure(engine.model, engine, settings, clock)
    reports = {}
    for name, other in named.items():
        reports[name] = evidence_report(other, **{**_settings_kwargs(settings), "progress": progress})
        clock.tick(f"other model {name}")
    lines = (*trained, *lines, _continuity_line(engine.name, lines, used, reports))
    return EvidenceReport(engine.name, used, lines, per_head, reports, {**settings, **extra}, clock.seconds)


_FLAGS = ("concept", "fuzzy", "weights", "circuit", "progress")
_ARGS = ("method", "n_random", "threshold", "sequence_length", "batch_size", "seed", *_FLAGS[:4])


def _check_settings(args: dict) -> dict:
    """The checked settings (``InputError`` naming the fix), before any forward."""
    check_choice("method", args["method"], get_args(EvidenceMethod))
    for name in _FLAGS:
        if not isinstance(args[name], bool):
            raise InputError(f"{name} must be True or False, got {args[name]!r}")
    if args["sequence_length"] is not None:
        check_int("sequence_length", args["sequence_length"], 2)
    return {
        "method": args["method"],
        "n_random": check_int("n_random", args["n_random"], 1, 1000),
        "threshold": check_probability("threshold", args["threshold"]),
        "sequence_length": args["sequence_length"],
        "batch_size": check_int("batch_size", args["batch_size"], 1),
        "seed": check_int("seed", args["seed"], 0),
        **{name: args[name] for name in _FLAGS[:4]},
        "requested_heads": None if args["heads"] is None else check_heads("heads", args["heads"], unique=True),
    }


def _settings_kwargs(settings: dict) -> dict:
    """The arguments an other model is measured with (its own induction heads)."""
    return {k: settings[k] for k in _ARGS}


def _named_others(others: Any, name: str) -> dict[str, Any]:
    """``{name: model}`` of line 6's models; names unique and not the main model's."""
    if isinstance(others, (str, bytes)) or not isinstance(others, (Mapping, Sequence)):
        raise InputError(
            f"others must be {{name: model}} or a list of models, e.g. others=[model_b], got {others!r:.80}"
        )
    if isinstance(others, Mapping):
        bad = [k for k in others if not isinstance(k, str)]
        if bad:
            raise InputError(f"others' names must be strings, got {bad[:3]!r}: pass others={{'name': model}}")
        items = list(others.items())
    else:
        items = [(e.name, e.model) for e in map(Engine.of, others)]  # loaded once
    taken, out = {name}, {}
    for given, other in items:
        unique, n = given, 1
        while unique in taken:
            n += 1
            unique = f"{given} #{n}"
        taken.add(unique)
        out[unique] = other
    return out


class _Clock:
    """Wall time per step (``seconds``), printed as it goes with ``progress``."""

    def __init__(self, progress: bool, name: str):
        self.progress, self.name, self.seconds, self.start = progress, name, {}, time.perf_counter()

    def tick(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(now - self.start, 3)
        self.start = now
        if self.progress:
            print(f"evidence_report({self.name}): {step} {self.seconds[step]:.1f} s", flush=True)


def _measure(model: Any, engine: Engine, s: dict, clock: _Clock):
    """Lines 3-5, the per-head numbers, the heads used and the settings the detection adds."""
    ab = Ablator(model)
    requested = None if s["requested_heads"] is None else ab.check_heads(s["requested_heads"])
    det_kwargs = dict(seed=s["seed"], batch_size=s["batch_size"], sequence_length=s["sequence_length"])
    det = detect_induction_heads(model, threshold=s["threshold"], **det_kwargs)
    extra = {"detection_call": call("detect_induction_heads", threshold=s["threshold"], **det_kwargs)}
    clock.tick("detection")
    used = requested if requested is not None else list(det.induction_heads)
    extra["heads_from"] = (
        "heads= given" if s["requested_heads"] is not None else f"detected at threshold {s['threshold']}"
    )
    previous = det.previous_token_heads()
    extra["previous_token_heads"] = previous
    per_head = {h: _detection_numbers(det, h) for h in used}
    if not used:
        why = f"not measured: no induction head at threshold {s['threshold']} (pass heads=[...] or a lower threshold=)"
        return tuple(not_measured(n, why) for n in (3, 4, 5)), per_head, used, extra
    detected = set(det.induction_heads)  # with heads= given, the other detected induction heads are not random
    pool = [h for h in ab.heads if h not in used and h not in previous and h not in detected]
    common = dict(sequence_length=s["sequence_length"], batch_size=s["batch_size"], seed=s["seed"])
    three = ablation_line(model, used, pool, s["method"], s["n_random"], common)
    clock.tick("line 3")
    four, numbers = generality_line(model, used, engine.tokenizer is not None, s["concept"], s["fuzzy"], s["seed"])
    clock.tick("line 4")
    five, rows = mechanism_line(model, used, previous, s["weights"], s["circuit"], {"method": s["method"], **common})
    clock.tick("line 5")
    for h in used:
        per_head[h].update(numbers.get(h, {}), **rows.get(h, {}))
    return (three, four, five), per_head, used, extra


def _detection_numbers(det: Any, head: Head) -> dict:
    try:
        s = det.score(*head)
    except InputError:
        return {}
    values = {"overall_score": s.values["overall_score"], "overall_interval": [s.ci_low, s.ci_high]}
    for name in ("prefix_matching", "previous_token", "copying"):
        if name in s.values:
            values[name] = s.values[name]
    return values


def _row(lines: Sequence[EvidenceLine], heads: Sequence[Head]) -> dict:
    """A model's compact row for line 6."""
    by = {x.number: x for x in lines}
    three, five = by[3], by[5]
    return {
        "heads": [head_name(h) for h in heads],
        "icl_change": three.value,
        "random_max": three.interval[1],
        "share_removed": three.values.get("share_removed", {}).get("repeated", math.nan),
        "ov_copying": five.value,
        **{f"line{n}": by[n].verdict for n in (3, 4, 5)},
    }


def _continuity_line(name: str, lines: Sequence[EvidenceLine], heads: Sequence[Head], reports: dict) -> EvidenceLine:
    """Line (6): lines 3-5 on each model (this one first). Value: the share of models whose lines 3 and 5 both
    support. Verdict: "supports" where every model's do, "against" where some model's line 3 or 5 is against,
    else "inconclusive"; "not measured" without ``others``."""
    if not reports:
        return not_measured(6, "pass others={name: model, ...} (e.g. trained tiny models of several sizes)")
    rows = {name: _row(lines, heads), **{n: _row(r.lines, r.heads) for n, r in reports.items()}}
    calls = [
        call("evidence_report", target=f"others[{n!r}]", **_settings_kwargs(r.settings)) for n, r in reports.items()
    ]
    both = [r["line3"] == "supports" and r["line5"] == "supports" for r in rows.values()]
    against = any("against" in (r["line3"], r["line5"]) for r in rows.values())
    verdict = "supports" if all(both) else "against" if against else "inconclusive"
    detail = "; ".join(
        f"{n}: {len(r['heads'])} head(s), ICL change {_num(r['icl_change'])} (random max {_num(r['random_max'])}), "
        f"line 3 {r['line3']}, line 4 {r['line4']}, line 5 {r['line5']}"
        for n, r in rows.items()
    )
    return line(6, sum(both) / len(both), (math.nan, math.nan), None, verdict, detail, calls, {"rows": rows})
