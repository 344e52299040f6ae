"""The notebooks' single source of truth: each ``notebooks/NN_name.py`` (jupytext percent format) and
the executed ``.ipynb`` beside it hold the same cells, in the same order, with the same sources. A cell
edited in one and not the other fails here; ``make notebooks`` re-executes the scripts into the
notebooks. (The outputs themselves are checked by nbval in the same test run.)"""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SCRIPTS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_every_notebook_has_its_script_and_back():
    assert [p.stem for p in SCRIPTS] == sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_and_notebook_agree(script):
    want = [(c.cell_type, c.source) for c in jupytext.read(script).cells]
    got = [(c.cell_type, c.source) for c in nbformat.read(script.with_suffix(".ipynb"), as_version=4).cells]
    assert len(got) == len(want), f"{script.name} has {len(want)} cells, its notebook {len(got)}: make notebooks"
    for i, (a, b) in enumerate(zip(want, got)):
        assert a == b, f"cell {i} of {script.stem} differs between the .py and the .ipynb: make notebooks"
