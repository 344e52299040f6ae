"""The original API: ``InductionHeadDetector``, ``detect_induction_heads``, ``InductionHeadAnalyzer`` and
``analyze_head_attention``.

Detection runs the probe sequences (a random block repeated, BOS prepended where the model has one)
together with their controls (the same sequences with everything after the first block replaced by
fresh tokens) through ``stream_attention``: each layer's pattern is reduced to per-sequence, per-head
metric values *inside the trace* (``scores``), so nothing larger than ``[batch, head]`` leaves a layer
unless the caller asks to keep some heads' patterns. Large batches run in chunks with a progress bar.
Remotely a chunk returns per-sequence values only for the metrics the bootstrap resamples (the leaves of
the overall score); every other metric is only averaged over sequences, so it comes back as per-head
NaN-aware sums and counts, and the chunks are combined into the same means as a local scan's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch

from .._validate import check_choice, check_heads, check_int, check_probability, describe_heads
from ..engine.capture import stream_attention
from ..engine.defaults import fit_probe_length
from ..engine.engine import Engine
from ..engine.remote_jobs import code_digest
from ..engine.remote_sessions import pack_layers, stream_chunks, unpack_layers
from ..engine.seq2seq import check_scored_stack, stack_size
from ..errors import InputError, warn_user
from ..metrics import RowScorer, all_mass, lse_scores, pattern_metric_list
from ..metrics.stats import _leaves
from ..probes.patterns import PatternGenerator
from .head_score import INTERVAL_METRICS, scores_from_sequences
from .results import DetectionResult

__all__ = ["InductionHeadDetector", "detect_induction_heads", "INTERVAL_METRICS"]


class InductionHeadDetector:
    """Find the induction heads of ``model`` (anything ``load_model`` accepts or returns).

    The detector holds the settings of a scan; ``detect`` runs it and returns a ``DetectionResult``
    (``detect_induction_heads`` is the one-call form, and its page says what is measured). Each head gets
    the overall score ``contrast x copying`` in [0, 1] with its 95% bootstrap interval, and every pattern
    metric of the registry (prefix matching, contrast, copying, previous-token, duplicate-token, diagonal,
    n-prefix matching). Olsson et al. 2022, "In-context Learning and Induction Heads", arXiv 2209.11895.

    Args:
        model: the model to scan: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` such as ``HandBuiltInduction``, or a name or path (loaded by ``load_model``).
            It must be in eval mode.
        threshold: on the overall score, in [0, 1]: a head whose overall score is at or above it is
            detected (``DetectionResult.induction_heads``). Default 0.4 (the original spec's and ARENA 1.2's).
        batch_size: sequences per pattern (default 8); the bootstrap resamples these sequences.
        chunk_size: sequences per forward pass, each with its control (so a pass holds ``2 x chunk_size``
            sequences; default 8). Lower it to save memory; the scores do not change.
        seed: seeds the random probe tokens and the bootstrap (default 0): the same seed gives the same
            scores and intervals.
        vocab_size: restrict the random token ids to ``[0, vocab_size)`` of the model's vocabulary
            (default ``None``: the model's whole vocabulary, as read from its config or embedding). At
            least 2 and at most the model's vocabulary; required where the model's vocabulary cannot be read.
        bos: prepend the model's BOS token where it has one (default ``True``; a model without one gets
            none either way).
        n_bootstrap: resamples for the confidence interval (default 1000, at least 1): the 95% percentile
            interval of the overall score over sequences (a sequence and its control resampled together).
        progress: show a progress bar (tqdm) over chunks; ``None`` (the default): only where there is more
            than one chunk or the scan is remote.
        remote: run on NDIF (``True`` or a ``RemoteConfig``; scores computed on the server, the chunks
            bundled into as few requests as the job budget allows, each chunk's result cached for a rerun:
            ``engine.remote_jobs``). Default ``False``: run locally.
        stack: which self-attention of an encoder-decoder is scored: ``"decoder"`` (the default; the probe
            tokens are the decoder's input, the encoder gets the same tokens) or ``"encoder"``;
            cross-attention is never scored (``engine.seq2seq``). A one-stack model has only ``"decoder"``.
        intervals: metrics whose 95% bootstrap intervals are kept too (``HeadScore.intervals``), from
            ``INTERVAL_METRICS`` (``"prefix_matching"``, ``"contrast"``, ``"copying"``: the overall score's
            parts, resampled with it); a single name is taken as a one-element list. Default: none.

    Raises:
        InputError: when ``threshold`` is outside [0, 1]; ``batch_size``, ``chunk_size`` or ``n_bootstrap``
            is not a positive integer; an ``intervals`` name is not in ``INTERVAL_METRICS``; ``stack`` is
            not ``"decoder"`` or ``"encoder"`` (``"cross"`` is refused, with the reason); the vocabulary
            size cannot be told and no ``vocab_size`` is given, or ``vocab_size`` is below 2 or larger than
            the model's vocabulary; or the model is in training mode (call ``model.eval()``).
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        RemoteExecutionError: with ``remote``, when the NDIF connection cannot be set up (no API key,
            server unreachable, model not served).

    Examples:
        >>> from induction_nb import HandBuiltInduction, InductionHeadDetector
        >>> model = HandBuiltInduction()  # a 2-layer transformer with a known induction head, L1H0
        >>> detector = InductionHeadDetector(model, threshold=0.5, batch_size=4, n_bootstrap=200)
        >>> result = detector.detect(32)  # 4 sequences of 32 tokens: a 16-token block, repeated
        >>> result.induction_heads
        [(1, 0)]
        >>> result.settings["sequence_length"], result.settings["batch_size"], result.threshold
        (32, 4, 0.5)
    """

    def __init__(
        self,
        model: Any,
        threshold: float = 0.4,
        *,
        batch_size: int = 8,
        chunk_size: int = 8,
        seed: int = 0,
        vocab_size: int | None = None,
        bos: bool = True,
        n_bootstrap: int = 1000,
        progress: bool | None = None,
        remote: Any = False,
        stack: Literal["decoder", "encoder"] | None = None,
        intervals: Sequence[str] = (),
    ):
        self.threshold = check_probability("threshold", threshold)
        if isinstance(intervals, str):
            intervals = (intervals,)
        self.intervals = tuple(check_choice("intervals", m, INTERVAL_METRICS) for m in intervals)
        self.stack = check_scored_stack(stack)
        for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size), ("n_bootstrap", n_bootstrap)):
            check_int(name, value, 1)
        self.engine = Engine.of(model, remote)
        self.model, self.module, self.tokenizer = self.engine.model, self.engine.module, self.engine.tokenizer
        model_vocab = self.engine.vocab_size
        if vocab_size is None and model_vocab is None:
            raise InputError(f"cannot tell the vocabulary size of {type(self.module).__name__}; pass vocab_size=")
        if vocab_size is not None:
            check_int("vocab_size", vocab_size, 2)
            if model_vocab is not None and vocab_size > model_vocab:
                raise InputError(f"vocab_size {vocab_size} is larger than the model's vocabulary ({model_vocab})")
        self.vocab_size = vocab_size or model_vocab
        self.bos_token_id = self.engine.bos_token_id() if bos else None
        self.special_ids = self.engine.special_ids
        self.batch_size, self.chunk_size, self.seed = batch_size, chunk_size, seed
        self.n_bootstrap, self.progress, self.remote = n_bootstrap, progress, remote

    def generator(self) -> PatternGenerator:
        """The probe generator of this detector's model, seed, BOS and vocabulary.

        Returns:
            PatternGenerator: makes the probe sequences (``repeated``, ``abab``, ...) and their controls,
                deterministic for the detector's ``seed``.
        """
        return self.engine.generator(self.seed, bos=self.bos_token_id is not None, vocab_size=self.vocab_size)

    def detect(
        self,
        sequence_length: int | None = None,
        *,
        n_repeats: int = 2,
        patterns: Sequence[str] = ("repeated",),
        keep_patterns: Iterable[tuple[int, int]] = (),
    ) -> DetectionResult:
        """Score every head on ``batch_size`` sequences of ``sequence_length`` tokens (BOS not counted)
        per pattern, each with its control.

        ``sequence_length=None`` (the default): 128 tokens, or what the model allows: shorter where its
        positions or its vocabulary cannot hold a 128-token probe and its control (a small model trained
        at home with 100 token ids gets a 90-token probe). What was chosen is in ``result.settings`` and said
        once in a warning; ``InputError`` only where no valid probe exists.

        Args:
            sequence_length: tokens per probe sequence, BOS not counted (the ``n_repeats`` blocks together);
                ``None``: 128 or what the model allows (see above).
            n_repeats: how many times the random block is repeated (default 2: a block of
                ``sequence_length // 2`` tokens, then its copy).
            patterns: probe patterns to score on, pooled (default ``("repeated",)``): periodic patterns
                such as ``"repeated"``, ``"abab"``, ``"copy"``, ``"natural"`` (needs a tokenizer) or
                ``"ngram"``; a single name is taken as a one-element list.
            keep_patterns: ``(layer, head)`` pairs whose full patterns ``[batch, q, k]`` on the first
                pattern's sequences (not the controls) are kept in ``result.kept_patterns`` (with their
                tokens in ``result.kept_tokens``). Default: none.

        Returns:
            DetectionResult: one ``HeadScore`` per head (``overall_score`` in [0, 1] with its 95% interval,
                and every pattern metric), the threshold, the model's ``n_layers x n_heads`` grid and the
                settings that produced them.

        Raises:
            InputError: when ``patterns`` is empty or names an unknown pattern; ``sequence_length`` is
                outside what the model's positions and vocabulary allow (the message names the length the
                default would use); or ``keep_patterns`` holds something other than integer pairs, or a
                head the model does not have.
            AttentionNotFoundError: when no attention module can be found in the model (use ``CustomSites``).
            CaptureCheckError: when a captured attention pattern fails its self-check (row sums, causal
                mask, finiteness).
            RemoteExecutionError: with ``remote``, when the NDIF run fails (nothing partial is returned).

        Examples:
            >>> from induction_nb import HandBuiltInduction, InductionHeadDetector
            >>> detector = InductionHeadDetector(HandBuiltInduction(), batch_size=4, n_bootstrap=100)
            >>> result = detector.detect(32, keep_patterns=[(1, 0)])
            >>> result.get_top_heads(1)[0].name
            'L1H0'
            >>> tuple(result.kept_patterns[(1, 0)].shape)  # [batch, q, k]
            (4, 32, 32)
        """
        if isinstance(patterns, str):
            patterns = (patterns,)
        if not patterns:
            raise InputError(
                "no patterns given; use one or more periodic patterns: repeated, abab, copy, natural, ngram"
            )
        keep = _check_keep(keep_patterns, self.engine, self.stack)
        gen = self.generator()
        sequence_length, adapted = self._probe_length(gen, sequence_length, n_repeats)
        probes = [gen.generate(name, sequence_length, self.batch_size, n_repeats=n_repeats) for name in patterns]
        controls = [gen.control_for(p) for p in probes]
        repeated = torch.cat([p.tokens for p in probes])
        control = torch.cat(controls)
        settings = self._settings(gen, probes, sequence_length, n_repeats, adapted)
        first = 1 + probes[0].offset
        key = {k: v for k, v in settings.items() if k != "n_bootstrap"}  # what changes a chunk's result
        per_seq, kept, layers, heads = self._run(repeated, control, first, keep, {**key, "seed": self.seed})
        present = {(l, h) for l, n in zip(layers, heads) for h in range(n)}
        bad = [(l, h) for l, h in keep if (l, h) not in present]
        if bad:
            raise InputError(f"keep_patterns {bad} out of range: {describe_heads(dict(zip(layers, heads)))}")
        scores = scores_from_sequences(per_seq, layers, heads, self.n_bootstrap, self.seed, self.intervals)
        stated = self.engine.n_layers if self.stack in (None, "decoder") else stack_size(self.module, self.stack)[0]
        n_layers = max(max(layers) + 1, stated or 0)
        if kept:  # the first pattern's sequences (their period and offset are known): the rest are not kept
            kept = {key: pattern[: self.batch_size] for key, pattern in kept.items()}
            settings["kept"] = {"pattern": probes[0].name, "period": probes[0].period, "offset": probes[0].offset}
        return DetectionResult(
            scores,
            self.threshold,
            self.engine.name,
            n_layers,
            max(heads),
            settings,
            self.seed,
            kept,
            probes[0].tokens.cpu() if kept else None,
        )

    def _settings(
        self, gen: PatternGenerator, probes: list, sequence_length: int, n_repeats: int, adapted: str | None
    ) -> dict:
        """What produced the scores, for the record (``result.settings``)."""
        settings = {
            "sequence_length": sequence_length,
            "n_repeats": n_repeats,
            "batch_size": self.batch_size,
            "patterns": [p.name for p in probes],
            "bos_token_id": self.bos_token_id,
            "token_range": [gen.low, gen.high],
            "n_bootstrap": self.n_bootstrap,
            "chunk_size": self.chunk_size,
            "attn_implementation": getattr(getattr(self.module, "config", None), "_attn_implementation", None),
            "remote": bool(self.remote),
            "stack": self.stack or "decoder",
            "control": sorted({gen.control_kind(p) for p in probes}),
        }
        if self.intervals:
            settings["intervals"] = list(self.intervals)
        if adapted:
            settings["probe_adapted"] = adapted
        return settings

    def _probe_length(self, gen: PatternGenerator, requested: Any, n_repeats: int) -> tuple[int, str | None]:
        """``(sequence_length, why it was adapted or None)``: the one rule every tool follows
        (``engine.defaults.fit_probe_length``, 128 tokens where the model allows); the reason is warned once."""
        length, why = fit_probe_length(
            gen,
            self.engine.max_positions,
            requested,
            preferred=128,
            minimum=1,  # the generator names what a pattern needs (too short for 'repeated'...)
            n_repeats=n_repeats,
            control=True,
            tool="detection",
        )
        if why:
            warn_user(f"induction_nb: {why}")
        return length, why

    def _run(
        self,
        repeated: torch.Tensor,
        control: torch.Tensor,
        first_query: int,
        keep: list[tuple[int, int]],
        settings: dict | None = None,
    ):
        """Per-sequence metrics ``{name: [n_sequences, site, head]}`` (NaN past a layer's own head count), the
        kept patterns, and each site's layer index and head count, chunk by chunk. Remotely the chunks are
        bundled into as few jobs as the job budget allows and cached (``engine.remote_jobs``; ``settings``:
        the scan's, for the cache key), and only the overall score's leaves (what ``bootstrap_head``
        resamples) are per sequence: every other metric is its mean over all sequences, one row ``[1, site,
        head]`` (the chunks' NaN-aware sums over their counts), which ``head_means`` leaves as it is."""
        starts = range(0, repeated.shape[0], self.chunk_size)
        remote = self.engine.remote is not None
        show = self.progress if self.progress is not None else (len(starts) > 1 or remote)
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(starts), desc="detect", unit="chunk")
        metrics, use_lse = pattern_metric_list(), self.engine.lse_ok()
        leaves = tuple(_leaves("overall_score")) if remote else None  # the rest: sums and counts per chunk
        chunks = [
            (
                torch.cat([repeated[s : s + self.chunk_size], control[s : s + self.chunk_size]]),
                _LayerReducer(repeated[s : s + self.chunk_size], first_query, keep, metrics, use_lse, leaves),
            )
            for s in starts
        ]
        try:
            if remote:
                key = {
                    **(settings or {}),
                    "first_query": first_query,
                    "keep": keep,
                    "metrics": [[m.name, code_digest(m)] for m in metrics],  # a redefined metric: new key
                    "per_sequence": list(leaves),
                }
                estimate = _result_bytes(self.engine, self.chunk_size, len(metrics), keep, repeated.shape[1])
                outs = stream_chunks(
                    self.engine, chunks, stack=self.stack, tool="detect", settings=key, bar=bar, bytes_each=estimate
                )
            else:
                outs = []
                for tokens, reducer in chunks:
                    outs.append(stream_attention(self.engine, tokens, reducer, stack=self.stack))
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return _collect(outs, leaves)


def _collect(outs: list[list[dict]], per_sequence: Sequence[str] | None = None):
    """The chunks' reductions joined: per-sequence metrics, kept patterns, layers and head counts. With
    ``per_sequence`` (names), every other metric is summed over all chunks (their ``"sums"``, or their
    per-sequence values where a chunk came back whole) and returned as its mean ``[1, site, head]``."""
    collected: dict[str, list[torch.Tensor]] = {}
    summed: dict[str, list[torch.Tensor]] = {}
    kept: dict[tuple[int, int], list[torch.Tensor]] = {}
    layers = heads = None
    for out in outs:
        layers = [x["layer"] for x in out]
        heads = [_head_count(x) for x in out]
        for name in [*out[0]["metrics"], *out[0].get("sums", {})]:
            if per_sequence is None or name in per_sequence:
                collected.setdefault(name, []).append(
                    torch.stack([_pad(x["metrics"][name], max(heads)) for x in out], 1)
                )
                continue
            parts = [_sum_count(x, name, max(heads)) for x in out]  # per site: ([head], [head])
            total = torch.stack([torch.stack([s for s, _ in parts]), torch.stack([c for _, c in parts])])
            summed[name] = total if name not in summed else summed[name] + total
        for x in out:
            for key, pattern in x["kept"].items():
                kept.setdefault(key, []).append(pattern)
    values = {k: torch.cat(v) for k, v in collected.items()}
    dtype = next(iter(values.values())).dtype if values else torch.float32
    values.update({k: (v[0] / v[1]).to(dtype)[None] for k, v in summed.items()})  # 0 / 0: NaN, as nanmean
    return values, {k: torch.cat(v) for k, v in kept.items()}, layers, heads


def _head_count(x: dict) -> int:
    """One layer's head count, from its per-sequence metrics ``[batch, head, ...]`` or its sums ``[head]``."""
    if x["metrics"]:
        return next(iter(x["metrics"].values())).shape[1]
    return next(iter(x["sums"].values()))[0].shape[0]


def _sum_count(x: dict, name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's NaN-aware sum over sequences of metric ``name`` and its count of non-NaN sequences, each
    ``[n]`` (zero past the layer's own head count), float64: from the chunk's ``"sums"`` or its values."""
    if name in x.get("sums", {}):
        total, count = x["sums"][name]
    else:
        values = x["metrics"][name]
        total, count = values.nansum(0), (~values.isnan()).sum(0)
    total, count = total.double(), count.double()
    pad = n - total.shape[0]
    return torch.nn.functional.pad(total, (0, pad)), torch.nn.functional.pad(count, (0, pad))


def _result_bytes(engine: Engine, rows: int, n_metrics: int, keep: list, length: int) -> float:
    """Estimated bytes one chunk returns: float32 ``[rows, head]`` per metric per layer (an upper bound: only
    the leaves are per sequence), plus kept patterns."""
    layers, heads = engine.config_layers or 128, engine.n_heads or 128
    return 4.0 * rows * (n_metrics * heads * layers + len(keep) * length * length)


class _LayerReducer:
    """Runs inside the trace on one layer's pattern ``[2n, head, T, T]`` (n probes, then n controls), row
    block by row block (``engine.rows``): at most ``[2n, head, block, T]`` exists at a time, so an 8k-token scan
    never holds a layer's whole pattern. With ``use_lse`` (an sdpa model on a CPU, see
    ``Engine.lse_ok``) the layer comes as the query, key and the flash kernel's row logsumexp instead, and
    only the weights the metrics need are computed.

    Where a learned sink takes part of each row, the metrics are taken over *all* the row's mass: the
    pattern is rescaled to each key's share of the full softmax (sink included), so attention parked on
    the sink counts against the prefix-matching score as attention on a BOS token would. Copying's arg-max
    runs over the tokens.

    ``per_sequence``: the metrics ``pack`` returns per sequence (None: all); the others it returns as
    per-head NaN-aware sums and counts over the chunk's sequences (see ``_collect``)."""

    accepts_rows = True  # a class attribute: a remote request ships the class by value, attributes included

    def __init__(
        self,
        tokens: torch.Tensor,
        first_query: int,
        keep: list[tuple[int, int]],
        metrics: tuple,
        use_lse: bool = False,
        per_sequence: tuple[str, ...] | None = None,
    ):
        self.tokens, self.first_query, self.keep, self.metrics = tokens, first_query, keep, metrics
        self.use_lse = use_lse and not keep  # kept patterns need the rows themselves
        self.per_sequence = per_sequence

    def __call__(self, layer: int, rows) -> dict:
        n = self.tokens.shape[0]
        if hasattr(rows, "entries"):  # the flash kernel's logsumexp (see engine.read_layer): no rows at all
            metrics = lse_scores(rows, self.tokens.to(rows.lse.device), self.first_query, self.metrics)
            return {"layer": layer, "metrics": {k: v.cpu() for k, v in metrics.items()}, "kept": {}}
        heads = [h for l, h in self.keep if l == layer and h < rows.shape[1]]
        scorer, kept = None, {h: [] for h in heads}
        for start, block, sink, lo in rows.column_blocks():
            if scorer is None:
                scorer = RowScorer(self.tokens.to(block.device), rows.shape[1], self.first_query, self.metrics)
            for h in heads:
                whole = block.new_zeros(n, block.shape[2], rows.shape[3])
                whole[..., lo : lo + block.shape[-1]] = block[:n, h]
                kept[h].append(whole.cpu())
            if sink is not None:
                block = all_mass(block, sink)
            scorer.add(start, block[:n], block[n:], lo)
        metrics = scorer.finish()
        return {
            "layer": layer,
            "metrics": {k: v.cpu() for k, v in metrics.items()},
            "kept": {(layer, h): torch.cat(v, dim=1) for h, v in kept.items()},
        }

    def pack(self, out: list) -> tuple:
        """On the server, after a chunk's trace (``engine.remote_sessions``): ``pack_layers``, the metrics
        not in ``per_sequence`` as per-head sums and counts."""
        return pack_layers(out, self.per_sequence)

    unpack = staticmethod(unpack_layers)  # locally: the per-sequence values again, each layer's "sums" added


def _pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[batch, head]`` padded with NaN to ``n`` heads (a layer with fewer heads than others)."""
    if x.shape[1] == n:
        return x
    return torch.cat([x, torch.full((x.shape[0], n - x.shape[1]), float("nan"))], dim=1)


def _check_keep(keep: Iterable[tuple[int, int]], engine: Engine, stack: str | None = None) -> list[tuple[int, int]]:
    """(layer, head) integer pairs, checked against the config up front where it says the model's size
    (a remote scan would otherwise pay for a whole job before the error; the default stack's size); against
    the attention layers the scan finds after it."""
    pairs = check_heads("keep_patterns", keep, allow_empty=True)
    n_layers, n_heads = (engine.config_layers, engine.n_heads) if stack in (None, "decoder") else (None, None)
    if n_layers is not None and n_heads is not None:
        bad = [(l, h) for l, h in pairs if not (0 <= l < n_layers and 0 <= h < n_heads)]
        if bad:
            raise InputError(f"keep_patterns {bad} out of range: the model has {n_layers} layers x {n_heads} heads")
    return pairs


def detect_induction_heads(model: Any, threshold: float = 0.4, **kwargs) -> DetectionResult:
    """Find the induction heads of ``model`` in one call, on repeated random tokens with a control.

    One call: ``InductionHeadDetector(model, threshold, ...).detect(...)``. Keyword arguments go to the
    detector (batch_size, seed, ...) or to ``detect`` (sequence_length, n_repeats, patterns, keep_patterns).

    An induction head completes a pattern ``[A][B] ... [A] -> [B]``: at the second ``[A]`` it attends to
    the token right after the earlier ``[A]`` and copies it (Olsson et al. 2022, "In-context Learning and
    Induction Heads", arXiv 2209.11895). The probe is a block of distinct random tokens repeated
    ``n_repeats`` times (BOS prepended where the model has one); its control is the same sequence with
    everything after the first block replaced by fresh tokens, so the same positions have no match.
    Each head's pattern is reduced, layer by layer, to these metrics (means over the scored queries,
    averaged over sequences):

    - ``prefix_matching`` (the induction score): the attention from a token to the token right after each
      earlier copy of it (the induction stripe ``k = q - P + 1`` on a block of period ``P``);
    - ``contrast``: prefix matching minus the same positions' prefix matching on the control, clamped to
      [0, 1]: the part the match causes (a head that attends by position alone scores ~0);
    - ``copying``: how often the most-attended key holds the token that comes next;
    - ``overall_score = contrast x copying``, in [0, 1]: an ideal induction head scores ~1, a positional
      or previous-token head ~0. A head is detected where it is at or above ``threshold`` (0.4 by
      default, as the original spec and ARENA 1.2);
    - besides: ``previous_token`` (``A[q, q-1]``, the heads induction heads compose with),
      ``duplicate_token``, ``diagonal``, and n-prefix matching (``prefix_matching_2`` .. ``_4``).

    The interval ``[ci_low, ci_high]`` of each head's overall score is a seeded 95% percentile bootstrap
    over the sequences (``n_bootstrap`` resamples; a sequence and its control drawn together);
    ``intervals=`` keeps the same resamples' intervals of the overall score's parts too.

    Args:
        model: the model to scan: a Hugging Face model, an nnsight ``LanguageModel``/``NNsight``, a plain
            ``torch.nn.Module`` such as ``HandBuiltInduction``, or a name or path (see ``load_model``).
        threshold: overall score (0-1) at or above which a head counts as detected (default 0.4).
        **kwargs: keyword arguments of ``InductionHeadDetector`` or of ``InductionHeadDetector.detect``:

            - ``sequence_length`` (int or ``None``): tokens per probe, BOS not counted; ``None``: 128 or
              what the model's positions and vocabulary allow (said in a warning).
            - ``n_repeats`` (int, 2): times the random block is repeated.
            - ``patterns`` (names, ``("repeated",)``): probe patterns, pooled (``"abab"``, ``"copy"``,
              ``"natural"``, ``"ngram"`` too).
            - ``keep_patterns`` (``(layer, head)`` pairs): heads whose ``[batch, q, k]`` patterns are kept
              in ``result.kept_patterns``.
            - ``batch_size`` (int, 8): sequences per pattern; ``chunk_size`` (int, 8): sequences per
              forward pass, each with its control.
            - ``n_bootstrap`` (int, 1000): bootstrap resamples for the 95% intervals.
            - ``intervals`` (names, none): metrics from ``INTERVAL_METRICS`` (``"prefix_matching"``,
              ``"contrast"``, ``"copying"``) whose intervals are kept in ``HeadScore.intervals``.
            - ``seed`` (int, 0): probe tokens and bootstrap; ``vocab_size`` (int or ``None``): draw ids from
              ``[0, vocab_size)``; ``bos`` (bool, ``True``): prepend BOS where the model has one.
            - ``progress`` (bool or ``None``): progress bar; ``remote`` (``False``, ``True`` or a
              ``RemoteConfig``): run on NDIF; ``stack`` (``"decoder"`` or ``"encoder"``): which
              self-attention of an encoder-decoder is scored.

    Returns:
        DetectionResult: one ``HeadScore`` per head of the ``n_layers x n_heads`` grid (``overall_score``
            in [0, 1] with ``ci_low``/``ci_high``, every metric above, and the ``intervals`` asked for), the
            threshold, the detected heads best first (``induction_heads``) and the settings that produced
            them (``settings``: sequence length, batch size, patterns, ...).

    Raises:
        InputError: when ``threshold`` is outside [0, 1]; a count (``batch_size``, ``chunk_size``,
            ``n_bootstrap``) is not a positive integer; an ``intervals`` name or a pattern is unknown;
            ``sequence_length`` does not fit the model (the message names the length that does);
            ``keep_patterns`` names a head the model lacks; the vocabulary size cannot be told (pass
            ``vocab_size=``); or the model is in training mode (call ``model.eval()``).
        ModelLoadError: when ``model`` is a name or path that cannot be loaded.
        AttentionNotFoundError: when no attention module can be found (use ``CustomSites``).
        CaptureCheckError: when a captured pattern fails its self-check (row sums, causal mask, finiteness).
        RemoteExecutionError: with ``remote``, when the NDIF run fails (nothing partial is returned).
        TypeError: for a keyword argument that neither the detector nor ``detect`` takes.

    Examples:
        >>> from induction_nb import HandBuiltInduction, detect_induction_heads
        >>> model = HandBuiltInduction()  # a 2-layer transformer with a known induction head, L1H0
        >>> result = detect_induction_heads(model, sequence_length=32)
        >>> [(h.layer, h.head) for h in result.get_top_heads(1)]
        [(1, 0)]
        >>> result.induction_heads  # overall score >= 0.4
        [(1, 0)]
        >>> head = result.score(1, 0)
        >>> round(head.overall_score, 2), head.ci_low <= head.overall_score <= head.ci_high
        (0.86, True)
        >>> abs(head.overall_score - head.contrast * head.copying) < 1e-6
        True

        L1H1 attends by position alone: a high prefix-matching score, but no contrast, so it is not
        detected; L0H0 is the previous-token head L1H0 composes with:

        >>> positional = result.score(1, 1)
        >>> positional.prefix_matching > 0.9, positional.contrast < 0.1
        (True, True)
        >>> result.previous_token_heads()
        [(0, 0)]

        Intervals of the overall score's parts, from the same resamples:

        >>> result = detect_induction_heads(model, sequence_length=32, n_bootstrap=200, intervals=["contrast"])
        >>> low, high = result.score(1, 0).intervals["contrast"]
        >>> 0.5 < low <= high <= 1
        True
    """
    detect_keys = {"sequence_length", "n_repeats", "patterns", "keep_patterns"}
    detect_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in detect_keys}
    return InductionHeadDetector(model, threshold, **kwargs).detect(**detect_kwargs)
