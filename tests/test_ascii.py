"""Terminal views: snapshots of every output, the width bound, windowing/downsampling, bad input.

Snapshots live in tests/snapshots/; a test run only compares. Regenerate them deliberately with
``make snapshots`` and review the diff.
"""

import re
from pathlib import Path

import pytest
import torch
from fake_results import probe_score

from induction_nb import (
    CircuitResult,
    DetectionResult,
    InputError,
    create_analysis_report,
    plot_attention_pattern,
    plot_head_scores,
    plot_induction_stripe,
    text_circuit,
    text_score_map,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"


def snapshot(name: str, text: str) -> None:
    import references

    path = SNAPSHOTS / f"{name}.txt"
    if references.UPDATE:
        path.write_text(text + "\n")
    assert path.exists(), references.missing(path)
    assert text + "\n" == path.read_text(), f"{name} differs from {path} (make snapshots to accept a deliberate change)"


def stripe_pattern(n: int = 12, period: int = 4, weight: float = 0.75) -> torch.Tensor:
    """Induction stripe at q - period + 1 for q >= period; the rest of each row spread uniformly."""
    A = torch.zeros(n, n)
    for q in range(n):
        if q >= period:
            A[q, : q + 1] = (1 - weight) / q
            A[q, q - period + 1] = weight
        else:
            A[q, : q + 1] = 1 / (q + 1)
    return A


def fake_result() -> DetectionResult:
    scores = []
    for layer in range(3):
        for head in range(4):
            v = {(2, 1): 0.82, (1, 3): 0.55, (2, 0): 0.31}.get((layer, head), 0.02 * (layer + head))
            prev = 0.9 if (layer, head) == (0, 2) else 0.01
            scores.append(probe_score(layer, head, v + 0.05, v + 0.01, 0.97, prev, 0.04, 0.1, v, v - 0.04, v + 0.03))
    return DetectionResult(tuple(scores), 0.4, "toy-model", 3, 4, {"sequence_length": 64, "batch_size": 8}, seed=11)


def big_result(n_layers: int = 12, n_heads: int = 12) -> DetectionResult:
    """>= 10 layers and heads: names of 4 to 6 characters (L2H1 ... L11H10), ~20 detected heads and many
    previous-token heads, so lists must wrap and columns must align across name widths."""
    scores = []
    for layer in range(n_layers):
        for head in range(n_heads):
            i = layer * n_heads + head
            v = 0.45 + 0.002 * i if (layer * 5 + head * 3) % 7 == 0 else 0.01 * ((layer + head) % 9)
            prev = 0.99 - 0.003 * i if (layer + head) % 5 == 0 else 0.02
            scores.append(probe_score(layer, head, v + 0.05, v + 0.01, 0.97, prev, 0.04, 0.1, v, v - 0.04, v + 0.03))
    return DetectionResult(tuple(scores), 0.4, "big-toy", n_layers, n_heads, {"sequence_length": 64}, seed=3)


def big_circuit() -> CircuitResult:
    edges = (((9, 0), (11, 10), 0.52), ((1, 2), (3, 11), 0.31), ((10, 3), (11, 10), 0.2), ((0, 7), (2, 1), 0.05))
    baseline = {(l, h): 0.5 + 0.01 * l for l, h in [(11, 10), (3, 11), (2, 1), (10, 3), (7, 0), (11, 11), (4, 4)]}
    return CircuitResult(edges, baseline, n_forward=1)


TOKENS = ["<s>", "A", "B", "C", "D", "A", "B", "C", "D", "A", "B", "\n"]  # period 4 after BOS


@pytest.mark.parametrize("charset", ["unicode", "ascii"])
def test_snapshots(charset):
    A = stripe_pattern()
    r = fake_result()
    snapshot(f"pattern_{charset}", plot_attention_pattern(A, tokens=TOKENS, width=60, charset=charset))
    snapshot(f"stripe_{charset}", plot_induction_stripe(A, period=4, tokens=TOKENS, charset=charset))
    snapshot(
        f"scores_{charset}", plot_head_scores([s.to_dict() for s in r.head_scores], top=6, width=60, charset=charset)
    )
    snapshot(f"map_{charset}", text_score_map(r, charset=charset))


def test_report_snapshots_and_original_headings():
    r = fake_result()
    brief = create_analysis_report(r, detailed=False)
    snapshot("report_brief", brief)
    lines = brief.splitlines()
    for heading in [
        "INDUCTION HEAD ANALYSIS REPORT",
        "==============================",
        "Model Info:",
        "n_layers: 3",
        "Detection Summary:",
        "Threshold: 0.40",
        "Heads detected: 2",
        "Top Heads by Score:",
    ]:
        assert heading in lines
    assert "L2H1: 0.820 [########--]" in lines
    detailed = create_analysis_report(r, detailed=True)
    snapshot("report_detailed", detailed)
    for part in [
        "Per-Head Metrics",
        "Layer x Head Map:",
        "Previous-Token Heads",
        "L0H2 0.90",
        "Settings:",
        "sequence_length: 64",
        "Seed: 11",
    ]:
        assert part in detailed


@pytest.mark.parametrize("width", [40, 57, 80, 120])
def test_never_wider_than_width(width):
    long = stripe_pattern(n=300, period=100)
    r = fake_result()
    outputs = [
        plot_attention_pattern(long, width=width),
        plot_attention_pattern(long, tokens=[f"tok{i}" for i in range(300)], width=width, charset="ascii"),
        plot_induction_stripe(long, period=100, width=width),
        plot_head_scores([s.to_dict() for s in r.head_scores], width=width),
        text_score_map(r, width=width),
        create_analysis_report(r, detailed=True, width=width),
        create_analysis_report(big_result(), detailed=True, width=width, charset="unicode"),
        text_score_map(big_result(), width=width, charset="ascii"),
        text_circuit(big_circuit(), width=width),
    ]
    for text in outputs:
        assert max(len(line) for line in text.splitlines()) <= width


def test_downsampling_keeps_a_one_cell_stripe_and_window_zooms():
    long = stripe_pattern(n=300, period=100, weight=0.9)
    text = plot_attention_pattern(long, width=80)
    assert "downsampled x5 (block max)" in text and any("█" in line for line in text.splitlines() if "│" in line)
    zoom = plot_attention_pattern(long, window=(100, 140), width=80)
    rows = [line for line in zoom.splitlines() if "│" in line]
    assert len(rows) == 40 and rows[0].startswith("100")
    # row q=110 (index 10) has its stripe at k = 11, i.e. column 11 - 100 ... outside the window; q=140 would be at 41
    assert all(len(r.split("│", 1)[1]) <= 40 for r in rows)


def test_tokens_are_escaped_and_text_displays_as_itself():
    text = plot_attention_pattern(stripe_pattern(), tokens=TOKENS)
    assert "\\n" in text and "\n11 \n" not in text
    assert repr(text) == str(text)


def test_many_heads_fall_back_to_one_character_cells():
    scores = tuple(
        probe_score(0, h, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0, 0.5 if h == 30 else 0.0, 0.0, 0.0) for h in range(40)
    )
    r = DetectionResult(scores, 0.4, "wide", 1, 40)
    text = text_score_map(r, width=40)
    assert "detected: L0H30" in text and max(map(len, text.splitlines())) <= 40


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: plot_attention_pattern(stripe_pattern(), width=39), "width must be an integer >= 40"),
        (lambda: plot_attention_pattern(torch.ones(3, 4)), "square"),
        (lambda: plot_attention_pattern(stripe_pattern(), tokens=["a"]), "tokens has 1 entries"),
        (lambda: plot_attention_pattern(stripe_pattern(), window=(5, 5)), "window"),
        (lambda: plot_attention_pattern(stripe_pattern(), charset="ebcdic"), "charset"),
        (lambda: plot_induction_stripe(stripe_pattern(), period=12), "period must be an integer in"),
        (lambda: plot_head_scores([]), "no head scores"),
        (lambda: plot_head_scores([{"layer": 0}]), "each score needs"),
        (lambda: plot_head_scores([{"layer": 0, "head": 0, "overall_score": 1}], threshold=2), "threshold"),
        (lambda: create_analysis_report(fake_result(), width=10), "width must be"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_words_longer_than_the_width_are_cut_not_looped_on():
    r = fake_result()
    long = DetectionResult(r.head_scores, r.threshold, "/" + "x" * 200, 3, 4, {"path": "y" * 150})
    for width in (40, 70):
        text = create_analysis_report(long, detailed=True, width=width)
        assert max(map(len, text.splitlines())) <= width
        assert "/" + "x" * 200 in "".join(text.split()), "the long name is wrapped whole, not cut off"


def test_tensor_tokens_label_as_ids_and_threshold_one_is_marked():
    text = plot_attention_pattern(stripe_pattern(), tokens=torch.arange(1000, 1012))
    assert "1003" in text and "tensor" not in text
    bars = plot_head_scores([{"layer": 0, "head": 0, "overall_score": 0.5}], threshold=1.0, charset="ascii")
    assert bars.splitlines()[1].endswith("|")


def test_stripe_with_bos_offset_skips_the_first_block_end():
    A = stripe_pattern(n=9, period=4)  # stripe for q >= 4; with a BOS the repeat starts at q = 5
    text = plot_induction_stripe(A, period=4, offset=1)
    assert "queries 5..8" in text


# -- the terminal-view faults a new user reported, each as a whole kind ---------------------------------

ZERO_PADDED = re.compile(r"L0\d|H0\d")  # L02H01, L18H06, map rows L02


def aligned(lines: list[str], pattern: str) -> bool:
    """The column where ``pattern``'s match ends is the same on every line (and there are several)."""
    ends = [re.match(pattern, line).end() for line in lines]
    return len(ends) > 2 and len(set(ends)) == 1


@pytest.mark.parametrize("charset", ["ascii", "unicode"])
def test_head_names_are_never_zero_padded_and_columns_still_align(charset):
    r, circuit = big_result(), big_circuit()
    bars = plot_head_scores([s.to_dict() for s in r.head_scores], top=None, charset=charset)
    report = create_analysis_report(r, detailed=True, top=30, charset=charset)
    wide, narrow = text_score_map(r, width=80, charset=charset), text_score_map(r, width=40, charset=charset)
    edges = text_circuit(circuit, charset=charset)
    for text in (bars, report, wide, narrow, edges):
        assert not ZERO_PADDED.search(text), ZERO_PADDED.search(text)
    assert "L11H10 " in bars and "L2H1 " in bars and "L0H0:" in report and "L11H5:" in report
    assert aligned(bars.splitlines()[1:], r"L\d+H\d+ +")  # the value column
    top = [line for line in report.splitlines() if re.match(r"L\d+H\d+: ", line)]
    assert len({len(re.match(r"\S+", line).group()) for line in top}) > 1, "names of several widths"
    assert aligned(top, r"L\d+H\d+: +")
    table = report.split("Per-Head Metrics (top heads):\n")[1].split("\n\n")[0].splitlines()
    assert aligned(table[1:], r"L\d+H\d+ +") and aligned(table[1:], r".*?\[") and aligned(table[1:], r".*?\] +")
    assert table[0].index("overall") == re.match(r"L\d+H\d+ +", table[1]).end()
    bar = {"ascii": "|", "unicode": "│"}[charset]
    for view in (wide, narrow):
        rows = [line for line in view.splitlines() if re.match(rf"L\d+ +{re.escape(bar)}", line)]
        assert len(rows) >= 12 and "L2 " in view and aligned(rows, rf"L\d+ +{re.escape(bar)}")
    arrows = [line for line in edges.splitlines() if re.match(r"L\d+H\d+ +-> ", line)]
    assert aligned(arrows, r"L\d+H\d+ +-> ") and aligned(arrows, r".*-> L\d+H\d+ +")


def section(text: str, first: str, stop: str) -> list[str]:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(first))
    j = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(stop))
    return lines[i:j]


def whole_on_one_line(entry: str, lines: list[str]) -> bool:
    return any(re.search(rf"(?<!\S){re.escape(entry)}(?!\S)", line) for line in lines)


@pytest.mark.parametrize("width", [40, 80])
def test_lists_of_heads_wrap_only_between_entries(width):
    r, circuit = big_result(), big_circuit()
    report = create_analysis_report(r, detailed=True, width=width)
    heads = section(report, "Induction heads:", "Top Heads by Score:")
    names = [f"L{l}H{h}" for l, h in r.induction_heads]
    assert len(names) >= 15 and len(heads) > 1, "the list is long enough to wrap"
    assert all(whole_on_one_line(name, heads) for name in names)
    prev = section(report, "Previous-Token Heads", "Settings:")[1:]
    entries = [f"L{l}H{h} {r.score(l, h).previous_token:.2f}" for l, h in r.previous_token_heads(0.4)[:8]]
    assert len(entries) == 8 and all(whole_on_one_line(e, prev) for e in entries), prev
    baseline = section(text_circuit(circuit, width=width), "baseline:", "L")
    assert all(whole_on_one_line(f"L{l}H{h} {v:.2f}", baseline) for (l, h), v in circuit.baseline.items())
    detected = section(text_score_map(r, width=40) + "\nend", "detected:", "key:")
    assert all(whole_on_one_line(name, detected) for name in names)
    for text in (report, "\n".join(baseline)):
        assert max(map(len, text.splitlines())) <= width


KEY_ENTRY = re.compile(r"'(.)' (?:<(\S+)|>=(\S+)|(\S+)-(\S+))")


def legend(text: str) -> dict[str, tuple[float, float]]:
    """The symbols named after ``key:`` with the value range each stands for."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("key: "))
    out = {}
    for m in KEY_ENTRY.finditer("\n".join(lines[i:])):
        below, above, lo, hi = m.group(2, 3, 4, 5)
        out[m.group(1)] = (-1e9, float(below)) if below else (float(above), 1e9) if above else (float(lo), float(hi))
    return out


def grid_cells(text: str, bar: str) -> list[str]:
    return [line.split(bar, 1)[1] for line in text.splitlines() if bar in line]


@pytest.mark.parametrize("charset,bar", [("ascii", "|"), ("unicode", "│")])
@pytest.mark.parametrize("width", [40, 80])
def test_every_symbol_is_named_in_a_key_that_matches_the_shading(charset, bar, width):
    values = sorted({*torch.linspace(0, 1, 21).tolist(), 0.049, 0.05, 0.3, 0.749, 0.899})  # < 35 rows: no pooling
    A = torch.tensor(values)[:, None].expand(len(values), len(values)).contiguous()  # row r: value r everywhere
    text = plot_attention_pattern(A, width=width, charset=charset)
    key = legend(text)
    assert len(key) >= 5 and max(map(len, text.splitlines())) <= width and "downsampled" not in text
    for value, row in zip(values, grid_cells(text, bar)):
        row = row.ljust(len(values))  # trailing blanks are stripped
        lo, hi = key[row[0]]
        assert set(row) == {row[0]} and lo <= value < hi, (value, row[0], key[row[0]])
    used = {c for row in grid_cells(text, bar) for c in row.ljust(len(values))}
    assert used == set(key), "every level is used, and nothing else"
    stripe = plot_induction_stripe(stripe_pattern(weight=0.3), period=4, width=width, charset=charset)
    spark = legend(stripe)
    line = next(x for x in stripe.splitlines() if x.startswith(f"stripe    {bar}"))
    assert len(spark) == 9 and spark[line[-1]][0] <= 0.3 < spark[line[-1]][1], (line, spark)
    full = fake_result()  # without L1H0: a '-' cell
    result = DetectionResult(tuple(s for s in full.head_scores if (s.layer, s.head) != (1, 0)), 0.4, "toy", 3, 4)
    grid = text_score_map(result, width=width, charset=charset)
    shades = legend(grid)
    assert "[x] detected" in grid and "'-' no such head" in grid and set(shades) == set(key)
    for view in (text, stripe, grid):  # no symbol is named twice (the ASCII shades once included '-')
        symbols = re.findall(r"'(.)' ", view[view.index("\nkey: ") :])
        assert len(symbols) == len(set(symbols)), symbols
    for layer, row in enumerate(r for r in grid.splitlines() if re.match(rf"L\d {re.escape(bar)}", r)):
        for head, cell in enumerate(row.split(bar, 1)[1].ljust(12)[1::3]):
            value = result.score_matrix()[layer][head]
            assert (cell == "-") if value != value else shades[cell][0] <= value < shades[cell][1], (layer, head)


def ruler_positions(text: str) -> tuple[int, dict[int, int], str]:
    """(first grid column, {key number: column it is printed at}, the tick line)."""
    lines = text.splitlines()
    rows = [i for i, line in enumerate(lines) if "│" in line or "|" in line]
    first = lines[rows[0]].index("│" if "│" in lines[rows[0]] else "|") + 1
    ticks, numbers = lines[rows[-1] + 1], lines[rows[-1] + 2]
    return first, {int(m.group()): m.start() for m in re.finditer(r"\d+", numbers)}, ticks


@pytest.mark.parametrize(
    "n,key,window,width,charset",
    [
        (300, 150, None, 80, "unicode"),  # downsampled x5
        (300, 100, None, 40, "ascii"),  # downsampled x9: key 100 lies inside column 11 (keys 99..107)
        (120, 60, (23, 83), 80, "ascii"),  # a window that starts between round keys
        (12, 10, None, 60, "unicode"),
    ],
)
def test_the_ruler_numbers_sit_at_the_key_columns(n, key, window, width, charset):
    A = torch.zeros(n, n)
    A[:, key] = 1.0  # every query on one known key: one hot column
    text = plot_attention_pattern(A, width=width, window=window, charset=charset)
    start = window[0] if window else 0
    factor = int(re.search(r"downsampled x(\d+)", text).group(1)) if "downsampled" in text else 1
    first, numbers, ticks = ruler_positions(text)
    hot = {
        line.index({"ascii": "@", "unicode": "█"}[charset])
        for line in text.splitlines()[1:]
        if "|" in line or "│" in line
    }
    assert hot == {numbers[key]}, (hot, numbers)
    assert len(numbers) >= 2 or n == 12
    for k, column in numbers.items():
        assert column - first == (k - start) // factor and ticks[column] == {"ascii": "^", "unicode": "╵"}[charset]


@pytest.mark.parametrize("charset,bar", [("ascii", "|"), ("unicode", "│")])
def test_near_zero_weights_are_blank_and_the_key_says_so(charset, bar):
    n = 40
    g = torch.Generator().manual_seed(0)
    A = torch.rand(n, n, generator=g).mul(0.049).tril()  # a causal head's spread: every weight < 0.05
    A[:, 0] = 0.3  # ... and a sink that is real signal
    text = plot_attention_pattern(A, width=80, charset=charset)
    rows = grid_cells(text, bar)
    assert len(rows) == n and all(row[0] != " " and row[1:].strip() == "" for row in rows)
    assert "' ' <0.05" in text


def test_wide_and_combining_labels_keep_the_grid_aligned():
    """CJK (2 columns each), a combining accent (0 columns) and ASCII: the bar stays in one column."""
    from induction_nb.draw.labels import display_width

    tokens = ["漢字", "e\u0301", "abc", "日本語テキスト長い"]
    text = plot_attention_pattern(torch.eye(4), tokens, 60)
    rows = [line for line in text.splitlines() if "│" in line and line.lstrip()[:1].isdigit()]
    assert len(rows) == 4 and len({display_width(r[: r.index("│")]) for r in rows}) == 1


def test_a_narrow_report_continues_its_metric_table_instead_of_wrapping_rows():
    result = fake_result()
    text = create_analysis_report(result, detailed=True, width=50)
    table = text.split("Per-Head Metrics (top heads):\n")[1].split("\n\nLayer x Head Map")[0]
    blocks = table.split("\n\n")
    assert len(blocks) == 2 and all(len(line) <= 50 for line in table.splitlines())
    headers = blocks[0].splitlines()[0].split() + blocks[1].splitlines()[0].split()
    assert headers == ["head", "overall", "95%", "CI", "prefix", "contrast", "head", "copying", "prev", "dup"]
    assert [line.split()[0] for line in blocks[1].splitlines()[1:]] == [s.name for s in result.get_top_heads(10)]


@pytest.mark.parametrize("width", range(40, 101))
def test_the_report_table_never_wraps_a_row(width):
    """At every width the table's rows stay whole: columns that do not fit continue in a second table."""
    result = fake_result().with_causal_effects([[0.1 * (l - h) for h in range(4)] for l in range(3)])
    text = create_analysis_report(result, detailed=True, width=width)
    table = text.split("Per-Head Metrics (top heads):\n")[1].split("\n\nLayer x Head Map")[0]
    for block in table.split("\n\n"):
        lines = block.splitlines()
        assert len(lines) == 1 + 10 and all(len(line) <= width for line in lines), (width, block)
        assert [line.split()[0] for line in lines[1:]] == [s.name for s in result.get_top_heads(10)]


SIGNED_ENTRY = re.compile(r"'(.)' (?:<(\S+)|>=(\S+)|(-\S+) to (\S+)|(\S+)-(\S+))")


def signed_result() -> DetectionResult:
    """``fake_result`` with ablation effects of both signs (nats): the signed metric the views must not
    squeeze into [0, 1]."""
    effects = [[-0.3 if (l + h) % 3 == 0 else 0.2 * h for h in range(4)] for l in range(3)]
    return fake_result().with_causal_effects(effects)


@pytest.mark.parametrize("charset,bar", [("ascii", "|"), ("unicode", "│")])
def test_a_signed_metric_is_shaded_on_both_sides_of_zero(charset, bar):
    result = signed_result()
    text = text_score_map(result, "causal_effect", width=80, charset=charset)
    assert text.startswith("causal_effect (nats, to |0.6|) by layer")
    key = {}
    for m in SIGNED_ENTRY.finditer(text[text.index("key: ") :]):
        below, above, lo, hi, lo2, hi2 = m.group(2, 3, 4, 5, 6, 7)
        lo, hi = (lo, hi) if lo is not None else (lo2, hi2)
        key[m.group(1)] = (-1e9, float(below)) if below else (float(above), 1e9) if above else (float(lo), float(hi))
    assert " to " in text and "--" not in text, "a negative range reads 'a to b', never 'a--b'"
    matrix = result.score_matrix("causal_effect")
    for layer, row in enumerate(r for r in text.splitlines() if re.match(rf"L\d {re.escape(bar)}", r)):
        for head, cell in enumerate(row.split(bar, 1)[1].ljust(12)[1::3]):
            lo, hi = key[cell]
            assert lo <= matrix[layer][head] < hi, (layer, head, cell, key[cell])
    assert {row.split(bar, 1)[1][1] for row in text.splitlines() if row.startswith("L0 ")} == {"x"}, "-0.3: 'x'"


def test_signed_bars_scale_to_the_largest_magnitude_and_mark_negatives():
    scores = [s.to_dict() for s in signed_result().head_scores]
    scores[0]["causal_effect"] = float("nan")
    text = plot_head_scores(scores, metric="causal_effect", width=60, charset="ascii")
    lines = text.splitlines()
    assert "bars to |0.6|, '=' below zero" in lines[0] and "threshold" not in lines[0]
    bars = {line.split()[0]: line.split()[2] if len(line.split()) > 2 else "" for line in lines if line[:1] == "L"}
    assert set(bars["L1H3"]) == {"#"} and set(bars["L1H2"]) == {"="}, "sign by fill"
    assert abs(len(bars["L1H2"]) - len(bars["L1H3"]) / 2) <= 1, "|-0.3| is half of 0.6"
    assert lines[-1].startswith("L0H0") and "nan" in lines[-1], "NaN sorts last"


@pytest.mark.parametrize("scale", [0.0, 2e-7])
def test_a_signed_map_of_zero_or_tiny_effects_keeps_zero_blank(scale):
    """All effects zero (or within 1e-6): zero-effect heads are blank and the key's ranges stay ordered."""
    effects = [[scale * (1 if h == 1 else -1 if h == 2 else 0) for h in range(4)] for _ in range(3)]
    text = text_score_map(fake_result().with_causal_effects(effects), "causal_effect", charset="ascii")
    cells = [row.split("|", 1)[1].ljust(12)[1::3] for row in text.splitlines() if re.match(r"L\d \|", row)]
    assert all(row[0] == " " and row[3] == " " for row in cells), cells
    if scale:  # below the 1e-6 floor of the scale: faint marks, never the strongest shades
        assert all(row[1] in ".o" and row[2] in ",x" for row in cells), cells
    assert "-0--0" not in text and "0-0 " not in text


@pytest.mark.parametrize("top", [0, -1, 2.5, "2", True])
def test_head_scores_top_must_be_a_positive_integer(top):
    scores = [s.to_dict() for s in fake_result().head_scores]
    with pytest.raises(InputError, match="top must be"):
        plot_head_scores(scores, top=top)


def test_signed_bars_stay_in_one_column_for_large_effects():
    effects = [[-150.0 if h == 2 else 3.0 * h for h in range(4)] for _ in range(3)]
    scores = [s.to_dict() for s in fake_result().with_causal_effects(effects).head_scores]
    text = plot_head_scores(scores, metric="causal_effect", width=60, top=None, charset="ascii")
    rows = [line for line in text.splitlines() if line.startswith("L") and line.split()[-1][0] in "#="]
    starts = {len(line) - len(line.split()[-1]) for line in rows}
    assert len(rows) == 9 and len(starts) == 1 and max(map(len, text.splitlines())) <= 60, text


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_circuit_edge_count_must_be_a_positive_integer(n):
    """``n=-1`` used to drop the weakest edge silently, ``n=0`` to say the circuit had no edges."""
    with pytest.raises(InputError, match="n must be a positive integer"):
        text_circuit(big_circuit(), n=n)
    with pytest.raises(InputError, match="n must be an integer >= 0"):
        big_circuit().top(-1)
    assert len(big_circuit().top(0)) == 0 and len(big_circuit().top(10)) == 4
