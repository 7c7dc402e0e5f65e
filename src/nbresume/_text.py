"""What nbresume prints of names and texts read from a store: escaped, one line each.

A store can arrive from elsewhere; a phase name or an event text holding a newline, an ANSI
escape or a right-to-left override would forge lines or rewrite the terminal when printed raw.
"""

from __future__ import annotations

__all__ = ["DEBUG_ENV", "debugging", "printable", "unexpected"]


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


DEBUG_ENV = (
    "NBRESUME_DEBUG"  # set (to anything but 0 or empty) for the traceback of an unexpected error
)


def debugging() -> bool:
    """Whether the user asked for tracebacks instead of one-line messages (`DEBUG_ENV`)."""
    import os

    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def unexpected(exc: BaseException, where: str) -> str:
    """One line for an error nbresume did not foresee, most likely a damaged store record."""
    return (
        f"{where} failed: unexpected {type(exc).__name__}: {printable(exc)}; a record in the "
        "store may be damaged or written by another nbresume version (clear that phase), or this "
        f"is a bug: set {DEBUG_ENV}=1 for the traceback and report it"
    )
