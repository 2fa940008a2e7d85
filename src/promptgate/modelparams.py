"""Types and ranges of the OpenAI chat parameters a prompt's `model` block may set.

Known parameters are checked by type and range so that `temperature: "hot"` is refused at push,
not by the provider mid-gate; bool is never a number. Unknown keys pass through unchecked (a
provider may accept parameters promptgate does not know).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


class ParamProblem(ValueError):
    """A parameter of the wrong type or out of range: `key` and the reason."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def shown(value: Any) -> str:
    """A value as an error message quotes it (JSON where possible, short)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if _is_number(value) and lo <= value <= hi:
            return None
        return f"must be a number between {lo:g} and {hi:g}"

    return check


def _positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "must be a whole number of at least 1"


def _int(value: Any) -> str | None:
    return None if _is_int(value) else "must be a whole number"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _top_logprobs(value: Any) -> str | None:
    ok = _is_int(value) and 0 <= value <= 20
    return None if ok else "must be a whole number between 0 and 20"


def _stop(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and 1 <= len(value) <= 4 and all(isinstance(s, str) for s in value):
        return None
    return "must be a string or a list of 1 to 4 strings"


def _base_url(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in ("http", "https") and parts.netloc:
            return None
    return "must be an http(s) URL such as https://api.example.com/v1"


def _api_key_env(value: Any) -> str | None:
    if isinstance(value, str) and _ENV_NAME.match(value):
        return None
    return "must name an environment variable (letters, digits, _)"


def response_format_problem(value: Any) -> str | None:
    """Why `value` is not a valid response_format, or None."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind not in RESPONSE_FORMATS:
        return f"must be null or {{type: {'|'.join(RESPONSE_FORMATS)}}}"
    if kind == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, Mapping) or not isinstance(schema.get("name"), str):
            return "type json_schema needs `json_schema: {name, schema}`"
    return None


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "max_tokens": _positive_int,
    "max_completion_tokens": _positive_int,
    "n": _positive_int,
    "seed": _int,
    "stop": _stop,
    "logprobs": _bool,
    "top_logprobs": _top_logprobs,
    "base_url": _base_url,
    "api_key_env": _api_key_env,
    "response_format": response_format_problem,
}


def check_model_params(model: Mapping[str, Any]) -> None:
    """Raise ParamProblem for the first known parameter of the wrong type or range."""
    for key, value in model.items():
        check = CHECKS.get(key)
        problem = check(value) if check is not None else None
        if problem is not None:
            raise ParamProblem(key, f"{problem} (got {shown(value)})")
