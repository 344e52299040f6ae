"""Retrieval heads (Wu, Wang, Xiao, Peng, Fu 2024, arXiv 2404.15574): the heads that copy a needle out of a
long haystack while the model repeats it.

A *needle* (a marker phrase followed by ``needle_length`` token ids that occur nowhere in the haystack) is
inserted at relative depth ``d`` into a haystack of ``C`` tokens (the shipped public-domain passages,
cycled, or token ids of your own); the context ends with the marker phrase again, so that repeating the
needle is what the model should do next. The model decodes greedily with its KV cache; at every step only
the *last* query row of each head is read (``[head, C]`` per layer per step, never ``[C, C]``), reduced
inside the trace to its arg-max key. A head *copies* at a step whose generated token ``w`` belongs to the
needle when its arg-max lands inside the needle on a position holding ``w``. Its retrieval score is the
number of needle tokens it copied over the needle's length, averaged over every ``(C, d)``, with a seeded
bootstrap interval over those runs; heads above 0.1 are the paper's retrieval heads.

``needle_accuracy(model, heads)`` is the causal check: the share of needle tokens reproduced, in place,
with ``heads`` removed (zero ablation at the output projection's input, at every decoding step).
Decoding uses the model's ``generate`` with its KV cache where the model has one (an HF causal LM loaded
with its tokenizer, local or remote), else one forward per step over the growing sequence.
Limits: sites that run once per forward (no shared or looped layers); decoder-only models (an
encoder-decoder is refused: its decoding would need the encoder's input and a decoder start, which this
retrieval setup does not define).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_heads, check_int, check_probability, is_int
from ..engine.decoding import greedy_decode
from ..engine.engine import Engine
from ..engine.remote_sessions import decode_chunks
from ..engine.seq2seq import is_encoder_decoder
from ..errors import InputError, warn_user
from ..metrics.stats import bootstrap_mean
from ..probes.passages import PASSAGES
from .head_score import HeadScore
from .results import RetrievalResult

__all__ = ["Needle", "needle_cases", "retrieval_heads", "needle_accuracy", "RETRIEVAL_THRESHOLD"]

RETRIEVAL_THRESHOLD = 0.1  # Wu et al.: heads above it are retrieval heads
_MARKER = "\nThe secret sequence is:"


@dataclass(frozen=True)
class Needle:
    """One needle-in-a-haystack context: ``tokens`` ``[1, C]``, the needle's answer ids ``answer`` ``[k]``
    at positions ``start .. start + k`` of the context, its length ``C`` and depth ``d``."""

    tokens: torch.Tensor
    answer: torch.Tensor
    start: int
    length: int
    depth: float


def needle_cases(
    engine: Engine,
    lengths: Sequence[int],
    depths: Sequence[float],
    needle_length: int = 8,
    seed: int = 0,
    haystack: Sequence[int] | None = None,
) -> list[Needle]:
    """One ``Needle`` per ``(length, depth)``: the haystack (``haystack`` token ids, or the shipped passages
    through the model's tokenizer) cycled to fill ``length`` tokens with the marker, the needle and the
    closing marker; needle ids drawn (seeded) from the model's ordinary token range, none in the haystack
    (with a tokenizer: whole lower-case words, so that the needle reads as words)."""
    tok = engine.tokenizer
    if haystack is None:
        if tok is None:
            raise InputError(
                "the natural haystack needs the model's tokenizer, which this model does not have; "
                "pass haystack=[token ids] (the marker is then 3 random ids)"
            )
        hay = [i for name in sorted(PASSAGES) for i in tok(" " + PASSAGES[name], add_special_tokens=False)["input_ids"]]
        marker = tok(_MARKER, add_special_tokens=False)["input_ids"]
    else:
        hay, marker = _haystack_ids(haystack, engine.vocab_size), None
    gen = engine.generator(seed)
    pool = gen.pool[~torch.isin(gen.pool, torch.tensor(sorted(set(hay))))]
    if tok is not None:  # whole lower-case words (" violet"): a needle the model reads as words, not fragments
        words = [i for i in pool.tolist() if _is_word(tok.decode([i]))]
        pool = torch.tensor(words) if len(words) >= needle_length else pool
    g = torch.Generator().manual_seed(seed)
    if marker is None:
        marker = pool[torch.randperm(len(pool), generator=g)[:3]].tolist()
        pool = pool[~torch.isin(pool, torch.tensor(marker))]
    if len(pool) < needle_length:
        raise InputError(
            f"only {len(pool)} token ids occur nowhere in the haystack; a needle of {needle_length} needs that many"
        )
    bos = [] if gen.bos_token_id is None else [gen.bos_token_id]
    cases = []
    for length in lengths:
        for depth in depths:
            answer = pool[torch.randperm(len(pool), generator=g)[:needle_length]]
            room = length - len(bos) - 2 * len(marker) - needle_length
            if room < 1:
                raise InputError(
                    f"a context of {length} tokens cannot hold the needle ({needle_length} ids) and its "
                    f"markers ({2 * len(marker)} ids); use longer lengths or a shorter needle"
                )
            filler = (hay * (room // len(hay) + 1))[:room]
            cut = round(depth * room)
            ids = bos + filler[:cut] + marker + answer.tolist() + filler[cut:] + marker
            start = len(bos) + cut + len(marker)
            cases.append(Needle(torch.tensor([ids]), answer, start, length, float(depth)))
    return cases


def _haystack_ids(haystack: Any, vocab_size: int | None) -> list[int]:
    """``haystack`` as a list of token ids: a non-empty 1-D sequence (list, range, tensor, array) of integers
    in ``[0, vocab_size)``."""
    ids = haystack.tolist() if hasattr(haystack, "tolist") else haystack
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence) or not len(ids):
        raise InputError(f"haystack must be a non-empty list of token ids, got {haystack!r:.60}")
    ids = list(ids)
    if not all(is_int(i) and i >= 0 for i in ids):
        raise InputError(f"haystack must hold token ids (integers >= 0) in one flat list, got {ids!r:.60}")
    top = vocab_size if vocab_size is not None else 2**63
    if max(ids) >= top:
        raise InputError(f"haystack holds id {max(ids)}, outside the model's vocabulary of {top} ids")
    return [int(i) for i in ids]


def _is_word(text: str) -> bool:
    return len(text) >= 4 and text[0] == " " and text[1:].isalpha() and text[1:].islower() and text.isascii()


DEFAULT_LENGTHS = (1024, 2048)  # context lengths where the model allows them


def _check(
    engine: Engine, lengths: Any, depths: Any, needle_length: Any, haystack: Any
) -> tuple[list[int], list[float]]:
    if is_encoder_decoder(engine.module):
        raise InputError(
            f"retrieval heads decode a needle out of the model's own context, which an encoder-decoder "
            f"({type(engine.module).__name__}) does not have: its decoder continues from a decoder start given "
            "an encoder input, so retrieval_heads and needle_accuracy support decoder-only models. For this "
            "model, use the capture and detection tools (capture_attention, detect_induction_heads: the "
            "decoder's self-attention by default) and the causal tools (ablate_heads, copying_dla)"
        )
    check_int("needle_length", needle_length, 1)
    if lengths is None:
        tok = engine.tokenizer if haystack is None else None
        marker = 3 if tok is None else len(tok(_MARKER, add_special_tokens=False)["input_ids"])
        lengths = _default_lengths(engine.max_positions, needle_length, marker)
    lengths = [check_int("length", x, 8) for x in (lengths if isinstance(lengths, (list, tuple)) else [lengths])]
    depths = [check_probability("depth", x) for x in (depths if isinstance(depths, (list, tuple)) else [depths])]
    if min(lengths) <= 2 * needle_length:
        raise InputError(
            f"the needle ({needle_length} tokens) is longer than the haystack of a {min(lengths)}-token "
            "context; use longer lengths or a shorter needle"
        )
    limit = engine.max_positions
    if limit is not None and max(lengths) + needle_length > limit:
        raise InputError(
            f"a context of {max(lengths)} tokens plus {needle_length} generated exceeds the model's "
            f"{limit} positions; use lengths <= {limit - needle_length}"
        )
    if any(s.call for s in engine.sites()):
        raise InputError(
            "retrieval heads read each attention module once per decoding step; this model applies "
            "a module several times per forward (shared or looped layers)"
        )
    if engine.remote is not None and not engine.can_generate:
        raise InputError(
            "remote retrieval decodes on the server with generate(): pass an nnsight "
            "TransformersModel (load_model(name, remote=True))"
        )
    return lengths, depths


def _default_lengths(limit: int | None, needle_length: int, marker: int) -> tuple[int, ...]:
    """``DEFAULT_LENGTHS``, or (half the room, the room), or (the room,) where the model has fewer positions
    (warned): the first that holds the needle and its two markers of ``marker`` ids in every context."""
    room = None if limit is None else limit - needle_length
    if room is None or room >= max(DEFAULT_LENGTHS):
        return DEFAULT_LENGTHS
    for lengths in ((room // 2, room), (room,)):
        if all(_holds(x, needle_length, marker) for x in lengths):
            warn_user(f"induction_nb: the model has {limit} positions: using lengths={lengths}")
            return lengths
    best = max((n for n in range(1, limit) if _holds(limit - n, n, marker)), default=None)
    raise InputError(
        f"the model has {limit} positions, too few for a needle of {needle_length} tokens, its markers and a "
        "haystack" + (f"; pass a shorter needle_length (at most {best})" if best else "")
    )


def _holds(length: int, needle_length: int, marker: int) -> bool:
    """A context of ``length`` holds BOS, two markers, the needle and some haystack (``_check``'s rule too)."""
    return length >= 8 and length > 2 * needle_length and length - 1 - 2 * marker - needle_length >= 1


def _copies(case: Needle, generated: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Per head ``[layer, head]``: needle tokens it copied (arg-max inside the needle on a position holding
    the token generated at that step)."""
    context = case.tokens[0]
    span = slice(case.start, case.start + len(case.answer))
    copied = torch.zeros(keys.shape[1:])
    for step, w in enumerate(generated.tolist()[: keys.shape[0]]):
        if w not in case.answer.tolist():
            continue
        pos = keys[step]  # [layer, head]
        inside = (pos >= span.start) & (pos < span.stop)
        copied += (inside & (context[pos.clamp(max=len(context) - 1)] == w)).float()
    return copied


def retrieval_heads(
    model: Any,
    *,
    lengths: Sequence[int] | None = None,
    depths: Sequence[float] = (0.1, 0.5, 0.9),
    needle_length: int = 8,
    seed: int = 0,
    n_bootstrap: int = 1000,
    haystack: Sequence[int] | None = None,
    remote: Any = False,
    progress: bool | None = None,
) -> RetrievalResult:
    """The retrieval score of every head (see the module docstring), as a ``RetrievalResult``.

    Wu, Wang, Xiao, Peng and Fu (2024, "Retrieval Head Mechanistically Explains Long-Context Factuality",
    arXiv 2404.15574). A needle (a marker phrase followed by ``needle_length`` token ids that occur nowhere in
    the haystack) is inserted at relative depth ``d`` into a haystack of ``C`` tokens; the context ends with
    the marker again, and the model decodes greedily with its KV cache where it has one (else one forward per
    step). At every step only the *last* query row of each head is read (``[head, C]`` per layer per step,
    never ``[C, C]``), reduced to its arg-max key. A head *copies* at a step whose generated token ``w``
    belongs to the needle when its arg-max lands inside the needle on a position holding ``w``; its retrieval
    score is the number of needle tokens it copied over the needle's length, averaged over every ``(C, d)``.
    The result's ``overall_score`` is the retrieval score (threshold 0.1: the paper's retrieval heads) with
    its bootstrap interval over the ``len(lengths) * len(depths)`` runs; ``settings`` holds the runs, the
    needle-copy accuracy of each and what was measured. Views, JSON and CSV work as for detection. A warning
    says when the model reproduced under half of the needle tokens (the scores then rest on few steps).
    Limits: decoder-only models; sites that run once per forward (no shared or looped layers).

    Args:
        model: the model to scan: a Hugging Face causal LM, an nnsight ``LanguageModel``/``NNsight``, or a
            plain ``torch.nn.Module`` in eval mode (see ``load_model``); with its tokenizer unless
            ``haystack`` is given.
        lengths: the context lengths ``C`` in tokens (integers >= 8, each more than twice ``needle_length``;
            default ``(1024, 2048)`` where the model's positions allow, else fit to them, with a warning).
        depths: the needle's relative depths ``d`` in [0, 1] (default ``(0.1, 0.5, 0.9)``).
        needle_length: needle tokens to copy (an integer >= 1; default 8); also the decoding steps per run.
        seed: seeds the needle ids (and the marker without a tokenizer) and the bootstrap (an integer >= 0;
            default 0).
        n_bootstrap: bootstrap resamples of the 95% interval over the runs (a positive integer; default 1000).
        haystack: token ids to cycle as the haystack (a flat non-empty sequence of ids in the vocabulary;
            the marker is then 3 random ids); default: the shipped public-domain passages through the
            model's tokenizer.
        remote: ``False`` (default) runs locally; ``True`` or a ``RemoteConfig`` decodes on NDIF (an nnsight
            model that can ``generate``).
        progress: show a progress bar over the runs (``None``, the default: when there are more than two
            runs or the run is remote).

    Returns:
        RetrievalResult: one ``HeadScore`` per head whose ``overall_score`` is its retrieval score (needle
            tokens copied / needle length, in [0, 1], averaged over the runs) with its bootstrap 95% interval;
            threshold 0.1; ``settings``: ``lengths``, ``depths``, ``needle_length``, ``runs``,
            ``needle_accuracy`` (the share of needle tokens reproduced), ``per_run_accuracy`` and the rest.

    Raises:
        InputError: for a ``seed`` that is not an integer >= 0, an ``n_bootstrap`` that is not a positive
            integer, an encoder-decoder model, a ``needle_length`` < 1, lengths < 8 or too short for the
            needle and its markers, depths outside [0, 1], contexts that with the needle exceed the model's
            positions, a model too short for any needle, shared or looped attention layers, a remote model
            that cannot ``generate``, no tokenizer and no ``haystack``, a malformed ``haystack`` (empty, not
            flat, ids outside the vocabulary), too few token ids outside the haystack for the needle, or a
            model in training mode.
        AttentionNotFoundError: when no attention module can be found.
        CaptureCheckError: when reading the attention during decoding fails its checks.
        RemoteExecutionError: when a remote (NDIF) run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, retrieval_heads
        >>> haystack = list(range(4, 20)) * 2  # token ids; the needle and its marker come from the other ids
        >>> result = retrieval_heads(
        ...     HandBuiltInduction(), lengths=[40], depths=[0.2, 0.5, 0.8], needle_length=4, haystack=haystack,
        ...     n_bootstrap=50,
        ... )
        >>> result.induction_heads  # the hand-built induction head copies the needle
        [(1, 0)]
        >>> result.settings["needle_accuracy"], result.settings["runs"]
        (1.0, 3)

        On a real model with its tokenizer (the shipped passages as the haystack):

        >>> from induction_nb import load_model  # doctest: +SKIP
        >>> result = retrieval_heads(load_model(), lengths=[512], needle_length=6)  # doctest: +SKIP
    """
    check_int("seed", seed, 0)
    check_int("n_bootstrap", n_bootstrap, 1)
    engine = Engine.of(model, remote)
    lengths, depths = _check(engine, lengths, depths, needle_length, haystack)
    cases = needle_cases(engine, lengths, depths, needle_length, seed, haystack)
    show = progress or (progress is None and (len(cases) > 2 or engine.remote is not None))
    scores, accuracy = [], []
    for case, (generated, keys) in zip(cases, _decode(engine, cases, [], seed, "needles" if show else None)):
        scores.append(_copies(case, generated, keys) / needle_length)
        accuracy.append(float((generated[:needle_length] == case.answer).float().mean()))
    per_run = torch.stack(scores)  # [runs, layer-site, head]
    if sum(accuracy) / len(accuracy) < 0.5:  # a head can copy only at steps that produce the needle
        warn_user(
            f"the model reproduced {sum(accuracy) / len(accuracy):.0%} of the needle tokens, so the "
            "retrieval scores rest on few steps (all zero if none); use longer contexts or a longer "
            "needle (SmolLM2-135M repeats 6-word needles from 512 tokens on)"
        )
    return _result(engine, per_run, cases, accuracy, seed, n_bootstrap)


def _result(
    engine: Engine, per_run: torch.Tensor, cases: list[Needle], accuracy: list[float], seed: int, n_bootstrap: int
) -> RetrievalResult:
    mean = per_run.mean(0)
    low, high = bootstrap_mean(per_run, n_bootstrap, seed)
    head_scores = tuple(
        HeadScore(l, h, {"overall_score": float(mean[i, h])}, float(low[i, h]), float(high[i, h]))
        for i, l in sorted(enumerate(engine.layers), key=lambda x: x[1])
        for h in range(per_run.shape[2])
    )
    settings = {
        "score": "retrieval score (Wu et al. 2024): needle tokens copied / needle length",
        "lengths": sorted({c.length for c in cases}),
        "depths": sorted({c.depth for c in cases}),
        "needle_length": len(cases[0].answer),
        "runs": len(cases),
        "needle_accuracy": round(sum(accuracy) / len(accuracy), 4),
        "per_run_accuracy": [[c.length, c.depth, round(a, 4)] for c, a in zip(cases, accuracy)],
        "n_bootstrap": n_bootstrap,
        "remote": engine.remote is not None,
    }
    return RetrievalResult(
        head_scores, RETRIEVAL_THRESHOLD, engine.name, engine.n_layers, per_run.shape[2], settings, seed
    )


def needle_accuracy(
    model: Any,
    heads: Sequence[tuple[int, int]] = (),
    *,
    lengths: Sequence[int] | None = None,
    depths: Sequence[float] = (0.1, 0.5, 0.9),
    needle_length: int = 8,
    seed: int = 0,
    haystack: Sequence[int] | None = None,
    remote: Any = False,
) -> float:
    """The share of needle tokens the model reproduces in place (greedy), with ``heads`` removed.

    The causal check of retrieval heads (Wu et al. 2024, arXiv 2404.15574: masking retrieval heads breaks
    needle retrieval, masking random heads does not): remove the top ones, and as many random heads of the
    same layers, and compare. The needles are those of ``retrieval_heads`` (same ``lengths``, ``depths``,
    ``needle_length``, ``seed`` and ``haystack`` give the same contexts); the heads are removed by zero
    ablation at the output projection's input, at every decoding step.

    Args:
        model: the model: a Hugging Face causal LM, an nnsight ``LanguageModel``/``NNsight``, or a plain
            ``torch.nn.Module`` in eval mode (see ``load_model``); with its tokenizer unless ``haystack`` is
            given.
        heads: the ``(layer, head)`` pairs to remove (default: none, the intact model).
        lengths: the context lengths in tokens (integers >= 8; default ``(1024, 2048)`` where the model's
            positions allow, else fit to them, with a warning).
        depths: the needle's relative depths in [0, 1] (default ``(0.1, 0.5, 0.9)``).
        needle_length: needle tokens (an integer >= 1; default 8).
        seed: seeds the needle ids (default 0).
        haystack: token ids to cycle as the haystack (default: the shipped passages through the tokenizer).
        remote: ``False`` (default) runs locally; ``True`` or a ``RemoteConfig`` decodes on NDIF.

    Returns:
        float: the share of needle tokens reproduced in place, in [0, 1], averaged over the
            ``len(lengths) * len(depths)`` contexts.

    Raises:
        InputError: for ``heads`` that are not ``(layer, head)`` pairs of this model (or name one twice), a ``seed``
            that is not an integer >= 0, and as ``retrieval_heads`` for the model, the lengths, depths, needle and
            haystack.
        AttentionNotFoundError: when no attention module can be found.
        CaptureCheckError: when reading or patching the model during decoding fails.
        RemoteExecutionError: when a remote (NDIF) run fails.

    Examples:
        >>> from induction_nb import HandBuiltInduction, needle_accuracy
        >>> model = HandBuiltInduction()
        >>> kwargs = dict(lengths=[40], depths=[0.2, 0.5, 0.8], needle_length=4, haystack=list(range(4, 20)) * 2)
        >>> needle_accuracy(model, **kwargs)
        1.0
        >>> needle_accuracy(model, [(1, 0)], **kwargs) < 0.3  # without the induction head the needle breaks
        True
        >>> needle_accuracy(model, [(1, 2)], **kwargs)  # a head that writes nothing
        1.0
    """
    check_int("seed", seed, 0)
    engine = Engine.of(model, remote)
    lengths, depths = _check(engine, lengths, depths, needle_length, haystack)
    heads = check_heads("heads", heads, {l: engine.n_heads for l in engine.layers}, allow_empty=True, unique=True)
    cases = needle_cases(engine, lengths, depths, needle_length, seed, haystack)
    decoded = _decode(engine, cases, heads, seed, None)
    hits = [float((generated[:needle_length] == c.answer).float().mean()) for c, (generated, _) in zip(cases, decoded)]
    return sum(hits) / len(hits)


def _decode(engine: Engine, cases: list[Needle], heads: list, seed: int, desc: str | None) -> list:
    """Each case's greedy decoding of its needle's length (``greedy_decode``), ``heads`` removed. Remotely the
    cases are bundled into as few jobs as the job budget allows and each one's result cached
    (``engine.remote_sessions.decode_chunks``): a rerun sends only the missing ones."""
    bar = None
    if desc is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cases), desc=desc, unit="run")
    try:
        if engine.remote is not None:
            steps, contexts = len(cases[0].answer), [c.tokens for c in cases]
            return decode_chunks(engine, contexts, steps, heads, tool="retrieval", settings={"seed": seed}, bar=bar)
        decoded = []
        for case in cases:
            decoded.append(greedy_decode(engine, case.tokens, len(case.answer), heads))
            if bar is not None:
                bar.update(1)
        return decoded
    finally:
        if bar is not None:
            bar.close()
