"""Every registered metric, computed along every path, gives the same numbers on the same input: the whole
pattern (``per_sequence``), blocks of query rows with and without cropped key columns (``RowScorer``), the
kernel's row logsumexp (``lse_scores``) and padded documents pooled by sums and counts (``document_sums``).

Parametrised over ``metrics.REGISTRY``: a metric added to the catalog is held to this without a new test.
The tokens repeat with several matches per query (natural-text-like), a BOS-like first position and a
control batch; the patterns are real causal softmaxes of random queries and keys."""

import math

import pytest
import torch

from induction_nb.engine.attention_math import attention_from_qk
from induction_nb.engine.rows import DenseRows, LseScores, QKRows
from induction_nb.metrics import (
    REGISTRY,
    PatternMetric,
    RowScorer,
    control_key,
    document_sums,
    lse_scores,
    metric_names,
    per_sequence,
)

PATTERN_METRICS = metric_names(PatternMetric)
N, H, T, D = 3, 4, 24, 8


def _case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(5, 11, (N, T), generator=g)  # 6 ids over 24 positions: many repeats per query
    tokens[:, 0] = 1  # a BOS-like first token, never repeated
    control = tokens.clone()
    control[:, T // 2 :] = torch.randint(20, 40, (N, T - T // 2), generator=g)
    q, k = torch.randn(2 * N, H, T, D, generator=g), torch.randn(2 * N, H, T, D, generator=g)
    A = attention_from_qk(q, k, is_causal=True, scaling=0.7)  # [2N, H, T, T]: probes, then controls
    lse = torch.logsumexp(torch.matmul(q, k.transpose(-1, -2)) * 0.7 + torch.full((T, T), -math.inf).triu(1), -1)
    return tokens, q, k, A, LseScores(q, k, lse, 0.7)


@pytest.fixture(scope="module")
def case():
    return _case()


def _close(a, b, name):
    torch.testing.assert_close(a.float(), b.float(), atol=1e-5, rtol=0, equal_nan=True, msg=name)


@pytest.mark.parametrize("name", PATTERN_METRICS)
@pytest.mark.parametrize("first_query", [1, 2])
def test_row_blocks_equal_the_whole_pattern(case, name, first_query):
    tokens, _, _, A, _ = case
    metric = REGISTRY[name]
    dense = per_sequence(A[:N], tokens, first_query=first_query, control=A[N:], metrics=[metric])
    for rows_per_block in (1, 5, T):
        scorer = RowScorer(tokens, H, first_query, [metric])
        for start, block, _, lo in DenseRows(A, True).column_blocks(budget=4 * 2 * N * H * T * rows_per_block):
            scorer.add(start, block[:N], block[N:], lo)
        for key, value in scorer.finish().items():
            _close(value, dense[key], f"{name}, {rows_per_block} rows a block, {key}")


@pytest.mark.parametrize("name", PATTERN_METRICS)
def test_cropped_key_columns_equal_the_whole_pattern(case, name):
    """A sliding window: each block's keys start at ``lo > 0`` (the masked keys are never computed)."""
    tokens, q, k, _, _ = case
    rows = QKRows(q[:N], k[:N], causal=True, is_causal=True, sliding_window=6, scaling=0.7)
    whole, _ = rows.full()
    dense = per_sequence(whole, tokens, metrics=[REGISTRY[name]])
    scorer = RowScorer(tokens, H, 1, [REGISTRY[name]])
    los = []
    for start, block, _, lo in rows.column_blocks(budget=4 * N * H * T * 4):
        scorer.add(start, block, None, lo)
        los.append(lo)
    assert max(los) > 0, "the window crops the columns"
    _close(scorer.finish()[name], dense[name], name)


@pytest.mark.parametrize("name", PATTERN_METRICS)
@pytest.mark.parametrize("first_query", [1, 2])
def test_kernel_logsumexp_path_equals_the_whole_pattern(case, name, first_query):
    tokens, _, _, A, source = case
    metric = REGISTRY[name]
    dense = per_sequence(A[:N], tokens, first_query=first_query, control=A[N:], metrics=[metric])
    for key, value in lse_scores(source, tokens, first_query, [metric], rows=5, chunk=7).items():
        _close(value, dense[key], f"{name}: {key}")


@pytest.mark.parametrize("name", PATTERN_METRICS)
@pytest.mark.parametrize("left", [False, True])
def test_padded_documents_pool_like_each_document_alone(name, left):
    """Documents of different lengths padded into one batch (padding rows and columns 0, as capture gives
    them): each document's sum and count equal its own pattern's mean times its scored queries."""
    g = torch.Generator().manual_seed(1)
    lengths = [T, T - 7, 9]
    metric = REGISTRY[name]
    tokens = torch.zeros(len(lengths), T, dtype=torch.long)
    valid = torch.zeros(len(lengths), T, dtype=torch.bool)
    A = torch.zeros(len(lengths), H, T, T)
    alone = []
    for i, n in enumerate(lengths):
        ids = torch.randint(5, 10, (1, n), generator=g)
        pattern = attention_from_qk(
            torch.randn(1, H, n, D, generator=g), torch.randn(1, H, n, D, generator=g), is_causal=True
        )
        where = slice(T - n, T) if left else slice(0, n)
        tokens[i, where], valid[i, where], A[i, :, where, where] = ids[0], True, pattern[0]
        alone.append((ids, pattern))
    sums = document_sums(A, tokens, valid, [metric])
    for i, (ids, pattern) in enumerate(alone):
        mean = per_sequence(pattern, ids, metrics=[metric])[name][0]
        count = sums[name + "_n"][i]
        if count == 0:
            assert torch.isnan(mean).all() and (sums[name][i] == 0).all()
        else:
            _close(sums[name][i] / count, mean, f"{name}, document {i}")


@pytest.mark.parametrize("name", PATTERN_METRICS)
def test_of_is_the_dense_path_on_any_head_dims(case, name):
    """``metric.of(A)`` on ``[batch, layer, head, q, k]`` equals the dense path head by head, and leaves
    ``A`` as it was."""
    tokens, _, _, A, _ = case
    stacked = torch.stack([A[:N], A[N:]], dim=1)  # [N, 2, H, T, T]
    before = stacked.clone()
    got = REGISTRY[name].of(stacked, tokens)
    assert got.shape == (N, 2, H) and torch.equal(stacked, before)
    for layer in range(2):
        _close(got[:, layer], per_sequence(stacked[:, layer], tokens, metrics=[REGISTRY[name]])[name], name)


def test_registry_entries_are_complete_and_ordered():
    orders = [m.order for m in REGISTRY.values()]
    assert orders == sorted(orders) and list(REGISTRY)[0] == "overall_score"
    for name, m in REGISTRY.items():
        assert m.name == name and m.label and m.description and m.source and 0 < len(m.short) <= 8, name
    controlled = [n for n in PATTERN_METRICS if REGISTRY[n].controlled]
    assert controlled == ["prefix_matching"] and control_key("prefix_matching") not in REGISTRY
