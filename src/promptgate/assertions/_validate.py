"""Load-time validation of one assertion spec: `validate_assertion`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._js import _is_number, _js_to_number
from ._pycheck import _FILE_PREFIX
from ._registry import _REGISTRY
from ._template import _check_template, _is_template
from ._types import AssertionSpecError, _EvalError

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
