"""Requests and bytes of a remote scan on the SmolLM2 architecture, before and after bundling, against
shipping the patterns.

Runs the real remote path over loopback (tests/ndif_loopback.py: nnsight's protocol, NDIF's execution
code, a server that cannot import induction_nb) serving the embedded SmolLM2, and counts what nnsight's
client sends (the serialized request: the trace body, the code it calls, shipped by value, and the token
ids) and receives (the result blob), and the requests the server accepted. Scans: ``detect()`` with batch
8 x (BOS + 2 x 64) in one chunk (the README's scan) and in 4 chunks of 2. *Before*: one request per chunk,
each a plain remote trace (what the detector did before ``engine.remote_jobs``: every chunk waits in NDIF's
queue again); *after*: the detector as it is (all chunks in one ``model.session``, one queue wait). Then
``capture_attention`` of one layer's full patterns on the same 16 sequences; all 30 layers' patterns are
that times 30. Not a test: ``python bench/bench_remote.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import ndif_loopback as lb

from induction_nb import InductionHeadDetector, RemoteConfig, capture_attention, load_model
from induction_nb.analysis.detector import _collect, _LayerReducer
from induction_nb.engine import embedded_model_folder
from induction_nb.engine.capture import stream_attention
from induction_nb.metrics import pattern_metric_list

COUNTS = {"sent": 0, "received": 0}


def _count_bytes() -> None:
    """Count every request's serialized payload and result blob (class-level: every backend, subclasses too)."""
    from nnsight.intervention.backends.remote import RemoteBackend

    serialize, finalize = RemoteBackend._serialize, RemoteBackend.finalize

    def sent(self, tracer):
        blob = serialize(self, tracer)
        COUNTS["sent"] += len(blob)
        return blob

    def received(self, content):
        COUNTS["received"] += len(content)
        return finalize(self, content)

    RemoteBackend._serialize, RemoteBackend.finalize = sent, received


def _measure(server, fn) -> tuple:
    """``(result, requests, bytes sent, bytes received, seconds)`` of ``fn()``."""
    COUNTS.update(sent=0, received=0)
    before, t0 = server.requests(), time.perf_counter()
    result = fn()
    return result, server.requests() - before, COUNTS["sent"], COUNTS["received"], time.perf_counter() - t0


def _per_chunk_scan(det: InductionHeadDetector) -> list:
    """The detector's scan as it ran before bundling: one remote trace per chunk (scores kept, not scored)."""
    gen = det.generator()
    probe = gen.generate("repeated", 128, det.batch_size)
    repeated, control = probe.tokens, gen.control_for(probe)
    outs, step = [], det.chunk_size
    for s in range(0, repeated.shape[0], step):
        reducer = _LayerReducer(repeated[s : s + step], 1 + probe.offset, [], pattern_metric_list())
        outs.append(stream_attention(det.engine, torch.cat([repeated[s : s + step], control[s : s + step]]), reducer))
    return _collect(outs)


def main() -> None:
    import nnsight

    folder = embedded_model_folder()  # converted once, cached
    nnsight.CONFIG.APP.REMOTE_LOGGING = False
    os.environ.setdefault("NDIF_API_KEY", "loopback-bench-key")
    _count_bytes()
    rows = []
    with lb.start_server(folder) as server, tempfile.TemporaryDirectory() as cache:
        model = load_model(folder, remote=True)
        config = RemoteConfig(host=server.url, resume=False)
        capture_attention(model, torch.tensor([[1000, 1001, 1002, 1003]]), layers=[0], remote=config)  # discovery
        for chunk in (8, 2):
            det = InductionHeadDetector(model, batch_size=8, chunk_size=chunk, remote=config, progress=False)
            rows.append((f"chunk_size={chunk}, before", *_measure(server, lambda det=det: _per_chunk_scan(det))[1:]))
            result, *after = _measure(server, lambda det=det: det.detect(sequence_length=128))
            rows.append((f"chunk_size={chunk}, after", *after))
        cached = RemoteConfig(host=server.url, cache_dir=cache)
        det = InductionHeadDetector(model, batch_size=8, chunk_size=2, remote=cached, progress=False)
        _measure(server, lambda: det.detect(sequence_length=128))
        rows.append(("chunk_size=2, rerun (cached)", *_measure(server, lambda: det.detect(sequence_length=128))[1:]))
        gen = det.generator()
        probe = gen.generate("repeated", 128, 8)
        tokens = torch.cat([probe.tokens, gen.control_for(probe)])
        _, _, _, layer_bytes, _ = _measure(server, lambda: capture_attention(model, tokens, layers=[18], remote=config))
    print(f"remote detect() on SmolLM2 over loopback, batch 8 x 129 tokens: {len(result.induction_heads)} heads")
    print(f"  {'scan':<30} {'requests':>8} {'sent':>10} {'received':>10} {'seconds':>8}")
    for name, requests, sent, received, seconds in rows:
        print(f"  {name:<30} {requests:>8} {sent / 1024:>8.1f}KB {received / 1024:>8.1f}KB {seconds:>8.1f}")
    print(
        f"  one layer's patterns [16, 1, 9, 129, 129]: {layer_bytes:,} bytes received; all 30 layers ~ "
        f"{30 * layer_bytes / 2**20:.0f} MiB = {30 * layer_bytes / rows[1][3]:.0f}x the scan's scores"
    )


if __name__ == "__main__":
    main()
