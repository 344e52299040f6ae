"""Greedy decoding that reads every head's last query row at each step, with chosen heads removed.

At every step only the *last* query row of each head is read (``[head, C]`` per layer, never ``[C, C]``)
and reduced inside the trace to its arg-max key, so a long context costs what decoding costs. With the
model's ``generate`` (an HF causal LM, local or remote) one trace decodes with the KV cache; otherwise one
forward per step over the growing sequence. Heads are removed as in ``engine.ablator`` (zero ablation at
the output projection's input), at every step. Both paths decode plain greedy (the arg-max of the logits,
``steps`` tokens, EOS included and not stopped at): ``generate`` gets a clean greedy config, and a local
model's own ``generation_config`` (beams, minimum lengths, penalties, forced or suppressed tokens) is set
aside for the call, so that it cannot change what is decoded. Limits: sites that run once per forward;
remotely, the server's generation config still fills what the clean config leaves unset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import transformers

from .engine import Engine, cut_heads
from .outputs import last_row_argmax, next_token

__all__ = ["greedy_decode"]


def greedy_decode(
    engine: Engine, tokens: torch.Tensor, steps: int, ablate: list[tuple[int, int]] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding of ``steps`` tokens after ``tokens`` ``[1, C]``: ``(generated ids [steps], arg-max
    key of each head's last row at each step [steps, site, head])``, with the heads ``ablate`` removed."""
    paths, d = engine.projections() if ablate else ({}, 0)
    cuts: dict[int, list] = {}
    for l, h in ablate:
        cuts.setdefault(l, []).append((slice(None), slice(h * d, (h + 1) * d)))
    tokens = engine.check_tokens(tokens)  # on the model's device; kept local for a remote (meta) model
    if engine.can_generate:
        return _generate(engine, tokens, steps, paths, cuts)
    generated, keys = [], []
    for _ in range(steps):
        token, row = _one_step(engine, tokens, paths, cuts)
        generated.append(token)
        keys.append(row)
        tokens = torch.cat([tokens, torch.tensor([[token]], device=tokens.device)], dim=1)
    return torch.tensor(generated), torch.stack(keys)


def _generate(engine: Engine, tokens: torch.Tensor, steps: int, paths: dict, cuts: dict):
    import nnsight

    model, sites = engine.model, engine.sites()
    config = greedy_config(steps, getattr(engine.tokenizer, "eos_token_id", None))
    try:
        with torch.no_grad(), _set_aside(engine), engine.generate(tokens, generation_config=config) as tracer:
            keys = nnsight.save(decoded_keys(model, tracer, sites, steps, paths, cuts))
            ids = nnsight.save(tracer.result)
    except Exception as e:
        raise engine.translate(e, sites) from e
    return ids[0, tokens.shape[1] :].cpu(), torch.stack(list(keys)).cpu()


def decoded_keys(model, tracer, sites, steps: int, paths: dict, cuts: dict) -> list:
    """Inside a generate trace: per step, every site's arg-max key of the new token's row ``[site]`` (first
    sequence), the ``cuts`` heads removed at each step."""
    keys = []
    for _ in tracer.iter[:steps]:
        row = []
        for site in sites:
            row.append(last_row_argmax(model, site))
            if site.layer in cuts:
                cut_heads(model, tracer, paths[site.layer], 0, cuts[site.layer], None)
        keys.append(torch.stack(row)[:, 0])
    return keys


def greedy_config(steps: int, pad: int | None) -> transformers.GenerationConfig:
    """Plain greedy decoding of exactly ``steps`` tokens: one beam, no sampling, no length floors, penalties,
    forced or suppressed tokens, and no EOS to stop at (an empty EOS list: set, so no config fills it in)."""
    return transformers.GenerationConfig(
        max_new_tokens=steps,
        min_new_tokens=0,
        min_length=0,
        do_sample=False,
        num_beams=1,
        num_beam_groups=1,
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        encoder_no_repeat_ngram_size=0,
        renormalize_logits=False,
        remove_invalid_values=False,
        eos_token_id=[],
        pad_token_id=0 if pad is None else pad,
    )


@contextlib.contextmanager
def _set_aside(engine: Engine) -> Iterator[None]:
    """A local model's ``generation_config`` replaced by a blank one for the call (``generate`` fills every
    value the call leaves unset from it: bad words, forced tokens, sequence biases...), then put back."""
    module = engine.module
    saved = getattr(module, "generation_config", None)
    if saved is None or engine.remote is not None:
        yield
        return
    module.generation_config = transformers.GenerationConfig()
    try:
        yield
    finally:
        module.generation_config = saved


def _one_step(engine: Engine, tokens: torch.Tensor, paths: dict, cuts: dict) -> tuple[int, torch.Tensor]:
    """One forward over ``tokens`` ``[1, n]``: the greedy next token and each head's last-row arg-max."""
    import nnsight

    model, sites = engine.model, engine.sites()
    try:
        with torch.no_grad(), engine.trace(tokens) as tracer:
            row = nnsight.save([])
            for site in sites:
                row.append(last_row_argmax(model, site)[0])
                if site.layer in cuts:
                    cut_heads(model, tracer, paths[site.layer], site.call, cuts[site.layer], None)
            token = nnsight.save(next_token(model.output))
    except Exception as e:
        raise engine.translate(e, sites) from e
    return int(token), torch.stack(list(row)).cpu()
