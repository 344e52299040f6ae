"""Remote jobs over loopback (tests/ndif_loopback.py: nnsight's protocol, NDIF's execution code, a server
that cannot import induction_nb): a scan's chunks travel as one session and wait in the queue once; each
chunk's result is cached, so a rerun after the server died mid-scan sends only what is missing and gives
the uninterrupted result; the cache is keyed by the settings; the detector's bar says where the job is;
exact head effects (after a job stopped on the server) and retrieval sweeps are bundled and resumed the
same way. Requests are counted at the
server (``ServerHandle.requests()``)."""

import ndif_loopback as lb
import pytest
import torch
from tiny_models import make_hf

from induction_nb import (
    InductionHeadDetector,
    RemoteConfig,
    RemoteExecutionError,
    capture_attention,
    head_effects,
    load_model,
    needle_accuracy,
)

lb.require_server()

KEY = "loopback-jobs-key-5f3a9c"  # must never reach the cache


class Live:
    """The module's loopback server, restartable on the same port (the host is part of the cache key)."""

    def __init__(self, folder):
        self.folder, self.handle = folder, lb.start_server(folder)
        self.url = self.handle.url

    def requests(self) -> int:
        return self.handle.requests()

    def crash_job(self, skip: int) -> None:
        self.handle.crash_next_request(skip=skip)

    def fail_job(self, message: str, skip: int) -> None:
        self.handle.fail_next_request(message, skip=skip)

    def restart(self) -> None:
        """After a crash: wait for the dead process, start a fresh one on the same port."""
        self.handle.proc.wait(timeout=30)
        assert self.handle.proc.returncode == lb.CRASH_EXIT_CODE, self.handle.log()[-2000:]
        self.handle.stop()
        self.handle = lb.start_server(self.folder, port=self.handle.port)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    make_hf("llama_gqa", "sdpa").save_pretrained(path)
    lb.write_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def server(folder):
    import nnsight

    logging = nnsight.CONFIG.APP.REMOTE_LOGGING
    nnsight.CONFIG.APP.REMOTE_LOGGING = False
    live = Live(folder)
    yield live
    live.handle.stop()
    nnsight.CONFIG.APP.REMOTE_LOGGING = logging


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", KEY)


@pytest.fixture(scope="module")
def models(folder, server):
    """A remote model whose sites are found (discovery's probe requests done) and the same model local."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NDIF_API_KEY", KEY)
        model = load_model(folder, remote=True)
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=RemoteConfig(host=server.url, resume=False))
    return model, load_model(folder)


def scan(model, remote, *, batch_size=4, seed=0, sequence_length=24, progress=False):
    det = InductionHeadDetector(model, batch_size=batch_size, chunk_size=2, seed=seed, remote=remote, progress=progress)
    return det.detect(sequence_length=sequence_length)


def counted(server, fn, *args, **kwargs):
    """``(fn(...), requests the server accepted meanwhile)``."""
    before = server.requests()
    result = fn(*args, **kwargs)
    return result, server.requests() - before


def test_a_remote_scan_is_one_request_and_equals_the_local_scan(models, server, tmp_path):
    model, local = models
    got, sent = counted(server, scan, model, RemoteConfig(host=server.url, cache_dir=str(tmp_path)))
    assert sent == 1, "two chunks, one session: one queue wait"
    want = scan(local, False)
    assert [(s.layer, s.head) for s in got.head_scores] == [(s.layer, s.head) for s in want.head_scores]
    for g, w in zip(got.head_scores, want.head_scores):
        assert dict(g.values) == pytest.approx(dict(w.values), abs=1e-6, nan_ok=True)
        assert (g.ci_low, g.ci_high) == pytest.approx((w.ci_low, w.ci_high), abs=1e-6)


def test_b_server_killed_mid_scan_rerun_sends_only_the_missing_job(models, server, tmp_path):
    model, _ = models
    want = scan(model, RemoteConfig(host=server.url, resume=False), batch_size=8)  # 4 chunks, uninterrupted
    config = RemoteConfig(host=server.url, cache_dir=str(tmp_path), chunks_per_job=2)  # 2 jobs of 2 chunks
    server.crash_job(skip=1)  # the first job completes, the server dies while running the second
    with pytest.raises(RemoteExecutionError, match="2 of 4 chunks are in the cache") as e:
        scan(model, config, batch_size=8)
    assert e.value.kind == "lost"
    server.restart()
    got, sent = counted(server, scan, model, config, batch_size=8)
    assert sent == 1, "only the lost job's two chunks are sent again"
    assert got.head_scores == want.head_scores  # every number equal (HeadScore equality is exact)
    again, sent = counted(server, scan, model, config, batch_size=8)
    assert sent == 0 and again.head_scores == want.head_scores


def test_c_the_cache_is_keyed_by_settings_and_never_holds_the_key(models, server, tmp_path):
    model, _ = models
    config = RemoteConfig(host=server.url, cache_dir=str(tmp_path))
    first, sent = counted(server, scan, model, config, batch_size=2)  # one chunk: one cache entry
    assert sent == 1
    assert counted(server, scan, model, config, batch_size=2)[1] == 0
    assert counted(server, scan, model, config, batch_size=2, seed=1)[1] == 1, "another seed: other probes"
    assert counted(server, scan, model, config, batch_size=2, sequence_length=20)[1] == 1, "another length"
    files = list(tmp_path.rglob("*"))
    assert len(files) == 3 and not any(KEY.encode() in f.read_bytes() for f in files)
    assert counted(server, scan, model, config, batch_size=2) == (first, 0)


def test_a_corrupt_or_foreign_cache_entry_is_ignored(tmp_path):
    from induction_nb.engine.remote_jobs import ResultCache

    config = RemoteConfig(host="http://127.0.0.1:1", api_key=KEY, model_key="m", cache_dir=str(tmp_path))
    cache = ResultCache.of(config, "detect", {"seed": 0})
    value = [{"layer": 0, "metrics": {"x": torch.arange(6.0).view(2, 3)}, "kept": {(0, 1): torch.ones(2)}}]
    cache.store(0, "inputs", value)
    got = cache.load(0, "inputs")
    assert torch.equal(got[0]["metrics"]["x"], value[0]["metrics"]["x"]) and (0, 1) in got[0]["kept"]
    assert cache.load(1, "inputs") is None and cache.load(0, "other inputs") is None
    assert ResultCache.of(config, "detect", {"seed": 1}).load(0, "inputs") is None
    (entry,) = tmp_path.iterdir()
    assert KEY.encode() not in entry.read_bytes() and KEY not in cache.identity
    entry.write_bytes(entry.read_bytes()[:50])  # truncated: ignored, then rewritten whole
    assert cache.load(0, "inputs") is None
    cache.store(0, "inputs", value)
    assert cache.load(0, "inputs") is not None and [p.name for p in tmp_path.iterdir()] == [entry.name]
    assert ResultCache.of(RemoteConfig(resume=False), "detect", {}) is None and ResultCache.of(None, "x", {}) is None


def test_d_the_bar_says_where_the_job_is(models, server, tmp_path, monkeypatch, capsys):
    import nnsight
    import tqdm.auto

    seen = []

    class Recording(tqdm.auto.tqdm):
        def set_postfix_str(self, s="", refresh=True):
            seen.append(s)
            super().set_postfix_str(s, refresh)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    monkeypatch.setattr(nnsight.CONFIG.APP, "REMOTE_LOGGING", True)  # our bar replaces nnsight's status line
    model, _ = models
    config = RemoteConfig(host=server.url, cache_dir=str(tmp_path))
    scan(model, config, progress=None)  # a remote scan shows its bar by default
    for state in ("job 1/1 queued", "job 1/1 running", "job 1/1 running: chunk 1/2", "job 1/1 running: chunk 2/2"):
        assert state in seen, seen
    assert seen[-1] == "job 1/1 done"
    seen.clear()
    scan(model, config, progress=None)
    assert seen == ["cached 2/2"]
    assert capsys.readouterr().out == ""


def test_e_exact_head_effects_bundle_and_resume(models, server, tmp_path):
    model, local = models
    kwargs = dict(sequence_length=24, batch_size=2, chunk=4, progress=False)  # 2 heads per forward: 6 forwards
    want, sent = counted(server, head_effects, model, remote=RemoteConfig(host=server.url, resume=False), **kwargs)
    assert sent == 1
    torch.testing.assert_close(want.effects, head_effects(local, **kwargs).effects, atol=1e-5, rtol=0)
    config = RemoteConfig(host=server.url, cache_dir=str(tmp_path), chunks_per_job=3)
    server.fail_job("Job exceeded the execution timeout of 3600 seconds.", skip=1)  # the 2nd job stopped
    with pytest.raises(RemoteExecutionError, match="execution timeout.*3 of 6 chunks are in the cache") as e:
        head_effects(model, remote=config, **kwargs)
    assert e.value.kind == "job"
    got, sent = counted(server, head_effects, model, remote=config, **kwargs)
    assert sent == 1, "the 3 missing forwards: one job"
    assert torch.equal(got.effects, want.effects) and got.n_forward == want.n_forward


def test_f_only_the_bootstrap_leaves_come_back_per_sequence(models, server, monkeypatch):
    """A remote chunk returns per-sequence values only for the overall score's leaves; every other metric
    comes back as per-head NaN-aware sums and counts, which combine into the local scan's means."""
    import induction_nb.engine.remote_sessions as rs
    from induction_nb.metrics import control_key, pattern_metric_list
    from induction_nb.metrics.stats import _leaves

    model, local = models
    returned = []

    def recording(*args, **kwargs):
        outs, backend = session(*args, **kwargs)
        returned.extend(outs)
        return outs, backend

    session = rs.attention_session
    monkeypatch.setattr(rs, "attention_session", recording)
    dets = [
        InductionHeadDetector(m, batch_size=4, chunk_size=2, remote=r, progress=False)
        for m, r in ((model, RemoteConfig(host=server.url, resume=False)), (local, False))
    ]
    gen = dets[1].generator()
    probe = gen.generate("repeated", 24, 4)
    control = gen.control_for(probe)
    (got, _, layers, _), (want, _, want_layers, _) = [d._run(probe.tokens, control, 1 + probe.offset, []) for d in dets]
    leaves = _leaves("overall_score")
    names = [m.name for m in pattern_metric_list()] + [control_key("prefix_matching")]
    others = [k for k in names if k not in leaves]
    assert len(returned) == 2 and layers == want_layers and sorted(got) == sorted(want) == sorted(names)
    for c, chunk in enumerate(returned):  # each chunk: 2 sequences, [(layer, value, causal)] per site
        for i, (_, value, _) in enumerate(chunk):
            assert sorted(value["metrics"]) == sorted(leaves) and sorted(value["sums"]) == sorted(others)
            for k in others:
                rows = want[k][2 * c : 2 * c + 2, i, : value["sums"][k][0].shape[0]]
                total, count = value["sums"][k]
                torch.testing.assert_close(total, rows.nansum(0), atol=1e-6, rtol=0)
                assert torch.equal(count.long(), (~rows.isnan()).sum(0))
    for k in names:
        expect = want[k] if k in leaves else want[k].nanmean(0, keepdim=True)  # others: one row, the mean
        torch.testing.assert_close(got[k], expect, atol=1e-6, rtol=0, equal_nan=True)


def test_retrieval_sweep_is_one_request_and_resumes(models, server, tmp_path):
    model, local = models
    cases = dict(lengths=[30, 40], depths=[0.2, 0.8], needle_length=3, haystack=list(range(10, 40)))
    config = RemoteConfig(host=server.url, cache_dir=str(tmp_path))
    got, sent = counted(server, needle_accuracy, model, [(1, 0)], remote=config, **cases)
    assert sent == 1, "four contexts decoded in one session"
    assert got == needle_accuracy(local, [(1, 0)], **cases)
    assert counted(server, needle_accuracy, model, [(1, 0)], remote=config, **cases) == (got, 0)
    assert counted(server, needle_accuracy, model, [(1, 1)], remote=config, **cases)[1] == 1, "other heads"


def test_the_budget_sets_chunks_per_job():
    from induction_nb import InputError
    from induction_nb.engine.remote_jobs import Budget

    budget = Budget.of(RemoteConfig(max_job_seconds=100, max_job_bytes=10 * 2**20))
    assert budget.chunks(30.0, 1000) == 3 and budget.chunks(1.0, 4 * 2**20) == 2  # time, then bytes, binds
    with pytest.warns(UserWarning, match="over the job budget.*use a smaller chunk_size"):
        assert budget.chunks(300.0, 1000) == 1
    assert Budget.of(RemoteConfig(chunks_per_job=5)).chunks(1e9, 1e12) == 5
    for bad in (dict(chunks_per_job=0), dict(max_job_seconds=-1), dict(max_job_bytes=True)):
        with pytest.raises(InputError, match="RemoteConfig"):
            Budget.of(RemoteConfig(**bad))


def test_run_chunks_plans_jobs_caches_and_survives_an_unwritable_cache(tmp_path):
    from induction_nb.engine.remote_jobs import JobProgress, ResultCache, run_chunks

    def run(config, calls):
        def job(indices, on_status):
            calls.append(indices)
            on_status("RUNNING", "")
            return [torch.tensor([10.0 * i]) for i in indices], None

        cache = ResultCache.of(config, "unit", {})
        inputs = [[torch.tensor([i])] for i in range(5)]
        kwargs = dict(config=config, cache=cache, tool="unit", seconds_each=1.0, bytes_each=1.0)
        return run_chunks(inputs, job, progress=JobProgress(None, 5), **kwargs)

    config = RemoteConfig(host="http://127.0.0.1:1", model_key="m", cache_dir=str(tmp_path / "c"), chunks_per_job=2)
    calls = []
    assert [float(x) for x in run(config, calls)] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert calls == [[0, 1], [2, 3], [4]]
    (tmp_path / "c" / sorted(p.name for p in (tmp_path / "c").iterdir())[0]).unlink()  # one entry lost
    calls.clear()
    assert [float(x) for x in run(config, calls)] == [0.0, 10.0, 20.0, 30.0, 40.0] and len(calls) == 1
    (tmp_path / "file").write_text("")
    blocked = RemoteConfig(host="http://127.0.0.1:1", model_key="m", cache_dir=str(tmp_path / "file" / "x"))
    with pytest.warns(UserWarning, match="cannot write the resume cache"):
        assert len(run(blocked, [])) == 5


def test_the_cache_identity_holds_the_code_the_tensors_and_the_folder(tmp_path, monkeypatch):
    """A metric redefined under the same module and name, another large tensor, new weights in a local folder:
    each is another identity; a value JSON cannot hold is refused, not keyed by its repr."""
    import importlib
    import sys

    from induction_nb.engine import remote
    from induction_nb.engine.remote_jobs import ResultCache, code_digest

    source = tmp_path / "redefined_metric.py"
    source.write_text("class Metric:\n    name = 'm'\n    def __call__(self, x):\n        return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "redefined_metric", raising=False)
    module = importlib.import_module("redefined_metric")
    before = code_digest(module.Metric())
    source.write_text("class Metric:\n    name = 'm'\n    def __call__(self, x):\n        return 2 * x\n")
    module = importlib.reload(module)
    assert code_digest(module.Metric()) != before and code_digest(module.Metric) == code_digest(module.Metric())

    config = RemoteConfig(host="http://127.0.0.1:1", model_key="folder-key", cache_dir=str(tmp_path / "c"))
    big = torch.zeros(10_000)
    other = big.clone()
    other[5_000] = 1.0  # the reprs of both are the same
    assert ResultCache.of(config, "t", {"x": big}).identity != ResultCache.of(config, "t", {"x": other}).identity
    with pytest.raises(TypeError, match="cannot key"):
        ResultCache.of(config, "t", {"x": object()})

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"old")
    monkeypatch.setitem(remote._FOLDERS, "folder-key", str(weights))
    old = ResultCache.of(config, "t", {}).identity
    (weights / "model.safetensors").write_bytes(b"new weights")
    assert ResultCache.of(config, "t", {}).identity != old


def test_a_local_folder_is_recorded_and_an_entry_holds_no_identity_text(models, server, tmp_path):
    from induction_nb.engine.remote import local_folder, resolve
    from induction_nb.engine.remote_jobs import ResultCache

    model, _ = models
    resolved = resolve(model, RemoteConfig(host=server.url))
    assert local_folder(resolved.model_key) is not None
    config = RemoteConfig(
        host="http://user:pw-secret@127.0.0.1:1", model_key="m", env={"token": "tok-secret"}, cache_dir=str(tmp_path)
    )
    cache = ResultCache.of(config, "t", {})
    cache.store(0, "inputs", torch.ones(2))
    (entry,) = tmp_path.iterdir()
    blob = entry.read_bytes()
    assert b"pw-secret" not in blob and b"tok-secret" not in blob and cache.load(0, "inputs") is not None


def test_no_limit_budgets_bad_log_lines_and_short_jobs(tmp_path):
    from induction_nb.engine.remote_jobs import MARK, Budget, JobProgress, _JobClock, run_chunks

    assert Budget.of(RemoteConfig(max_job_seconds=float("inf"), max_job_bytes=float("inf"))).chunks(1.0, 1.0) >= 1

    class Bar:
        text = ""

        def set_postfix_str(self, text, refresh=True):
            self.text = text

    bar = Bar()
    clock = _JobClock(JobProgress(bar, 9), "job 1/1")
    for line in (f"{MARK}x", f"{MARK}", f"{MARK}99999999999999999999999x", None):
        clock("LOG", line)
    clock("LOG", f"{MARK}2 and {MARK}4")
    assert bar.text == "job 1/1 running: chunk 5/9"

    config = RemoteConfig(host="http://127.0.0.1:1", model_key="m", resume=False)
    kwargs = dict(config=config, cache=None, tool="unit", seconds_each=1.0, bytes_each=1.0)
    with pytest.raises(RemoteExecutionError, match="returned 1 results for 2 chunks") as e:
        run_chunks(
            [[torch.tensor([i])] for i in range(2)], lambda i, s: ([1], None), progress=JobProgress(None, 2), **kwargs
        )
    assert e.value.kind == "job"


def test_a_measured_rate_is_not_reused_for_bigger_chunks():
    import time

    from induction_nb.engine.remote_jobs import JobProgress, run_chunks

    def run(width, seconds_each):
        calls = []

        def job(indices, on_status):
            calls.append(indices)
            on_status("RUNNING", "")
            time.sleep(0.01)
            on_status("COMPLETED", "")
            return [None] * len(indices), None

        config = RemoteConfig(host="http://127.0.0.1:2", model_key="rate", resume=False, max_job_seconds=10)
        inputs = [[torch.zeros(width)] for _ in range(4)]
        kwargs = dict(config=config, cache=None, tool="unit", seconds_each=seconds_each, bytes_each=1.0)
        run_chunks(inputs, job, progress=JobProgress(None, 4), **kwargs)
        return calls

    assert run(1, 5.0) == [[0, 1], [2, 3]]  # then measured: ~0.005 s per small chunk
    assert run(1, 5.0) == [[0, 1, 2, 3]]
    assert run(64, 6.0)[0] == [0], "bigger chunks: the estimate, not the small chunks' rate"
