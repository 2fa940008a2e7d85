"""Reading the numbers people (and fuzzers) post in the web UI's forms."""

from __future__ import annotations


def whole_number(text: str) -> int | None:
    """A non-negative whole number in ASCII digits (at most 9 of them), else None; never an
    exception: `"²".isdigit()` is true, and `int("²")` raises."""
    if text.isascii() and text.isdecimal() and len(text) < 10:
        return int(text)
    return None
