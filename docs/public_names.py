"""Where griffe finds each public name of induction_nb, and the docstring written on it.

One resolver for the site's hooks (API pages, the build's "every public name documented" check) and for
the tests that hold those docstrings (``tests/test_docstrings.py``, ``tests/test_doctests.py``), so that
what the tests check is what the pages show. The facade imports lazily, so a name is looked up in the
module that defines it; a constant (a tuple, whose docstring Python does not keep) through the group that
exports it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import induction_nb

ROOT = Path(__file__).resolve().parent.parent


def identifier(name: str) -> str:
    """The dotted path of public ``name`` where it is defined, e.g. ``induction_nb.analysis.detector.X``."""
    obj = getattr(induction_nb, name)
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(obj, (tuple, str)) or not module or not qualname or not module.startswith("induction_nb"):
        return f"induction_nb.{induction_nb._EXPORTS[name]}.{name}"
    return f"{module}.{qualname}"


@functools.cache
def package() -> Any:
    """The package as griffe reads it from the sources (once per process)."""
    import griffe

    return griffe.load("induction_nb", search_paths=[str(ROOT)], docstring_parser="google")


def griffe_object(name: str) -> Any:
    """The griffe object public ``name`` stands for (an alias followed to its target)."""
    found = package()[identifier(name).removeprefix("induction_nb.")]
    return found.target if found.is_alias else found


def own_doc(name: str) -> str:
    """The docstring written on the object itself (``inspect.getdoc`` would take a base class's, and a
    dataclass without one gets its signature as ``__doc__``); ``""`` where there is none."""
    found = griffe_object(name)
    return found.docstring.value if found.docstring else ""
