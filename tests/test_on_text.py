"""detect_on_text: scores on natural repeats, pooled over padded length buckets, against each document
run alone and scored by hand from its captured pattern; bad input; the real SmolLM2 on the shipped
passages (probe-detected heads lead on text too)."""

import math

import pytest
import torch
from tiny_models import make_hf, save_with_words

from induction_nb import TextScanResult, capture_attention, detect_on_text, load_model
from induction_nb.errors import InputError
from induction_nb.metrics import duplicate_mask, match_mask

DOCS = [
    "t5 t6 t7 t8 t5 t6 t7 t9 t5",
    "t10 t11 t10 t11 t10",
    "t3 t4 t12 t13 t14 t15 t3 t4 t12 t16 t17 t3",
    "t20 t21 t22 t20",
    "t30 t31",
    "t40 t41 t42 t43 t44 t45 t46 t47 t40 t41 t42 t43",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_with_words(tmp_path_factory.mktemp("llama_words"))


@pytest.fixture(scope="module")
def worded(folder):
    return load_model(folder)


def _by_hand(model, docs):
    """Each document alone: its pattern, the metric sums over its scored queries, pooled by counts."""
    sums = {m: 0 for m in ("prefix_matching", "duplicate_token", "previous_token", "copying")}
    counts = dict.fromkeys(sums, 0)
    for doc in docs:
        ids = torch.tensor([[int(w[1:]) for w in doc.split()]])
        A = capture_attention(model, ids).pattern[0]  # [layer, head, T, T]
        T = ids.shape[1]
        for name, mask in (("prefix_matching", match_mask(ids)[0]), ("duplicate_token", duplicate_mask(ids)[0])):
            sums[name] = sums[name] + (A * mask).sum((-1, -2))
            counts[name] += int(mask.any(-1).sum())
        sums["previous_token"] = sums["previous_token"] + A.diagonal(-1, -2, -1).sum(-1)
        counts["previous_token"] += T - 1
        scored = match_mask(ids)[0].any(-1)
        scored[-1] = False
        following = torch.cat([ids[0, 1:], ids[0, :1]])
        hits = (ids[0][A.argmax(-1)] == following) & scored
        sums["copying"] = sums["copying"] + hits.float().sum(-1)
        counts["copying"] += int(scored.sum())
    return {m: sums[m] / counts[m] for m in sums}, counts["prefix_matching"]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_pooled_scores_equal_each_document_scored_by_hand(worded, batch_size):
    result = detect_on_text(worded, DOCS, batch_size=batch_size, n_bootstrap=50)
    want, scored = _by_hand(worded, DOCS)
    assert isinstance(result, TextScanResult) and result.settings["scored_queries"] == scored
    assert result.settings["documents"] == len(DOCS) and result.settings["tokens"] == sum(len(d.split()) for d in DOCS)
    for name in want:
        got = torch.tensor([[getattr(result.score(l, h), name) for h in range(6)] for l in range(2)])
        torch.testing.assert_close(got, want[name].float(), atol=1e-5, rtol=0)
    top = result.get_top_heads(1)[0]
    assert top.overall_score == top.prefix_matching and top.ci_low <= top.overall_score <= top.ci_high


def test_same_seed_same_interval_and_report(worded):
    from induction_nb import create_analysis_report

    a, b = (detect_on_text(worded, DOCS, n_bootstrap=100, seed=3) for _ in range(2))
    assert [s.ci_low for s in a.head_scores] == [s.ci_low for s in b.head_scores]
    report = create_analysis_report(a, detailed=True)
    assert report.startswith("INDUCTION ON TEXT REPORT") and f"Scored queries: {a.settings['scored_queries']}" in report


def test_a_metric_with_no_scored_query_is_undefined_not_zero(worded):
    """No 3-token context repeats in these documents: 3-prefix matching is NaN for every head (a 0 would
    claim the heads avoid the target), while 2-prefix matching, which has queries, is a number."""
    result = detect_on_text(worded, ["t5 t6 t5 t6", "t7 t8 t9 t7 t8"], n_bootstrap=10)
    assert all(math.isnan(s.prefix_matching_3) for s in result.head_scores)
    assert not any(math.isnan(s.prefix_matching_2) for s in result.head_scores)
    assert result.to_dataframe()["prefix_matching_3"].isna().all()


def test_long_documents_are_cut_or_chunked(worded):
    long = " ".join(f"t{3 + i % 20}" for i in range(100))
    with pytest.warns(UserWarning, match="1 document.s. longer than 40 tokens were cut"):
        cut = detect_on_text(worded, [long], max_length=40, n_bootstrap=10)
    assert cut.settings["tokens"] == 40
    chunked = detect_on_text(worded, [long], max_length=40, overflow="chunk", n_bootstrap=10)
    assert chunked.settings["tokens"] == 100 and chunked.settings["documents"] == 3
    with pytest.raises(InputError, match="a document has 100 tokens, more than max_length=40"):
        detect_on_text(worded, [long], max_length=40, overflow="error")


@pytest.mark.parametrize(
    "texts,kwargs,match",
    [
        (["t5 t6", ""], {}, "empty"),
        ([], {}, "no documents|zero documents|0 documents"),
        (["t5 t6 t7"], {}, "no token repeats within any document"),
        (DOCS, {"overflow": "wrap"}, "overflow"),
        (DOCS, {"max_length": 1000}, "exceeds the model's 64 positions"),
        (DOCS, {"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ],
)
def test_bad_input(worded, texts, kwargs, match):
    with pytest.raises(InputError, match=match):
        detect_on_text(worded, texts, **kwargs)


def test_a_model_without_a_tokenizer_is_told_what_to_do():
    with pytest.raises(InputError, match="scoring text needs the model's tokenizer"):
        detect_on_text(make_hf("gpt2"), ["a b a b"])


def test_cli_scan_text(folder, tmp_path, capsys):
    from induction_nb.cli import main

    model, docs = folder, tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text(DOCS[0])
    (docs / "sub" / "b.jsonl").write_text("\n".join(f'{{"text": "{d}"}}' for d in DOCS[1:]))
    code = main(["scan", str(model), "--text", str(docs), "--no-progress", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("INDUCTION ON TEXT REPORT") and "documents: 6" in out
    from induction_nb import DetectionResult, TextScanResult, load_result

    assert isinstance(load_result(tmp_path / "r.json"), TextScanResult)
    with pytest.raises(InputError, match=r"holds a TextScanResult .* load it with induction_nb.load_result"):
        DetectionResult.load(tmp_path / "r.json")


@pytest.mark.slow
def test_smollm2_probe_heads_lead_on_the_shipped_passages(smollm2):
    from induction_nb.probes.passages import PASSAGES

    result = detect_on_text(smollm2, list(PASSAGES.values()), n_bootstrap=200)
    top = [(s.layer, s.head) for s in result.get_top_heads(5)]
    probe_heads = {(17, 3), (17, 4), (17, 5), (18, 6), (18, 7)}  # the detector's top heads at 128 tokens
    # measured (eager): L17H5 0.42, L17H3 0.31, L20H7 0.23, L17H4 0.18, L20H6 0.18
    assert top[0] in probe_heads and len(set(top) & probe_heads) >= 2, top
    assert result.get_top_heads(1)[0].ci_low > 0.15


ID_DOCS = [[5, 6, 7, 8, 9, 10, 5, 6, 7, 8, 9, 10, 11, 12], [20, 21, 22, 20, 21, 23, 24, 20, 21, 22, 25, 26, 27, 20]]


def _id_containers():
    import numpy as np

    return {
        "2-D tensor": torch.tensor(ID_DOCS),
        "2-D numpy array": np.array(ID_DOCS),
        "list of 1-D tensors": [torch.tensor(d) for d in ID_DOCS],
        "list of 1-D numpy arrays": [np.array(d) for d in ID_DOCS],
        "lists of np.int64": [list(np.array(d, dtype=np.int64)) for d in ID_DOCS],
        "tuples": tuple(tuple(d) for d in ID_DOCS),
        "an empty document besides": [ID_DOCS[0], [], ID_DOCS[1]],
        "an empty array besides": [np.array(ID_DOCS[0]), np.array([], dtype=np.int64), np.array(ID_DOCS[1])],
    }


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_token_ids_in_any_container_score_as_lists_of_ints(worded, with_tokenizer):
    """Token-id documents as a 2-D tensor or array (a row per document), lists of 1-D tensors or arrays,
    lists of NumPy integers, or with an empty document (dropped): the same scores as the reference, the
    same documents as plain lists of Python ints."""
    model = worded if with_tokenizer else make_hf("llama_gqa", "sdpa")
    want = detect_on_text(model, ID_DOCS, n_bootstrap=20)
    metrics = ("prefix_matching", "duplicate_token", "previous_token", "copying", "overall_score")
    for name, docs in _id_containers().items():
        got = detect_on_text(model, docs, n_bootstrap=20)
        assert got.settings["documents"] == want.settings["documents"] == 2, name
        assert got.settings["tokens"] == want.settings["tokens"], name
        for a, b in zip(got.head_scores, want.head_scores):
            assert [getattr(a, m) for m in metrics] == pytest.approx([getattr(b, m) for m in metrics], abs=1e-6), name


def test_non_integer_token_ids_are_refused():
    import numpy as np

    model = make_hf("llama_gqa", "sdpa")
    for docs in (
        torch.tensor(ID_DOCS, dtype=torch.float32),
        [np.array(d, dtype=float) for d in ID_DOCS],
        [[float(t) for t in d] for d in ID_DOCS],
        [torch.tensor(d) > 7 for d in ID_DOCS],
    ):
        with pytest.raises(InputError, match="not token ids .integers.; pass integer ids"):
            detect_on_text(model, docs, n_bootstrap=10)
    with pytest.raises(InputError, match=r"one flat list of token ids; pass \[ids\]"):
        detect_on_text(model, ID_DOCS[0], n_bootstrap=10)


def test_a_model_without_attention_mask_runs_one_length_per_batch():
    """HandBuiltInduction's forward takes no attention_mask: documents of different lengths are grouped by
    exact length into unpadded batches (it was an error advising an argument that does not exist), and the
    scores equal those of each document run alone."""
    from induction_nb import HandBuiltInduction
    from induction_nb.engine.documents import length_buckets
    from induction_nb.engine.engine import Engine

    model = HandBuiltInduction()
    docs = [[4 + (3 * i + j) % 36 for j in range(n)] * 2 for i, n in enumerate([8, 10, 8, 12, 10, 8, 12, 5])]
    batched = detect_on_text(model, docs, batch_size=3, n_bootstrap=50)
    alone = detect_on_text(model, docs, batch_size=1, n_bootstrap=50)
    assert batched.settings["documents"] == alone.settings["documents"] == len(docs)
    for a, b in zip(batched.head_scores, alone.head_scores):
        for name, value in a.values.items():
            want = b.values[name]
            assert value == pytest.approx(want, abs=1e-6, nan_ok=True), (a.name, name)
        assert (a.ci_low, a.ci_high) == pytest.approx((b.ci_low, b.ci_high), abs=1e-6)
    buckets = length_buckets(Engine.of(model), docs, 3)
    assert all(len({len(docs[i]) for i in bucket}) == 1 for bucket in buckets)
    assert [len(b) for b in buckets] == [1, 3, 2, 2], "one length per batch, at most batch_size"
