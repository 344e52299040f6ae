"""The bootstrap interval: the chunked computation equals one big one, and stays small for a 70B-sized scan."""

import subprocess
import sys
import textwrap

import torch

from induction_nb.metrics import control_key
from induction_nb.metrics.stats import bootstrap_head


def _reference(prefix, control, copy, n, seed, level=0.95):
    m = prefix.shape[0]
    idx = torch.randint(m, (n, m), generator=torch.Generator().manual_seed(seed))
    p, c, y = (torch.nanmean(t[idx], dim=1) for t in (prefix, control, copy))
    overall = (p - c).clamp(0, 1) * y
    alpha = (1 - level) / 2
    return torch.nanquantile(overall, torch.tensor([alpha, 1 - alpha]), dim=0)


def test_chunked_interval_equals_the_direct_one(monkeypatch):
    import induction_nb.metrics.stats as stats

    g = torch.Generator().manual_seed(0)
    prefix, control, copy = (torch.rand(12, 5, 7, generator=g) for _ in range(3))
    prefix[3, 1, 2] = float("nan")  # a sequence without a scored query
    monkeypatch.setattr(stats, "_CHUNK_BYTES", 4 * 200 * 12 * 2 * 3)  # 3 heads per chunk
    low, high = bootstrap_overall(prefix, control, copy, n=200, seed=5)
    want_low, want_high = _reference(prefix, control, copy, 200, 5)
    torch.testing.assert_close(low, want_low, rtol=0, atol=1e-6)  # summation order
    torch.testing.assert_close(high, want_high, rtol=0, atol=1e-6)
    assert low.shape == (5, 7) and (low <= high).all()


def test_a_70b_sized_scan_needs_under_100_mb():
    """80 layers x 64 heads, 16 sequences, 1000 resamples: the direct computation would hold ~330 MB per
    metric. Measured in a fresh process as the rise of the resident-set high-water mark."""
    code = textwrap.dedent("""
        import torch
        from induction_nb.metrics import control_key
        from induction_nb.metrics.stats import bootstrap_head

        def bootstrap_overall(prefix, control, copy, n):
            per_seq = {"prefix_matching": prefix, control_key("prefix_matching"): control, "copying": copy}
            return bootstrap_head(per_seq, "overall_score", n)

        def hwm():
            return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024

        g = torch.Generator().manual_seed(0)
        x = [torch.rand(16, 80, 64, generator=g) for _ in range(3)]
        bootstrap_overall(*[t[:, :2] for t in x], n=1000)  # warm up torch's kernels and thread pool
        before = hwm()
        low, high = bootstrap_overall(*x, n=1000)
        assert low.shape == (80, 64)
        print(hwm() - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) < 100


def bootstrap_overall(prefix, control, copy, n=1000, seed=0):
    """The overall score's interval from its three per-sequence inputs."""
    per_seq = {"prefix_matching": prefix, control_key("prefix_matching"): control, "copying": copy}
    return bootstrap_head(per_seq, "overall_score", n, seed)
