"""The small trainer: one layer forms an induction head with smeared keys and not without (two layers:
notebook 08 and bench/smeared_keys.py); checkpoint weights; smeared keys mixed as Olsson et al. describe."""

import pytest

from induction_nb import InputError, detect_induction_heads, train_induction_model


def test_one_layer_forms_induction_heads_only_with_smeared_keys():
    # bench/smeared_keys.py, seeds 0-4, 2000 steps: one layer with smeared keys first detects a head at step 300
    # in every seed, without them never; 500 steps leave a margin on the first and a wide one on the second
    smeared = train_induction_model(1, steps=500, every=100, n_layers=1, smeared_keys=True)
    plain = train_induction_model(1, steps=500, every=100, n_layers=1)
    assert smeared.phase_change_step is not None and plain.phase_change_step is None
    first, last = smeared.checkpoints[0], smeared.checkpoints[-1]
    assert last.induction_heads and all(layer == 0 for layer, _ in last.induction_heads)
    assert last.repeat_loss < 0.5 * first.repeat_loss and last.best_overall > 0.4
    assert detect_induction_heads(smeared.model, sequence_length=32).num_heads_detected >= 1
    assert plain.checkpoints[-1].best_overall < 0.4


def test_bad_input():
    with pytest.raises(InputError, match="seq_len must be an integer >= 12"):
        train_induction_model(0, seq_len=8)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch_size=0), "batch_size must be a positive integer, got 0"),  # was a reshape error
        (dict(batch_size=2.0), "batch_size must be a positive integer"),
        (dict(lr=-1e-3), "lr must be a positive finite number .*got -0.001"),  # was AdamW's ValueError
        (dict(lr=0), "lr must be a positive finite number"),
        (dict(lr=float("inf")), "lr must be a positive finite number"),
        (dict(lr="fast"), "lr must be a positive finite number"),
        (dict(seed="a"), "seed must be an integer >= 0"),
        (dict(threshold=1.5), r"threshold must be a number in \[0, 1\]"),
        (dict(vocab=None), "vocab must be an integer >= 2"),
    ],
)
def test_settings_are_checked_before_training(kwargs, match):
    with pytest.raises(InputError, match=match):
        train_induction_model(**{"steps": 1, **kwargs})


def test_smeared_keys_mix_each_key_with_the_previous_one():
    import torch

    from induction_nb.analysis.toy import ToyAttention

    torch.manual_seed(0)
    att = ToyAttention(8, 2, 4, smeared_keys=True)
    for w in (att.W_Q, att.W_K, att.W_V, att.smear):
        torch.nn.init.normal_(w)
    x = torch.randn(1, 5, 8)
    q, k, v = (torch.einsum("bsd,hde->bhse", x, w) for w in (att.W_Q, att.W_K, att.W_V))
    s = torch.sigmoid(att.smear)[None, :, None, None]
    k = s * k + (1 - s) * torch.cat([k[:, :, :1], k[:, :, :-1]], 2)  # key j: its own and key j-1's
    scores = (q @ k.transpose(-1, -2)).masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    z = (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 5, 8)
    torch.testing.assert_close(att(x), att.o_proj(z))
    assert ToyAttention(8, 2, 4).smear is None


def test_checkpoint_weights_and_smeared_refusals():
    from induction_nb import weight_evidence

    run = train_induction_model(0, steps=4, every=2, batch_size=4, n_layers=1, n_heads=2, d_model=16, smeared_keys=True)
    assert run.steps == (0, 2, 4) and len(run.states) == 3 and run.config["model"]["smeared_keys"]
    last = run.model_at(4)
    assert all(torch_equal(a, b) for a, b in zip(last.state_dict().values(), run.model.state_dict().values()))
    assert not last.training and len(last.layers) == 1
    with pytest.raises(InputError, match="steps \\[0, 2, 4\\]"):
        run.model_at(3)
    with pytest.raises(InputError, match="smear"):  # the weights' evidence would read keys that are not x W_K
        weight_evidence(last)
    with pytest.raises(InputError, match="multiple of n_heads"):
        train_induction_model(0, d_model=30, n_heads=4)
    with pytest.raises(InputError, match="smeared_keys"):
        train_induction_model(0, smeared_keys="yes")


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)
