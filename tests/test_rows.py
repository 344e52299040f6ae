"""Blockwise scoring: the detector's metrics computed row block by row block from the captured query and
key equal the metrics of the whole captured pattern, for eager, sdpa, grouped-query attention, sliding
windows and soft-capping (and the rows themselves equal eager's weights)."""

import pytest
import torch
from test_capture import _register_noweights
from tiny_models import make_hf

from induction_nb import InductionHeadDetector, capture_attention
from induction_nb.engine import rows as _rows
from induction_nb.metrics import per_sequence

CASES = [
    ("llama_gqa", "eager"),
    ("llama_gqa", "sdpa"),
    ("mistral_sliding", "sdpa"),
    ("gpt2", "sdpa"),
    ("gemma2_softcap_sliding", "noweights"),
    ("qwen2", "sdpa"),
]


def _whole_pattern_metrics(model, tokens, control, first_query):
    """The reference: every metric from the full captured patterns ``[n, layer, head, T, T]``, on the dense
    path (itself held to hand-computed values in test_scores.py)."""
    probe, ctrl = capture_attention(model, tokens).pattern, capture_attention(model, control).pattern
    return per_sequence(probe, tokens, first_query=first_query, control=ctrl)


@pytest.mark.parametrize("arch,backend", CASES)
def test_blockwise_metrics_equal_whole_pattern_metrics(arch, backend, monkeypatch):
    impl = _register_noweights(arch) if backend == "noweights" else backend
    model = make_hf(arch, impl)
    detector = InductionHeadDetector(model, batch_size=3, bos=False, n_bootstrap=10)
    gen = detector.generator()
    probe = gen.generate("repeated", 40, 3)
    control = gen.control_for(probe)
    monkeypatch.setattr(_rows, "BLOCK_BYTES", 3 * 2 * 4 * 40 * 4 * 7)  # 7 query rows per block: 6 blocks
    from induction_nb.engine.engine import Engine

    monkeypatch.setattr(Engine, "lse_ok", lambda self: False)  # the row-block path (the other is tested below)
    per_seq, _, layers, _ = detector._run(probe.tokens, control, first_query=1, keep=[])
    want = _whole_pattern_metrics(model, probe.tokens, control, 1)
    for name, value in want.items():
        torch.testing.assert_close(per_seq[name], value.float(), atol=1e-5, rtol=0, equal_nan=True, msg=name)
    assert layers == [0, 1]


def test_rows_equal_the_whole_pattern_with_a_window_and_offsets():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 6, 30, 8, generator=g), torch.randn(2, 2, 30, 8, generator=g)
    rows = _rows.QKRows(q, k, causal=True, is_causal=True, sliding_window=5, softcap=3.0, scaling=0.3)
    whole, _ = rows.full()
    blocks = torch.cat([b for _, b, _ in rows.blocks(budget=2 * 6 * 30 * 4 * 4)], dim=2)  # 4 rows a block
    torch.testing.assert_close(blocks, whole, atol=1e-6, rtol=0)
    assert (whole[..., 20, :16] == 0).all() and (whole[..., 20, 16:21] > 0).all()


def test_self_check_runs_on_every_block():
    from induction_nb import CaptureCheckError

    bad = torch.full((1, 1, 6, 6), 1 / 6).tril()  # rows do not sum to 1
    with pytest.raises(CaptureCheckError, match="layer 4: attention rows do not sum to 1"):
        for _ in _rows.DenseRows(bad, causal=True).checked(4, 1e-4).blocks(budget=4 * 6 * 2):
            pass


@pytest.mark.parametrize("arch", ["llama_gqa", "qwen2", "gpt2"])
def test_kernel_logsumexp_path_equals_the_blockwise_path(arch, monkeypatch):
    """An sdpa model on the CPU: scoring from the flash kernel's logsumexp (only the needed weights) gives
    the blockwise path's metrics, and the model's forward is unchanged by running the kernel ourselves."""
    from induction_nb.engine.engine import Engine

    model = make_hf(arch, "sdpa")
    detector = InductionHeadDetector(model, batch_size=3, bos=False, n_bootstrap=10)
    if not Engine.of(model).lse_ok():
        pytest.skip(f"{arch}'s sdpa call does not take the flash-kernel path")
    gen = detector.generator()
    probe = gen.generate("repeated", 40, 3)
    control = gen.control_for(probe)
    fast, _, _, _ = detector._run(probe.tokens, control, first_query=1, keep=[])
    monkeypatch.setattr(Engine, "lse_ok", lambda self: False)
    rows, _, _, _ = detector._run(probe.tokens, control, first_query=1, keep=[])
    for name in rows:
        torch.testing.assert_close(fast[name], rows[name], atol=1e-5, rtol=0, equal_nan=True, msg=name)
