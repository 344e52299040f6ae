"""engine.model_info: the facts every tool reads off a model's config, nested configs included."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import induction_nb as nb


def _bert2bert() -> torch.nn.Module:
    """EncoderDecoderModel (bert2bert): its sizes live in config.encoder and config.decoder only."""
    kwargs = dict(vocab_size=97, hidden_size=32, intermediate_size=64, max_position_embeddings=64)
    enc = transformers.BertConfig(num_hidden_layers=3, num_attention_heads=4, **kwargs)
    dec = transformers.BertConfig(
        num_hidden_layers=2, num_attention_heads=2, is_decoder=True, add_cross_attention=True, **kwargs
    )
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id, config.pad_token_id = 1, 0
    for c in (config, config.encoder, config.decoder):
        c._attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return transformers.EncoderDecoderModel(config=config).eval()


def test_an_encoder_decoder_model_reads_its_nested_configs():
    """Before: detection's default probe ran past the 64 positions (a raw RuntimeError from BERT's
    embeddings) and the causal tools could not tell the head count."""
    model = _bert2bert()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 64-position default
        result = nb.detect_induction_heads(model, batch_size=2, n_bootstrap=10)
    assert (result.n_layers, result.n_heads) == (2, 2)  # the decoder's, from config.decoder
    tokens = torch.arange(3, 19)[None]
    with torch.no_grad():
        eager = model(input_ids=tokens, decoder_input_ids=tokens, output_attentions=True).decoder_attentions
    torch.testing.assert_close(nb.capture_attention(model, tokens).pattern, torch.stack(eager, 1), atol=1e-5, rtol=1e-4)
    with pytest.raises(nb.InputError, match="exceeds the model's 64 positions"):
        nb.ablate_heads(model, [(1, 1)], sequence_length=100, batch_size=2)
    assert nb.ablate_heads(model, [(1, 1)], batch_size=2).effect != 0
