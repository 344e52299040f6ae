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
import textwrap
from pathlib import Path

import pytest

import induction_nb

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# fenced Python blocks, also indented ones (inside a list or an admonition) and ```py with a title
BLOCK = re.compile(r"^([ \t]*)```(?:python|py)\b[^\n]*\n(.*?)^\1```", re.S | re.M)
# inline code that is a call: `detect_induction_heads(model, sequence_length=8191)`
INLINE_CALL = re.compile(r"(?<!`)`([A-Za-z_][\w.]*\([^`]*\))`(?!`)")
# public callables whose **kwargs go on to another public callable: the keywords both take
FORWARDS = {
    "detect_induction_heads": lambda: [induction_nb.InductionHeadDetector, induction_nb.InductionHeadDetector.detect],
    "InductionHeadAnalyzer": lambda: [induction_nb.InductionHeadDetector],
    "icl_score": lambda: [induction_nb.loss_by_position],
    "compare_smeared_keys": lambda: [induction_nb.train_induction_model],
}


def _blocks(path: Path) -> list[str]:
    return [textwrap.dedent(code) for _, code in BLOCK.findall(path.read_text())]


def _inline_calls(path: Path) -> list[str]:
    """Inline code spans that parse as a call (prose in backticks that does not parse is not code)."""
    calls = []
    for span in INLINE_CALL.findall(path.read_text()):
        try:
            ast.parse(span)
        except SyntaxError:
            continue
        calls.append(span)
    return calls


def _accepts(name: str) -> set[str] | None:
    """The keywords ``name`` takes (``None``: any, through ``**kwargs`` we cannot follow)."""
    targets = [getattr(induction_nb, name)] + (FORWARDS[name]() if name in FORWARDS else [])
    out: set[str] = set()
    for fn in targets:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # no signature to read (an exception class): nothing to check
            return None
        if any(p.kind is p.VAR_KEYWORD for p in params) and fn is targets[0] and name not in FORWARDS:
            return None
        out |= {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    return out


def _called_name(func: ast.expr, aliases: set[str]) -> str | None:
    """The public name a call reaches: ``name(...)``, or ``induction_nb.name(...)`` through any alias."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in aliases:
        return func.attr
    return None


def _problems(code: str) -> list[str]:
    tree = ast.parse(code)
    problems, public = [], set(induction_nb.__all__)
    aliases = {"induction_nb"} | {
        a.asname or a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import)
        for a in n.names
        if a.name == "induction_nb"
    }
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
        reached = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
        if reached and not hasattr(induction_nb, node.attr) and node.attr not in induction_nb._GROUPS:
            problems.append(f"induction_nb has no {node.attr}")
        name = _called_name(node.func, aliases) if isinstance(node, ast.Call) else None
        if name in public and callable(getattr(induction_nb, name)):
            accepted = _accepts(name)
            if accepted is not None:
                problems += [
                    f"{name}() takes no {k.arg}=" for k in node.keywords if k.arg is not None and k.arg not in accepted
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
    problems += [f"`{call}`: {p}" for call in _inline_calls(path) for p in _problems(call)]
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
    assert _problems("import induction_nb as nb\nnb.detect_induction_heads(model, treshold=0.5)") == [
        "detect_induction_heads() takes no treshold="
    ]
    assert _problems("icl_score(model, n_bootstrp=100)") == ["icl_score() takes no n_bootstrp="]
    assert _problems("icl_score(model, texts=docs, early=10)") == []
    assert _problems("InputError('x')") == []
    assert _blocks_of("- item\n\n    ```python\n    ablate_heads(model, heads, methd='zero')\n    ```\n") == [
        "ablate_heads(model, heads, methd='zero')\n"
    ]


def _blocks_of(text: str) -> list[str]:
    return [textwrap.dedent(code) for _, code in BLOCK.findall(text)]


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
