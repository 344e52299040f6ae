"""The exceptions induction_nb raises on purpose.

Every error a user can cause (bad tokens, a model we cannot read, a pattern that fails its self-check)
is one of these, with a message that names the problem and the fix. They subclass ``ValueError`` or
``RuntimeError`` so that generic handlers keep working.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "InductionNBError",
    "InputError",
    "ModelLoadError",
    "AttentionNotFoundError",
    "CaptureCheckError",
    "RemoteExecutionError",
    "warn_user",
]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class InductionNBError(Exception):
    """Base class of every error raised on purpose by induction_nb."""


class InputError(InductionNBError, ValueError):
    """An argument is malformed (dtype, shape, range, device); the message says how to fix it."""


class ModelLoadError(InductionNBError, RuntimeError):
    """A model could not be loaded or wrapped (missing package, no network, unknown path)."""


class AttentionNotFoundError(InductionNBError, RuntimeError):
    """No attention computation could be located in the model; see ``induction_nb.CustomSites``."""


class CaptureCheckError(InductionNBError, RuntimeError):
    """A captured attention pattern failed its self-check (row sums, causal mask, finiteness)."""


class RemoteExecutionError(InductionNBError, RuntimeError):
    """A remote (NDIF) run failed; nothing partial is returned. ``kind``: ``"key"`` (no API key),
    ``"unreachable"``, ``"not_served"`` (the server does not serve the model), ``"job"`` (the job failed
    on the server; ``server_message`` holds its full message) or ``"lost"`` (connection lost mid-job)."""

    def __init__(self, message: str, kind: str = "job", server_message: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.server_message = server_message


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside induction_nb (the user's line), however
    deep inside the package the cause was found; a fixed ``stacklevel`` would point into our own code
    whenever a public function reaches the check through a different number of calls."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: warn_user's caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
