"""The CLI: scan / show / report on a saved tiny model and on the embedded SmolLM2; exit 2 on bad input."""

import json
import re
import subprocess
import sys

import pytest
from tiny_models import make_hf

from induction_nb import DetectionResult, RetrievalResult, load_result
from induction_nb.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    make_hf("gpt2", "eager").save_pretrained(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scan_exports_and_report_round_trip(folder, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "scan",
        folder,
        "--seq-len",
        32,
        "--batch",
        3,
        "--json",
        tmp_path / "r.json",
        "--csv",
        tmp_path / "r.csv",
        "--width",
        70,
    )
    assert code == 0
    assert out.startswith("INDUCTION HEAD ANALYSIS REPORT\n==============================\nModel Info:\n")
    assert "n_layers: 2" in out and "Heads detected: 0" in out and "Seed: 0" in out
    assert max(map(len, out.splitlines())) <= 70
    assert "loading" in err and "wrote" in err
    saved = DetectionResult.load(tmp_path / "r.json")
    assert saved.n_heads == 4 and saved.settings["batch_size"] == 3
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["layer", "head"] and header[-3:] == ["ci_low", "ci_high", "detected"]
    assert header[2:-3] == list(saved.metrics), "every metric of the scan, in the registry's order"
    code, again, _ = run(capsys, "report", tmp_path / "r.json", "--width", 70)
    assert code == 0 and again == out


def test_scan_writes_figures(folder, tmp_path, capsys):
    from induction_nb.metrics import REGISTRY, HeadMetric, PatternMetric

    code, _, err = run(capsys, "scan", folder, "--seq-len", 24, "--batch", 2, "--figures", tmp_path / "figs")
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    # the table metrics a probe scan computes (those measured elsewhere, causal effects included, are not there)
    heatmaps = [m for m in REGISTRY if REGISTRY[m].table and isinstance(REGISTRY[m], (PatternMetric, HeadMetric))]
    assert code == 0 and f"wrote {2 * (len(heatmaps) + 3)} figure files" in err  # + scatter, pattern, stripe
    assert {f"heatmap_{m}.pdf" for m in heatmaps} <= set(names) and "scatter_prefix_vs_copying.png" in names
    assert any(n.startswith("pattern_L") and n.endswith(".png") for n in names)
    assert all((tmp_path / "figs" / n).read_bytes()[:4] in (b"%PDF", b"\x89PNG") for n in names)


@pytest.mark.parametrize("estimator", ["exact", "attribution", "atp*"])
def test_scan_with_effects(folder, capsys, estimator):
    code, out, err = run(capsys, "scan", folder, "--seq-len", 24, "--batch", 2, "--effects", estimator)
    assert code == 0 and "ablation" in out and f"every head's ablation effect ({estimator})" in err
    flat = " ".join(out.split())  # the report wraps long settings
    assert (f"{estimator} estimate" in flat) == (estimator != "exact")  # an estimate is never labelled exact


def test_show_one_head(folder, capsys):
    code, out, _ = run(capsys, "show", folder, "--layer", 1, "--head", 2, "--seq-len", 20, "--width", 50)
    assert code == 0 and out.startswith("L1H2 on 'repeated' (20 tokens, seed 0)")
    assert "induction stripe k = q - 9 (period 10)" in out
    assert max(map(len, out.splitlines())) <= 50
    code, out, _ = run(capsys, "show", folder, "--layer", 0, "--head", 0, "--window", "5:15")
    assert code == 0 and "queries 5..14" in out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["scan", "/no/such/model/folder"], "does not exist"),
        (["show", "{folder}", "--layer", "2", "--head", "0"], "--layer 2 out of range: the model has 2 layers"),
        (["show", "{folder}", "--layer", "0", "--head", "4"], "head 4 out of range"),
        (["show", "{folder}", "--layer", "0"], "the following arguments are required: --head"),
        (["show", "{folder}", "--layer", "0", "--head", "0", "--window", "a:b"], "--window must be START:STOP"),
        (["scan", "{folder}", "--width", "20"], "width must be an integer >= 40"),
        (["scan", "{folder}", "--json", "{tmp}/x", "--csv", "{tmp}/x"], "name the same file"),
        (["scan", "{folder}", "--json", "/no/such/dir/x.json"], "does not exist"),
        (["scan", "{folder}", "--threshold", "1.5"], r"threshold must be a number in \[0, 1\]"),
        (["scan", "{folder}", "--patterns", "spiral"], "unknown pattern 'spiral'"),
        (["scan", "{folder}", "--device", "cuda"], "CUDA is not available"),
        (["report", "{tmp}/foreign.json"], "not an induction_nb detection result"),
        (["report", "{tmp}/broken.json"], "not valid JSON"),
        (["report", "{tmp}/absent.json"], "cannot read"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["scan", "{folder}", "--patterns", ","], "--patterns is empty"),
        (["scan", "{folder}", "--device", "foo"], "is not a torch device"),
        (["scan", "{folder}", "--json", "{tmp}"], "it is a folder"),
        (["report", "{tmp}/foreign.json", "--top", "0"], "--top must be >= 1"),
        (["scan", "{folder}", "--remote", "--device", "cuda"], "--device and --remote conflict"),
        (["scan", "{folder}", "--effects", "guess"], "argument --effects: invalid choice: 'guess'"),
        (["scan", "{folder}", "--text", "{tmp}", "--effects", "exact"], "--text scores your documents; --effects"),
        (["retrieval", "{folder}", "--lengths", "1k"], "--lengths must be comma-separated integers, got '1k'"),
        (["retrieval", "{folder}", "--depths", "half"], r"--depths must be comma-separated numbers in \[0, 1\]"),
        (["retrieval", "{folder}", "--depths", "1.5"], r"depth must be a number in \[0, 1\]"),
        (["retrieval", "{folder}", "--lengths", ","], "--lengths and --depths need at least one value each"),
        (["retrieval", "{folder}", "--lengths", "32"], "needs the model's tokenizer"),
    ],
)
def test_bad_input_exits_2_with_one_line(folder, tmp_path, capsys, argv, match):
    (tmp_path / "foreign.json").write_text(json.dumps({"cells": []}))
    (tmp_path / "broken.json").write_text("{")
    argv = [a.format(folder=folder, tmp=tmp_path) for a in argv]
    if "--device" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    code, out, err = run(capsys, *argv)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and out == "" and len(errors) == 1 and "Traceback" not in err
    assert re.search(match, errors[0]), errors[0]


def test_python_dash_m_without_subcommand_is_scan_and_never_tracebacks(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "induction_nb", str(tmp_path / "missing"), "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stderr.startswith("error:") and "Traceback" not in run.stderr


@pytest.mark.slow
def test_default_scan_is_the_embedded_model(smollm2, capsys):
    code, out, _ = run(capsys, "--no-progress")
    assert code == 0
    assert "model: SmolLM2-135M-Instruct" in out and "n_layers: 30" in out and "Heads detected: 5" in out
    assert "L18H6: 0.89" in out and "Previous-Token Heads" in out


@pytest.mark.slow
def test_retrieval_on_the_embedded_model(smollm2, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "retrieval",
        "--lengths",
        512,
        "--depths",
        "0.5",
        "--needle-length",
        6,
        "--json",
        tmp_path / "r.json",
        "--no-progress",
        "--brief",
    )
    assert code == 0 and "Traceback" not in err
    saved = load_result(tmp_path / "r.json")
    assert isinstance(saved, RetrievalResult) and saved.settings["lengths"] == [512]
    top = saved.get_top_heads(1)[0]
    assert out.startswith("RETRIEVAL HEAD ANALYSIS REPORT") and "Needle accuracy: 1.00" in out
    assert re.search(rf"^L{top.layer}H{top.head}: +{top.overall_score:.3f} ", out, re.M) and top.overall_score > 0.5
    # a context too short for this model to repeat the needle: said, not a silent table of zeros
    with pytest.warns(UserWarning, match=r"reproduced \d+% of the needle tokens"):
        code, out, _ = run(
            capsys, "retrieval", "--lengths", 256, "--depths", "0.5", "--needle-length", 6, "--no-progress", "--brief"
        )
    assert code == 0 and "Needle accuracy: 0." in out and "retrieval scores are uninformative" in out


def test_scan_writes_a_self_contained_html_page(folder, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "scan",
        folder,
        "--seq-len",
        24,
        "--batch",
        2,
        "--brief",
        "--html",
        tmp_path / "s.html",
        "--json",
        tmp_path / "s.json",
    )
    page = (tmp_path / "s.html").read_text()
    assert code == 0 and f"wrote {tmp_path / 's.html'}" in err and out.startswith("INDUCTION HEAD ANALYSIS REPORT")
    assert page.count("class='inb-panel'") == 6 and page.count("data:image/png;base64,") == 6, "the top six heads"
    assert "<link" not in page and "src='http" not in page
    code, _, err = run(capsys, "report", tmp_path / "s.json", "--html", tmp_path / "r.html")
    assert code == 0 and "No heatmaps in this file" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--html", "{tmp}/s.txt"], r"--html writes an HTML page: give a path ending in \.html"),
        (["--html", "{tmp}/s.html", "--json", "{tmp}/s.html"], "name the same file"),
        (["--html", "{tmp}/missing/s.html"], "does not exist"),
    ],
)
def test_bad_html_path_fails_before_the_scan(folder, tmp_path, capsys, argv, match):
    code, out, err = run(capsys, "scan", folder, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and out == "" and re.search(match, err) and "loading" not in err


def test_html_without_matplotlib_fails_before_the_scan(folder, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, out, err = run(capsys, "scan", folder, "--html", tmp_path / "s.html")
    assert code == 2 and "pip install matplotlib" in err and "loading" not in err
