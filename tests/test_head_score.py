"""``HeadScore``: a head's metrics as one mapping, checked on the way in (a silent wrong score is the worst
bug), equal where NaN meets NaN (a saved result with undefined metrics loads back equal), and readable as
attributes under the registry's one spelling."""

import json
import math
import pickle

import numpy as np
import pytest
import torch

from induction_nb import HeadScore
from induction_nb.analysis.head_score import HeadBehavior
from induction_nb.errors import InputError
from induction_nb.metrics import RESERVED


def _score(**values):
    return HeadScore(1, 2, {"overall_score": 0.5, "prefix_matching": float("nan"), **values}, 0.4, 0.6)


def test_nan_meets_nan_in_equality_hash_and_a_json_round_trip():
    a, b = _score(), _score()
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1, "NaN (undefined) equals NaN"
    back = HeadScore.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back == a and back.to_dict()["prefix_matching"] is None, "NaN is stored as null"
    assert pickle.loads(pickle.dumps(a)) == a
    assert a != _score(prefix_matching=0.1) and a != _score(copying=0.2)
    assert a != HeadScore(1, 2, a.values, 0.4, float("nan")), "the interval counts"


def test_metrics_read_as_attributes_with_one_spelling():
    s = _score(copying=0.75)
    assert s.copying == 0.75 and math.isnan(s.prefix_matching) and math.isnan(s.induction_score)
    assert s.previous_token is None, "a registered metric the scan did not measure reads as None"
    with pytest.raises(AttributeError, match="has no 'spline'; its metrics: overall_score, prefix_matching"):
        _ = s.spline
    assert list(s.values) == ["overall_score", "prefix_matching", "copying"], "in the registry's order"
    assert s.with_values(copying=0.1).copying == 0.1 and s.copying == 0.75, "frozen; with_values copies"


@pytest.mark.parametrize(
    "args, match",
    [
        ((1.0, 2, {"overall_score": 0.5}), "layer must be an integer, got 1.0"),
        ((1, True, {"overall_score": 0.5}), "head must be an integer, got True"),
        ((1, 2, [0.5]), r"values must be a mapping \{metric name: value\}, got list"),
        ((1, 2, {"prefix_matching": 0.5}), "L1H2 has no 'overall_score'"),
        ((1, 2, {"overall_score": "0.5"}), "L1H2: metric 'overall_score' must be a number, got '0.5'"),
        ((1, 2, {"overall_score": 0.5, "Prefix": 0.1}), "L1H2: 'Prefix' is not a metric name"),
        ((1, 2, {"overall_score": 0.5, "layer": 3}), "L1H2: 'layer' is not a metric name"),
        ((1, 2, {"overall_score": 0.5}, "low"), "L1H2: metric 'ci' must be a number, got 'low'"),
    ],
)
def test_bad_scores_are_refused_with_what_is_wrong(args, match):
    with pytest.raises(InputError, match=match):
        HeadScore(*args)


def test_none_is_undefined_and_numbers_of_any_kind_are_floats():
    s = HeadScore(0, 0, {"overall_score": np.float32(0.25), "copying": torch.tensor(0.5), "diagonal": None})
    assert s.overall_score == 0.25 and s.copying == 0.5 and math.isnan(s.diagonal)
    assert all(type(v) is float for v in s.values.values())


def test_numpy_integers_are_stored_as_ints_so_json_takes_them():
    s = HeadScore(np.int64(1), np.int32(0), {"overall_score": 0.5})
    assert type(s.layer) is int and type(s.head) is int and json.loads(json.dumps(s.to_dict()))["layer"] == 1


def test_no_metric_name_can_hide_a_head_field_or_method():
    """A metric is read as an attribute, so its name must not be one the score types use themselves (nor
    one nnsight adds to every object)."""
    import nnsight  # noqa: F401

    used = {n for t in (HeadScore, HeadBehavior) for n in dir(t) if not n.startswith("_")}
    used |= {f for t in (HeadScore, HeadBehavior) for f in t.__dataclass_fields__}
    assert used <= RESERVED, f"add to metrics.RESERVED: {sorted(used - RESERVED)}"
