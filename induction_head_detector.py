"""The original spec's import path: ``from induction_head_detector import ...``.

A thin alias of ``induction_nb``'s public names; the package itself is ``induction_nb``.
"""

from induction_nb import *  # noqa: F403
from induction_nb import __all__  # noqa: F401
