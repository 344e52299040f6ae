"""Token labels safe to show anywhere: the one escape every view applies to text it did not write itself.

A decoded token can hold anything: a newline or vertical tab (a 14-row grid becomes 18 lines), an ESC
sequence (it acts on the user's terminal), a right-to-left override (it reorders the line), a zero-width
joiner (invisible). ``escape_label`` writes each such character as a visible Python-style escape
(``\\n``, ``\\x1b``, ``\\u2028``) and doubles a literal backslash, so that a token that *is* ``\\n`` stays
distinguishable from a newline. Printable text, including non-ASCII letters and emoji, is left alone.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["escape_label", "escape_controls", "shorten", "display_width", "fit_width", "UNSAFE"]

# C0 and C1 controls, DEL, line/paragraph separators, zero-width and bidi controls, BOM, and friends
UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_CONTROLS = re.compile(UNSAFE.pattern.replace("\\\\", "", 1))  # the same set less the backslash
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape(match: re.Match) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_label(token: Any) -> str:
    """``str(token)`` with every control, separator, zero-width and bidi character escaped (see module)."""
    if hasattr(token, "item") and callable(token.item):  # a 0-d tensor or numpy scalar
        token = token.item()
    return UNSAFE.sub(_escape, str(token))


def escape_controls(text: str) -> str:
    """The last line of defence of a view: controls escaped in text that mixes ours and the user's (a model
    name, a settings value), where a literal backslash (a Windows path) stays as it is."""
    return _CONTROLS.sub(_escape, text)


def shorten(token: Any, size: int) -> str:
    """``escape_label(token)`` cut to ``size`` characters, the last one ``~`` when cut."""
    text = escape_label(token)
    return text if len(text) <= size else text[: size - 1] + "~"


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide and full-width characters (CJK, most emoji) 2, combining
    marks 0, others 1; what alignment needs where ``len`` counts code points."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fit_width(text: str, size: int) -> str:
    """``text`` cut (ending in ``~``) and padded to exactly ``size`` terminal columns."""
    if display_width(text) > size:
        while display_width(text) > size - 1:
            text = text[:-1]
        text += "~"
    return text + " " * (size - display_width(text))


def token_labels(model: Any, ids: list[int]) -> list[str]:
    """Each id decoded on its own by the model's tokenizer, or the id itself where there is none (raw text:
    views escape it with ``draw.labels.escape_label``)."""
    tok = getattr(model, "tokenizer", None) if model is not None else None
    return [tok.decode([i]) for i in ids] if tok is not None else [str(i) for i in ids]
