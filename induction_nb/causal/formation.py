"""Induction heads forming across training checkpoints (Olsson et al. 2022, argument 1: co-occurrence), one call.

``formation(checkpoints)`` scans every checkpoint with the public tools, each called exactly as a user would:

* ``detect_induction_heads(model, threshold, batch_size=, seed=, sequence_length=, intervals=("prefix_matching",
  ...))``: every head's induction (prefix-matching) score with its 95% bootstrap interval, and any other metric
  a detection measures (``metrics=``; with intervals for ``contrast`` and ``copying``, the overall score's parts);
* ``icl_score(model, sequence_length=, batch_size=, seed=, n_bootstrap=)``: the in-context-learning score on
  repeated random tokens (loss on the repeat minus loss on the first block, nats), or with ``texts=`` Olsson et
  al.'s own (loss at token 500 minus token 50 of your documents: ``icl_score(model, texts=...)``);

so a formation score equals a fresh detection on that checkpoint. The phase change is marked by the rule of
``causal.phase_change`` (a rise window of the best head's score, abrupt or not), with the share of the ICL
improvement inside it.

Checkpoints: a ``TrainingRun`` (``train_induction_model``: its kept weights), or a list of folders written by
``save_pretrained`` (loaded with ``load_model``: Pythia's public checkpoints downloaded as
``huggingface-cli download EleutherAI/pythia-160m --revision step3000 --local-dir pythia-160m/step3000``), of
models, or of state dicts (with ``model=``: the architecture they load into; the user's model is copied, never
changed). Steps come from ``steps=``, the run, or a ``step<N>`` / ``checkpoint-<N>`` folder name.

Each checkpoint's result is cached (``causal.formation_cache``) as soon as it is measured, so a long series that
stops (a crash, a closed laptop) resumes where it stopped; a changed setting, checkpoint or package version is a
new entry. Local only: for NDIF, scan each revision with ``detect_induction_heads(remote=...)``.
"""

from __future__ import annotations

import copy
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._validate import check_choice, check_int, check_probability
from ..analysis.detector import INTERVAL_METRICS, detect_induction_heads
from ..analysis.results import DetectionResult, ScanResult
from ..engine.models import load_model
from ..engine.wrappers import unwrap
from ..errors import InputError, warn_user
from ..metrics import REGISTRY, pattern_metric_list
from ..metrics.registry import HeadMetric
from ..probes.texts import load_texts
from .ablation import icl_score
from .formation_cache import FormationCache, architecture, checkpoint_identity
from .phase_change import RiseWindow, log_spaced, rise_window

__all__ = ["FormationResult", "formation"]

_STEP = re.compile(r"(?:^|[^a-z])(?:step|checkpoint)[-_]?(\d+)", re.IGNORECASE)  # step1000-tokens4B too


@dataclass(frozen=True)
class _Checkpoint:
    step: int
    label: str
    identity: Any  # what the cache keys on (a folder's files, a digest of the weights)
    load: Any  # () -> the model


@dataclass(frozen=True)
class FormationResult:
    """Every head's induction score and the ICL score across training checkpoints, and the phase change.

    Returned by ``formation``. Scores across checkpoints. ``steps`` and ``labels`` ``[checkpoint]``;
    ``scores``: ``{metric: [checkpoint, layer, head]}`` (``"prefix_matching"``, the induction score, always;
    NaN where a layer has no attention); ``intervals``: ``{metric: (low, high)}``, each ``[checkpoint, layer,
    head]`` (95% bootstrap; prefix matching, and contrast and copying where asked for); ``icl``, ``icl_low``,
    ``icl_high`` ``[checkpoint]``: the ICL score and its interval (nats; negative: the model uses its
    context); ``icl_measure``: what it was measured on; ``window``: the best head's rise window
    (``causal.phase_change``; ``None`` without a rise); ``seconds`` per checkpoint (measuring, 0 where
    cached; loading included); ``cached``; ``detections``: each checkpoint's ``DetectionResult``.

    Also: ``phase_change`` (the ``window`` where it is abrupt, else ``None``), ``best`` (``[checkpoint]``, the
    highest induction score over heads), ``head(layer, head, metric)`` (``[checkpoint]``, one head's series;
    ``InputError`` for an unknown metric or head) and ``top_heads(n)`` (the highest induction scores at the
    last checkpoint); ``str(result)`` is a table of the best head per checkpoint.

    Attributes:
        steps: each checkpoint's training step, increasing.
        labels: each checkpoint's label (``"step N"`` for a run, the folder name, or ``"#i"`` for a model or
            state dict at list position ``i``).
        scores: ``{metric: float tensor [checkpoint, layer, head]}``; ``"prefix_matching"`` (the induction
            score, 0-1) always, plus the ``metrics`` asked for; NaN where a layer has no attention.
        intervals: ``{metric: (low, high)}``, each ``[checkpoint, layer, head]``: the 95% bootstrap interval
            of prefix matching, and of ``contrast`` and ``copying`` where asked for.
        icl: ``[checkpoint]``: the ICL score (nats; negative: the model uses its context).
        icl_low: ``[checkpoint]``: the lower end of its 95% bootstrap interval.
        icl_high: ``[checkpoint]``: the upper end of that interval.
        icl_measure: what the ICL score was measured on: ``"repeated random tokens, repeat - first block"``
            or ``"documents, loss[500] - loss[50]"`` (with ``texts``).
        window: the best head's ``RiseWindow`` (``causal.phase_change``), abrupt or not; ``None`` where the
            best score never rises by ``min_rise``.
        seconds: wall time per checkpoint (loading and measuring; 0 where cached).
        cached: per checkpoint, whether its result came from the cache.
        settings: the settings that produced the scores (``metrics``, ``threshold``, ``batch_size``,
            ``seed``, ``n_bootstrap``, ``sequence_length``, ``texts``, ``min_rise``, ``max_share``,
            ``log_steps``).
        detections: each checkpoint's ``DetectionResult`` (not compared, not in the repr).

    Examples:
        >>> import torch
        >>> from induction_nb import HandBuiltInduction, formation
        >>> final = HandBuiltInduction()  # stands for the last checkpoint: L1H0 is an induction head
        >>> blank = {k: torch.zeros_like(v) for k, v in final.state_dict().items()}  # nothing learnt yet
        >>> result = formation([blank, blank, final.state_dict()], model=final, steps=[0, 900, 1000],
        ...                    cache_dir=False, sequence_length=24, batch_size=2, n_bootstrap=10)
        >>> tuple(result.scores["prefix_matching"].shape), result.labels
        ((3, 2, 4), ('#0', '#1', '#2'))
        >>> result.top_heads(1), (result.head(1, 0) > 0.5).tolist()  # L1H0 forms at the last checkpoint
        ([(1, 0)], [False, False, True])
        >>> bool(result.icl[-1] < -0.5), result.cached
        (True, (False, False, False))
    """

    steps: tuple[int, ...]
    labels: tuple[str, ...]
    scores: dict
    intervals: dict
    icl: torch.Tensor
    icl_low: torch.Tensor
    icl_high: torch.Tensor
    icl_measure: str
    window: RiseWindow | None
    seconds: tuple[float, ...]
    cached: tuple[bool, ...]
    settings: dict
    detections: tuple[DetectionResult, ...] = field(compare=False, repr=False)

    @property
    def phase_change(self) -> RiseWindow | None:
        """The rise window where it is abrupt (a phase change by ``causal.phase_change``'s rule), else ``None``."""
        return self.window if self.window is not None and self.window.abrupt else None

    @property
    def best(self) -> torch.Tensor:
        """``[checkpoint]``: the highest induction score over heads at each checkpoint."""
        return _best(self.scores["prefix_matching"])

    def head(self, layer: int, head: int, metric: str = "prefix_matching") -> torch.Tensor:
        """``[checkpoint]``: one head's ``metric`` across the checkpoints (``InputError`` for an unknown one)."""
        grid = self.scores.get(metric)
        if grid is None:
            raise InputError(f"no {metric!r} scores: this scan has {sorted(self.scores)} (pass metrics=[...])")
        if not (0 <= layer < grid.shape[1] and 0 <= head < grid.shape[2]):
            raise InputError(f"no head L{layer}H{head}: the grid is {grid.shape[1]} layers x {grid.shape[2]} heads")
        return grid[:, layer, head]

    def top_heads(self, n: int = 5) -> list[tuple[int, int]]:
        """The ``n`` heads with the highest induction score at the last checkpoint (ties in ``(layer, head)``
        order); ``InputError`` where ``n`` is not an integer >= 0."""
        check_int("n", n, 0)
        last = torch.nan_to_num(self.scores["prefix_matching"][-1], nan=-1.0)
        order = last.flatten().argsort(descending=True, stable=True)[:n].tolist()
        return [(i // last.shape[1], i % last.shape[1]) for i in order]

    def __str__(self) -> str:
        n = len(self.steps)
        lines = [f"Induction heads across {n} checkpoint{'s' * (n != 1)} (ICL score: {self.icl_measure})"]
        lines.append(f"  {'step':>8}  {'best head':>9}  {'induction score':>22}  {'ICL score (nats)':>24}")
        grid, (low, high) = self.scores["prefix_matching"], self.intervals["prefix_matching"]
        for i, step in enumerate(self.steps):
            flat = torch.nan_to_num(grid[i], nan=-1.0).flatten()
            j = int(flat.argmax())
            l, h = divmod(j, grid.shape[2])
            lines.append(
                f"  {step:>8}  {f'L{l}H{h}':>9}  {float(grid[i, l, h]):.3f} [{float(low[i, l, h]):.3f}, "
                f"{float(high[i, l, h]):.3f}]  {float(self.icl[i]):+.3f} [{float(self.icl_low[i]):+.3f}, "
                f"{float(self.icl_high[i]):+.3f}]" + ("  (cached)" if self.cached[i] else "")
            )
        lines.append("  " + describe_window(self.window))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"FormationResult({len(self.steps)} checkpoints, {describe_window(self.window)})"


def _best(grid: torch.Tensor) -> torch.Tensor:
    """``[checkpoint]``: the highest score over heads of ``grid`` ``[checkpoint, layer, head]`` (NaN left out)."""
    return torch.nan_to_num(grid, nan=-1.0).flatten(1).max(1).values


def describe_window(w: RiseWindow | None) -> str:
    """One sentence on the rise window (``FormationResult.window``)."""
    if w is None:
        return "no phase change: the best induction score does not rise by min_rise"
    kind = "phase change" if w.abrupt else "gradual rise (no phase change)"
    icl = "" if w.icl_share != w.icl_share else f"; {w.icl_share:.0%} of the ICL improvement inside it"
    span = f"{w.linear_share:.0%} of training" + (f" ({w.share:.0%} in log steps)" if w.log_steps else "")
    return f"{kind}: steps {w.start}-{w.end}, +{w.rise:.2f} over {span}{icl}"


def formation(
    checkpoints: Any,
    *,
    model: Any = None,
    steps: Sequence[int] | None = None,
    metrics: Sequence[str] = (),
    threshold: float = 0.4,
    sequence_length: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    n_bootstrap: int = 1000,
    texts: Any = None,
    cache_dir: str | os.PathLike | bool | None = None,
    min_rise: float = 0.2,
    max_share: float = 0.25,
    log_steps: bool | None = None,
    progress: bool | None = None,
) -> FormationResult:
    """Every head's induction score and the ICL score at each checkpoint, and where the phase change is.

    Olsson et al. 2022 (arXiv 2209.11895), argument 1 (co-occurrence), as one call. Every checkpoint is
    scanned with the public tools, each called exactly as a user would, so a formation score equals a fresh
    detection on that checkpoint: ``detect_induction_heads`` (every head's induction (prefix-matching)
    score with its 95% bootstrap interval, and any other metric a detection measures, ``metrics=``; with
    intervals for ``contrast`` and ``copying``) and ``icl_score`` (the in-context-learning score on
    repeated random tokens: loss on the repeat minus loss on the first block, nats; or with ``texts=``
    Olsson et al.'s own: loss at token 500 minus token 50 of your documents). The phase change is marked by
    the rule of ``causal.phase_change`` (a rise window of the best head's score, abrupt or not), with the
    share of the ICL improvement inside it.

    Each checkpoint's result is cached as soon as it is measured, so a long series that stops (a crash, a
    closed laptop) resumes where it stopped; a changed setting, checkpoint or package version is a new
    entry. Local only: for NDIF, scan each revision with ``detect_induction_heads(remote=...)``. Cost: one
    detection and one ICL measurement per checkpoint, plus loading it.

    Args:
        checkpoints: a ``TrainingRun`` (``train_induction_model``: its kept weights), or a list of folders
            written by ``save_pretrained`` (loaded with ``load_model``; e.g. Pythia's public checkpoints,
            ``huggingface-cli download EleutherAI/pythia-160m --revision step3000 --local-dir
            pythia-160m/step3000``), of models, or of state dicts (state dicts need ``model=``).
        model: the architecture state dicts load into (the model object; copied, never changed); unused
            for other checkpoints.
        steps: each checkpoint's training step, one per checkpoint, distinct (default: the run's, the folder
            names' ``step<N>``/``checkpoint-<N>``, else 0, 1, 2...). Checkpoints are sorted by step.
        metrics: other registered metrics the detection measures, kept per checkpoint (``previous_token``,
            ``copying``...); ``"prefix_matching"`` is always measured.
        threshold: as in ``detect_induction_heads`` (overall score 0-1 at which a head is detected; 0.4).
        sequence_length: tokens per probe sequence, as in ``detect_induction_heads`` and ``icl_score``
            (``None``: their defaults; ``icl_score`` needs at least 24).
        batch_size: probe sequences per checkpoint, as in ``detect_induction_heads`` and ``icl_score`` (at
            least 2; default 8); with ``texts``, the documents per batch.
        seed: seed of the probes and the bootstrap, as in ``detect_induction_heads`` and ``icl_score``.
        n_bootstrap: resamples of both intervals (at least 1; default 1000).
        texts: documents for Olsson et al.'s ICL score (token 500 minus token 50; anything ``load_texts``
            reads); ``None`` (default) for repeated random tokens.
        cache_dir: where each checkpoint's result is kept (default ``$INDUCTION_NB_CACHE/formation``, else
            ``~/.cache/induction_nb/formation``; ``False``: no cache).
        min_rise: the phase-change rule (``causal.phase_change``): the least rise of the best score (0-1;
            default 0.2).
        max_share: the phase-change rule: the largest share of the training span (0-1; default 0.25) an
            abrupt rise window may cover.
        log_steps: the phase-change rule: measure spans in log steps too (``None``: where the steps are
            log-spaced, as Pythia's are).
        progress: a progress bar over the checkpoints (``None``: only for more than 3).

    Returns:
        FormationResult: per checkpoint, every head's scores ``[checkpoint, layer, head]`` with their
        intervals, the ICL score (nats) with its interval, and the best head's rise window (``window``;
        ``phase_change`` where it is abrupt).

    Raises:
        InputError: for an empty or unreadable list, a single folder, model or state dict instead of a list,
            a path that is not a folder, state dicts without ``model=`` (or with a name, an offloaded model,
            or weights that do not fit it), a run that kept no weights, steps that do not match the list or
            repeat, folder names with and without a step mixed, an unknown metric, checkpoints with
            different head grids, settings out of range, or what ``detect_induction_heads`` and
            ``icl_score`` refuse (e.g. a ``sequence_length`` below 24), found at the first checkpoint measured.
        ModelLoadError: when a folder cannot be loaded.
        AttentionNotFoundError: when no attention module can be found in a checkpoint's model.
        CaptureCheckError: when a captured pattern fails its self-check.

    Examples:
        Two blank checkpoints, then the trained weights (the hand-built model): the induction score and the
        ICL score jump together in the last tenth of training, a phase change:

        >>> import torch
        >>> from induction_nb import HandBuiltInduction, formation
        >>> final = HandBuiltInduction()
        >>> blank = {k: torch.zeros_like(v) for k, v in final.state_dict().items()}
        >>> result = formation([blank, blank, final.state_dict()], model=final, steps=[0, 900, 1000],
        ...                    cache_dir=False, sequence_length=24, batch_size=2, n_bootstrap=10)
        >>> result.steps, (result.best > 0.5).tolist()  # the best head's induction score
        ((0, 900, 1000), [False, False, True])
        >>> result.phase_change.start, result.phase_change.end
        (900, 1000)
        >>> result  # doctest: +ELLIPSIS
        FormationResult(3 checkpoints, phase change: steps 900-1000, +0.90 over 10% of training; 100% of the ICL ...)

        A short training run of the tiny attention-only model (its kept weights):

        >>> from induction_nb import train_induction_model  # doctest: +SKIP
        >>> run = train_induction_model(0, steps=2000, every=100)  # doctest: +SKIP
        >>> print(formation(run))  # doctest: +SKIP
        Induction heads across 21 checkpoints ...
    """
    settings = _check(metrics, threshold, batch_size, seed, n_bootstrap, min_rise, max_share)
    texts = None if texts is None else load_texts(texts)  # read once: an iterator would be spent after one use
    items = _checkpoints(checkpoints, model, steps)
    settings.update(sequence_length=sequence_length, texts=texts is not None)
    cache = FormationCache.of(cache_dir, settings, texts)
    records, seconds, cached = [], [], []
    loop = items
    if progress or (progress is None and len(items) > 3):
        from tqdm.auto import tqdm

        loop = tqdm(items, desc="formation", unit="checkpoint")
    with warnings.catch_warnings(record=True) as caught:  # each checkpoint says the same: said once, after
        warnings.simplefilter("always")
        for item in loop:
            record = cache.load(item.identity) if cache is not None else None
            cached.append(record is not None)
            start = time.perf_counter()
            if record is None:
                record = _measure(item.load(), settings, texts)
                if cache is not None:
                    cache.store(item.identity, record)
            seconds.append(0.0 if cached[-1] else time.perf_counter() - start)
            records.append(record)
    for message, category in dict.fromkeys((str(w.message), w.category) for w in caught):
        warn_user(message, category)
    return _result(items, records, settings, seconds, cached, (min_rise, max_share, log_steps))


def _check(metrics: Any, threshold: Any, batch_size: Any, seed: Any, n_bootstrap: Any, min_rise: Any, share: Any):
    if isinstance(metrics, str):
        metrics = (metrics,)
    scanned = [m.name for m in pattern_metric_list()] + [k for k, v in REGISTRY.items() if isinstance(v, HeadMetric)]
    for m in metrics:  # what a detection measures (concept_induction, ov_copying... come from other tools)
        check_choice("metric", m, scanned)
    check_probability("threshold", threshold)
    check_probability("min_rise", min_rise)
    check_probability("max_share", share)
    check_int("batch_size", batch_size, 2)  # an interval needs two sequences
    check_int("seed", seed, 0)
    check_int("n_bootstrap", n_bootstrap, 1)
    wanted = ["prefix_matching", *[m for m in metrics if m != "prefix_matching"]]
    return {
        "metrics": wanted,
        "threshold": threshold,
        "batch_size": batch_size,
        "seed": seed,
        "n_bootstrap": n_bootstrap,
    }


def _checkpoints(checkpoints: Any, model: Any, steps: Any) -> list[_Checkpoint]:
    """The checkpoints as (step, label, identity, loader), sorted by step."""
    if hasattr(checkpoints, "model_at") and hasattr(checkpoints, "states"):  # a TrainingRun
        run = checkpoints
        given = [
            (s, f"step {s}", ("run", checkpoint_identity(state)), _loader(run.model_at, s))
            for s, state in zip(run.steps, run.states)
        ]
        if len(run.states) != len(run.checkpoints):
            raise InputError("this training run kept no checkpoint weights: train it again with train_induction_model")
    elif isinstance(checkpoints, (str, os.PathLike, Mapping, torch.nn.Module)) or not isinstance(checkpoints, Sequence):
        raise InputError("checkpoints must be a TrainingRun or a list of folders, models or state dicts")
    else:
        given = _named_steps([_item(c, i, model) for i, c in enumerate(checkpoints)], steps)
    if not given:
        raise InputError("no checkpoints given")
    if steps is not None:
        steps = [check_int("steps", s, 0) for s in steps]
        if len(steps) != len(given):
            raise InputError(f"{len(steps)} steps for {len(given)} checkpoints: give one step per checkpoint")
        given = [(s, label, ident, load) for s, (_, label, ident, load) in zip(steps, given)]
    seen = [g[0] for g in given]
    if len(set(seen)) != len(seen):
        raise InputError(f"checkpoint steps repeat ({seen}): pass steps=[...] with one distinct step per checkpoint")
    return [_Checkpoint(*g) for g in sorted(given, key=lambda g: g[0])]


def _loader(fn: Any, *args: Any) -> Any:
    return lambda: fn(*args)


def _item(c: Any, index: int, model: Any) -> tuple:
    if isinstance(c, (str, os.PathLike)):
        path = Path(c).expanduser()
        if not path.is_dir():
            raise InputError(f"checkpoint {str(c)!r} is not a folder: pass folders written by save_pretrained")
        found = _STEP.search(path.name)
        step = int(found.group(1)) if found else None  # _named_steps: all named, or none
        return step, path.name, ("folder", str(path.resolve()), checkpoint_identity(path)), _loader(load_model, path)
    if isinstance(c, Mapping):
        module = _template(model)
        ident = ("state", checkpoint_identity(c), architecture(module))
        return None, f"#{index}", ident, _loader(_with_state, module, c)
    if isinstance(c, torch.nn.Module) or hasattr(c, "_module"):
        ident = ("model", checkpoint_identity(c), architecture(unwrap(getattr(c, "_module", c))))
        return None, f"#{index}", ident, _loader(lambda m: m, c)
    raise InputError(f"checkpoint {index} is a {type(c).__name__}: pass folders, models or state dicts")


def _named_steps(given: list[tuple], steps: Any) -> list[tuple]:
    """Folders' steps from their names: all or none (a mix would interleave names and list positions)."""
    named = [g[0] is not None for g in given]
    if steps is None and any(named) and not all(named):
        odd = [g[1] for g, n in zip(given, named) if not n]  # a model or state dict has no name to read
        raise InputError(f"no step<N> or checkpoint-<N> in the names of {odd[:3]}: pass steps=[...] for all")
    if steps is None and not any(named) and len(given) > 1 and any(g[2][0] == "folder" for g in given):
        warn_user("induction_nb: no step in the folder names: the checkpoints' steps are their order (0, 1, ...)")
    return [(i if g[0] is None else g[0], *g[1:]) for i, g in enumerate(given)]


def _template(model: Any) -> torch.nn.Module:
    """The module state dicts load into: ``InputError`` for none, a name, or an offloaded model (loading into its
    meta parameters would change nothing: every checkpoint would be scored with the template's weights)."""
    if model is None:
        raise InputError("state dict checkpoints need model=: the model whose architecture they load into")
    module = unwrap(getattr(model, "_module", model))  # an nnsight wrapper or a compiled copy: its module
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"model= must be the model object the state dicts load into, got {type(model).__name__}")
    if any(p.is_meta for p in module.parameters()):
        raise InputError(
            "model= is offloaded (its weights are on the meta device): state dicts cannot be loaded into it; "
            "pass the model loaded in memory, or save each checkpoint with save_pretrained and pass the folders"
        )
    return module


def _with_state(module: torch.nn.Module, state: Mapping) -> torch.nn.Module:
    """A copy of ``module`` holding ``state``, in its mode (the user's model is never changed)."""
    clone = copy.deepcopy(module)
    try:
        clone.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"a state dict does not fit model= ({type(module).__name__}): {str(e)[:300]}") from None
    return clone


def _measure(model: Any, settings: dict, texts: Any) -> dict:
    """One checkpoint: the public tools' results as JSON (what the cache keeps)."""
    detection = detect_induction_heads(
        model,
        settings["threshold"],
        batch_size=settings["batch_size"],
        seed=settings["seed"],
        sequence_length=settings["sequence_length"],
        n_bootstrap=settings["n_bootstrap"],
        intervals=tuple(m for m in settings["metrics"] if m in INTERVAL_METRICS),
        progress=False,
    )
    common = {"seed": settings["seed"], "n_bootstrap": settings["n_bootstrap"]}
    if texts is not None:
        curve = icl_score(model, texts=texts, batch_size=settings["batch_size"], **common)
        icl, interval = curve.icl_score, (curve.ci_low, curve.ci_high)
    else:
        out = icl_score(model, sequence_length=settings["sequence_length"], batch_size=settings["batch_size"], **common)
        icl, interval = out["repeated"], out["repeated_interval"]
    return {"detection": detection.to_dict(), "icl": float(icl), "icl_interval": [float(v) for v in interval]}


def _grid(result: ScanResult, metric: str, part: int | None = None) -> torch.Tensor:
    """``[layer, head]``: ``metric`` (or, with ``part`` 0/1, its interval's low/high) of every head; NaN where
    the scan has no such head or value."""
    grid = torch.full((result.n_layers, result.n_heads), float("nan"))
    for s in result.head_scores:
        value = s.values.get(metric) if part is None else s.intervals.get(metric, (None, None))[part]
        grid[s.layer, s.head] = float("nan") if value is None else float(value)
    return grid


def _result(items: list, records: list, settings: dict, seconds: list, cached: list, rule: tuple) -> FormationResult:
    detections = tuple(ScanResult.from_dict(r["detection"]) for r in records)
    shapes = {(d.n_layers, d.n_heads) for d in detections}
    if len(shapes) > 1:
        raise InputError(f"the checkpoints have different head grids {sorted(shapes)}: one model's checkpoints only")
    scores = {m: torch.stack([_grid(d, m) for d in detections]) for m in settings["metrics"]}
    intervals = {
        m: tuple(torch.stack([_grid(d, m, part) for d in detections]) for part in (0, 1))
        for m in settings["metrics"]
        if m in INTERVAL_METRICS
    }
    icl = torch.tensor([r["icl"] for r in records])
    low, high = (torch.tensor([r["icl_interval"][k] for r in records]) for k in (0, 1))
    steps = tuple(item.step for item in items)
    best = _best(scores["prefix_matching"])
    min_rise, max_share, log_steps = rule
    log_steps = log_spaced(steps) if log_steps is None else bool(log_steps)
    window = rise_window(
        steps, best.tolist(), icl.tolist(), min_rise=min_rise, max_share=max_share, log_steps=log_steps
    )
    measure = "documents, loss[500] - loss[50]" if settings["texts"] else "repeated random tokens, repeat - first block"
    return FormationResult(
        steps,
        tuple(item.label for item in items),
        scores,
        intervals,
        icl,
        low,
        high,
        measure,
        window,
        tuple(seconds),
        tuple(cached),
        dict(settings, min_rise=min_rise, max_share=max_share, log_steps=log_steps),
        detections,
    )
