"""What nbresume prints of names and texts read from a store: escaped, one line each.

A store can arrive from elsewhere; a phase name or an event text holding a newline, an ANSI
escape or a right-to-left override would forge lines or rewrite the terminal when printed raw.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: object) -> str:
    """``text`` with every character that is not printable escaped as Python's repr escapes it.

    Examples
    --------
    >>> printable("sweep")
    'sweep'
    >>> print(printable("ok\\nFORGED \\x1b[31m"))
    ok\\nFORGED \\x1b[31m
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
