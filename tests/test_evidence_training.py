"""Lines (1) and (2) of the evidence report: the verdict rules on hand-made scans, and the numbers equal
the formation scan and the smeared-keys comparison they read."""

from types import SimpleNamespace

import pytest
import torch

from induction_nb import InputError, SmearedKeysComparison, evidence_report, formation, train_induction_model
from induction_nb.causal.evidence_training import training_lines
from induction_nb.causal.phase_change import rise_window

STEPS = list(range(100, 1100, 100))


def _scan(best, icl):
    w = rise_window(STEPS, best, icl)
    return SimpleNamespace(steps=tuple(STEPS), icl=torch.tensor(icl), best=torch.tensor(best), window=w)


def _comparison(plain, smeared, icl_plain=None, icl_smeared=None):
    seeds = tuple(range(len(plain)))
    icl = {"plain": icl_plain or plain, "smeared": icl_smeared or smeared}
    return SmearedKeysComparison(seeds, 2, 2000, 100, 1.0, {"plain": plain, "smeared": smeared}, icl, (), (), {})


JUMP = [0.05, 0.05, 0.06, 0.05, 0.07, 0.85, 0.9, 0.9, 0.91, 0.9]


@pytest.mark.parametrize(
    "best, icl, verdict",
    [
        (JUMP, [-0.1, -0.1, -0.1, -0.1, -0.1, -1.9, -2.0, -2.0, -2.0, -2.0], "supports"),  # 95% in 11% of steps
        (JUMP, [-0.1 - 0.2 * i for i in range(10)], "against"),  # a phase change, the gain spread evenly
        (JUMP, [-0.1, -1.0, -1.9, -2.0, -2.0, -2.0, -2.0, -2.0, -2.0, -2.0], "against"),  # gain before the heads
        ([0.05 + 0.09 * i for i in range(10)], [-0.2 * i for i in range(10)], "inconclusive"),  # gradual rise
        ([0.1] * 10, [-0.2 * i for i in range(10)], "against"),  # ICL improves with no induction head
        ([0.1] * 10, [-0.1] * 10, "inconclusive"),
    ],
)
def test_co_occurrence_verdicts(best, icl, verdict):
    one, _ = training_lines(_scan(best, icl), None)
    assert one.number == 1 and one.verdict == verdict
    w = _scan(best, icl).window
    if w is not None and w.icl_share == w.icl_share:
        assert one.value == w.icl_share and one.baseline == w.share


@pytest.mark.parametrize(
    "plain, smeared, icl_smeared, verdict",
    [
        ([700, 1200, 900], [300, 300, 300], None, "supports"),
        ([None, None, None], [300, 400, 300], None, "supports"),  # one layer: only with smeared keys
        ([700, 1200, 900], [300, 300, 300], [800, 1300, 1000], "inconclusive"),  # heads earlier, ICL gain not
        ([300, 300, 900], [700, 700, 300], None, "against"),
        ([700, 300, 900], [300, 700, 300], None, "inconclusive"),
    ],
)
def test_co_perturbation_verdicts(plain, smeared, icl_smeared, verdict):
    _, two = training_lines(None, _comparison(plain, smeared, icl_smeared=icl_smeared))
    assert two.number == 2 and two.verdict == verdict


def test_not_measured_and_refused():
    one, two = training_lines(None, None)
    assert (one.verdict, two.verdict) == ("not measured", "not measured") and "formation=" in one.detail
    with pytest.raises(InputError, match="formation\\(checkpoints\\)"):
        training_lines(object(), None)
    with pytest.raises(InputError, match="compare_smeared_keys"):
        training_lines(None, object())


def test_the_report_reads_a_real_scan():
    run = train_induction_model(0, steps=30, every=10, batch_size=8)
    f = formation(run, cache_dir=False, batch_size=4, n_bootstrap=20)
    report = evidence_report(run.model, heads=[(1, 0)], formation=f, n_random=1, concept=False, fuzzy=False)
    line = report.line(1)
    assert line.values["icl"] == [float(v) for v in f.icl] and line.values["best"] == [float(v) for v in f.best]


def test_line_3_needs_in_context_learning_and_line_5_an_earlier_layer():
    import sys

    sys.path.insert(0, "tests")
    from tiny_models import make_hf

    from induction_nb import HandBuiltInduction, compare_smeared_keys

    random_model = make_hf("llama_gqa")  # no in-context learning to remove: never "supports"
    r = evidence_report(random_model, heads=[(1, 0), (1, 3)], n_random=2, batch_size=4, sequence_length=24)
    assert r.line(3).verdict == "inconclusive" and "no in-context learning" in r.line(3).detail
    hand = evidence_report(HandBuiltInduction(), heads=[(0, 0)], n_random=1, concept=False, fuzzy=False)
    assert hand.line(5).verdict == "not measured" and "first attention layer" in hand.line(5).detail
    with pytest.raises(InputError, match="not seed="):
        compare_smeared_keys(seeds=[0], steps=2, every=1, seed=3)


def test_random_sets_leave_out_every_detected_induction_head():
    from induction_nb import HandBuiltInduction

    # at threshold 0 every head is detected: with heads= naming one, no other head may enter a random set
    r = evidence_report(HandBuiltInduction(), heads=[(1, 0)], threshold=0.0, n_random=1, concept=False, fuzzy=False)
    assert r.line(3).values["pool"] == [] and "only 0 other heads" in r.line(3).detail


def test_a_wrong_formation_fails_before_any_forward_and_calls_hold_the_settings():
    from induction_nb import HandBuiltInduction

    run = train_induction_model(0, steps=20, every=10, batch_size=8)
    with pytest.raises(InputError, match="formation\\(checkpoints\\)"):
        evidence_report(HandBuiltInduction(), formation=run)  # the run, not formation(run)
    _, two = training_lines(None, _comparison([700, 900, 800], [300, 300, 300]))
    assert "icl_drop=1.0" in two.calls[0] and "n_layers=2" in two.calls[0]
    f = formation(run, cache_dir=False, batch_size=4, n_bootstrap=20)
    one, _ = training_lines(f, None)
    assert "batch_size=4" in one.calls[0] and "log_steps=False" in one.calls[0]
