"""The floor plan, held: the import contracts (pyproject.toml, ``[tool.importlinter]``: the groups in one
direction, no import cycles at any depth, nnsight in the engine room only), ruff's lint and format, and the
house's sizes (no module over 400 lines, no function over 60; lines of code: docstrings, which the API pages
are made from, do not count). Imports of the package's own modules made
inside functions hide a dependency; they are allowed only where they buy something named below."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "induction_nb"
BIN = Path(sys.executable).parent
# where a function-level import of our own modules is deliberate: the CLI answers --help before torch
# loads; remote registration ships the package itself; the explorer's canvas needs anywidget (optional)
LAZY_OK = {"cli/__init__.py", "cli/commands.py", "cli/output.py", "engine/remote.py", "explorer/layout.py"}


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    done = _run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


@pytest.mark.parametrize("command", [("check", "."), ("format", "--check", ".")])
def test_ruff(command):
    done = _run(sys.executable, "-m", "ruff", *command)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _docstring_lines(tree: ast.AST) -> set[int]:
    """The line numbers of every module, class and function docstring in ``tree``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def test_no_module_over_400_lines_and_no_function_over_60():
    too_long = []
    for path in _modules():
        text = path.read_text()
        tree = ast.parse(text)
        docs = _docstring_lines(tree)
        code = len(text.splitlines()) - len(docs)
        if code > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {code} lines of code")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = set(range(node.lineno, node.end_lineno + 1)) - docs
                if len(span) > 60:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {len(span)}")
    assert not too_long, "split these: " + "; ".join(too_long)


def test_own_modules_are_imported_at_the_top():
    hidden, lazy = [], []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if _imports_own_module(inner):
                    (lazy if rel in LAZY_OK else hidden).append(rel if rel in LAZY_OK else f"{rel}:{inner.lineno}")
    assert not hidden, "import these at the top of the module (or say why not in LAZY_OK): " + "; ".join(hidden)
    assert set(lazy) == LAZY_OK, f"LAZY_OK names modules with no function-level import: {LAZY_OK - set(lazy)}"


def _imports_own_module(node: ast.AST) -> bool:
    """``from . import x``, ``from ..y import x``, ``from induction_nb.y import x`` or ``import induction_nb.y``."""
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "induction_nb"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "induction_nb" for a in node.names)


def test_the_import_check_sees_absolute_and_relative_forms():
    forms = ["from . import x", "from ..y import x", "from induction_nb.y import x", "import induction_nb.y"]
    assert all(_imports_own_module(ast.parse(f).body[0]) for f in forms)
    assert not any(_imports_own_module(ast.parse(f).body[0]) for f in ["import torch", "from induction_nbx import y"])


def test_a_contract_that_is_broken_fails(tmp_path):
    """The check can fail: a metrics module importing the analysis group is reported."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "induction_nb", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    with open(copy / "induction_nb" / "metrics" / "keys.py", "a") as f:
        f.write("\n\ndef _up():\n    from ..analysis import results  # noqa: F401\n")
    done = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(copy), "PATH": str(BIN)},
    )
    assert done.returncode != 0 and "induction_nb.metrics.keys -> induction_nb.analysis.results" in done.stdout
