"""Padded batches (``engine.batch``): a padded batch equals each sequence run alone, under eager and sdpa, for
grouped-query attention, a sliding window, learned absolute positions (GPT-2), ALiBi (BLOOM) and an
encoder, padded on the right and on the left; HF eager ``output_attentions`` on the same padded batch as
a second reference; strings through a tokenizer; every kind of bad input."""

import pytest
import torch
from tiny_models import EncoderStack, make_hf

from induction_nb import capture_attention, capture_head, stream_attention
from induction_nb.errors import InputError

FAMILIES = ["llama_gqa", "mistral_sliding", "gpt2", "bloom_alibi", "bert_encoder"]
LENGTHS = [11, 7, 4]


def _padded(side: str, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(3, 97, (n,), generator=g) for n in LENGTHS]
    T = max(LENGTHS)
    tokens, mask = torch.full((len(seqs), T), 2), torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        where = slice(0, len(s)) if side == "right" else slice(T - len(s), T)
        tokens[i, where], mask[i, where] = s, 1
    return seqs, tokens, mask


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("arch", FAMILIES)
def test_padded_batch_equals_each_sequence_alone(arch, backend, side):
    try:
        model = make_hf(arch, backend)
    except (ValueError, ImportError) as e:
        pytest.skip(f"transformers offers no {backend} for {arch}: {str(e)[:60]}")
    seqs, tokens, mask = _padded(side)
    got = capture_attention(model, tokens, attention_mask=mask)
    assert torch.equal(got.attention_mask, mask.bool()) and got.causal == (arch != "bert_encoder")
    for i, seq in enumerate(seqs):
        real = mask[i].bool()
        alone = capture_attention(model, seq[None]).pattern[0]
        torch.testing.assert_close(got.pattern[i][:, :, real][:, :, :, real], alone, atol=1e-5, rtol=0)
        assert (got.pattern[i][:, :, ~real] == 0).all() and (got.pattern[i][:, :, :, ~real] == 0).all()
    if backend == "eager" and arch != "bert_encoder":  # HF's own weights on the same padded batch, real rows
        with torch.no_grad():
            want = torch.stack(
                model(tokens, attention_mask=mask, **_positions(model, mask), output_attentions=True).attentions, 1
            )
        rows = mask.bool()[:, None, None, :, None]
        torch.testing.assert_close(torch.where(rows, want, 0), got.pattern, atol=1e-5, rtol=0)


def _positions(model: torch.nn.Module, mask: torch.Tensor) -> dict:
    import inspect

    if "position_ids" not in inspect.signature(model.forward).parameters:
        return {}
    return {"position_ids": (mask.cumsum(1) - 1).clamp_min(0)}


def test_left_padding_needs_the_position_ids_we_pass():
    """Without position ids that count real tokens, a left-padded model with learned absolute positions
    (GPT-2) sees shifted positions: the parity above would fail, so it tests something. (RoPE patterns are
    shift-invariant, so llama's would not.)"""
    model = make_hf("gpt2", "eager")
    seqs, tokens, mask = _padded("left")
    with torch.no_grad():
        naive = model(tokens, attention_mask=mask, output_attentions=True).attentions[0]
    alone = capture_attention(model, seqs[2][None], layers=[0]).pattern[0, 0]
    real = mask[2].bool()
    assert (naive[2][:, real][:, :, real] - alone).abs().max() > 1e-3


def test_stream_and_capture_head_on_a_padded_batch():
    model = make_hf("llama_gqa", "sdpa")
    seqs, tokens, mask = _padded("left", seed=3)
    whole = capture_attention(model, tokens, attention_mask=mask)
    sums = stream_attention(model, tokens, lambda layer, p: p.sum((-1, -2)), attention_mask=mask)
    torch.testing.assert_close(torch.stack(sums, 1), whole.pattern.sum((-1, -2)))
    torch.testing.assert_close(capture_head(model, tokens, 1, 4, attention_mask=mask), whole.pattern[:, 1, 4])


def test_ragged_lists_are_padded_on_the_right():
    model = make_hf("gpt2", "eager")
    seqs, tokens, mask = _padded("right", seed=5)
    got = capture_attention(model, [s.tolist() for s in seqs])
    assert torch.equal(got.attention_mask, mask.bool())
    torch.testing.assert_close(got.pattern, capture_attention(model, tokens, attention_mask=mask).pattern)


def test_a_full_mask_is_no_padding():
    model = make_hf("gpt2", "eager")
    _, tokens, _ = _padded("right")
    got = capture_attention(model, tokens, attention_mask=torch.ones_like(tokens))
    assert got.attention_mask is None


def test_strings_through_the_tokenizer(tmp_path):
    """A tiny word-level tokenizer (tests/ndif_loopback.write_tokenizer): strings are padded on the
    tokenizer's side, and each equals its own ids run alone."""
    from tiny_models import save_with_words

    from induction_nb import load_model

    model = load_model(save_with_words(tmp_path, "llama_gqa", "eager"))
    texts = ["t5 t17 t5 t17 t9 t30", "t8 t8 t40"]
    for side in ("right", "left"):
        model.tokenizer.padding_side = side
        got = capture_attention(model, texts)
        assert got.attention_mask[1].sum() == 3 and bool(got.attention_mask[1, 0]) == (side == "right")
        alone = capture_attention(model, [[8, 8, 40]]).pattern[0]
        real = got.attention_mask[1]
        torch.testing.assert_close(got.pattern[1][:, :, real][:, :, :, real], alone, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="text 1 is empty; drop empty strings"):
        capture_attention(model, ["t5 t6", "  "])


def test_a_tokenizer_without_a_pad_token_is_left_as_it_was(tmp_path):
    from tiny_models import save_with_words

    from induction_nb import load_model

    model = load_model(save_with_words(tmp_path, "gpt2", "eager"))
    model.tokenizer.pad_token = None
    before = (model.tokenizer.pad_token, model.tokenizer._tokenizer.padding)
    got = capture_attention(model, ["t5 t17 t5 t17", "t8 t9"])
    assert got.attention_mask.sum(1).tolist() == [4, 2]
    assert (model.tokenizer.pad_token, model.tokenizer._tokenizer.padding) == before


def test_padding_ids_outside_the_vocabulary_are_fine():
    model = make_hf("gpt2", "eager")
    tokens = torch.tensor([[5, 6, 7, -100], [8, 9, 10, 11]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    got = capture_attention(model, tokens, attention_mask=mask)
    torch.testing.assert_close(got.pattern[0][:, :, :3, :3], capture_attention(model, tokens[:1, :3]).pattern[0])


@pytest.mark.parametrize(
    "tokens,mask,match",
    [
        ([[5, 6, 7]], [[1, 1]], r"attention_mask has shape \(1, 2\) but tokens have \(1, 3\)"),
        ([[5, 6, 7], [5, 6, 7]], [[1, 1, 1], [0, 0, 0]], "row 1 of attention_mask is all padding"),
        ([[5, 6, 7]], [[1, 0, 0]], "row 0 of attention_mask has a single real token"),
        ([[5, 6, 7, 8]], [[1, 0, 1, 1]], "row 0 of attention_mask has padding between real tokens"),
        ([[5, 6, 7, 8]], [[0, 1, 1, 0]], "row 0 of attention_mask has padding between real tokens"),
        ([[5, 6, 7]], [[1, 2, 1]], "must hold only 0 .padding. and 1"),
        ([[5, 6], [7]], [[1, 1], [1, 0]], "attention_mask was given with a ragged list"),
        ([[5, 6], []], None, "sequence 1 is empty"),
        (["t5 t6"], None, "strings need the model's tokenizer"),
        ([[5, 6], "t5"], None, "tokens mixes strings with other items"),
    ],
)
def test_bad_batches(tokens, mask, match):
    with pytest.raises(InputError, match=match):
        capture_attention(make_hf("gpt2", "eager"), tokens, attention_mask=mask)


def test_a_forward_without_attention_mask_is_refused_for_a_padded_batch():
    _, tokens, mask = _padded("right")
    with pytest.raises(InputError, match="forward takes no attention_mask, so a padded batch cannot be run"):
        capture_attention(EncoderStack(causal=True).eval(), tokens, attention_mask=mask)


@pytest.mark.parametrize("left", [False, True])
def test_one_overflow_rule_for_batches_and_documents(left):
    """``max_length`` with ``overflow``: "truncate" keeps each row's first real tokens on its own padding side,
    "chunk" makes each window a row, "error" names the fix; the same rule (``fit_length``) cuts documents."""
    from induction_nb.engine import Engine
    from induction_nb.engine.batch import fit_length

    engine = Engine.of(make_hf("gpt2"))
    rows = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    width = 6
    tokens = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for i, r in enumerate(rows):
        where = slice(width - len(r), width) if left else slice(0, len(r))
        tokens[i, where], mask[i, where] = torch.tensor(r), 1
    with pytest.warns(UserWarning, match="truncated to 4"):
        cut = engine.batch(tokens, mask, max_length=4, overflow="truncate")
    real = [t[m].tolist() for t, m in zip(cut.tokens, cut.valid())]
    assert real == [[5, 6, 7, 8], [11, 12, 13]] and cut.left_padded == left
    chunked = engine.batch(tokens, mask, max_length=4, overflow="chunk")
    assert [t[m].tolist() for t, m in zip(chunked.tokens, chunked.valid())] == [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    with pytest.raises(InputError, match="a sequence has 6 tokens, more than max_length=4; pass overflow='truncate'"):
        engine.batch(tokens, mask, max_length=4)
    assert fit_length(rows, 4, "chunk") == ([[5, 6, 7, 8], [9, 10], [11, 12, 13]], 1)
    with pytest.raises(InputError, match="unknown overflow 'wrap'"):
        fit_length(rows, 4, "wrap")
