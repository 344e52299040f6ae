"""Command line: ``python -m induction_nb`` / ``induction-nb``.

* ``scan [MODEL]``: detect induction heads (default: the embedded SmolLM2) and print the report;
  ``--json``/``--csv`` export. With no sub-command, ``scan`` is assumed (the README's main job).
* ``show [MODEL] --layer L --head H``: one head's attention pattern and induction stripe, with tokens.
* ``retrieval [MODEL]``: retrieval heads (needle in a haystack) and their report.
* ``report RESULT.json``: print the report of a saved scan.

Exit status 0 on success, 2 on bad input with one line on stderr (no traceback). The rest of the package
(and torch) is imported inside the commands, so ``--help`` and usage errors answer at once.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ..errors import InductionNBError, InputError
from .commands import report, retrieval, scan, show
from .parser import COMMANDS, Usage, build_parser

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "scan")
    try:
        args = build_parser().parse_args(argv)
        from ..draw.text_kit import check_view_options

        check_view_options(args.width, args.charset)  # before minutes of work, not after
        if getattr(args, "top", 1) < 1:
            raise InputError("--top must be >= 1")
        # stdout carries the report alone: nnsight's remote status lines and any library chatter go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            text = {"scan": scan, "show": show, "report": report, "retrieval": retrieval}[args.command](args)
    except (Usage, InductionNBError) as e:
        print(f"error: {e}".replace("\n", " "), file=sys.stderr)
        return 2
    try:
        print(text)
    except BrokenPipeError:  # `induction-nb ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
    return 0
