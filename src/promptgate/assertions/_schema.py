"""JSON-schema checks as promptfoo's strict ajv (draft-07) with ajv-formats, on top of
jsonschema: unknown keywords and formats are load-time errors, `pattern` is a JavaScript regex.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._js import _JS_SPACE_CLASS, _is_number, _js_str
from ._jsregex import _js_regex, _JsRegexSyntaxError

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

    return validators.extend(  # type: ignore[no-untyped-call]  # untyped in types-jsonschema
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
        # format_checker=None: no format checks on the schema itself (its patterns are JS syntax,
        # checked below); jsonschema accepts None, its stubs do not say so
        Draft7Validator.check_schema(schema, format_checker=None)  # type: ignore[arg-type]
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
