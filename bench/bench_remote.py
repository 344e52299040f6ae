"""Bytes a remote scan sends back, against shipping the patterns, on the SmolLM2 architecture.

Runs the real remote path over loopback (tests/ndif_loopback.py: nnsight's protocol, NDIF's execution
code, a server that cannot import induction_nb) serving the embedded SmolLM2. Measures the result
blob of each request (what nnsight's client downloads) for ``detect()`` with batch 8 x (BOS + 2 x 64)
and for ``capture_attention`` of one layer's full patterns on the same 16 sequences; all 30 layers'
patterns are that times 30. Not a test: ``python bench/bench_remote.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import ndif_loopback as lb

from induction_nb import InductionHeadDetector, RemoteConfig, capture_attention, load_model
from induction_nb.engine import embedded_model_folder


def main() -> None:
    import nnsight
    from nnsight.intervention.backends.remote import RemoteBackend

    folder = embedded_model_folder()  # converted once, cached
    nnsight.CONFIG.APP.REMOTE_LOGGING = False
    os.environ.setdefault("NDIF_API_KEY", "loopback-bench-key")
    sizes: list[int] = []
    finalize = RemoteBackend.finalize
    RemoteBackend.finalize = lambda self, content: sizes.append(len(content)) or finalize(self, content)
    with lb.start_server(folder) as server:
        model = load_model(folder, remote=True)
        config = RemoteConfig(host=server.url)
        det = InductionHeadDetector(model, batch_size=8, remote=config, progress=False)
        capture_attention(model, torch.tensor([[1000, 1001, 1002, 1003]]), layers=[0], remote=config)  # discovery
        sizes.clear()
        t0 = time.perf_counter()
        result = det.detect(sequence_length=128)
        t_detect = time.perf_counter() - t0
        detect_bytes = sum(sizes)
        gen = det.generator()
        probe = gen.generate("repeated", 128, 8)
        tokens = torch.cat([probe.tokens, gen.control_for(probe)])
        sizes.clear()
        one = capture_attention(model, tokens, layers=[18], remote=config)
        layer_bytes = sum(sizes)
    print(
        f"remote detect() on SmolLM2 over loopback: {len(result.induction_heads)} heads "
        f"{result.induction_heads}, {t_detect:.1f} s"
    )
    print(f"  bytes returned: {detect_bytes:,} ({detect_bytes / 1024:.1f} KiB; goal <= 64 KB)")
    print(
        f"  one layer's patterns {tuple(one.pattern.shape)}: {layer_bytes:,} bytes; all 30 layers ~ "
        f"{30 * layer_bytes / 2**20:.0f} MiB = {30 * layer_bytes / detect_bytes:.0f}x the scan's scores"
    )


if __name__ == "__main__":
    main()
