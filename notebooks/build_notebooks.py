"""Execute the tutorial notebooks from their source and write them with their outputs.

The source of truth of each notebook is its jupytext percent-format script, ``notebooks/NN_name.py``
(readable, diffable, linted like any module); the ``.ipynb`` beside it is that script executed, committed
so that readers see the outputs and nbval can check them. ``tests/test_notebooks.py`` fails when a pair
drifts apart. Run from the repository root: ``.venv/bin/python notebooks/build_notebooks.py`` (``make
notebooks``; ``--only 03`` for one).

Cells starting with ``# NBVAL_CHECK_OUTPUT`` are the ones nbval compares (``make test`` runs
``pytest --nbval-lax``): they print claims that hold across CPUs, thread counts and seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def sources() -> list[Path]:
    """The notebook scripts, in order."""
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))


def build(script: Path, execute: bool = True) -> float:
    nb = jupytext.read(script)
    nb.metadata.pop("jupytext", None)  # the pairing lives in the script; the .ipynb stays a plain notebook
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    start = time.perf_counter()
    if execute:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    elapsed = time.perf_counter() - start
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small when a notebook is rebuilt
        cell["id"] = f"{script.stem[:2]}-{i:02d}"
    nbformat.write(nb, script.with_suffix(".ipynb"))
    return elapsed


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="prefix of the notebook to build, e.g. 03")
    ap.add_argument("--no-execute", action="store_true")
    args = ap.parse_args()
    for script in sources():
        if args.only and not script.stem.startswith(args.only):
            continue
        print(f"{script.stem}: {build(script, not args.no_execute):.1f} s", flush=True)
