"""Paired comparison of a candidate against its baseline on the same cases (README: paired).

Pure and stdlib-only: the gate hands in per-case scores in [0, 1] (0/1 for `repeat: 1`, the share
of passing runs for `repeat: k`) in the same case order on both sides, and gets back a `Paired`
summary; `holm` adjusts the p-values of one check's suites, `verdict` turns the adjusted p-value
and the bound into pass / fail / inconclusive, and `cases_needed` says how many paired cases
would make an inconclusive comparison conclusive.

Directions: a *drop* is baseline minus candidate, so a positive drop is a regression. Everything
is one-sided at level alpha: the p-value is for "the candidate is worse" (H1: drop > 0), the
bound is the one-sided (1 - alpha) upper confidence bound of the drop (non-inferiority: the gate
passes when that bound is below the margin).

Methods:
- 0/1 scores: exact one-sided McNemar test (binomial on the discordant pairs) and Tango's (1998)
  asymptotic score interval for the paired difference of proportions, which, unlike the
  conditional intervals, is unconditional on the number of discordant pairs (no discordant pair
  in 20 cases still leaves an upper bound of about 0.12 at alpha 0.05).
- Other scores: a paired bootstrap over cases seeded from a caller-given digest (deterministic),
  with the Tango bound on the down / up score masses as a floor (see `bootstrap`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

_STD_NORMAL = NormalDist()
# Exact integer binomial tails up to this many discordant pairs; a float recurrence beyond.
_EXACT_PAIRS = 1000
# Bootstrap means within this of 0 count as "not worse" (sums of floats like 0.1 + 0.2 - 0.3).
_ZERO_TOL = 1e-12
_MAX_CASES = 10**12


@dataclass(frozen=True)
class Paired:
    """A paired comparison of one suite: baseline against candidate on the same cases."""

    n: int  # paired cases
    regressions: int  # cases whose score went down (pass at baseline, fail at candidate)
    fixes: int  # cases whose score went up
    drop: float  # mean(baseline_score - candidate_score); for 0/1 = (regressions - fixes)/n
    ci_high: float  # one-sided (1 - alpha) upper confidence bound of the drop
    p_value: float  # one-sided p-value for "candidate is worse" (drop > 0), not Holm-adjusted
    binary: bool  # every score 0 or 1: McNemar + Tango; else the paired bootstrap
    # mean |baseline - candidate| over the cases; for 0/1 scores (regressions + fixes) / n.
    # None means "derive it from the counts" (only right for 0/1 scores).
    discordance: float | None = None


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def _z(alpha: float) -> float:
    """The standard normal (1 - alpha) quantile."""
    return _STD_NORMAL.inv_cdf(1.0 - _check_alpha(alpha))


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def mcnemar_p(regressions: int, fixes: int) -> float:
    """Exact one-sided McNemar p-value for "the candidate is worse".

    P(X >= regressions) with X ~ Binomial(regressions + fixes, 1/2): under no change, each
    discordant pair is a regression or a fix with equal chance. 1.0 without discordant pairs.
    Exact integer arithmetic up to 1,000 discordant pairs; beyond, a float recurrence over the
    smaller tail (relative error ~1e-12).
    """
    r = _check_count(regressions, "regressions")
    f = _check_count(fixes, "fixes")
    m = r + f
    if r == 0:
        return 1.0
    if m <= _EXACT_PAIRS:
        tail = sum(math.comb(m, k) for k in range(r, m + 1))
        return min(1.0, tail / (1 << m))
    # P(X >= r) = 1 - P(X >= m - r + 1) by symmetry; sum whichever tail starts past the mode,
    # where the terms only decrease.
    if 2 * r > m:
        return min(1.0, _upper_tail_half(m, r))
    return min(1.0, 1.0 - _upper_tail_half(m, m - r + 1))


def _upper_tail_half(m: int, k0: int) -> float:
    """P(X >= k0) for X ~ Binomial(m, 1/2) and k0 > m/2 (decreasing terms)."""
    log_term = math.lgamma(m + 1) - math.lgamma(k0 + 1) - math.lgamma(m - k0 + 1) - m * math.log(2)
    term = math.exp(log_term)
    terms = [term]
    for k in range(k0, m):
        term *= (m - k) / (k + 1)
        if term < terms[0] * 1e-18:
            break
        terms.append(term)
    return math.fsum(terms)


def _tango_stat(b: float, c: float, n: float, delta: float) -> float:
    """Tango's score statistic for H0: p10 - p01 = delta (b = n10, c = n01, n pairs).

    (b - c - n delta) / sqrt(n (2 p01~ + delta (1 - delta))), with p01~ the closed-form
    maximum-likelihood estimate of p01 restricted to p10 - p01 = delta (Tango 1998, eq. 3).
    """
    a2 = 2.0 * n
    bb = -b - c + (2.0 * n - b + c) * delta
    cc = -c * delta * (1.0 - delta)
    root = math.sqrt(max(bb * bb - 4.0 * a2 * cc, 0.0))
    # the same root, written without cancellation when bb > 0 (then cc <= 0)
    p01 = (root - bb) / (2.0 * a2) if bb <= 0 else (-2.0 * cc) / (bb + root)
    var = 2.0 * p01 + delta * (1.0 - delta)
    num = b - c - n * delta
    if var <= 0.0:
        return -math.inf if num < 0 else (math.inf if num > 0 else 0.0)
    return num / math.sqrt(n * var)


def _tango_upper(b: float, c: float, n: float, z: float) -> float:
    """Upper limit of Tango's score interval: the largest delta with T(delta) >= -z.

    T decreases in delta, equals 0 at the estimate (b - c)/n and tends to -inf at 1, so the
    limit is found by bisection on [estimate, 1]; the returned end is the conservative one.
    Counts may be fractional (score masses on the bootstrap path).
    """
    if n <= 0:
        return 1.0
    est = (b - c) / n
    if est >= 1.0:
        return 1.0
    lo, hi = est, 1.0
    while hi - lo > 1e-13:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _tango_stat(b, c, n, mid) > -z:
            lo = mid
        else:
            hi = mid
    return hi


def drop_upper_bound(regressions: int, fixes: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) upper confidence bound of the paired drop in pass rate.

    The drop is p(baseline pass) - p(candidate pass) = p10 - p01 with p10 the probability of a
    regression and p01 of a fix. The bound is the upper limit of Tango's (1998) asymptotic score
    interval at the one-sided level: it uses every one of the n pairs, not only the discordant
    ones, so no discordant pair in 20 cases gives z^2 / (n + z^2) = 0.119 at alpha 0.05 and in
    300 cases 0.009. A two-sided 95% Tango interval's upper limit is this bound at alpha 0.025.
    """
    r = _check_count(regressions, "regressions")
    f = _check_count(fixes, "fixes")
    total = _check_count(n, "n")
    if r + f > total:
        raise ValueError(f"regressions + fixes ({r + f}) exceed the paired cases ({total})")
    z = _z(alpha)
    if total == 0:
        return 1.0
    return _tango_upper(float(r), float(f), float(total), z)


def _seeded_rng(seed: bytes) -> random.Random:
    if not isinstance(seed, (bytes, bytearray)):
        raise ValueError(f"seed must be bytes, got {type(seed).__name__}")
    return random.Random(int.from_bytes(hashlib.sha256(bytes(seed)).digest(), "big"))


def _check_scores(baseline: Sequence[float], candidate: Sequence[float]) -> list[float]:
    """The per-case differences baseline - candidate, after checking both sides."""
    if len(baseline) != len(candidate):
        raise ValueError(
            f"baseline has {len(baseline)} scores and candidate {len(candidate)}: "
            "a paired comparison needs the same cases on both sides"
        )
    diffs = []
    for side, scores in (("baseline", baseline), ("candidate", candidate)):
        for i, s in enumerate(scores):
            if not isinstance(s, (int, float)) or not 0.0 <= s <= 1.0:  # bools are 0/1
                raise ValueError(f"{side} score {i} must be a number in [0, 1], got {s!r}")
    for b, c in zip(baseline, candidate, strict=True):
        diffs.append(float(b) - float(c))
    return diffs


def bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    alpha: float,
    seed: bytes,
    resamples: int = 2000,
) -> tuple[float, float]:
    """Paired bootstrap over cases of the mean drop: (one-sided p-value, upper bound).

    Cases are resampled with replacement `resamples` times with a `random.Random` seeded from
    sha256(seed), so the same scores and seed always give the same result.
    p = (1 + #{resampled mean drop <= 0}) / (resamples + 1); the bootstrap bound is the
    (1 - alpha) quantile (inverse empirical CDF) of the resampled means.

    Floor: the returned bound is max(bootstrap bound, Tango bound on the score masses), where
    the masses are b = sum of the positive differences and c = sum of the negative ones
    (`drop_upper_bound` with fractional counts). Justification: randomly rounding each
    difference d in [-1, 1] to sign(d) with probability |d| (else 0) gives a 0/1-style
    regression/fix table with the same expected drop, whose expected counts are exactly these
    masses; the Tango bound of that table is what a 0/1 suite with the same evidence would get.
    This keeps a degenerate sample (all differences equal, e.g. 20 unchanged cases) from a
    falsely tight bound (the percentile bound would be 0; the floor is 0.119 at alpha 0.05),
    coincides with the McNemar path when the scores happen to be 0/1, and is conservative
    (its variance E|d| - drop^2 is at least the variance of the differences).
    """
    diffs = _check_scores(baseline, candidate)
    _check_alpha(alpha)
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    n = len(diffs)
    if n == 0:
        return 1.0, 1.0
    rng = _seeded_rng(seed)
    means = sorted(math.fsum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    not_worse = sum(1 for m in means if m <= _ZERO_TOL)
    p_value = (1 + not_worse) / (resamples + 1)
    k = min(resamples - 1, max(0, math.ceil((1.0 - alpha) * resamples) - 1))
    down = math.fsum(d for d in diffs if d > 0)
    up = math.fsum(-d for d in diffs if d < 0)
    floor = _tango_upper(down, up, float(n), _z(alpha))
    return p_value, max(means[k], floor)


def paired(
    baseline: Sequence[float], candidate: Sequence[float], *, alpha: float, seed: bytes
) -> Paired:
    """Compare candidate with baseline on the same cases (scores in [0, 1], same order).

    All scores 0/1: exact McNemar p-value and Tango bound. Otherwise the paired bootstrap
    (2,000 resamples seeded from `seed`). No cases: p-value 1 and bound 1 (nothing is known).
    Raises ValueError when the lengths differ or a score is not a number in [0, 1].
    """
    diffs = _check_scores(baseline, candidate)
    _check_alpha(alpha)
    n = len(diffs)
    regressions = sum(1 for d in diffs if d > 0)
    fixes = sum(1 for d in diffs if d < 0)
    binary = all(s in (0, 1) for s in baseline) and all(s in (0, 1) for s in candidate)
    if n == 0:
        return Paired(0, 0, 0, 0.0, 1.0, 1.0, binary, 0.0)
    discordance = math.fsum(abs(d) for d in diffs) / n
    if binary:
        return Paired(
            n=n,
            regressions=regressions,
            fixes=fixes,
            drop=(regressions - fixes) / n,
            ci_high=drop_upper_bound(regressions, fixes, n, alpha),
            p_value=mcnemar_p(regressions, fixes),
            binary=True,
            discordance=discordance,
        )
    p_value, ci_high = bootstrap(baseline, candidate, alpha=alpha, seed=seed)
    return Paired(
        n=n,
        regressions=regressions,
        fixes=fixes,
        drop=math.fsum(diffs) / n,
        ci_high=ci_high,
        p_value=p_value,
        binary=False,
        discordance=discordance,
    )


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm-Bonferroni adjusted p-values (step-down), same keys.

    Sorted ascending, the i-th of m p-values (1-based) becomes max over j <= i of
    min(1, (m - j + 1) p_(j)): monotone in the raw p-values, never below them, capped at 1.
    Rejecting where the adjusted p-value is below alpha is Holm's (1979) procedure.
    """
    for key, p in p_values.items():
        if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
            raise ValueError(f"p-value of {key!r} must be in [0, 1], got {p!r}")
    order = sorted(p_values, key=lambda key: p_values[key])
    m = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p_values[key])))
        adjusted[key] = running
    return {key: adjusted[key] for key in p_values}


def verdict(
    *, p_adjusted: float, ci_high: float, alpha: float, margin: float, threshold_ok: bool
) -> str:
    """The suite's verdict: fail, pass or inconclusive.

    "fail" if the threshold is missed or the drop is significant (adjusted p < alpha); "pass"
    if the upper bound of the drop is below the margin; else "inconclusive".
    """
    if not threshold_ok or p_adjusted < alpha:
        return "fail"
    if ci_high < margin:
        return "pass"
    return "inconclusive"


def connor_pairs(
    discordance: float, drop: float, distance: float, *, alpha: float, power: float
) -> float:
    """Connor's (1987) McNemar sample size in pairs (not rounded up).

    n = (z_{1-alpha} sqrt(psi) + z_{power} sqrt(psi - drop^2))^2 / distance^2, with psi the
    discordance (p10 + p01), drop the true difference p10 - p01 and distance how far the test
    must separate it from the null value (drop itself against 0 for "significantly worse";
    margin - drop against the margin for non-inferiority). alpha is one-sided.
    """
    _check_alpha(power, "power")
    if distance <= 0:
        raise ValueError(f"distance must be positive, got {distance!r}")
    psi = max(discordance, abs(drop))
    sd0 = math.sqrt(psi)
    sd1 = math.sqrt(max(psi - drop * drop, 0.0))
    za = _z(alpha)
    zb = _STD_NORMAL.inv_cdf(power)
    return ((za * sd0 + zb * sd1) / distance) ** 2


def cases_needed(p: Paired, *, margin: float, alpha: float, power: float = 0.8) -> int | None:
    """Paired cases that would make an inconclusive comparison conclusive, at the observed
    discordance and drop; None when already conclusive (or when no number of cases can be:
    margin <= drop <= 0).

    Aim: pass when drop < margin (distance margin - drop from the margin), else fail (distance
    drop from 0); `connor_pairs` gives the size at the requested power. The discordance
    (mean |difference|, which covers both paths) is floored at 1/n; a suite without any
    discordant pair gets the size at which the same (unchanged) result would pass. For the pass
    aim the answer is also at least the smallest size at which the observed regression/fix
    rates give a bound below the margin (the Tango bound this module uses), so following it is
    consistent with `verdict`.
    Always at least n + 1.
    """
    _check_alpha(power, "power")
    _check_alpha(alpha)
    if p.p_value < alpha or p.ci_high < margin:
        return None
    n = p.n
    drop = p.drop
    if drop < margin:
        aim_pass, distance = True, margin - drop
    elif drop > 0:
        aim_pass, distance = False, drop
    else:
        return None
    if p.discordance is not None:
        observed = p.discordance
    else:
        observed = (p.regressions + p.fixes) / n if n else 0.0
    if observed == 0.0 and aim_pass and n > 0:
        # no case changed: "the observed discordance" is none, and Connor's formula has nothing
        # to scale; the answer is the size at which the same result would be a pass
        return max(n + 1, _pass_size(0.0, 0.0, margin, _z(alpha)))
    psi = min(1.0, max(observed, 1.0 / max(n, 1), abs(drop)))
    needed = min(float(_MAX_CASES), connor_pairs(psi, drop, distance, alpha=alpha, power=power))
    result = max(n + 1, math.ceil(needed))
    if aim_pass:
        result = max(result, _pass_size(observed, drop, margin, _z(alpha)))
    return result


def _pass_size(discordance: float, drop: float, margin: float, z: float) -> int:
    """Smallest N whose Tango bound, at the observed regression and fix rates, is below margin."""
    rate_down = max(0.0, (discordance + drop) / 2.0)
    rate_up = max(0.0, (discordance - drop) / 2.0)

    def below(size: int) -> bool:
        return _tango_upper(rate_down * size, rate_up * size, float(size), z) < margin

    hi = 1
    while not below(hi):
        if hi >= _MAX_CASES:
            return _MAX_CASES
        hi *= 2
    lo = hi // 2  # below(lo) is false (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if below(mid):
            hi = mid
        else:
            lo = mid
    return hi
