"""DetectionResult / HeadScore: round trips, JSON files, pandas, and clear errors on foreign input."""

import json
import math

import pytest

from induction_nb import DetectionResult, HeadScore, InputError


def _result(threshold=0.4) -> DetectionResult:
    scores = []
    for layer in range(2):
        for head in range(3):
            v = 0.9 if (layer, head) == (1, 2) else 0.1 * head
            scores.append(HeadScore(layer, head, v, v, 1.0, 0.05 * layer, None if head == 0 else 0.1, 0.2,
                                    v, v - 0.05, min(1.0, v + 0.05)))
    return DetectionResult(tuple(scores), threshold, "toy", 2, 3, {"sequence_length": 32}, seed=7)


def test_api_surface():
    r = _result()
    assert r.num_heads_detected == 1 and r.induction_heads == [(1, 2)]
    assert [s.name for s in r.get_top_heads(n=3)] == ["L1H2", "L0H2", "L0H1"]  # ties: lower layer first
    assert r.score(1, 2).induction_score == 0.9
    assert r.score_matrix("overall_score")[1][2] == 0.9
    assert r.previous_token_heads(0.04) == [(1, 0), (1, 1), (1, 2)]
    assert "1 induction heads" in r.summary()
    assert str(r) == repr(r) and repr(r).startswith("INDUCTION HEAD ANALYSIS REPORT")
    html = r._repr_html_()
    assert "L1H2" in html and html.count("<td title=") == 6 and "2px solid #e66100" in html
    with pytest.raises(InputError, match="L2H0 is out of range"):
        r.score(2, 0)
    with pytest.raises(InputError, match="unknown metric"):
        r.get_top_heads(metric="nonsense")


def test_dict_and_json_round_trip(tmp_path):
    r = _result()
    d = r.to_dict()
    json.dumps(d)  # JSON-safe
    assert d["format"] == "induction_nb.DetectionResult" and d["induction_heads"] == [[1, 2]]
    again = DetectionResult.from_dict(d)
    assert again == r
    path = r.save(tmp_path / "r.json")
    assert DetectionResult.load(path) == r
    assert again.score(0, 0).duplicate_token is None


def test_nan_becomes_null_and_back():
    s = HeadScore(0, 0, float("nan"), 0.0, 0.0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
    d = s.to_dict()
    assert d["prefix_matching"] is None
    assert math.isnan(HeadScore.from_dict(d).prefix_matching)


def test_dataframe():
    df = _result().to_dataframe()
    assert len(df) == 6 and df["detected"].sum() == 1
    assert {"layer", "head", "prefix_matching", "contrast", "copying", "overall_score", "ci_low"} <= set(df.columns)


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ('{"hello": 1}', "not an induction_nb detection result"),
        ('[1, 2]', "not an induction_nb detection result"),
        ('{"format": "induction_nb.DetectionResult", "version": 99}', "version 99 is not supported"),
        ('{"format": "induction_nb.DetectionResult", "version": 1, "model": {}}', "damaged detection result"),
    ],
)
def test_foreign_or_damaged_json(tmp_path, content, match):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        DetectionResult.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        DetectionResult.load(tmp_path / "absent.json")


def test_wrong_number_of_heads():
    d = _result().to_dict()
    d["head_scores"] = d["head_scores"][:-1]
    with pytest.raises(InputError, match="5 head scores for 2 x 3 heads"):
        DetectionResult.from_dict(d)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d["head_scores"][0].update(overall_score="abc"), "'overall_score' of L0H0 must be a number"),
        (lambda d: d["head_scores"][1].update(layer=7), "entry 1 is L7H1, expected L0H1"),
        (lambda d: d.update(threshold=7), "threshold 7.0 is outside"),
        (lambda d: d["head_scores"][2].update(head="x"), "'head' must be an integer"),
    ],
)
def test_damaged_values_are_caught(edit, match):
    d = _result().to_dict()
    edit(d)
    with pytest.raises(InputError, match=match):
        DetectionResult.from_dict(d)
