"""Remote execution, for real, over loopback: a server that speaks nnsight's remote protocol and runs
requests with NDIF's own execution code (tests/ndif_loopback.py) and cannot import induction_nb, so
everything of ours it runs arrived by value. NDIF itself is out of reach from here (no network)."""

import ndif_loopback as lb
import pytest
import torch
from tiny_models import make_hf

from induction_nb import (
    CustomSites,
    InductionHeadDetector,
    RemoteConfig,
    RemoteExecutionError,
    capture_attention,
    load_model,
)

lb.require_server()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    make_hf("llama_gqa", "sdpa").save_pretrained(path)  # the served model runs sdpa: no weights returned
    lb.write_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def server(folder):
    import nnsight

    logging = nnsight.CONFIG.APP.REMOTE_LOGGING
    nnsight.CONFIG.APP.REMOTE_LOGGING = False  # nnsight's status spinner would write to stdout
    with lb.start_server(folder) as handle:
        yield handle
    nnsight.CONFIG.APP.REMOTE_LOGGING = logging


@pytest.fixture
def remote(folder, server, monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", "loopback-test-key")
    return load_model(folder, remote=True), RemoteConfig(host=server.url)


def test_remote_model_is_meta(remote):
    model, _ = remote
    assert next(model._module.parameters()).device.type == "meta"


def test_remote_capture_equals_local(folder, remote):
    model, config = remote
    tokens = torch.randint(3, 97, (2, 12), generator=torch.Generator().manual_seed(0))
    got = capture_attention(model, tokens, remote=config)
    want = capture_attention(load_model(folder), tokens)
    assert got.sites[0].kind == "hf_interface"
    torch.testing.assert_close(got.pattern, want.pattern, atol=1e-6, rtol=0)


def test_remote_detection_equals_local_and_returns_only_scores(folder, remote, monkeypatch):
    from nnsight.intervention.backends.remote import RemoteBackend

    model, config = remote
    capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=config)  # site discovery: 3 small probe requests
    sizes = []
    finalize = RemoteBackend.finalize
    monkeypatch.setattr(
        RemoteBackend, "finalize", lambda self, content: sizes.append(len(content)) or finalize(self, content)
    )
    remote_result = InductionHeadDetector(model, batch_size=4, chunk_size=2, remote=config).detect(sequence_length=24)
    local_result = InductionHeadDetector(load_model(folder), batch_size=4, chunk_size=2).detect(sequence_length=24)
    assert len(sizes) == 1, "one request per scan: the chunks bundled in one session"
    for r, l in zip(remote_result.head_scores, local_result.head_scores):
        for field in ("prefix_matching", "contrast", "copying", "previous_token", "overall_score", "ci_low"):
            assert getattr(r, field) == pytest.approx(getattr(l, field), abs=1e-5), field
    all_patterns = 2 * 2 * 2 * 6 * 25 * 25 * 4  # (probes + controls) x layers x heads x q x k x fp32, per chunk
    assert max(sizes) < all_patterns / 2, (sizes, all_patterns)


def test_our_code_travels_by_value(remote):
    """The server blocks `import induction_nb`; a trace that imports it there fails, ours did not."""
    import importlib

    from nnsight.intervention.backends.remote import RemoteBackend

    from induction_nb.engine.remote import resolve

    model, config = remote
    backend = RemoteBackend(resolve(model, config).model_key, host=config.host, api_key="loopback-test-key")
    with pytest.raises(Exception, match="blocked in the loopback NDIF server"):
        with model.trace(torch.tensor([[3, 4, 5]]), backend=backend):
            importlib.import_module("induction_nb")


def test_job_failing_on_the_server_carries_its_message(remote):
    model, config = remote

    def broken(args, kwargs, output):
        raise ValueError("boom from a custom reader")

    sites = CustomSites("model.layers.{layer}.self_attn", n_layers=2, op="attention_interface_1", read=broken)
    with pytest.raises(RemoteExecutionError, match="the job failed on .*boom from a custom reader") as e:
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), sites=sites, remote=config)
    assert e.value.kind == "job" and "Traceback" in e.value.server_message


def test_model_not_served(remote):
    model, config = remote
    other = RemoteConfig(host=config.host, model_key=lb.model_key("/nowhere/else"))
    with pytest.raises(RemoteExecutionError, match="does not serve model") as e:
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=other)
    assert e.value.kind == "not_served"


def test_no_api_key(remote, monkeypatch):
    import nnsight

    model, config = remote
    monkeypatch.delenv("NDIF_API_KEY")
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    with pytest.raises(RemoteExecutionError, match="no NDIF API key: set the NDIF_API_KEY") as e:
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=config)
    assert e.value.kind == "key"


def test_server_unreachable(remote):
    model, _ = remote
    nowhere = RemoteConfig(host=f"http://127.0.0.1:{lb.free_port()}")
    with pytest.raises(RemoteExecutionError, match="cannot reach http://127.0.0.1") as e:
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=nowhere)
    assert e.value.kind == "unreachable"


def test_connection_lost_mid_job_returns_nothing(folder, monkeypatch):
    import nnsight

    monkeypatch.setenv("NDIF_API_KEY", "loopback-test-key")
    monkeypatch.setattr(nnsight.CONFIG.APP, "REMOTE_LOGGING", False)
    with lb.start_server(folder) as doomed:
        model = load_model(folder, remote=True)
        config = RemoteConfig(host=doomed.url)
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=config)  # sites found, server warm
        doomed.crash_next_request()
        with pytest.raises(RemoteExecutionError, match="connection to .* was lost") as e:
            InductionHeadDetector(model, batch_size=2, remote=config).detect(sequence_length=16)
        assert e.value.kind == "lost"


def test_causal_tools_run_remotely_and_match_local(folder, remote):
    from induction_nb import ablate_heads, copying_dla, find_circuit, icl_score

    model, config = remote
    local = load_model(folder)
    kwargs = dict(sequence_length=24, batch_size=2)
    r, l = (
        ablate_heads(model, [(1, 0), (1, 3)], remote=config, **kwargs),
        ablate_heads(local, [(1, 0), (1, 3)], **kwargs),
    )
    assert r.effect == pytest.approx(l.effect, abs=1e-5) and r.baseline_loss == pytest.approx(l.baseline_loss, abs=1e-5)
    assert icl_score(model, remote=config, **kwargs)["repeated"] == pytest.approx(
        icl_score(local, **kwargs)["repeated"], abs=1e-5
    )
    rc = find_circuit(model, [(1, 0)], remote=config, **kwargs)
    lc = find_circuit(local, [(1, 0)], **kwargs)
    assert [e[:2] for e in rc.top(4)] == [e[:2] for e in lc.top(4)]
    assert [e[2] for e in rc.top(4)] == pytest.approx([e[2] for e in lc.top(4)], abs=1e-5)
    (rd,), (ld,) = copying_dla(local, [(1, 0)], remote=config, **kwargs), copying_dla(local, [(1, 0)], **kwargs)
    assert rd.mean_z == pytest.approx(ld.mean_z, abs=1e-4), "trace on the server, weights local"
    from induction_nb import InputError

    with pytest.raises(InputError, match="copying_dla needs the model's weights"):
        copying_dla(model, [(1, 0)], remote=config, **kwargs)


def test_non_blocking_is_refused_clearly(remote):
    from induction_nb import InputError

    model, config = remote
    with pytest.raises(InputError, match=r"blocking=False\) is not supported"):
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=RemoteConfig(host=config.host, blocking=False))


def test_remote_needs_a_remotable_model():
    from induction_nb import InputError

    with pytest.raises(InputError, match="needs an nnsight model that names a served model"):
        capture_attention(make_hf("gpt2"), torch.tensor([[3, 4, 5]]), remote=True)


def test_cli_scan_remote(folder, server, monkeypatch, capsys):
    from induction_nb.cli import main

    monkeypatch.setenv("NDIF_API_KEY", "loopback-test-key")
    argv = [str(folder), "--seq-len", "24", "--batch", "2", "--brief", "--no-progress"]
    assert main(["scan", *argv, "--remote", "--host", server.url]) == 0
    remote_out = capsys.readouterr().out
    assert main(["scan", *argv]) == 0
    assert capsys.readouterr().out == remote_out


ENTRY_POINTS = {
    "capture_attention": lambda m, local, c: capture_attention(m, torch.tensor([[3, 4, 5, 6]]), remote=c),
    "stream_attention": lambda m, local, c: __import__("induction_nb").stream_attention(
        m, torch.tensor([[3, 4, 5, 6]]), lambda layer, p: p.sum(), remote=c
    ),
    "detect_induction_heads": lambda m, local, c: __import__("induction_nb").detect_induction_heads(
        m, sequence_length=16, batch_size=2, remote=c
    ),
    "InductionHeadAnalyzer": lambda m, local, c: (
        __import__("induction_nb")
        .InductionHeadAnalyzer(m, batch_size=2, remote=c)
        .head_attention(1, 0, sequence_length=16)
    ),
    "ablate_heads": lambda m, local, c: __import__("induction_nb").ablate_heads(
        m, [(1, 0)], sequence_length=24, batch_size=2, remote=c
    ),
    "head_effects": lambda m, local, c: __import__("induction_nb").head_effects(
        m, sequence_length=24, batch_size=2, remote=c
    ),
    "head_effects_attribution": lambda m, local, c: __import__("induction_nb").head_effects(
        m, estimator="attribution", sequence_length=24, batch_size=2, remote=c
    ),
    "head_effects_atp_star": lambda m, local, c: __import__("induction_nb").head_effects(
        local, estimator="atp*", sequence_length=24, batch_size=2, remote=c
    ),
    "icl_score": lambda m, local, c: __import__("induction_nb").icl_score(
        m, sequence_length=24, batch_size=2, remote=c
    ),
    "find_circuit": lambda m, local, c: __import__("induction_nb").find_circuit(
        m, [(1, 0)], sequence_length=24, batch_size=2, remote=c
    ),
    "copying_dla": lambda m, local, c: __import__("induction_nb").copying_dla(
        local, [(1, 0)], sequence_length=24, batch_size=2, remote=c
    ),
    "concept_induction": lambda m, local, c: __import__("induction_nb").concept_induction(
        m, [[5, 6], [7, 8, 9]], n_probes=2, n_boot=10, length=24, remote=c
    ),
    "few_shot_accuracy": lambda m, local, c: __import__("induction_nb").few_shot_accuracy(
        m, "repetition", shots=2, n_prompts=2, knockout=[(1, 0)], n_boot=10, remote=c
    ),
    "fv_scores": lambda m, local, c: __import__("induction_nb").fv_scores(
        m, "category_pairs", shots=2, n_prompts=2, n_boot=10, remote=c
    ),
    "capture_head": lambda m, local, c: __import__("induction_nb").capture_head(
        m, torch.tensor([[3, 4, 5, 6]]), 1, 0, remote=c
    ),
    "retrieval_heads": lambda m, local, c: __import__("induction_nb").retrieval_heads(m, remote=c, **NEEDLES),
    "needle_accuracy": lambda m, local, c: __import__("induction_nb").needle_accuracy(
        m, [(1, 0)], remote=c, **NEEDLE_CASES
    ),
}
NEEDLE_CASES = dict(lengths=[40], depths=[0.5], needle_length=4, haystack=list(range(10, 40)))
NEEDLES = dict(NEEDLE_CASES, n_bootstrap=10)


@pytest.fixture(scope="module")
def warm(folder, server):
    """A remote model and a local one whose sites are already found (discovery ran on the good server)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NDIF_API_KEY", "loopback-test-key")
        model, local, config = load_model(folder, remote=True), load_model(folder), RemoteConfig(host=server.url)
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=config)
        capture_attention(local, torch.tensor([[3, 4, 5, 6]]), remote=config)
    return model, local, config


@pytest.mark.parametrize("failure", ["unreachable", "not_served"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_reports_a_remote_failure_by_kind(entry, failure, warm, monkeypatch):
    """Sites already found (the failure hits the entry point's own trace, not discovery): the same
    RemoteExecutionError kind from every entry point that runs a model remotely."""
    monkeypatch.setenv("NDIF_API_KEY", "loopback-test-key")
    model, local, config = warm
    bad = (
        RemoteConfig(host=f"http://127.0.0.1:{lb.free_port()}")
        if failure == "unreachable"
        else RemoteConfig(host=config.host, model_key=lb.model_key("/nowhere/else"))
    )
    with pytest.raises(RemoteExecutionError) as e:
        ENTRY_POINTS[entry](model, local, bad)
    assert e.value.kind == failure, str(e.value)


def test_knockout_few_shot_and_fv_scores_run_remotely_and_match_local(folder, remote):
    """Edge knockout's mask edit (inside the few-shot copies) and the FV patch on the server, one request each."""
    from induction_nb import few_shot_accuracy, fv_scores

    model, config = remote
    local = load_model(folder)
    few = dict(shots=3, n_prompts=4, n_boot=10, ablate=[(0, 1)], method="zero", knockout=[(1, 0)])
    rf, lf = few_shot_accuracy(model, "repetition", remote=config, **few), few_shot_accuracy(local, "repetition", **few)
    got, want = rf.rows[0], lf.rows[0]
    assert (got.probability, got.ablated_probability) == pytest.approx((want.probability, want.ablated_probability))
    assert lf.rows[0].ablated_probability != lf.rows[0].probability
    fv = dict(shots=3, n_prompts=4, n_boot=10, estimator="exact", heads_per_forward=12)
    rv, lv = fv_scores(model, "category_pairs", remote=config, **fv), fv_scores(local, "category_pairs", **fv)
    torch.testing.assert_close(rv.scores, lv.scores, atol=1e-6, rtol=0)


def test_attribution_patching_runs_remotely_and_matches_local(folder, remote):
    """Gradients on the server (torch.autograd.grad inside the trace): only [layer, head] comes back."""
    from induction_nb import head_effects

    model, config = remote
    kwargs = dict(estimator="attribution", verify_top=3, sequence_length=24, batch_size=2)
    r, l = head_effects(model, remote=config, **kwargs), head_effects(load_model(folder), **kwargs)
    torch.testing.assert_close(r.effects, l.effects, atol=1e-6, rtol=0, equal_nan=True)
    torch.testing.assert_close(r.exact, l.exact, atol=1e-5, rtol=0, equal_nan=True)
    assert r.verified == l.verified and len(r.verified) == 3


def test_atp_star_runs_remotely_with_local_weights_and_matches_local(warm, monkeypatch):
    """The recomputed query/key routes on the server; the weights are the local model's. A meta model (no
    weights here) is refused with the fix."""
    from induction_nb import InputError, head_effects

    monkeypatch.setenv("NDIF_API_KEY", "loopback-test-key")
    model, local, config = warm  # sites already found
    kwargs = dict(estimator="atp*", method="mean", sequence_length=16, batch_size=2)  # mean: dz is the same shape
    r, l = head_effects(local, remote=config, **kwargs), head_effects(local, **kwargs)
    torch.testing.assert_close(r.effects, l.effects, atol=1e-5, rtol=0, equal_nan=True)
    torch.testing.assert_close(r.plain, l.plain, atol=1e-5, rtol=0, equal_nan=True)
    with pytest.raises(InputError, match="atp\\* needs the model's weights here"):
        head_effects(model, remote=config, **kwargs)


def test_padded_batches_and_text_scores_run_remotely_and_match_local(folder, remote):
    """A left-padded batch (mask and position ids travel with the request) and detect_on_text's reducer."""
    from induction_nb import detect_on_text

    model, config = remote
    local = load_model(folder)
    tokens = torch.tensor([[2, 2, 5, 6, 7, 5, 6], [8, 9, 10, 8, 9, 10, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    got = capture_attention(model, tokens, attention_mask=mask, remote=config)
    torch.testing.assert_close(
        got.pattern, capture_attention(local, tokens, attention_mask=mask).pattern, atol=1e-6, rtol=0
    )
    docs = ["t5 t6 t7 t5 t6 t7", "t8 t9 t8 t9 t8 t9 t10 t8", "t11 t12 t11"]
    r, l = detect_on_text(model, docs, remote=config, n_bootstrap=20), detect_on_text(local, docs, n_bootstrap=20)
    assert r.settings["scored_queries"] == l.settings["scored_queries"] and r.settings["remote"]
    assert [s.overall_score for s in r.head_scores] == pytest.approx([s.overall_score for s in l.head_scores], abs=1e-5)


def test_retrieval_runs_remotely_and_matches_local(folder, remote):
    """Greedy decoding on the server (nnsight's generate, with the KV cache), last-row arg-max per step."""
    from induction_nb import capture_head, needle_accuracy, retrieval_heads
    from induction_nb.analysis.retrieval import needle_cases
    from induction_nb.engine.decoding import greedy_decode
    from induction_nb.engine.engine import Engine

    model, config = remote
    local = load_model(folder)
    engines = Engine.of(model, config), Engine.of(local, False)
    (case,) = needle_cases(engines[1], **NEEDLE_CASES)
    (r_ids, r_keys), (l_ids, l_keys) = (greedy_decode(e, case.tokens, len(case.answer), [(1, 0)]) for e in engines)
    assert r_keys.shape == (4, 2, 6) and len(set(r_keys.flatten().tolist())) > 3  # each step's arg-max keys
    assert torch.equal(r_ids, l_ids) and torch.equal(r_keys, l_keys)
    with pytest.warns(UserWarning, match="reproduced 0% of the needle"):  # random weights repeat no needle
        r, l = retrieval_heads(model, remote=config, **NEEDLES), retrieval_heads(local, **NEEDLES)
    assert r.settings["needle_accuracy"] == l.settings["needle_accuracy"] and r.settings["remote"]
    assert [s.overall_score for s in r.head_scores] == pytest.approx([s.overall_score for s in l.head_scores], abs=1e-6)
    assert needle_accuracy(model, [(1, 0)], remote=config, **NEEDLE_CASES) == needle_accuracy(
        local, [(1, 0)], **NEEDLE_CASES
    )
    tokens = torch.randint(3, 97, (1, 20), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        capture_head(model, tokens, 1, 2, remote=config), capture_head(local, tokens, 1, 2), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("command", ["scan", "show"])
def test_cli_reports_a_remote_failure_in_one_line(command, folder, server, monkeypatch, capsys):
    from induction_nb.cli import main

    monkeypatch.setenv("NDIF_API_KEY", "loopback-test-key")
    extra = ["--layer", "1", "--head", "0"] if command == "show" else ["--seq-len", "16", "--batch", "2"]
    argv = [command, str(folder), *extra, "--remote", "--host", f"http://127.0.0.1:{lb.free_port()}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot reach http://127.0.0.1") and "Traceback" not in "\n".join(err)


def test_concept_induction_runs_remotely_and_matches_local(folder, remote):
    """Value-weighted attention and the patching forwards on the server: only per-head numbers return."""
    from induction_nb import concept_induction

    model, config = remote
    local = load_model(folder)
    kwargs = dict(n_probes=3, n_boot=20, length=24)
    r = concept_induction(model, ["t5 t6", "t7 t8 t9"], remote=config, **kwargs)
    l = concept_induction(local, ["t5 t6", "t7 t8 t9"], **kwargs)
    for a, b in zip(r.head_scores, l.head_scores):
        for k in ("token_induction", "concept_induction", "token_effect", "concept_effect"):
            assert a.values[k] == pytest.approx(b.values[k], abs=1e-5), (a.name, k)
