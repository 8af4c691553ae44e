"""The one XML escaping rule every hand-written document of the service follows.

Characters XML 1.0 cannot carry (C0 controls other than tab, newline and carriage return;
U+FFFE, U+FFFF; lone surrogates) become U+FFFD, so a bad byte in the data is visible rather than
silently dropped or a broken document. Markup characters are escaped; in attributes the quote and
the whitespace characters an XML parser would normalise are escaped too, so values survive
exactly. ``votable`` applies the same rules to whole Arrow columns at once.
"""
from __future__ import annotations

import re
from typing import Any

#: The characters XML 1.0 cannot carry, as a regular expression both ``re`` and RE2 understand.
INVALID_CHARS = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
#: Escapes of element content, in the order they must be applied.
CONTENT_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;"))
ATTRIBUTE_ESCAPES = (('"', "&quot;"), ("\n", "&#10;"), ("\t", "&#9;"))

_INVALID = re.compile(INVALID_CHARS + "|[\ud800-\udfff]")


def clean(value: Any) -> str:
    """The text with every character XML cannot carry replaced by U+FFFD."""
    return _INVALID.sub("\ufffd", str(value))


def text(value: Any) -> str:
    """Element content."""
    out = clean(value)
    for old, new in CONTENT_ESCAPES:
        out = out.replace(old, new)
    return out


def attr(value: Any) -> str:
    """An attribute value (to go between double quotes)."""
    out = text(value)
    for old, new in ATTRIBUTE_ESCAPES:
        out = out.replace(old, new)
    return out
