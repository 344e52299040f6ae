"""Architecture sweep: capture_attention against eager ``output_attentions=True`` on every architecture of
the installed transformers' causal-LM, masked-LM and seq-to-seq-LM auto mappings, each built tiny from its
config.

    python bench/arch_sweep.py                 # the table (all families, eager + sdpa), ~12 min on 2 cores
    python bench/arch_sweep.py --check         # exit 1 on any silent mismatch or coverage below the goal
    python bench/arch_sweep.py --only gpt_neo,albert --backends eager
    python bench/arch_sweep.py --families seq2seq --check    # the encoder-decoders only

An encoder-decoder is run as the toolkit promises (``engine.seq2seq``): the tokens as ``decoder_input_ids``
and as the encoder's ``input_ids``. The seq2seq family is measured once per attention stack, each its own
row of the table (``s2s-decoder``: capture's default against eager's ``decoder_attentions``;
``s2s-encoder``: ``stack="encoder"`` against ``encoder_attentions``; ``s2s-cross``: ``stack="cross"``
against ``cross_attentions``; measured, a mismatch fails ``--check``, but not held to the coverage goal:
no tool scores cross-attention); a model of that mapping with one stack (a decoder-only audio LM) has no
reference for the encoder and cross rows. Encoder-decoders of the masked family (BART, mBART, MVP) are
compared on their decoder stack too.

Each architecture ends in exactly one outcome:

* ``parity``: every layer the model reports equals eager's weights within 1e-5, with the same layer labels;
* ``refused``: capture raised an ``InductionNBError`` (a clear message naming the reason and ``CustomSites``);
* ``no_reference``: eager gives no weights to compare with (a state-space model, a build that needs the Hub
  or a kernel this machine lacks, a forward that fails on plain token ids);
* ``mismatch``: capture returned something different from eager (wrong layers, shape or values): a
  silent wrong answer, the worst outcome;
* ``crash``: capture raised something that is not an ``InductionNBError``.

Every architecture runs in a child process with a time box (``--timeout`` seconds), so that one hang or
crash cannot take the sweep down. Coverage = parity / (parity + refused + mismatch + crash): the share of the
architectures that return eager weights on which capture matches them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tiny_configs import VOCAB, build

GOAL = 0.98
SEQ, BATCH = 12, 2


def tokens():
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randint(3, VOCAB - 1, (BATCH, SEQ), generator=g)


def forward_kwargs(model, ids) -> dict:
    """What an encoder-decoder's forward gets besides the ids (the toolkit's documented convention): the
    same tokens as ``decoder_input_ids``, unshifted. Nothing for any other model."""
    import inspect

    return {"decoder_input_ids": ids} if "decoder_input_ids" in inspect.signature(model.forward).parameters else {}


_STACK_OUTPUT = {"decoder": "decoder_attentions", "encoder": "encoder_attentions", "cross": "cross_attentions"}


def eager_reference(model, ids, stack: str = "decoder"):
    """Eager's weights as ``(labels, [[batch, head, q, k], ...], skipped)``, or ``None`` where eager gives no
    attention pattern at all. Each entry of ``output_attentions`` is traced (by identity) to the module call
    that returned it; its label is the index of the layer holding that module in the model's layer list
    (the ``ModuleList`` of ``num_hidden_layers`` entries; for an encoder-decoder's stack, the list holding
    all its modules), or the entry's position where modules repeat or there is no such list. Entries that
    are not attention probabilities (a linear-attention layer's unnormalised weights, RWKV's state) are
    ``skipped``. An encoder-decoder's entries are those of ``stack`` (``_STACK_OUTPUT``)."""
    import torch

    emitted: list[tuple[str, object]] = []
    hooks = [m.register_forward_hook(lambda m, i, o, p=p: emitted.append((p, o))) for p, m in model.named_modules()]
    try:
        with torch.no_grad():
            out = model(ids, output_attentions=True, **forward_kwargs(model, ids))
    finally:
        for h in hooks:
            h.remove()
    seq2seq = getattr(out, "encoder_attentions", None) is not None
    attentions = getattr(out, _STACK_OUTPUT[stack], None) if seq2seq else getattr(out, "attentions", None)
    if stack != "decoder" and not seq2seq:
        return None  # one stack: no encoder or cross-attention to compare with
    entries = [(i, a) for i, a in enumerate(attentions or ()) if isinstance(a, torch.Tensor)]
    patterns, skipped = [], []
    for i, a in entries:
        (patterns if _is_pattern(a, ids.shape[1]) else skipped).append((i, a))
    if not patterns:
        return None
    paths = [_emitter(a, emitted) for _, a in patterns]
    labels = _reference_labels(model, paths, any_length=seq2seq) or [i for i, _ in patterns]
    return tuple(labels), [a.float() for _, a in patterns], [i for i, _ in skipped]


def _is_pattern(a, n_tokens: int) -> bool:
    """Attention probabilities among the tokens ``[batch, head, T, >= T]``: finite, non-negative, rows summing
    to at most 1. Not: attention over pooled positions (Funnel), latents (Perceiver), a banded layout
    (Longformer), a linear-attention layer's unnormalised weights, RWKV's state."""
    import torch

    if a.dim() != 4 or not a.is_floating_point() or not torch.isfinite(a).all():
        return False
    if a.shape[-2] != n_tokens or not n_tokens <= a.shape[-1] < 2 * n_tokens:
        return False  # (more than T extra keys: a banded or relative layout, not keys beyond the tokens)
    a = a.float()
    return bool(a.min() >= -1e-6) and bool(a.sum(-1).max() <= 1 + 1e-4)


def _emitter(tensor, emitted) -> str | None:
    for path, output in emitted:
        items = output if isinstance(output, (tuple, list)) else (output,)
        if any(x is tensor for x in items):
            return path
    return None


def _reference_labels(model, paths, any_length: bool = False) -> list[int] | None:
    """Labels from the layer list, or ``None`` (then: the entries' positions in ``output_attentions``).
    ``any_length``: the list holding all paths, whatever its length (an encoder-decoder's stacks may differ
    from ``num_hidden_layers``)."""
    config = getattr(model, "config", None)
    n = getattr(config, "num_hidden_layers", None) or getattr(
        getattr(config, "text_config", None), "num_hidden_layers", None
    )
    if None in paths or len(set(paths)) != len(paths) or not (isinstance(n, int) or any_length):
        return None
    import torch

    lists = [
        name for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and (any_length or len(m) == n)
    ]
    for name in lists:
        prefix = name + "."
        if all(p.startswith(prefix) for p in paths):
            return [int(p[len(prefix) :].split(".")[0]) for p in paths]
    return None


def run_one(model_type: str, family: str, backends: list[str], stack: str = "decoder") -> dict[str, dict]:
    """One architecture (one attention ``stack`` of it) under each backend: ``{backend: outcome}`` (the eager
    reference is built once)."""
    import warnings

    warnings.filterwarnings("ignore")
    ids = tokens()
    try:
        reference_model = build(model_type, family, "eager")
        want = eager_reference(reference_model, ids, stack)
    except Exception as e:
        return {b: {"outcome": "no_reference", "why": f"eager: {type(e).__name__}: {_short(e)}"} for b in backends}
    if want is None:
        why = "eager returns no attention probabilities" + ("" if stack == "decoder" else f" for a {stack} stack")
        return {b: {"outcome": "no_reference", "why": why} for b in backends}
    out = {}
    for backend in backends:
        if backend == "eager":
            model = reference_model
        else:
            try:
                model = build(model_type, family, backend)
            except Exception as e:
                out[backend] = {"outcome": "unsupported", "why": f"{backend}: {type(e).__name__}: {_short(e)}"}
                continue
        result = compare(model, ids, want, stack)
        if result["outcome"] == "mismatch" and backend != "eager":
            result = _same_activations_retry(model_type, family, backend, want, ids, result)
        out[backend] = result
    return out


def _same_activations_retry(model_type, family, backend, want, ids, first: dict) -> dict:
    """Eager's and sdpa's float32 roundings drift apart layer by layer (large random weights, head_dim 256
    at scale 1, norms upcast to float32): the eager model's weights then differ from what the sdpa model
    computed. The reference becomes eager's own attention function applied to the sdpa model's *own*
    query, key and mask: a kernel that returns sdpa's output and records eager's weights beside it."""
    import sys

    import torch
    import transformers
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    reference = build(model_type, family, "eager")
    eager = getattr(sys.modules[type(reference).__module__], "eager_attention_forward", None)
    if eager is None or backend != "sdpa" or forward_kwargs(reference, ids):
        return first  # (an encoder-decoder's calls are not one stack's: no retry)
    recorded = []

    def kernel(module, q, k, v, mask, **kw):
        n_q, n_k = q.shape[2], k.shape[2]
        if mask is None:  # sdpa's is_causal path: the same causal (and sliding) mask, made explicit
            allowed = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
            if kw.get("sliding_window"):
                allowed &= ~torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q - kw["sliding_window"])
            mask = allowed if getattr(module, "is_causal", True) else None
        add = (
            mask if mask is None or mask.dtype != torch.bool else torch.zeros(mask.shape).masked_fill(~mask, -torch.inf)
        )
        recorded.append(eager(module, q, k, v, add, **kw)[1].float())
        return sdpa_attention_forward(module, q, k, v, mask, **kw)

    transformers.AttentionInterface.register("sweep_recorded_sdpa", kernel)
    transformers.AttentionMaskInterface.register("sweep_recorded_sdpa", sdpa_mask)
    try:
        model = build(model_type, family, "sweep_recorded_sdpa")
        with torch.no_grad():
            model(ids)
        labels, _, skipped = want
        result = compare(model, ids, (labels, recorded[: len(labels)], skipped))
    except Exception as e:
        return {**first, "why": f"{first['why']}; same-activations retry failed: {type(e).__name__}: {_short(e)}"}
    if result["outcome"] == "parity":
        result["why"] = (
            f"against the eager model: {first['why']} (the eager and sdpa forwards drift apart); "
            "parity with eager's function on the sdpa model's own activations"
        )
    return result


def compare(model, ids, want, stack: str = "decoder") -> dict:
    """capture_attention on ``model`` (its ``stack``) against eager's ``want`` (see ``eager_reference``)."""
    import torch

    from induction_nb import capture_attention
    from induction_nb.errors import InductionNBError

    try:
        got = capture_attention(model, ids, stack=stack)
    except InductionNBError as e:
        return {"outcome": "refused", "why": f"{type(e).__name__}: {_short(e)}"}
    except Exception as e:
        return {"outcome": "crash", "why": f"{type(e).__name__}: {_short(e)}", "trace": traceback.format_exc(limit=-6)}
    labels, weights, skipped = want
    if tuple(got.layers) != tuple(labels):
        return {"outcome": "mismatch", "why": f"layers {list(got.layers)} != eager's {list(labels)}"}
    worst = 0.0
    for j, w in enumerate(weights):
        n_heads = w.shape[1]
        g = got.pattern[:, j, :n_heads]
        if got.pattern.shape[2] > n_heads and not torch.isnan(got.pattern[:, j, n_heads:]).all():
            return {"outcome": "mismatch", "why": f"layer {labels[j]} has {n_heads} heads; the rest must be NaN"}
        if w.shape[-1] > w.shape[-2] == g.shape[-1]:  # keys beyond the tokens: eager's token block is the reference
            blocks = [w[..., : w.shape[-2]], w[..., -w.shape[-2] :]]
            w = min(blocks, key=lambda b: float((g - b).abs().max()))
        if tuple(g.shape) != tuple(w.shape):
            return {
                "outcome": "mismatch",
                "why": f"layer {labels[j]}: shape {tuple(g.shape)} != eager's {tuple(w.shape)}",
            }
        worst = max(worst, float((g - w).abs().max()))
    if not worst <= 1e-5:
        return {"outcome": "mismatch", "why": f"max |capture - eager| = {worst:.2e}"}
    result = {"outcome": "parity", "max_err": worst, "layers": list(labels)}
    if skipped:
        result["why"] = f"eager entries {skipped} are not attention probabilities (not compared)"
    return result


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300]


def _child(queue, model_type, family, backends, stack):
    try:
        import torch
        import transformers

        torch.set_num_threads(1)
        transformers.logging.set_verbosity_error()  # a child process of ours: its chatter hides the table
        queue.put(run_one(model_type, family, backends, stack))
    except BaseException as e:
        queue.put({b: {"outcome": "crash", "why": f"{type(e).__name__}: {_short(e)}"} for b in backends})


def sweep_one(
    model_type: str, family: str, backends: list[str], timeout: float, stack: str = "decoder"
) -> dict[str, dict]:
    """``run_one`` in a forked child (torch, transformers and induction_nb already imported by the parent),
    killed after ``timeout`` seconds."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    start = time.perf_counter()
    proc = ctx.Process(target=_child, args=(queue, model_type, family, backends, stack))
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception:
        result = {b: {"outcome": "crash", "why": f"no answer within {timeout:.0f} s (time box)"} for b in backends}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    seconds = round(time.perf_counter() - start, 2)
    for r in result.values():
        r["seconds"] = seconds
    return result


def _preload() -> None:
    """Import once in the parent, so that each forked child starts with everything loaded."""
    import torch  # noqa: F401
    import transformers
    from transformers.models.auto import modeling_auto  # noqa: F401

    import induction_nb.engine.capture  # noqa: F401

    transformers.logging.set_verbosity_error()


def model_types(family: str) -> list[str]:
    from transformers.models.auto import modeling_auto as auto

    names = {
        "causal": auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        "masked": auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        "seq2seq": auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    }[family]
    return sorted(names)


SEQ2SEQ_STACKS = ("decoder", "encoder", "cross")


def _group(row: dict) -> str:
    """The table row of a result: ``family/backend``; the seq2seq family by stack (``s2s-encoder/sdpa``)."""
    family = row["family"] if row["family"] != "seq2seq" else f"s2s-{row.get('stack', 'decoder')}"
    return f"{family}/{row['backend']}"


def summarize(rows: list[dict]) -> dict:
    """Counts per (family, backend) and the coverage on architectures that return eager weights."""
    table: dict = {}
    for r in rows:
        key = _group(r)
        counts = table.setdefault(key, {})
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    for counts in table.values():
        judged = sum(counts.get(k, 0) for k in ("parity", "refused", "mismatch", "crash"))
        counts["coverage"] = round(counts.get("parity", 0) / judged, 4) if judged else None
    return table


def torch_version() -> str:
    import torch

    return torch.__version__


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="causal,masked,seq2seq")
    p.add_argument("--backends", default="eager,sdpa")
    p.add_argument("--only", help="comma-separated model types")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per architecture and backend")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", type=Path, help="write every row as JSON")
    p.add_argument("--check", action="store_true", help=f"exit 1 on a mismatch, a crash or coverage < {GOAL:.0%}")
    args = p.parse_args(argv)
    import transformers

    only = set(args.only.split(",")) if args.only else None
    backends = args.backends.split(",")
    jobs = [
        (t, fam, stack)
        for fam in args.families.split(",")
        for t in model_types(fam)
        for stack in (SEQ2SEQ_STACKS if fam == "seq2seq" else ("decoder",))
        if only is None or t in only
    ]
    print(f"transformers {transformers.__version__}: {len(jobs)} architectures x {backends}", flush=True)
    start = time.perf_counter()
    _preload()
    from concurrent.futures import ThreadPoolExecutor

    rows = []
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = {pool.submit(sweep_one, t, fam, backends, args.timeout, st): (t, fam, st) for t, fam, st in jobs}
        for fut, (t, fam, st) in futures.items():
            for be, r in fut.result().items():
                r = {"model_type": t, "family": fam, "backend": be, **({"stack": st} if fam == "seq2seq" else {}), **r}
                rows.append(r)
                if r["outcome"] != "parity":
                    where = _group(r).split("/")[0]
                    print(f"{where:11} {be:5} {t:28} {r['outcome']:12} {r.get('why', '')[:150]}", flush=True)
    table = summarize(rows)
    print(
        f"\n{'family/backend':17} {'parity':>6} {'refused':>7} {'mismatch':>8} {'crash':>5} {'no_ref':>6} "
        f"{'unsupp':>6} {'coverage':>8}"
    )
    for key, c in table.items():
        cov = "-" if c["coverage"] is None else f"{c['coverage']:.1%}"
        print(
            f"{key:17} {c.get('parity', 0):6} {c.get('refused', 0):7} {c.get('mismatch', 0):8} {c.get('crash', 0):5} "
            f"{c.get('no_reference', 0):6} {c.get('unsupported', 0):6} {cov:>8}"
        )
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "transformers": transformers.__version__,
                    "torch": torch_version(),
                    "date": time.strftime("%Y-%m-%d"),
                    "seconds": round(time.perf_counter() - start),
                    "rows": rows,
                    "table": table,
                },
                indent=1,
            )
        )
    if args.check:
        bad = [r for r in rows if r["outcome"] in ("mismatch", "crash")]
        # cross-attention rows are measured (a mismatch fails) but not held to the goal: no tool scores them
        low = [k for k, c in table.items() if c["coverage"] is not None and c["coverage"] < GOAL and "cross" not in k]
        if bad or low:
            print(f"FAILED: {len(bad)} silent mismatches or crashes; coverage below {GOAL:.0%} in {low}")
            return 1
        print("sweep check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
