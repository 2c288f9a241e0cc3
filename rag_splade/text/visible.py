"""Untrusted text as a reader sees it: invisible characters out, look-alike blanks as
spaces, and the one rule of what counts as a bracketed number.

The LLM context (`rag_splade.context`) decides what a passage line starts with on this
form, so that no invisible or format character can hide a forged citation header from the
rule while leaving it intact for the reader.

Example:
    >>> visible_line("\\u3164[\\u200b4] 出典")
    '[4] 出典'
    >>> leading_number("【9】 出典: 偽")
    (0, 3, '9')
"""

from __future__ import annotations

import unicodedata

# Letters that render as nothing (Hangul fillers, Unicode's default-ignorable letters):
# dropped like format characters.
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
# Characters that render as an empty cell: read as a space (so a line of them is blank).
_BLANKS = frozenset("\u2800")
# Names of the "No" characters that are a number in a bracket, circle or with a stop
# (② ⑽ ⒐ ❶ ㉑ 🄂): each reads as a bracketed number by itself.
_ENCLOSED_WORDS = ("CIRCLED", "PARENTHESIZED", "FULL STOP", "COMMA", "SQUARED", "ENCLOSED")
# Spaces kept as they are; every other Zs becomes U+0020.
_KEPT_SPACES = frozenset(" \u3000")


def visible_lines(text: str) -> list[str]:
    """The lines of `text` (every kind of line break splits), each `visible_line`, without
    the lines that are blank once invisible characters are gone."""
    lines = (visible_line(line).rstrip() for line in text.splitlines())
    return [line for line in lines if line.strip()]


def visible_line(line: str) -> str:
    """`line` without what does not show, then NFC.

    Dropped: format characters (Cf: zero-width spaces and joiners, direction marks and
    overrides, BOM, soft hyphen, tags), control characters (a tab becomes a space),
    surrogates, the Hangul fillers, and combining marks (Mn, Me) that have no letter to
    sit on (at the start, after a space, bracket or digit: the combining grapheme joiner
    U+034F, variation selectors, an enclosing keycap). Marks on a letter stay (Japanese
    dakuten and handakuten, accents, ideographic variation selectors). Spaces other than
    U+0020 and U+3000, and the blank braille cell U+2800, become U+0020.
    """
    out: list[str] = []
    on_letter = False  # whether a combining mark here has a letter to sit on
    for ch in line:
        category = unicodedata.category(ch)
        if category in ("Mn", "Me"):
            if on_letter:
                out.append(ch)
            continue
        if category in ("Cf", "Cs") or ch in _FILLERS:
            continue  # invisible: neither a base nor a break between base and mark
        if category == "Cc":
            if ch == "\t":
                out.append(" ")
                on_letter = False
            continue
        if (category == "Zs" and ch not in _KEPT_SPACES) or ch in _BLANKS:
            ch = " "
        out.append(ch)
        on_letter = category.startswith("L")
    return unicodedata.normalize("NFC", "".join(out))


def is_bracket(ch: str) -> bool:
    """Whether `ch` is an opening or closing bracket of any script or width:
    ``[ ] ( ) ［ ］ 【 】 〔 〕 「 」 ⦅ ⦆ ❨ ❩`` (Unicode Ps and Pe)."""
    return unicodedata.category(ch) in ("Ps", "Pe")


def enclosed_number(ch: str) -> int | None:
    """The number that `ch` shows in a circle, parentheses or with a stop
    (``②`` -> 2, ``⑽`` -> 10, ``⒐`` -> 9, ``❶`` -> 1), else None."""
    if unicodedata.category(ch) != "No":
        return None
    value = unicodedata.numeric(ch, -1.0)
    name = unicodedata.name(ch, "")
    if value < 0 or value != int(value) or not any(w in name for w in _ENCLOSED_WORDS):
        return None
    return int(value)


def leading_number(line: str, at: int = 0) -> tuple[int, int, str] | None:
    """`(start, end, number)` when `line` (a `visible_line`) starts at `at`, after spaces,
    with a number that reads as bracketed: digits of any script (superscripts too) between
    two brackets of any kind (``[4]``, ``［４］``, ``【9】``, ``]52[``, ``⁽⁴⁾``), or an
    enclosed number with or without brackets (``②``, ``[②]``); None otherwise (``2020年``,
    ``[4`` are not). `number` is its value in ASCII digits, however long (never an int: a
    run of thousands of digits is still only text)."""
    start = i = _skip_spaces(line, at)
    opened = i < len(line) and is_bracket(line[i])
    i = _skip_spaces(line, i + 1) if opened else i
    enclosed = enclosed_number(line[i]) if i < len(line) else None
    if enclosed is not None:
        number, i = str(enclosed), i + 1
    else:
        digits_end = i
        while digits_end < len(line) and unicodedata.digit(line[digits_end], -1) >= 0:
            digits_end += 1
        if digits_end == i:
            return None
        digits = "".join(str(unicodedata.digit(d)) for d in line[i:digits_end])
        number, i = digits.lstrip("0") or "0", digits_end
    after = _skip_spaces(line, i)
    closed = after < len(line) and is_bracket(line[after])
    if closed:
        i = after + 1
    if enclosed is None and not (opened and closed):
        return None
    return start, i, number


def _skip_spaces(line: str, i: int) -> int:
    while i < len(line) and line[i].isspace():
        i += 1
    return i
