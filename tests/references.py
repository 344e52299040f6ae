"""Committed expectations (ASCII snapshots, baseline images): compared, never written, by a test run.

A missing or different reference fails the test. Regenerating them is a separate, deliberate command:
``make snapshots`` (pytest with ``--update-references``), after which the diff is reviewed and committed.
"""

from __future__ import annotations

from pathlib import Path

UPDATE = False  # set from the --update-references option by conftest.py


def missing(path: Path) -> str:
    return f"{path} is missing: generate it deliberately with `make snapshots` and review it before committing"
