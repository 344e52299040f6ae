"""The file format of scan results (JSON): its tag, its versions, and the checks a stored result must pass.

Version 3 (written now): a ``kind`` (``probe``, ``text``, ``retrieval``), the ``metrics`` the heads carry,
and per head its metrics by registry name (``null`` where undefined, absent where not measured). Version 2
stored a fixed set of fields per head and the kind in ``settings["kind"]`` (a hybrid model's layers may be
skipped); version 1 stored the whole ``n_layers x n_heads`` grid. Both still load.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError, warn_user
from ..metrics import REGISTRY

__all__ = [
    "FORMAT",
    "VERSION",
    "READABLE",
    "read_header",
    "read_fields",
    "check_grid",
    "warn_unregistered",
    "read_json",
    "write_json",
]

FORMAT = "induction_nb.DetectionResult"
VERSION = 3
READABLE = (1, 2, 3)


def read_header(d: Any) -> tuple[int, str, dict]:
    """``(version, kind, settings)`` of a stored result (the kind moved out of the settings of versions 1
    and 2); ``InputError`` for a foreign file or an unreadable version."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise InputError(f'not an induction_nb detection result (expected "format": "{FORMAT}")')
    version = d.get("version")
    if isinstance(version, bool) or version not in READABLE:
        raise InputError(
            f"result format version {version!r} is not supported (readable: {', '.join(map(str, READABLE))})"
        )
    settings = d.get("settings", {})
    if not isinstance(settings, dict):
        raise InputError("damaged detection result: settings must be an object")
    settings = dict(settings)
    kind = d.get("kind") if version >= 3 else (settings.pop("kind", None) or "probe")
    return version, kind, settings


def read_fields(d: dict) -> tuple[float, str, int, int, int]:
    """``(threshold, model name, n_layers, n_heads, seed)`` of a stored result, each of its JSON type (no
    ``"0.4"`` read as a number, no ``2.7`` layers read as 2); ``InputError`` naming the field."""
    model = d["model"]
    if not isinstance(model, dict):
        raise InputError("model must be an object with name, n_layers and n_heads")
    return (
        _field("threshold", d["threshold"], float),
        _field("model.name", model["name"], str),
        _field("model.n_layers", model["n_layers"], int),
        _field("model.n_heads", model["n_heads"], int),
        _field("seed", d.get("seed", 0), int),
    )


_NOUN = {float: "a finite number", str: "a string", int: "an integer >= 0"}


def _field(key: str, value: Any, kind: type) -> Any:
    accepted = (int, float) if kind is float else kind
    ok = isinstance(value, accepted) and not isinstance(value, bool)
    if ok and kind is float:
        ok = math.isfinite(value)
    if ok and kind is int and key != "seed":
        ok = value >= 0
    if not ok:
        raise InputError(f"{key} must be {_NOUN[kind]}, got {value!r:.40}")
    return kind(value)


def check_grid(d: dict, result: Any) -> None:
    """The stored heads are the whole grid (version 1) or the layers and head counts ``heads_per_layer``
    names (2, 3), layer by layer; the threshold is in [0, 1]. Counted before anything is built, so a
    damaged grid size (10^5 x 10^5) is an error, not a memory blow-up."""
    if not 0 <= result.threshold <= 1:
        raise InputError(f"damaged detection result: threshold {result.threshold} is outside [0, 1]")
    per_layer = d["model"].get("heads_per_layer") if d.get("version", 1) >= 2 else None
    if per_layer is None:
        heads = [(l, result.n_heads) for l in range(min(result.n_layers, len(result.head_scores) + 1))]
        count, where = result.n_layers * result.n_heads, f"{result.n_layers} x {result.n_heads} heads"
    else:
        heads = _per_layer(per_layer, result)
        count = sum(n for _, n in heads)
        where = f"the {count} heads of its layers" if count != result.n_layers * result.n_heads else ""
        where = where or f"{result.n_layers} x {result.n_heads} heads"
    scores = result.head_scores
    if len(scores) != count:
        raise InputError(f"damaged detection result: {len(scores)} head scores for {where}")
    expected = ((l, h) for l, n in heads for h in range(n))
    for i, (s, key) in enumerate(zip(scores, expected)):
        if (s.layer, s.head) != key:
            raise InputError(
                f"damaged detection result: entry {i} is L{s.layer}H{s.head}, expected "
                f"L{key[0]}H{key[1]} (scores are stored layer by layer)"
            )


def _per_layer(per_layer: Any, result: Any) -> list[tuple[int, int]]:
    """``heads_per_layer`` as sorted ``(layer, head count)`` pairs inside the result's grid."""
    try:
        heads = sorted((int(l), int(n)) for l, n in per_layer.items())
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise InputError(
            "damaged detection result: model.heads_per_layer must map layer indices to head counts"
        ) from None
    bad = [l for l, n in heads if not (0 <= l < result.n_layers and 0 < n <= result.n_heads)]
    if bad:
        raise InputError(
            f"damaged detection result: heads_per_layer names layers {bad} outside the "
            f"{result.n_layers} x {result.n_heads} grid"
        )
    return heads


def warn_unregistered(scores: Any) -> None:
    """A warning naming the metrics the loaded heads carry that this session has not registered (a user's
    own metric): they are kept, and saved again, but no view shows them until registered."""
    unknown = sorted({k for s in scores for k in s.values} - set(REGISTRY))
    if unknown:
        warn_user(
            f"the result holds metrics this session has not registered: {', '.join(unknown)}; they are "
            "kept but not shown until registered (induction_nb.metrics.register)"
        )


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN as ``NaN``, as ``json`` does); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=1))
    return path


def read_json(path: str | Path) -> Any:
    """The JSON at ``path``; ``InputError`` naming the path where it cannot be read or is not JSON."""
    if not isinstance(path, (str, Path)):
        raise InputError(f"load needs the path of a saved file, got {type(path).__name__}")
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not valid JSON: {e}") from None
