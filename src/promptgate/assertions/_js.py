"""JavaScript value semantics that promptfoo's assertions lean on: `String(x)`, `Number(x)`,
`JSON.stringify`, `toFixed`, `toPrecision`, truthiness, deep equality, JavaScript whitespace and
UTF-16 code units.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

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


_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")


def _utf16_units(text: str) -> str:
    """The string as JavaScript sees it without the `u` flag: one char per UTF-16 code unit."""
    if text.isascii() or not _ASTRAL_RE.search(text):
        return text

    def pair(m: re.Match[str]) -> str:
        cp = ord(m.group()) - 0x10000
        return chr(0xD800 + (cp >> 10)) + chr(0xDC00 + (cp & 0x3FF))

    return _ASTRAL_RE.sub(pair, text)


def _js_truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if _is_number(value):
        return value != 0 and not math.isnan(value)
    return True
