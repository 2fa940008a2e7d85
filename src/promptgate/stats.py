"""The statistics of the paired comparison (DESIGN section 9): pure functions, stdlib only.

First cut: exact one-sided McNemar, Tango's score bound of the paired difference, a seeded
paired bootstrap for repeats, Holm's step-down adjustment, and McNemar's sample size.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Paired:
    n: int
    regressions: int
    fixes: int
    drop: float
    ci_high: float
    p_value: float
    binary: bool


def mcnemar_p(regressions: int, fixes: int) -> float:
    d = regressions + fixes
    if d == 0:
        return 1.0
    return min(1.0, sum(math.comb(d, k) for k in range(regressions, d + 1)) / 2**d)


def _tango(b: int, c: int, n: int, d0: float) -> float:
    A = 2 * n
    B = -b - c + (2 * n - b + c) * d0
    C = -c * d0 * (1 - d0)
    q = (-B + math.sqrt(max(0.0, B * B - 4 * A * C))) / (2 * A)
    var = n * (2 * q + d0 * (1 - d0))
    if var <= 0:
        return math.inf if b - c - n * d0 > 0 else -math.inf
    return (b - c - n * d0) / math.sqrt(var)


def drop_upper_bound(regressions: int, fixes: int, n: int, alpha: float) -> float:
    if n == 0:
        return 1.0
    z = NormalDist().inv_cdf(1 - alpha)
    lo, hi = (regressions - fixes) / n, 1.0
    if _tango(regressions, fixes, n, hi - 1e-12) > -z:
        return 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _tango(regressions, fixes, n, mid) > -z:
            lo = mid
        else:
            hi = mid
    return hi


def bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    alpha: float,
    seed: bytes,
    resamples: int = 2000,
) -> tuple[float, float]:
    diffs = [b - c for b, c in zip(baseline, candidate, strict=True)]
    n = len(diffs)
    rng = random.Random(hashlib.sha256(seed).digest())
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    p = (1 + sum(1 for m in means if m <= 0)) / (resamples + 1)
    high = means[min(resamples - 1, math.ceil((1 - alpha) * resamples) - 1)]
    reg = sum(1 for d in diffs if d > 0)
    fix = sum(1 for d in diffs if d < 0)
    return p, max(high, drop_upper_bound(reg, fix, n, alpha) if reg == fix == 0 else high)


def paired(
    baseline: Sequence[float], candidate: Sequence[float], *, alpha: float, seed: bytes
) -> Paired:
    n = len(baseline)
    reg = sum(1 for b, c in zip(baseline, candidate, strict=True) if c < b)
    fix = sum(1 for b, c in zip(baseline, candidate, strict=True) if c > b)
    if n == 0:
        return Paired(0, 0, 0, 0.0, 1.0, 1.0, True)
    binary = all(x in (0.0, 1.0) for x in [*baseline, *candidate])
    drop = sum(b - c for b, c in zip(baseline, candidate, strict=True)) / n
    if binary:
        return Paired(
            n, reg, fix, drop, drop_upper_bound(reg, fix, n, alpha), mcnemar_p(reg, fix), True
        )
    p, high = bootstrap(baseline, candidate, alpha=alpha, seed=seed)
    return Paired(n, reg, fix, drop, high, p, False)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    items = sorted(p_values.items(), key=lambda kv: kv[1])
    m = len(items)
    out: dict[str, float] = {}
    running = 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def verdict(
    *, p_adjusted: float, ci_high: float, alpha: float, margin: float, threshold_ok: bool
) -> str:
    if not threshold_ok or p_adjusted < alpha:
        return "fail"
    if ci_high < margin:
        return "pass"
    return "inconclusive"


def cases_needed(p: Paired, *, margin: float, alpha: float, power: float = 0.8) -> int | None:
    if p.p_value < alpha or p.ci_high < margin:
        return None
    za, zb = NormalDist().inv_cdf(1 - alpha), NormalDist().inv_cdf(power)
    psi = max((p.regressions + p.fixes) / p.n, 1 / p.n)
    delta = margin - p.drop if p.drop < margin else p.drop
    delta = max(delta, 1e-6)
    need = (za * math.sqrt(psi) + zb * math.sqrt(max(psi - delta * delta, 0.0))) ** 2 / delta**2
    return max(p.n + 1, math.ceil(need))
