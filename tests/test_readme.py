"""Nothing in the README or the documentation's pages goes stale silently.

- The README's Python blocks run, in order, in one namespace (the ten-line example on the real SmolLM2).
- Every Python block of the README and of the hand-written pages under ``docs/`` is checked against the
  code: it parses; what it imports from ``induction_nb`` (or the original spec's module) exists; every
  keyword it passes to a public function or class is one that function takes. A renamed function or
  argument fails here, not in a reader's notebook.
- The README's relative links point at files that exist.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import re
from pathlib import Path

import pytest

import induction_nb

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# public callables whose **kwargs go on to another public callable: the keywords both take
FORWARDS = {
    "detect_induction_heads": lambda: [induction_nb.InductionHeadDetector, induction_nb.InductionHeadDetector.detect],
}


def _blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def _accepts(name: str) -> set[str] | None:
    """The keywords ``name`` takes (``None``: any, through ``**kwargs`` we cannot follow)."""
    targets = [getattr(induction_nb, name)] + (FORWARDS[name]() if name in FORWARDS else [])
    out: set[str] = set()
    for fn in targets:
        params = inspect.signature(fn).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params) and fn is targets[0] and name not in FORWARDS:
            return None
        out |= {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    return out


def _problems(code: str) -> list[str]:
    tree = ast.parse(code)
    problems, public = [], set(induction_nb.__all__)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0]
            in (
                "induction_nb",
                "induction_head_detector",
            )
        ):
            module = importlib.import_module(node.module)
            problems += [f"{node.module} has no {a.name}" for a in node.names if not hasattr(module, a.name)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in public:
            accepted = _accepts(node.func.id) if callable(getattr(induction_nb, node.func.id)) else None
            if accepted is not None:
                problems += [
                    f"{node.func.id}() takes no {k.arg}="
                    for k in node.keywords
                    if k.arg is not None and k.arg not in accepted
                ]
    return problems


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_match_the_code(path):
    problems = []
    for i, code in enumerate(_blocks(path)):
        try:
            problems += [f"block {i + 1}: {p}" for p in _problems(code)]
        except SyntaxError as e:
            problems.append(f"block {i + 1} does not parse: {e}")
    assert not problems, problems


def test_readme_links_exist():
    text = (ROOT / "README.md").read_text()
    links = [m for m in re.findall(r"\]\(([^)#]+)", text) if not m.startswith(("http://", "https://"))]
    assert links, "the README links into the documentation"
    missing = [m for m in links if not (ROOT / m).exists()]
    assert not missing, missing


def test_checker_catches_a_stale_name_and_keyword():
    """The static check above can fail: a removed name and a misspelt keyword are both reported."""
    assert _problems("from induction_nb import detect_induction_head") == ["induction_nb has no detect_induction_head"]
    assert _problems("detect_induction_heads(model, sequence_lenght=32)") == [
        "detect_induction_heads() takes no sequence_lenght="
    ]
    assert _problems("detect_induction_heads(model, sequence_length=32, batch_size=2)") == []


@pytest.mark.slow
def test_readme_python_blocks_run(smollm2, monkeypatch):
    """The README's blocks, as a newcomer pastes them (``load_model()`` is the session's SmolLM2, the
    same object, so the model is loaded once per test run)."""
    monkeypatch.setattr(induction_nb, "load_model", lambda *a, **k: smollm2)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in _blocks(ROOT / "README.md"):
            exec(compile(code, "README.md", "exec"), namespace)
    text = out.getvalue()
    assert "INDUCTION HEAD ANALYSIS REPORT" in text and "L18H6" in text, text[:2000]
    before, after = re.search(r"loss on repeated tokens: ([\d.]+) -> ([\d.]+) nats", text).groups()
    assert float(after) > float(before) + 1.0, text[-300:]
