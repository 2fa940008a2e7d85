"""The comparison policy of the gate (`gate.compare` in promptgate.yaml, `compare:` in a suite).

`margin` is the largest drop in pass rate a candidate may show and still pass, `alpha` the
one-sided significance level (Holm-corrected across the suites of one check), `inconclusive`
what a comparison that proves neither does: `warn` lets it through (exit 0), `fail` stops it.
A suite's `compare:` overrides any of the three for that suite; unknown keys are errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import PromptgateError

COMPARE_KEYS = ("margin", "alpha", "inconclusive")
INCONCLUSIVE_MODES = ("warn", "fail")


@dataclass(frozen=True)
class CompareSettings:
    margin: float = 0.05
    alpha: float = 0.05
    inconclusive: str = "warn"

    def with_overrides(self, overrides: Mapping[str, Any]) -> CompareSettings:
        return replace(self, **dict(overrides)) if overrides else self


def parse_compare(value: Any, where: str, error: type[PromptgateError]) -> dict[str, Any]:
    """The validated keys of a `compare:` mapping (only those given); raises `error` with
    `where` for a wrong key or value."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error(f"{where}: must be a mapping with {', '.join(COMPARE_KEYS)}")
    unknown = sorted(str(k) for k in value if k not in COMPARE_KEYS)
    if unknown:
        raise error(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(COMPARE_KEYS)})")
    out: dict[str, Any] = {}
    for key in ("margin", "alpha"):
        if key in value:
            v = value[key]
            hi = 1.0 if key == "margin" else 0.5
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < hi:
                raise error(f"{where}.{key}: must be a number above 0 and below {hi:g}, not {v!r}")
            out[key] = float(v)
    if "inconclusive" in value:
        mode = value["inconclusive"]
        if mode not in INCONCLUSIVE_MODES:
            raise error(f"{where}.inconclusive: must be warn or fail, not {mode!r}")
        out["inconclusive"] = mode
    return out
