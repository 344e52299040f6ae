"""causal.evidence: Olsson et al.'s lines of evidence as one report.

Ground truth: the hand-built transformer (analysis.toy), whose L0H0 is a previous-token head and whose L1H0
is an induction head reading it by K-composition and copying (L1H1 attends by position alone and writes
nothing). Every number of the report is checked against the public tool called alone, by running the call
the report records."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from induction_nb import HandBuiltInduction, InputError
from induction_nb.analysis import HeadScore, detect_induction_heads, weight_evidence
from induction_nb.causal import EvidenceReport, evidence, evidence_lines, evidence_report, find_circuit, icl_score


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the probes' "the model has 48 positions" notes
        yield


@pytest.fixture(scope="module")
def toy():
    return HandBuiltInduction(period=16)


@pytest.fixture(scope="module")
def report(toy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return evidence_report(toy)


def _rerun(text: str, model) -> object:
    """Run a recorded call (``icl_score(model, ...)``) with the public tools."""
    tools = {"icl_score": icl_score, "find_circuit": find_circuit, "weight_evidence": weight_evidence}
    tools["detect_induction_heads"] = detect_induction_heads
    return eval(text, {**tools, "model": model})  # the report's own call strings


def test_every_number_of_line_3_is_icl_score_called_alone(toy, report):
    three = report.line(3)
    clean, ind, knock, *rand = [_rerun(c, toy) for c in three.calls]
    assert three.values["clean"] == clean and three.values["induction"] == ind and three.values["knockout"] == knock
    assert [{k: r[k] for k in ("repeated", "natural")} for r in three.values["random"]] == rand
    assert len(rand) == 5 and all(c.startswith("icl_score(model, ablate=") for c in three.calls)
    assert three.value == ind["repeated"] - clean["repeated"]
    changes = [r["repeated"] - clean["repeated"] for r in rand]
    assert three.interval == (min(changes), max(changes)) and three.baseline == pytest.approx(sum(changes) / 5)
    assert three.values["change"]["repeated"]["knockout"] == knock["repeated"] - clean["repeated"]
    # the random sets are other heads, never the induction or the previous-token head, as many as the heads
    assert all(len(r["heads"]) == 1 and r["heads"][0] not in ([1, 0], [0, 0]) for r in three.values["random"])


def test_every_number_of_lines_5_and_the_heads_is_the_tool_called_alone(toy, report):
    five, row = report.line(5), report.head(1, 0)
    evidence, circuit = (_rerun(c, toy) for c in five.calls)
    assert row["ov_copying"] == evidence.ov_copying[(1, 0)] == five.value
    (top, score, ratio), *_ = evidence.composing((1, 0), 1)
    assert (row["k_composer"], row["k_score"], row["k_ratio"]) == (f"L{top[0]}H{top[1]}", score, ratio)
    (feeder, drop), *_ = circuit.feeding((1, 0), 1)
    assert (row["feeder"], row["feeder_drop"]) == (f"L{feeder[0]}H{feeder[1]}", drop)
    detection = _rerun(report.settings["detection_call"], toy)
    assert detection.induction_heads == [(1, 0)] and list(report.heads) == [(1, 0)]
    s = detection.score(1, 0)
    assert row["overall_score"] == s.overall_score and row["overall_interval"] == [s.ci_low, s.ci_high]


def test_the_hand_built_model_supports_lines_3_and_5_and_names_its_previous_token_head(report):
    three, five = report.line(3), report.line(5)
    assert three.verdict == "supports" and three.value > 0.5 and three.interval[1] < 0.05
    assert three.values["share_removed"]["repeated"] > 0.9 and three.values["change"]["repeated"]["knockout"] > 0.5
    assert five.verdict == "supports" and report.head(1, 0)["feeder"] == "L0H0" == report.head(1, 0)["k_composer"]
    assert report.head(1, 0)["feeder_is_previous_token"] and report.head(1, 0)["agree"]
    assert five.values["agreement"] == 1.0 and five.values["share_explained"] == 1.0
    assert [report.line(n).verdict for n in (1, 2, 4, 6)] == ["not measured"] * 4
    assert "pass formation=" in report.line(1).detail and "pass smeared=" in report.line(2).detail
    assert report.line(4).detail.count("needs a tokenizer") == 2  # no tokenizer: concept and fuzzy


def test_a_head_that_does_not_induce_is_not_supported(toy):
    r = evidence_report(toy, heads=[(1, 1)], concept=False, fuzzy=False, n_random=3)
    assert r.line(3).verdict == "against" and abs(r.line(3).value) < 0.05  # a positional head that writes nothing
    assert r.line(5).verdict != "supports" and r.settings["heads_from"] == "heads= given"


def test_the_report_survives_a_json_round_trip_and_differs_where_a_number_does(report, tmp_path):
    loaded = EvidenceReport.load(report.save(tmp_path / "evidence.json"))
    assert loaded == report and math.isnan(loaded.line(1).value)  # NaN equal to NaN
    assert loaded.head(1, 0) == report.head(1, 0) and loaded.line(3).calls == report.line(3).calls
    changed = report.to_dict()
    changed["lines"][2]["value"] += 1e-9
    assert EvidenceReport.from_dict(changed) != report
    with pytest.raises(InputError, match="not an evidence report"):
        EvidenceReport.from_dict({"format": "something else"})


def test_text_and_repr_say_each_line(report):
    text = report.text(width=90)
    assert "(3) ablation: SUPPORTS" in text and "(5) mechanism: SUPPORTS" in text and "call: icl_score(model" in text
    assert "L1H0" in repr(report) and "3: supports" in repr(report) and len(repr(report)) < 300
    assert str(report) == report.text()


def test_an_unknown_head_names_the_fix(report):
    with pytest.raises(InputError, match=r"L0H1 is not one of the report's induction heads \(L1H0\); pass heads="):
        report.head(0, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "knockout"}, "use one of mean, zero"),
        ({"n_random": 0}, "n_random must be an integer in"),
        ({"threshold": 1.5}, "threshold must be a number in"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"sequence_length": 1}, "sequence_length must be an integer >= 2"),
        ({"concept": "yes"}, "concept must be True or False"),
        ({"heads": "L1H0"}, r"heads must be a list of \(layer, head\) pairs"),
        ({"heads": [(5, 0)]}, "out of range"),
        ({"others": "gpt2"}, "others must be"),
        ({"others": {1: None}}, "names must be strings"),
    ],
)
def test_bad_arguments_raise_input_error_naming_the_fix(toy, kwargs, message):
    with pytest.raises(InputError, match=message):
        evidence_report(toy, **{**dict(concept=False, fuzzy=False, weights=False, circuit=False), **kwargs})


def test_the_model_is_unchanged_and_the_report_repeats_for_a_seed(toy, report):
    before = {k: v.clone() for k, v in toy.state_dict().items()}
    rng = torch.get_rng_state()
    again = evidence_report(toy)
    assert again == report and torch.equal(torch.get_rng_state(), rng) and not toy.training
    assert all(torch.equal(before[k], v) for k, v in toy.state_dict().items())


def test_skipped_parts_and_no_induction_head_say_so(toy):
    r = evidence_report(toy, concept=False, fuzzy=False, weights=False, circuit=False, n_random=1)
    assert "skipped (concept=False)" in r.line(4).detail and r.line(5).verdict == "not measured"
    assert "skipped (weights=False)" in r.line(5).detail and r.line(3).verdict == "supports"
    none = evidence_report(toy, threshold=1.0)
    assert none.heads == () and none.per_head == {}
    assert all(none.line(n).detail.startswith("not measured: no induction head at threshold 1.0") for n in (3, 4, 5))


def test_others_give_a_row_per_model_each_its_own_report(toy):
    other = HandBuiltInduction(period=16, seed=1)
    settings = dict(concept=False, fuzzy=False, n_random=2)
    r = evidence_report(toy, others={"small": other}, **settings)
    rows = r.line(6).values["rows"]
    assert list(rows) == ["HandBuiltInduction", "small"] and list(r.others) == ["small"]
    assert r.others["small"] == evidence_report(other, **settings)  # the same call alone
    assert rows["small"]["line3"] == "supports" and rows["small"]["icl_change"] == r.others["small"].line(3).value
    assert r.line(6).verdict == "supports" and r.line(6).value == 1.0 and rows["small"]["line5"] == "supports"
    assert "evidence_report(others['small'], method='mean', n_random=2" in r.line(6).calls[0]
    # a list is named by the models' names, kept apart from this model's
    assert list(evidence._named_others([other, other], "HandBuiltInduction")) == [
        "HandBuiltInduction #2",
        "HandBuiltInduction #3",
    ]


def test_generality_is_the_mean_over_the_heads_against_the_median_of_all(monkeypatch, toy):
    """Line 4's arithmetic on stand-in scans (the hand-built model has no tokenizer)."""
    grid = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.9, 0.1, 0.2, 0.3]])

    class Fuzzy:
        scores, ci_low, ci_high = grid, grid - 0.05, grid + 0.05

    monkeypatch.setattr(evidence_lines, "fuzzy_copy", lambda model, seed: Fuzzy)
    line, per_head = evidence_lines.generality_line(toy, [(1, 0)], True, False, True, 0)
    assert line.value == pytest.approx(0.9) and line.baseline == pytest.approx(0.25) and line.verdict == "supports"
    assert line.interval == pytest.approx((0.85, 0.95)) and per_head[(1, 0)]["fuzzy"] == pytest.approx(0.9)
    assert line.calls == ("fuzzy_copy(model, seed=0)",) and "skipped (concept=False)" in line.detail


def test_generality_is_inconclusive_where_the_two_scores_disagree(monkeypatch, toy):
    """Concept induction against (the heads below the median), fuzzy copying for: the line says neither."""
    fuzzy = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.9, 0.1, 0.2, 0.3]])

    class Fuzzy:
        scores, ci_low, ci_high = fuzzy, fuzzy - 0.05, fuzzy + 0.05

    class Concept:
        head_scores = [
            HeadScore(l, h, {"overall_score": 0.0, "concept_induction": 0.1 if (l, h) == (1, 0) else 0.5},
                      intervals={"concept_induction": (0.0, 0.6)})
            for l in range(2) for h in range(4)
        ]  # fmt: skip

    monkeypatch.setattr(evidence_lines, "fuzzy_copy", lambda model, seed: Fuzzy)
    monkeypatch.setattr(evidence_lines, "concept_induction", lambda model, effects, seed: Concept)
    line, per_head = evidence_lines.generality_line(toy, [(1, 0)], True, True, True, 0)
    assert line.verdict == "inconclusive" and line.values["headline"] == "fuzzy" and line.value == pytest.approx(0.9)
    assert line.values["concept"]["verdict"] == "against" and line.values["fuzzy"]["verdict"] == "supports"
    assert per_head[(1, 0)]["concept"] == pytest.approx(0.1) and per_head[(1, 0)]["concept_interval"] == [0.0, 0.6]
    assert line.calls == ("concept_induction(model, effects=None, seed=0)", "fuzzy_copy(model, seed=0)")
