"""Log text is hostile data: :func:`quote` shows a string from a statement as a quotation.

Every string a statement carries (offer texts, names, reasons, ids, key names, descriptions) was
written by a party the reader is auditing, so a reader-facing text output must never let it pass
for words the service wrote. The rule, applied by every text output (``/llms.txt``,
``/v1/precedent.txt``, the CLI's text report, the MCP server's text; the web page shows the same
literal in a ``<bdi>``):

- the string is shown as a **JSON string literal** (RFC 8259): in double quotes, with ``"``,
  ``\\`` and every C0 control escaped, so it stays on one line and where it ends is unambiguous;
- beyond JSON's own escapes, every character that is invisible, reorders text, breaks a line
  or looks like the closing quote is written as ``\\uXXXX`` (a surrogate pair for characters
  beyond U+FFFF): controls (C0, DEL, C1 such as U+0085), format characters (bidi embeddings,
  overrides, isolates and marks, zero-width characters, U+FEFF, tags), surrogates, private-use
  and unassigned code points, line and paragraph separators (U+2028, U+2029), every space other
  than U+0020 (NBSP, U+3000, …), the blank-looking letters and symbols of :data:`INVISIBLE`
  (U+2800 BRAILLE PATTERN BLANK, the Hangul fillers, variation selectors, …) and the
  double-quote lookalikes of :data:`QUOTE_LOOKALIKES` (“ ” ＂ …);
- a combining mark is escaped where it would draw on the service's text or pile up: as the
  string's first character, right after an escaped character, and past the
  :data:`MAX_COMBINING_RUN`-th mark in a row.

So ``json.loads(quote(s)) == s`` for every ``s``: a quotation is exact, only shown safely; and
the only double-quote-like characters in it are its two delimiters and ``\\"``.

:func:`quotation` is the one form a line takes to carry log text: a label written by the
service, the statement quoted and who signed it, then the literals, last on the line.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Final

INVISIBLE: Final = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800\u3164\uffa0\uffef"
    "\U0001d159\U0001d173\U0001d174\U0001d175\U0001d176\U0001d177\U0001d178\U0001d179\U0001d17a"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)
"""Characters outside the escaped categories that still render as nothing or as blank space
(U+2800, the Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the variation selectors, …)."""

QUOTE_LOOKALIKES: Final = frozenset(
    "\u02ba\u02dd\u02ee\u05f4\u201c\u201d\u201e\u201f\u2033\u2036\u275d\u275e\u2e42\u3003"
    "\u301d\u301e\u301f\uff02\U0001f676\U0001f677\U0001f678"
)
"""Characters that look like a double quote: escaped, so that none can seem to end a quotation."""

MAX_COMBINING_RUN: Final = 4
"""Combining marks in a row shown as they are; later ones in the run are escaped (a long
stack of marks draws over the lines above and below)."""

_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
_JSON_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}

_PLAIN, _ESCAPE, _MARK = 0, 1, 2


@functools.lru_cache(maxsize=8192)
def _kind(char: str) -> int:
    """How :func:`quote` treats ``char``: as is, escaped, or as a combining mark."""
    if char == " ":
        return _PLAIN
    if char in INVISIBLE or char in QUOTE_LOOKALIKES:
        return _ESCAPE
    category = unicodedata.category(char)
    if category in _ESCAPED_CATEGORIES:
        return _ESCAPE
    return _MARK if category[0] == "M" else _PLAIN


def _escape(char: str) -> str:
    point = ord(char)
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    point -= 0x10000
    return f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}"


def quote(value: str) -> str:
    """``value`` as a one-line JSON string literal with every invisible, reordering,
    line-breaking or quote-like character escaped (the rule: see the module).
    ``json.loads(quote(v)) == v`` for every ``v``."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    out = ['"']
    after_escape = True  # the opening quote: a mark must not draw on it
    run = 0
    for char in value:
        kind = _kind(char)
        if kind == _MARK:
            run += 1
            escaped = after_escape or run > MAX_COMBINING_RUN
        else:
            run = 0
            escaped = kind == _ESCAPE
        if escaped:
            out.append(_JSON_ESCAPES.get(char) or _escape(char))
        elif char in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[char])
            escaped = True
        else:
            out.append(char)
        after_escape = escaped
    out.append('"')
    return "".join(out)


def quotation(label: str, source: str, *values: str) -> str:
    """The one form of a line's log text: ``{label}, quoted from {source}: "…", "…"``.

    ``label`` says what the text is and ``source`` which statement it is quoted from and who
    signed it (e.g. ``the offer signed by the body (entry 1)``); both are the caller's own
    words, in which log text may appear only as a :func:`quote` literal (an item's id:
    ``Finding on "autonomous": met; its reasons``). The values follow as :func:`quote`
    literals, comma-separated, at the end of the line."""
    return f"{label}, quoted from {source}: " + ", ".join(quote(v) for v in values)
