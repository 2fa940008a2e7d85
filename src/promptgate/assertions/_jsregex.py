"""JavaScript regular expressions translated into Python `re` patterns.

What is reproduced (and what is rejected) is listed in the `promptgate.assertions` docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ._js import _utf16_units

_MAX_REPEAT = 4294967294  # Python's limit; JS allows more but no real subject is that long
_SYNTAX_CHARS = set("^$\\.*+?()[]{}|/")
_DIGITS = "0123456789"
_HEX = set("0123456789abcdefABCDEF")

_Ranges = list[tuple[int, int]]
_R_DIGIT: _Ranges = [(0x30, 0x39)]
_R_WORD: _Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_R_SPACE: _Ranges = [
    (0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF),
]  # fmt: skip
_R_LINE_TERMINATORS: _Ranges = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
_NOT_WORD_BOUNDARY = r"(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_]))"


def _merge(ranges: _Ranges) -> _Ranges:
    out: _Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: _Ranges, top: int) -> _Ranges:
    out: _Ranges = []
    nxt = 0
    for lo, hi in _merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= top:
        out.append((nxt, top))
    return out


def _py_char(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _py_class(ranges: _Ranges, negate: bool = False) -> str:
    ranges = _merge(ranges)
    if not ranges:
        return r"[\x00-\U0010ffff]" if negate else "(?!)"
    body = "".join(
        _py_char(lo) if lo == hi else f"{_py_char(lo)}-{_py_char(hi)}" for lo, hi in ranges
    )
    return f"[{'^' if negate else ''}{body}]"


class _JsRegexSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class _JsRegex:
    source: str
    compiled: re.Pattern[str]
    utf16: bool

    def test(self, text: str) -> bool:
        return self.compiled.search(_utf16_units(text) if self.utf16 else text) is not None


class _RegexTranslator:
    """Recursive-descent parser of ECMAScript RegExp syntax that emits a Python pattern."""

    def __init__(self, source: str, flags: str) -> None:
        self.unicode = "u" in flags
        self.multiline = "m" in flags
        self.dotall = "s" in flags
        self.src = source if self.unicode else _utf16_units(source)
        self.pos = 0
        self.top = 0x10FFFF if self.unicode else 0xFFFF
        self.ncaps, self.all_names = self._count_groups()
        self.named = bool(self.all_names) or self.unicode
        self.names: dict[str, int] = {}
        self.cap = 0
        self.open_caps: list[int] = []

    # -- helpers ------------------------------------------------------------------------------
    def error(self, message: str) -> _JsRegexSyntaxError:
        return _JsRegexSyntaxError(f"Invalid regular expression: /{self.src}/: {message}")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.src[i] if i < len(self.src) else ""

    def _count_groups(self) -> tuple[int, dict[str, int]]:
        """Number of capturing groups and the index of each group name (a pre-pass)."""
        src, i, count, in_class = self.src, 0, 0, False
        names: dict[str, int] = {}
        while i < len(src):
            c = src[i]
            if c == "\\":
                i += 2
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
            elif c == "(":
                if not src.startswith("?", i + 1):
                    count += 1
                elif src.startswith("?<", i + 1) and src[i + 3 : i + 4] not in ("=", "!"):
                    count += 1
                    end = src.find(">", i + 3)
                    names.setdefault(src[i + 3 : end] if end > 0 else "", count)
            i += 1
        return count, names

    def _braced_quantifier(self, at: int) -> tuple[int, int | None, int] | None:
        """Parse `{n}`, `{n,}`, `{n,m}` at `at`: (min, max, end) or None."""
        m = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(self.src, at)
        if not m:
            return None
        lo = int(m.group(1))
        hi: int | None = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
        return lo, hi, m.end()

    # -- grammar ------------------------------------------------------------------------------
    def translate(self) -> str:
        out = self.disjunction()
        if self.pos < len(self.src):
            raise self.error("Unmatched ')'" if self.peek() == ")" else "Unexpected character")
        return out

    def disjunction(self) -> str:
        parts = [self.alternative()]
        while self.peek() == "|":
            self.pos += 1
            parts.append(self.alternative())
        return "|".join(parts)

    def alternative(self) -> str:
        out: list[str] = []
        while self.pos < len(self.src) and self.peek() not in ("|", ")"):
            out.append(self.term())
        return "".join(out)

    def term(self) -> str:
        c = self.peek()
        if c == "^":
            self.pos += 1
            self.no_quantifier()
            return r"(?:^|(?<=[\n\r\u2028\u2029]))" if self.multiline else "^"
        if c == "$":
            self.pos += 1
            self.no_quantifier()
            return r"(?=[\n\r\u2028\u2029]|\Z)" if self.multiline else r"\Z"
        if c == "\\" and self.peek(1) in ("b", "B"):
            self.pos += 2
            self.no_quantifier()
            # Python's \B never matches in an empty string; JavaScript's does.
            return r"\b" if self.src[self.pos - 1] == "b" else _NOT_WORD_BOUNDARY
        if c == "(" and self.peek(1) == "?" and self.peek(2) in ("=", "!"):
            kind = self.peek(2)
            self.pos += 3
            body = self.disjunction()
            self.expect_close()
            atom = f"(?{kind}{body})"
            if self.unicode:
                self.no_quantifier()
                return atom
            q = self.quantifier()  # Annex B: a lookahead may be quantified
            return f"(?:{atom}){q}" if q else atom
        if c == "(" and self.peek(1) == "?" and self.peek(2) == "<" and self.peek(3) in ("=", "!"):
            kind = self.peek(3)
            self.pos += 4
            body = self.disjunction()
            self.expect_close()
            self.no_quantifier()
            return f"(?<{kind}{body})"
        atom = self.atom()
        return atom + self.quantifier()

    def expect_close(self) -> None:
        if self.peek() != ")":
            raise self.error("Unterminated group")
        self.pos += 1

    def is_quantifier_start(self) -> bool:
        c = self.peek()
        return c in ("*", "+", "?") or (c == "{" and self._braced_quantifier(self.pos) is not None)

    def no_quantifier(self) -> None:
        if self.is_quantifier_start():
            raise self.error("Nothing to repeat")

    def quantifier(self) -> str:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.pos += 1
            q = c
        elif c == "{" and (b := self._braced_quantifier(self.pos)) is not None:
            lo, hi, self.pos = b
            if hi is not None and hi < lo:
                raise self.error("numbers out of order in {} quantifier")
            lo_s = str(min(lo, _MAX_REPEAT))
            if hi is None:
                q = "{" + lo_s + ",}"
            else:
                q = "{" + lo_s + "," + str(min(hi, _MAX_REPEAT)) + "}"
        else:
            return ""
        if self.peek() == "?":
            self.pos += 1
            q += "?"
        self.no_quantifier()
        return q

    def atom(self) -> str:
        c = self.peek()
        if c == ".":
            self.pos += 1
            if self.dotall:
                return r"[\x00-\U0010ffff]"
            return _py_class(_R_LINE_TERMINATORS, negate=True)
        if c == "[":
            return self.char_class()
        if c == "\\":
            return self.atom_escape()
        if c == "(":
            return self.group()
        if c in ("*", "+", "?"):
            raise self.error("Nothing to repeat")
        if c == "{":
            if self._braced_quantifier(self.pos) is not None:
                raise self.error("Nothing to repeat")
            if self.unicode:
                raise self.error("Lone quantifier brackets")
        if c in ("}", "]") and self.unicode:
            raise self.error("Lone quantifier brackets")
        return self.literal(self.code_point())

    def code_point(self) -> int:
        cp = ord(self.src[self.pos])
        self.pos += 1
        return cp

    def literal(self, cp: int) -> str:
        return _py_char(cp)

    def group(self) -> str:
        self.pos += 1  # (
        if self.peek() == "?":
            if self.peek(1) == ":":
                self.pos += 2
                body = self.disjunction()
                self.expect_close()
                return f"(?:{body})"
            if self.peek(1) == "<":
                end = self.src.find(">", self.pos + 2)
                name = self.src[self.pos + 2 : end] if end > 0 else ""
                if not _valid_group_name(name):
                    raise self.error("Invalid capture group name")
                if name in self.names:
                    raise self.error("Duplicate capture group name")
                self.pos = end + 1
                self.cap += 1
                self.names[name] = self.cap
                return self._capture(self.cap)
            raise self.error("Invalid group")
        self.cap += 1
        return self._capture(self.cap)

    def _capture(self, index: int) -> str:
        self.open_caps.append(index)
        body = self.disjunction()
        self.expect_close()
        self.open_caps.pop()
        return f"(?P<g{index}>{body})"

    def backreference(self, index: int) -> str:
        # JavaScript: a reference to a group that has not captured (yet) matches the empty string.
        if index > self.cap or index in self.open_caps:
            return "(?:)"
        return f"(?:(?(g{index})(?P=g{index})|))"

    def atom_escape(self) -> str:
        self.pos += 1  # backslash
        c = self.peek()
        if not c:
            raise self.error("\\ at end of pattern")
        if c in "123456789":
            m = re.compile("[0-9]+").match(self.src, self.pos)
            assert m is not None
            if int(m.group()) <= self.ncaps:
                self.pos = m.end()
                return self.backreference(int(m.group()))
            if self.unicode:
                raise self.error("Invalid escape")
            return self.literal(self.legacy_octal())
        if c in "dDsSwW":
            self.pos += 1
            return _class_escape_pattern(c, self.top)
        if c in ("p", "P") and self.unicode:
            raise _JsRegexSyntaxError(
                f"Unicode property escapes (\\{c}{{...}}) are not supported: /{self.src}/"
            )
        if c == "k" and self.named:
            self.pos += 1
            end = self.src.find(">", self.pos)
            if self.peek() != "<" or end < 0:
                raise self.error("Invalid named reference")
            name = self.src[self.pos + 1 : end]
            self.pos = end + 1
            if name not in self.all_names:
                raise self.error("Invalid named capture referenced")
            return self.backreference(self.all_names[name])
        if c == "c" and not ("a" <= self.peek(1).lower() <= "z" and self.peek(1).isascii()):
            if self.unicode:
                raise self.error("Invalid unicode escape")
            return self.literal(ord("\\"))  # Annex B: `\c` not followed by a letter is `\`
        return self.literal(self.character_escape(in_class=False))

    def legacy_octal(self) -> int:
        """Annex B LegacyOctalEscapeSequence (or identity escape of 8 / 9)."""
        c = self.peek()
        if c in "89":
            self.pos += 1
            return ord(c)
        max_len = 3 if c in "0123" else 2
        j = self.pos
        while j < len(self.src) and j - self.pos < max_len and self.src[j] in "01234567":
            j += 1
        value = int(self.src[self.pos : j], 8)
        self.pos = j
        return value

    def character_escape(self, in_class: bool) -> int:
        """CharacterEscape after the backslash; returns a code point (code unit without `u`)."""
        c = self.peek()
        simple = {"f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
        if c in simple:
            self.pos += 1
            return simple[c]
        if c == "c":
            nxt = self.peek(1)
            if nxt.isascii() and nxt.isalpha():
                self.pos += 2
                return ord(nxt) % 32
            raise self.error("Invalid unicode escape")  # callers handle the Annex B forms
        if c == "0" and not self.peek(1).isdigit():
            self.pos += 1
            return 0
        if c in _DIGITS:
            if self.unicode:
                raise self.error("Invalid class escape" if in_class else "Invalid escape")
            return self.legacy_octal()
        if c == "x":
            h = self.src[self.pos + 1 : self.pos + 3]
            if len(h) == 2 and set(h) <= _HEX:
                self.pos += 3
                return int(h, 16)
            if self.unicode:
                raise self.error("Invalid escape")
            self.pos += 1
            return ord("x")
        if c == "u":
            return self.unicode_escape()
        if self.unicode:
            if c in _SYNTAX_CHARS or (in_class and c == "-"):
                self.pos += 1
                return ord(c)
            raise self.error("Invalid class escape" if in_class else "Invalid escape")
        if c == "k" and self.named:
            raise self.error("Invalid named reference")
        self.pos += 1
        return ord(c)  # Annex B identity escape: `\a` is `a`, `\Z` is `Z`, `\p` is `p`...

    def unicode_escape(self) -> int:
        h = self.src[self.pos + 1 : self.pos + 5]
        if self.unicode and self.peek(1) == "{":
            end = self.src.find("}", self.pos + 2)
            digits = self.src[self.pos + 2 : end] if end > 0 else ""
            if not digits or not set(digits) <= _HEX or int(digits, 16) > 0x10FFFF:
                raise self.error("Invalid Unicode escape")
            self.pos = end + 1
            return int(digits, 16)
        if len(h) == 4 and set(h) <= _HEX:
            self.pos += 5
            cp = int(h, 16)
            if self.unicode and 0xD800 <= cp <= 0xDBFF and self.src.startswith("\\u", self.pos):
                t = self.src[self.pos + 2 : self.pos + 6]
                if len(t) == 4 and set(t) <= _HEX and 0xDC00 <= int(t, 16) <= 0xDFFF:
                    self.pos += 6
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (int(t, 16) - 0xDC00)
            return cp
        if self.unicode:
            raise self.error("Invalid Unicode escape")
        self.pos += 1
        return ord("u")

    def char_class(self) -> str:
        self.pos += 1  # [
        negate = self.peek() == "^"
        if negate:
            self.pos += 1
        ranges: _Ranges = []
        while True:
            if self.pos >= len(self.src):
                raise self.error("Unterminated character class")
            if self.peek() == "]":
                self.pos += 1
                break
            first = self.class_atom()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                second = self.class_atom()
                if isinstance(first, list) or isinstance(second, list):
                    if self.unicode:
                        raise self.error("Invalid character class")
                    for part in (first, second):
                        ranges.extend(part if isinstance(part, list) else [(part, part)])
                    ranges.append((0x2D, 0x2D))
                    continue
                if first > second:
                    raise self.error("Range out of order in character class")
                ranges.append((first, second))
                continue
            ranges.extend(first if isinstance(first, list) else [(first, first)])
        return _py_class(ranges, negate)

    def class_atom(self) -> int | _Ranges:
        if self.peek() != "\\":
            return self.code_point()
        c = self.peek(1)
        if not c:
            raise self.error("\\ at end of pattern")
        if c in "dDsSwW":
            self.pos += 2
            return _class_escape_ranges(c, self.top)
        if c == "b":
            self.pos += 2
            return 0x08
        if c == "-" and self.unicode:
            self.pos += 2
            return 0x2D
        if c in ("p", "P") and self.unicode:
            raise _JsRegexSyntaxError(
                f"Unicode property escapes (\\{c}{{...}}) are not supported: /{self.src}/"
            )
        if c == "c":
            nxt = self.peek(2)
            if nxt.isascii() and (
                nxt.isalpha() or (not self.unicode and (nxt.isdigit() or nxt == "_"))
            ):
                self.pos += 3
                return ord(nxt) % 32
            if self.unicode:
                raise self.error("Invalid class escape")
            self.pos += 1
            return ord("\\")  # Annex B: a lone backslash, then `c` as the next class atom
        self.pos += 1
        return self.character_escape(in_class=True)


def _class_escape_ranges(c: str, top: int) -> _Ranges:
    base = {"d": _R_DIGIT, "s": _R_SPACE, "w": _R_WORD}[c.lower()]
    return _complement(base, top) if c.isupper() else list(base)


def _class_escape_pattern(c: str, top: int) -> str:
    return _py_class({"d": _R_DIGIT, "s": _R_SPACE, "w": _R_WORD}[c.lower()], negate=c.isupper())


def _valid_group_name(name: str) -> bool:
    if not name:
        return False
    first, rest = name[0], name[1:]
    if not (first in "$_" or first.isidentifier()):
        return False
    return all(ch in "$\u200c\u200d" or ("a" + ch).isidentifier() for ch in rest)


@lru_cache(maxsize=1024)
def _js_regex(source: str, flags: str = "") -> _JsRegex:
    """Compile a JavaScript regular expression (`new RegExp(source, flags)`)."""
    translator = _RegexTranslator(source, flags)
    pattern = translator.translate()
    py_flags = re.ASCII | (re.IGNORECASE if "i" in flags else 0)
    try:
        compiled = re.compile(pattern, py_flags)
    except re.error as exc:
        if "look-behind" in str(exc):
            raise _JsRegexSyntaxError(
                f"/{source}/: lookbehind must be fixed-width here (Python re): {exc}"
            ) from None
        raise _JsRegexSyntaxError(f"/{source}/ cannot be matched by Python re: {exc}") from None
    return _JsRegex(source, compiled, utf16="u" not in flags)
