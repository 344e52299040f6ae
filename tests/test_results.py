"""DetectionResult / HeadScore: round trips, JSON files, pandas, and clear errors on foreign input."""

import json
import math
from pathlib import Path

import pytest
from fake_results import probe_score

from induction_nb import (
    DetectionResult,
    HeadScore,
    InputError,
    RetrievalResult,
    ScanResult,
    TextScanResult,
    create_analysis_report,
    load_result,
)


def _result(threshold=0.4) -> DetectionResult:
    scores = []
    for layer in range(2):
        for head in range(3):
            v = 0.9 if (layer, head) == (1, 2) else 0.1 * head
            scores.append(
                probe_score(
                    layer,
                    head,
                    v,
                    v,
                    1.0,
                    0.05 * layer,
                    None if head == 0 else 0.1,
                    0.2,
                    v,
                    v - 0.05,
                    min(1.0, v + 0.05),
                )
            )
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
    assert math.isnan(again.score(0, 0).duplicate_token), "undefined (no scored query) is NaN; None means not measured"


def test_nan_becomes_null_and_back():
    s = probe_score(0, 0, float("nan"), 0.0, 0.0, 0.0, None, 0.0, 0.0, 0.0, 0.0)
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
        ("[1, 2]", "not an induction_nb detection result"),
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
        (
            lambda d: d["head_scores"][0].update(overall_score="abc"),
            "head score L0H0: metric 'overall_score' must be a number, got 'abc'",
        ),
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


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d["head_scores"][0].update({"Spline!": 0.3}), "L0H0: 'Spline!' is not a metric name"),
        (lambda d: d["head_scores"][0].update(ci_low="x"), "L0H0"),
        (lambda d: d["head_scores"][0].pop("overall_score"), "L0H0 has no 'overall_score'"),
        (lambda d: d.update(kind="astrology"), "unknown kind 'astrology'"),
    ],
)
def test_damaged_version_3_entries(edit, match):
    d = _result().to_dict()
    assert d["version"] == 3 and d["kind"] == "probe" and d["metrics"][0] == "overall_score"
    edit(d)
    with pytest.raises(InputError, match=match):
        DetectionResult.from_dict(d)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(seed=float("inf")), "seed must be an integer"),
        (lambda d: d["model"].update(n_layers=float("inf")), "model.n_layers must be an integer >= 0"),
        (lambda d: d["model"].update(n_layers=2.7), "model.n_layers must be an integer >= 0, got 2.7"),
        (lambda d: d["model"].update(n_heads=-4), "model.n_heads must be an integer >= 0, got -4"),
        (lambda d: d["model"].update(name=None), "model.name must be a string, got None"),
        (lambda d: d.update(threshold="0.4"), "threshold must be a finite number, got '0.4'"),
        (lambda d: d.update(threshold=True), "threshold must be a finite number, got True"),
        (lambda d: d.update(version=True), "version True is not supported"),
        (lambda d: d.update(model="toy"), "model must be an object"),
    ],
)
def test_fields_of_the_wrong_json_type_are_refused_not_coerced(edit, match):
    d = _result().to_dict()
    edit(d)
    with pytest.raises(InputError, match=match):
        DetectionResult.from_dict(d)


@pytest.mark.parametrize("version", [1, 3])
def test_a_huge_damaged_grid_is_an_error_not_a_memory_blow_up(version):
    d = _result().to_dict()
    d.update(version=version, head_scores=[])
    d["model"].update(n_layers=100_000, n_heads=100_000)
    d["model"].pop("heads_per_layer")
    if version == 1:
        d["settings"]["kind"] = "probe"
    with pytest.raises(InputError, match=r"0 head scores for 100000 x 100000 heads"):
        DetectionResult.from_dict(d)


def test_effects_must_be_finite_and_a_damaged_retrieval_file_still_prints():
    with pytest.raises(InputError, match=r"no finite value \(NaN or inf\) for heads .*L0H0"):
        _result().with_causal_effects([[float("inf")] * 3] * 2)
    retrieval = RetrievalResult(_result().head_scores, 0.1, "toy", 2, 3, {"needle_accuracy": None})
    assert "Needle accuracy: nan" in repr(retrieval) + create_analysis_report(retrieval)


def test_a_metric_this_session_has_not_registered_is_kept_with_a_warning(tmp_path):
    """A file from a session with the user's own metric registered loads elsewhere: the metric's values are
    kept (and saved again) with a warning naming it, never dropped in silence."""
    d = _result().to_dict()
    for entry in d["head_scores"]:
        entry["sink_share"] = 0.25
    with pytest.warns(UserWarning, match=r"not registered: sink_share; they are kept but not shown") as caught:
        result = DetectionResult.from_dict(d)
    assert caught[0].filename == __file__, "the warning points at the caller's line"
    assert all(s.values["sink_share"] == 0.25 for s in result.head_scores)
    assert "sink_share" not in result.metrics, "not shown until registered"
    with pytest.warns(UserWarning, match="sink_share"):
        again = load_result(result.save(tmp_path / "r.json"))
    assert again == result


# --- the result kinds and the files earlier versions wrote (tests/data/make_v2_results.py) ------------------

DATA = Path(__file__).resolve().parent / "data"
KINDS = {"probe": DetectionResult, "text": TextScanResult, "retrieval": RetrievalResult}
MEASURED = {  # what each kind of scan measures (the registry's metrics it carries)
    "probe": {
        "overall_score",
        "prefix_matching",
        "contrast",
        "copying",
        "previous_token",
        "duplicate_token",
        "diagonal",
        "causal_effect",
    },
    "text": {"overall_score", "prefix_matching", "copying", "previous_token", "duplicate_token", "diagonal"},
    "retrieval": {"overall_score"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_version_2_files_load_as_their_kind_with_their_numbers(kind):
    path = DATA / f"v2_{kind}.json"
    stored = json.loads(path.read_text())
    result = load_result(path)
    assert type(result) is KINDS[kind] and set(result.metrics) == MEASURED[kind]
    assert "kind" not in result.settings, "the kind is the type now"
    for entry, score in zip(stored["head_scores"], result.head_scores):
        for name in result.metrics:
            want = float("nan") if entry[name] is None else entry[name]
            assert score.values[name] == pytest.approx(want, nan_ok=True), (kind, score.name, name)
        assert (score.ci_low, score.ci_high) == (entry["ci_low"], entry["ci_high"])
    again = ScanResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert type(again) is KINDS[kind] and again == result, "a version 3 round trip keeps the kind and numbers"


@pytest.mark.parametrize("kind", ["text", "retrieval"])
def test_loading_one_kind_as_another_says_how(kind):
    with pytest.raises(InputError, match=rf"holds a {KINDS[kind].__name__} .*load_result\(path\)"):
        DetectionResult.load(DATA / f"v2_{kind}.json")


def test_the_same_scans_give_the_numbers_version_2_wrote(tmp_path):
    """No numerical change: the probe and text scans of tests/data/make_v2_results.py, run now, give the
    numbers induction_nb wrote before the metric registry (within float summation order)."""
    import torch
    from tiny_models import make_hf, save_with_words

    from induction_nb import detect_induction_heads, detect_on_text, load_model

    probe = detect_induction_heads(make_hf("llama_gqa", "eager"), batch_size=4, sequence_length=24, n_bootstrap=50)
    text = detect_on_text(
        load_model(save_with_words(tmp_path)),
        ["t5 t6 t7 t8 t5 t6 t7 t9 t5", "t10 t11 t10 t11 t10", "t3 t4 t12 t13 t14 t15 t3 t4 t12 t16 t17 t3"],
        n_bootstrap=50,
    )
    for kind, now in (("probe", probe), ("text", text)):
        before = load_result(DATA / f"v2_{kind}.json")
        for name in set(now.metrics) & set(before.metrics) - {"causal_effect"}:
            got = torch.tensor(now.score_matrix(name))
            torch.testing.assert_close(
                got, torch.tensor(before.score_matrix(name)), atol=1e-6, rtol=0, equal_nan=True, msg=f"{kind} {name}"
            )
        ci = [x for s in now.head_scores for x in (s.ci_low, s.ci_high)]
        assert ci == pytest.approx([x for s in before.head_scores for x in (s.ci_low, s.ci_high)], abs=1e-6), kind
