"""Views of an evidence report (``causal.evidence_report``; Olsson, Elhage, Nanda et al. 2022, "In-context
Learning and Induction Heads", arXiv 2209.11895): the one-page summary figure for a paper (``plot_evidence``: one
panel per line of evidence, titled with its verdict) and the evidence of one head as text and as the HTML the
explorer shows (``text_evidence_head``, ``evidence_head_html``).

The report is read through its attributes only (``model_name``, ``heads``, ``lines``, ``per_head``, ``others``;
each line's ``number``, ``name``, ``verdict``, ``detail``, ``value``, ``interval``, ``values``), so a report read
back with ``EvidenceReport.load`` draws the same, with no model.
"""

from __future__ import annotations

import html
import math
import textwrap
from typing import Any

from .._validate import is_int
from ..errors import InputError
from .style import BLUE, GREY, HIGHLIGHT, panel_axes, pyplot, style

__all__ = ["plot_evidence", "text_evidence_head", "evidence_head_html", "check_report", "VERDICT_COLOURS"]

VERDICT_COLOURS = {"supports": BLUE, "against": HIGHLIGHT, "inconclusive": GREY, "not measured": "#a6acaf"}
_HEAD_LINES = (3, 4, 5)  # the lines measured on the report's induction heads
_NEVER = "never"


def check_report(report: Any, where: str) -> Any:
    """``report`` if it reads as an evidence report, else ``InputError`` naming ``where`` and the fix."""
    if not all(hasattr(report, k) for k in ("model_name", "heads", "lines", "per_head")):
        raise InputError(
            f"{where} takes an evidence report (evidence_report(model) or EvidenceReport.load(path)), "
            f"got {type(report).__name__}"
        )
    return report


def _name(head: Any) -> str:
    return f"L{head[0]}H{head[1]}"


def _num(x: Any, fmt: str = "+.3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, fmt) if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _lines(report: Any) -> dict[int, Any]:
    return {x.number: x for x in report.lines}


# -- the figure ------------------------------------------------------------------------------------------------


def plot_evidence(report: Any, axes: Any = None) -> Any:
    """The one-page summary of ``report``: six panels, one per line of evidence, each titled ``(n) name:
    verdict`` in the verdict's colour (supports blue, against orange, inconclusive grey), into ``axes`` (six
    Axes, e.g. a 2 x 3 array) or a new figure 7.2 x 4.8 inches. (1) the ICL score (nats) over the checkpoints,
    the induction heads' rise window shaded; (2) per seed, the step at which induction heads formed with plain
    and with smeared keys ("never" at the top edge); (3) the ICL-score change (nats; positive = less in-context
    learning) with the induction heads removed, their induction edges knocked out, and each random head set;
    (4) the heads' mean concept-induction and fuzzy-copy scores with their intervals against the median of all
    heads; (5) per induction head, its OV copying and the K-composition ratio (to the random baseline) of its
    top feeder, the feeder named above; (6) the verdicts of lines 3-5 on this model and each other model. A line
    not measured gets a panel that gives the reason. Raises ``InputError`` for anything but a report or fewer
    than six Axes. Returns the Figure.

    Args:
        report: an ``EvidenceReport`` (``evidence_report(model)``, or ``EvidenceReport.load(path)``: it draws the
            same with no model), or any object with its attributes (``model_name``, ``heads``, ``lines``,
            ``per_head``).
        axes: six matplotlib Axes to draw lines (1)-(6) into, in order: a sequence or an array of any shape (a 2 x 3
            grid is read in row order); Axes after the sixth are left alone. ``None`` (default): a new 2 x 3 figure,
            7.2 x 4.8 inches, titled with the model's name and its induction heads (the first six).

    Returns:
        Figure: the figure of the panels (``axes[0].figure`` where ``axes`` is given), one panel per line of
            evidence as above.

    Raises:
        InputError: when ``report`` does not read as an evidence report, or when ``axes`` holds fewer than six
            Axes.

    Examples:
        >>> from induction_nb import HandBuiltInduction, evidence_report, plot_evidence
        >>> model = HandBuiltInduction()  # L1H0 is an induction head, fed by L0H0
        >>> report = evidence_report(  # lines (1), (2), (4) and (6) need checkpoints, seeds and other models
        ...     model, concept=False, fuzzy=False, n_random=2, sequence_length=32, batch_size=2
        ... )
        >>> fig = plot_evidence(report)
        >>> [ax.get_title() for ax in fig.axes]
        ['(1) co-occurrence: not measured', '(2) co-perturbation: not measured', '(3) ablation: supports',
         '(4) generality: not measured', '(5) mechanism: supports', '(6) continuity: not measured']
    """
    check_report(report, "plot_evidence")
    if axes is not None:
        axes = panel_axes(axes, 6, "plot_evidence")
    plt = pyplot()
    lines = _lines(report)
    with style():
        if axes is None:
            fig, grid = plt.subplots(2, 3, figsize=(7.2, 4.8), layout="constrained")
            axes = list(grid.flat)
            heads = ", ".join(_name(h) for h in report.heads[:6]) + (" ..." if len(report.heads) > 6 else "")
            fig.suptitle(f"Evidence for induction heads: {report.model_name} (heads: {heads or 'none'})", fontsize=9)
        for number, ax in zip(range(1, 7), axes):
            _panel(ax, number, lines.get(number), report)
    return axes[0].figure


_DRAW = {}  # number -> the function that draws a measured line's panel (filled below)


def _panel(ax: Any, number: int, line: Any, report: Any) -> None:
    verdict = "not measured" if line is None else line.verdict
    title = f"({number}) {'' if line is None else line.name}: {verdict}"
    ax.set_title(title, color=VERDICT_COLOURS.get(verdict, "black"), fontsize=8)
    if line is None or verdict == "not measured":
        _say(ax, "not measured\n" + ("this line is not in the report" if line is None else _reason(line.detail)))
        return
    try:
        _DRAW[number](ax, line, report)
    except (KeyError, TypeError, ValueError, IndexError) as e:  # a line whose values lack what its panel needs
        ax.clear()
        ax.set_title(title, color=VERDICT_COLOURS.get(verdict, "black"), fontsize=8)
        _say(ax, f"{line.detail}\n(no figure: {type(e).__name__} {e})")


def _reason(detail: str) -> str:
    return detail.replace("not measured: ", "")


def _say(ax: Any, text: str) -> None:
    """A panel of text only: the reason, wrapped to the panel."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    text = text if len(text) <= 400 else text[:399] + "\u2026"
    wrapped = "\n".join(textwrap.fill(p, 36, break_long_words=False) for p in text.split("\n"))
    ax.text(0.5, 0.5, wrapped, ha="center", va="center", fontsize=6.5, color=GREY, transform=ax.transAxes)


def _co_occurrence(ax: Any, line: Any, report: Any) -> None:
    v = line.values
    steps, icl = list(v["steps"]), list(v["icl"])
    log = bool(v.get("log_steps"))  # the formation scan's own reading of its checkpoints' spacing
    x = [max(s, 1) for s in steps] if log else steps
    ax.plot(x, icl, color=BLUE, marker="o", markersize=2.5, linewidth=1.2, label="ICL score")
    if "best" in v:  # the best head's induction score, on its own [0, 1] axis
        right = ax.twinx()
        right.spines["right"].set_visible(True)
        right.plot(x, list(v["best"]), color=HIGHLIGHT, linewidth=1.0, label="best induction score")
        right.set_ylim(0, 1)
        right.set_ylabel("best induction score", fontsize=6)
    if "start" in v and "end" in v:
        span = (max(v["start"], 1), v["end"]) if log else (v["start"], v["end"])
        kind = "phase change" if v.get("abrupt") else "rise (gradual)"
        ax.axvspan(*span, color=HIGHLIGHT, alpha=0.18 if v.get("abrupt") else 0.07, linewidth=0, label=kind)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("ICL score (nats)")
    ax.legend(fontsize=6, frameon=False, loc="lower left")


def _co_perturbation(ax: Any, line: Any, report: Any) -> None:
    formed, seeds = line.values["formed"], list(line.values.get("seeds") or range(len(line.values["formed"]["plain"])))
    finite = [s for k in ("plain", "smeared") for s in formed[k] if s is not None]
    top = 1.15 * max(finite) if finite and max(finite) > 0 else 1.0
    for key, colour, marker, dx in (("plain", GREY, "o", -0.12), ("smeared", HIGHLIGHT, "s", 0.12)):
        ys = [top if s is None else s for s in formed[key]]
        ax.scatter([i + dx for i in range(len(ys))], ys, color=colour, marker=marker, s=14, label=f"{key} keys")
    ax.axhline(top, color=GREY, linewidth=0.5, linestyle=":")
    ax.text(0.99, top, _NEVER, transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=6, color=GREY)
    ax.set_ylim(0, top * 1.12)
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= top / 1.1])  # no step ticks beyond "never"
    ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
    ax.set_xlabel("seed")
    ax.set_ylabel("step induction heads formed")
    ax.legend(fontsize=6, frameon=False, loc="lower right")


def _ablation(ax: Any, line: Any, report: Any) -> None:
    change = line.values["change"]["repeated"]
    random = list(change["random"])
    ax.axhline(0, color="black", linewidth=0.6)
    ax.scatter([0], [change["induction"]], color=HIGHLIGHT, s=18, zorder=3)
    ax.scatter([1], [change["knockout"]], color="#7a0177", marker="^", s=18, zorder=3)
    if random:
        xs = [2 + 0.25 * (i / max(1, len(random) - 1) - 0.5) for i in range(len(random))]
        ax.scatter(xs, random, color=GREY, marker="x", s=14, zorder=3)
    ax.set_xticks([0, 1, 2], ["heads\nremoved", "edges\nknocked out", f"random sets\n(n={len(random)})"])
    ax.set_xlim(-0.6, 2.6)
    ax.set_ylabel("ICL-score change (nats)\n+ = less in-context learning")


def _generality(ax: Any, line: Any, report: Any) -> None:
    labels = ["induction heads (mean, interval)", "all heads (median)"]
    for x, key in enumerate(("concept", "fuzzy")):
        part = line.values.get(key) or {}
        if not part.get("measured"):
            blend = ax.get_xaxis_transform()
            ax.text(x, 0.5, "not\nmeasured", ha="center", va="center", fontsize=6, color=GREY, transform=blend)
            continue
        mean, low, high = part["mean"], part["low"], part["high"]
        yerr = [[max(0.0, mean - low)], [max(0.0, high - mean)]]
        ax.errorbar([x], [mean], yerr=yerr, color=HIGHLIGHT, marker="o", markersize=4, capsize=2, label=labels[0])
        ax.scatter([x + 0.2], [part["median"]], color=GREY, marker="_", s=80, linewidths=1.5, label=labels[1])
        labels = ["_nolegend_"] * 2  # one legend entry each
    ax.set_xticks([0, 1], ["concept\ninduction", "fuzzy\ncopy"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylabel("score")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.4 * (high - low))  # room for the legend above the data
    ax.legend(fontsize=6, frameon=False, loc="upper center")


def _mechanism(ax: Any, line: Any, report: Any) -> None:
    rows = line.values["per_head"]
    names = [n for n, r in rows.items() if "ov_copying" in r or "feeder" in r]
    if not names:
        raise ValueError("no head has OV copying or a feeder")
    width = 0.38
    ov = [_finite(rows[n].get("ov_copying")) for n in names]
    ratio = [_finite(rows[n].get("feeder_k_ratio", rows[n].get("k_ratio"))) for n in names]
    xs = list(range(len(names)))
    ax.bar([x - width / 2 for x in xs], ov, width, color=HIGHLIGHT, label="OV copying")
    ax.bar([x + width / 2 for x in xs], ratio, width, color=BLUE, label="feeder's K-comp. / random")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.axhline(1, color=BLUE, linewidth=0.5, linestyle=":")
    many = len(names) > 6
    for x, n in zip(xs, names):
        r = rows[n]
        feeder = r.get("feeder") or r.get("k_composer") or "?"
        mark = "*" if r.get("feeder_is_previous_token") else ""
        top = max(0.0, ov[x], ratio[x])
        ax.annotate(
            f"{feeder}{mark}",
            (x, top),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=5 if many else 6,
            rotation=90 if many else 0,
        )
    ax.set_xticks(xs, names, rotation=90 if many else 0, fontsize=5 if many else 7)
    ax.set_xlim(-0.5 - 0.5 * (len(names) < 3), len(names) - 0.5 + 0.5 * (len(names) < 3))
    ax.set_ylim(min(0.0, *ov, *ratio) - 0.1, max(1.0, *ov, *ratio) * 1.6)
    ax.set_ylabel("OV copying; K-comp. ratio")
    ax.set_xlabel("induction head (its top feeder above; * previous-token head)")
    ax.legend(fontsize=5.5, frameon=False, loc="upper center", ncols=2, handlelength=1, columnspacing=0.8)


def _finite(x: Any) -> float:
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _continuity(ax: Any, line: Any, report: Any) -> None:
    """The verdicts of lines 3-5 per model: from the line's rows, else from the reports themselves."""
    rows = line.values.get("rows") or {}
    table = {n: [r.get(f"line{k}", "not measured") for k in _HEAD_LINES] for n, r in rows.items()}
    if not table:
        reports = {report.model_name: report, **dict(getattr(report, "others", {}) or {})}
        table = {
            n: [_lines(r)[k].verdict if k in _lines(r) else "not measured" for k in _HEAD_LINES]
            for n, r in reports.items()
        }
    from matplotlib.patches import Rectangle

    short = {"inconclusive": "inconcl.", "not measured": "not meas."}
    for i, verdicts in enumerate(table.values()):
        for j, verdict in enumerate(verdicts):
            colour = VERDICT_COLOURS.get(verdict, "white")
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white", linewidth=1.5))
            ink = "white" if verdict in ("supports", "against", "inconclusive") else "black"
            ax.text(j + 0.5, i + 0.5, short.get(verdict, verdict), ha="center", va="center", fontsize=6, color=ink)
    ax.set_xlim(0, len(_HEAD_LINES))
    ax.set_ylim(len(table), 0)
    ax.set_xticks([j + 0.5 for j in range(len(_HEAD_LINES))], [f"({k})" for k in _HEAD_LINES])
    ax.set_yticks([i + 0.5 for i in range(len(table))], [_short(n, 20) for n in table])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("line of evidence")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


_DRAW.update({1: _co_occurrence, 2: _co_perturbation, 3: _ablation, 4: _generality, 5: _mechanism, 6: _continuity})


# -- one head --------------------------------------------------------------------------------------------------

_FIELDS = (  # (key, label, format); intervals are added to the value they belong to
    ("overall_score", "overall score", ".3f"),
    ("prefix_matching", "prefix matching", ".3f"),
    ("previous_token", "previous token", ".3f"),
    ("copying", "copying", ".3f"),
    ("concept", "concept induction", ".3f"),
    ("fuzzy", "fuzzy copy", ".3f"),
    ("ov_copying", "OV copying", "+.3f"),
    ("k_composer", "top K-composer", ""),
    ("k_score", "its K-composition", ".4f"),
    ("k_ratio", "its K-comp. / random", ".2f"),
    ("feeder", "circuit's top feeder", ""),
    ("feeder_drop", "its removal: prefix-matching drop", "+.3f"),
    ("feeder_is_previous_token", "feeder is a previous-token head", ""),
    ("feeder_k_ratio", "feeder's K-comp. / random", ".2f"),
    ("agree", "weights' top = circuit's feeder", ""),
    ("explained", "explained (prev-token feeder, K-comp.)", ""),
)
_INTERVALS = {"overall_score": "overall_interval", "concept": "concept_interval", "fuzzy": "fuzzy_interval"}


def _head_rows(numbers: dict) -> list[tuple[str, str]]:
    """(label, value) of a head's numbers: the known fields in order, then any others by their key."""
    known = {k for k, _, _ in _FIELDS} | set(_INTERVALS.values())
    rows = []
    for key, label, fmt in (*_FIELDS, *((k, k.replace("_", " "), ".3f") for k in numbers if k not in known)):
        if key not in numbers:
            continue
        value = numbers[key]
        text = ("yes" if value else "no") if isinstance(value, bool) else _num(value, fmt) if fmt else str(value)
        interval = numbers.get(_INTERVALS.get(key, ""))
        if isinstance(interval, (list, tuple)) and len(interval) == 2:
            text += f" [{_num(interval[0], fmt)}, {_num(interval[1], fmt)}]"
        rows.append((label, text))
    return rows


def _head_numbers(report: Any, layer: int, head: int) -> dict | None:
    numbers = report.per_head.get((layer, head), report.per_head.get(_name((layer, head))))
    return None if numbers is None else dict(numbers)


def _checked(report: Any, layer: Any, head: Any, where: str) -> tuple[int, int]:
    check_report(report, where)
    if not (is_int(layer) and is_int(head)):
        raise InputError(f"layer and head must be integers, got {layer!r} and {head!r}")
    return int(layer), int(head)


def _not_measured(report: Any, layer: int, head: int) -> str:
    names = ", ".join(_name(h) for h in report.heads)
    only = f"measured only the induction heads {names}" if names else "found no induction heads to measure"
    fix = "pass heads=[...] to evidence_report to measure it"
    return f"L{layer}H{head}: this evidence report ({report.model_name}) {only}; {fix}"


def _head_verdicts(report: Any, layer: int, head: int) -> list[tuple[Any, str]]:
    """(line, what it says) of the lines measured on the report's heads, where this head is one of them."""
    if (layer, head) not in {tuple(h) for h in report.heads}:
        return []
    lines = _lines(report)
    out = []
    for k in _HEAD_LINES:
        if k in lines:
            x = lines[k]
            value = "" if x.verdict == "not measured" else f" (value {_num(x.value)})"
            out.append((x, f"({k}) {x.name}: {x.verdict}{value}"))
    return out


def text_evidence_head(report: Any, layer: int, head: int, width: int = 80) -> str:
    """The evidence of head ``(layer, head)`` in ``report`` as plain text: its numbers (``report.head``: the
    induction score with its interval, concept and fuzzy scores, OV copying, top K-composer, the circuit's top
    feeder) and, where it is one of ``report.heads``, the verdicts of the lines measured on those heads (3-5).
    A head the report did not measure gets one line saying which heads it measured. ``InputError`` for
    anything but a report or non-integer ``layer``/``head``.

    Args:
        report: an ``EvidenceReport`` (``evidence_report(model)`` or ``EvidenceReport.load(path)``).
        layer: the head's layer index (an integer).
        head: the head's index within its layer (an integer).
        width: the line width in characters the rows and verdicts are wrapped to (default 80; rows never
            narrower than their label plus 12 characters).

    Returns:
        str: a title line ``EVIDENCE OF L{layer}H{head} (Olsson et al. 2022): {model}``, one row per number
            (label, value, interval where there is one), and the verdicts of lines (3)-(5) where the head is one
            of ``report.heads``; for a head the report did not measure, the wrapped sentence that names the heads
            it measured and the fix (``heads=[...]`` to ``evidence_report``).

    Raises:
        InputError: when ``report`` does not read as an evidence report, or when ``layer`` or ``head`` is not
            an integer.

    Examples:
        >>> from induction_nb import HandBuiltInduction, evidence_report, text_evidence_head
        >>> model = HandBuiltInduction()  # L1H0 is an induction head, fed by L0H0
        >>> report = evidence_report(model, concept=False, fuzzy=False, n_random=2, sequence_length=32, batch_size=2)
        >>> print(text_evidence_head(report, 1, 0))
        EVIDENCE OF L1H0 (Olsson et al. 2022): HandBuiltInduction
          overall score  0.865 [0.865, 0.865]
          ...
          circuit's top feeder  L0H0
          ...
          lines measured on the induction heads, this one among them:
            (3) ablation: supports (value ...)
            (4) generality: not measured
            (5) mechanism: supports (value +1.000)
        >>> print(text_evidence_head(report, 0, 1))  # a head the report did not measure
        L0H1: this evidence report (HandBuiltInduction) measured only the induction
        heads L1H0; pass heads=[...] to evidence_report to measure it
    """
    layer, head = _checked(report, layer, head, "text_evidence_head")
    numbers = _head_numbers(report, layer, head)
    if numbers is None:
        return textwrap.fill(_not_measured(report, layer, head), max(width, 20), break_long_words=False)
    out = [f"EVIDENCE OF L{layer}H{head} (Olsson et al. 2022): {report.model_name}"]
    rows = _head_rows(numbers)
    pad = max((len(label) for label, _ in rows), default=0) + 2
    out += [
        textwrap.fill(f"  {label:<{pad}}{text}", max(width, pad + 12), subsequent_indent=" " * (pad + 2))
        for label, text in rows
    ]
    verdicts = _head_verdicts(report, layer, head)
    if verdicts:
        out.append("  lines measured on the induction heads, this one among them:")
        out += [textwrap.fill(text, max(width, 30), initial_indent="    ") for _, text in verdicts]
    return "\n".join(out)


def evidence_head_html(report: Any, layer: int, head: int) -> str:
    """``text_evidence_head`` as HTML (a table and the verdicts coloured), for the explorer's evidence panel;
    a head the report did not measure gets a note, not an error."""
    layer, head = _checked(report, layer, head, "evidence_head_html")
    numbers = _head_numbers(report, layer, head)
    title = f"<b>evidence (Olsson et al. 2022) of L{layer}H{head}</b>"
    if numbers is None:
        note = html.escape(_not_measured(report, layer, head))
        return f"<div class='inb-evidence'>{title}<br><small>{note}</small></div>"
    rows = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in _head_rows(numbers))
    verdicts = "".join(
        f"<li style='color:{VERDICT_COLOURS.get(x.verdict, 'black')}'>{html.escape(text)}</li>"
        for x, text in _head_verdicts(report, layer, head)
    )
    listed = f"<small>lines measured on the induction heads:</small><ul>{verdicts}</ul>" if verdicts else ""
    return f"<div class='inb-evidence'>{title}<table class='inb-evidence-table'>{rows}</table>{listed}</div>"
