"""Eval assertions with promptfoo's names and verdicts.

Every assertion type, its value forms, its `not-` form and the way a case's weighted score is
aggregated follow promptfoo 0.121.20 (`src/assertions/*.ts`, `src/assertions/index.ts`,
`src/assertions/assertionsResult.ts`), so that promptfoo suites port unchanged. Where promptfoo
leans on JavaScript (regular expressions, `String(x)`, `JSON.parse`, js-yaml, ajv), this module
reproduces the JavaScript behaviour in Python rather than substituting Python's:

* **Regular expressions** (`regex`, and JSON-schema `pattern` / `format: regex`) are parsed with
  ECMAScript syntax (web-compat Annex B grammar, as `new RegExp(value)` uses) and translated into
  an equivalent Python `re` pattern: `\\d`, `\\w`, `\\b` are ASCII-only, `\\s` is JavaScript's
  whitespace set, `.` excludes the four line terminators, `$` matches only at the very end,
  `(?<name>...)` / `\\k<name>` become Python groups, a backreference to a group that has not
  matched matches the empty string, `\\a`-style identity escapes, legacy octal escapes and
  literal `{` / `}` / `]` behave as in JavaScript, and syntax JavaScript rejects (`(?i)`,
  possessive `a*+`, `a{,3}` used as a quantifier...) is rejected. Without the `u` flag JavaScript
  matches UTF-16 code units, so the subject and the pattern are matched as UTF-16 code units too.
  Not reproducible with Python's `re`: variable-width lookbehind (rejected with a clear error),
  `\\p{...}` property escapes in `u` patterns (rejected), and the reset of captures between
  iterations of a quantified group (only observable through a backreference to such a capture).
* **JSON**: `is-json` / `equals` parse like `JSON.parse` (no `NaN`/`Infinity`); `contains-json`
  scans the output like promptfoo's `extractJsonObjects` (brace counting, auto-closing an
  unterminated object, `//` comments, YAML flow syntax as js-yaml's core schema reads it).
* **JSON schema**: validated like promptfoo's strict ajv with ajv-formats: unknown keywords and
  unknown formats are load-time errors, every ajv-formats format is checked with ajv-formats' own
  definitions, `pattern` uses JavaScript regex semantics (`u` flag) and `nullable` is honoured.

Deliberate differences, all fail-closed: assertion values are templated with Jinja2 (promptfoo:
Nunjucks) and an undefined variable is an error instead of an empty string; an `llm-rubric`
verdict without a `pass` field is an error (promptfoo assumes a pass); an assertion that could not
be evaluated (no judge, unknown latency or cost, a Python check that raised...) fails its case even
when the case has a `threshold`; Python checks run in-process (loaded once per file version,
their folder put on `sys.path` as promptfoo's wrapper does). As in promptfoo, a python check that
returns a bare number or a `{pass, score, reason}` object keeps that score even outside 0..1.
Known gaps of the lenient `contains-json` scan: YAML timestamps stay strings (js-yaml makes Dates),
and on malformed non-JSON text PyYAML and js-yaml can disagree (e.g. a plain `-` before `}`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import math
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "ASSERTION_TYPES",
    "RUBRIC_SYSTEM_PROMPT",
    "AssertContext",
    "AssertionResult",
    "AssertionSpecError",
    "CaseScore",
    "assertion",
    "evaluate",
    "rubric_messages",
    "score_case",
    "validate_assertion",
]


# --------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssertionResult:
    type: str  # as written, e.g. "not-contains"
    passed: bool
    score: float  # 0..1 (a python check returning a bare number keeps it, as promptfoo does)
    reason: str  # what was expected vs found
    weight: float
    value: Any  # the configured value, for reports
    error: str | None = None  # the assertion could not be evaluated (counts as failed)


@dataclass(frozen=True)
class CaseScore:
    passed: bool
    score: float  # weighted score
    results: tuple[AssertionResult, ...]
    reason: str


Judge = Callable[[list[dict[str, str]]], Awaitable[str]]


@dataclass(frozen=True)
class AssertContext:
    vars: Mapping[str, Any]  # the case vars
    prompt: str  # prompt name
    suite_dir: Path  # python file:// paths are relative to this
    latency_ms: float | None = None
    cost: float | None = None  # USD, None if unknown -> cost assertion errors (fail closed)
    judge: Judge | None = None  # async: chat messages -> the judge model's raw text


class AssertionSpecError(ValueError):
    """A bad assertion spec, found when the suite is loaded."""


class _EvalError(Exception):
    """The assertion could not be evaluated (becomes AssertionResult.error)."""


# --------------------------------------------------------------------------------------------
# JavaScript value semantics (String(x), Number(x), JSON.stringify, toFixed, toPrecision)
# --------------------------------------------------------------------------------------------

# JavaScript's WhiteSpace + LineTerminator: what `\s`, `trim()` and `split(/\s+/)` use.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"  # noqa: E501
_JS_SPACE_CLASS = r"\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WORD_RE = re.compile(f"[^{_JS_SPACE_CLASS}]+")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _js_num(x: float) -> str:
    """Number.prototype.toString() for a finite or non-finite number."""
    if isinstance(x, int):
        try:
            x = float(x)
        except OverflowError:
            return "Infinity" if x > 0 else "-Infinity"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 2**53:
        return str(int(x))
    text = repr(x)
    if "e" not in text:  # decimal notation: Python's shortest repr is JavaScript's
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if x < 0 else ""
    digits_t, exp = Decimal(repr(abs(x))).as_tuple()[1:]
    digits = "".join(map(str, digits_t)).rstrip("0")
    assert isinstance(exp, int)
    exp += len(digits_t) - len(digits)
    k = len(digits)
    n = exp + k
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mant = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _js_str(value: Any) -> str:
    """String(value) for JSON-like Python values."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return _js_num(value)
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else _js_str(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _js_json(value: Any) -> str:
    """JSON.stringify(value) (compact) with JavaScript number formatting."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        f = float(value)
        return _js_num(value) if math.isfinite(f) else "null"
    if isinstance(value, Mapping):
        return (
            "{" + ",".join(f"{_js_json(_js_str(k))}:{_js_json(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_js_json(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


_JS_DECIMAL_RE = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")


def _js_parse_float(text: str) -> float:
    m = _JS_DECIMAL_RE.match(text.lstrip(_JS_SPACE))
    if not m:
        return math.nan
    s = m.group()
    if s.endswith("Infinity"):
        return -math.inf if s.startswith("-") else math.inf
    return float(s)


def _js_to_number(value: Any) -> float:
    """Number(value)."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if _is_number(value):
        return float(value)
    if isinstance(value, (list, tuple)):
        return _js_to_number(_js_str(value))
    if not isinstance(value, str):
        return math.nan
    s = value.strip(_JS_SPACE)
    if not s:
        return 0.0
    m = _JS_DECIMAL_RE.fullmatch(s)
    if m:
        return _js_parse_float(s)
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if s[:2].lower() == prefix:
            try:
                return float(int(s[2:], base)) if s[2:].isalnum() else math.nan
            except ValueError:
                return math.nan
    return math.nan


def _js_to_fixed(x: float, digits: int) -> str:
    if not math.isfinite(x) or abs(x) >= 1e21:
        return _js_num(x)
    if x == 0:
        x = 0.0
    q = Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    text = f"{q:f}"
    return "0" + text[2:] if text.startswith("-") and Decimal(text) == 0 and x >= 0 else text


def _js_to_precision(x: float, p: int) -> str:
    if not math.isfinite(x):
        return _js_num(x)
    if x == 0:
        return "0" + ("." + "0" * (p - 1) if p > 1 else "")
    sign = "-" if x < 0 else ""
    d = Decimal(abs(x))
    e = d.adjusted()
    r = d.quantize(Decimal(1).scaleb(e - p + 1), rounding=ROUND_HALF_UP)
    if r.adjusted() > e:
        e += 1
        r = d.quantize(Decimal(1).scaleb(e - p + 1), rounding=ROUND_HALF_UP)
    digits = "".join(map(str, r.as_tuple().digits))[:p].ljust(p, "0")
    if e < -6 or e >= p:
        mant = digits if p == 1 else digits[0] + "." + digits[1:]
        return f"{sign}{mant}e{'+' if e >= 0 else '-'}{abs(e)}"
    if e >= 0:
        rest = digits[e + 1 :]
        return sign + digits[: e + 1] + ("." + rest if rest else "")
    return sign + "0." + "0" * (-e - 1) + digits


def _js_deep_equal(a: Any, b: Any) -> bool:
    """util.isDeepStrictEqual for JSON-like values (true !== 1, 0 !== -0, NaN equals NaN)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        if fa == 0 and fb == 0:
            return math.copysign(1.0, fa) == math.copysign(1.0, fb)
        return bool(a == b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_js_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_js_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def _excerpt(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------
# JavaScript regular expressions -> Python re
# --------------------------------------------------------------------------------------------

_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
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


def _utf16_units(text: str) -> str:
    """The string as JavaScript sees it without the `u` flag: one char per UTF-16 code unit."""
    if text.isascii() or not _ASTRAL_RE.search(text):
        return text

    def pair(m: re.Match[str]) -> str:
        cp = ord(m.group()) - 0x10000
        return chr(0xD800 + (cp >> 10)) + chr(0xDC00 + (cp & 0x3FF))

    return _ASTRAL_RE.sub(pair, text)


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


# --------------------------------------------------------------------------------------------
# Comma-separated values of the -any / -all types (promptfoo parseCommaSeparatedValues)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _parse_csv_values(value: str) -> tuple[str, ...]:
    """Split `a, "b, c", d` into fields; quotes protect commas, `\\"` `\\\\` `""` escape."""
    out: list[str] = []
    i, n = 0, len(value)

    def skip_space(k: int) -> int:
        while k < n and value[k] in _JS_SPACE:
            k += 1
        return k

    while i < n:
        while i < n:  # whitespace and separators (repeated commas yield no empty field)
            i = skip_space(i)
            if i < n and value[i] == ",":
                i += 1
                continue
            break
        if i >= n:
            break
        if value[i] == '"':
            i += 1
            field: list[str] = []
            terminated = False
            while i < n:
                ch = value[i]
                if ch == "\\" and i + 1 < n and value[i + 1] in ('"', "\\"):
                    field.append(value[i + 1])
                    i += 2
                elif ch == '"' and i + 1 < n and value[i + 1] == '"':
                    field.append('"')
                    i += 2
                elif ch == '"':
                    i += 1
                    terminated = True
                    break
                else:
                    field.append(ch)
                    i += 1
            if not terminated:
                raise ValueError("Unterminated quoted field in contains assertion value")
            out.append("".join(field))
            i = skip_space(i)
            if i < n and value[i] != ",":
                raise ValueError("Expected comma after quoted field in contains assertion value")
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            out.append(value[i:j].strip(_JS_SPACE))
            i = j
    return tuple(out)


# --------------------------------------------------------------------------------------------
# JSON: JSON.parse, and promptfoo's extractJsonObjects (brace scan + js-yaml flow parsing)
# --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> Any:
    return -0.0 if text == "-0" else int(text)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)


def _json_parse(text: str) -> tuple[bool, Any]:
    """JSON.parse: (True, value), or (False, None) when the text is not JSON."""
    try:
        return True, _DECODER.decode(text)
    except (ValueError, RecursionError):
        return False, None


_YAML_INT_RE = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_YAML_FLOAT_RE = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


@lru_cache(maxsize=2)
def _yaml_loader(fast: bool) -> Any:
    """A PyYAML loader resolving plain scalars like js-yaml's core schema (YAML 1.2)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader

    class Loader(base):  # type: ignore[misc,valid-type]
        pass

    Loader.yaml_implicit_resolvers = {}
    resolvers = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        ("tag:yaml.org,2002:float", f"^(?:{_YAML_FLOAT_RE.pattern})$", "-+.0123456789"),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ]
    for tag, pattern, first in resolvers:
        Loader.add_implicit_resolver(tag, re.compile(pattern), list(first))

    def construct_int(loader: Any, node: Any) -> int:
        text = loader.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)

    def construct_float(loader: Any, node: Any) -> float:
        text = loader.construct_scalar(node)
        low = text.lower()
        if low.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if low == ".nan":
            return math.nan
        return float(text)

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[str, Any]:
        # JavaScript object keys are strings: `{1: a, true: b}` has keys "1" and "true".
        loader.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (dict, list)):
                raise ValueError("object-based map does not support complex keys")
            mapping[key if isinstance(key, str) else _js_str(key)] = loader.construct_object(
                value_node, deep=deep
            )
        return mapping

    Loader.construct_mapping = construct_mapping

    def construct_str(loader: Any, node: Any) -> str:
        text = loader.construct_scalar(node)
        if any("\ud800" <= ch <= "\udfff" for ch in text):  # join UTF-16 surrogate pairs
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return str(text)

    if not fast:
        Loader.add_constructor("tag:yaml.org,2002:str", construct_str)
    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    return Loader


def _yaml_load_once(text: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_yaml_loader(True))  # SafeLoader subclasses
    except yaml.YAMLError as exc:
        if "\\u" not in text or "escape" not in str(exc):
            raise
    # libyaml refuses surrogate escapes (`"\\ud83d\\ude00"`); js-yaml joins the pair.
    return yaml.load(text, Loader=_yaml_loader(False))


def _load_yaml(text: str) -> Any:
    """A YAML document as js-yaml reads it (core schema, string keys)."""
    import yaml

    try:
        return _yaml_load_once(text)
    except yaml.YAMLError:
        if "\t" not in text:
            raise
    # js-yaml accepts tabs as separation space in flow collections; PyYAML does not.
    return _yaml_load_once(_tabs_outside_quotes(text))


def _tabs_outside_quotes(text: str) -> str:
    out, quote, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                out.append(text[i : i + 2])
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "\t":
            ch = " "
        out.append(ch)
        i += 1
    return "".join(out)


def _slash_comments_to_hash(text: str) -> str:
    """promptfoo's convertSlashCommentsToHash: `// x` -> `# x` outside quoted strings."""
    if "//" not in text:
        return text
    return "\n".join(_slash_line(line) for line in text.split("\n"))


def _is_escaped(line: str, at: int) -> bool:
    count, k = 0, at - 1
    while k >= 0 and line[k] == "\\":
        count += 1
        k -= 1
    return count % 2 == 1


def _slash_line(line: str) -> str:
    state, i = "normal", 0
    out: list[str] = []
    while i < len(line):
        ch = line[i]
        nxt = line[i + 1] if i + 1 < len(line) else ""
        prev = line[i - 1] if i > 0 else ""
        if state == "normal":
            if ch == "'" and not (prev.isascii() and prev.isalpha()):
                state = "single"
            elif ch == '"':
                state = "double"
            elif ch == "/" and nxt == "/":
                start = 0
                for k in range(i - 1, -1, -1):
                    if line[k] in _JS_SPACE:
                        start = k + 1
                        break
                if "://" not in line[start : i + 2]:
                    count = 2
                    while i + count < len(line) and line[i + count] == "/":
                        count += 1
                    return "".join(out) + "#" * (count // 2) + line[i + count :]
        elif state == "single":
            if ch == "'" and not _is_escaped(line, i) and not (nxt.isascii() and nxt.isalpha()):
                state = "normal"
        elif ch == '"' and not _is_escaped(line, i):
            state = "normal"
        out.append(ch)
        i += 1
    return "".join(out)


_MAX_JSON_LENGTH = 100_000
_BRACES_RE = re.compile("[{}]")


def _parse_json_candidate(candidate: str, balanced: bool) -> Any:
    if balanced and "//" not in candidate:
        ok, value = _json_parse(candidate)
        if ok:
            return value
    return _load_yaml(_slash_comments_to_hash(candidate))


def _extract_json_objects(text: str) -> list[Any]:
    """promptfoo's extractJsonObjects: every `{...}` the output holds, parsed leniently."""
    if "{" not in text:
        return []
    objects: list[Any] = []
    braces = [(m.start(), m.group()) for m in _BRACES_RE.finditer(text)]
    n = len(text)
    k = 0
    while k < len(braces):
        i, ch = braces[k]
        k += 1
        if ch != "{":
            continue
        limit = min(i + _MAX_JSON_LENGTH, n)
        opened, closed = 1, 0
        kk = k
        end = -1
        while kk < len(braces) and braces[kk][0] < limit:
            pos, b = braces[kk]
            kk += 1
            if b == "{":
                opened += 1
            else:
                closed += 1
            if opened == closed:
                end = pos + 1
                break
        if end < 0:
            if i + 1 >= limit:
                continue  # a `{` in the last position is never tried
            end = limit  # the scan ran out: try once, closing the open braces
        balanced = opened == closed
        candidate = text[i:end] + ("}" * (opened - closed) if opened > closed else "")
        try:
            value = _parse_json_candidate(candidate, balanced)
        except Exception:  # any parse failure means "not an object here"
            continue
        if isinstance(value, (dict, list)):
            objects.append(value)
            while k < len(braces) and braces[k][0] < end:
                k += 1
    return objects


# --------------------------------------------------------------------------------------------
# JSON schema: strict ajv (draft-07) + ajv-formats, on top of jsonschema
# --------------------------------------------------------------------------------------------

_AJV_KEYWORDS = frozenset(
    """$async $comment $defs $id $ref $schema $vocabulary additionalItems additionalProperties
    allOf anyOf const contains contentEncoding contentMediaType contentSchema default definitions
    dependencies deprecated description else enum examples exclusiveMaximum exclusiveMinimum
    format formatExclusiveMaximum formatExclusiveMinimum formatMaximum formatMinimum id if items
    maxItems maxLength maxProperties maximum minItems minLength minProperties minimum multipleOf
    not nullable oneOf pattern patternProperties properties propertyNames readOnly required then
    title type uniqueItems writeOnly""".split()
)
_UNSUPPORTED_KEYWORDS = frozenset(
    {"formatMaximum", "formatMinimum", "formatExclusiveMaximum", "formatExclusiveMinimum", "$async"}
)
_DRAFT7_URIS = frozenset(
    {"http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-07/schema#"}
)
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependencies")
_SUBSCHEMA_ONE = (
    "additionalProperties", "additionalItems", "items", "contains", "propertyNames",
    "if", "then", "else", "not", "contentSchema",
)  # fmt: skip
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "items")


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_TIME_RE = re.compile(
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}(?:\.[0-9]+)?)(z|([+-])([0-9]{2})(?::?([0-9]{2}))?)?\Z",
    re.IGNORECASE,
)


def _fmt_date(s: str) -> bool:
    m = _DATE_RE.match(s)
    if not m:
        return False
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1 <= month <= 12:
        return False
    return 1 <= day <= (29 if month == 2 and _is_leap(year) else _DAYS[month])


def _fmt_time(strict_tz: bool) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        m = _TIME_RE.match(s)
        if not m:
            return False
        hr, mi, sec = int(m.group(1)), int(m.group(2)), float(m.group(3))
        tz_sign = -1 if m.group(5) == "-" else 1
        tz_h, tz_m = int(m.group(6) or 0), int(m.group(7) or 0)
        if tz_h > 23 or tz_m > 59 or (strict_tz and not m.group(4)):
            return False
        if hr <= 23 and mi <= 59 and sec < 60:
            return True
        utc_min = mi - tz_m * tz_sign  # a leap second is valid at 23:59:60 UTC
        utc_hr = hr - tz_h * tz_sign - (1 if utc_min < 0 else 0)
        return utc_hr in (23, -1) and utc_min in (59, -1) and sec < 61

    return check


_DATE_TIME_SEP_RE = re.compile(f"[tT{_JS_SPACE_CLASS}]")


def _fmt_date_time(strict_tz: bool) -> Callable[[str], bool]:
    time_check = _fmt_time(strict_tz)

    def check(s: str) -> bool:
        parts = _DATE_TIME_SEP_RE.split(s)
        return len(parts) == 2 and _fmt_date(parts[0]) and time_check(parts[1])

    return check


def _js_pattern_format(source: str, flags: str) -> Callable[[str], bool]:
    return lambda s: _js_regex(source, flags).test(s)


_URI_SRC = r"^(?:[a-z][a-z0-9+\-.]*:)(?:\/?\/(?:(?:[a-z0-9\-._~!$&'()*+,;=:]|%[0-9a-f]{2})*@)?(?:\[(?:(?:(?:(?:[0-9a-f]{1,4}:){6}|::(?:[0-9a-f]{1,4}:){5}|(?:[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){4}|(?:(?:[0-9a-f]{1,4}:){0,1}[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){3}|(?:(?:[0-9a-f]{1,4}:){0,2}[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){2}|(?:(?:[0-9a-f]{1,4}:){0,3}[0-9a-f]{1,4})?::[0-9a-f]{1,4}:|(?:(?:[0-9a-f]{1,4}:){0,4}[0-9a-f]{1,4})?::)(?:[0-9a-f]{1,4}:[0-9a-f]{1,4}|(?:(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?))|(?:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4})?::[0-9a-f]{1,4}|(?:(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::)|[Vv][0-9a-f]+\.[a-z0-9\-._~!$&'()*+,;=:]+)\]|(?:(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?)|(?:[a-z0-9\-._~!$&'()*+,;=]|%[0-9a-f]{2})*)(?::\d*)?(?:\/(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})*)*|\/(?:(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})+(?:\/(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})*)*)?|(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})+(?:\/(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})*)*)(?:\?(?:[a-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9a-f]{2})*)?(?:#(?:[a-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9a-f]{2})*)?$"  # noqa: E501
# The other ajv-formats (3.x, "full" mode) patterns, as JavaScript source and flags.
_FORMAT_PATTERNS: dict[str, tuple[str, str]] = {
    "duration": (r"^P(?!$)((\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?|(\d+W)?)$", ""),
    "uri-reference": (
        r"^(?:[a-z][a-z0-9+\-.]*:)?(?:\/?\/(?:(?:[a-z0-9\-._~!$&'()*+,;=:]|%[0-9a-f]{2})*@)?(?:\[(?:(?:(?:(?:[0-9a-f]{1,4}:){6}|::(?:[0-9a-f]{1,4}:){5}|(?:[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){4}|(?:(?:[0-9a-f]{1,4}:){0,1}[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){3}|(?:(?:[0-9a-f]{1,4}:){0,2}[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){2}|(?:(?:[0-9a-f]{1,4}:){0,3}[0-9a-f]{1,4})?::[0-9a-f]{1,4}:|(?:(?:[0-9a-f]{1,4}:){0,4}[0-9a-f]{1,4})?::)(?:[0-9a-f]{1,4}:[0-9a-f]{1,4}|(?:(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?))|(?:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4})?::[0-9a-f]{1,4}|(?:(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::)|[Vv][0-9a-f]+\.[a-z0-9\-._~!$&'()*+,;=:]+)\]|(?:(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?)|(?:[a-z0-9\-._~!$&'\"()*+,;=]|%[0-9a-f]{2})*)(?::\d*)?(?:\/(?:[a-z0-9\-._~!$&'\"()*+,;=:@]|%[0-9a-f]{2})*)*|\/(?:(?:[a-z0-9\-._~!$&'\"()*+,;=:@]|%[0-9a-f]{2})+(?:\/(?:[a-z0-9\-._~!$&'\"()*+,;=:@]|%[0-9a-f]{2})*)*)?|(?:[a-z0-9\-._~!$&'\"()*+,;=:@]|%[0-9a-f]{2})+(?:\/(?:[a-z0-9\-._~!$&'\"()*+,;=:@]|%[0-9a-f]{2})*)*)?(?:\?(?:[a-z0-9\-._~!$&'\"()*+,;=:@/?]|%[0-9a-f]{2})*)?(?:#(?:[a-z0-9\-._~!$&'\"()*+,;=:@/?]|%[0-9a-f]{2})*)?$",
        "i",
    ),
    "uri-template": (
        r"^(?:(?:[^\x00-\x20\"'<>%\\^`{|}]|%[0-9a-f]{2})|\{[+#./;?&=,!@|]?(?:[a-z0-9_]|%[0-9a-f]{2})+(?::[1-9][0-9]{0,3}|\*)?(?:,(?:[a-z0-9_]|%[0-9a-f]{2})+(?::[1-9][0-9]{0,3}|\*)?)*\})*$",
        "i",
    ),
    "url": (
        r"^(?:https?|ftp):\/\/(?:\S+(?::\S*)?@)?(?:(?!(?:10|127)(?:\.\d{1,3}){3})(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))|(?:(?:[a-z0-9\u{00a1}-\u{ffff}]+-)*[a-z0-9\u{00a1}-\u{ffff}]+)(?:\.(?:[a-z0-9\u{00a1}-\u{ffff}]+-)*[a-z0-9\u{00a1}-\u{ffff}]+)*(?:\.(?:[a-z\u{00a1}-\u{ffff}]{2,})))(?::\d{2,5})?(?:\/[^\s]*)?$",
        "iu",
    ),
    "email": (
        r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$",
        "i",
    ),
    "hostname": (
        r"^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-0-9a-z]{0,61}[0-9a-z])?)*\.?$",
        "i",
    ),
    "ipv4": (
        r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$",
        "",
    ),
    "ipv6": (
        r"^((([0-9a-f]{1,4}:){7}([0-9a-f]{1,4}|:))|(([0-9a-f]{1,4}:){6}(:[0-9a-f]{1,4}|((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(([0-9a-f]{1,4}:){5}(((:[0-9a-f]{1,4}){1,2})|:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(([0-9a-f]{1,4}:){4}(((:[0-9a-f]{1,4}){1,3})|((:[0-9a-f]{1,4})?:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9a-f]{1,4}:){3}(((:[0-9a-f]{1,4}){1,4})|((:[0-9a-f]{1,4}){0,2}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9a-f]{1,4}:){2}(((:[0-9a-f]{1,4}){1,5})|((:[0-9a-f]{1,4}){0,3}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9a-f]{1,4}:){1}(((:[0-9a-f]{1,4}){1,6})|((:[0-9a-f]{1,4}){0,4}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(:(((:[0-9a-f]{1,4}){1,7})|((:[0-9a-f]{1,4}){0,5}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:)))$",
        "i",
    ),
    "uuid": (r"^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$", "i"),
    "json-pointer": (r"^(?:\/(?:[^~/]|~0|~1)*)*$", ""),
    "json-pointer-uri-fragment": (
        r"^#(?:\/(?:[a-z0-9_\-.!$&'()*+,;:=@]|%[0-9a-f]{2}|~0|~1)*)*$",
        "i",
    ),
    "relative-json-pointer": (r"^(?:0|[1-9][0-9]*)(?:#|(?:\/(?:[^~/]|~0|~1)*)*)$", ""),
    "byte": (r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$", "m"),
}
_Z_ANCHOR_RE = re.compile(r"[^\\]\\Z")


def _fmt_uri(s: str) -> bool:
    return ("/" in s or ":" in s) and _js_regex(_URI_SRC, "i").test(s)


def _fmt_regex(s: str) -> bool:
    if _Z_ANCHOR_RE.search(s):
        return False
    try:
        _js_regex(s, "")
    except _JsRegexSyntaxError:
        return False
    return True


def _int_check(bits: int | None) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not _is_number(value):
            return True
        if isinstance(value, float) and not value.is_integer():
            return False
        return bits is None or -(2 ** (bits - 1)) <= value <= 2 ** (bits - 1) - 1

    return check


def _string_format(check: Callable[[str], bool]) -> Callable[[Any], bool]:
    return lambda value: not isinstance(value, str) or check(value)


def _format_checkers() -> dict[str, Callable[[Any], bool]]:
    fmts: dict[str, Callable[[Any], bool]] = {
        "date": _string_format(_fmt_date),
        "time": _string_format(_fmt_time(True)),
        "date-time": _string_format(_fmt_date_time(True)),
        "iso-time": _string_format(_fmt_time(False)),
        "iso-date-time": _string_format(_fmt_date_time(False)),
        "uri": _string_format(_fmt_uri),
        "regex": _string_format(_fmt_regex),
        "int32": _int_check(32),
        "int64": _int_check(None),
        "float": lambda value: True,
        "double": lambda value: True,
        "password": lambda value: True,
        "binary": lambda value: True,
    }
    for name, (source, flags) in _FORMAT_PATTERNS.items():
        fmts[name] = _string_format(_js_pattern_format(source, flags))
    return fmts


_FORMAT_NAMES = frozenset(
    "date time date-time iso-time iso-date-time duration uri uri-reference uri-template url "
    "email hostname ipv4 ipv6 regex uuid json-pointer json-pointer-uri-fragment "
    "relative-json-pointer byte int32 int64 float double password binary".split()
)


def _check_schema_strict(schema: Any, path: str = "#") -> None:
    """What strict ajv refuses at compile time: unknown keywords, formats, bad patterns."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise ValueError(f"schema at {path} must be object or boolean")
    for key, sub in schema.items():
        if key not in _AJV_KEYWORDS:
            raise ValueError(f'strict mode: unknown keyword: "{key}"')
        if key in _UNSUPPORTED_KEYWORDS:
            raise ValueError(f'keyword "{key}" is not supported by promptgate')
        if key == "$schema" and sub not in _DRAFT7_URIS:
            raise ValueError(f'no schema with key or ref "{sub}"')
        if key == "format" and isinstance(sub, str) and sub not in _FORMAT_NAMES:
            raise ValueError(f'unknown format "{sub}" ignored in schema at path "{path}"')
        if key == "pattern" and isinstance(sub, str):
            _js_regex(sub, "u")
        if key == "patternProperties" and isinstance(sub, Mapping):
            for pattern in sub:
                _js_regex(pattern, "u")
    for key in _SUBSCHEMA_MAPS:
        sub = schema.get(key)
        if isinstance(sub, Mapping):
            for name, child in sub.items():
                if not (key == "dependencies" and isinstance(child, list)):
                    _check_schema_strict(child, f"{path}/{key}/{name}")
    for key in _SUBSCHEMA_ONE:
        sub = schema.get(key)
        if isinstance(sub, (Mapping, bool)):
            _check_schema_strict(sub, f"{path}/{key}")
    for key in _SUBSCHEMA_LISTS:
        sub = schema.get(key)
        if isinstance(sub, list):
            for idx, child in enumerate(sub):
                _check_schema_strict(child, f"{path}/{key}/{idx}")


@dataclass(frozen=True)
class _Schema:
    validator: Any  # a jsonschema validator instance

    def first_error(self, instance: Any) -> str | None:
        error = next(iter(self.validator.iter_errors(instance)), None)
        return None if error is None else _ajv_error_text(error)


@lru_cache(maxsize=1)
def _validator_class() -> Any:
    from jsonschema import Draft7Validator, validators

    type_keyword = Draft7Validator.VALIDATORS["type"]

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if isinstance(instance, str) and not _js_regex(patrn, "u").test(instance):
            yield _validation_error(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Any:
        if not isinstance(instance, dict):
            return
        for patrn, subschema in patterns.items():
            rx = _js_regex(patrn, "u")
            for key, value in instance.items():
                if rx.test(key):
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    def typ(validator: Any, types: Any, instance: Any, schema: Any) -> Any:
        if instance is None and schema.get("nullable") is True:
            return
        yield from type_keyword(validator, types, instance, schema)

    return validators.extend(
        Draft7Validator,
        {"pattern": pattern, "patternProperties": pattern_properties, "type": typ},
    )


def _validation_error(message: str) -> Any:
    from jsonschema import ValidationError

    return ValidationError(message)


@lru_cache(maxsize=1)
def _format_checker() -> Any:
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    for name, check in _format_checkers().items():
        checker.checks(name)(check)
    return checker


@lru_cache(maxsize=256)
def _compile_schema_json(canonical: str) -> _Schema:
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    schema = json.loads(canonical)
    if not isinstance(schema, (dict, bool)):
        raise ValueError("schema must be object or boolean")
    try:
        Draft7Validator.check_schema(schema, format_checker=None)  # patterns: JS syntax, below
    except SchemaError as exc:
        raise ValueError(f"schema is invalid: {exc.message}") from None
    try:
        _check_schema_strict(schema)
    except _JsRegexSyntaxError as exc:
        raise ValueError(str(exc)) from None
    return _Schema(_validator_class()(schema, format_checker=_format_checker()))


def _compile_schema(schema: Any) -> _Schema:
    try:
        canonical = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"schema is not JSON: {exc}") from None
    return _compile_schema_json(canonical)


def _ajv_path(error: Any) -> str:
    parts = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.absolute_path)
    return "data" + parts


def _ajv_error_text(error: Any) -> str:
    """An ajv-style message (`data/a must be number`) for a jsonschema error."""
    kw, val, inst = error.validator, error.validator_value, error.instance
    msg: str
    if kw == "type":
        msg = f"must be {','.join(val) if isinstance(val, list) else val}"
    elif kw == "required":
        missing = next((p for p in val if isinstance(inst, dict) and p not in inst), "")
        msg = f"must have required property '{missing}'"
    elif kw in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
        msg = f"must be {op[kw]} {_js_str(val)}"
    elif kw in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        what = {"L": "characters", "I": "items", "P": "properties"}[kw[3]]
        msg = f"must NOT have {'fewer' if kw.startswith('min') else 'more'} than {val} {what}"
    elif kw == "pattern":
        msg = f'must match pattern "{val}"'
    elif kw == "format":
        msg = f'must match format "{val}"'
    elif kw == "enum":
        msg = "must be equal to one of the allowed values"
    elif kw == "const":
        msg = "must be equal to constant"
    elif kw == "multipleOf":
        msg = f"must be multiple of {_js_str(val)}"
    elif kw == "additionalProperties":
        msg = "must NOT have additional properties"
    elif kw == "uniqueItems":
        msg = "must NOT have duplicate items"
    elif kw == "anyOf":
        msg = "must match a schema in anyOf"
    elif kw == "oneOf":
        msg = "must match exactly one schema in oneOf"
    elif kw == "not":
        msg = "must NOT be valid"
    elif kw == "contains":
        msg = "must contain at least 1 valid item(s)"
    elif kw == "additionalItems":
        msg = f"must NOT have more than {len(error.schema.get('items', []))} items"
    elif kw is None or kw is False:
        msg = "boolean schema is false"
    else:
        msg = error.message
    return f"{_ajv_path(error)} {msg}"


# --------------------------------------------------------------------------------------------
# Levenshtein distance (fastest-levenshtein counts UTF-16 code units)
# --------------------------------------------------------------------------------------------


def _levenshtein(a: str, b: str) -> int:
    """Edit distance with Myers' bit-parallel algorithm (Python ints as bit vectors)."""
    a, b = _utf16_units(a), _utf16_units(b)
    if a == b:
        return 0
    if len(a) > len(b):
        a, b = b, a  # bit vectors over the longer string, one step per char of the shorter
    if not a:
        return len(b)
    m = len(b)
    peq: dict[str, int] = {}
    for idx, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << idx)
    get = peq.get
    full = (1 << m) - 1
    last = 1 << (m - 1)
    pv, mv, score = full, 0, m
    for ch in a:
        eq = get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) ^ pv) | eq) & full
        ph = mv | (full ^ (xh | pv))
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & full
        pv = ((mh << 1) & full) | (full ^ (xv | ph))
        mv = ph & xv
    return score


# --------------------------------------------------------------------------------------------
# Templated values (promptfoo renders string values with Nunjucks and the case vars)
# --------------------------------------------------------------------------------------------


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def _template_finalize(value: Any) -> Any:
    # Nunjucks prints null/undefined as "" and other values as JavaScript's String(x) does.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _js_str(value)


@lru_cache(maxsize=1)
def _jinja_env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_template_finalize,
    )


@lru_cache(maxsize=1024)
def _template(text: str) -> Any:
    return _jinja_env().from_string(text)


def _render(text: str, variables: Mapping[str, Any]) -> str:
    if not _is_template(text):
        return text
    try:
        return str(_template(text).render(dict(variables)))
    except Exception as exc:  # jinja2 raises many types
        raise _EvalError(f"could not render {text!r}: {exc}") from None


def _check_template(text: str, where: str) -> None:
    if not _is_template(text):
        return
    try:
        _template(text)
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise AssertionSpecError(f"{where}: bad template {text!r}: {message}") from None


# --------------------------------------------------------------------------------------------
# file:// values and Python checks (loaded once per file version)
# --------------------------------------------------------------------------------------------

_FILE_PREFIX = "file://"
_module_cache: dict[str, tuple[tuple[int, int], Any]] = {}
_file_cache: dict[str, tuple[tuple[int, int], Any]] = {}


def _split_file_ref(value: str) -> tuple[str, str | None]:
    ref = value[len(_FILE_PREFIX) :]
    if ":" in ref:
        path, fn = ref.split(":", 1)
        return path, fn or None
    return ref, None


def _resolve(ctx: AssertContext, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(ctx.suite_dir) / p


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise _EvalError(f"cannot read {path}: {exc.strerror or exc}") from None
    return st.st_mtime_ns, st.st_size


def _load_module(path: Path) -> Any:
    key = str(path.resolve())
    stamp = _stamp(path)
    cached = _module_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as promptfoo's wrapper does: sibling imports work
    name = f"promptgate_check_{abs(hash(key)):x}_{stamp[0]:x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _EvalError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code
        raise _EvalError(f"loading {path} failed: {type(exc).__name__}: {exc}") from None
    _module_cache[key] = (stamp, module)
    return module


def _python_function(ctx: AssertContext, value: str) -> Callable[..., Any]:
    path_text, fn_name = _split_file_ref(value)
    module = _load_module(_resolve(ctx, path_text))
    target: Any = module
    for part in (fn_name or "get_assert").split("."):
        target = getattr(target, part, None)
        if target is None:
            raise _EvalError(f"{path_text} has no function {fn_name or 'get_assert'!r}")
    if not callable(target):
        raise _EvalError(f"{path_text}:{fn_name or 'get_assert'} is not a function")
    return target  # type: ignore[no-any-return]


async def _call_python(fn: Callable[..., Any], output: str, ctx: AssertContext) -> Any:
    context = {"vars": dict(ctx.vars), "prompt": ctx.prompt}
    try:
        result = fn(output, context)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # user code
        raise _EvalError(f"Python code execution failed: {type(exc).__name__}: {exc}") from None
    return result


def _load_file_value(ctx: AssertContext, ref: str) -> Any:
    """promptfoo processFileReference: .json/.yaml/.yml parsed, .txt trimmed."""
    path = _resolve(ctx, ref[len(_FILE_PREFIX) :])
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml", ".txt"):
        raise _EvalError(f"Unsupported file type: {path}")
    key = str(path)
    stamp = _stamp(path)
    cached = _file_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = path.read_text(encoding="utf-8")
    try:
        value = text.strip(_JS_SPACE) if suffix == ".txt" else _load_yaml(text)
    except Exception as exc:  # YAML errors
        raise _EvalError(f"cannot parse {path}: {exc}") from None
    _file_cache[key] = (stamp, value)
    return value


@lru_cache(maxsize=256)
def _inline_python(code: str) -> Callable[..., Any]:
    """promptfoo's inline python: the value is the body of `def main(output, context)`."""
    if "\n" in code:
        m = re.search(r"^(?!\s*$)\s+", code, re.MULTILINE)
        indent = m.group() if m else "    "
        body = "\n".join(indent + line for line in code.split("\n"))
    else:
        body = f"    return {code}"
    namespace: dict[str, Any] = {}
    exec(
        compile(
            f"import json\n\ndef main(output, context):\n{body}\n", "<python assertion>", "exec"
        ),
        namespace,
    )
    return namespace["main"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    """A verdict before `not-` is applied, with the words for each way it can end."""

    passed: bool
    reason: str = "Assertion failed"  # the assertion as written failed
    not_reason: str = "Assertion failed"  # its not- form failed (the base verdict passed)
    pass_reason: str = "Assertion passed"
    not_pass_reason: str = "Assertion passed"
    score: float | None = None  # None: 1.0 for a pass, 0.0 for a failure
    not_score: float | None = None  # the not- form's score when it is not 1/0 (or `score`)


def _binary(passed: bool, expectation: str) -> _Outcome:
    """`expectation` completes "Expected output to (not) ..."."""
    return _Outcome(
        passed,
        reason=f"Expected output to {expectation}",
        not_reason=f"Expected output to not {expectation}",
    )


Prep = Callable[[Any, Mapping[str, Any]], Any]
Run = Callable[[Any, str, Mapping[str, Any], AssertContext], "_Outcome | Awaitable[_Outcome]"]


@dataclass(frozen=True)
class _Assertion:
    name: str
    run: Callable[..., Any]
    is_async: bool
    prep: Prep  # turns the (rendered) value into what `run` needs; raises _EvalError
    needs_value: bool
    needs_threshold: bool


_REGISTRY: dict[str, _Assertion] = {}


def _identity(value: Any, spec: Mapping[str, Any]) -> Any:
    return value


def assertion(
    name: str,
    *,
    prep: Prep = _identity,
    needs_value: bool = True,
    needs_threshold: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(prepared_value, output, spec, ctx) -> _Outcome` as assertion `name`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = _Assertion(
            name, fn, inspect.iscoroutinefunction(fn), prep, needs_value, needs_threshold
        )
        return fn

    return register


def _js_truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if _is_number(value):
        return value != 0 and not math.isnan(value)
    return True


# --------------------------------------------------------------------------------------------
# The assertions
# --------------------------------------------------------------------------------------------


@assertion("equals")
def _equals(value: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    if value is None or isinstance(value, (Mapping, list, tuple)):
        # An object value is compared with the output parsed as JSON (deep, strict).
        ok, parsed = _json_parse(output)
        passed = ok and _js_deep_equal(value, parsed)
        expected = _js_json(value)
    else:
        expected = _js_str(value)
        passed = expected == output
    shown = _excerpt(output)
    return _Outcome(
        passed,
        reason=f'Expected output "{shown}" to equal "{_excerpt(expected)}"',
        not_reason=f'Expected output "{shown}" to not equal "{_excerpt(expected)}"',
    )


def _prep_contains(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> str:
        if not ((isinstance(value, str) and value) or (_is_number(value) and value == value)):
            raise _EvalError(f'"{name}" assertion type must have a string or number value')
        return _js_str(value)

    return prep


@assertion("contains", prep=_prep_contains("contains"))
def _contains(value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(value in output, f'contain "{value}"')


@assertion("icontains", prep=_prep_contains("icontains"))
def _icontains(value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(value.lower() in output.lower(), f'contain "{value}"')


def _prep_list(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> tuple[str, ...]:
        if not _js_truthy(value):
            raise _EvalError(f'"{name}" assertion type must have a value')
        if isinstance(value, str):
            try:
                value = _parse_csv_values(value)
            except ValueError as exc:
                raise _EvalError(f'"{name}": {exc}') from None
        if not isinstance(value, (list, tuple)):
            raise _EvalError(f'"{name}" assertion type must have an array value')
        return tuple(_js_str(v) for v in value)

    return prep


def _any(items: tuple[str, ...], output: str) -> _Outcome:
    return _binary(any(v in output for v in items), f'contain one of "{", ".join(items)}"')


def _all(items: tuple[str, ...], output: str, shown: tuple[str, ...]) -> _Outcome:
    missing = [s for v, s in zip(items, shown, strict=True) if v not in output]
    listed = ", ".join(shown)
    return _Outcome(
        not missing,
        reason=f"Expected output to contain all of [{listed}]. Missing: [{', '.join(missing)}]",
        not_reason=f"Expected output to not contain all of [{listed}]. Missing: []",
    )


@assertion("contains-any", prep=_prep_list("contains-any"))
def _contains_any(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    return _any(items, output)


@assertion("icontains-any", prep=_prep_list("icontains-any"))
def _icontains_any(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    low = output.lower()
    outcome = _any(tuple(v.lower() for v in items), low)
    return _binary(outcome.passed, f'contain one of "{", ".join(items)}"')


@assertion("contains-all", prep=_prep_list("contains-all"))
def _contains_all(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    return _all(items, output, items)


@assertion("icontains-all", prep=_prep_list("icontains-all"))
def _icontains_all(
    items: tuple[str, ...], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    return _all(tuple(v.lower() for v in items), output.lower(), items)


def _prep_nonempty_string(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> str:
        if not isinstance(value, str) or not value:
            raise _EvalError(f'"{name}" assertion type must have a string value')
        return value

    return prep


@assertion("starts-with", prep=_prep_nonempty_string("starts-with"))
def _starts_with(value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(output.startswith(value), f'start with "{value}"')


def _prep_regex(value: Any, spec: Mapping[str, Any]) -> _JsRegex:
    source = _prep_nonempty_string("regex")(value, spec)
    try:
        return _js_regex(source)
    except _JsRegexSyntaxError as exc:
        raise _EvalError(f"Invalid regex pattern: {exc}") from None


@assertion("regex", prep=_prep_regex)
def _regex(rx: _JsRegex, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    return _binary(rx.test(output), f'match regex "{rx.source}"')


def _prep_schema(name: str) -> Prep:
    def prep(value: Any, spec: Mapping[str, Any]) -> _Schema | None:
        if not _js_truthy(value):
            return None  # no schema: any JSON will do
        if isinstance(value, str):
            try:
                value = _load_yaml(value)
            except Exception as exc:  # YAML errors
                raise _EvalError(f"{name}: the schema is not valid YAML: {exc}") from None
        elif value is True or _is_number(value):
            raise _EvalError(f"{name} assertion must have a string or object value")
        try:
            return _compile_schema(value)
        except ValueError as exc:
            raise _EvalError(f"Invalid JSON schema: {exc}") from None

    return prep


@assertion("is-json", prep=_prep_schema("is-json"), needs_value=False)
def _is_json(
    schema: _Schema | None, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    ok, parsed = _json_parse(output)
    if not ok:
        return _Outcome(
            False,
            reason="Expected output to be valid JSON",
            not_reason="Expected output to not be valid JSON",
        )
    if schema is None:
        return _Outcome(True, not_reason="Expected output to not be valid JSON")
    error = schema.first_error(parsed)
    return _Outcome(
        error is None,
        reason=f"JSON does not conform to the provided schema. Errors: {error}",
        not_reason="Output is JSON that conforms to the provided schema",
    )


@assertion("contains-json", prep=_prep_schema("contains-json"), needs_value=False)
def _contains_json(
    schema: _Schema | None, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    objects = _extract_json_objects(output)
    if not objects:
        return _Outcome(False, reason="Expected output to contain valid JSON")
    if schema is None:
        return _Outcome(True, not_reason="Expected output to not contain JSON")
    error: str | None = None
    for obj in objects:
        error = schema.first_error(obj)
        if error is None:
            return _Outcome(
                True, not_reason="Output contains JSON conforming to the provided schema"
            )
    return _Outcome(False, reason=f"JSON does not conform to the provided schema. Errors: {error}")


_WORD_COUNT_KEYS = frozenset({"min", "max"})


def _prep_word_count(
    value: Any, spec: Mapping[str, Any]
) -> tuple[float | None, float | None, bool]:
    """(min, max, exact): exact means min == max is the one expected count."""
    if value is None:
        raise _EvalError('"word-count" assertion must have a value')
    if isinstance(value, Mapping):
        extra = set(value) - _WORD_COUNT_KEYS
        if extra:
            raise _EvalError(f'"word-count" object takes only min and max, not {sorted(extra)}')
        lo, hi = value.get("min"), value.get("max")
        if lo is None and hi is None:
            raise _EvalError(
                '"word-count" assertion object must have "min" and/or "max" properties'
            )
        for bound in (lo, hi):
            if bound is not None and not _is_number(bound):
                raise _EvalError('"word-count" min and max must be numbers')
        if lo is not None and hi is not None and lo > hi:
            raise _EvalError(
                f'"word-count" assertion: min ({_js_str(lo)}) must be less than or equal to max '
                f"({_js_str(hi)})"
            )
        return lo, hi, False
    number = (
        value
        if _is_number(value)
        else (_js_to_number(value) if isinstance(value, str) else math.nan)
    )
    if math.isnan(number):
        raise _EvalError(
            '"word-count" assertion value must be a number or an object with min/max properties'
        )
    return number, number, True


@assertion("word-count", prep=_prep_word_count)
def _word_count(
    bounds: tuple[float | None, float | None, bool],
    output: str,
    spec: Mapping[str, Any],
    ctx: AssertContext,
) -> _Outcome:
    lo, hi, exact = bounds
    count = len(_WORD_RE.findall(output))
    if exact:
        n = _js_str(lo)
        return _Outcome(
            count == lo,
            reason=f"Word count {count} does not equal expected {n}",
            not_reason=f"Expected word count to not equal {n}, but got {count}",
        )
    if lo is not None and hi is not None:
        a, b = _js_str(lo), _js_str(hi)
        return _Outcome(
            lo <= count <= hi,
            reason=f"Word count {count} is not between {a} and {b}",
            not_reason=f"Expected word count to not be between {a} and {b}, but got {count}",
        )
    if lo is None:
        b = _js_str(hi)
        return _Outcome(
            count <= hi,  # type: ignore[operator]
            reason=f"Word count {count} is greater than maximum {b}",
            not_reason=f"Expected word count to be greater than {b}, but got {count}",
        )
    a = _js_str(lo)
    return _Outcome(
        count >= lo,
        reason=f"Word count {count} is less than minimum {a}",
        not_reason=f"Expected word count to be less than {a}, but got {count}",
    )


def _prep_levenshtein(value: Any, spec: Mapping[str, Any]) -> str:
    if not isinstance(value, str):
        raise _EvalError('"levenshtein" assertion type must have a string value')
    return value


@assertion("levenshtein", prep=_prep_levenshtein)
def _levenshtein_assertion(
    value: str, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    threshold = spec.get("threshold")
    limit = 5 if threshold is None else threshold
    distance = _levenshtein(output, value)
    shown = _js_str(limit)
    return _Outcome(
        distance <= limit,
        reason=f"Levenshtein distance {distance} is greater than threshold {shown}",
        not_reason=f"Levenshtein distance {distance} is less than or equal to threshold {shown}",
    )


@assertion("latency", needs_value=False, needs_threshold=True)
def _latency(value: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    if ctx.latency_ms is None:
        raise _EvalError("the response latency is unknown (a cached response?)")
    ms, limit = _js_str(ctx.latency_ms), _js_str(spec["threshold"])
    return _Outcome(
        ctx.latency_ms <= spec["threshold"],
        reason=f"Latency {ms}ms is greater than threshold {limit}ms",
        not_reason=f"Latency {ms}ms is less than or equal to threshold {limit}ms",
    )


@assertion("cost", needs_value=False, needs_threshold=True)
def _cost(value: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext) -> _Outcome:
    if ctx.cost is None:
        raise _EvalError("the cost of this response is unknown (no pricing for the model?)")
    cost, limit = _js_to_precision(ctx.cost, 2), _js_str(spec["threshold"])
    return _Outcome(
        ctx.cost <= spec["threshold"],
        reason=f"Cost {cost} is greater than threshold {limit}",
        not_reason=f"Cost {cost} is less than or equal to threshold {limit}",
    )


# -- llm-rubric ------------------------------------------------------------------------------

# promptfoo's DEFAULT_GRADING_PROMPT (src/prompts/grading.ts), system part.
RUBRIC_SYSTEM_PROMPT = (
    "You are grading output according to a user-specified rubric. If the statement in the "
    "rubric is true, then the output passes the test. You respond with a JSON object with this "
    "structure: {reason: string, pass: boolean, score: number}\n"
    "\n"
    "Examples:\n"
    "\n"
    "<Output>Hello world</Output>\n"
    "<Rubric>Content contains a greeting</Rubric>\n"
    '{"reason": "the content contains the word \'Hello\'", "pass": true, "score": 1.0}\n'
    "\n"
    "<Output>Avast ye swabs, repel the invaders!</Output>\n"
    "<Rubric>Does not speak like a pirate</Rubric>\n"
    '{"reason": "\'avast ye\' is a common pirate term", "pass": false, "score": 0.0}'
)


def _template_text(value: Any) -> str:
    """How promptfoo's grading template prints a value (objects as JSON, arrays joined)."""
    if isinstance(value, Mapping):
        return _js_json(value)
    if isinstance(value, (list, tuple)):
        return ",".join(
            _js_json(v)
            if isinstance(v, (Mapping, list, tuple))
            else ("" if v is None else _js_str(v))
            for v in value
        )
    return "" if value is None else _js_str(value)


def rubric_messages(rubric: Any, output: str) -> list[dict[str, str]]:
    """The judge's chat messages, as promptfoo's default llm-rubric prompt renders them."""
    ok, parsed = _json_parse(output)
    shown = _template_text(parsed) if ok else output
    user = f"<Output>\n{shown}\n</Output>\n<Rubric>\n{_template_text(rubric)}\n</Rubric>"
    return [{"role": "system", "content": RUBRIC_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_PASS_WORD_RE = re.compile(r"(?:true|yes|pass|y)", re.IGNORECASE)


def _prep_rubric(value: Any, spec: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.strip(_JS_SPACE):
        return value
    if isinstance(value, (Mapping, list)) and value:
        return value
    raise _EvalError('"llm-rubric" assertion type must have a rubric (a string or an object)')


@assertion("llm-rubric", prep=_prep_rubric)
async def _llm_rubric(
    rubric: Any, output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    if ctx.judge is None:
        raise _EvalError("llm-rubric needs a judge model and none is configured")
    try:
        text = await ctx.judge(rubric_messages(rubric, output))
    except Exception as exc:  # the judge's transport errors
        raise _EvalError(f"the judge call failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(text, str) or not text:
        raise _EvalError("the judge returned no output")
    objects = _extract_json_objects(text)
    verdict = objects[0] if objects else None
    if not isinstance(verdict, Mapping):
        raise _EvalError(f"could not parse a JSON verdict from the judge: {_excerpt(text, 300)!r}")
    if "pass" not in verdict:
        raise _EvalError(f"the judge's verdict has no 'pass': {_excerpt(_js_json(verdict), 300)}")
    raw_pass = verdict["pass"]
    passed = (
        raw_pass if isinstance(raw_pass, bool) else bool(_PASS_WORD_RE.fullmatch(_js_str(raw_pass)))
    )
    raw_score: Any = verdict.get("score")
    if _is_number(raw_score):
        score = float(raw_score)
    else:
        number = _js_to_number(raw_score) if "score" in verdict else math.nan
        score = number if math.isfinite(number) else float(passed)
    threshold = spec.get("threshold")
    limit = _js_to_number(threshold) if threshold is not None else math.nan
    if math.isfinite(limit):
        passed = passed and score >= limit
    reason_value = verdict.get("reason")
    if _js_truthy(reason_value):
        reason = _js_str(reason_value)
    elif passed:
        reason = "Grading passed"
    else:
        reason = f"Score {_js_str(score)} below threshold {_js_str(threshold) if threshold is not None else 'undefined'}"  # noqa: E501
    not_score = min(1.0, max(0.0, 1.0 - (score if math.isfinite(score) else 0.0)))
    return _Outcome(
        passed,
        reason=reason,
        not_reason=reason,
        pass_reason=reason,
        not_pass_reason=reason,
        score=score,
        not_score=not_score,
    )


# -- python ----------------------------------------------------------------------------------


def _prep_python(value: Any, spec: Mapping[str, Any]) -> tuple[str, str]:
    if not isinstance(value, str) or not value.strip():
        raise _EvalError("python assertion must have a string value")
    if value.startswith(_FILE_PREFIX):
        path, _fn = _split_file_ref(value)
        if not path.endswith(".py"):
            raise _EvalError(f"python assertion file must be a .py file, not {path!r}")
        return "file", value
    try:
        _inline_python(value)
    except SyntaxError as exc:
        raise _EvalError(f"python assertion code does not compile: {exc}") from None
    return "inline", value


def _is_grading_result(obj: Mapping[str, Any]) -> bool:
    def absent_or(key: str, check: Callable[[Any], bool]) -> bool:
        return key not in obj or check(obj[key])

    return (
        isinstance(obj.get("pass"), bool)
        and _is_number(obj.get("score"))
        and isinstance(obj.get("reason"), str)
        and absent_or("namedScores", lambda v: v is None or isinstance(v, Mapping))
        and absent_or("tokensUsed", lambda v: v is None or isinstance(v, Mapping))
        and absent_or("componentResults", lambda v: isinstance(v, list))
        and absent_or("assertion", lambda v: v is None or isinstance(v, Mapping))
        and absent_or("comment", lambda v: isinstance(v, str))
    )


def _script_object(obj: Any, threshold: float | None) -> _Outcome:
    data = dict(obj) if isinstance(obj, Mapping) else None
    if data is not None and "pass_" in data and "pass" not in data:
        data["pass"] = data["pass_"]
    if data is None or not _is_grading_result(data):
        raise _EvalError(
            "Python assertion must return a boolean, number, or {pass, score, reason} object. "
            f"Got instead: {_excerpt(_js_json(obj), 300)}"
        )
    passed, score, reason = data["pass"], float(data["score"]), data["reason"]
    if threshold is not None and score < threshold:
        passed = False
        note = f"Python score {_js_str(score)} is less than threshold {_js_str(threshold)}"
        reason = f"{note}: {reason}" if reason else note
    return _Outcome(
        passed,
        reason=reason,
        pass_reason=reason,
        not_reason="Python code returned true",
        score=score,
        not_score=score,
    )


def _script_outcome(result: Any, threshold: float | None, source: str) -> _Outcome:
    """promptfoo's normalizeScriptResult for what a python check returned."""
    suffix = f"\n{source}" if source else ""
    low = result.lower() if isinstance(result, str) else None
    if result is True or low == "true":
        return _Outcome(True, not_reason=f"Python code returned true{suffix}")
    if result is False or low == "false":
        return _Outcome(False, reason=f"Python code returned false{suffix}")
    if isinstance(result, str) and result.startswith("{"):
        ok, parsed = _json_parse(result)
        if not ok:
            raise _EvalError(f"Invalid JSON when parsing result: {_excerpt(result, 300)}")
        return _script_object(parsed, threshold)
    if isinstance(result, (Mapping, list, tuple)):
        return _script_object(result, threshold)
    score = _js_parse_float(_js_str(result))
    if math.isnan(score):
        raise _EvalError(
            "Python assertion must return a boolean, number, or {pass, score, reason} object. "
            f"Instead got: {_excerpt(repr(result), 300)}"
        )
    raw_pass = score > 0 if threshold is None else score >= threshold
    return _Outcome(
        raw_pass,
        reason=f"Python code returned false{suffix}",
        not_reason=f"Python code returned true{suffix}",
        score=score,
        not_score=score,
    )


@assertion("python", prep=_prep_python)
async def _python(
    prepared: tuple[str, str], output: str, spec: Mapping[str, Any], ctx: AssertContext
) -> _Outcome:
    kind, source = prepared
    fn = _python_function(ctx, source) if kind == "file" else _inline_python(source)
    result = await _call_python(fn, output, ctx)
    return _script_outcome(result, spec.get("threshold"), source)


ASSERTION_TYPES: frozenset[str] = frozenset(_REGISTRY)


# --------------------------------------------------------------------------------------------
# Validation (load time)
# --------------------------------------------------------------------------------------------

_ALLOWED_KEYS = frozenset({"type", "value", "threshold", "weight", "metric"})


def _is_static(value: Any) -> bool:
    """True when the value needs no case vars or files to be checked at load time."""
    if isinstance(value, str):
        return not _is_template(value) and not value.startswith(_FILE_PREFIX)
    if isinstance(value, list):
        return all(_is_static(v) for v in value)
    return True


def _check_templates(value: Any, where: str) -> None:
    if isinstance(value, str):
        _check_template(value, where)
    elif isinstance(value, list):
        for item in value:
            _check_templates(item, where)


def validate_assertion(spec: Mapping[str, Any]) -> None:
    """Raise AssertionSpecError (one line) if `spec` is not a valid assertion."""
    if not isinstance(spec, Mapping):
        raise AssertionSpecError(f"an assertion must be a mapping with a type, not {spec!r}")
    type_name = spec.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise AssertionSpecError(f"assertion has no type: {dict(spec)!r}")
    where = f"assertion {type_name!r}"
    unknown = sorted(str(k) for k in spec if k not in _ALLOWED_KEYS)
    if unknown:
        raise AssertionSpecError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: type, value, threshold, "
            "weight, metric)"
        )
    base = type_name[4:] if type_name.startswith("not-") else type_name
    entry = _REGISTRY.get(base)
    if entry is None:
        raise AssertionSpecError(
            f"unknown assertion type {type_name!r} (known: {', '.join(sorted(_REGISTRY))}, "
            "each also as not-TYPE)"
        )
    if "weight" in spec:
        weight = spec["weight"]
        if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
            raise AssertionSpecError(f"{where}: weight must be a number >= 0, not {weight!r}")
    if "threshold" in spec:
        threshold = spec["threshold"]
        numeric_string = base == "llm-rubric" and isinstance(threshold, str)
        if numeric_string:
            threshold = _js_to_number(threshold)
        if not _is_number(threshold) or not math.isfinite(threshold):
            raise AssertionSpecError(
                f"{where}: threshold must be a number, not {spec['threshold']!r}"
            )
    elif entry.needs_threshold:
        raise AssertionSpecError(f"{where}: needs a threshold")
    if "metric" in spec and not isinstance(spec["metric"], str):
        raise AssertionSpecError(f"{where}: metric must be a string")
    if entry.needs_value and "value" not in spec:
        raise AssertionSpecError(f"{where}: needs a value")
    value = spec.get("value")
    _check_templates(value, where)
    python_file = base == "python" and isinstance(value, str) and value.startswith(_FILE_PREFIX)
    if python_file or _is_static(value):
        try:
            entry.prep(value, spec)
        except _EvalError as exc:
            raise AssertionSpecError(" ".join(f"{where}: {exc}".split())) from None


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


async def _resolve_value(value: Any, base: str, output: str, ctx: AssertContext) -> Any:
    """promptfoo's runAssertion value handling: file:// references and templates."""
    if isinstance(value, str):
        if value.startswith(_FILE_PREFIX):
            if base == "python":
                return value
            path, _fn = _split_file_ref(value)
            if path.endswith(".py"):
                result = await _call_python(_python_function(ctx, value), output, ctx)
                if isinstance(result, bool) or (isinstance(result, Mapping) and "pass" in result):
                    raise _EvalError(
                        f'Script for "{base}" assertion returned a boolean or a grading result; '
                        "only python assertions can, others must return the expected value"
                    )
                return result
            return _load_file_value(ctx, value)
        return _render(value, ctx.vars)
    if isinstance(value, list):
        return [
            (_load_file_value(ctx, v) if v.startswith(_FILE_PREFIX) else _render(v, ctx.vars))
            if isinstance(v, str)
            else v
            for v in value
        ]
    return value


def _error_result(type_name: str, weight: float, value: Any, message: str) -> AssertionResult:
    return AssertionResult(
        type=type_name,
        passed=False,
        score=0.0,
        reason=f"could not evaluate: {message}",
        weight=weight,
        value=value,
        error=message,
    )


async def evaluate(spec: Mapping[str, Any], output: str, ctx: AssertContext) -> AssertionResult:
    """Run one assertion on `output`. Never raises: a failure to evaluate sets `error`."""
    type_name = str(spec.get("type", "")) if isinstance(spec, Mapping) else ""
    value = spec.get("value") if isinstance(spec, Mapping) else None
    weight_value = spec.get("weight", 1) if isinstance(spec, Mapping) else 1
    weight = float(weight_value) if _is_number(weight_value) else 1.0
    try:
        inverse = type_name.startswith("not-")
        base = type_name[4:] if inverse else type_name
        entry = _REGISTRY.get(base)
        if entry is None:
            raise _EvalError(f"unknown assertion type {type_name!r}")
        if entry.needs_threshold and not _is_number(spec.get("threshold")):
            raise _EvalError(f"{type_name} needs a numeric threshold")
        if not isinstance(output, str):
            output = _js_json(output)
        prepared = entry.prep(await _resolve_value(value, base, output, ctx), spec)
        outcome = entry.run(prepared, output, spec, ctx)
        if entry.is_async:
            outcome = await outcome
    except _EvalError as exc:
        return _error_result(type_name, weight, value, str(exc))
    except Exception as exc:  # an assertion never takes the run down
        return _error_result(type_name, weight, value, f"{type(exc).__name__}: {exc}")
    if inverse:
        passed = not outcome.passed
        reason = outcome.not_pass_reason if passed else outcome.not_reason
        score = outcome.not_score if outcome.not_score is not None else outcome.score
    else:
        passed = outcome.passed
        reason = outcome.pass_reason if passed else outcome.reason
        score = outcome.score
    if score is None:
        score = 1.0 if passed else 0.0
    if weight == 0:
        passed = True  # promptfoo: a weight-0 assertion is a metric only and cannot fail
    return AssertionResult(type_name, passed, score, reason, weight, value)


async def score_case(
    specs: Sequence[Mapping[str, Any]],
    output: str,
    ctx: AssertContext,
    threshold: float | None,
) -> CaseScore:
    """All of a case's assertions, aggregated as promptfoo's AssertionsResult does."""
    if not specs:
        return CaseScore(True, 1.0, (), "No assertions")
    if any(_base_type(s) == "llm-rubric" for s in specs):
        results = tuple(await asyncio.gather(*(evaluate(s, output, ctx) for s in specs)))
    else:
        results = tuple([await evaluate(s, output, ctx) for s in specs])
    total_score = 0.0
    total_weight = 0.0
    failed_reason: str | None = None
    for r in results:
        total_score += r.score * r.weight
        total_weight += r.weight
        if not r.passed:
            failed_reason = r.reason
    score = total_score / total_weight if total_weight > 0 else 0.0
    passed = failed_reason is None
    reason = failed_reason if failed_reason is not None else "All assertions passed"
    if threshold is not None and not math.isnan(threshold):
        # A case threshold replaces the all-must-pass rule with the weighted score.
        passed = score >= threshold
        sign = "≥" if passed else "<"
        reason = f"Aggregate score {_js_to_fixed(score, 2)} {sign} {_js_str(threshold)} threshold"
    errored = next((r for r in results if r.error is not None), None)
    if errored is not None:
        passed = False  # an assertion that could not be evaluated never lets a case pass
        reason = f"{errored.type} could not be evaluated: {errored.error}"
    return CaseScore(passed, score, results, reason)


def _base_type(spec: Mapping[str, Any]) -> str:
    t = spec.get("type") if isinstance(spec, Mapping) else None
    if not isinstance(t, str):
        return ""
    return t[4:] if t.startswith("not-") else t
