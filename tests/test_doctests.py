"""The ``Examples`` of the public docstrings run, as doctests, and print what they say they print.

They run on the hand-built transformer (``HandBuiltInduction``: known heads, no download, well under a
second a call) or on tiny random-config models; an example that needs the real SmolLM2 is marked
``# doctest: +SKIP`` and is exercised by the tests of its module instead. Each example imports what it
uses, so it reads the same on its API page as here.
"""

from __future__ import annotations

import doctest
import io

import pytest

import induction_nb
from docs.public_names import own_doc

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _tests():
    finder = doctest.DocTestFinder(recurse=False)
    seen: set[int] = set()
    for name in sorted(induction_nb.__all__):
        obj = getattr(induction_nb, name)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (tuple, str)):
            tests = [doctest.DocTestParser().get_doctest(own_doc(name), {}, name, None, 0)]
        else:
            tests = finder.find(obj, name, globs={})
        for test in tests:
            if any(not ex.options.get(doctest.SKIP) for ex in test.examples):
                yield pytest.param(test, id=name)


TESTS = list(_tests())


@pytest.mark.parametrize("test", TESTS)
def test_docstring_example(test):
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    try:
        result = runner.run(test, out=out.write)
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    assert result.failed == 0, out.getvalue()


def test_examples_are_many():
    """Most public names carry a runnable example (the count is in the documentation's closing note)."""
    assert len(TESTS) >= 60, len(TESTS)
