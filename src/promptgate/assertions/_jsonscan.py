"""JSON as promptfoo reads it: `JSON.parse` (no `NaN` / `Infinity`) and the lenient scan of
`contains-json` (`extractJsonObjects`: brace counting, auto-closing, `//` comments, YAML flow
syntax read as js-yaml's core schema reads it).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from ..yamlload import check_bounds
from ._js import _JS_SPACE, _js_str


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
        check_bounds(text, _yaml_loader(True))  # depth and alias bombs: a YAMLError, not a hang
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
