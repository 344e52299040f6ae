"""``python -m induction_nb [scan|show|report] ...``: see ``induction_nb.cli``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
